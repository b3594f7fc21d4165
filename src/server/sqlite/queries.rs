//! The SQL behind [`super::SqliteStore`]: one function per operation, each
//! run on the connection it is given (the writer's batch transaction or a
//! read connection), so the group commit decides when changes become
//! durable.

use rusqlite::{Connection, OptionalExtension, params};

use crate::server::store::{
    AccountSummary, Enqueued, Expired, KeyBundle, MAX_SESSIONS_PER_ACCOUNT, Origin, Page, Prekeys,
    Quota, REVOCATIONS_KEPT, RegisterOutcome, Revocations, RotateOutcome, RotationStep, Session,
    StoreError, StoreStats, StoredMessage, TokenHash, Usage, User, UserId, rotation_step,
};
use crate::wire::protocol::{
    Base64Bytes, CLOCK_SLACK, KeyRotation, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_USABLE,
    SignedPrekey, UserName, canonical_name, unix_now,
};

/// SQLite keeps signed 64-bit integers; larger times and ids are clamped.
const SQL_MAX: u64 = i64::MAX as u64;

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: UserName::try_from(row.get::<_, String>(1)?).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, error.into())
        })?,
        public_key: row.get(2)?,
    })
}

/// The account with this name in any letter case.
pub(super) fn find_user(conn: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    let user = conn
        .prepare_cached("SELECT id, name, public_key FROM users WHERE name_key = ?1")?
        .query_row([canonical_name(name)], user_from_row)
        .optional()?;
    Ok(user)
}

/// Insert the account unless its name is taken; compare keys if it is.
/// The prekeys are stored for a new account and for a repeated
/// registration with the same key.
pub(super) fn register(
    conn: &Connection,
    name: &UserName,
    public_key: &[u8],
    prekeys: &Prekeys,
    max_accounts_per_key: u64,
) -> Result<RegisterOutcome, StoreError> {
    // Insert-or-ignore decides atomically even when several processes
    // share the file; the loser then compares keys. A key registered
    // under enough accounts already inserts nothing either.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (name, name_key, public_key, created_at)
             SELECT ?1, ?2, ?3, ?4
             WHERE (SELECT count(*) FROM users WHERE public_key = ?3) < ?5
             ON CONFLICT (name_key) DO NOTHING",
        )?
        .execute(params![
            name.as_str(),
            name.canonical(),
            public_key,
            unix_now().min(SQL_MAX),
            max_accounts_per_key.min(SQL_MAX)
        ])?;
    let Some(user) = find_user(conn, name.as_str())? else {
        return Ok(RegisterOutcome::KeyInUse);
    };
    let outcome = if inserted == 1 {
        RegisterOutcome::Created(user)
    } else if user.public_key == public_key {
        RegisterOutcome::AlreadyRegisteredSameKey(user)
    } else {
        return Ok(RegisterOutcome::NameTaken);
    };
    let (RegisterOutcome::Created(user) | RegisterOutcome::AlreadyRegisteredSameKey(user)) =
        &outcome
    else {
        unreachable!("a name taken by another key returned above");
    };
    publish_prekeys(conn, user.id, prekeys)?;
    Ok(outcome)
}

/// Store the signed prekey (replacing the account's) and add the one-time
/// prekeys; how many one-time prekeys the account holds afterwards.
pub(super) fn publish_prekeys(
    conn: &Connection,
    user: UserId,
    prekeys: &Prekeys,
) -> Result<u32, StoreError> {
    if let Some(signed) = &prekeys.signed {
        set_signed_prekey(conn, user, signed)?;
    }
    if prekeys.replace_one_time {
        conn.prepare_cached("DELETE FROM one_time_prekeys WHERE user_id = ?1")?
            .execute([user])?;
    }
    // Beyond a full pool, further one-time prekeys are dropped: the count
    // returned tells the client how many the server holds. One handed out
    // before never comes back.
    let mut insert = conn.prepare_cached(
        "INSERT INTO one_time_prekeys (user_id, id, public_key, created_at, signature)
         SELECT ?1, ?2, ?3, ?4, ?5
         WHERE (SELECT count(*) FROM one_time_prekeys WHERE user_id = ?1) < ?6
           AND NOT EXISTS (SELECT 1 FROM claimed_one_time_prekeys
                           WHERE user_id = ?1 AND public_key = ?3)
         ON CONFLICT (user_id, id) DO NOTHING",
    )?;
    for prekey in &prekeys.one_time {
        insert.execute(params![
            user,
            prekey.id,
            prekey.public_key.0,
            prekey.created_at.min(SQL_MAX),
            prekey.signature.0,
            MAX_ONE_TIME_PREKEYS
        ])?;
    }
    one_time_prekey_count(conn, user)
}

/// How many one-time prekeys the account holds that senders still use.
pub(super) fn one_time_prekey_count(conn: &Connection, user: UserId) -> Result<u32, StoreError> {
    let count: u32 = conn
        .prepare_cached(
            "SELECT count(*) FROM one_time_prekeys WHERE user_id = ?1 AND created_at >= ?2",
        )?
        .query_row(params![user, usable_since(unix_now())], |row| row.get(0))?;
    Ok(count)
}

/// The oldest creation time of a one-time prekey senders still use at
/// `now`; older ones are never handed out, and [`expire`] deletes them.
fn usable_since(now: u64) -> u64 {
    now.saturating_sub(ONE_TIME_PREKEY_USABLE).min(SQL_MAX)
}

/// Most rows one [`expire`] deletes of each kind, so that it holds the
/// writer only briefly; the caller repeats while it deletes that many.
pub(super) const EXPIRE_BATCH: u64 = 10_000;

/// Delete, up to [`EXPIRE_BATCH`] of each, the messages received more than
/// `max_message_age` seconds before `now`, the one-time prekeys senders no
/// longer use, and the record of one-time prekeys handed out so long ago
/// (with the clock slack on top, as their owner's clock may run ahead of
/// this one) that, published again, they would not be used either.
pub(super) fn expire(
    conn: &Connection,
    now: u64,
    max_message_age: u64,
) -> Result<Expired, StoreError> {
    let received_before = now.saturating_sub(max_message_age).min(SQL_MAX);
    let messages = conn
        .prepare_cached(
            "DELETE FROM messages WHERE id IN
                 (SELECT id FROM messages WHERE received_at < ?1 LIMIT ?2)",
        )?
        .execute(params![received_before, EXPIRE_BATCH])?;
    let one_time_prekeys = conn
        .prepare_cached(
            "DELETE FROM one_time_prekeys WHERE (user_id, id) IN
                 (SELECT user_id, id FROM one_time_prekeys WHERE created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![usable_since(now), EXPIRE_BATCH])?;
    let claimed = conn
        .prepare_cached(
            "DELETE FROM claimed_one_time_prekeys WHERE (user_id, public_key) IN
                 (SELECT user_id, public_key FROM claimed_one_time_prekeys
                  WHERE claimed_at < ?1 LIMIT ?2)",
        )?
        .execute(params![
            usable_since(now).saturating_sub(CLOCK_SLACK),
            EXPIRE_BATCH
        ])?;
    delete_unreferenced_accounts(conn)?;
    // Every process reads the journal within seconds; an hour is ample.
    conn.prepare_cached("DELETE FROM session_revocations WHERE revoked_at < ?1")?
        .execute([now.saturating_sub(REVOCATIONS_KEPT).min(SQL_MAX)])?;
    Ok(Expired {
        messages: messages as u64,
        one_time_prekeys: one_time_prekeys as u64,
        claimed: claimed as u64,
    })
}

/// The named account with its signed prekey and, with `claim`, its oldest
/// one-time prekey, deleted here (the caller runs this in the write
/// transaction, so that no two requests get the same one).
pub(super) fn key_bundle(
    conn: &Connection,
    name: &str,
    claim: bool,
) -> Result<Option<KeyBundle>, StoreError> {
    let Some(user) = find_user(conn, name)? else {
        return Ok(None);
    };
    let signed_prekey = signed_prekey(conn, user.id)?;
    let one_time_prekey = if claim {
        claim_one_time_prekey(conn, user.id)?
    } else {
        None
    };
    let rotations = rotations(conn, user.id)?;
    Ok(Some(KeyBundle {
        user,
        signed_prekey,
        one_time_prekey,
        rotations,
    }))
}

/// The account's key rotations, oldest first.
fn rotations(conn: &Connection, user: UserId) -> Result<Vec<KeyRotation>, StoreError> {
    let mut query = conn.prepare_cached(
        "SELECT old_key, new_key, rotated_at, old_signature, new_signature
         FROM key_rotations WHERE user_id = ?1 ORDER BY id",
    )?;
    let rotations = query
        .query_map([user], |row| {
            Ok(KeyRotation {
                old_key: Base64Bytes(row.get(0)?),
                new_key: Base64Bytes(row.get(1)?),
                rotated_at: row.get(2)?,
                old_signature: Base64Bytes(row.get(3)?),
                new_signature: Base64Bytes(row.get(4)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rotations)
}

/// See [`crate::server::Store::rotate_key`].
pub(super) fn rotate_key(
    conn: &Connection,
    user: UserId,
    rotation: &KeyRotation,
    prekeys: &Prekeys,
    keep: &TokenHash,
    origin: &Origin,
) -> Result<RotateOutcome, StoreError> {
    let current: Vec<u8> = conn
        .prepare_cached("SELECT public_key FROM users WHERE id = ?1")?
        .query_row([user], |row| row.get(0))?;
    match rotation_step(&current, rotations(conn, user)?.last(), rotation) {
        RotationStep::Apply => {}
        RotationStep::Repeat => {
            return publish_prekeys(conn, user, prekeys).map(RotateOutcome::Rotated);
        }
        RotationStep::Refuse(outcome) => return Ok(outcome),
    }
    conn.prepare_cached("UPDATE users SET public_key = ?2 WHERE id = ?1")?
        .execute(params![user, rotation.new_key.0])?;
    conn.prepare_cached(
        "INSERT INTO key_rotations
             (user_id, old_key, new_key, rotated_at, old_signature, new_signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        user,
        rotation.old_key.0,
        rotation.new_key.0,
        rotation.rotated_at.min(SQL_MAX),
        rotation.old_signature.0,
        rotation.new_signature.0
    ])?;
    conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND token_hash != ?2")?
        .execute(params![user, &keep[..]])?;
    record_revocation(conn, user, origin)?;
    publish_prekeys(conn, user, prekeys).map(RotateOutcome::Rotated)
}

/// Delete and return the account's lowest-numbered one-time prekey that
/// senders still use.
fn claim_one_time_prekey(
    conn: &Connection,
    user: UserId,
) -> Result<Option<SignedPrekey>, StoreError> {
    let prekey = conn
        .prepare_cached(
            "DELETE FROM one_time_prekeys
             WHERE user_id = ?1 AND id = (SELECT min(id) FROM one_time_prekeys
                                          WHERE user_id = ?1 AND created_at >= ?2)
             RETURNING id, public_key, created_at, signature",
        )?
        .query_row(params![user, usable_since(unix_now())], prekey_from_row)
        .optional()?;
    if let Some(prekey) = &prekey {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO claimed_one_time_prekeys (user_id, public_key, claimed_at)
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![user, prekey.public_key.0, unix_now().min(SQL_MAX)])?;
    }
    Ok(prekey)
}

fn prekey_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SignedPrekey> {
    Ok(SignedPrekey {
        id: row.get(0)?,
        public_key: Base64Bytes(row.get(1)?),
        created_at: row.get(2)?,
        signature: Base64Bytes(row.get(3)?),
    })
}

/// Store `prekey` as the account's signed prekey, replacing any other.
fn set_signed_prekey(
    conn: &Connection,
    user: UserId,
    prekey: &SignedPrekey,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO signed_prekeys (user_id, id, public_key, created_at, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id) DO UPDATE SET id = excluded.id,
             public_key = excluded.public_key, created_at = excluded.created_at,
             signature = excluded.signature",
    )?
    .execute(params![
        user,
        prekey.id,
        prekey.public_key.0,
        prekey.created_at.min(SQL_MAX),
        prekey.signature.0
    ])?;
    Ok(())
}

/// The account's signed prekey, if it has published one.
fn signed_prekey(conn: &Connection, user: UserId) -> Result<Option<SignedPrekey>, StoreError> {
    let prekey = conn
        .prepare_cached(
            "SELECT id, public_key, created_at, signature FROM signed_prekeys
             WHERE user_id = ?1",
        )?
        .query_row([user], prekey_from_row)
        .optional()?;
    Ok(prekey)
}

/// What `recipient` has queued, from the trigger-kept totals.
fn usage(conn: &Connection, recipient: UserId) -> Result<Usage, StoreError> {
    let usage = conn
        .prepare_cached("SELECT messages, bytes FROM queue_totals WHERE recipient_id = ?1")?
        .query_row([recipient], |row| {
            Ok(Usage {
                messages: row.get(0)?,
                bytes: row.get(1)?,
            })
        })
        .optional()?;
    Ok(usage.unwrap_or_default())
}

/// Check the quota and insert, in the caller's transaction.
pub(super) fn enqueue(
    conn: &Connection,
    recipient: UserId,
    sender: UserId,
    envelope: &[u8],
    quota: Quota,
) -> Result<Enqueued, StoreError> {
    let usage = usage(conn, recipient)?;
    if usage.exceeds_with(envelope.len() as u64, quota) {
        return Ok(Enqueued::MailboxFull(usage));
    }
    let senders = sender_usage(conn, recipient, sender)?;
    if senders.messages > 0 && senders.exceeds_with(envelope.len() as u64, quota.one_senders()) {
        return Ok(Enqueued::SenderShareFull(senders));
    }
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
    let id = u64::try_from(conn.last_insert_rowid())
        .map_err(|_| StoreError::Corrupt("negative message id".into()))?;
    Ok(Enqueued::Queued(id))
}

/// What `sender` has queued for `recipient`.
fn sender_usage(conn: &Connection, recipient: UserId, sender: UserId) -> Result<Usage, StoreError> {
    let usage = conn
        .prepare_cached(
            "SELECT messages, bytes FROM sender_totals WHERE recipient_id = ?1 AND sender_id = ?2",
        )?
        .query_row([recipient, sender], |row| {
            Ok(Usage {
                messages: row.get(0)?,
                bytes: row.get(1)?,
            })
        })
        .optional()?;
    Ok(usage.unwrap_or_default())
}

/// A page of the recipient's queue, oldest first, within its byte budget.
pub(super) fn fetch(
    conn: &Connection,
    recipient: UserId,
    page: Page,
) -> Result<Vec<StoredMessage>, StoreError> {
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

/// Delete the recipient's messages with these ids.
pub(super) fn ack(conn: &Connection, recipient: UserId, ids: &[u64]) -> Result<u64, StoreError> {
    let ids: Vec<u64> = ids.iter().copied().filter(|&id| id <= SQL_MAX).collect();
    let ids = serde_json::to_string(&ids).expect("numbers always serialise");
    let deleted = conn
        .prepare_cached(
            "DELETE FROM messages WHERE recipient_id = ?1
             AND id IN (SELECT value FROM json_each(?2))",
        )?
        .execute(params![recipient, ids])?;
    Ok(deleted as u64)
}

/// Record a session, dropping the expired ones on the way.
pub(super) fn create_session(
    conn: &Connection,
    user_id: UserId,
    key: &[u8],
    token_hash: &TokenHash,
    expires_at: u64,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
        .execute([now.min(SQL_MAX)])?;
    let created = conn
        .prepare_cached(
            "INSERT INTO sessions (token_hash, user_id, expires_at)
             SELECT ?1, ?2, ?3 WHERE (SELECT public_key FROM users WHERE id = ?2) = ?4",
        )?
        .execute(params![
            &token_hash[..],
            user_id,
            expires_at.min(SQL_MAX),
            key
        ])?;
    if created == 0 {
        return Ok(None);
    }
    let ended = conn
        .prepare_cached(
            "DELETE FROM sessions WHERE user_id = ?1 AND token_hash NOT IN
                 (SELECT token_hash FROM sessions WHERE user_id = ?1
                  ORDER BY expires_at DESC LIMIT ?2)",
        )?
        .execute(params![user_id, MAX_SESSIONS_PER_ACCOUNT])?;
    Ok(Some(ended as u64))
}

/// End every session of `user`, on behalf of the process `origin`.
pub(super) fn delete_sessions(
    conn: &Connection,
    user: UserId,
    origin: &Origin,
) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
        .execute([user])?;
    record_revocation(conn, user, origin)?;
    Ok(deleted as u64)
}

/// Every account (deleted ones still naming queued messages left out),
/// by name, with what it holds as of `now`.
pub(super) fn accounts(conn: &Connection, now: u64) -> Result<Vec<AccountSummary>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT u.name, u.public_key, u.created_at,
                coalesce(q.messages, 0), coalesce(q.bytes, 0),
                (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > ?1)
         FROM users u LEFT JOIN queue_totals q ON q.recipient_id = u.id
         WHERE u.name_key NOT GLOB '#*'
         ORDER BY u.name_key",
    )?;
    let accounts = statement
        .query_map([now.min(SQL_MAX)], |row| {
            Ok(AccountSummary {
                name: row.get(0)?,
                public_key: row.get(1)?,
                created_at: row.get(2)?,
                queued_messages: row.get(3)?,
                queued_bytes: row.get(4)?,
                sessions: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(accounts)
}

/// The totals as of `now`.
pub(super) fn stats(conn: &Connection, now: u64) -> Result<StoreStats, StoreError> {
    let number = |sql: &str| -> Result<u64, StoreError> {
        Ok(conn.prepare_cached(sql)?.query_row([], |row| row.get(0))?)
    };
    Ok(StoreStats {
        accounts: number("SELECT count(*) FROM users WHERE name_key NOT GLOB '#*'")?,
        queued_messages: number("SELECT coalesce(sum(messages), 0) FROM queue_totals")?,
        queued_bytes: number("SELECT coalesce(sum(bytes), 0) FROM queue_totals")?,
        oldest_queued_at: conn
            .prepare_cached("SELECT min(received_at) FROM messages")?
            .query_row([], |row| row.get(0))?,
        sessions: conn
            .prepare_cached("SELECT count(*) FROM sessions WHERE expires_at > ?1")?
            .query_row([now.min(SQL_MAX)], |row| row.get(0))?,
        database_bytes: number(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )?,
    })
}

/// Journal that every session of `user` ended through the process
/// `origin`, for the other processes on the database.
fn record_revocation(conn: &Connection, user: UserId, origin: &Origin) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO session_revocations (user_id, origin, revoked_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![user, &origin[..], unix_now().min(SQL_MAX)])?;
    Ok(())
}

/// The accounts whose sessions other processes than `origin` ended after
/// journal entry `after`, and the last entry's number.
pub(super) fn revocations_after(
    conn: &Connection,
    after: u64,
    origin: &Origin,
) -> Result<Revocations, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, user_id, origin FROM session_revocations WHERE id > ?1 ORDER BY id",
    )?;
    let mut rows = statement.query([after.min(SQL_MAX)])?;
    let mut revocations = Revocations {
        last: after,
        users: Vec::new(),
        sessions: Vec::new(),
    };
    while let Some(row) = rows.next()? {
        revocations.last = row.get(0)?;
        let from: Vec<u8> = row.get(2)?;
        if from != origin[..] {
            revocations.users.push(row.get(1)?);
        }
    }
    Ok(revocations)
}

/// Delete `user`'s account. The row stays while messages it sent are
/// queued for others (they name it as their sender), with no key and the
/// name key `#` and its id, which no user name can be; [`expire`] deletes
/// it once they are gone.
pub(super) fn unregister(
    conn: &Connection,
    user: UserId,
    origin: &Origin,
) -> Result<(), StoreError> {
    for table_and_column in [
        "messages WHERE recipient_id",
        "queue_totals WHERE recipient_id",
        "sessions WHERE user_id",
        "signed_prekeys WHERE user_id",
        "one_time_prekeys WHERE user_id",
        "claimed_one_time_prekeys WHERE user_id",
        "key_rotations WHERE user_id",
    ] {
        conn.prepare_cached(&format!("DELETE FROM {table_and_column} = ?1"))?
            .execute([user])?;
    }
    conn.prepare_cached("UPDATE users SET name_key = '#' || id, public_key = X'' WHERE id = ?1")?
        .execute([user])?;
    delete_unreferenced_accounts(conn)?;
    record_revocation(conn, user, origin)
}

/// Delete the rows of deleted accounts whose messages are all gone; each
/// pair of a recipient and a sender with messages queued has a row in
/// `sender_totals`.
fn delete_unreferenced_accounts(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM users WHERE name_key GLOB '#*'
             AND NOT EXISTS (SELECT 1 FROM sender_totals WHERE sender_id = users.id)",
        )?
        .execute([])?)
}

/// The live session with this token hash.
pub(super) fn find_session(
    conn: &Connection,
    token_hash: &TokenHash,
    now: u64,
) -> Result<Option<Session>, StoreError> {
    let session = conn
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

/// End a session; whether it existed.
pub(super) fn delete_session(
    conn: &Connection,
    token_hash: &TokenHash,
) -> Result<bool, StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
        .execute([&token_hash[..]])?;
    Ok(deleted > 0)
}
