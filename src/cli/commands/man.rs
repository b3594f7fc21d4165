//! `msgr man [COMMAND]`: print the manual page of msgr or of one of its
//! subcommands as roff, generated from the clap definitions
//! (`msgr man | man -l -` shows it).

use std::io::Write;

use clap::CommandFactory;

use crate::cli::args::{Cli, ManArgs};
use crate::cli::error::{AppError, AppResult};

/// Print the requested page.
pub fn run(args: &ManArgs) -> AppResult<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<_> = command.get_subcommands().map(|c| c.get_name()).collect();
            AppError::usage(format!("msgr has no command named {name}"))
                .hint(format!("choose one of {}", names.join(", ")))
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| AppError::local(format!("cannot render the manual page: {e}")))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&roff)
        .and_then(|()| stdout.flush())
        .map_err(AppError::stdout)
}
