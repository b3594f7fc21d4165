//! Prekeys: the signed prekey and the pool of one-time prekeys an account
//! publishes, counted, and handed out in its key bundle (each one-time
//! prekey once).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::super::pipeline::Transaction;
use super::accounts::{lock_account, user_from_row};
use super::{Params, execute, row, rows, sql_int, unsigned};
use crate::server::store::{KeyBundle, Prekeys, StoreError, UserId};
use crate::wire::protocol::{
    Base64Bytes, KeyRotation, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_USABLE, SignedPrekey,
    canonical_name, unix_now,
};

/// Store the signed prekey (replacing the account's) and add the one-time
/// prekeys; how many one-time prekeys the account holds afterwards.
pub(in crate::server::postgres) async fn publish_prekeys(
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
pub(in crate::server::postgres) async fn add_one_time_prekeys(
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
pub(in crate::server::postgres) async fn one_time_prekey_count(
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
/// `now`; older ones are never handed out, and [`expire`](super::expire) deletes them.
pub(in crate::server::postgres) fn usable_since(now: u64) -> i64 {
    sql_int(now.saturating_sub(ONE_TIME_PREKEY_USABLE))
}

/// The named account with its signed prekey and key rotations and, with
/// `claim`, its lowest-numbered usable one-time prekey, deleted here; in
/// one flight of statements, in one transaction, which `tx` begins and
/// commits. A claim shares the account's lock (so it waits for a
/// publication in progress, and no rotation lands between the reads); two
/// claims skip each other's prekey rather than wait, so neither gets the
/// same prekey nor comes back empty while the pool holds another. Without
/// a claim, the reads share one snapshot instead, so that a rotation
/// committed meanwhile shows in all of them or in none: never the old key
/// with the new key's signed prekey.
pub(in crate::server::postgres) async fn key_bundle(
    tx: &Transaction,
    name: &str,
    claim: bool,
) -> Result<Option<KeyBundle>, StoreError> {
    const USER: &str = "SELECT id, name, public_key FROM users WHERE name_key = $1";
    const LOCKED_USER: &str =
        "SELECT id, name, public_key FROM users WHERE name_key = $1 FOR SHARE";
    const SIGNED: &str = "SELECT s.id, s.public_key, s.created_at, s.signature
         FROM signed_prekeys AS s JOIN users AS u ON u.id = s.user_id WHERE u.name_key = $1";
    const ROTATIONS: &str =
        "SELECT r.old_key, r.new_key, r.rotated_at, r.old_signature, r.new_signature
         FROM key_rotations AS r JOIN users AS u ON u.id = r.user_id
         WHERE u.name_key = $1 ORDER BY r.id";
    // Deletes the prekey and records its key, so it is never taken back.
    const CLAIM: &str = "WITH claimed AS (
             DELETE FROM one_time_prekeys
             WHERE user_id = (SELECT id FROM users WHERE name_key = $1) AND id = (
                 SELECT o.id FROM one_time_prekeys AS o JOIN users AS u ON u.id = o.user_id
                 WHERE u.name_key = $1 AND o.created_at >= $2
                 ORDER BY o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED)
             RETURNING user_id, id, public_key, created_at, signature),
         recorded AS (
             INSERT INTO claimed_one_time_prekeys (user_id, public_key, claimed_at)
             SELECT user_id, public_key, $3 FROM claimed ON CONFLICT DO NOTHING)
         SELECT id, public_key, created_at, signature FROM claimed";

    let client = tx.client();
    let name = canonical_name(name);
    let now = unix_now();
    // The statements the flight sends, each prepared before it leaves.
    let (user_text, prepared): (&str, &[&str]) = match claim {
        true => (LOCKED_USER, &[LOCKED_USER, CLAIM, SIGNED, ROTATIONS]),
        false => (USER, &[USER, SIGNED, ROTATIONS]),
    };
    let by_name: &Params = &[&name];
    let one_time_prekey = async {
        match claim {
            true => row(client, CLAIM, &[&name, &usable_since(now), &sql_int(now)]).await,
            false => Ok(None),
        }
    };
    let statements = async {
        tokio::try_join!(biased;
            row(client, user_text, by_name),
            one_time_prekey,
            row(client, SIGNED, by_name),
            rows(client, ROTATIONS, by_name),
        )
    };
    let flight = tx.commit_with(prepared, statements);
    let (user, one_time_prekey, signed_prekey, rotations) = match claim {
        true => tx.begin_with(flight).await??,
        false => tx.begin_reading_with(flight).await??,
    };
    let Some(user) = user else {
        return Ok(None);
    };
    Ok(Some(KeyBundle {
        user: user_from_row(&user)?,
        signed_prekey: signed_prekey.as_ref().map(prekey_from_row).transpose()?,
        one_time_prekey: one_time_prekey.as_ref().map(prekey_from_row).transpose()?,
        rotations: rotations
            .iter()
            .map(rotation_from_row)
            .collect::<Result<_, _>>()?,
    }))
}

/// A prekey from the columns `id, public_key, created_at, signature`.
pub(in crate::server::postgres) fn prekey_from_row(row: &Row) -> Result<SignedPrekey, StoreError> {
    Ok(SignedPrekey {
        id: unsigned(row, 0)?,
        public_key: Base64Bytes(row.try_get(1)?),
        created_at: unsigned(row, 2)?,
        signature: Base64Bytes(row.try_get(3)?),
    })
}

/// The account's key rotations, oldest first.
pub(in crate::server::postgres) async fn rotations(
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
    .map(rotation_from_row)
    .collect()
}

/// A rotation from the columns `old_key, new_key, rotated_at,
/// old_signature, new_signature`.
fn rotation_from_row(row: &Row) -> Result<KeyRotation, StoreError> {
    Ok(KeyRotation {
        old_key: Base64Bytes(row.try_get(0)?),
        new_key: Base64Bytes(row.try_get(1)?),
        rotated_at: unsigned(row, 2)?,
        old_signature: Base64Bytes(row.try_get(3)?),
        new_signature: Base64Bytes(row.try_get(4)?),
    })
}
