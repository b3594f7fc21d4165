//! `msgr read`: fetch queued messages oldest first, verify and decrypt
//! each, print it, and acknowledge only what was written out. Messages
//! already shown (a redelivery after a crash, or a replay) are acknowledged
//! without being shown again.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};

use crate::context::ClientContext;
use crate::crypto::PrivateKey;
use crate::directory;
use crate::envelope;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::keyring::{Account, seen_key};
use crate::net::{Connection, unexpected};
use crate::protocol::{FETCH_PAGE, QueuedMessage, Request, Response, canonical_name};
use crate::session;

use super::{format_time, require_identity};

/// What became of one queued message.
enum Outcome {
    /// Verified, decrypted and written out: acknowledge.
    Shown,
    /// Shown before: acknowledge silently.
    Duplicate,
    /// Failed verification or decryption: acknowledge so it does not block
    /// the queue, never show, report.
    Discarded(String),
    /// Cannot be judged now (the sender's key is unavailable): leave it
    /// queued and report.
    Held(String),
}

/// Everything one `read` needs while it works through the queue.
struct Reader<'a> {
    connection: Connection,
    account: &'a Account,
    identity: PrivateKey,
    me: String,
    seen: HashSet<String>,
}

/// Read, print and acknowledge every queued message.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account()?;
    let identity = require_identity(context, &account)?;
    let mut connection = context.connect()?;
    let me = session::authenticate(&mut connection, &account, &context.user, &identity)?;
    let mut reader = Reader {
        connection,
        account: &account,
        identity,
        me,
        seen: account.load_seen()?,
    };
    let mut out = std::io::stdout().lock();
    let (mut shown, mut problems) = (0usize, 0usize);
    let mut after = 0;
    loop {
        let page = reader.fetch(after)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut acknowledge = Vec::with_capacity(page.len());
        let mut write_error = None;
        for message in &page {
            match reader.deliver(message, &mut out) {
                Ok(Outcome::Shown) => {
                    shown += 1;
                    acknowledge.push(message.id);
                }
                Ok(Outcome::Duplicate) => acknowledge.push(message.id),
                Ok(Outcome::Discarded(reason)) => {
                    problems += 1;
                    eprintln!("msgr: {reason}; it was discarded");
                    acknowledge.push(message.id);
                }
                Ok(Outcome::Held(reason)) => {
                    problems += 1;
                    eprintln!("msgr: {reason}; it stays queued");
                }
                Err(error) => {
                    write_error = Some(error);
                    break;
                }
            }
        }
        reader.finish_page(acknowledge)?;
        if let Some(error) = write_error {
            return Err(error);
        }
    }
    if problems > 0 {
        return Err(AppError::new(
            ExitStatus::Trust,
            format!("{problems} message(s) could not be verified and were not shown"),
        )
        .hint("ask the senders to check their keys, or check your pins with `msgr key NAME`"));
    }
    if shown == 0 && std::io::stdout().is_terminal() {
        eprintln!("msgr: no new messages");
    }
    Ok(())
}

impl Reader<'_> {
    fn fetch(&mut self, after: u64) -> AppResult<Vec<QueuedMessage>> {
        let response = self.connection.request(&Request::Fetch {
            after,
            limit: FETCH_PAGE,
            wait_ms: 0,
        })?;
        match response {
            Response::Messages { messages } => Ok(messages),
            other => Err(unexpected(&other).into()),
        }
    }

    /// Judge one message and, if genuine and new, write it to `out`. Only a
    /// failure to write is an `Err`.
    fn deliver(&mut self, message: &QueuedMessage, out: &mut impl Write) -> AppResult<Outcome> {
        let parsed = match envelope::parse(&message.envelope.0) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Ok(Outcome::Discarded(format!(
                    "message {} is unreadable ({e})",
                    message.id
                )));
            }
        };
        let sender = parsed.header.sender.clone();
        if canonical_name(&sender) != canonical_name(&message.sender) {
            return Ok(Outcome::Discarded(format!(
                "message {} claims to be from {sender} but was sent by {}",
                message.id, message.sender
            )));
        }
        let key = seen_key(&sender, &parsed.header.message_id);
        if self.seen.contains(&key) {
            return Ok(Outcome::Duplicate);
        }
        let sender_key =
            match directory::pinned_or_fetch(&mut self.connection, self.account, &sender) {
                Ok(sender_key) => sender_key,
                Err(e) => {
                    return Ok(Outcome::Held(format!(
                        "message {} from {sender}: {e}",
                        message.id
                    )));
                }
            };
        let body = match parsed.open(&self.me, &self.identity, &sender_key) {
            Ok(body) => body,
            Err(e) => {
                return Ok(Outcome::Discarded(format!(
                    "message {} from {sender} failed verification: {e}",
                    message.id
                )));
            }
        };
        write_message(out, &sender, parsed.header.sent_at_ms, &body)
            .map_err(|e| AppError::local(format!("cannot write to standard output: {e}")))?;
        self.seen.insert(key);
        Ok(Outcome::Shown)
    }

    /// Remember what was shown, then acknowledge the page's handled
    /// messages, in that order: a crash in between redelivers messages that
    /// are then recognised as already shown.
    fn finish_page(&mut self, acknowledge: Vec<u64>) -> AppResult<()> {
        if acknowledge.is_empty() {
            return Ok(());
        }
        self.account.save_seen(&self.seen)?;
        match self
            .connection
            .request(&Request::Ack { ids: acknowledge })?
        {
            Response::Acked { .. } => Ok(()),
            other => Err(unexpected(&other).into()),
        }
    }
}

/// One message as shown to the user: headers, a blank line, the body.
fn write_message(
    out: &mut impl Write,
    sender: &str,
    sent_at_ms: u64,
    body: &[u8],
) -> std::io::Result<()> {
    write!(out, "From: {sender}\nDate: {}\n\n", format_time(sent_at_ms))?;
    out.write_all(body)?;
    if !body.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    out.flush()
}
