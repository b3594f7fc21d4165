//! One module per subcommand, each with its `run` function; [`run`] routes
//! the parsed command line to them.

pub mod create;
pub mod key;
pub mod login;
pub mod read;
pub mod register;
pub mod serve;

use crate::cli::{Cli, Command};
use crate::context::ClientContext;
use crate::crypto::PrivateKey;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::keyring::Account;

/// Run the command the user asked for.
pub fn run(cli: Cli) -> AppResult<()> {
    if let Command::Serve(args) = &cli.command {
        return serve::run(args);
    }
    let context = ClientContext::from_args(&cli.global)?;
    match &cli.command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::Register(args) => register::run(&context, args),
        Command::Login => login::run(&context),
        Command::Key(args) => key::run(&context, args),
        Command::Create(args) => create::run(&context, args),
        Command::Read => read::run(&context),
    }
}

/// The account's private key, or an authentication error saying how to
/// get one.
fn require_identity(context: &ClientContext, account: &Account) -> AppResult<PrivateKey> {
    if !account.has_identity() {
        return Err(AppError::new(
            ExitStatus::Auth,
            format!(
                "there is no key for {} on {} in this keyring",
                context.user, context.server
            ),
        )
        .hint("run `msgr register` first, or check --user, --server and --config-dir"));
    }
    Ok(account.load_identity()?)
}

/// RFC 3339 (UTC, whole seconds) rendering of milliseconds since the epoch.
fn format_time(millis: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_seconds(time).to_string()
}
