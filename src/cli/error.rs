//! The client's user-facing error: what failed, what to do next, and which
//! exit status it maps to. Layers return their own error enums; the table
//! here (the `From` impls) gives each its exit status and hint, once;
//! commands add what only they know; `main` prints and exits.

use std::fmt;
use std::process::ExitCode;

/// Exit statuses, documented in the README. Each has a stable snake_case
/// [`code`](ExitStatus::code) that JSON error objects carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success = 0,
    /// A local failure: files, keyring, unexpected I/O.
    Failure = 1,
    /// The command line or a setting was wrong (clap's own status).
    Usage = 2,
    /// Could not connect, TLS failed, or the server broke the protocol.
    Connection = 3,
    /// Not registered, the server refused the credentials, or the
    /// passphrase of the key was wrong.
    Auth = 4,
    /// The named user does not exist on the server.
    UnknownUser = 5,
    /// A pin did not match or a message failed verification.
    Trust = 6,
    /// The server refused the request: name taken, too large, limits.
    Refused = 7,
    /// A message reached some of its recipients but not all.
    Partial = 8,
}

impl ExitStatus {
    /// The stable machine-readable name of this status.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "local",
            Self::Usage => "usage",
            Self::Connection => "connection",
            Self::Auth => "auth",
            Self::UnknownUser => "unknown_user",
            Self::Trust => "trust",
            Self::Refused => "refused",
            Self::Partial => "partial",
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

/// A failure reported to the user: one sentence, optionally a second
/// saying what to do, and the exit status.
#[derive(Debug)]
pub struct AppError {
    /// Which exit status this failure maps to.
    pub status: ExitStatus,
    /// What went wrong.
    pub message: String,
    /// What to try next, if anything useful can be said.
    pub hint: Option<String>,
}

impl AppError {
    /// A failure with the given status and message.
    pub fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hint: None,
        }
    }

    /// A local failure (exit status 1).
    pub fn local(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Failure, message)
    }

    /// A usage error (exit status 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::Usage, message)
    }

    /// Add what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure to write results to standard output.
    pub fn stdout(error: std::io::Error) -> Self {
        Self::local(format!("cannot write to standard output: {error}"))
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AppError {}

/// Result type of client commands.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// `error` in its own words, with the exit status and hint the table
    /// gives it.
    fn worded(error: &impl fmt::Display, (status, hint): (ExitStatus, Option<String>)) -> Self {
        Self {
            status,
            message: error.to_string(),
            hint,
        }
    }
}

impl From<crate::client::error::ClientError> for AppError {
    fn from(error: crate::client::error::ClientError) -> Self {
        Self::worded(&error, client_status_and_hint(&error))
    }
}

impl From<crate::client::keyring::KeyringError> for AppError {
    fn from(error: crate::client::keyring::KeyringError) -> Self {
        Self::worded(&error, keyring_status_and_hint(&error))
    }
}

impl From<crate::files::FileError> for AppError {
    fn from(error: crate::files::FileError) -> Self {
        Self::worded(&error, (ExitStatus::Failure, None))
    }
}

impl From<crate::client::net::NetError> for AppError {
    fn from(error: crate::client::net::NetError) -> Self {
        Self::worded(&error, net_status_and_hint(&error))
    }
}

/// The exit status and hint of each client failure: the table.
fn client_status_and_hint(
    error: &crate::client::error::ClientError,
) -> (ExitStatus, Option<String>) {
    use crate::client::error::ClientError as E;
    const UNTRUTHFUL: &str = "the server is not answering truthfully; tell its operator";
    match error {
        E::Net(net) => net_status_and_hint(net),
        E::Keyring(keyring) => keyring_status_and_hint(keyring),
        E::NotRegistered { .. } => (ExitStatus::Auth, Some("run `msgr register` first".into())),
        E::KeyRefused { .. } => (
            ExitStatus::Auth,
            Some(
                "the account on the server belongs to a different key; register another name"
                    .into(),
            ),
        ),
        E::NotOwnName { .. } | E::OtherAccount { .. } | E::ForeignPrekey { .. } => {
            (ExitStatus::Trust, Some(UNTRUTHFUL.into()))
        }
        E::NoPrekey { name } => (
            ExitStatus::Refused,
            Some(format!(
                "ask {name} to run any msgr command that logs in (such as `msgr read`) with this version, then send again"
            )),
        ),
        E::TooLarge { .. } => (ExitStatus::Refused, Some("send a smaller message".into())),
        E::NameTaken { .. } | E::NameRefused { .. } => (
            ExitStatus::Refused,
            Some("choose another name with --user".into()),
        ),
        E::UnknownUser { .. } => (
            ExitStatus::UnknownUser,
            Some("check the spelling of the name".into()),
        ),
        E::UnusableKey { .. } => (ExitStatus::Connection, None),
        E::PinMismatch { server, known, .. } => (
            ExitStatus::Trust,
            Some(format!(
                "if the server's certificate was replaced on purpose, confirm the new fingerprint with its operator and delete the {server} line from {}",
                known.display()
            )),
        ),
        E::CaFile { .. } => (
            ExitStatus::Usage,
            Some("give a PEM file holding the server's CA or its certificate".into()),
        ),
        E::UnexpectedKey { name, .. } => (
            ExitStatus::Trust,
            Some(format!(
                "check the fingerprint with {name} again; if it is right, the server is not handing out {name}'s key"
            )),
        ),
        E::KeyChanged { name, .. } => (
            ExitStatus::Trust,
            Some(format!(
                "if {name} really has a new key, confirm its fingerprint with them and run `msgr key {name} --expect FINGERPRINT`"
            )),
        ),
        E::NotPinned { name } => (
            ExitStatus::Trust,
            Some(format!(
                "pin it with `msgr key {name}` (with --expect FINGERPRINT to accept only the fingerprint {name} gave you)"
            )),
        ),
        E::Crypto { .. } | E::Signals(_) | E::ConfigUnreadable { .. } | E::Seal(_) => {
            (ExitStatus::Failure, None)
        }
        E::NoConfigDir => (
            ExitStatus::Failure,
            Some("pass --config-dir DIR or set MSGR_CONFIG_DIR".into()),
        ),
        E::ConfigInvalid { .. } => (
            ExitStatus::Usage,
            Some(
                "the known keys are server, user, ca_cert, json, passphrase_file and pin_policy"
                    .into(),
            ),
        ),
        E::EmptyPassphrase => (
            ExitStatus::Usage,
            Some("choose a passphrase, or register without --passphrase".into()),
        ),
        E::PassphrasesDiffer => (
            ExitStatus::Usage,
            Some("run the command again and type the same passphrase twice".into()),
        ),
        E::PassphraseFile { .. } => (
            ExitStatus::Usage,
            Some("check --passphrase-file or passphrase_file in config.toml".into()),
        ),
        E::NoTerminal => (
            ExitStatus::Auth,
            Some("set MSGR_PASSPHRASE or pass --passphrase-file FILE".into()),
        ),
    }
}

/// The exit status and hint of a keyring failure.
fn keyring_status_and_hint(
    error: &crate::client::keyring::KeyringError,
) -> (ExitStatus, Option<String>) {
    use crate::client::keyring::KeyringError;
    match error {
        KeyringError::WrongPassphrase { .. } => (
            ExitStatus::Auth,
            Some("check MSGR_PASSPHRASE or --passphrase-file, or type the passphrase again".into()),
        ),
        KeyringError::TooOpen { path, .. } => (
            ExitStatus::Failure,
            Some(format!("run `chmod 600 {}` and try again", path.display())),
        ),
        KeyringError::Corrupt { .. } => (
            ExitStatus::Failure,
            Some("restore it from a backup or remove it".into()),
        ),
        KeyringError::File(_) | KeyringError::BadIdentity { .. } => (ExitStatus::Failure, None),
    }
}

/// The exit status and hint of a failure talking to the server. A
/// server's own sentence carries its own advice ("try again in 42
/// seconds"), so error responses get no hint.
fn net_status_and_hint(error: &crate::client::net::NetError) -> (ExitStatus, Option<String>) {
    use crate::client::net::NetError;
    use crate::wire::protocol::ErrorCode;
    match error {
        NetError::CertificateChanged { .. } => (ExitStatus::Trust, None),
        NetError::Server { code, .. } => (
            match code {
                ErrorCode::AuthRequired | ErrorCode::AuthFailed => ExitStatus::Auth,
                ErrorCode::UnknownUser => ExitStatus::UnknownUser,
                ErrorCode::InvalidName
                | ErrorCode::NameTaken
                | ErrorCode::TooLarge
                | ErrorCode::MailboxFull
                | ErrorCode::RateLimited => ExitStatus::Refused,
                ErrorCode::BadRequest | ErrorCode::UnsupportedVersion | ErrorCode::Internal => {
                    ExitStatus::Connection
                }
            },
            None,
        ),
        NetError::Connect { .. } => (
            ExitStatus::Connection,
            Some("check that the server is running and that --server is right".into()),
        ),
        NetError::Tls { .. } => (
            ExitStatus::Connection,
            Some("check --ca-cert, or that the address is an msgr server".into()),
        ),
        NetError::Io(_) | NetError::Protocol(_) => (ExitStatus::Connection, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_names() {
        let all = [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Usage,
            ExitStatus::Connection,
            ExitStatus::Auth,
            ExitStatus::UnknownUser,
            ExitStatus::Trust,
            ExitStatus::Refused,
            ExitStatus::Partial,
        ];
        for (number, status) in all.iter().enumerate() {
            assert_eq!(*status as usize, number, "statuses are numbered in order");
            let code = status.code();
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        let mut codes: Vec<_> = all.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
