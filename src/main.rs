//! The `msgr` binary: parse the command line, run the command, and turn a
//! failure into one line on stderr and its exit status.

use std::process::ExitCode;

use clap::Parser;
use msgr::cli::Cli;
use msgr::error::ExitStatus;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match msgr::commands::run(cli) {
        Ok(()) => ExitStatus::Success.into(),
        Err(error) => {
            eprintln!("msgr: {error}");
            error.status.into()
        }
    }
}
