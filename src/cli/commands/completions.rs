//! `msgr completions SHELL`: print a completion script for bash, zsh,
//! fish, elvish or PowerShell, generated from the clap definitions.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::args::{Cli, CompletionsArgs};
use crate::cli::error::{AppError, AppResult};

/// Print the script for the chosen shell.
pub fn run(args: &CompletionsArgs) -> AppResult<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "msgr", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(AppError::stdout)
}
