//! `msgr login`: get a fresh session token and keep it in the keyring (and
//! bring the account's prekeys on the server up to date).

use std::io::Write;

use serde::Serialize;

use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::output::{Human, Render, rfc3339_unix_seconds};
use crate::client::{prekeys, session};

/// Log in and report until when the session is valid.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account()?;
    let identity = context.identity(&account)?;
    let mut connection = context.connect()?;
    let (acting, session) = session::login(&mut connection, &account, &context.user, &identity)?;
    prekeys::maintain(
        &mut connection,
        &account,
        &acting.me,
        &identity,
        acting.held,
    )?;
    let record = LoggedIn {
        user: acting.me.as_str(),
        server: context.server.to_string(),
        expires_at: rfc3339_unix_seconds(session.expires_at),
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// The result of `login`.
#[derive(Serialize)]
struct LoggedIn<'a> {
    user: &'a str,
    server: String,
    expires_at: String,
}

impl Render for LoggedIn<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Logged in as {} on {}; the session is valid until {}",
            self.user, self.server, self.expires_at
        )
    }
}
