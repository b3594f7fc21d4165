//! `msgr unregister`: delete the account on the server — its queue,
//! sessions, prekeys and key, freeing the name — and then its folder in
//! this keyring. It cannot be undone, so it asks first at a terminal, and
//! elsewhere needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde::Serialize;

use crate::cli::args::UnregisterArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Render};
use crate::client::session;
use crate::files::FileError;

/// Confirm, delete the account on the server, then its keyring folder.
pub fn run(context: &ClientContext, args: &UnregisterArgs) -> AppResult<()> {
    let account = context.account()?;
    context.registration(&account)?;
    let identity = context.identity(&account)?;
    let folder = account.dir().to_owned();
    if !args.yes {
        confirm(context, &folder)?;
    }
    let mut connection = context.connect()?;
    let name = session::unregister(&mut connection, &account, &context.user, &identity)?;
    // The lock file goes with the folder; the lock itself ends with this
    // process.
    std::fs::remove_dir_all(&folder).map_err(|source| FileError {
        path: folder.clone(),
        source,
    })?;
    let record = Unregistered {
        user: name.as_str(),
        server: context.server.to_string(),
        deleted: &folder,
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// Ask at the terminal; without one, refuse.
fn confirm(context: &ClientContext, folder: &Path) -> AppResult<()> {
    let user = context.user.to_string();
    if !std::io::stdin().is_terminal() {
        return Err(Failure::NotConfirmed {
            user,
            why: "there is no terminal to confirm it at",
        }
        .into());
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "Delete {user} on {} (its queued messages, sessions and key) and {}? This cannot be undone. [y/N] ",
        context.server,
        folder.display()
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::NotConfirmed {
            user,
            why: "the deletion was not confirmed",
        }
        .into()),
    }
}

/// The result of `unregister`.
#[derive(Serialize)]
struct Unregistered<'a> {
    user: &'a str,
    server: String,
    /// The keyring folder deleted.
    deleted: &'a Path,
}

impl Render for Unregistered<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Unregistered {} on {}; deleted {}",
            self.user,
            self.server,
            self.deleted.display()
        )
    }
}
