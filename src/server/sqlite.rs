//! The embedded [`Store`]: one SQLite file, `msgr.db`, in the data
//! directory. Write-ahead logging with `synchronous=FULL` makes every
//! committed change (an acknowledged `send` above all) survive a killed
//! process and a power loss. Writes go through one writer thread that
//! commits concurrent writes together (`writer`, group commit); reads use
//! a few read-only connections (`readers`). The schema is versioned
//! (`schema`). [`SqliteStore::export`] reads it all for a copy into
//! another backend (`export`).

mod export;
mod queries;
mod readers;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::metrics::BatchSizes;
use super::store::{
    AccountSummary, Enqueued, Expired, KeyBundle, Origin, Page, Prekeys, Quota, RegisterOutcome,
    Revocations, RotateOutcome, Session, Store, StoreError, StoreFuture, StoreStats, StoredMessage,
    TokenHash, User, UserId,
};
use crate::files::{self, FileError};
use crate::wire::crypto::random_bytes;
use crate::wire::protocol::unix_now;
use crate::wire::protocol::{KeyRotation, UserName};
use readers::Readers;
use writer::Writer;

pub use export::Export;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "msgr.db";

/// [`Store`] on an embedded SQLite database.
pub struct SqliteStore {
    /// Every change goes through here. Declared first so it is dropped
    /// (finishing queued writes) before the readers close.
    writer: Writer,
    /// Lookups and fetches.
    readers: Readers,
    /// The data directory, whose volume's free space is watched.
    dir: std::path::PathBuf,
    /// This process, in the journal of ended sessions.
    origin: Origin,
}

impl SqliteStore {
    /// Open (or create) `msgr.db` in `dir` and bring its schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_recording(dir, None)
    }

    /// [`SqliteStore::open`], recording the size of each group commit in
    /// `batches` (the server's metrics).
    pub fn open_recording(dir: &Path, batches: Option<BatchSizes>) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        restrict_files(&path)
            .map_err(|error| StoreError::Setup(format!("cannot secure {DB_FILE}: {error}")))?;
        let mut conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let readers = Readers::open(&path)?;
        let writer = Writer::start(conn, batches).map_err(|error| {
            StoreError::Setup(format!("cannot start the writer thread: {error}"))
        })?;
        Ok(Self {
            writer,
            readers,
            dir: dir.to_owned(),
            origin: random_bytes(),
        })
    }
}

impl SqliteStore {
    /// Write a consistent copy of the database to `to`, a new file made
    /// owner-only (`false` if something is there already), while other
    /// processes go on using it.
    pub fn backup(&self, to: &Path) -> Result<bool, StoreError> {
        match files::create_new_secret_file(to) {
            Ok(()) => {}
            Err(error) if error.source.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(false);
            }
            Err(error) => return Err(StoreError::Setup(error.to_string())),
        }
        let conn = Connection::open(self.dir.join(DB_FILE))?;
        schema::configure(&conn)?;
        let target = to
            .to_str()
            .ok_or_else(|| StoreError::Setup(format!("{} is not a UTF-8 path", to.display())))?;
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(true)
    }
}

/// Create the database file owner-only (SQLite gives its log files the
/// same mode) and tighten an existing one and its logs if others may read.
fn restrict_files(db: &Path) -> Result<(), FileError> {
    files::create_secret_file(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files::restrict(Path::new(&name), files::SECRET_MODE)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn register(
        &self,
        name: &UserName,
        public_key: &[u8],
        prekeys: &Prekeys,
        max_accounts_per_key: u64,
    ) -> Result<RegisterOutcome, StoreError> {
        let (name, public_key, prekeys) = (name.clone(), public_key.to_vec(), prekeys.clone());
        self.writer.write(move |conn| {
            queries::register(conn, &name, &public_key, &prekeys, max_accounts_per_key)
        })
    }

    fn publish_prekeys(&self, user: UserId, prekeys: &Prekeys) -> Result<u32, StoreError> {
        let prekeys = prekeys.clone();
        self.writer
            .write(move |conn| queries::publish_prekeys(conn, user, &prekeys))
    }

    fn rotate_key(
        &self,
        user: UserId,
        rotation: &KeyRotation,
        prekeys: &Prekeys,
        keep: &TokenHash,
    ) -> Result<RotateOutcome, StoreError> {
        let (rotation, prekeys, keep) = (rotation.clone(), prekeys.clone(), *keep);
        let origin = self.origin;
        self.writer
            .write(move |conn| queries::rotate_key(conn, user, &rotation, &prekeys, &keep, &origin))
    }

    fn key_bundle(&self, name: &str, claim: bool) -> Result<Option<KeyBundle>, StoreError> {
        if claim {
            let name = name.to_owned();
            self.writer
                .write(move |conn| queries::key_bundle(conn, &name, true))
        } else {
            self.readers
                .read_at_one_moment(|conn| queries::key_bundle(conn, name, false))
        }
    }

    fn one_time_prekeys(&self, user: UserId) -> Result<u32, StoreError> {
        self.readers
            .read(|conn| queries::one_time_prekey_count(conn, user))
    }

    fn find_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.readers.read(|conn| queries::find_user(conn, name))
    }

    fn create_session(
        &self,
        user_id: UserId,
        key: &[u8],
        token_hash: &TokenHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let (key, token_hash) = (key.to_vec(), *token_hash);
        self.writer.write(move |conn| {
            queries::create_session(conn, user_id, &key, &token_hash, expires_at, now)
        })
    }

    fn find_session(
        &self,
        token_hash: &TokenHash,
        now: u64,
    ) -> Result<Option<Session>, StoreError> {
        self.readers
            .read(|conn| queries::find_session(conn, token_hash, now))
    }

    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let token_hash = *token_hash;
        self.writer
            .write(move |conn| queries::delete_session(conn, &token_hash))
    }

    fn delete_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let origin = self.origin;
        self.writer
            .write(move |conn| queries::delete_sessions(conn, user, &origin))
    }

    fn revocations_after(&self, after: u64) -> Result<Revocations, StoreError> {
        self.readers
            .read(|conn| queries::revocations_after(conn, after, &self.origin))
    }

    fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        self.readers
            .read(|conn| queries::accounts(conn, unix_now()))
    }

    fn stats(&self, now: u64) -> Result<StoreStats, StoreError> {
        self.readers
            .read_at_one_moment(|conn| queries::stats(conn, now))
    }

    /// The writer commits (its thread runs and is not stuck behind a disk
    /// that hangs), and the database file can still be opened and read by
    /// its path, as the next start will: a file removed or made unreadable
    /// under the running server fails the check, although the connections
    /// open on it go on working.
    fn check(&self) -> Result<(), StoreError> {
        self.writer.write(|_| Ok(()))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(self.dir.join(DB_FILE), flags)?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Ok(())
    }

    fn unregister(&self, user: UserId) -> Result<(), StoreError> {
        let origin = self.origin;
        self.writer
            .write(move |conn| queries::unregister(conn, user, &origin))
    }

    fn enqueue(
        &self,
        recipient: UserId,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> Result<Enqueued, StoreError> {
        self.writer
            .write(move |conn| queries::enqueue(conn, recipient, sender, &envelope, quota))
    }

    fn fetch(&self, recipient: UserId, page: Page) -> Result<Vec<StoredMessage>, StoreError> {
        self.readers
            .read(|conn| queries::fetch(conn, recipient, page))
    }

    /// Runs both steps in the writer's next group commit, so a message
    /// costs no thread of its own while it waits for the fsync.
    fn enqueue_for(
        self: Arc<Self>,
        recipient: String,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> StoreFuture<Option<(User, Enqueued)>> {
        let committed = self.writer.submit(move |conn| {
            let Some(user) = queries::find_user(conn, &recipient)? else {
                return Ok(None);
            };
            let enqueued = queries::enqueue(conn, user.id, sender, &envelope, quota)?;
            Ok(Some((user, enqueued)))
        });
        Box::pin(committed.wait())
    }

    fn ack(&self, recipient: UserId, ids: &[u64]) -> Result<u64, StoreError> {
        let ids = ids.to_vec();
        self.writer
            .write(move |conn| queries::ack(conn, recipient, &ids))
    }

    /// The space an unprivileged process may still use, as `df` shows it.
    fn free_space(&self) -> Option<u64> {
        let stats = rustix::fs::statvfs(&self.dir).ok()?;
        Some(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// One group commit per batch of each kind, until a batch comes short.
    fn expire(&self, now: u64, max_message_age: u64) -> Result<Expired, StoreError> {
        let mut total = Expired::default();
        loop {
            let step = self
                .writer
                .write(move |conn| queries::expire(conn, now, max_message_age))?;
            total.messages += step.messages;
            total.one_time_prekeys += step.one_time_prekeys;
            total.claimed += step.claimed;
            let full = queries::EXPIRE_BATCH;
            if step.messages < full && step.one_time_prekeys < full && step.claimed < full {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests;
