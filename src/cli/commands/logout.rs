//! `msgr logout`: end the session on the server and forget its token. If
//! the server cannot be reached the token is kept, so that logging out can
//! be retried; a token that has expired is simply forgotten.

use std::io::Write;

use serde::Serialize;

use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::output::{Human, Render};
use crate::client::session;

/// Log out and report whether there was a session to end.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account()?;
    let session = account.load_session()?;
    let live = session.filter(|s| s.is_live(0));
    if let Some(session) = &live {
        let mut connection = context.connect()?;
        session::end(&mut connection, &context.user, &session.token)?;
    }
    account.remove_session()?;
    let record = LoggedOut {
        user: context.user.as_str(),
        server: context.server.to_string(),
        session_ended: live.is_some(),
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// The result of `logout`.
#[derive(Serialize)]
struct LoggedOut<'a> {
    user: &'a str,
    server: String,
    /// Whether a live session was ended (false: there was none).
    session_ended: bool,
}

impl Render for LoggedOut<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        match self.session_ended {
            true => writeln!(out, "Logged out {} from {}", self.user, self.server),
            false => writeln!(out, "{} had no session on {}", self.user, self.server),
        }
    }
}
