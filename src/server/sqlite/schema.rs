//! The database's settings and versioned schema: write-ahead logging with
//! `synchronous=FULL`, and the `MIGRATIONS` list that `PRAGMA user_version`
//! counts.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::server::store::{StoreError, next_migration};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations in order; the database's `user_version` counts how
/// many have been applied. Append only: never edit a released entry.
pub(super) const MIGRATIONS: &[&str] = &[
    "
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
    ",
    // Per-recipient totals for the mailbox quota, kept by triggers so that
    // every insert and delete (whoever makes it) keeps them exact.
    "
    CREATE TABLE queue_totals (
        recipient_id INTEGER PRIMARY KEY REFERENCES users(id),
        messages INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );
    INSERT INTO queue_totals (recipient_id, messages, bytes)
        SELECT recipient_id, count(*), sum(length(envelope)) FROM messages
        GROUP BY recipient_id;
    CREATE TRIGGER queue_totals_after_insert AFTER INSERT ON messages BEGIN
        INSERT OR IGNORE INTO queue_totals (recipient_id, messages, bytes)
            VALUES (NEW.recipient_id, 0, 0);
        UPDATE queue_totals
            SET messages = messages + 1, bytes = bytes + length(NEW.envelope)
            WHERE recipient_id = NEW.recipient_id;
    END;
    CREATE TRIGGER queue_totals_after_delete AFTER DELETE ON messages BEGIN
        UPDATE queue_totals
            SET messages = messages - 1, bytes = bytes - length(OLD.envelope)
            WHERE recipient_id = OLD.recipient_id;
    END;
    ",
    // The signed prekey messages to each account are encrypted to.
    "
    CREATE TABLE signed_prekeys (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        signature BLOB NOT NULL
    );
    ",
    // Each account's pool of one-time prekeys; one is deleted as it is
    // handed out.
    "
    CREATE TABLE one_time_prekeys (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (user_id, id)
    ) WITHOUT ROWID;
    ",
    // The public keys of one-time prekeys handed out, so that a prekey
    // published again (an answer lost, a registration retried) does not
    // return to the pool and go out twice.
    "
    CREATE TABLE claimed_one_time_prekeys (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        public_key BLOB NOT NULL,
        claimed_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, public_key)
    ) WITHOUT ROWID;
    ",
    // What expires by age: queued messages, and the record of one-time
    // prekeys handed out.
    "
    CREATE INDEX messages_by_age ON messages (received_at);
    CREATE INDEX claimed_one_time_prekeys_by_age ON claimed_one_time_prekeys (claimed_at);
    ",
    // Each account's identity key rotations, in order (`id`), each signed
    // by the replaced key and the replacing one.
    "
    CREATE TABLE key_rotations (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        old_key BLOB NOT NULL,
        new_key BLOB NOT NULL,
        rotated_at INTEGER NOT NULL,
        old_signature BLOB NOT NULL,
        new_signature BLOB NOT NULL
    );
    CREATE INDEX key_rotations_by_user ON key_rotations (user_id, id);
    ",
    // Sessions per account, for the cap on them and for logging out of all.
    "
    CREATE INDEX sessions_by_user ON sessions (user_id, expires_at);
    ",
    // Per-recipient totals of each sender's queued messages, for each
    // sender's share of a mailbox; kept by triggers like queue_totals.
    "
    CREATE TABLE sender_totals (
        recipient_id INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (recipient_id, sender_id)
    ) WITHOUT ROWID;
    INSERT INTO sender_totals (recipient_id, sender_id, messages, bytes)
        SELECT recipient_id, sender_id, count(*), sum(length(envelope)) FROM messages
        GROUP BY recipient_id, sender_id;
    CREATE TRIGGER sender_totals_after_insert AFTER INSERT ON messages BEGIN
        INSERT INTO sender_totals (recipient_id, sender_id, messages, bytes)
            VALUES (NEW.recipient_id, NEW.sender_id, 1, length(NEW.envelope))
            ON CONFLICT (recipient_id, sender_id) DO UPDATE
            SET messages = messages + 1, bytes = bytes + length(NEW.envelope);
    END;
    CREATE INDEX users_by_key ON users (public_key);
    CREATE TRIGGER sender_totals_after_delete AFTER DELETE ON messages BEGIN
        UPDATE sender_totals
            SET messages = messages - 1, bytes = bytes - length(OLD.envelope)
            WHERE recipient_id = OLD.recipient_id AND sender_id = OLD.sender_id;
        DELETE FROM sender_totals
            WHERE recipient_id = OLD.recipient_id AND sender_id = OLD.sender_id
            AND messages = 0;
    END;
    ",
    // Accounts whose every session ended, for every server process on the
    // database (another server, an operator's command) to stop the
    // connections it has acting with them; `origin` names the process
    // that ended them, which has stopped its own already.
    "
    CREATE TABLE session_revocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        origin BLOB NOT NULL,
        revoked_at INTEGER NOT NULL
    );
    CREATE INDEX session_revocations_by_age ON session_revocations (revoked_at);
    ",
];

/// Settings every connection needs: wait for other writers, and (once per
/// file, but harmless again) write-ahead logging with full syncs.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
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
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let Some(sql) = next_migration(MIGRATIONS, version)? else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
