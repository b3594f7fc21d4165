//! `msgr logout`: end the session on the server and forget its token. If
//! the server cannot be reached the token is kept, so that logging out can
//! be retried; a token that has expired is simply forgotten. With `--all`,
//! every session of the account ends, on every machine: what to do when a
//! token may have been copied.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::LogoutArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::output::{Human, Render};
use crate::client::session;

/// Log out and report whether there was a session to end.
pub fn run(context: &ClientContext, args: &LogoutArgs) -> AppResult<()> {
    let account = context.account()?;
    let session_ended = if args.all {
        let identity = context.identity(&account)?;
        let mut connection = context.connect()?;
        session::end_all(&mut connection, &account, &context.user, &identity)?;
        true
    } else {
        let live = account.load_session()?.filter(|s| s.is_live(0));
        if let Some(session) = &live {
            let mut connection = context.connect()?;
            session::end(&mut connection, &context.user, &session.token)?;
        }
        live.is_some()
    };
    account.remove_session()?;
    let record = LoggedOut {
        user: context.user.as_str(),
        server: context.server.to_string(),
        session_ended,
        all: args.all,
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
    /// Whether every session of the account was ended.
    all: bool,
}

impl Render for LoggedOut<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        match (self.all, self.session_ended) {
            (true, _) => writeln!(
                out,
                "Ended every session of {} on {}",
                self.user, self.server
            ),
            (false, true) => writeln!(out, "Logged out {} from {}", self.user, self.server),
            (false, false) => writeln!(out, "{} had no session on {}", self.user, self.server),
        }
    }
}
