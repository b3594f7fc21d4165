//! `--help` of msgr and of every command, pinned word for word: the files
//! in `tests/suite/snapshots/help/` are what a user reads. After changing
//! the help on purpose, `MSGR_UPDATE_SNAPSHOTS=1 cargo test --test suite
//! cli::help` rewrites them; review the diff.

use clap::CommandFactory;
use msgr::cli::args::Cli;

use crate::common::{msgr_bare, snapshot};

/// `msgr` itself (the empty name) and every command it has.
fn commands() -> Vec<String> {
    let mut names = vec![String::new()];
    names.extend(
        Cli::command()
            .get_subcommands()
            .map(|command| command.get_name().to_owned()),
    );
    names
}

#[test]
fn every_help_text_is_pinned() {
    let mut differ = Vec::new();
    for command in commands() {
        let command = command.as_str();
        let mut msgr = msgr_bare();
        if !command.is_empty() {
            msgr.arg(command);
        }
        let output = msgr.arg("--help").output().unwrap();
        assert!(output.status.success(), "{command} --help failed");
        let text = String::from_utf8(output.stdout).unwrap();
        let name = if command.is_empty() { "msgr" } else { command };
        differ.extend(snapshot::differs(&format!("help/{name}.txt"), &text));
    }
    assert!(
        differ.is_empty(),
        "help texts changed:\n{}",
        differ.join("\n")
    );
}
