//! The recipient's side of the queue: fetch pages oldest first (waiting
//! for new messages when asked, without polling: the server holds the
//! request until a message is stored), verify and decrypt each message,
//! hand the genuine new ones to a [`Sink`], then remember them as seen and
//! acknowledge them — in that order, so a crash in between redelivers
//! messages that are then recognised and not shown twice.
//!
//! The account stays unlocked while waiting on the server and is locked
//! for each page (re-reading the seen ids), so a long `read --follow` never
//! blocks other commands of the same account, and two readers never show
//! one message twice.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::client::directory::{self, PinStatus};
use crate::client::interrupt::Interrupt;
use crate::client::keyring::{Account, AccountDir, Prekeys, SeenIds, seen_key};
use crate::client::net::{Connection, NetError, unexpected};
use crate::client::session;
use crate::wire::crypto::PrivateKey;
use crate::wire::envelope;
use crate::wire::protocol::{
    ErrorCode, FETCH_PAGE, MAX_PAGE_BYTES, MAX_WAIT_MS, QueuedMessage, Request, Response,
    canonical_name, hex, printable,
};

/// A verified, decrypted message.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The sender's random message id, as lowercase hex.
    pub id: String,
    /// The sender, as the envelope names them.
    pub sender: &'a str,
    /// The recipient, as the envelope names them.
    pub recipient: &'a str,
    /// Send time, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// The plaintext body.
    pub body: &'a [u8],
    /// Whether the sender's key was pinned on reading this message.
    pub sender_pin: PinStatus,
}

/// What a [`Sink`] did with a message.
#[derive(Debug)]
pub enum Delivery {
    /// Written out in full: acknowledge it.
    Written,
    /// Not written out, for the given reason: leave it queued.
    Kept(String),
}

/// Where genuine messages go. An `Err` (such as a closed stdout) stops the
/// read; what was delivered before it is still acknowledged.
pub trait Sink {
    /// Write `message` out.
    fn deliver(&mut self, message: &Opened<'_>) -> AppResult<Delivery>;
}

/// How long to keep reading.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Read what is queued and stop.
    Drain,
    /// If nothing is queued, wait until this instant for a message; then
    /// read what is queued and stop.
    WaitUntil(Instant),
    /// Read and wait for more until interrupted.
    Follow,
}

/// What a read did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Messages written out.
    pub shown: u64,
    /// Messages that failed verification or could not be judged.
    pub problems: u64,
}

/// What became of one queued message.
enum Outcome {
    /// Written out: acknowledge.
    Shown,
    /// Shown before: acknowledge silently.
    Duplicate,
    /// Failed verification or decryption: acknowledge so it does not block
    /// the queue, never show, report.
    Discarded(String),
    /// Cannot be judged now (the sender's key is unavailable): leave it
    /// queued and report.
    Held(String),
    /// Genuine, but the sink left it queued: report.
    Kept(String),
}

/// A connection reading one account's queue; it authenticates in the
/// flight of its first request.
pub struct Inbox<'a> {
    context: &'a ClientContext,
    connection: Connection,
    home: AccountDir,
    identity: PrivateKey,
    /// The user as the server spells the name, once authenticated.
    me: Option<String>,
    /// The id of the last message fetched; the next page starts after it.
    after: u64,
    /// The ids of an acknowledgement whose answer is not read yet.
    unanswered_ack: Option<Vec<u64>>,
}

impl<'a> Inbox<'a> {
    /// Unlock the key and connect.
    pub fn open(context: &'a ClientContext) -> AppResult<Self> {
        let home = context.account_dir()?;
        let identity = context.identity(&home)?;
        let connection = context.connect()?;
        Ok(Self {
            context,
            connection,
            home,
            identity,
            me: None,
            after: 0,
            unanswered_ack: None,
        })
    }

    /// Read in `mode`, at most `limit` messages, into `sink`.
    pub fn read(
        &mut self,
        mode: Mode,
        limit: Option<u32>,
        sink: &mut dyn Sink,
    ) -> AppResult<Tally> {
        let interrupt = match mode {
            Mode::Drain => None,
            Mode::WaitUntil(_) | Mode::Follow => Some(
                self.connection
                    .canceller()
                    .and_then(Interrupt::install)
                    .map_err(|e| AppError::local(format!("cannot catch signals: {e}")))?,
            ),
        };
        let mut tally = Tally::default();
        loop {
            let room = match limit {
                Some(limit) => u64::from(limit).saturating_sub(tally.shown),
                None => u64::from(FETCH_PAGE),
            };
            if room == 0 {
                break;
            }
            // Outside the interruptible wait, so a stop lets it finish.
            self.settle_ack()?;
            let first_pending = tally.shown == 0 && tally.problems == 0;
            let wait = wait_for(mode, first_pending);
            let page_size = room.min(u64::from(FETCH_PAGE)) as u32;
            let page = match (&interrupt, wait.is_zero()) {
                (Some(interrupt), false) => {
                    match interrupt.during(|| self.fetch(page_size, wait)) {
                        Some(page) => page?,
                        None => break,
                    }
                }
                _ => self.fetch(page_size, wait)?,
            };
            if page.is_empty() {
                if wait.is_zero() {
                    break;
                }
                continue;
            }
            self.after = page.last().expect("the page is not empty").id;
            let max_envelope = self.connection.max_envelope()?;
            let drained = wait.is_zero() && page_was_last(&page, page_size, max_envelope);
            let stopped = self.handle_page(&page, sink, &mut tally, interrupt.as_ref())?;
            if stopped || drained {
                break;
            }
        }
        Ok(tally)
    }

    /// One page of messages, waiting up to `wait` for the first.
    fn fetch(&mut self, limit: u32, wait: Duration) -> AppResult<Vec<QueuedMessage>> {
        let wait_ms = wait.as_millis() as u64;
        debug!(after = self.after, limit, wait_ms, "fetch");
        let request = Request::Fetch {
            after: self.after,
            limit,
            wait_ms,
        };
        match self.call(&request, wait)? {
            Response::Messages { messages } => Ok(messages),
            other => Err(unexpected(&other).into()),
        }
    }

    /// Send `request`, which the server may hold for up to `held`; the
    /// first request carries the authentication in its flight. If the
    /// session expired meanwhile (a long `--follow`), log in again on this
    /// connection and send it once more.
    fn call(&mut self, request: &Request, held: Duration) -> AppResult<Response> {
        let (user, identity) = (&self.context.user, &self.identity);
        if self.me.is_none() {
            let (me, answer) = session::authenticate_then(
                &mut self.connection,
                &self.home,
                user,
                identity,
                request,
                held,
            )?;
            self.me = Some(me);
            return Ok(answer?);
        }
        match self.connection.request_held(request, held) {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => self.again_after_login(request, held),
            other => Ok(other?),
        }
    }

    /// Log in again on this connection (the session expired) and send
    /// `request` once more.
    fn again_after_login(&mut self, request: &Request, held: Duration) -> AppResult<Response> {
        debug!("the session expired; logging in again");
        let (user, identity) = (&self.context.user, &self.identity);
        session::authenticate(&mut self.connection, &self.home, user, identity)?;
        Ok(self.connection.request_held(request, held)?)
    }

    /// Acknowledge `ids` without waiting: the answer is read before the
    /// next request, or never if the read ends first. An acknowledgement
    /// that is lost with the connection costs nothing: the ids are
    /// remembered as seen, so the next read acknowledges them again
    /// without showing them.
    fn acknowledge(&mut self, ids: Vec<u64>) -> AppResult<()> {
        self.connection
            .write_request(&Request::Ack { ids: ids.clone() })?;
        self.connection.flush()?;
        self.unanswered_ack = Some(ids);
        Ok(())
    }

    /// Read the answer to the acknowledgement sent last, if unread; every
    /// later request waits for this. If the session expired meanwhile, log
    /// in again and acknowledge once more.
    fn settle_ack(&mut self) -> AppResult<()> {
        let Some(ids) = self.unanswered_ack.take() else {
            return Ok(());
        };
        let answer = match self.connection.read_response() {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => self.again_after_login(&Request::Ack { ids }, Duration::ZERO)?,
            other => other?,
        };
        match answer {
            Response::Acked { .. } => Ok(()),
            other => Err(unexpected(&other).into()),
        }
    }

    /// Judge and deliver a page under the account lock, then remember and
    /// acknowledge what was handled. Returns whether a stop was requested.
    fn handle_page(
        &mut self,
        page: &[QueuedMessage],
        sink: &mut dyn Sink,
        tally: &mut Tally,
        interrupt: Option<&Interrupt>,
    ) -> AppResult<bool> {
        let account = self.home.lock()?;
        let mut seen = account.load_seen()?;
        let prekeys = account.load_prekeys()?;
        let mut acknowledge = Vec::with_capacity(page.len());
        let mut failure = None;
        let mut stopped = false;
        for message in page {
            match self.judge(&account, &prekeys, &mut seen, message, sink) {
                Ok(Outcome::Shown) => {
                    tally.shown += 1;
                    acknowledge.push(message.id);
                }
                Ok(Outcome::Duplicate) => acknowledge.push(message.id),
                Ok(Outcome::Discarded(reason)) => {
                    tally.problems += 1;
                    self.context
                        .output
                        .warning(&format!("{reason}; it was discarded"));
                    acknowledge.push(message.id);
                }
                Ok(Outcome::Held(reason)) => {
                    tally.problems += 1;
                    self.context
                        .output
                        .warning(&format!("{reason}; it stays queued"));
                }
                Ok(Outcome::Kept(reason)) => self.context.output.warning(&reason),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            if interrupt.is_some_and(Interrupt::requested) {
                stopped = true;
                break;
            }
        }
        if !acknowledge.is_empty() {
            account.save_seen(&seen)?;
            self.acknowledge(acknowledge)?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(stopped),
        }
    }

    /// Verify and decrypt one message and, if genuine and new, deliver it.
    /// Only a failure of the sink is an `Err`.
    fn judge(
        &mut self,
        account: &Account,
        prekeys: &Prekeys,
        seen: &mut SeenIds,
        message: &QueuedMessage,
        sink: &mut dyn Sink,
    ) -> AppResult<Outcome> {
        let parsed = match envelope::parse(&message.envelope.0) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Ok(Outcome::Discarded(format!(
                    "message {} is unreadable ({e})",
                    message.id
                )));
            }
        };
        let header = &parsed.header;
        let sender = header.sender.as_str();
        if canonical_name(sender) != canonical_name(&message.sender) {
            return Ok(Outcome::Discarded(format!(
                "message {} claims to be from {sender} but the server says {:?} sent it",
                message.id,
                printable(&message.sender)
            )));
        }
        let id = hex(&header.message_id);
        let key = seen_key(sender, &id);
        if seen.contains(&key) {
            return Ok(Outcome::Duplicate);
        }
        let policy = self.context.pin_policy();
        let pinned = directory::pinned_or_fetch(&mut self.connection, account, sender, policy);
        let (sender_key, sender_pin) = match pinned {
            Ok((key, status)) => {
                if status == PinStatus::New {
                    self.context
                        .output
                        .pinned_on_sight(sender, &key.fingerprint());
                }
                (key, status)
            }
            Err(e) => {
                return Ok(Outcome::Held(format!(
                    "message {} from {sender}: {e}",
                    message.id
                )));
            }
        };
        let me = self
            .me
            .as_deref()
            .expect("a page is fetched after authenticating");
        let body = match parsed.open(me, &sender_key, |id| prekeys.secret(id)) {
            Ok(body) => body,
            Err(e) => {
                return Ok(Outcome::Discarded(format!(
                    "message {} from {sender} failed verification: {e}",
                    message.id
                )));
            }
        };
        let opened = Opened {
            id,
            sender,
            recipient: &header.recipient,
            sent_at_ms: header.sent_at_ms,
            body: &body,
            sender_pin,
        };
        match sink.deliver(&opened)? {
            Delivery::Written => {
                seen.insert(key);
                Ok(Outcome::Shown)
            }
            Delivery::Kept(reason) => Ok(Outcome::Kept(reason)),
        }
    }
}

/// Whether `page` held everything queued when it was fetched: it has fewer
/// messages than asked for, and so few bytes that the server's page size
/// limit cannot have cut it short. Saves asking for an empty page at the
/// end of every read.
fn page_was_last(page: &[QueuedMessage], asked: u32, max_envelope: u64) -> bool {
    let bytes: u64 = page.iter().map(|m| m.envelope.0.len() as u64).sum();
    page.len() < asked as usize && bytes.saturating_add(max_envelope) <= MAX_PAGE_BYTES as u64
}

/// How long the next fetch may wait on the server.
fn wait_for(mode: Mode, first_pending: bool) -> Duration {
    let most = Duration::from_millis(MAX_WAIT_MS);
    match mode {
        Mode::Drain => Duration::ZERO,
        Mode::Follow => most,
        Mode::WaitUntil(deadline) if first_pending => {
            deadline.saturating_duration_since(Instant::now()).min(most)
        }
        Mode::WaitUntil(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_capped_and_end_with_the_first_message() {
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(wait_for(Mode::Drain, true), Duration::ZERO);
        assert_eq!(
            wait_for(Mode::Follow, false),
            Duration::from_millis(MAX_WAIT_MS)
        );
        assert_eq!(
            wait_for(Mode::WaitUntil(far), true),
            Duration::from_millis(MAX_WAIT_MS)
        );
        assert_eq!(wait_for(Mode::WaitUntil(far), false), Duration::ZERO);
        let past = Instant::now();
        assert_eq!(wait_for(Mode::WaitUntil(past), true), Duration::ZERO);
    }
}
