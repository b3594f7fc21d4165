//! The `msgr` binary: parse the command line, set up logging and output,
//! run the command, and turn a failure into one report on stderr and its
//! exit status.

use std::process::ExitCode;

use msgr::cli::args::{Cli, Command};
use msgr::cli::error::ExitStatus;
use msgr::cli::output::{self, Output};

fn main() -> ExitCode {
    let cli = match Cli::from_command_line() {
        Ok(cli) => cli,
        Err(error) => match Cli::interactive(&error) {
            Some(cli) => cli,
            None => return output::report_usage_error(error),
        },
    };
    let serving = match &cli.command {
        Command::Serve(args) => Some(args.log_format),
        _ => None,
    };
    msgr::cli::logging::init(serving, cli.global.verbose, cli.global.quiet);
    let mut output = Output::new(cli.global.json.unwrap_or(false), cli.global.quiet);
    match msgr::cli::commands::run(cli, &mut output) {
        Ok(()) => ExitStatus::Success.into(),
        Err(error) => {
            output.error(&error);
            error.status().into()
        }
    }
}
