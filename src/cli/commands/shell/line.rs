//! A line typed at the session's prompt: split into words as a shell
//! would, its command name taken in any letter case, and parsed by the
//! same clap definitions as the command line ([`Command`]), without the
//! global options (the session has its settings). Also what of a line
//! goes into the history: never a message body.

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cli::args::Command;
use crate::cli::error::AppError;
use crate::cli::output::usage_failure;

/// The commands of the session's prompt: the client commands, and `quit`.
#[derive(Debug, Parser)]
#[command(
    name = "msgr",
    about = "Commands of the msgr session, as on the command line (without its global options)",
    no_binary_name = true,
    disable_version_flag = true,
    override_usage = "COMMAND [ARGUMENTS]",
    after_help = "`create` alone asks for the recipient and the message, `key` alone for the \
                  name. Tab completes command names and pinned contacts; Ctrl-C abandons the \
                  line; quit, exit or Ctrl-D leaves."
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Commands that run only on their own, not at the prompt (hidden from
/// its help; refused if typed).
const NOT_AT_THE_PROMPT: [&str; 5] = ["serve", "admin", "completions", "man", "shell"];

/// The leaving command and its alias.
const QUIT: &str = "quit";
const EXIT: &str = "exit";

/// What a typed line asks for.
#[derive(Debug)]
pub enum Typed {
    /// Nothing (an empty line).
    Nothing,
    /// Leave the session.
    Quit,
    /// Text to print as it is (help).
    Print(String),
    /// A command to run.
    Run(Box<Command>),
    /// A line that is not a command, and why.
    Wrong(AppError),
}

/// The clap definition of a prompt line.
fn definition() -> clap::Command {
    let mut command = Line::command().subcommand(
        clap::Command::new(QUIT)
            .about("Leave the session (also Ctrl-D)")
            .visible_alias(EXIT),
    );
    for name in NOT_AT_THE_PROMPT {
        command = command.mut_subcommand(name, |sub| sub.hide(true));
    }
    command
}

/// The names the prompt knows, visible ones only: for completion.
pub fn command_names() -> Vec<String> {
    let definition = definition();
    let mut names: Vec<String> = definition
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .flat_map(|sub| {
            std::iter::once(sub.get_name().to_owned())
                .chain(sub.get_visible_aliases().map(str::to_owned))
        })
        .collect();
    names.sort();
    names
}

/// `line` as words (shell quoting), `None` if a quote is left open.
pub fn words(line: &str) -> Option<Vec<String>> {
    shlex::split(line)
}

/// `word` as the command name it stands for, if it is one in another
/// letter case; otherwise unchanged.
pub fn command_word(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let known = definition()
        .get_subcommands()
        .any(|sub| sub.get_name() == lower || sub.get_all_aliases().any(|a| a == lower));
    match known || lower == "help" {
        true => lower,
        false => word.to_owned(),
    }
}

/// Parse `words` (the first a command name, any letter case).
pub fn parse(mut words: Vec<String>) -> Typed {
    let Some(first) = words.first_mut() else {
        return Typed::Nothing;
    };
    *first = command_word(first);
    let matches = match definition().try_get_matches_from(&words) {
        Ok(matches) => matches,
        Err(error) if !error.use_stderr() => return Typed::Print(error.render().to_string()),
        Err(error) => {
            let args = std::iter::once("msgr".to_owned()).chain(words);
            return Typed::Wrong(usage_failure(&error, args).into());
        }
    };
    if matches.subcommand_name() == Some(QUIT) {
        return Typed::Quit;
    }
    match Line::from_arg_matches(&matches) {
        Ok(line) => Typed::Run(Box::new(line.command)),
        Err(error) => Typed::Wrong(usage_failure(&error, ["msgr"]).into()),
    }
}

/// What of `words` the history keeps: all of them, except that of
/// `create` only the command and its recipients, never the message.
pub fn history_entry(words: &[String]) -> Option<String> {
    let first = command_word(words.first()?);
    let kept: Vec<&str> = match first.as_str() {
        "create" => std::iter::once(first.as_str())
            .chain(
                words[1..]
                    .iter()
                    .map(String::as_str)
                    .find(|word| !word.starts_with('-')),
            )
            .collect(),
        _ => std::iter::once(first.as_str())
            .chain(words[1..].iter().map(String::as_str))
            .collect(),
    };
    shlex::try_join(kept).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(line: &str) -> Typed {
        parse(words(line).unwrap())
    }

    #[test]
    fn command_names_are_taken_in_any_letter_case_with_the_one_shot_arguments() {
        let Typed::Run(command) = typed(r#"CREATE John "Hi there""#) else {
            panic!("create expected")
        };
        let Command::Create(args) = *command else {
            panic!("create expected")
        };
        assert_eq!(args.recipients.0, ["John"]);
        assert_eq!(args.message.as_deref(), Some("Hi there"));
        let Typed::Run(command) = typed("Read --limit 3") else {
            panic!("read expected")
        };
        assert!(matches!(*command, Command::Read(ref args) if args.limit == Some(3)));
        assert!(matches!(typed("Quit"), Typed::Quit));
        assert!(matches!(typed("exit"), Typed::Quit));
        assert!(matches!(typed("   "), Typed::Nothing));
    }

    #[test]
    fn help_lists_the_prompt_commands_only() {
        let Typed::Print(help) = typed("HELP") else {
            panic!("help expected")
        };
        assert!(help.contains("create") && help.contains("quit"), "{help}");
        assert!(
            !help.contains("  serve ") && !help.contains("completions"),
            "{help}"
        );
        assert!(matches!(typed("help create"), Typed::Print(text) if text.contains("RECIPIENT")));
    }

    #[test]
    fn wrong_lines_are_usage_errors_as_on_the_command_line() {
        for line in ["crate John Hi", "read --limit 0", "create John Hello world"] {
            let Typed::Wrong(error) = typed(line) else {
                panic!("{line}: an error expected")
            };
            assert_eq!(
                error.status(),
                crate::cli::error::ExitStatus::Usage,
                "{line}"
            );
        }
        let Typed::Wrong(error) = typed("create John Hello world") else {
            unreachable!()
        };
        assert!(
            error.message().contains("one argument"),
            "{}",
            error.message()
        );
        assert!(words("create John \"open").is_none());
    }

    #[test]
    fn the_history_never_keeps_a_message() {
        let entry = |line: &str| history_entry(&words(line).unwrap());
        assert_eq!(
            entry(r#"Create John "a secret""#).as_deref(),
            Some("create John")
        );
        assert_eq!(
            entry(r#"create --allow-empty "John, Carol" """#).as_deref(),
            Some("create 'John, Carol'")
        );
        assert_eq!(entry("create").as_deref(), Some("create"));
        assert_eq!(entry("read --limit 3").as_deref(), Some("read --limit 3"));
        assert_eq!(entry(""), None);
    }
}
