//! The embedded [`Store`]: one SQLite file, `msgr.db`, in the data
//! directory. Write-ahead logging with `synchronous=FULL` makes every
//! committed change (an acknowledged `send` above all) survive a killed
//! process and a power loss. Writes go through one writer thread that
//! commits concurrent writes together (`writer`, group commit); reads use
//! a few read-only connections (`readers`). The schema is versioned
//! (`schema`).

mod queries;
mod readers;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::store::{
    Enqueued, Page, Quota, RegisterOutcome, Session, Store, StoreError, StoreFuture, StoredMessage,
    TokenHash, User, UserId,
};
use crate::files::{self, FileError};
use crate::wire::protocol::{SignedPrekey, UserName};
use readers::Readers;
use writer::Writer;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "msgr.db";

/// [`Store`] on an embedded SQLite database.
pub struct SqliteStore {
    /// Every change goes through here. Declared first so it is dropped
    /// (finishing queued writes) before the readers close.
    writer: Writer,
    /// Lookups and fetches.
    readers: Readers,
}

impl SqliteStore {
    /// Open (or create) `msgr.db` in `dir` and bring its schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        restrict_files(&path)
            .map_err(|error| StoreError::Setup(format!("cannot secure {DB_FILE}: {error}")))?;
        let mut conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        let readers = Readers::open(&path)?;
        let writer = Writer::start(conn).map_err(|error| {
            StoreError::Setup(format!("cannot start the writer thread: {error}"))
        })?;
        Ok(Self { writer, readers })
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
        prekey: &SignedPrekey,
    ) -> Result<RegisterOutcome, StoreError> {
        let (name, public_key, prekey) = (name.clone(), public_key.to_vec(), prekey.clone());
        self.writer
            .write(move |conn| queries::register(conn, &name, &public_key, &prekey))
    }

    fn set_signed_prekey(&self, user: UserId, prekey: &SignedPrekey) -> Result<(), StoreError> {
        let prekey = prekey.clone();
        self.writer
            .write(move |conn| queries::set_signed_prekey(conn, user, &prekey))
    }

    fn signed_prekey(&self, user: UserId) -> Result<Option<SignedPrekey>, StoreError> {
        self.readers.read(|conn| queries::signed_prekey(conn, user))
    }

    fn find_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.readers.read(|conn| queries::find_user(conn, name))
    }

    fn create_session(
        &self,
        user_id: UserId,
        token_hash: &TokenHash,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let token_hash = *token_hash;
        self.writer
            .write(move |conn| queries::create_session(conn, user_id, &token_hash, expires_at, now))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Usage;
    use crate::wire::protocol::username;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn prekey(id: u32) -> SignedPrekey {
        SignedPrekey {
            id,
            public_key: crate::wire::protocol::Base64Bytes(vec![id as u8; 32]),
            created_at: 1000 + u64::from(id),
            signature: crate::wire::protocol::Base64Bytes(vec![9; 256]),
        }
    }

    fn user(store: &SqliteStore, name: &str) -> User {
        match store
            .register(&username(name), name.as_bytes(), &prekey(1))
            .unwrap()
        {
            RegisterOutcome::Created(user) => user,
            other => panic!("registering {name}: {other:?}"),
        }
    }

    fn page(after: u64, limit: u32, max_bytes: usize) -> Page {
        Page {
            after,
            limit,
            max_bytes,
        }
    }

    const ROOMY: Quota = Quota {
        max_messages: 1000,
        max_bytes: 1 << 20,
    };

    fn queue(store: &SqliteStore, to: &User, from: &User, envelope: &[u8]) -> u64 {
        match store
            .enqueue(to.id, from.id, envelope.to_vec(), ROOMY)
            .unwrap()
        {
            Enqueued::Queued(id) => id,
            full => panic!("{full:?}"),
        }
    }

    /// A second connection to the store's file, as another process.
    fn inspect(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join(DB_FILE)).unwrap()
    }

    fn ids(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn names_are_unique_regardless_of_case() {
        let (_dir, store) = open();
        let alice = user(&store, "Alice");
        assert_eq!(alice.name, "Alice");
        assert_eq!(
            store
                .register(&username("alice"), b"other key", &prekey(2))
                .unwrap(),
            RegisterOutcome::NameTaken
        );
        assert_eq!(store.signed_prekey(alice.id).unwrap(), Some(prekey(1)));
        assert_eq!(store.find_user("ALICE").unwrap(), Some(alice));
        assert_eq!(store.find_user("bob").unwrap(), None);
    }

    #[test]
    fn registering_again_with_the_same_key_is_idempotent() {
        let (_dir, store) = open();
        let alice = user(&store, "Alice");
        assert_eq!(
            store
                .register(&username("Alice"), b"Alice", &prekey(2))
                .unwrap(),
            RegisterOutcome::AlreadyRegisteredSameKey(alice.clone())
        );
        assert_eq!(store.signed_prekey(alice.id).unwrap(), Some(prekey(2)));
    }

    #[test]
    fn a_published_prekey_replaces_the_last() {
        let (_dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        store.set_signed_prekey(alice.id, &prekey(5)).unwrap();
        assert_eq!(store.signed_prekey(alice.id).unwrap(), Some(prekey(5)));
        assert_eq!(store.signed_prekey(john.id).unwrap(), Some(prekey(1)));
        assert_eq!(store.signed_prekey(9999).unwrap(), None);
    }

    #[test]
    fn fetch_pages_oldest_first_and_ack_touches_only_own_messages() {
        let (_dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        let sent: Vec<u64> = (0..5u8)
            .map(|i| queue(&store, &john, &alice, &[i; 10]))
            .collect();
        let for_alice = queue(&store, &alice, &john, b"hi");

        let first = store.fetch(john.id, page(0, 2, 1 << 20)).unwrap();
        assert_eq!(ids(&first), sent[..2]);
        assert_eq!(first[0].sender, "Alice");
        assert_eq!(first[1].envelope, vec![1; 10]);
        let rest = store.fetch(john.id, page(sent[1], 10, 1 << 20)).unwrap();
        assert_eq!(ids(&rest), sent[2..]);

        assert_eq!(store.ack(john.id, &[sent[0], for_alice, 9999]).unwrap(), 1);
        assert_eq!(
            ids(&store.fetch(alice.id, page(0, 10, 1 << 20)).unwrap()),
            [for_alice]
        );
        assert_eq!(
            ids(&store.fetch(john.id, page(0, 10, 1 << 20)).unwrap()),
            sent[1..]
        );
    }

    #[test]
    fn pages_stop_at_the_byte_budget_but_hold_at_least_one_message() {
        let (_dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        let sent: Vec<u64> = (0..3)
            .map(|_| queue(&store, &john, &alice, &[0; 100]))
            .collect();
        assert_eq!(
            ids(&store.fetch(john.id, page(0, 10, 250)).unwrap()),
            sent[..2]
        );
        assert_eq!(
            ids(&store.fetch(john.id, page(0, 10, 10)).unwrap()),
            sent[..1]
        );
        assert!(
            store
                .fetch(john.id, page(sent[2], 10, 10))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn expired_sessions_are_ignored_and_pruned() {
        let (dir, store) = open();
        let alice = user(&store, "Alice");
        store.create_session(alice.id, &[1; 32], 100, 50).unwrap();
        let live = Session {
            user_id: alice.id,
            expires_at: 100,
        };
        assert_eq!(store.find_session(&[1; 32], 99).unwrap(), Some(live));
        assert_eq!(store.find_session(&[1; 32], 100).unwrap(), None);
        assert_eq!(store.find_session(&[2; 32], 0).unwrap(), None);

        store.create_session(alice.id, &[2; 32], 300, 200).unwrap();
        let remaining: i64 = inspect(&dir)
            .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(remaining, 1);
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let (dir, store) = open();
        let alice = user(&store, "Alice");
        let id = queue(&store, &alice, &alice, b"note");
        drop(store);
        assert!(
            !dir.path().join("msgr.db-wal").exists(),
            "closing checkpoints the log"
        );
        let store = SqliteStore::open(dir.path()).unwrap();
        let version: usize = inspect(&dir)
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::MIGRATIONS.len());
        assert_eq!(ids(&store.fetch(alice.id, page(0, 10, 100)).unwrap()), [id]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (dir, store) = open();
        drop(store);
        inspect(&dir)
            .pragma_update(None, "user_version", schema::MIGRATIONS.len() + 1)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_full_mailbox_refuses_by_count_and_by_bytes_until_acknowledged() {
        let (_dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        let quota = Quota {
            max_messages: 2,
            max_bytes: 25,
        };
        let send = |len: usize| {
            store
                .enqueue(john.id, alice.id, vec![0; len], quota)
                .unwrap()
        };
        let Enqueued::Queued(first) = send(10) else {
            panic!("first fits")
        };
        let full = Enqueued::MailboxFull(Usage {
            messages: 1,
            bytes: 10,
        });
        assert_eq!(send(16), full, "26 bytes would exceed 25");
        assert!(matches!(send(15), Enqueued::Queued(_)));
        assert!(matches!(
            send(1),
            Enqueued::MailboxFull(Usage { messages: 2, .. })
        ));
        // Another recipient's queue is separate.
        assert!(matches!(
            store
                .enqueue(alice.id, john.id, vec![0; 10], quota)
                .unwrap(),
            Enqueued::Queued(_)
        ));
        store.ack(john.id, &[first]).unwrap();
        assert!(matches!(send(10), Enqueued::Queued(_)));
    }

    #[test]
    fn concurrent_enqueues_all_commit_with_distinct_ids() {
        let (dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        let (threads, each) = (16, 20);
        let ids: Vec<u64> = std::thread::scope(|scope| {
            let senders: Vec<_> = (0..threads)
                .map(|t| {
                    let (store, alice, john) = (&store, &alice, &john);
                    scope.spawn(move || {
                        (0..each)
                            .map(|i| queue(store, john, alice, format!("{t}-{i}").as_bytes()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            senders
                .into_iter()
                .flat_map(|s| s.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), threads * each);
        drop(store);
        // Everything acknowledged is on disk, and the totals agree.
        let db = inspect(&dir);
        let stored: i64 = db
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        let counted: i64 = db
            .query_row("SELECT messages FROM queue_totals", [], |r| r.get(0))
            .unwrap();
        assert_eq!((stored, counted), ((threads * each) as i64, stored));
    }
}
