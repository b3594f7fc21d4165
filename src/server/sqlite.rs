//! The embedded [`Store`]: one SQLite file, `msgr.db`, in the data
//! directory. Write-ahead logging with `synchronous=FULL` makes every
//! committed change (an acknowledged `send` above all) survive a killed
//! process and a power loss. The schema is versioned with
//! `PRAGMA user_version` and upgraded by the `MIGRATIONS` list on open.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::store::{
    Page, RegisterOutcome, Session, Store, StoreError, StoredMessage, TokenHash, User, UserId,
};
use super::unix_now;
use crate::protocol::canonical_name;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "msgr.db";

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations in order; the database's `user_version` counts how
/// many have been applied. Append only: never edit a released entry.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL UNIQUE,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient_id INTEGER NOT NULL REFERENCES users(id),
        sender_id INTEGER NOT NULL REFERENCES users(id),
        envelope BLOB NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX messages_by_recipient ON messages (recipient_id, id);
"];

/// SQLite keeps signed 64-bit integers; larger times and ids are clamped.
const SQL_MAX: u64 = i64::MAX as u64;

/// [`Store`] on an embedded SQLite database.
pub struct SqliteStore {
    /// The one connection; SQLite serialises writers anyway.
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (or create) `msgr.db` in `dir` and bring its schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(dir.join(DB_FILE))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock rolled its transaction back when
        // the transaction was dropped, so the connection is still sound.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "the database cannot use write-ahead logging (journal mode stays {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Apply the migrations the database lacks, one transaction each. The
/// version is re-read under the write lock, so servers starting together
/// on one file do not apply a migration twice.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let applied = usize::try_from(version).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} is newer than this build of msgr understands"
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        public_key: row.get(2)?,
    })
}

fn find_user(conn: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    let user = conn
        .prepare_cached("SELECT id, name, public_key FROM users WHERE name_key = ?1")?
        .query_row([canonical_name(name)], user_from_row)
        .optional()?;
    Ok(user)
}

impl Store for SqliteStore {
    fn register(&self, name: &str, public_key: &[u8]) -> Result<RegisterOutcome, StoreError> {
        let conn = self.conn();
        // Insert-or-ignore decides atomically even when several processes
        // share the file; the loser then compares keys.
        let inserted = conn
            .prepare_cached(
                "INSERT INTO users (name, name_key, public_key, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name_key) DO NOTHING",
            )?
            .execute(params![
                name,
                canonical_name(name),
                public_key,
                unix_now().min(SQL_MAX)
            ])?;
        let user = find_user(&conn, name)?
            .ok_or_else(|| StoreError::Corrupt(format!("user {name:?} vanished after insert")))?;
        Ok(if inserted == 1 {
            RegisterOutcome::Created(user)
        } else if user.public_key == public_key {
            RegisterOutcome::AlreadyRegisteredSameKey(user)
        } else {
            RegisterOutcome::NameTaken
        })
    }

    fn find_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        find_user(&self.conn(), name)
    }

    fn create_session(
        &self,
        user_id: UserId,
        token_hash: &TokenHash,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now.min(SQL_MAX)])?;
        tx.prepare_cached(
            "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![&token_hash[..], user_id, expires_at.min(SQL_MAX)])?;
        tx.commit()?;
        Ok(())
    }

    fn find_session(
        &self,
        token_hash: &TokenHash,
        now: u64,
    ) -> Result<Option<Session>, StoreError> {
        let session = self
            .conn()
            .prepare_cached(
                "SELECT user_id, expires_at FROM sessions
                 WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![&token_hash[..], now.min(SQL_MAX)], |row| {
                Ok(Session {
                    user_id: row.get(0)?,
                    expires_at: row.get(1)?,
                })
            })
            .optional()?;
        Ok(session)
    }

    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let deleted = self
            .conn()
            .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
            .execute([&token_hash[..]])?;
        Ok(deleted > 0)
    }

    fn enqueue(
        &self,
        recipient: UserId,
        sender: UserId,
        envelope: &[u8],
    ) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO messages (recipient_id, sender_id, envelope, received_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            recipient,
            sender,
            envelope,
            unix_now().min(SQL_MAX)
        ])?;
        u64::try_from(conn.last_insert_rowid())
            .map_err(|_| StoreError::Corrupt("negative message id".into()))
    }

    fn fetch(&self, recipient: UserId, page: Page) -> Result<Vec<StoredMessage>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT m.id, u.name, m.envelope FROM messages m
             JOIN users u ON u.id = m.sender_id
             WHERE m.recipient_id = ?1 AND m.id > ?2
             ORDER BY m.id LIMIT ?3",
        )?;
        let mut rows = statement.query(params![recipient, page.after.min(SQL_MAX), page.limit])?;
        let mut messages = Vec::new();
        let mut total = 0usize;
        while let Some(row) = rows.next()? {
            let message = StoredMessage {
                id: row.get(0)?,
                sender: row.get(1)?,
                envelope: row.get(2)?,
            };
            total = total.saturating_add(message.envelope.len());
            if total > page.max_bytes && !messages.is_empty() {
                break;
            }
            messages.push(message);
        }
        Ok(messages)
    }

    fn ack(&self, recipient: UserId, ids: &[u64]) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut deleted = 0;
        {
            let mut statement =
                tx.prepare_cached("DELETE FROM messages WHERE recipient_id = ?1 AND id = ?2")?;
            for &id in ids.iter().filter(|&&id| id <= SQL_MAX) {
                deleted += statement.execute(params![recipient, id])? as u64;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn user(store: &SqliteStore, name: &str) -> User {
        match store.register(name, name.as_bytes()).unwrap() {
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

    fn ids(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn names_are_unique_regardless_of_case() {
        let (_dir, store) = open();
        let alice = user(&store, "Alice");
        assert_eq!(alice.name, "Alice");
        assert_eq!(
            store.register("alice", b"other key").unwrap(),
            RegisterOutcome::NameTaken
        );
        assert_eq!(store.find_user("ALICE").unwrap(), Some(alice));
        assert_eq!(store.find_user("bob").unwrap(), None);
    }

    #[test]
    fn registering_again_with_the_same_key_is_idempotent() {
        let (_dir, store) = open();
        let alice = user(&store, "Alice");
        assert_eq!(
            store.register("Alice", b"Alice").unwrap(),
            RegisterOutcome::AlreadyRegisteredSameKey(alice)
        );
    }

    #[test]
    fn fetch_pages_oldest_first_and_ack_touches_only_own_messages() {
        let (_dir, store) = open();
        let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
        let sent: Vec<u64> = (0..5u8)
            .map(|i| store.enqueue(john.id, alice.id, &[i; 10]).unwrap())
            .collect();
        let for_alice = store.enqueue(alice.id, john.id, b"hi").unwrap();

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
            .map(|_| store.enqueue(john.id, alice.id, &[0; 100]).unwrap())
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
        let (_dir, store) = open();
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
        let remaining: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(remaining, 1);
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let (dir, store) = open();
        let alice = user(&store, "Alice");
        let id = store.enqueue(alice.id, alice.id, b"note").unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        let version: usize = store
            .conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        assert_eq!(ids(&store.fetch(alice.id, page(0, 10, 100)).unwrap()), [id]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (dir, store) = open();
        store
            .conn()
            .pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
        drop(store);
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::Corrupt(_))
        ));
    }
}
