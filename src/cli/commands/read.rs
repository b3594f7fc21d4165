//! `msgr read`: print queued messages oldest first — all of them, or at
//! most `--limit`, after waiting up to `--wait` seconds for the first, or
//! on and on with `--follow` — through the [`Inbox`]. Bodies are printed as
//! text; a body that is not UTF-8 is shown as base64 in JSON, and in
//! human mode saved to the account's `received/` folder (a terminal must
//! not get raw bytes, and a script must not find it stuck in the queue).
//! With `--out-dir` every body is saved to its own file named by sender
//! and message id. A saved body's path is printed instead of it.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::cli::args::ReadArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Output, Render, rfc3339_millis, rfc3339_seconds};
use crate::client::directory::{CheckedKey, PinStatus};
use crate::client::error::ClientError;
use crate::client::inbox::{
    About, Inbox, Kept, Mode, Opened, Problem, Reconnect, Sink, StaleLimit, Tally,
};
use crate::client::keyring::{AccountDir, MOST_REJECTED, MOST_REJECTED_BYTES};
use crate::client::net::seconds;
use crate::files::{FileError, create_private_dir, write_unique};
use crate::wire::protocol::MAX_MESSAGE_AGE;

/// Read, print and acknowledge messages as the arguments say.
pub fn run(context: &ClientContext, args: &ReadArgs) -> AppResult<()> {
    let mode = match (args.follow, args.wait) {
        (true, _) => Mode::Follow,
        (false, Some(seconds)) => Mode::WaitUntil(Instant::now() + Duration::from_secs(seconds)),
        (false, None) => Mode::Drain,
    };
    // Found first: an account this keyring does not hold gets no --out-dir.
    let home = context.account_dir()?;
    if let Some(dir) = &args.out_dir {
        create_private_dir(dir)?;
        check_out_dir(dir, &home)?;
    }
    let mut printer = Printer {
        output: &context.output,
        out_dir: args.out_dir.as_deref(),
        received: home.dir().join(RECEIVED),
    };
    let identity = context.identity(&home)?;
    let mut lease = context.connect()?;
    let connection = lease.take();
    let reconnect = Reconnect::new(
        context.dialer().clone(),
        Duration::from_secs(args.reconnect_for),
    );
    let mut inbox = Inbox::new(
        connection,
        home,
        identity,
        &context.user,
        context.pin_policy(),
    )
    .reconnecting(reconnect);
    let mut tally = match args.retry_rejected {
        true => inbox.retry_rejected(&mut printer)?,
        false => Tally::default(),
    };
    tally += inbox.read(mode, args.limit, &mut printer)?;
    lease.give_back(inbox.into_connection());
    if tally.problems > 0 {
        return Err(Failure::NotVerified(tally.problems).into());
    }
    if tally.shown == 0 && !context.output.is_json() && std::io::stdout().is_terminal() {
        context.output.notice("no new messages");
    }
    Ok(())
}

/// Where, in the account's folder, a binary body goes that a terminal
/// should not show (human output without `--out-dir`).
const RECEIVED: &str = "received";

/// The [`Sink`] of `read`: stdout, and files in `--out-dir` (or, for a
/// binary body in human output, in the account's `received/`).
struct Printer<'a> {
    output: &'a Output,
    out_dir: Option<&'a Path>,
    received: PathBuf,
}

impl Sink for Printer<'_> {
    type Error = AppError;

    fn deliver(&mut self, message: &Opened<'_>) -> AppResult<()> {
        let save = |dir: &Path| write_unique(dir, &saved_name(message), message.body);
        let body = match self.out_dir {
            Some(dir) => Body::Saved(save(dir)?),
            None => match std::str::from_utf8(message.body) {
                Ok(text) => Body::Text(text),
                Err(_) if self.output.is_json() => Body::Base64(STANDARD.encode(message.body)),
                Err(_) => {
                    create_private_dir(&self.received)?;
                    Body::Saved(save(&self.received)?)
                }
            },
        };
        let record = MessageRecord {
            id: &message.id,
            from: message.sender.as_str(),
            to: message.recipient.as_str(),
            sent_at: rfc3339_millis(message.sent_at_ms),
            sent_at_ms: message.sent_at_ms,
            sender_pin: match message.sender_pin {
                PinStatus::New => "new",
                PinStatus::Unchanged | PinStatus::Replaced | PinStatus::Rotated => "pinned",
            },
            body,
        };
        self.output.emit(&record).map_err(AppError::stdout)
    }

    fn pinned_on_sight(&mut self, user: &str, fingerprint: &str) {
        self.output.pinned_on_sight(user, fingerprint);
    }

    fn key_rotated(&mut self, checked: &CheckedKey) {
        self.output.pin_changes(checked);
    }

    fn connection_lost(&mut self, error: &ClientError, within: Duration) {
        self.output.warning(&format!(
            "lost the connection ({error}); trying to connect again for up to {}",
            seconds(within)
        ));
    }

    fn reconnected(&mut self, server: &str) {
        self.output
            .notice(&format!("connected again to {server}; following on"));
    }

    fn not_shown(&mut self, problem: Problem) {
        let warning = match problem {
            Problem::Unreadable {
                id,
                recorded,
                error,
            } => format!(
                "a message the server says {recorded:?} sent (its id {id}) is unreadable ({error}); it was discarded"
            ),
            Problem::SenderMismatch { about, recorded } => format!(
                "message {} sent {} claims to be from {} but the server says {recorded:?} sent it; it was discarded",
                about.message_id,
                rfc3339_seconds(about.sent_at_ms),
                about.sender
            ),
            Problem::Failed { about, error, kept } => {
                let what = match kept {
                    Kept::Saved(path) => format!(
                        "it was saved as {}; once the cause is fixed, `msgr read --retry-rejected` opens it again",
                        path.display()
                    ),
                    Kept::StillIn(path) => format!("it stays in {}", path.display()),
                    Kept::Discarded => format!(
                        "it was discarded, as the rejected messages kept take all the room they may ({MOST_REJECTED} files, {} MiB)",
                        MOST_REJECTED_BYTES / (1024 * 1024)
                    ),
                };
                format!("{} failed verification: {error}; {what}", described(&about))
            }
            Problem::Stale { about, limit } => {
                let before = match limit {
                    StaleLimit::MaxAge => {
                        format!("more than {} days ago", MAX_MESSAGE_AGE / (24 * 60 * 60))
                    }
                    StaleLimit::Keyring => "before this keyring was made".to_owned(),
                };
                format!("{}, {before}; it was discarded", described(&about))
            }
            Problem::Held { about, error } => {
                let error = AppError::from(error);
                format!("{}: {error}; it stays queued", described(&about))
            }
        };
        self.output.warning(&warning);
    }
}

/// "message ID from SENDER sent TIME", as the envelope says.
fn described(about: &About) -> String {
    format!(
        "message {} from {} sent {}",
        about.message_id,
        about.sender,
        rfc3339_seconds(about.sent_at_ms)
    )
}

/// The file a body is saved to: the sender (lower case) and the message
/// id. Only the sender can sign another message with the same sender and
/// id, so comparing with a file of that name (below) tells the server
/// nothing it could not already know.
fn saved_name(message: &Opened<'_>) -> String {
    format!("{}-{}", message.sender.canonical(), message.id)
}

/// Refuse an out-dir that others may write to (they could plant files or
/// links under the names messages are saved as) or that belongs to another
/// user than the one whose keyring is in `home`.
fn check_out_dir(dir: &Path, home: &AccountDir) -> AppResult<()> {
    let metadata = |path: &Path| {
        std::fs::metadata(path).map_err(|source| FileError {
            path: path.to_owned(),
            source,
        })
    };
    let (out, own) = (metadata(dir)?, metadata(home.dir())?);
    let why = if out.uid() != own.uid() {
        "belongs to another user"
    } else if out.mode() & 0o022 != 0 {
        "is writable by others"
    } else {
        return Ok(());
    };
    Err(Failure::OutDirNotPrivate {
        dir: dir.to_owned(),
        why,
    }
    .into())
}

/// One message as `read` prints it.
#[derive(Serialize)]
struct MessageRecord<'a> {
    id: &'a str,
    from: &'a str,
    to: &'a str,
    sent_at: String,
    #[serde(skip)]
    sent_at_ms: u64,
    /// `new` if the sender's key was pinned on reading this message,
    /// `pinned` if it was pinned before.
    sender_pin: &'static str,
    #[serde(flatten)]
    body: Body<'a>,
}

/// The body, or where it went.
#[derive(Serialize)]
enum Body<'a> {
    /// A UTF-8 body.
    #[serde(rename = "body")]
    Text(&'a str),
    /// Any other body, base64 (JSON only).
    #[serde(rename = "body_base64")]
    Base64(String),
    /// The file the body was saved to.
    #[serde(rename = "path")]
    Saved(PathBuf),
}

impl Render for MessageRecord<'_> {
    /// Mail-like headers, a blank line, the body indented, a blank line.
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        out.label("From:")?;
        out.write_all(b" ")?;
        out.untrusted(self.from)?;
        out.write_all(b"\n")?;
        out.label("Date:")?;
        writeln!(out, " {}", rfc3339_seconds(self.sent_at_ms))?;
        match &self.body {
            Body::Text(text) => {
                out.write_all(b"\n")?;
                out.body(text)?;
            }
            Body::Base64(encoded) => writeln!(out, "\n{encoded}")?,
            Body::Saved(path) => {
                out.label("Saved:")?;
                writeln!(out, " {}", path.display())?;
            }
        }
        out.write_all(b"\n")
    }
}
