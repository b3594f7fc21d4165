//! The README holds the very tables `msgr man` renders: each is rendered
//! here as the README writes it and must appear there whole, with no row
//! before or after it that the program does not have. A failure prints
//! the table as it should read.

use clap::CommandFactory;

use super::*;
use crate::cli::args::Cli;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));

/// The width of the name column in the README's file listings.
const NAME_COLUMN: usize = 33;

fn code(text: &str) -> String {
    format!("`{text}`")
}

/// `table` (header, separator and rows) must be in the README with a line
/// that is no table row before and after it.
fn assert_table(what: &str, table: &str) {
    let found = README.match_indices(table).any(|(at, _)| {
        let before = README[..at].ends_with("\n\n");
        let after = README[at + table.len()..].starts_with('\n');
        before && after
    });
    assert!(
        found,
        "the README's {what} should read, exactly:\n\n{table}"
    );
}

/// `block` must be a whole code block of the README.
fn assert_code_block(what: &str, block: &str) {
    let fenced = format!("\n```\n{block}```\n");
    assert!(
        README.contains(&fenced),
        "the README's {what} should read, exactly:\n{fenced}"
    );
}

/// `sentence` must be in the README, however its lines are broken.
fn assert_sentence(sentence: &str) {
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(README).contains(&words(sentence)),
        "the README should say: {sentence}"
    );
}

#[test]
fn the_readme_has_the_settings_tables() {
    let mut table =
        String::from("| option | environment | `config.toml` key |\n| --- | --- | --- |\n");
    for setting in SETTINGS {
        let variable = match setting.holds {
            Some(holds) => format!("{} ({holds})", code(setting.variable)),
            None => code(setting.variable),
        };
        let key = setting.key.map_or("—".to_owned(), code);
        let flag = code(&setting.flag.replace('|', "\\|"));
        table += &format!("| {flag} | {variable} | {key} |\n");
    }
    assert_table("table of settings", &table);

    let mut table = String::from("| variable | effect |\n| --- | --- |\n");
    for (variables, effect) in OTHER_VARIABLES {
        table += &format!("| {variables} | {effect} |\n");
    }
    assert_table("table of other environment variables", &table);
}

#[test]
fn the_readme_has_the_exit_status_tables() {
    let mut meanings = String::from("| status | meaning |\n| --- | --- |\n");
    let mut codes = String::from("| status | JSON `code` |\n| --- | --- |\n");
    for exit in EXITS {
        let status = exit.status as u8;
        meanings += &format!("| {status} | {} |\n", exit.meaning);
        if exit.status != ExitStatus::Success {
            let note = exit
                .code_note
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            codes += &format!("| {status} | {}{note} |\n", code(exit.status.code()));
        }
    }
    assert_table("table of exit statuses", &meanings);
    assert_table("table of JSON codes", &codes);
}

#[test]
fn the_readme_has_the_file_listings() {
    for directory in DIRECTORIES {
        assert_sentence(directory.intro);
        let mut block = String::new();
        for entry in directory.entries {
            let name = format!("{}{}", "    ".repeat(entry.depth), entry.name);
            assert!(name.len() < NAME_COLUMN, "{name} is too long to align");
            block += &format!("{name:NAME_COLUMN$}{}\n", entry.holds);
        }
        assert_code_block("file listing", &block);
    }
}

#[test]
fn the_readme_has_the_example_session() {
    assert_code_block("example", &example_block());
}

#[test]
fn the_readme_lists_every_metric() {
    let mut table =
        String::from("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n");
    for metric in METRICS {
        let labels = match metric.labels {
            "" => "—",
            labels => labels,
        };
        table += &format!(
            "| {} | {} | {labels} | {} |\n",
            code(metric.name),
            metric.kind,
            metric.help
        );
    }
    assert_table("table of metrics", &table);
}

#[test]
fn the_settings_are_the_flags_and_variables_clap_knows() {
    let command = Cli::command();
    for setting in SETTINGS {
        let long = setting.flag.split(['[', ' ']).next().unwrap();
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long().map(|name| format!("--{name}")).as_deref() == Some(long))
            .unwrap_or_else(|| panic!("no flag {long}"));
        let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
        match setting.holds {
            // The variable holds something else than the flag's value.
            Some(_) => assert_eq!(env, None, "{long}"),
            None => assert_eq!(env.as_deref(), Some(setting.variable), "{long}"),
        }
    }
}

#[test]
fn every_exit_status_is_listed_once_in_order() {
    for (number, exit) in EXITS.iter().enumerate() {
        assert_eq!(exit.status as usize, number);
    }
    assert_eq!(EXITS.last().unwrap().status, ExitStatus::Partial);
}

#[test]
fn nested_files_are_named_by_their_whole_path() {
    let sections = man_sections();
    assert!(
        sections.contains("\\fB\\%accounts/<user>@<host:port>/identity.pem\\fR\n"),
        "{sections}"
    );
    assert!(sections.contains("\\fB\\%lock\\fR\nHeld by the \\fB\\%msgr \\%serve\\fR"));
    let requests = [".TP", ".PP", ".nf", ".fi", ".RS 4", ".RE"];
    for line in sections.lines().filter(|line| line.starts_with('.')) {
        assert!(
            line.starts_with(".SH ") || requests.contains(&line),
            "text read as a request: {line}"
        );
    }
}
