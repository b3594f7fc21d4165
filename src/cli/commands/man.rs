//! `msgr man [COMMAND]`: print the manual page of msgr or of one of its
//! subcommands as roff, generated from the clap definitions
//! (`msgr man | man -l -` shows it).

use std::io::Write;

use clap::CommandFactory;

use crate::cli::args::{Cli, ManArgs};
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;

/// Print the requested page.
pub fn run(args: &ManArgs) -> AppResult<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<_> = command.get_subcommands().map(|c| c.get_name()).collect();
            Failure::NoSuchCommand {
                name: name.clone(),
                commands: names.join(", "),
            }
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(Failure::ManualPage)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&roff)
        .and_then(|()| stdout.flush())
        .map_err(AppError::stdout)
}
