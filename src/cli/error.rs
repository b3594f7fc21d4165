//! The user-facing error: what failed, what to do next, and which exit
//! status it maps to. Layers return their own error enums, and the command
//! line its [`Failure`]s; the table here (the `From` impls and the
//! `*_status_and_hint` functions) gives each its exit status and hint,
//! once — no other module chooses either; `main` prints and exits.

use std::fmt;
use std::process::ExitCode;

use crate::cli::failure::{Failure, Searched, StorePlace};

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
/// saying what to do, and the exit status. Made only by the table below,
/// from a layer's error or a [`Failure`].
#[derive(Debug)]
pub struct AppError {
    status: ExitStatus,
    message: String,
    hint: Option<String>,
    /// Seconds the server asked to wait before trying again.
    retry_after: Option<u64>,
    /// Whether an interactive session cannot go on after it.
    ends_session: bool,
}

impl AppError {
    /// Which exit status this failure maps to.
    pub fn status(&self) -> ExitStatus {
        self.status
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to try next, if anything useful can be said.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// How many seconds the server asked to wait before trying again (a
    /// rate limit), if it did.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Whether an interactive session cannot go on after this failure of
    /// one of its commands: the server no longer presents the pinned
    /// certificate, so every later command would be refused the same way.
    pub fn ends_session(&self) -> bool {
        self.ends_session
    }

    /// The failure to write results to standard output.
    pub fn stdout(error: std::io::Error) -> Self {
        Failure::Stdout(error).into()
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
            retry_after: None,
            ends_session: false,
        }
    }

    /// `error` worded, with the wait the server asked for, if any.
    fn from_net(error: &crate::client::net::NetError, worded: Self) -> Self {
        use crate::client::net::NetError;
        let retry_after = match error {
            NetError::Server { retry_after, .. } => *retry_after,
            _ => None,
        };
        Self {
            retry_after,
            ends_session: matches!(error, NetError::CertificateChanged { .. }),
            ..worded
        }
    }
}

impl From<crate::client::error::ClientError> for AppError {
    fn from(error: crate::client::error::ClientError) -> Self {
        use crate::client::error::ClientError;
        let worded = Self::worded(&error, client_status_and_hint(&error));
        match &error {
            ClientError::Net(net) => Self::from_net(net, worded),
            ClientError::PinMismatch { .. } => Self {
                ends_session: true,
                ..worded
            },
            _ => worded,
        }
    }
}

impl From<crate::client::keyring::KeyringError> for AppError {
    fn from(error: crate::client::keyring::KeyringError) -> Self {
        Self::worded(&error, keyring_status_and_hint(&error))
    }
}

impl From<Failure> for AppError {
    fn from(failure: Failure) -> Self {
        Self::worded(&failure, failure_status_and_hint(&failure))
    }
}

impl From<crate::files::FileError> for AppError {
    fn from(error: crate::files::FileError) -> Self {
        Self::worded(&error, (ExitStatus::Failure, None))
    }
}

impl From<crate::client::net::NetError> for AppError {
    fn from(error: crate::client::net::NetError) -> Self {
        Self::from_net(&error, Self::worded(&error, net_status_and_hint(&error)))
    }
}

/// The exit status and hint of each failure of the command line itself.
/// Long because it is a table, one arm per variant, read top to bottom;
/// splitting it would scatter the one place these are decided.
fn failure_status_and_hint(failure: &Failure) -> (ExitStatus, Option<String>) {
    let hint = |text: &str| Some(text.to_owned());
    match failure {
        Failure::CommandLine { tips, usage, .. } => {
            let mut advice = tips.clone();
            advice.push(match usage {
                Some(usage) => format!("usage: {usage}"),
                None => "run `msgr --help` for the usage".to_owned(),
            });
            (ExitStatus::Usage, Some(advice.join("; ")))
        }
        Failure::UnquotedMessage { recipients, words } => (
            ExitStatus::Usage,
            Some(format!(
                "quote it: msgr create {} {}",
                shell_word(recipients),
                shell_word(&words.join(" "))
            )),
        ),
        Failure::NoServer => (
            ExitStatus::Usage,
            hint(
                "pass --server HOST:PORT, set MSGR_SERVER, or put server = \"HOST:PORT\" in config.toml",
            ),
        ),
        Failure::NoUser => (
            ExitStatus::Usage,
            hint("pass --user NAME, set MSGR_USER, or put user = \"NAME\" in config.toml"),
        ),
        Failure::BadServer(_) | Failure::BadName(_) => (ExitStatus::Usage, None),
        Failure::StdinTooLarge { .. } => (
            ExitStatus::Usage,
            hint("send a file that large another way, or split it"),
        ),
        Failure::NotInSession(command) => (
            ExitStatus::Usage,
            Some(format!(
                "leave the session and run `msgr {command}` on its own"
            )),
        ),
        Failure::NoTerminal => (
            ExitStatus::Usage,
            hint(
                "run one command per invocation instead, as scripts do: msgr read, msgr create NAME MESSAGE",
            ),
        ),
        Failure::Terminal(_) => (ExitStatus::Failure, None),
        Failure::EmptyBody => (
            ExitStatus::Usage,
            hint("give the message as an argument or on standard input, or pass --allow-empty"),
        ),
        Failure::NotAFingerprint(_) => (
            ExitStatus::Usage,
            hint(
                "give it as `msgr key` and `msgr whoami` print it: SHA256: and 43 base64 characters",
            ),
        ),
        Failure::NoKey(searched) | Failure::NotRegisteredHere(searched) => {
            (ExitStatus::Auth, Some(register_or_switch(searched)))
        }
        Failure::NotConfirmed { .. } => (
            ExitStatus::Usage,
            hint("nothing was deleted; pass --yes to delete without being asked"),
        ),
        Failure::UnfinishedRotation { .. } => (
            ExitStatus::Auth,
            hint("run `msgr rotate` to finish it, then try again"),
        ),
        Failure::AlreadyRegistered { identity, .. } => (
            ExitStatus::Refused,
            Some(format!(
                "its key is in {}; run `msgr login` to start a session",
                identity.display()
            )),
        ),
        Failure::SentToNobody { status, .. } => {
            (*status, hint("fix the problems above and send it again"))
        }
        Failure::Partial { missed, .. } => (
            ExitStatus::Partial,
            Some(format!(
                "fix the problems above and send it again to {missed} only"
            )),
        ),
        Failure::NotVerified(_) => (
            ExitStatus::Trust,
            hint("ask the senders to check their keys, or check your pins with `msgr key NAME`"),
        ),
        Failure::OutDirNotPrivate { .. } => (
            ExitStatus::Failure,
            hint("give --out-dir a folder of your own that only you can write to"),
        ),
        Failure::NoSuchCommand { commands, .. } => {
            (ExitStatus::Usage, Some(format!("choose one of {commands}")))
        }
        Failure::Limit(_) => (
            ExitStatus::Usage,
            hint("see `msgr serve --help` for each limit's range and default"),
        ),
        Failure::NoDataDir => (ExitStatus::Failure, hint("pass --data-dir DIR")),
        Failure::NoDatabase { .. } => (
            ExitStatus::Failure,
            hint("pass --data-dir with the data directory the server runs on"),
        ),
        Failure::NoSuchAccount { .. } => (
            ExitStatus::UnknownUser,
            hint("`msgr admin users` lists the accounts"),
        ),
        Failure::BackupExists { .. } => (
            ExitStatus::Failure,
            hint("choose a file name that is not taken"),
        ),
        Failure::BackupOfSharedDatabase { .. } => (
            ExitStatus::Usage,
            hint(
                "back PostgreSQL up with pg_dump, which takes a consistent copy while the servers run",
            ),
        ),
        Failure::DatabaseNotEmpty { .. } => (
            ExitStatus::Failure,
            hint(
                "nothing was copied; make an empty database (createdb) and give --database its URL",
            ),
        ),
        Failure::CreateDataDir { .. } => (
            ExitStatus::Failure,
            hint("pass --data-dir with a directory you can write to"),
        ),
        Failure::DataDirInUse { .. } => (
            ExitStatus::Failure,
            hint("stop that server first, or give this one another --data-dir"),
        ),
        Failure::LockDataDir { .. } => (
            ExitStatus::Failure,
            hint("pass --data-dir with a directory you can write to"),
        ),
        Failure::RestrictDataDir { .. } => (
            ExitStatus::Failure,
            hint("make it mode 0700 and owned by the user running msgr serve"),
        ),
        Failure::StoreFailed { store, .. } => (
            ExitStatus::Failure,
            hint(match store {
                StorePlace::DataDir(_) => {
                    "check the disk and the server's log, then run the command again"
                }
                StorePlace::Database(_) => {
                    "check that PostgreSQL runs and what its log says, then run the command again"
                }
            }),
        ),
        Failure::OpenStore { .. } => (
            ExitStatus::Failure,
            hint(
                "check that the directory is writable and that no newer msgr created the database",
            ),
        ),
        Failure::OpenSharedStore(_) => (
            ExitStatus::Failure,
            hint(
                "check the URL (postgresql://USER@HOST:PORT/DATABASE), that PostgreSQL runs \
                 there, and that the user may create tables in that database",
            ),
        ),
        Failure::SharedTls(_) => (
            ExitStatus::Failure,
            hint(
                "delete the row of the table server_certificate to have a new certificate made \
                 (clients that pinned the old one must then accept the new fingerprint), or \
                 give --cert and --key",
            ),
        ),
        Failure::OperatorTls(_) => (
            ExitStatus::Failure,
            hint("give --cert a PEM certificate chain and --key its PEM private key"),
        ),
        Failure::SelfSignedTls { dir, .. } => (
            ExitStatus::Failure,
            Some(format!(
                "remove {} and {} from {} to make a new self-signed certificate \
                 (clients that pinned the old one must then accept the new fingerprint)",
                crate::server::tls::CERT_FILE,
                crate::server::tls::KEY_FILE,
                dir.display()
            )),
        ),
        Failure::Resolve { .. } => (
            ExitStatus::Failure,
            hint("give --bind an IP address, or a name this machine resolves (as in /etc/hosts)"),
        ),
        Failure::Listen { source, .. } => (
            ExitStatus::Failure,
            match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    hint("stop the program using that port or choose another (0 picks a free one)")
                }
                std::io::ErrorKind::PermissionDenied => {
                    hint("ports below 1024 need privileges; choose a higher port")
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    hint("--bind must be an address of this machine, or a name for one")
                }
                _ => None,
            },
        ),
        Failure::MetricsListen { source, .. } => (
            ExitStatus::Failure,
            match source.kind() {
                std::io::ErrorKind::AddrInUse => hint(
                    "stop the program using that port or give --metrics another (port 0 picks \
                     a free one)",
                ),
                std::io::ErrorKind::PermissionDenied => {
                    hint("ports below 1024 need privileges; choose a higher port")
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    hint("--metrics must name an address of this machine, such as 127.0.0.1")
                }
                _ => None,
            },
        ),
        Failure::KeyGeneration(_)
        | Failure::Stdin(_)
        | Failure::ManualPage(_)
        | Failure::Stdout(_)
        | Failure::Start { .. } => (ExitStatus::Failure, None),
    }
}

/// What to do about an account this keyring does not hold: use the
/// server spelling it does hold the user under, or register.
fn register_or_switch(searched: &Searched) -> String {
    let register = format!("run `msgr register` to register on {}", searched.server);
    match searched.elsewhere.as_slice() {
        [] => format!("{register}, or check --user and --config-dir (or MSGR_CONFIG_DIR)"),
        [only] => format!(
            "use --server {}, or {register}",
            shell_word(&crate::wire::protocol::printable(only))
        ),
        _ => format!("use --server with one of those, or {register}"),
    }
}

/// `text` as one word of a POSIX shell command line: as it is if nothing
/// in it is special, else in double quotes if that keeps it literal, else
/// in single quotes.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._,:/@%+=-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else if !text.contains(['"', '$', '`', '\\', '!']) {
        format!("\"{text}\"")
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The exit status and hint of each client failure; a table, long for the
/// same reason as [`failure_status_and_hint`].
fn client_status_and_hint(
    error: &crate::client::error::ClientError,
) -> (ExitStatus, Option<String>) {
    use crate::client::error::ClientError as E;
    const UNTRUTHFUL: &str = "the server is not answering truthfully; tell its operator";
    match error {
        E::Net(net) => net_status_and_hint(net),
        E::ReconnectFailed { .. } => (
            ExitStatus::Connection,
            Some("check that the server is running, or keep trying longer with --reconnect-for SECONDS".into()),
        ),
        E::Keyring(keyring) => keyring_status_and_hint(keyring),
        E::NotRegistered { .. } => (
            ExitStatus::Auth,
            Some(
                "if the server lost its data, run `msgr register` to register the same key again"
                    .into(),
            ),
        ),
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
                "the known keys are server, user, ca_cert, json, passphrase_file, pin_policy and timeout"
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
        E::PassphraseFileOpen { path, .. } => (
            ExitStatus::Usage,
            Some(format!(
                "run `chmod 600 {}` (and change the passphrase if others may have read it)",
                path.display()
            )),
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

/// The exit status and hint of a failure talking to the server.
fn net_status_and_hint(error: &crate::client::net::NetError) -> (ExitStatus, Option<String>) {
    use crate::client::net::NetError;
    match error {
        NetError::CertificateChanged { .. } => (ExitStatus::Trust, None),
        NetError::Server {
            code, retry_after, ..
        } => server_status_and_hint(*code, *retry_after),
        NetError::Connect { .. } => (
            ExitStatus::Connection,
            Some("check that the server is running and that --server is right".into()),
        ),
        NetError::Tls { failure, .. } => (ExitStatus::Connection, tls_hint(failure)),
        NetError::TimedOut { .. } => (
            ExitStatus::Connection,
            Some("check that the server is running and reachable, or allow it longer with --timeout SECONDS".into()),
        ),
        NetError::Closed => (
            ExitStatus::Connection,
            Some("the server may be restarting; run the command again".into()),
        ),
        NetError::Io(_) | NetError::Protocol(_) => (ExitStatus::Connection, None),
    }
}

/// The exit status and hint of an error response. The server's sentence
/// says what failed; what to do about it is said here, from the code, so
/// that it is said once and in this client's terms.
fn server_status_and_hint(
    code: crate::wire::protocol::ErrorCode,
    retry_after: Option<u64>,
) -> (ExitStatus, Option<String>) {
    use crate::wire::protocol::ErrorCode;
    let hint = |text: &str| Some(text.to_owned());
    match code {
        ErrorCode::AuthRequired | ErrorCode::AuthFailed => {
            (ExitStatus::Auth, hint("run `msgr login`, then try again"))
        }
        ErrorCode::UnknownUser => (
            ExitStatus::UnknownUser,
            hint("check the spelling of the name"),
        ),
        ErrorCode::InvalidName => (ExitStatus::Refused, None),
        ErrorCode::NameTaken => (ExitStatus::Refused, hint("choose another name with --user")),
        ErrorCode::KeyInUse => (
            ExitStatus::Refused,
            hint("register the account with a new key of its own"),
        ),
        ErrorCode::TooLarge => (ExitStatus::Refused, hint("send a smaller message")),
        ErrorCode::MailboxFull => (
            ExitStatus::Refused,
            hint("send it again after the recipient has read their messages"),
        ),
        ErrorCode::StorageFull => (
            ExitStatus::Refused,
            hint("try again later, or tell the server's operator"),
        ),
        ErrorCode::RateLimited => (
            ExitStatus::Refused,
            Some(match retry_after {
                Some(1) => "try again in 1 second".to_owned(),
                Some(seconds) => format!("try again in {seconds} seconds"),
                None => "try again later".to_owned(),
            }),
        ),
        ErrorCode::BadRequest => (ExitStatus::Connection, None),
        ErrorCode::UnsupportedVersion => (
            ExitStatus::Connection,
            hint(
                "use a version of msgr that speaks the server's protocol (ask its operator which)",
            ),
        ),
        ErrorCode::Busy => (ExitStatus::Connection, hint("try again in a moment")),
        ErrorCode::Internal => (
            ExitStatus::Connection,
            hint("try again later, and tell the server's operator if it keeps failing"),
        ),
    }
}

/// What to do about a failed TLS handshake.
fn tls_hint(failure: &crate::client::net::TlsFailure) -> Option<String> {
    use crate::client::net::TlsFailure as F;
    const IS_IT_MSGR: &str = "is it an msgr server? check --server";
    let text = match failure {
        F::NotTls | F::NoTls13 => IS_IT_MSGR,
        F::Closed | F::Alert(_) => {
            "check that --server names an msgr server, and if it does, look in the server's log"
        }
        F::TimedOut => "check that --server names an msgr server, and if it does, try again later",
        F::CaCertificate => {
            "pass the server's own certificate with --ca-cert, or ask its operator for a server \
             certificate issued by that CA"
        }
        F::UnknownIssuer => {
            "check that --ca-cert holds the CA that issued the server's certificate, or that \
             certificate itself, and that --server is right"
        }
        F::Expired { .. } => {
            "ask the server's operator to renew it, or check this computer's clock"
        }
        F::NotYetValid { .. } => "check this computer's clock, or ask the server's operator",
        F::WrongName { .. } => {
            "use a name the certificate lists in --server, or ask the server's operator for a \
             certificate that names this host"
        }
        F::BadCertificate(_) => {
            "check that --ca-cert holds the server's CA or its certificate, and if it does, tell \
             the server's operator"
        }
        F::Protocol(_) | F::Io(_) => "check that the server is running and that --server is right",
    };
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_the_shell() {
        assert_eq!(shell_word("John,Carol"), "John,Carol");
        assert_eq!(shell_word("Hello world"), "\"Hello world\"");
        assert_eq!(shell_word(""), "\"\"");
        assert_eq!(shell_word("it's $5"), r"'it'\''s $5'");
        assert_eq!(shell_word("say \"hi\""), "'say \"hi\"'");
    }

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
