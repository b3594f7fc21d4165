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
//! one message twice. What was not shown, and why, goes to the sink as a
//! [`Problem`]; how it reads is the sink's affair.

mod reconnect;
mod sink;

pub use reconnect::{Reconnect, Reconnecting, is_transient};
pub use sink::{About, Kept, Opened, Problem, Sink, StaleLimit};

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::client::directory::{self, PinPolicy, PinStatus};
use crate::client::error::{ClientError, ClientResult};
use crate::client::interrupt::Interrupt;
use crate::client::keyring::{Account, AccountDir, Prekeys, Rejected, SeenIds, seen_key};
use crate::client::net::{Connection, NetError, unexpected};
use crate::client::session;
use crate::wire::crypto::{PrivateKey, PublicKey};
use crate::wire::envelope::{self, EnvelopeError};
use crate::wire::protocol::{
    CLOCK_SLACK, ErrorCode, FETCH_PAGE, MAX_MESSAGE_AGE, MAX_PAGE_BYTES, MAX_WAIT_MS,
    QueuedMessage, Request, Response, UserName, hex, printable, unix_now,
};
use crate::wire::signing::PrekeyKind;

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

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.shown += other.shown;
        self.problems += other.problems;
    }
}

/// What became of one queued message.
enum Outcome {
    /// Written out: acknowledge, and delete the one-time prekey it was
    /// sealed to, if any.
    Shown(Option<u32>),
    /// Shown before: acknowledge silently, and delete its one-time prekey
    /// if that is still held (a crash came between the two).
    Duplicate(Option<u32>),
    /// Not shown: acknowledged (so it does not block the queue) unless it
    /// is held, and reported.
    NotShown(Problem),
}

/// The locked account and its state while a batch of messages is judged.
struct Judging {
    account: Account,
    seen: SeenIds,
    prekeys: Prekeys,
}

impl Judging {
    /// Remember what was judged: the ids seen first, then the one-time
    /// prekeys `used` go (a crash between the two leaves a key that the
    /// redelivered duplicate deletes); the account stays locked.
    fn record(&mut self, used: &[u32]) -> ClientResult<()> {
        self.account.save_seen(&self.seen)?;
        if self.prekeys.remove_one_time(used) {
            self.account.save_prekeys(&self.prekeys)?;
        }
        Ok(self.account.prune_seen(&self.seen, seen_expired_before())?)
    }
}

/// Ids of messages sent before this are forgotten: the age limit with the
/// clock slack on top, so that a clock run ahead for a while does not
/// forget ids of messages still accepted later.
fn seen_expired_before() -> u64 {
    unix_now().saturating_sub(MAX_MESSAGE_AGE + CLOCK_SLACK)
}

/// A connection reading one account's queue; it authenticates in the
/// flight of its first request.
pub struct Inbox {
    connection: Connection,
    home: AccountDir,
    identity: PrivateKey,
    /// The account, as given.
    user: UserName,
    /// Whether a sender's key may be pinned on sight.
    policy: PinPolicy,
    /// The user as the server spells the name, once authenticated.
    me: Option<UserName>,
    /// The id of the last message fetched; the next page starts after it.
    after: u64,
    /// The ids of an acknowledgement whose answer is not read yet.
    unanswered_ack: Option<Vec<u64>>,
    /// Why the last acknowledgement could not be sent, until reported.
    ack_failed: Option<ClientError>,
    /// How a following read connects again, if it does.
    reconnect: Option<Reconnect>,
    /// Senders whose key was fetched again for the page being handled, to
    /// follow a rotation (once each).
    refreshed: HashSet<String>,
}

impl Inbox {
    /// Read `user`'s queue on `connection` (not yet authenticated) with the
    /// account's folder and identity key; senders seen for the first time
    /// are pinned as `policy` allows.
    pub fn new(
        connection: Connection,
        home: AccountDir,
        identity: PrivateKey,
        user: &UserName,
        policy: PinPolicy,
    ) -> Self {
        Self {
            connection,
            home,
            identity,
            user: user.clone(),
            policy,
            me: None,
            after: 0,
            unanswered_ack: None,
            ack_failed: None,
            reconnect: None,
            refreshed: HashSet::new(),
        }
    }

    /// In [`Mode::Follow`], outlive a lost connection as `reconnect` says.
    pub fn reconnecting(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = Some(reconnect);
        self
    }

    /// The connection, for other requests once reading is done (it acts
    /// for the account; an acknowledgement's answer may still be unread,
    /// and is read here).
    pub fn into_connection(mut self) -> Connection {
        let _ = self.settle_ack();
        self.connection
    }

    /// Read in `mode`, at most `limit` messages, into `sink`.
    pub fn read<S: Sink>(
        &mut self,
        mode: Mode,
        limit: Option<u32>,
        sink: &mut S,
    ) -> Result<Tally, S::Error> {
        let interrupt = match mode {
            Mode::Drain => None,
            Mode::WaitUntil(_) | Mode::Follow => Some(
                self.connection
                    .canceller()
                    .and_then(Interrupt::install)
                    .map_err(ClientError::Signals)?,
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
            let first_pending = tally.shown == 0 && tally.problems == 0;
            let wait = wait_for(mode, first_pending);
            let page_size = room.min(u64::from(FETCH_PAGE)) as u32;
            let page = match self.next_page(interrupt.as_ref(), page_size, wait) {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(error) => match self.recover(error, mode, interrupt.as_ref(), sink)? {
                    true => continue,
                    false => break,
                },
            };
            if page.is_empty() {
                if wait.is_zero() {
                    break;
                }
                continue;
            }
            self.after = page.last().expect("the page is not empty").id;
            let max_envelope = self.connection.max_envelope().map_err(ClientError::from)?;
            let drained = wait.is_zero() && page_was_last(&page, page_size, max_envelope);
            let stopped = self.handle_page(&page, sink, &mut tally, interrupt.as_ref())?;
            if stopped || drained {
                break;
            }
        }
        match self.ack_failed.take() {
            Some(error) => Err(error.into()),
            None => Ok(tally),
        }
    }

    /// Settle the last acknowledgement, then fetch a page of up to `limit`
    /// messages, waiting up to `wait` for the first (a wait a signal can
    /// end: then `None`).
    fn next_page(
        &mut self,
        interrupt: Option<&Interrupt>,
        limit: u32,
        wait: Duration,
    ) -> ClientResult<Option<Vec<QueuedMessage>>> {
        // Outside the interruptible wait, so a stop lets it finish.
        self.settle_ack()?;
        match interrupt {
            Some(interrupt) if !wait.is_zero() => {
                interrupt.during(|| self.fetch(limit, wait)).transpose()
            }
            _ => self.fetch(limit, wait).map(Some),
        }
    }

    /// After `error`, go on on a new connection if this read follows and
    /// the error is one to outlive; `false` if a stop was requested first.
    fn recover<S: Sink>(
        &mut self,
        error: ClientError,
        mode: Mode,
        interrupt: Option<&Interrupt>,
        sink: &mut S,
    ) -> ClientResult<bool> {
        let (Mode::Follow, Some(reconnect), Some(interrupt)) = (mode, &self.reconnect, interrupt)
        else {
            return Err(error);
        };
        if !reconnect::is_transient(&error) {
            return Err(error);
        }
        let mut following = Following { interrupt, sink };
        let Some(connection) = reconnect.connect_again(error, &mut following)? else {
            return Ok(false);
        };
        interrupt.watch(connection.canceller().map_err(ClientError::Signals)?);
        self.connection = connection;
        // Log in again, and fetch from the start: what an acknowledgement
        // lost with the old connection left queued is recognised as seen
        // and acknowledged again.
        self.me = None;
        self.after = 0;
        self.unanswered_ack = None;
        self.ack_failed = None;
        Ok(true)
    }

    /// One page of messages, waiting up to `wait` for the first.
    fn fetch(&mut self, limit: u32, wait: Duration) -> ClientResult<Vec<QueuedMessage>> {
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
    fn call(&mut self, request: &Request, held: Duration) -> ClientResult<Response> {
        let (user, identity) = (&self.user, &self.identity);
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
    fn again_after_login(&mut self, request: &Request, held: Duration) -> ClientResult<Response> {
        debug!("the session expired; logging in again");
        let (user, identity) = (&self.user, &self.identity);
        session::authenticate(&mut self.connection, &self.home, user, identity)?;
        Ok(self.connection.request_held(request, held)?)
    }

    /// Acknowledge `ids` without waiting: the answer is read before the
    /// next request, or never if the read ends first. An acknowledgement
    /// that is lost with the connection costs nothing: the ids are
    /// remembered as seen, so the next read acknowledges them again
    /// without showing them. A failure to send it is reported when the
    /// answer would have been read, or at the end of the read.
    fn acknowledge(&mut self, ids: Vec<u64>) {
        let sent = self
            .connection
            .write_request(&Request::Ack { ids: ids.clone() })
            .and_then(|()| self.connection.flush());
        match sent {
            Ok(()) => self.unanswered_ack = Some(ids),
            Err(error) => self.ack_failed = Some(error.into()),
        }
    }

    /// Read the answer to the acknowledgement sent last, if unread; every
    /// later request waits for this. If the session expired meanwhile, log
    /// in again and acknowledge once more.
    fn settle_ack(&mut self) -> ClientResult<()> {
        if let Some(error) = self.ack_failed.take() {
            return Err(error);
        }
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
    fn handle_page<S: Sink>(
        &mut self,
        page: &[QueuedMessage],
        sink: &mut S,
        tally: &mut Tally,
        interrupt: Option<&Interrupt>,
    ) -> Result<bool, S::Error> {
        let mut judging = self.begin_judging()?;
        let mut acknowledge = Vec::with_capacity(page.len());
        let mut used_one_time = Vec::new();
        let mut failure = None;
        let mut stopped = false;
        for message in page {
            match self.judge(&mut judging, message, sink) {
                Ok(Outcome::Shown(one_time)) => {
                    tally.shown += 1;
                    acknowledge.push(message.id);
                    used_one_time.extend(one_time);
                }
                Ok(Outcome::Duplicate(one_time)) => {
                    acknowledge.push(message.id);
                    used_one_time.extend(one_time);
                }
                Ok(Outcome::NotShown(problem)) => {
                    // Kept before it is acknowledged, so that it is never lost.
                    let problem = match keep_rejected(&judging.account, message, problem) {
                        Ok(problem) => problem,
                        Err(error) => {
                            failure = Some(error.into());
                            break;
                        }
                    };
                    tally.problems += 1;
                    if !matches!(problem, Problem::Held { .. }) {
                        acknowledge.push(message.id);
                    }
                    sink.not_shown(problem);
                }
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
            judging.record(&used_one_time)?;
            self.acknowledge(acknowledge);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(stopped),
        }
    }

    /// Lock the account and load what judging messages needs; the senders
    /// refreshed for the last batch are forgotten.
    fn begin_judging(&mut self) -> ClientResult<Judging> {
        let account = self.home.lock()?;
        self.refreshed.clear();
        let seen = account.load_seen(seen_expired_before())?;
        let prekeys = account.load_prekeys()?;
        Ok(Judging {
            account,
            seen,
            prekeys,
        })
    }

    /// Open the messages kept in `rejected/` again: each that opens now is
    /// delivered to `sink` and forgotten, each that still fails to verify
    /// stays, and each found stale or unreadable now is discarded; all
    /// but the opened ones are reported.
    pub fn retry_rejected<S: Sink>(&mut self, sink: &mut S) -> Result<Tally, S::Error> {
        if self.me.is_none() {
            let (user, identity) = (&self.user, &self.identity);
            let me = session::authenticate(&mut self.connection, &self.home, user, identity)?;
            self.me = Some(me);
        }
        let mut judging = self.begin_judging()?;
        let mut tally = Tally::default();
        let (mut done, mut used_one_time) = (Vec::new(), Vec::new());
        let kept = judging.account.rejected().map_err(ClientError::from)?;
        for (path, rejected) in kept {
            let message = QueuedMessage {
                id: 0,
                sender: rejected.sender,
                envelope: rejected.envelope,
            };
            match self.judge(&mut judging, &message, sink)? {
                Outcome::Shown(one_time) => {
                    tally.shown += 1;
                    used_one_time.extend(one_time);
                    done.push(path);
                }
                Outcome::Duplicate(_) => done.push(path),
                Outcome::NotShown(problem) => {
                    tally.problems += 1;
                    let problem = match problem {
                        Problem::Failed { about, error, .. } => {
                            let kept = Kept::StillIn(path);
                            Problem::Failed { about, error, kept }
                        }
                        held @ Problem::Held { .. } => held,
                        other => {
                            done.push(path);
                            other
                        }
                    };
                    sink.not_shown(problem);
                }
            }
        }
        // Seen first: a crash before the files go leaves duplicates that
        // the next try recognises.
        judging.record(&used_one_time)?;
        for path in done {
            judging
                .account
                .remove_rejected(&path)
                .map_err(ClientError::from)?;
        }
        Ok(tally)
    }

    /// The one-time prekey a message shown before was sealed to, if this
    /// copy still opens with it (a crash came between recording the message
    /// as shown and deleting the key). Only the message itself opens: a
    /// sender reusing a shown message id cannot make a reader delete a
    /// one-time prekey meant for someone else's message.
    fn reopened_one_time(
        &self,
        account: &Account,
        prekeys: &Prekeys,
        parsed: &envelope::Parsed<'_>,
    ) -> Option<u32> {
        let id = parsed.one_time_prekey_id?;
        let one_time = prekeys.one_time_secret(id)?;
        let contact = account.contact(&parsed.header.sender).ok()??;
        let me = self.me.as_ref()?;
        let lookup = |kind, signed_id| match kind {
            PrekeyKind::Signed => prekeys.secret(signed_id),
            PrekeyKind::OneTime => Some(&one_time),
        };
        // Signed by the pinned key, or by one the sender rotated out since.
        let mut keys =
            std::iter::once(&contact.key).chain(contact.previous.iter().map(|old| &old.key));
        keys.any(|key| parsed.open(me, key, lookup).is_ok())
            .then_some(id)
    }

    /// Verify and decrypt one message and, if genuine and new, deliver it.
    /// Only a failure of the sink is an `Err`.
    fn judge<S: Sink>(
        &mut self,
        judging: &mut Judging,
        message: &QueuedMessage,
        sink: &mut S,
    ) -> Result<Outcome, S::Error> {
        let Judging {
            account,
            seen,
            prekeys,
        } = judging;
        let (account, prekeys) = (&*account, &*prekeys);
        let (parsed, recorded) = match parse_as_recorded(message) {
            Ok(parsed) => parsed,
            Err(problem) => return Ok(Outcome::NotShown(*problem)),
        };
        let header = &parsed.header;
        let sender = &header.sender;
        let message_id = hex(&header.message_id);
        let about = || About {
            sender: sender.clone(),
            message_id: message_id.clone(),
            sent_at_ms: header.sent_at_ms,
        };
        let key = seen_key(sender, &message_id);
        if seen.contains(&key) {
            return Ok(Outcome::Duplicate(
                self.reopened_one_time(account, prekeys, &parsed),
            ));
        }
        let pinned = directory::pinned_or_fetch(&mut self.connection, account, sender, self.policy);
        let (sender_key, sender_pin) = match pinned {
            Ok(pinned) => pinned,
            Err(error) => {
                let about = about();
                return Ok(Outcome::NotShown(Problem::Held { about, error }));
            }
        };
        if sender_pin == PinStatus::New {
            sink.pinned_on_sight(sender.as_str(), &sender_key.fingerprint());
        }
        let signer = match self.signer(account, &parsed, sender_key, sink) {
            Ok(signer) => signer,
            Err(error) => {
                let about = about();
                return Ok(Outcome::NotShown(Problem::Held { about, error }));
            }
        };
        // Judged by the send time its sender signed; unsigned, it fails
        // verification below instead.
        if let Some(limit) = stale(header.sent_at_ms, prekeys.created_at(), unix_now())
            && let Some(_) = &signer
        {
            let about = about();
            return Ok(Outcome::NotShown(Problem::Stale { about, limit }));
        }
        let me = self
            .me
            .as_ref()
            .expect("a page is fetched after authenticating");
        // Only the one-time prekey this envelope names is made a key.
        let one_time = parsed
            .one_time_prekey_id
            .and_then(|id| prekeys.one_time_secret(id));
        let lookup = |kind, id| match kind {
            PrekeyKind::Signed => prekeys.secret(id),
            PrekeyKind::OneTime => one_time.as_ref(),
        };
        let failed = |error| {
            let (about, kept) = (about(), Kept::Discarded);
            Ok(Outcome::NotShown(Problem::Failed { about, error, kept }))
        };
        let Some(signed) = signer else {
            return failed(EnvelopeError::BadSignature);
        };
        let body = match signed.open(me, lookup) {
            Ok(body) => body,
            Err(error) => return failed(error),
        };
        // Shown as the server spells the name (the envelope may use
        // another letter case of it).
        let opened = Opened {
            id: message_id,
            sender: &recorded,
            recipient: &header.recipient,
            sent_at_ms: header.sent_at_ms,
            body: &body,
            sender_pin,
        };
        sink.deliver(&opened)?;
        seen.insert(key, header.sent_at_ms / 1000);
        Ok(Outcome::Shown(parsed.one_time_prekey_id))
    }
}

impl Inbox {
    /// `parsed` as signed by a key of the sender's, if one signed it: the
    /// `pinned` one; or one the sender rotated out after the message was
    /// sent; or, fetched again (once per sender and page), the sender's
    /// current key, which the pin follows if a chain of rotations signed by
    /// both keys of each leads there from it. `Err` if that key could not
    /// be fetched or checked: the message then stays queued.
    fn signer<'p, 'a, S: Sink>(
        &mut self,
        account: &Account,
        parsed: &'p envelope::Parsed<'a>,
        pinned: PublicKey,
        sink: &mut S,
    ) -> ClientResult<Option<envelope::Signed<'p, 'a>>> {
        if let Ok(signed) = parsed.verify(&pinned) {
            return Ok(Some(signed));
        }
        let sender = &parsed.header.sender;
        let sent_at = parsed.header.sent_at_ms / 1000;
        let rotated_out = |account: &Account| {
            let contact = account.contact(sender).ok()??;
            contact
                .previous
                .iter()
                .filter(|old| sent_at < old.at.saturating_add(CLOCK_SLACK))
                .find_map(|old| parsed.verify(&old.key).ok())
        };
        if let Some(signed) = rotated_out(account) {
            return Ok(Some(signed));
        }
        if !self.refreshed.insert(sender.canonical()) {
            return Ok(None);
        }
        let acceptance = directory::Acceptance {
            policy: self.policy,
            expect: None,
        };
        let checked = directory::fetch_checked(&mut self.connection, account, sender, acceptance)?;
        if checked.status == PinStatus::Rotated {
            sink.key_rotated(&checked);
        }
        Ok(parsed
            .verify(&checked.key)
            .ok()
            .or_else(|| rotated_out(account)))
    }
}

/// The envelope of `message`, if it parses and names the sender the server
/// recorded.
fn parse_as_recorded(
    message: &QueuedMessage,
) -> Result<(envelope::Parsed<'_>, UserName), Box<Problem>> {
    let recorded = || printable(&message.sender).into_owned();
    let parsed = envelope::parse(&message.envelope.0).map_err(|error| {
        Box::new(Problem::Unreadable {
            id: message.id,
            recorded: recorded(),
            error,
        })
    })?;
    let header = &parsed.header;
    match header.sender.same_account(message.sender.clone()) {
        Some(spelled) => Ok((parsed, spelled)),
        None => Err(Box::new(Problem::SenderMismatch {
            about: About {
                sender: header.sender.clone(),
                message_id: hex(&header.message_id),
                sent_at_ms: header.sent_at_ms,
            },
            recorded: recorded(),
        })),
    }
}

/// Why a message sent at `sent_at_ms` is too old to show at `now`, to a
/// keyring that made its first prekey at `keyring_created_at`, if it is:
/// sent more than [`MAX_MESSAGE_AGE`] ago, or before the keyring existed
/// (both beyond the clock slack between sender and recipient).
fn stale(sent_at_ms: u64, keyring_created_at: Option<u64>, now: u64) -> Option<StaleLimit> {
    let sent_at = sent_at_ms / 1000;
    if sent_at.saturating_add(MAX_MESSAGE_AGE) < now {
        Some(StaleLimit::MaxAge)
    } else if keyring_created_at
        .is_some_and(|created| sent_at.saturating_add(CLOCK_SLACK) < created)
    {
        Some(StaleLimit::Keyring)
    } else {
        None
    }
}

/// `problem` with `message` kept in `rejected/` if it failed verification
/// (unless the folder is full).
fn keep_rejected(
    account: &Account,
    message: &QueuedMessage,
    problem: Problem,
) -> ClientResult<Problem> {
    let Problem::Failed { about, error, .. } = problem else {
        return Ok(problem);
    };
    let rejected = Rejected::new(
        &message.sender,
        &about.message_id,
        about.sent_at_ms,
        error.to_string(),
        message.envelope.0.clone(),
    );
    let kept = match account.save_rejected(&about.sender, &rejected)? {
        Some(path) => Kept::Saved(path),
        None => Kept::Discarded,
    };
    Ok(Problem::Failed { about, error, kept })
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

/// A following read waiting for its connection again: the sink is told,
/// and a stop ends the pauses.
struct Following<'a, S> {
    interrupt: &'a Interrupt,
    sink: &'a mut S,
}

impl<S: Sink> Reconnecting for Following<'_, S> {
    fn connection_lost(&mut self, error: &ClientError, within: Duration) {
        self.sink.connection_lost(error, within);
    }

    fn reconnected(&mut self, server: &str) {
        self.sink.reconnected(server);
    }

    fn pause(&mut self, pause: Duration) -> bool {
        self.interrupt.pause(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_older_than_the_age_limit_or_the_keyring_are_stale() {
        let now = 1_800_000_000;
        let ms = |secs: u64| secs * 1000;
        assert_eq!(stale(ms(now - MAX_MESSAGE_AGE), None, now), None);
        assert_eq!(
            stale(ms(now - MAX_MESSAGE_AGE - 1), None, now),
            Some(StaleLimit::MaxAge)
        );
        let made = now - 1000;
        assert_eq!(stale(ms(made - CLOCK_SLACK), Some(made), now), None);
        assert_eq!(
            stale(ms(made - CLOCK_SLACK - 1), Some(made), now),
            Some(StaleLimit::Keyring)
        );
        assert_eq!(stale(ms(now + 60), Some(made), now), None);
    }

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
