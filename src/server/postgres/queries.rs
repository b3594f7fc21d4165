//! The SQL behind [`super::PgStore`]: one function per operation, run on
//! the transaction (or, for plain reads, the connection) it is given.
//! Every statement is a prepared, cached statement whose values travel as
//! parameters; no SQL text is ever built from data.
//!
//! Transactions run at READ COMMITTED. Where a check must hold until the
//! change it guards commits, the statement that reads takes a row lock,
//! which makes concurrent writers (on this server or another) wait for
//! each other, and a waiting READ COMMITTED statement then sees the
//! committed row. Locks are always taken in one order, so two
//! transactions never wait for each other in a circle:
//!
//! 1. account rows (`users`), in ascending id: `FOR UPDATE` to delete an
//!    account, `FOR NO KEY UPDATE` to change its keys, prekey pool or
//!    sessions, `FOR SHARE` to queue for it or claim one of its prekeys;
//! 2. queue totals (`queue_totals`), in ascending recipient id, by
//!    whoever inserts or deletes messages, so a recipient's quota check
//!    and insert are one step and its messages' ids grow in commit order;
//! 3. then the rows the operation changes;
//! 4. last, just before the commit, the journal of ended sessions.
//!
//! Deadlocks with other writers (which PostgreSQL breaks by failing one
//! transaction) are retried by the caller, `super::transaction`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::server::store::{
    AccountSummary, EndedSession, Expired, KeyBundle, MAX_SESSIONS_PER_ACCOUNT, Origin, Page,
    Prekeys, REVOCATIONS_KEPT, RegisterOutcome, Revocations, RotateOutcome, RotationStep, Session,
    StoreError, StoreStats, StoredMessage, TokenHash, User, UserId, rotation_step,
};
use crate::wire::crypto::sha256;
use crate::wire::protocol::{
    Base64Bytes, CLOCK_SLACK, KeyRotation, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_USABLE,
    SignedPrekey, UserName, canonical_name, unix_now,
};

/// Parameters of one statement.
type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Most rows one [`expire`] step deletes of each kind, so that it holds
/// its locks only briefly; the caller repeats while it deletes that many.
pub(super) const EXPIRE_BATCH: u64 = 10_000;

/// Class of the advisory locks that serialise registrations of one key
/// (the second half is taken from the key's hash), so that the count of
/// accounts per key cannot be passed by registering in parallel.
const REGISTER_LOCK_CLASS: i32 = 0x6d73_6b72; // "mskr"

/// Key of the advisory lock that makes journal entries of ended sessions
/// commit one at a time, in the order of their ids ("msgr-rev").
const REVOCATION_LOCK: i64 = 0x6d73_6772_2d72_6576;

/// PostgreSQL keeps signed 64-bit integers; larger times and ids are
/// clamped, as in the SQLite store.
pub(super) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Column `index` of `row` as an unsigned number.
fn unsigned<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, StoreError> {
    let value: i64 = row.try_get(index)?;
    T::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "column {index} holds {value}, which is out of range"
        ))
    })
}

pub(super) async fn rows(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

pub(super) async fn row(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

pub(super) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// An account from the columns `id, name, public_key`.
pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let name: String = row.try_get(1)?;
    Ok(User {
        id: row.try_get(0)?,
        name: UserName::try_from(name)
            .map_err(|error| StoreError::Corrupt(format!("a stored user name: {error}")))?,
        public_key: row.try_get(2)?,
    })
}

/// The account with this name in any letter case.
pub(super) async fn find_user(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<User>, StoreError> {
    row(
        client,
        "SELECT id, name, public_key FROM users WHERE name_key = $1",
        &[&canonical_name(name)],
    )
    .await?
    .as_ref()
    .map(user_from_row)
    .transpose()
}

/// Lock the account's row against other changes of its keys, prekeys and
/// sessions; its current key, or `None` if there is no such account.
async fn lock_account(
    client: &impl GenericClient,
    user: UserId,
) -> Result<Option<Vec<u8>>, StoreError> {
    row(
        client,
        "SELECT public_key FROM users WHERE id = $1 FOR NO KEY UPDATE",
        &[&user],
    )
    .await?
    .map(|row| row.try_get(0).map_err(StoreError::from))
    .transpose()
}

/// Insert the account unless its name is taken; compare keys if it is.
/// The prekeys are stored for a new account and for a repeated
/// registration with the same key.
pub(super) async fn register(
    client: &impl GenericClient,
    name: &UserName,
    public_key: &[u8],
    prekeys: &Prekeys,
    max_accounts_per_key: u64,
) -> Result<RegisterOutcome, StoreError> {
    // Registrations of one key wait for each other, so that the count
    // below stays true until the insert commits; a name is unique by its
    // index, and a registration that loses the race for it inserts nothing.
    let digest = sha256(public_key);
    let key_lock = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    execute(
        client,
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&REGISTER_LOCK_CLASS, &key_lock],
    )
    .await?;
    let inserted = row(
        client,
        "INSERT INTO users (name, name_key, public_key, created_at)
         SELECT $1::text, $2::text, $3::bytea, $4::bigint
         WHERE (SELECT count(*) FROM users WHERE sha256(public_key) = sha256($3::bytea))
               < $5::bigint
         ON CONFLICT (name_key) DO NOTHING
         RETURNING id",
        &[
            &name.as_str(),
            &name.canonical(),
            &public_key,
            &sql_int(unix_now()),
            &sql_int(max_accounts_per_key),
        ],
    )
    .await?;
    let outcome = match inserted {
        Some(row) => {
            let id: UserId = row.try_get(0)?;
            execute(
                client,
                "INSERT INTO queue_totals (recipient_id, messages, bytes) VALUES ($1, 0, 0)",
                &[&id],
            )
            .await?;
            RegisterOutcome::Created(User {
                id,
                name: name.clone(),
                public_key: public_key.to_vec(),
            })
        }
        None => match find_user(client, name.as_str()).await? {
            None => return Ok(RegisterOutcome::KeyInUse),
            Some(user) if user.public_key == public_key => {
                RegisterOutcome::AlreadyRegisteredSameKey(user)
            }
            Some(_) => return Ok(RegisterOutcome::NameTaken),
        },
    };
    let (RegisterOutcome::Created(user) | RegisterOutcome::AlreadyRegisteredSameKey(user)) =
        &outcome
    else {
        unreachable!("the other outcomes returned above");
    };
    publish_prekeys(client, user.id, prekeys).await?;
    Ok(outcome)
}

/// Store the signed prekey (replacing the account's) and add the one-time
/// prekeys; how many one-time prekeys the account holds afterwards.
pub(super) async fn publish_prekeys(
    client: &impl GenericClient,
    user: UserId,
    prekeys: &Prekeys,
) -> Result<u32, StoreError> {
    // Publishing and claiming wait for each other, so that a prekey being
    // claimed cannot be published back into the pool meanwhile, and two
    // publications cannot both fill the last places of the pool.
    lock_account(client, user).await?;
    if let Some(signed) = &prekeys.signed {
        execute(
            client,
            "INSERT INTO signed_prekeys (user_id, id, public_key, created_at, signature)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id) DO UPDATE SET id = excluded.id,
                 public_key = excluded.public_key, created_at = excluded.created_at,
                 signature = excluded.signature",
            &[
                &user,
                &i64::from(signed.id),
                &signed.public_key.0,
                &sql_int(signed.created_at),
                &signed.signature.0,
            ],
        )
        .await?;
    }
    if prekeys.replace_one_time {
        execute(
            client,
            "DELETE FROM one_time_prekeys WHERE user_id = $1",
            &[&user],
        )
        .await?;
    }
    if !prekeys.one_time.is_empty() {
        add_one_time_prekeys(client, user, &prekeys.one_time).await?;
    }
    one_time_prekey_count(client, user).await
}

/// Add one-time prekeys in their order while the pool has room, skipping
/// a number the pool holds already (or that came earlier in the list) and
/// a key handed out before, which never comes back; in one statement.
async fn add_one_time_prekeys(
    client: &impl GenericClient,
    user: UserId,
    one_time: &[SignedPrekey],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = one_time.iter().map(|p| i64::from(p.id)).collect();
    let keys: Vec<&[u8]> = one_time.iter().map(|p| &p.public_key.0[..]).collect();
    let created: Vec<i64> = one_time.iter().map(|p| sql_int(p.created_at)).collect();
    let signatures: Vec<&[u8]> = one_time.iter().map(|p| &p.signature.0[..]).collect();
    execute(
        client,
        "INSERT INTO one_time_prekeys (user_id, id, public_key, created_at, signature)
         SELECT $1::bigint, p.id, p.public_key, p.created_at, p.signature
         FROM (
             SELECT DISTINCT ON (n.id) n.id, n.public_key, n.created_at, n.signature, n.position
             FROM unnest($2::bigint[], $3::bytea[], $4::bigint[], $5::bytea[])
                  WITH ORDINALITY AS n (id, public_key, created_at, signature, position)
             WHERE NOT EXISTS (SELECT 1 FROM claimed_one_time_prekeys AS c
                               WHERE c.user_id = $1 AND c.public_key = n.public_key)
             ORDER BY n.id, n.position
         ) AS p
         WHERE NOT EXISTS (SELECT 1 FROM one_time_prekeys AS o
                           WHERE o.user_id = $1 AND o.id = p.id)
         ORDER BY p.position
         LIMIT greatest(0, $6::bigint - (SELECT count(*) FROM one_time_prekeys WHERE user_id = $1))
         ON CONFLICT (user_id, id) DO NOTHING",
        &[
            &user,
            &ids,
            &keys,
            &created,
            &signatures,
            &i64::from(MAX_ONE_TIME_PREKEYS),
        ],
    )
    .await?;
    Ok(())
}

/// How many one-time prekeys the account holds that senders still use.
pub(super) async fn one_time_prekey_count(
    client: &impl GenericClient,
    user: UserId,
) -> Result<u32, StoreError> {
    let counted = row(
        client,
        "SELECT count(*) FROM one_time_prekeys WHERE user_id = $1 AND created_at >= $2",
        &[&user, &usable_since(unix_now())],
    )
    .await?;
    counted.map_or(Ok(0), |row| unsigned(&row, 0))
}

/// The oldest creation time of a one-time prekey senders still use at
/// `now`; older ones are never handed out, and [`expire`] deletes them.
fn usable_since(now: u64) -> i64 {
    sql_int(now.saturating_sub(ONE_TIME_PREKEY_USABLE))
}

/// The named account with its signed prekey and, with `claim`, its
/// lowest-numbered usable one-time prekey, deleted here. A claim shares
/// the account's lock (so it waits for a publication in progress); two
/// claims skip each other's prekey rather than wait, so neither gets the
/// same prekey nor comes back empty while the pool holds another.
pub(super) async fn key_bundle(
    client: &impl GenericClient,
    name: &str,
    claim: bool,
) -> Result<Option<KeyBundle>, StoreError> {
    let user = if claim {
        row(
            client,
            "SELECT id, name, public_key FROM users WHERE name_key = $1 FOR SHARE",
            &[&canonical_name(name)],
        )
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()?
    } else {
        find_user(client, name).await?
    };
    let Some(user) = user else {
        return Ok(None);
    };
    let one_time_prekey = async {
        match claim {
            true => claim_one_time_prekey(client, user.id).await,
            false => Ok(None),
        }
    };
    let signed_prekey = async {
        row(
            client,
            "SELECT id, public_key, created_at, signature FROM signed_prekeys WHERE user_id = $1",
            &[&user.id],
        )
        .await?
        .as_ref()
        .map(prekey_from_row)
        .transpose()
    };
    // Independent reads: sent together, answered in one round trip.
    let (one_time_prekey, signed_prekey, rotations) =
        tokio::try_join!(one_time_prekey, signed_prekey, rotations(client, user.id))?;
    Ok(Some(KeyBundle {
        user,
        signed_prekey,
        one_time_prekey,
        rotations,
    }))
}

/// Delete and return the account's lowest-numbered one-time prekey that
/// senders still use and no concurrent claim holds, recording its key.
async fn claim_one_time_prekey(
    client: &impl GenericClient,
    user: UserId,
) -> Result<Option<SignedPrekey>, StoreError> {
    let now = unix_now();
    let Some(claimed) = row(
        client,
        "DELETE FROM one_time_prekeys
         WHERE user_id = $1 AND id = (
             SELECT id FROM one_time_prekeys WHERE user_id = $1 AND created_at >= $2
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, public_key, created_at, signature",
        &[&user, &usable_since(now)],
    )
    .await?
    else {
        return Ok(None);
    };
    let prekey = prekey_from_row(&claimed)?;
    execute(
        client,
        "INSERT INTO claimed_one_time_prekeys (user_id, public_key, claimed_at)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&user, &prekey.public_key.0, &sql_int(now)],
    )
    .await?;
    Ok(Some(prekey))
}

/// A prekey from the columns `id, public_key, created_at, signature`.
fn prekey_from_row(row: &Row) -> Result<SignedPrekey, StoreError> {
    Ok(SignedPrekey {
        id: unsigned(row, 0)?,
        public_key: Base64Bytes(row.try_get(1)?),
        created_at: unsigned(row, 2)?,
        signature: Base64Bytes(row.try_get(3)?),
    })
}

/// The account's key rotations, oldest first.
async fn rotations(
    client: &impl GenericClient,
    user: UserId,
) -> Result<Vec<KeyRotation>, StoreError> {
    rows(
        client,
        "SELECT old_key, new_key, rotated_at, old_signature, new_signature
         FROM key_rotations WHERE user_id = $1 ORDER BY id",
        &[&user],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(KeyRotation {
            old_key: Base64Bytes(row.try_get(0)?),
            new_key: Base64Bytes(row.try_get(1)?),
            rotated_at: unsigned(row, 2)?,
            old_signature: Base64Bytes(row.try_get(3)?),
            new_signature: Base64Bytes(row.try_get(4)?),
        })
    })
    .collect()
}

/// See [`crate::server::Store::rotate_key`]. The account's lock keeps
/// logins checked with the old key from starting sessions meanwhile.
pub(super) async fn rotate_key(
    client: &impl GenericClient,
    user: UserId,
    rotation: &KeyRotation,
    prekeys: &Prekeys,
    keep: &TokenHash,
    origin: &Origin,
) -> Result<RotateOutcome, StoreError> {
    let current = lock_account(client, user)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("account {user} does not exist")))?;
    match rotation_step(&current, rotations(client, user).await?.last(), rotation) {
        RotationStep::Apply => {}
        RotationStep::Repeat => {
            return publish_prekeys(client, user, prekeys)
                .await
                .map(RotateOutcome::Rotated);
        }
        RotationStep::Refuse(outcome) => return Ok(outcome),
    }
    execute(
        client,
        "UPDATE users SET public_key = $2 WHERE id = $1",
        &[&user, &rotation.new_key.0],
    )
    .await?;
    execute(
        client,
        "INSERT INTO key_rotations
             (user_id, old_key, new_key, rotated_at, old_signature, new_signature)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &user,
            &rotation.old_key.0,
            &rotation.new_key.0,
            &sql_int(rotation.rotated_at),
            &rotation.old_signature.0,
            &rotation.new_signature.0,
        ],
    )
    .await?;
    execute(
        client,
        "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
        &[&user, &&keep[..]],
    )
    .await?;
    let held = publish_prekeys(client, user, prekeys).await?;
    record_revocation(client, Revoked::All(user), origin).await?;
    Ok(RotateOutcome::Rotated(held))
}

/// Record a session if the account's key is still `key`, ending its
/// oldest sessions beyond the cap, and drop some expired sessions on the
/// way. The account's lock makes concurrent logins of one account take
/// turns, so the cap holds, and keeps a rotation from slipping between the
/// key check and the insert.
pub(super) async fn create_session(
    client: &impl GenericClient,
    user_id: UserId,
    key: &[u8],
    token_hash: &TokenHash,
    expires_at: u64,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    if lock_account(client, user_id).await?.as_deref() != Some(key) {
        return Ok(None);
    }
    // Bounded, and skipping rows another login is deleting already.
    execute(
        client,
        "DELETE FROM sessions WHERE token_hash IN (
             SELECT token_hash FROM sessions WHERE expires_at <= $1
             LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        &[&sql_int(now)],
    )
    .await?;
    execute(
        client,
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        &[&&token_hash[..], &user_id, &sql_int(expires_at)],
    )
    .await?;
    let ended = execute(
        client,
        "DELETE FROM sessions WHERE user_id = $1 AND token_hash NOT IN
             (SELECT token_hash FROM sessions WHERE user_id = $1
              ORDER BY expires_at DESC LIMIT $2)",
        &[&user_id, &sql_int(MAX_SESSIONS_PER_ACCOUNT)],
    )
    .await?;
    Ok(Some(ended))
}

/// The live session with this token hash.
pub(super) async fn find_session(
    client: &impl GenericClient,
    token_hash: &TokenHash,
    now: u64,
) -> Result<Option<Session>, StoreError> {
    row(
        client,
        "SELECT user_id, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        &[&&token_hash[..], &sql_int(now)],
    )
    .await?
    .map(|row| {
        Ok(Session {
            user_id: row.try_get(0)?,
            expires_at: unsigned(&row, 1)?,
        })
    })
    .transpose()
}

/// End a session, on behalf of the process `origin`; whether it existed.
pub(super) async fn delete_session(
    client: &impl GenericClient,
    token_hash: &TokenHash,
    origin: &Origin,
) -> Result<bool, StoreError> {
    let Some(ended) = row(
        client,
        "DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id, expires_at",
        &[&&token_hash[..]],
    )
    .await?
    else {
        return Ok(false);
    };
    let session = EndedSession {
        user: ended.try_get(0)?,
        token_hash: *token_hash,
        expires_at: unsigned(&ended, 1)?,
    };
    record_revocation(client, Revoked::One(&session), origin).await?;
    Ok(true)
}

/// End every session of `user`, on behalf of the process `origin`.
pub(super) async fn delete_sessions(
    client: &impl GenericClient,
    user: UserId,
    origin: &Origin,
) -> Result<u64, StoreError> {
    let deleted = execute(client, "DELETE FROM sessions WHERE user_id = $1", &[&user]).await?;
    record_revocation(client, Revoked::All(user), origin).await?;
    Ok(deleted)
}

/// What a journal entry says ended.
enum Revoked<'a> {
    /// Every session of the account.
    All(UserId),
    /// This one session.
    One(&'a EndedSession),
}

/// Journal that sessions ended through the process `origin`, for the
/// other processes on the database. Entries are written one transaction
/// at a time: the lock is held until the commit, and an entry's id is
/// taken under it, so ids become visible in ascending order. Call it last
/// in a transaction.
async fn record_revocation(
    client: &impl GenericClient,
    revoked: Revoked<'_>,
    origin: &Origin,
) -> Result<(), StoreError> {
    execute(
        client,
        "SELECT pg_advisory_xact_lock($1)",
        &[&REVOCATION_LOCK],
    )
    .await?;
    let (user, token_hash, expires_at) = match revoked {
        Revoked::All(user) => (user, None, None),
        Revoked::One(session) => (
            session.user,
            Some(&session.token_hash[..]),
            Some(sql_int(session.expires_at)),
        ),
    };
    execute(
        client,
        "INSERT INTO session_revocations
             (user_id, token_hash, expires_at, origin, revoked_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &user,
            &token_hash,
            &expires_at,
            &&origin[..],
            &sql_int(unix_now()),
        ],
    )
    .await?;
    Ok(())
}

/// The sessions other processes than `origin` ended after journal entry
/// `after`, and the last entry's number.
pub(super) async fn revocations_after(
    client: &impl GenericClient,
    after: u64,
    origin: &Origin,
) -> Result<Revocations, StoreError> {
    let mut revocations = Revocations {
        last: after,
        users: Vec::new(),
        sessions: Vec::new(),
    };
    for row in rows(
        client,
        "SELECT id, user_id, origin, token_hash, expires_at FROM session_revocations
         WHERE id > $1 ORDER BY id",
        &[&sql_int(after)],
    )
    .await?
    {
        revocations.last = unsigned(&row, 0)?;
        let from: &[u8] = row.try_get(2)?;
        if from == origin {
            continue;
        }
        let user = row.try_get(1)?;
        match row.try_get::<_, Option<&[u8]>>(3)? {
            None => revocations.users.push(user),
            Some(hash) => revocations.sessions.push(EndedSession {
                user,
                token_hash: hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("a session hash is not 32 bytes".into()))?,
                expires_at: row
                    .try_get::<_, Option<i64>>(4)?
                    .and_then(|at| u64::try_from(at).ok())
                    .ok_or_else(|| StoreError::Corrupt("an ended session has no expiry".into()))?,
            }),
        }
    }
    Ok(revocations)
}

/// Every account (deleted ones still naming queued messages left out),
/// by name, with what it holds as of `now`.
pub(super) async fn accounts(
    client: &impl GenericClient,
    now: u64,
) -> Result<Vec<AccountSummary>, StoreError> {
    rows(
        client,
        "SELECT u.name, u.public_key, u.created_at,
                coalesce(q.messages, 0), coalesce(q.bytes, 0),
                (SELECT count(*) FROM sessions AS s
                 WHERE s.user_id = u.id AND s.expires_at > $1)
         FROM users AS u LEFT JOIN queue_totals AS q ON q.recipient_id = u.id
         WHERE u.name_key NOT LIKE '#%'
         ORDER BY u.name_key",
        &[&sql_int(now)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(AccountSummary {
            name: row.try_get(0)?,
            public_key: row.try_get(1)?,
            created_at: unsigned(row, 2)?,
            queued_messages: unsigned(row, 3)?,
            queued_bytes: unsigned(row, 4)?,
            sessions: unsigned(row, 5)?,
        })
    })
    .collect()
}

/// The totals as of `now`.
pub(super) async fn stats(client: &impl GenericClient, now: u64) -> Result<StoreStats, StoreError> {
    let row = row(
        client,
        "SELECT (SELECT count(*) FROM users WHERE name_key NOT LIKE '#%'),
                (SELECT coalesce(sum(messages), 0)::bigint FROM queue_totals),
                (SELECT coalesce(sum(bytes), 0)::bigint FROM queue_totals),
                (SELECT min(received_at) FROM messages),
                (SELECT count(*) FROM sessions WHERE expires_at > $1),
                pg_database_size(current_database())",
        &[&sql_int(now)],
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt("the totals query returned nothing".into()))?;
    let oldest: Option<i64> = row.try_get(3)?;
    Ok(StoreStats {
        accounts: unsigned(&row, 0)?,
        queued_messages: unsigned(&row, 1)?,
        queued_bytes: unsigned(&row, 2)?,
        oldest_queued_at: oldest.map(|at| u64::try_from(at).unwrap_or(0)),
        sessions: unsigned(&row, 4)?,
        database_bytes: unsigned(&row, 5)?,
    })
}

/// Lock the queue totals of these recipients, in ascending id, before
/// their messages are inserted or deleted.
pub(super) async fn lock_queues(
    client: &impl GenericClient,
    recipients: &[UserId],
) -> Result<Vec<Row>, StoreError> {
    rows(
        client,
        "SELECT recipient_id, messages, bytes FROM queue_totals
         WHERE recipient_id = ANY($1) ORDER BY recipient_id FOR UPDATE",
        &[&recipients],
    )
    .await
}

/// A page of the recipient's queue, oldest first, within its byte budget
/// (counted by the server from the stored lengths, so envelopes beyond the
/// budget are never read).
pub(super) async fn fetch(
    client: &impl GenericClient,
    recipient: UserId,
    page: Page,
) -> Result<Vec<StoredMessage>, StoreError> {
    rows(
        client,
        "SELECT p.id, u.name, p.envelope
         FROM (SELECT id, sender_id, envelope,
                      sum(octet_length(envelope)) OVER (ORDER BY id) AS total,
                      row_number() OVER (ORDER BY id) AS position
               FROM messages WHERE recipient_id = $1 AND id > $2
               ORDER BY id LIMIT $3) AS p
         JOIN users AS u ON u.id = p.sender_id
         WHERE p.total <= $4 OR p.position = 1
         ORDER BY p.id",
        &[
            &recipient,
            &sql_int(page.after),
            &i64::from(page.limit),
            &sql_int(page.max_bytes as u64),
        ],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(StoredMessage {
            id: unsigned(row, 0)?,
            sender: row.try_get(1)?,
            envelope: row.try_get(2)?,
        })
    })
    .collect()
}

/// Delete the recipient's messages with these ids.
pub(super) async fn ack(
    client: &impl GenericClient,
    recipient: UserId,
    ids: &[u64],
) -> Result<u64, StoreError> {
    let ids: Vec<i64> = ids
        .iter()
        .filter_map(|&id| i64::try_from(id).ok())
        .collect();
    lock_queues(client, &[recipient]).await?;
    execute(
        client,
        "DELETE FROM messages WHERE recipient_id = $1 AND id = ANY($2)",
        &[&recipient, &ids],
    )
    .await
}

/// Delete `user`'s account. The row stays while messages it sent are
/// queued for others (they name it as their sender), with no key and the
/// name key `#` and its id, which no user name can be; [`expire`] deletes
/// it once they are gone.
pub(super) async fn unregister(
    client: &impl GenericClient,
    user: UserId,
    origin: &Origin,
) -> Result<(), StoreError> {
    execute(
        client,
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&user],
    )
    .await?;
    lock_queues(client, &[user]).await?;
    for delete in [
        "DELETE FROM messages WHERE recipient_id = $1",
        "DELETE FROM queue_totals WHERE recipient_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM signed_prekeys WHERE user_id = $1",
        "DELETE FROM one_time_prekeys WHERE user_id = $1",
        "DELETE FROM claimed_one_time_prekeys WHERE user_id = $1",
        "DELETE FROM key_rotations WHERE user_id = $1",
    ] {
        execute(client, delete, &[&user]).await?;
    }
    execute(
        client,
        "UPDATE users SET name_key = '#' || id, public_key = ''::bytea WHERE id = $1",
        &[&user],
    )
    .await?;
    delete_unreferenced_accounts(client).await?;
    record_revocation(client, Revoked::All(user), origin).await
}

/// Delete the rows of deleted accounts whose messages are all gone; each
/// pair of a recipient and a sender with messages queued has a row in
/// `sender_totals`.
pub(super) async fn delete_unreferenced_accounts(
    client: &impl GenericClient,
) -> Result<u64, StoreError> {
    execute(
        client,
        "DELETE FROM users WHERE name_key LIKE '#%'
         AND NOT EXISTS (SELECT 1 FROM sender_totals WHERE sender_id = users.id)",
        &[],
    )
    .await
}

/// Delete, up to [`EXPIRE_BATCH`] of each, the messages received more than
/// `max_message_age` seconds before `now`, the one-time prekeys senders no
/// longer use, and the record of one-time prekeys handed out so long ago
/// (with the clock slack on top) that, published again, they would not be
/// used either.
pub(super) async fn expire(
    client: &impl GenericClient,
    now: u64,
    max_message_age: u64,
) -> Result<Expired, StoreError> {
    let received_before = sql_int(now.saturating_sub(max_message_age));
    let old = rows(
        client,
        "SELECT id, recipient_id FROM messages WHERE received_at < $1
         ORDER BY received_at LIMIT $2",
        &[&received_before, &sql_int(EXPIRE_BATCH)],
    )
    .await?;
    let mut ids = Vec::with_capacity(old.len());
    let mut recipients = Vec::with_capacity(old.len());
    for row in &old {
        ids.push(row.try_get::<_, i64>(0)?);
        recipients.push(row.try_get::<_, UserId>(1)?);
    }
    recipients.sort_unstable();
    recipients.dedup();
    lock_queues(client, &recipients).await?;
    let messages = execute(
        client,
        "DELETE FROM messages WHERE id = ANY($1) AND received_at < $2",
        &[&ids, &received_before],
    )
    .await?;
    let one_time_prekeys = execute(
        client,
        "DELETE FROM one_time_prekeys WHERE (user_id, id) IN (
             SELECT user_id, id FROM one_time_prekeys WHERE created_at < $1
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&usable_since(now), &sql_int(EXPIRE_BATCH)],
    )
    .await?;
    let claimed = execute(
        client,
        "DELETE FROM claimed_one_time_prekeys WHERE (user_id, public_key) IN (
             SELECT user_id, public_key FROM claimed_one_time_prekeys WHERE claimed_at < $1
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[
            &usable_since(now).saturating_sub(sql_int(CLOCK_SLACK)),
            &sql_int(EXPIRE_BATCH),
        ],
    )
    .await?;
    // Every process reads the journal within seconds; an hour is ample.
    execute(
        client,
        "DELETE FROM session_revocations WHERE revoked_at < $1",
        &[&sql_int(now.saturating_sub(REVOCATIONS_KEPT))],
    )
    .await?;
    Ok(Expired {
        messages,
        one_time_prekeys,
        claimed,
    })
}
