//! `--help` of msgr and of every command, pinned word for word: the files
//! in `tests/suite/snapshots/help/` are what a user reads. After changing
//! the help on purpose, `MSGR_UPDATE_SNAPSHOTS=1 cargo test --test suite
//! cli::help` rewrites them; review the diff.

use std::path::PathBuf;

use clap::CommandFactory;
use msgr::cli::args::Cli;

use crate::common::msgr_bare;

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

fn snapshot(command: &str) -> PathBuf {
    let name = if command.is_empty() { "msgr" } else { command };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/suite/snapshots/help")
        .join(format!("{name}.txt"))
}

#[test]
fn every_help_text_is_pinned() {
    let update = std::env::var_os("MSGR_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
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
        let path = snapshot(command);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let pinned = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run with MSGR_UPDATE_SNAPSHOTS=1", path.display())
        });
        if pinned != text {
            differ.push(format!(
                "--- {}\n+++ msgr {command} --help\n{text}",
                path.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "help texts changed:\n{}",
        differ.join("\n")
    );
}
