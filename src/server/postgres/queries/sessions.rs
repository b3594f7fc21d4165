//! Login sessions: made, found, and ended one by one or all at once; and
//! the journal of ended sessions that the other servers read.

use deadpool_postgres::GenericClient;

use super::accounts::{lock_account, user_from_row};
use super::prekeys::usable_since;
use super::{execute, row, rows, sql_int, unsigned};
use crate::server::store::{
    Authenticated, EndedSession, MAX_SESSIONS_PER_ACCOUNT, Origin, Revocations, Session,
    StoreError, TokenHash, UserId,
};
use crate::wire::protocol::{canonical_name, unix_now};

/// Key of the advisory lock that makes journal entries of ended sessions
/// commit one at a time, in the order of their ids ("msgr-rev").
pub(in crate::server::postgres) const REVOCATION_LOCK: i64 = 0x6d73_6772_2d72_6576;

/// Record a session if the account's key is still `key`, ending its
/// oldest sessions beyond the cap, and drop some expired sessions on the
/// way. The account's lock makes concurrent logins of one account take
/// turns, so the cap holds, and keeps a rotation from slipping between the
/// key check and the insert.
pub(in crate::server::postgres) async fn create_session(
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
pub(in crate::server::postgres) async fn find_session(
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

/// What authenticating as `name` with the session `token_hash` needs, in
/// one statement: the account, its session if live by `now`, and its
/// one-time prekeys counted as [`one_time_prekey_count`](super::one_time_prekey_count)
/// counts them.
pub(in crate::server::postgres) async fn authenticate(
    client: &impl GenericClient,
    name: &str,
    token_hash: &TokenHash,
    now: u64,
) -> Result<Option<Authenticated>, StoreError> {
    let Some(found) = row(
        client,
        "SELECT u.id, u.name, u.public_key, s.expires_at,
                (SELECT count(*) FROM one_time_prekeys AS o
                 WHERE o.user_id = u.id AND o.created_at >= $4)
         FROM sessions AS s JOIN users AS u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.name_key = $3",
        &[
            &&token_hash[..],
            &sql_int(now),
            &canonical_name(name),
            &usable_since(unix_now()),
        ],
    )
    .await?
    else {
        return Ok(None);
    };
    let user = user_from_row(&found)?;
    Ok(Some(Authenticated {
        session: Session {
            user_id: user.id,
            expires_at: unsigned(&found, 3)?,
        },
        user,
        one_time_prekeys: unsigned(&found, 4)?,
    }))
}

/// End a session, on behalf of the process `origin`; whether it existed.
pub(in crate::server::postgres) async fn delete_session(
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
pub(in crate::server::postgres) async fn delete_sessions(
    client: &impl GenericClient,
    user: UserId,
    origin: &Origin,
) -> Result<u64, StoreError> {
    let deleted = execute(client, "DELETE FROM sessions WHERE user_id = $1", &[&user]).await?;
    record_revocation(client, Revoked::All(user), origin).await?;
    Ok(deleted)
}

/// What a journal entry says ended.
pub(in crate::server::postgres) enum Revoked<'a> {
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
pub(in crate::server::postgres) async fn record_revocation(
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
pub(in crate::server::postgres) async fn revocations_after(
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
