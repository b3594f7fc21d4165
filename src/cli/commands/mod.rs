//! One module per subcommand, each with its `run` function; [`run`] routes
//! the parsed command line to them.

pub mod admin;
pub mod completions;
pub mod contacts;
pub mod create;
pub mod key;
pub mod login;
pub mod logout;
pub mod man;
pub mod read;
pub mod register;
pub mod rotate;
pub mod serve;
pub mod shell;
pub mod unregister;
pub mod whoami;

use crate::cli::args::{Cli, Command};
use crate::cli::context::ClientContext;
use crate::cli::error::AppResult;
use crate::cli::failure::Failure;
use crate::cli::output::Output;
use crate::client::settings::Settings;

/// Run the command the user asked for. Client commands first resolve the
/// settings, which may switch `output` to JSON.
pub fn run(cli: Cli, output: &mut Output) -> AppResult<()> {
    match &cli.command {
        Command::Serve(args) => return serve::run(args),
        Command::Completions(args) => return completions::run(args),
        Command::Man(args) => return man::run(args),
        Command::Admin(args) => return admin::run(args, output),
        _ => {}
    }
    let settings = Settings::load(&cli.global.overrides())?;
    output.set_json(settings.json);
    let mut context = ClientContext::new(settings, *output)?;
    if let Command::Shell = cli.command {
        context.keep_connection();
        return shell::run(&context);
    }
    run_client(&context, &cli.command)
}

/// Run a client command: one given on the command line, or one typed in
/// an interactive session.
pub fn run_client(context: &ClientContext, command: &Command) -> AppResult<()> {
    match command {
        Command::Register(args) => register::run(context, args),
        Command::Login => login::run(context),
        Command::Key(args) => key::run(context, args),
        Command::Create(args) => create::run(context, args),
        Command::Read(args) => read::run(context, args),
        Command::Rotate(args) => rotate::run(context, args),
        Command::Whoami => whoami::run(context),
        Command::Contacts => contacts::run(context),
        Command::Logout(args) => logout::run(context, args),
        Command::Unregister(args) => unregister::run(context, args),
        Command::Serve(_)
        | Command::Completions(_)
        | Command::Man(_)
        | Command::Admin(_)
        | Command::Shell => Err(Failure::NotInSession(command_name(command)).into()),
    }
}

/// The name of `command` as typed.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "serve",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
        Command::Admin(_) => "admin",
        Command::Shell => "shell",
        _ => "this command",
    }
}
