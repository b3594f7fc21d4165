//! The server's storage contract: accounts, login sessions and queued
//! envelopes. [`Store`] is synchronous and object-safe so the handler can
//! run it on blocking threads, and has two backends: the embedded SQLite
//! one in [`super::sqlite`] and PostgreSQL, shared by several server
//! processes, in [`super::postgres`]. The contract tests in `contract`
//! run against both. [`copy`] is a whole store as rows, which one backend
//! reads and the other writes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::wire::protocol::{KeyRotation, SignedPrekey, UserName};

/// Database id of an account.
pub type UserId = i64;

/// SHA-256 of a session token; the server never stores the token itself.
pub type TokenHash = [u8; 32];

/// A failure of the storage backend; the request it served had no effect.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or the connection to it failed.
    #[error("database error: {}", postgres_error_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to the database could be had (the server is down,
    /// unreachable, or every connection stayed busy too long).
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    /// The database holds something this build cannot interpret.
    #[error("database is inconsistent: {0}")]
    Corrupt(String),
    /// The database's files or threads could not be set up.
    #[error("cannot set up the database: {0}")]
    Setup(String),
    /// The write was not committed: its group commit failed, or the
    /// writer has stopped.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// The task running the operation stopped before it answered (it
    /// panicked, or the store was shutting down).
    #[error("the store stopped before answering: {0}")]
    Stopped(String),
}

impl StoreError {
    /// Whether the database could not be reached (down, restarting, or
    /// the connection lost): a passing condition, unlike the others.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Postgres(error) => {
                let lost = std::error::Error::source(error)
                    .is_some_and(|cause| cause.is::<std::io::Error>());
                error.is_closed() || lost || error.as_db_error().is_some_and(ended_the_session)
            }
            _ => false,
        }
    }
}

/// Whether PostgreSQL ended the session as it shuts down or restarts
/// (class 57, "operator intervention", such as `57P01`), lost the
/// connection (class 08), or ended a session left idle inside a
/// transaction too long (`25P03`: this server froze in the middle of one,
/// which was rolled back).
fn ended_the_session(error: &tokio_postgres::error::DbError) -> bool {
    let class = &error.code().code()[..2];
    class == "57"
        || class == "08"
        || *error.code() == tokio_postgres::error::SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

/// A PostgreSQL error with its cause: the driver's own text names only
/// the kind of failure ("db error"), the cause says what went wrong.
pub(crate) fn postgres_error_text(error: &tokio_postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: UserId,
    /// The name as first registered (its letter case is kept).
    pub name: UserName,
    /// SubjectPublicKeyInfo DER of the account's RSA key.
    pub public_key: Vec<u8>,
}

/// What [`Store::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new account was created.
    Created(User),
    /// The name was registered already with this very key: a retried
    /// registration, which succeeds again without change.
    AlreadyRegisteredSameKey(User),
    /// The name (in some letter case) belongs to a different key.
    NameTaken,
    /// The name is free, but the key is registered under as many accounts
    /// as one key may be.
    KeyInUse,
}

/// What [`Store::authenticate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The account.
    pub user: User,
    /// Its session.
    pub session: Session,
    /// One-time prekeys the account holds.
    pub one_time_prekeys: u32,
}

/// The account and the session, if both were found and the session is
/// the account's.
fn session_of(user: Option<User>, session: Option<Session>) -> Option<(User, Session)> {
    match (user, session) {
        (Some(user), Some(session)) if session.user_id == user.id => Some((user, session)),
        _ => None,
    }
}

/// A live login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The account the session acts for.
    pub user_id: UserId,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// One queued envelope as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Increasing server id.
    pub id: u64,
    /// The sender's name as registered.
    pub sender: String,
    /// The envelope bytes exactly as sent.
    pub envelope: Vec<u8>,
}

/// Which page of a recipient's queue [`Store::fetch`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only messages with a greater id.
    pub after: u64,
    /// At most this many messages.
    pub limit: u32,
    /// Stop before the envelopes' total size would exceed this many bytes,
    /// except that a non-empty queue always yields at least one message.
    pub max_bytes: usize,
}

/// The most one recipient may have queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most queued messages.
    pub max_messages: u64,
    /// Most queued envelope bytes.
    pub max_bytes: u64,
    /// The share of both, in percent, that one sender's messages may take
    /// (beyond their first, which always may), so that one account cannot
    /// fill another's mailbox for everyone.
    pub sender_share: u64,
}

impl Quota {
    /// The part of this quota one sender may fill.
    pub fn one_senders(self) -> Quota {
        let part = |whole: u64| whole.saturating_mul(self.sender_share) / 100;
        Quota {
            max_messages: part(self.max_messages).max(1),
            max_bytes: part(self.max_bytes),
            sender_share: 100,
        }
    }
}

/// What one recipient has queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Queued messages.
    pub messages: u64,
    /// Their envelopes' total size in bytes.
    pub bytes: u64,
}

impl Usage {
    /// Whether one more envelope of `len` bytes would break `quota`.
    pub fn exceeds_with(&self, len: u64, quota: Quota) -> bool {
        self.messages.saturating_add(1) > quota.max_messages
            || self.bytes.saturating_add(len) > quota.max_bytes
    }
}

/// Prekeys an account publishes: a new signed prekey, one-time prekeys, or
/// both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prekeys {
    /// The signed prekey, replacing the account's.
    pub signed: Option<SignedPrekey>,
    /// One-time prekeys to add to the account's pool.
    pub one_time: Vec<SignedPrekey>,
    /// Whether they replace the pool instead.
    pub replace_one_time: bool,
}

/// What `get_key` answers: the account, its signed prekey, and a one-time
/// prekey if one was claimed and the pool held one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBundle {
    /// The account.
    pub user: User,
    /// Its signed prekey, if it published one.
    pub signed_prekey: Option<SignedPrekey>,
    /// The one-time prekey handed out (and deleted) now.
    pub one_time_prekey: Option<SignedPrekey>,
    /// Its identity key rotations, oldest first.
    pub rotations: Vec<KeyRotation>,
}

/// What [`Store::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably under this id.
    Queued(u64),
    /// Refused, nothing stored: the recipient's queue is at its quota.
    MailboxFull(Usage),
    /// Refused, nothing stored: the sender's messages take their share of
    /// the recipient's quota already.
    SenderShareFull(Usage),
}

/// A store operation's result, delivered without blocking the caller.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// `operation`'s result through a future, the operation run on a blocking
/// thread: how a store that can only block answers without blocking.
pub fn on_blocking_thread<T: Send + 'static>(
    operation: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> StoreFuture<T> {
    Box::pin(async move {
        tokio::task::spawn_blocking(operation)
            .await
            .map_err(|error| StoreError::Stopped(error.to_string()))?
    })
}

/// Durable storage behind the server. Every method is one atomic unit: it
/// either happens completely and durably or not at all.
///
/// The methods block the calling thread; the server calls them on blocking
/// threads. The few on the path of every message also have a form that
/// answers through a future (`…_for`), which by default runs the blocking
/// one on a blocking thread; a store that can answer asynchronously does
/// so instead and keeps the thread hand-offs off that path.
pub trait Store: Send + Sync {
    /// Create an account with its prekeys unless its name (compared
    /// case-insensitively) is taken, or its key is registered under
    /// `max_accounts_per_key` accounts already; a registration repeated
    /// with the same key stores the prekeys as [`Store::publish_prekeys`]
    /// does. The prekeys' signatures must have been checked.
    fn register(
        &self,
        name: &UserName,
        public_key: &[u8],
        prekeys: &Prekeys,
        max_accounts_per_key: u64,
    ) -> Result<RegisterOutcome, StoreError>;

    /// Replace the account's signed prekey if one is given and add the
    /// one-time prekeys, after emptying the pool if asked (their
    /// signatures checked; one whose number the pool holds already is
    /// ignored); returns how many one-time prekeys the account holds now.
    fn publish_prekeys(&self, user: UserId, prekeys: &Prekeys) -> Result<u32, StoreError>;

    /// Replace the account's identity key as `rotation` says (its
    /// signatures checked) and its prekeys with `prekeys` (signed by the
    /// new key, replacing the pool), recording the rotation and ending
    /// every session of the account but `keep` (one made with the old key
    /// may be a thief's); returns how many one-time prekeys the account
    /// holds now. Nothing changes if the account's key is not the
    /// rotation's old key — unless this very rotation was the last one made
    /// (a retry), which stores the prekeys again — or if the rotation is
    /// dated before the account's last one.
    fn rotate_key(
        &self,
        user: UserId,
        rotation: &KeyRotation,
        prekeys: &Prekeys,
        keep: &TokenHash,
    ) -> Result<RotateOutcome, StoreError>;

    /// The named account (in any letter case) and its signed prekey; with
    /// `claim`, also one of its one-time prekeys, deleted in the same
    /// transaction, so that none is ever handed out twice.
    fn key_bundle(&self, name: &str, claim: bool) -> Result<Option<KeyBundle>, StoreError>;

    /// [`Store::key_bundle`], answered through a future.
    fn key_bundle_for(self: Arc<Self>, name: String, claim: bool) -> StoreFuture<Option<KeyBundle>>
    where
        Self: 'static,
    {
        on_blocking_thread(move || self.key_bundle(&name, claim))
    }

    /// How many one-time prekeys the account holds.
    fn one_time_prekeys(&self, user: UserId) -> Result<u32, StoreError>;

    /// What authenticating a connection as `name` with the session
    /// `token_hash` needs, if that session is live by `now` and is that
    /// account's: the account, the session, and how many one-time prekeys
    /// the account holds.
    fn authenticate(
        &self,
        name: &str,
        token_hash: &TokenHash,
        now: u64,
    ) -> Result<Option<Authenticated>, StoreError> {
        let Some((user, session)) =
            session_of(self.find_user(name)?, self.find_session(token_hash, now)?)
        else {
            return Ok(None);
        };
        let one_time_prekeys = self.one_time_prekeys(user.id)?;
        Ok(Some(Authenticated {
            user,
            session,
            one_time_prekeys,
        }))
    }

    /// [`Store::authenticate`], answered through a future.
    fn authenticate_for(
        self: Arc<Self>,
        name: String,
        token_hash: TokenHash,
        now: u64,
    ) -> StoreFuture<Option<Authenticated>>
    where
        Self: 'static,
    {
        on_blocking_thread(move || self.authenticate(&name, &token_hash, now))
    }

    /// Look an account up by name, ignoring letter case.
    fn find_user(&self, name: &str) -> Result<Option<User>, StoreError>;

    /// Record a session if the account's key is still `key` (the one its
    /// login was checked with), ending the account's oldest sessions beyond
    /// [`MAX_SESSIONS_PER_ACCOUNT`]; returns how many it ended, or `None`,
    /// recording nothing, if a rotation replaced the key meanwhile. `now`
    /// lets the store drop expired sessions on the way.
    fn create_session(
        &self,
        user_id: UserId,
        key: &[u8],
        token_hash: &TokenHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// The session with this token hash, unless it has expired by `now`.
    fn find_session(&self, token_hash: &TokenHash, now: u64)
    -> Result<Option<Session>, StoreError>;

    /// End a session; returns whether it existed. A store that several
    /// servers share journals it ([`Store::revocations_after`]).
    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError>;

    /// End every session of the account, journalled for the other
    /// processes on the database; returns how many there were.
    fn delete_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// The accounts whose every session other processes on the database
    /// ended (`logout_all`, a rotation, `unregister`, an operator's command)
    /// after journal entry `after`, so that this one stops the connections
    /// acting with them. Entries are kept [`REVOCATIONS_KEPT`] seconds.
    fn revocations_after(&self, after: u64) -> Result<Revocations, StoreError>;

    /// Every account, by name.
    fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError>;

    /// The totals, as of `now`.
    fn stats(&self, now: u64) -> Result<StoreStats, StoreError>;

    /// Whether the store answers now, cheaply: the health check of
    /// `serve --metrics`, run on a blocking thread with a short deadline.
    fn check(&self) -> Result<(), StoreError>;

    /// Delete the account: its queue, sessions, prekeys, rotations and
    /// key, freeing its name. Messages it sent that others have not read
    /// yet stay queued, still naming it as their sender.
    fn unregister(&self, user: UserId) -> Result<(), StoreError>;

    /// Queue an envelope durably, unless that would take the recipient's
    /// queue beyond `quota` (checked atomically with the insert).
    fn enqueue(
        &self,
        recipient: UserId,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> Result<Enqueued, StoreError>;

    /// A page of the recipient's queue, oldest first.
    fn fetch(&self, recipient: UserId, page: Page) -> Result<Vec<StoredMessage>, StoreError>;

    /// Look up the user named `recipient` and queue `envelope` for them as
    /// [`Store::enqueue`] does, answering through the returned future
    /// (`None` for an unknown recipient) once the outcome is durable. The
    /// default runs the two steps on a blocking thread.
    fn enqueue_for(
        self: Arc<Self>,
        recipient: String,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> StoreFuture<Option<(User, Enqueued)>>
    where
        Self: 'static,
    {
        on_blocking_thread(move || {
            let Some(user) = self.find_user(&recipient)? else {
                return Ok(None);
            };
            let enqueued = self.enqueue(user.id, sender, envelope, quota)?;
            Ok(Some((user, enqueued)))
        })
    }

    /// Delete the recipient's messages with these ids; others' messages and
    /// unknown ids are left alone. Returns how many were deleted.
    fn ack(&self, recipient: UserId, ids: &[u64]) -> Result<u64, StoreError>;

    /// Free bytes on the volume the store writes to, if it can tell: sends
    /// are refused when it falls below the server's reserve.
    fn free_space(&self) -> Option<u64> {
        None
    }

    /// Delete what has outlived its use by `now`: messages received more
    /// than `max_message_age` seconds earlier, one-time prekeys senders no
    /// longer use (made [`ONE_TIME_PREKEY_USABLE`] or longer ago), and the
    /// record of one-time prekeys handed out as long ago. Runs in short
    /// steps, so that other writes are not held up.
    ///
    /// [`ONE_TIME_PREKEY_USABLE`]: crate::wire::protocol::ONE_TIME_PREKEY_USABLE
    fn expire(&self, now: u64, max_message_age: u64) -> Result<Expired, StoreError>;

    /// Tell `arrivals` of the messages that other processes on the
    /// database queue, as best the store can, from now until it is
    /// dropped; returns how often a waiting read should look again all
    /// the same, as such hints may be lost. `None`, as by default: no other
    /// process queues messages, so the server's own wake-ups miss none.
    fn watch_arrivals(&self, arrivals: Arc<dyn Arrivals>) -> Option<Duration> {
        let _ = arrivals;
        None
    }
}

/// What a server does when another process queues messages: wake the
/// reads waiting for them.
pub trait Arrivals: Send + Sync {
    /// Messages for `user` were committed.
    fn arrived(&self, user: UserId);

    /// Messages may have been committed unannounced: every waiting read
    /// should look again.
    fn look_again(&self);
}

/// Names the process a store was opened in, in the journal of accounts
/// whose sessions all ended ([`Store::revocations_after`]).
pub type Origin = [u8; 16];

/// How long, in seconds, the journal of ended sessions keeps an entry:
/// every process reads it within seconds.
pub const REVOCATIONS_KEPT: u64 = 60 * 60;

/// What other processes on the database ended: accounts whose every
/// session ended, sessions ended one by one (journalled only where
/// several servers share the database: on one server, the server that
/// ended one knows), and where the journal stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    /// The number of the last journal entry read.
    pub last: u64,
    /// The accounts, in the order their sessions ended.
    pub users: Vec<UserId>,
    /// The sessions ended one by one (`logout`), in that order.
    pub sessions: Vec<EndedSession>,
}

/// A session ended by itself, not with all of its account's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// The account it acted for.
    pub user: UserId,
    /// Its token's hash.
    pub token_hash: TokenHash,
    /// When it would have expired; it may be forgotten after that.
    pub expires_at: u64,
}

/// One account as the operator sees it (`msgr admin users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The name as registered.
    pub name: String,
    /// The identity key (SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// When it registered, seconds since the Unix epoch.
    pub created_at: u64,
    /// Messages queued for it.
    pub queued_messages: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Its live sessions.
    pub sessions: u64,
}

/// The store's totals (`msgr admin stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Registered accounts.
    pub accounts: u64,
    /// Messages queued.
    pub queued_messages: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// When the oldest queued message was received, seconds since the
    /// Unix epoch.
    pub oldest_queued_at: Option<u64>,
    /// Live sessions.
    pub sessions: u64,
    /// Bytes the database takes.
    pub database_bytes: u64,
}

/// Most live sessions one account keeps; a login beyond them ends the one
/// that expires first, so logins cannot pile up rows without bound.
pub const MAX_SESSIONS_PER_ACCOUNT: u64 = 32;

/// What [`Store::rotate_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The key is replaced (or was, by this very rotation); the account
    /// holds this many one-time prekeys now.
    Rotated(u32),
    /// The account's key is not the rotation's old key.
    NotFromCurrentKey,
    /// The rotation is dated before the account's last one, which would
    /// break the chain's order.
    EarlierThanLast,
}

/// What a backend does with a rotation, decided the same way by every
/// backend from the account's current key and its last rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// Replace the key, record the rotation, end the other sessions.
    Apply,
    /// This very rotation was the last one made (a retry): only store the
    /// prekeys again.
    Repeat,
    /// Change nothing, and answer this.
    Refuse(RotateOutcome),
}

/// The step for `rotation` on an account whose key is `current` and whose
/// last rotation was `last`.
pub fn rotation_step(
    current: &[u8],
    last: Option<&KeyRotation>,
    rotation: &KeyRotation,
) -> RotationStep {
    if current == rotation.new_key.0 {
        return match last == Some(rotation) {
            true => RotationStep::Repeat,
            false => RotationStep::Refuse(RotateOutcome::NotFromCurrentKey),
        };
    }
    if current != rotation.old_key.0 {
        return RotationStep::Refuse(RotateOutcome::NotFromCurrentKey);
    }
    if last.is_some_and(|last| last.rotated_at > rotation.rotated_at) {
        return RotationStep::Refuse(RotateOutcome::EarlierThanLast);
    }
    RotationStep::Apply
}

/// The migration to apply to a schema at `version`, `None` if it is up to
/// date, or an error if a newer build made it.
pub fn next_migration<'a>(
    migrations: &[&'a str],
    version: i64,
) -> Result<Option<&'a str>, StoreError> {
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > migrations.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this build of msgr understands"
        )));
    }
    Ok(migrations.get(applied).copied())
}

/// What [`Store::expire`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// Queued messages.
    pub messages: u64,
    /// One-time prekeys from pools.
    pub one_time_prekeys: u64,
    /// Records of one-time prekeys handed out.
    pub claimed: u64,
}

pub mod copy;

#[cfg(test)]
mod contract;
#[cfg(test)]
pub(crate) mod fixtures;
