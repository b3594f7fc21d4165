//! The one place that decides how results and diagnostics look. Commands
//! hand typed records (each implementing [`Render`] and `Serialize`) to
//! [`Output::emit`]; in human mode they are written as text, in JSON mode
//! as one JSON object per line. Diagnostics go to stderr: `msgr: …` lines
//! for people, JSON objects with a `level` (and for errors a stable `code`)
//! in JSON mode. Colour and the progress spinner appear only on a terminal
//! and never when `NO_COLOR` is set.

mod human;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::cli::error::AppError;
use crate::cli::failure::Failure;
use crate::client::directory::{CheckedKey, PinStatus};
use crate::wire::protocol::MAX_TIME_MS;

pub use human::{Human, color_enabled};

/// A command's result, printable for people and serialisable for scripts.
pub trait Render: Serialize {
    /// Write the human form, ending with a newline.
    fn human(&self, out: &mut Human<'_>) -> io::Result<()>;
}

/// How this invocation talks to its caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    json: bool,
    quiet: bool,
}

/// How serious a diagnostic on stderr is.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Notice,
    Warning,
    Error,
}

/// A diagnostic as JSON mode writes it.
#[derive(Serialize)]
struct Diagnostic<'a> {
    level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<u8>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<Option<&'a str>>,
    /// For a refusal for a while (a rate limit): the seconds to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// For a new pin: whose key, and its fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
}

impl Output {
    /// Output in JSON (`json`) or human form; `quiet` drops notices.
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// Switch JSON mode on or off (once settings are resolved).
    pub fn set_json(&mut self, json: bool) {
        self.json = json;
    }

    /// Whether results are JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Whether notices are dropped (`-q`).
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Write one result to stdout and flush it, so that a reader of a pipe
    /// sees each record as soon as it is complete (and in one write, not
    /// line by line).
    pub fn emit(&self, record: &impl Render) -> io::Result<()> {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        if self.json {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        } else {
            let color = human::color_enabled(&stdout);
            record.human(&mut Human::new(&mut out, color))?;
        }
        out.flush()
    }

    /// Something the user may want to know; dropped by `-q`.
    pub fn notice(&self, message: &str) {
        if !self.quiet {
            self.diagnostic(Level::Notice, message, None);
        }
    }

    /// A notice about trust that `-q` does not drop, such as a server's
    /// certificate pinned on first contact.
    pub fn notice_even_if_quiet(&self, message: &str) {
        self.diagnostic(Level::Notice, message, None);
    }

    /// A key was pinned for `user` on sight (by `create` or `read`):
    /// always said, even with `-q`, as it is the moment a substituted key
    /// would slip in. JSON mode adds `user` and `fingerprint` fields to the
    /// notice.
    pub fn pinned_on_sight(&self, user: &str, fingerprint: &str) {
        let message = format!(
            "pinned the key of {user} seen for the first time: {fingerprint}; compare it with the fingerprint `msgr whoami` shows {user}"
        );
        self.pin_notice(&message, user, fingerprint);
    }

    /// Say so if the pin of `checked` was made on sight or followed a
    /// rotation on the way.
    pub fn pin_changes(&self, checked: &CheckedKey) {
        let (name, fingerprint) = (checked.name.as_str(), checked.key.fingerprint());
        match (checked.status, checked.rotated_from()) {
            (PinStatus::New, _) => self.pinned_on_sight(name, &fingerprint),
            (PinStatus::Rotated, Some(from)) => {
                self.key_rotated(name, &from.fingerprint(), &fingerprint);
            }
            _ => {}
        }
    }

    /// The pin of `user` followed their key rotations from the key `from`
    /// to `to`: always said, like [`Output::pinned_on_sight`], with the new
    /// fingerprint in the JSON notice's `fingerprint` field.
    pub fn key_rotated(&self, user: &str, from: &str, to: &str) {
        let message = format!(
            "{user} replaced their key {from} with {to}, signed by both keys; the pin follows it"
        );
        self.pin_notice(&message, user, to);
    }

    /// A notice that the pin of `user` is now the key `fingerprint`.
    fn pin_notice(&self, message: &str, user: &str, fingerprint: &str) {
        self.write_diagnostic(&Diagnostic {
            level: Level::Notice,
            code: None,
            exit_status: None,
            message,
            hint: None,
            retry_after: None,
            user: Some(user),
            fingerprint: Some(fingerprint),
        });
    }

    /// Something went wrong but the command goes on.
    pub fn warning(&self, message: &str) {
        self.diagnostic(Level::Warning, message, None);
    }

    /// Report the failure that ends the command.
    pub fn error(&self, error: &AppError) {
        self.diagnostic(Level::Error, error.message(), Some(error));
    }

    /// A spinner on stderr while `message` is going on, shown only on a
    /// terminal in human mode; it disappears when the value is dropped.
    pub fn spinner(&self, message: &str) -> Spinner {
        if self.json || self.quiet || !io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    fn diagnostic(&self, level: Level, message: &str, error: Option<&AppError>) {
        self.write_diagnostic(&Diagnostic {
            level,
            code: error.map(|e| e.status().code()),
            exit_status: error.map(|e| e.status() as u8),
            message,
            hint: error.map(AppError::hint),
            retry_after: error.and_then(AppError::retry_after),
            user: None,
            fingerprint: None,
        });
    }

    fn write_diagnostic(&self, line: &Diagnostic<'_>) {
        let stderr = io::stderr();
        let mut err = stderr.lock();
        // Nothing sensible is left to do if stderr itself fails.
        let _ = if self.json {
            let mut bytes = serde_json::to_vec(line).expect("diagnostics always serialise");
            bytes.push(b'\n');
            err.write_all(&bytes)
        } else {
            let color = human::color_enabled(&stderr);
            let mut out = Human::new(&mut err, color);
            human_diagnostic(&mut out, line.level, line.message, line.hint.flatten())
        };
    }
}

/// `msgr: MESSAGE[; HINT]`, the prefix coloured by level.
fn human_diagnostic(
    out: &mut Human<'_>,
    level: Level,
    message: &str,
    hint: Option<&str>,
) -> io::Result<()> {
    out.styled(level_style(level), "msgr:")?;
    out.write_all(b" ")?;
    out.untrusted(message)?;
    if let Some(hint) = hint {
        out.write_all(b"; ")?;
        out.untrusted(hint)?;
    }
    out.write_all(b"\n")
}

fn level_style(level: Level) -> anstyle::Style {
    use anstyle::{AnsiColor, Style};
    match level {
        Level::Notice => Style::new().bold(),
        Level::Warning => Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
        Level::Error => Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
    }
}

/// A running spinner; cleared from the terminal on drop.
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Report a command line clap refused (or print the help or version it
/// asked for) and return the exit status. A message given unquoted to
/// `create` gets msgr's own words; any other refusal, clap's. In JSON mode
/// — `--json` among the arguments or `MSGR_JSON` set — the error is a JSON
/// object like every other error, with all that clap would say;
/// `config.toml` is not consulted, as the command line that would locate
/// it was not understood.
pub fn report_usage_error(error: clap::Error) -> ExitCode {
    let json = json_requested();
    let failure = match crate::cli::args::unquoted_message(&error, std::env::args_os()) {
        Some(failure) => failure,
        None if !error.use_stderr() || !json => error.exit(),
        None => command_line_failure(&error.render().to_string()),
    };
    let usage = AppError::from(failure);
    Output::new(json, false).error(&usage);
    usage.status().into()
}

/// The failure for clap's `error` about a line typed in an interactive
/// session (its words `args`, after a first word standing for `msgr`), as
/// [`report_usage_error`] words it for a command line.
pub fn usage_failure<I, T>(error: &clap::Error, args: I) -> Failure
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    crate::cli::args::unquoted_message(error, args)
        .unwrap_or_else(|| command_line_failure(&error.render().to_string()))
}

/// clap's rendering of an error (without colour) as a failure: the error,
/// its list of arguments or values put on its line; the tips (a similar
/// subcommand or argument); the usage.
///
/// ```text
/// error: the following required arguments were not provided:
///   <RECIPIENT[,RECIPIENT...]>
///
/// Usage: msgr create <RECIPIENT[,RECIPIENT...]> [MESSAGE]
///
/// For more information, try '--help'.
/// ```
fn command_line_failure(rendered: &str) -> Failure {
    let mut paragraphs = rendered.split("\n\n").map(str::trim_end);
    let mut lines = paragraphs.next().unwrap_or_default().lines();
    let first = lines.next().unwrap_or_default();
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let details: Vec<&str> = lines.map(str::trim).collect();
    if !details.is_empty() {
        let separator = if message.ends_with(':') { ", " } else { " " };
        message.push(' ');
        message.push_str(&details.join(separator));
    }
    let (mut tips, mut usage) = (Vec::new(), None);
    for paragraph in paragraphs {
        if let Some(text) = paragraph.strip_prefix("Usage: ") {
            let forms: Vec<&str> = text.lines().map(str::trim).collect();
            usage = Some(forms.join(" or "));
        }
        let tip_lines = paragraph.lines().map(str::trim);
        tips.extend(tip_lines.filter_map(|l| l.strip_prefix("tip: ").map(str::to_owned)));
    }
    Failure::CommandLine {
        message,
        tips,
        usage,
    }
}

/// Whether JSON output was asked for on the raw command line or in the
/// environment, for errors found before the command line is parsed.
fn json_requested() -> bool {
    let from_args = std::env::args()
        .skip(1)
        .take_while(|arg| arg != "--")
        .filter_map(|arg| match arg.as_str() {
            "--json" => Some(true),
            other => other.strip_prefix("--json=").map(truthy),
        })
        .last();
    from_args.unwrap_or_else(|| std::env::var("MSGR_JSON").is_ok_and(|v| truthy(&v)))
}

/// The values clap's boolish parser reads as true.
fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "y" | "yes" | "t" | "true" | "on" | "1"
    )
}

/// `items` as a sentence lists them: `a`, `a and b`, `a, b and c`.
pub fn listed<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<S> = items.into_iter().collect();
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

/// RFC 3339 (UTC, whole seconds) rendering of milliseconds since the epoch.
pub fn rfc3339_seconds(millis: u64) -> String {
    humantime::format_rfc3339_seconds(epoch_plus(millis)).to_string()
}

/// RFC 3339 (UTC, milliseconds) rendering of milliseconds since the epoch.
pub fn rfc3339_millis(millis: u64) -> String {
    humantime::format_rfc3339_millis(epoch_plus(millis)).to_string()
}

/// RFC 3339 (UTC, whole seconds) rendering of seconds since the epoch, as
/// the wire gives expiries.
pub fn rfc3339_unix_seconds(seconds: u64) -> String {
    rfc3339_seconds(seconds.saturating_mul(1000))
}

/// The time `millis` after the epoch; a time later than RFC 3339 can write
/// (only a peer's lie) shows as the latest it can.
fn epoch_plus(millis: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(millis.min(MAX_TIME_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_a_sentence() {
        assert_eq!(listed(["a"]), "a");
        assert_eq!(listed(["a", "b"]), "a and b");
        assert_eq!(listed(["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn times_beyond_rfc_3339_show_as_the_latest_it_can_write() {
        assert_eq!(rfc3339_unix_seconds(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_millis(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    /// The words clap uses for `error` on `args`, as a failure.
    fn failure_of(args: &[&str]) -> Failure {
        use clap::Parser;
        let error = crate::cli::args::Cli::try_parse_from(args).unwrap_err();
        command_line_failure(&error.render().to_string())
    }

    #[test]
    fn clap_errors_keep_their_details_tips_and_usage() {
        let Failure::CommandLine {
            message,
            tips,
            usage,
        } = failure_of(&["msgr", "create"])
        else {
            unreachable!()
        };
        assert_eq!(
            message,
            "the following required arguments were not provided: <RECIPIENT[,RECIPIENT...]>"
        );
        assert!(tips.is_empty());
        assert_eq!(
            usage.as_deref(),
            Some("msgr create <RECIPIENT[,RECIPIENT...]> [MESSAGE]")
        );
        let Failure::CommandLine { message, tips, .. } = failure_of(&["msgr", "crate"]) else {
            unreachable!()
        };
        assert_eq!(message, "unrecognized subcommand 'crate'");
        assert_eq!(tips, ["some similar subcommands exist: 'rotate', 'create'"]);
        let Failure::CommandLine { message, .. } =
            failure_of(&["msgr", "--pin-policy", "sometimes", "whoami"])
        else {
            unreachable!()
        };
        assert_eq!(
            message,
            "invalid value 'sometimes' for '--pin-policy <POLICY>' [possible values: first-use, explicit]"
        );
    }

    #[test]
    fn truthy_matches_clap_boolish_values() {
        for yes in ["1", "true", "YES", "on"] {
            assert!(truthy(yes), "{yes}");
        }
        for no in ["0", "false", "no", "off", ""] {
            assert!(!truthy(no), "{no}");
        }
    }
}
