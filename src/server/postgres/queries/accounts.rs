//! Accounts: looked up by name, registered (at most so many per key),
//! their key replaced by a rotation, and deleted (the row kept, under a
//! `#` name, while messages the account sent are still queued).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::messages::lock_queues;
use super::prekeys::{publish_prekeys, rotations};
use super::sessions::{Revoked, record_revocation};
use super::{execute, row, rows, sql_int};
use crate::server::store::{
    Origin, Prekeys, RegisterOutcome, RotateOutcome, RotationStep, StoreError, TokenHash, User,
    UserId, rotation_step,
};
use crate::wire::crypto::sha256;
use crate::wire::protocol::{KeyRotation, UserName, canonical_name, unix_now};

/// Class of the advisory locks that serialise registrations of one key
/// (the second half is taken from the key's hash), so that the count of
/// accounts per key cannot be passed by registering in parallel.
pub(in crate::server::postgres) const REGISTER_LOCK_CLASS: i32 = 0x6d73_6b72; // "mskr"

/// An account from the columns `id, name, public_key`.
pub(in crate::server::postgres) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let name: String = row.try_get(1)?;
    Ok(User {
        id: row.try_get(0)?,
        name: UserName::try_from(name)
            .map_err(|error| StoreError::Corrupt(format!("a stored user name: {error}")))?,
        public_key: row.try_get(2)?,
    })
}

/// The account with this name in any letter case.
pub(in crate::server::postgres) async fn find_user(
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
pub(in crate::server::postgres) async fn lock_account(
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
pub(in crate::server::postgres) async fn register(
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

/// See [`crate::server::Store::rotate_key`]. The account's lock keeps
/// logins checked with the old key from starting sessions meanwhile.
pub(in crate::server::postgres) async fn rotate_key(
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

/// Delete `user`'s account. The row stays while messages it sent are
/// queued for others (they name it as their sender), with no key and the
/// name key `#` and its id, which no user name can be; [`expire`](super::expire) deletes
/// it once they are gone.
pub(in crate::server::postgres) async fn unregister(
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
    lock_queues(client, &[], &[user]).await?;
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
///
/// The rows that look unreferenced are locked first, skipping those a
/// send batch holds (it is queueing a message from that account: the row
/// stays), and checked again by a second statement, whose snapshot sees
/// what every batch that held one of them committed; no batch can take
/// them from then on.
pub(in crate::server::postgres) async fn delete_unreferenced_accounts(
    client: &impl GenericClient,
) -> Result<u64, StoreError> {
    let locked: Vec<UserId> = rows(
        client,
        "SELECT id FROM users WHERE name_key LIKE '#%'
         AND NOT EXISTS (SELECT 1 FROM sender_totals WHERE sender_id = users.id)
         ORDER BY id FOR UPDATE SKIP LOCKED",
        &[],
    )
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()?;
    if locked.is_empty() {
        return Ok(0);
    }
    execute(
        client,
        "DELETE FROM users WHERE id = ANY($1)
         AND NOT EXISTS (SELECT 1 FROM sender_totals WHERE sender_id = users.id)",
        &[&locked],
    )
    .await
}
