//! `msgr whoami`: what this keyring knows about the account — name,
//! server, key fingerprint and protection, how many keys it has had, how
//! the server is trusted, and the session's expiry. Local only: it does not contact the server.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::output::{Human, Render, rfc3339_unix_seconds};
use crate::client::net::trust::ServerPin;

/// Print the account's local state.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account_dir()?;
    let registration = context.registration(&account)?;
    let server = context.server.to_string();
    let session = account.load_session()?;
    let record = WhoAmI {
        user: registration.user.into(),
        server: server.clone(),
        keys: registration.previous.len() + 1,
        fingerprint: registration.fingerprint,
        passphrase_protected: account.identity_is_encrypted()?,
        server_pin: context
            .keyring
            .known_servers()
            .get(&server)?
            .map(|pin| pin.stored().to_owned()),
        ca_cert: context.ca_cert(),
        session_expires_at: session.as_ref().map(|s| rfc3339_unix_seconds(s.expires_at)),
        session_valid: session.is_some_and(|s| s.is_live(0)),
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// The result of `whoami`.
#[derive(Serialize)]
struct WhoAmI<'a> {
    user: String,
    server: String,
    fingerprint: String,
    passphrase_protected: bool,
    /// How many identity keys the account has had, this one included.
    keys: usize,
    /// The pinned certificate fingerprint, if the server was pinned.
    server_pin: Option<String>,
    /// The CA file the server is verified with instead, if any.
    ca_cert: Option<&'a Path>,
    session_expires_at: Option<String>,
    session_valid: bool,
}

impl Render for WhoAmI<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        out.label("Account:")?;
        writeln!(out, " {} on {}", self.user, self.server)?;
        out.label("Key:    ")?;
        let protection = match self.passphrase_protected {
            true => "passphrase-protected",
            false => "not passphrase-protected",
        };
        writeln!(out, " {} ({protection})", self.fingerprint)?;
        out.label("History:")?;
        match self.keys - 1 {
            0 => writeln!(out, " 1 key (never rotated)")?,
            1 => writeln!(out, " 2 keys (rotated once)")?,
            rotations => writeln!(out, " {} keys (rotated {rotations} times)", self.keys)?,
        }
        out.label("Server: ")?;
        match (&self.ca_cert, &self.server_pin) {
            (Some(file), _) => writeln!(out, " verified with --ca-cert {}", file.display())?,
            (None, Some(pin)) if pin == ServerPin::SYSTEM_ROOTS => writeln!(
                out,
                " certificate vouched for by the system's roots, as required"
            )?,
            (None, Some(pin)) => writeln!(out, " certificate pinned as {pin}")?,
            (None, None) => writeln!(out, " not pinned yet")?,
        }
        out.label("Session:")?;
        match (&self.session_expires_at, self.session_valid) {
            (Some(at), true) => writeln!(out, " valid until {at}"),
            (Some(at), false) => writeln!(out, " expired at {at}; the next command logs in"),
            (None, _) => writeln!(out, " none; the next command logs in"),
        }
    }
}
