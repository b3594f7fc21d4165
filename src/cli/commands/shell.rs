//! `msgr shell` (and `msgr` without a command, on a terminal): commands
//! typed at a prompt, each run exactly as on the command line
//! ([`super::run_client`]) on the session's one connection, which the
//! context keeps between them ([`ClientContext::keep_connection`]).
//! `create` alone asks for the recipient and the message, `key` alone for
//! the name, as the teaching client did. Line editing, history (in the
//! config directory, mode 0600, never a message body) and completion of
//! command names and pinned contacts come from rustyline.
//!
//! While the prompt waits, messages that arrive are announced above it
//! (the `watch` module), on the same connection.
//!
//! A failing command is reported as on the command line and the session
//! goes on; one whose connection broke leaves the next command to connect
//! again. The session ends with `quit`, `exit` or Ctrl-D (status 0); Ctrl-C
//! abandons the line, and during a command does not end the session. Two
//! failures end it with their own status: a command that finds the
//! server no longer presenting its pinned certificate (6, as every later
//! command would be refused the same way), and the terminal failing (1).

mod line;
mod watch;

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, Helper};

use crate::cli::args::Command;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult, ExitStatus};
use crate::cli::failure::Failure;
use crate::client::inbox::Reconnect;
use line::Typed;
use watch::{Announced, Watch};

/// The history file, in the config directory.
const HISTORY: &str = "history";
/// Most lines the history keeps.
const HISTORY_LINES: usize = 1000;
/// The prompt for commands.
const PROMPT: &str = "msgr> ";
/// How long the session, waiting at its prompt, tries to connect again
/// after losing its connection: as long as `read --follow` by default.
const RECONNECT_FOR: Duration = Duration::from_secs(300);

/// Run the session until the user leaves.
pub fn run(context: &ClientContext) -> AppResult<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Failure::NoTerminal.into());
    }
    // At once: an unreachable server, or a first pin, is told before the
    // first prompt.
    drop(context.connect()?);
    let _sigint = CaughtInterrupt::install()?;
    let mut session = Session::new(context)?;
    context.output.notice(&format!(
        "connected to {} as {}; type help for the commands, quit to leave",
        context.server, context.user
    ));
    session.serve()
}

/// The prompt and what it needs.
struct Session<'c> {
    context: &'c ClientContext,
    editor: Editor<Prompting<'c>, FileHistory>,
    /// The history file, if the config directory exists (only `register`
    /// makes it).
    history: PathBuf,
    /// The thread watching the queue while the prompt waits, if any.
    watch: Option<Watch>,
    /// What was announced, while nothing watches.
    announced: Announced,
}

impl<'c> Session<'c> {
    fn new(context: &'c ClientContext) -> AppResult<Self> {
        let config = Config::builder()
            .auto_add_history(false)
            .max_history_size(HISTORY_LINES)
            .map_err(terminal)?
            .history_ignore_dups(true)
            .map_err(terminal)?
            .build();
        let mut editor = Editor::with_config(config).map_err(terminal)?;
        editor.set_helper(Some(Prompting {
            context,
            asking: Cell::new(Asking::Command),
        }));
        let history = context.keyring.dir().join(HISTORY);
        if history.exists() {
            // A history that cannot be read is only a convenience lost.
            let _ = editor.load_history(&history);
        }
        Ok(Self {
            context,
            editor,
            history,
            watch: None,
            announced: Announced::default(),
        })
    }

    /// Read and run lines until the user leaves.
    fn serve(&mut self) -> AppResult<()> {
        loop {
            let Some(line) = self.ask(Asking::Command, PROMPT)? else {
                return Ok(());
            };
            let Some(mut words) = line::words(&line) else {
                let error: AppError = Failure::CommandLine {
                    message: "a quote is not closed".into(),
                    tips: Vec::new(),
                    usage: None,
                }
                .into();
                self.context.output.error(&error);
                continue;
            };
            self.remember(&words);
            if !self.dialogue(&mut words)? {
                continue;
            }
            match line::parse(words) {
                Typed::Nothing => {}
                Typed::Quit => return Ok(()),
                Typed::Print(text) => {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                }
                Typed::Wrong(error) => self.context.output.error(&error),
                Typed::Run(command) => self.run(*command)?,
            }
        }
    }

    /// Run `command` as on the command line; its failure is reported and
    /// the session goes on, unless it is one the session cannot recover
    /// from ([`AppError::ends_session`]): then it ends the session.
    fn run(&mut self, mut command: Command) -> AppResult<()> {
        if let Command::Create(args) = &mut command
            && args.message.is_none()
        {
            match self.ask(Asking::Text, "Message: ")? {
                Some(message) => args.message = Some(message),
                None => return Ok(()),
            }
        }
        self.stop_watching();
        if let Err(error) = super::run_client(self.context, &command) {
            if error.ends_session() {
                // Reported, with its status, as the session's own end.
                return Err(error);
            }
            self.context.output.error(&error);
            if error.status() == ExitStatus::Connection {
                self.context.drop_connection();
            }
        }
        Ok(())
    }

    /// The teaching client's dialogue: `create` alone asks for the
    /// recipients, `key` alone for the name (the message is asked for
    /// once the command has parsed, see [`Session::run`]). `false` if the
    /// user abandoned it.
    fn dialogue(&mut self, words: &mut Vec<String>) -> AppResult<bool> {
        let [only] = &words[..] else {
            return Ok(true);
        };
        let question = match line::command_word(only).as_str() {
            "create" => "To: ",
            "key" => "Name: ",
            _ => return Ok(true),
        };
        match self.ask(Asking::Name, question)? {
            Some(answer) => {
                words.push(answer.trim().to_owned());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One line typed after `prompt`; `None` if the user left (Ctrl-D) or,
    /// outside the command prompt, abandoned the question (Ctrl-C).
    fn ask(&mut self, asking: Asking, prompt: &str) -> AppResult<Option<String>> {
        if let Some(helper) = self.editor.helper_mut() {
            helper.asking.set(asking);
        }
        if asking == Asking::Command {
            self.start_watching();
        }
        loop {
            match self.editor.readline(prompt) {
                Ok(line) => return Ok(Some(line)),
                Err(ReadlineError::Interrupted) if asking == Asking::Command => {}
                Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof)
                    if asking != Asking::Command =>
                {
                    return Ok(None);
                }
                Err(ReadlineError::Eof) => return Ok(None),
                Err(error) => return Err(terminal(error)),
            }
        }
    }

    /// Watch the queue on the kept connection while the prompt waits, if
    /// it is not watched already and the stored session is valid (the
    /// watch never logs in: after `logout` nothing is watched).
    fn start_watching(&mut self) {
        if self.watch.is_some() {
            return;
        }
        let token = self
            .context
            .account_dir()
            .ok()
            .and_then(|account| crate::client::session::stored_token(&account).ok())
            .flatten();
        let Some(token) = token else {
            return;
        };
        let Ok(printer) = self.editor.create_external_printer() else {
            return;
        };
        let Some(connection) = self.context.take_kept() else {
            return;
        };
        let announced = std::mem::take(&mut self.announced);
        // A thread that cannot start loses the connection: the next
        // command connects again.
        self.watch = Watch::start(
            connection,
            self.context.user.clone(),
            token,
            announced,
            Box::new(printer),
            Reconnect::new(self.context.dialer().clone(), RECONNECT_FOR),
            self.context.output.is_quiet(),
        )
        .ok();
    }

    /// Stop watching, and keep the connection for the command (if it did
    /// not break meanwhile: then the command connects again).
    fn stop_watching(&mut self) {
        if let Some(watch) = self.watch.take() {
            let (connection, announced) = watch.stop();
            self.announced = announced;
            if let Some(connection) = connection {
                self.context.keep(connection);
            }
        }
    }

    /// Add what of `words` the history may keep, and keep the history file
    /// up to date (if the config directory exists).
    fn remember(&mut self, words: &[String]) {
        let Some(entry) = line::history_entry(words) else {
            return;
        };
        let _ = self.editor.add_history_entry(entry);
        if self.context.keyring.dir().is_dir() {
            // rustyline writes it mode 0600.
            let _ = self.editor.append_history(&self.history);
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.stop_watching();
    }
}

/// The failure of the terminal `error`.
fn terminal(error: ReadlineError) -> AppError {
    Failure::Terminal(error.to_string()).into()
}

/// What the line being typed answers, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asking {
    /// A command.
    Command,
    /// A user name (`create` and `key` asking).
    Name,
    /// A message: nothing to complete.
    Text,
}

/// Completion of command names and pinned contacts' names.
struct Prompting<'c> {
    context: &'c ClientContext,
    asking: Cell<Asking>,
}

impl Prompting<'_> {
    /// The names of the pinned contacts (none if the account has none
    /// here yet).
    fn contacts(&self) -> Vec<String> {
        let Ok(account) = self.context.account_dir() else {
            return Vec::new();
        };
        account
            .all_contacts()
            .map(|all| all.into_iter().map(|c| c.name.to_string()).collect())
            .unwrap_or_default()
    }
}

/// `names` that start with `typed` in any letter case, as completions.
fn candidates(names: Vec<String>, typed: &str) -> Vec<Pair> {
    let typed = typed.to_ascii_lowercase();
    names
        .into_iter()
        .filter(|name| name.to_ascii_lowercase().starts_with(&typed))
        .map(|name| Pair {
            display: name.clone(),
            replacement: name,
        })
        .collect()
}

impl Completer for Prompting<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // A name list is completed after its last comma.
        let name_start = |from: usize| {
            before[from..]
                .rfind([',', ' '])
                .map_or(from, |at| from + at + 1)
        };
        match self.asking.get() {
            Asking::Text => Ok((pos, Vec::new())),
            Asking::Name => {
                let start = name_start(0);
                Ok((start, candidates(self.contacts(), &before[start..])))
            }
            Asking::Command => {
                let Some(space) = before.find(' ') else {
                    return Ok((0, candidates(line::command_names(), before)));
                };
                let command = line::command_word(&before[..space]);
                let rest = before[space..].trim_start();
                let in_second_word = !rest.contains(' ') || command == "create";
                if !matches!(command.as_str(), "create" | "key")
                    || !in_second_word
                    || rest.contains(' ')
                {
                    return Ok((pos, Vec::new()));
                }
                let start = name_start(space);
                Ok((start, candidates(self.contacts(), &before[start..])))
            }
        }
    }
}

impl Hinter for Prompting<'_> {
    type Hint = String;
}

impl Highlighter for Prompting<'_> {}

impl Validator for Prompting<'_> {}

impl Helper for Prompting<'_> {}

/// SIGINT caught (and ignored) for as long as this lives, so that Ctrl-C
/// during a command does not end the session; at the prompt the line
/// editor reads Ctrl-C as a key. `read --wait` and `--follow` catch it
/// too, and stop.
struct CaughtInterrupt(signal_hook::SigId);

impl CaughtInterrupt {
    fn install() -> AppResult<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag)
            .map(Self)
            .map_err(|error| Failure::Terminal(error.to_string()).into())
    }
}

impl Drop for CaughtInterrupt {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.0);
    }
}
