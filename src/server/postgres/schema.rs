//! The PostgreSQL schema: the `MIGRATIONS` list, counted by the one row
//! of `msgr_schema_version`, applied at start by whichever server comes
//! first while the others wait on an advisory lock.
//!
//! The tables mirror the SQLite ones (`super::super::sqlite::schema`),
//! with BIGINT ids and times, BYTEA keys and envelopes, the queue totals
//! kept by statement-level triggers, and no foreign keys on `messages`
//! (the second migration says why). `users.name_key` is the
//! canonical (lower-case) name, unique and compared byte for byte
//! (`COLLATE "C"`), which also lets the `#`-prefixed names of deleted
//! accounts be found through its index.

use deadpool_postgres::ClientWrapper;

use crate::server::store::{StoreError, next_migration};

/// Key of the session-level advisory lock that serialises migrations
/// ("msgr-mig" in ASCII); any other holder just makes a start wait.
const MIGRATION_LOCK: i64 = 0x6d73_6772_2d6d_6967;

/// Schema migrations in order; `msgr_schema_version.version` counts how
/// many have been applied. Append only: never edit a released entry.
pub(super) const MIGRATIONS: &[&str] = &[
    // The accounts, their sessions, prekeys and rotations, and the queues
    // with their per-recipient and per-sender totals.
    r#"
    CREATE TABLE users (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT COLLATE "C" NOT NULL UNIQUE,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL
    );
    -- Accounts per key: hashed, as a key may be longer than an index entry.
    CREATE INDEX users_by_key ON users (sha256(public_key));

    CREATE TABLE sessions (
        token_hash BYTEA PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
    CREATE INDEX sessions_by_user ON sessions (user_id, expires_at);

    CREATE TABLE messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient_id BIGINT NOT NULL REFERENCES users (id),
        sender_id BIGINT NOT NULL REFERENCES users (id),
        envelope BYTEA NOT NULL,
        received_at BIGINT NOT NULL
    );
    -- Ciphertext does not compress: store it out of line as it is.
    ALTER TABLE messages ALTER COLUMN envelope SET STORAGE EXTERNAL;
    CREATE INDEX messages_by_recipient ON messages (recipient_id, id);
    CREATE INDEX messages_by_sender ON messages (sender_id);
    CREATE INDEX messages_by_age ON messages (received_at);

    -- Per-recipient totals for the mailbox quota. A live account always
    -- has its row (made with the account), which enqueues lock.
    CREATE TABLE queue_totals (
        recipient_id BIGINT PRIMARY KEY REFERENCES users (id),
        messages BIGINT NOT NULL,
        bytes BIGINT NOT NULL
    );
    -- Per-recipient totals of each sender's messages, for each sender's
    -- share of a mailbox; a row exists while the pair has messages queued.
    CREATE TABLE sender_totals (
        recipient_id BIGINT NOT NULL,
        sender_id BIGINT NOT NULL,
        messages BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (recipient_id, sender_id)
    );
    CREATE INDEX sender_totals_by_sender ON sender_totals (sender_id);

    -- Both totals follow every insert and delete, whoever makes it.
    CREATE FUNCTION msgr_messages_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO queue_totals AS t (recipient_id, messages, bytes)
            SELECT recipient_id, count(*), sum(octet_length(envelope))
            FROM added GROUP BY recipient_id ORDER BY recipient_id
            ON CONFLICT (recipient_id) DO UPDATE
            SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
        INSERT INTO sender_totals AS t (recipient_id, sender_id, messages, bytes)
            SELECT recipient_id, sender_id, count(*), sum(octet_length(envelope))
            FROM added GROUP BY recipient_id, sender_id ORDER BY recipient_id, sender_id
            ON CONFLICT (recipient_id, sender_id) DO UPDATE
            SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER messages_added AFTER INSERT ON messages
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION msgr_messages_added();

    CREATE FUNCTION msgr_messages_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE queue_totals AS t
            SET messages = t.messages - g.messages, bytes = t.bytes - g.bytes
            FROM (SELECT recipient_id, count(*) AS messages,
                         sum(octet_length(envelope)) AS bytes
                  FROM removed GROUP BY recipient_id) AS g
            WHERE t.recipient_id = g.recipient_id;
        UPDATE sender_totals AS t
            SET messages = t.messages - g.messages, bytes = t.bytes - g.bytes
            FROM (SELECT recipient_id, sender_id, count(*) AS messages,
                         sum(octet_length(envelope)) AS bytes
                  FROM removed GROUP BY recipient_id, sender_id) AS g
            WHERE t.recipient_id = g.recipient_id AND t.sender_id = g.sender_id;
        DELETE FROM sender_totals AS t
            USING (SELECT DISTINCT recipient_id, sender_id FROM removed) AS g
            WHERE t.recipient_id = g.recipient_id AND t.sender_id = g.sender_id
              AND t.messages = 0;
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER messages_removed AFTER DELETE ON messages
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION msgr_messages_removed();

    -- The signed prekey messages to each account are encrypted to.
    CREATE TABLE signed_prekeys (
        user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        signature BYTEA NOT NULL
    );
    -- Each account's pool of one-time prekeys; one is deleted as it is
    -- handed out.
    CREATE TABLE one_time_prekeys (
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        signature BYTEA NOT NULL,
        PRIMARY KEY (user_id, id)
    );
    CREATE INDEX one_time_prekeys_by_age ON one_time_prekeys (created_at);
    -- The public keys of one-time prekeys handed out, so that one
    -- published again does not return to the pool and go out twice.
    CREATE TABLE claimed_one_time_prekeys (
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        public_key BYTEA NOT NULL,
        claimed_at BIGINT NOT NULL,
        PRIMARY KEY (user_id, public_key)
    );
    CREATE INDEX claimed_one_time_prekeys_by_age ON claimed_one_time_prekeys (claimed_at);

    -- Each account's identity key rotations, in order (`id`), each signed
    -- by the replaced key and the replacing one.
    CREATE TABLE key_rotations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        old_key BYTEA NOT NULL,
        new_key BYTEA NOT NULL,
        rotated_at BIGINT NOT NULL,
        old_signature BYTEA NOT NULL,
        new_signature BYTEA NOT NULL
    );
    CREATE INDEX key_rotations_by_user ON key_rotations (user_id, id);

    -- Sessions ended — every one of an account's, or (with `token_hash`
    -- and its `expires_at`) one alone — for every server process on the
    -- database to stop the connections it has acting with them; `origin`
    -- names the process that ended them. Entries are added one
    -- transaction at a time (see `queries::sessions::record_revocation`), so their
    -- ids grow in commit order and a reader going by id misses none.
    CREATE TABLE session_revocations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id BIGINT NOT NULL,
        token_hash BYTEA,
        expires_at BIGINT,
        origin BYTEA NOT NULL,
        revoked_at BIGINT NOT NULL
    );
    CREATE INDEX session_revocations_by_age ON session_revocations (revoked_at);

    -- The self-signed certificate every server on the database presents
    -- when not given one, made by the first to need it.
    CREATE TABLE server_certificate (
        only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
        cert_pem TEXT NOT NULL,
        key_pem TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    "#,
    // No foreign keys on `messages`: each cost a lookup and a row lock per
    // message queued, most of the insert's work. The send batch's locks
    // keep the rule instead: it share-locks the account rows of its
    // recipients and senders, and an account's row is deleted only while
    // no batch holds it and no message from it is queued
    // (`queries::delete_unreferenced_accounts`, which asks
    // `sender_totals`). Nothing else looks messages up by sender, so the
    // index that served the sender key's checks goes too.
    r#"
    ALTER TABLE messages
        DROP CONSTRAINT messages_recipient_id_fkey,
        DROP CONSTRAINT messages_sender_id_fkey;
    DROP INDEX messages_by_sender;
    "#,
];

/// Oldest server msgr runs on: transition tables and `EXECUTE FUNCTION`
/// in triggers need PostgreSQL 11, and a session's own `tcp_user_timeout`
/// (which the hint listener sets) needs 12.
const MIN_SERVER_VERSION: i32 = 120_000;

/// Refuse a server older than [`MIN_SERVER_VERSION`], saying so.
pub(super) async fn check_server(client: &ClientWrapper) -> Result<(), StoreError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?;
    let version: i32 = row.try_get(0)?;
    if version < MIN_SERVER_VERSION {
        return Err(StoreError::Setup(format!(
            "PostgreSQL {} is too old: msgr needs version 12 or later",
            version / 10_000
        )));
    }
    Ok(())
}

/// Apply the migrations the database lacks, each in its own transaction,
/// while holding an advisory lock: servers starting together wait for
/// each other, and each re-reads the version once it holds the lock, so
/// no migration is applied twice.
pub(super) async fn migrate(client: &mut ClientWrapper) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_pending(client).await;
    // Ending the session (a dropped connection) would release it too.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply_pending(client: &mut ClientWrapper) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS msgr_schema_version (
                 only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                 version INTEGER NOT NULL
             )",
        )
        .await?;
    loop {
        let tx = client.transaction().await?;
        let version: i32 = tx
            .query_opt("SELECT version FROM msgr_schema_version", &[])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let Some(sql) = next_migration(MIGRATIONS, i64::from(version))? else {
            return Ok(());
        };
        // Constant SQL from this file: the simple protocol runs it whole.
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO msgr_schema_version (version) VALUES ($1)
             ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
            &[&(version + 1)],
        )
        .await?;
        tx.commit().await?;
    }
}
