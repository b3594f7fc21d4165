//! `msgr man [COMMAND]`: print the manual page of msgr or of one of its
//! subcommands as roff, generated from the clap definitions
//! (`msgr man | man -l -` shows it); msgr(1) adds the ENVIRONMENT, EXIT
//! STATUS, FILES and EXAMPLES sections from [`crate::cli::reference`],
//! the tables the README has too.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::args::{Cli, ManArgs};
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::reference;

/// Print the requested page.
pub fn run(args: &ManArgs) -> AppResult<()> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let overview = args.command.is_none();
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
    if overview {
        roff = with_reference_sections(roff);
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&roff)
        .and_then(|()| stdout.flush())
        .map_err(AppError::stdout)
}

/// The overview page with the reference sections after the commands and
/// before the version, where man-pages(7) puts them.
fn with_reference_sections(roff: Vec<u8>) -> Vec<u8> {
    let sections = reference::man_sections().into_bytes();
    let version = roff
        .windows(VERSION_HEADING.len())
        .position(|window| window == VERSION_HEADING)
        .map_or(roff.len(), |at| at + 1);
    let mut page = roff[..version].to_vec();
    page.extend_from_slice(&sections);
    page.extend_from_slice(&roff[version..]);
    page
}

/// Where clap_mangen begins the VERSION section: after a newline.
const VERSION_HEADING: &[u8] = b"\n.SH VERSION\n";
