//! Another store copied into an empty database (`msgr admin migrate`), in
//! one transaction, so that either all of it is there or none: the
//! accounts with everything they hold, a part at a time, then the queued
//! messages in batches, every row with its id; then the identity
//! sequences moved past the ids copied, and the certificate the source's
//! clients pinned. Each live account gets its row of `queue_totals`
//! before its messages come, as a registration makes it, and the triggers
//! on `messages` count them in as they go in.

use deadpool_postgres::GenericClient;

use super::queries::{execute, row};
use super::{PgStore, certificate, pool_error};
use crate::server::store::copy::{AccountRow, Copied, CopyError, MessageRow, PrekeyRow, Source};
use crate::server::store::{StoreError, UserId};
use crate::server::tls::SelfSigned;

/// Accounts read and written at a time, with all their rows.
const ACCOUNT_BATCH: usize = 500;

/// Most messages read and written at a time.
const MESSAGE_BATCH: usize = 1000;

/// Most envelope bytes read and written at a time, beyond one message.
const MESSAGE_BATCH_BYTES: usize = 16 << 20;

impl PgStore {
    /// Copy all that `source` holds into this database, which must hold
    /// no account yet, and keep `certificate` as the one every server on
    /// it presents (in place of one a server made here before); in one
    /// transaction, which changes nothing unless it all succeeds.
    pub fn import(
        &self,
        source: &mut dyn Source,
        certificate: Option<&SelfSigned>,
    ) -> Result<Copied, CopyError> {
        self.block_on(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(StoreError::from)?;
            // The copy reads a page of its source between statements, which
            // may take longer than a server's transactions ever wait for
            // anything; but a copy stopped half-way (suspended at a
            // terminal, say) must not hold the tables it locked for ever.
            tx.batch_execute("SET LOCAL idle_in_transaction_session_timeout = '5min'")
                .await
                .map_err(StoreError::from)?;
            refuse_unless_empty(&tx).await?;
            let mut copied = copy_accounts(&tx, source).await?;
            copied.messages = copy_messages(&tx, source).await?;
            let issued = source.last_message_id().map_err(CopyError::Source)?;
            move_sequences(&tx, issued).await?;
            if let Some(certificate) = certificate {
                certificate::replace(&tx, certificate).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok(copied)
        })
    }
}

/// Keep every server on the database from registering or queueing until
/// the commit, and refuse a database that has an account (every message
/// names two).
async fn refuse_unless_empty(client: &impl GenericClient) -> Result<(), CopyError> {
    client
        .batch_execute("LOCK TABLE users, messages IN EXCLUSIVE MODE")
        .await
        .map_err(StoreError::from)?;
    let found = row(client, "SELECT 1 FROM users LIMIT 1", &[]).await?;
    match found {
        Some(_) => Err(CopyError::NotEmpty),
        None => Ok(()),
    }
}

/// Copy the accounts, a batch at a time; what they held.
async fn copy_accounts(
    client: &impl GenericClient,
    source: &mut dyn Source,
) -> Result<Copied, CopyError> {
    let mut copied = Copied::default();
    let mut after = UserId::MIN;
    loop {
        let accounts = source
            .accounts_after(after, ACCOUNT_BATCH)
            .map_err(CopyError::Source)?;
        let Some(last) = accounts.last() else {
            return Ok(copied);
        };
        after = last.id;
        insert_accounts(client, &accounts).await?;
        accounts
            .iter()
            .for_each(|account| copied.add_account(account));
    }
}

/// Insert the accounts and all their rows, one statement per table.
async fn insert_accounts(
    client: &impl GenericClient,
    accounts: &[AccountRow],
) -> Result<(), StoreError> {
    let ids: Vec<UserId> = accounts.iter().map(|a| a.id).collect();
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    let name_keys: Vec<&str> = accounts.iter().map(|a| a.name_key.as_str()).collect();
    let keys: Vec<&[u8]> = accounts.iter().map(|a| &a.public_key[..]).collect();
    let created: Vec<i64> = accounts.iter().map(|a| a.created_at).collect();
    execute(
        client,
        "INSERT INTO users (id, name, name_key, public_key, created_at) OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bigint[])",
        &[&ids, &names, &name_keys, &keys, &created],
    )
    .await?;
    let live: Vec<UserId> = accounts
        .iter()
        .filter(|a| !a.is_deleted())
        .map(|a| a.id)
        .collect();
    execute(
        client,
        "INSERT INTO queue_totals (recipient_id, messages, bytes)
         SELECT id, 0, 0 FROM unnest($1::bigint[]) AS id",
        &[&live],
    )
    .await?;
    insert_sessions(client, accounts).await?;
    insert_prekeys(
        client,
        "signed_prekeys",
        owned(accounts, |a| a.signed_prekey.as_slice()),
    )
    .await?;
    insert_prekeys(
        client,
        "one_time_prekeys",
        owned(accounts, |a| &a.one_time_prekeys),
    )
    .await?;
    insert_claimed(client, accounts).await?;
    insert_rotations(client, accounts).await
}

/// The rows of one kind that `accounts` hold, each with its owner's id.
fn owned<'a, T>(
    accounts: &'a [AccountRow],
    rows: impl Fn(&'a AccountRow) -> &'a [T],
) -> (Vec<UserId>, Vec<&'a T>) {
    accounts
        .iter()
        .flat_map(|account| rows(account).iter().map(move |row| (account.id, row)))
        .unzip()
}

async fn insert_sessions(
    client: &impl GenericClient,
    accounts: &[AccountRow],
) -> Result<(), StoreError> {
    let (owners, sessions) = owned(accounts, |a| &a.sessions);
    let hashes: Vec<&[u8]> = sessions.iter().map(|s| &s.token_hash[..]).collect();
    let expiry: Vec<i64> = sessions.iter().map(|s| s.expires_at).collect();
    execute(
        client,
        "INSERT INTO sessions (token_hash, user_id, expires_at)
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])",
        &[&hashes, &owners, &expiry],
    )
    .await?;
    Ok(())
}

/// Insert prekeys into `table`, `signed_prekeys` or `one_time_prekeys`
/// (whose columns are the same).
async fn insert_prekeys(
    client: &impl GenericClient,
    table: &str,
    (owners, prekeys): (Vec<UserId>, Vec<&PrekeyRow>),
) -> Result<(), StoreError> {
    let ids: Vec<i64> = prekeys.iter().map(|p| p.id).collect();
    let keys: Vec<&[u8]> = prekeys.iter().map(|p| &p.public_key[..]).collect();
    let created: Vec<i64> = prekeys.iter().map(|p| p.created_at).collect();
    let signatures: Vec<&[u8]> = prekeys.iter().map(|p| &p.signature[..]).collect();
    execute(
        client,
        &format!(
            "INSERT INTO {table} (user_id, id, public_key, created_at, signature)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[],
                                  $5::bytea[])"
        ),
        &[&owners, &ids, &keys, &created, &signatures],
    )
    .await?;
    Ok(())
}

async fn insert_claimed(
    client: &impl GenericClient,
    accounts: &[AccountRow],
) -> Result<(), StoreError> {
    let (owners, claimed) = owned(accounts, |a| &a.claimed_one_time_prekeys);
    let keys: Vec<&[u8]> = claimed.iter().map(|c| &c.public_key[..]).collect();
    let times: Vec<i64> = claimed.iter().map(|c| c.claimed_at).collect();
    execute(
        client,
        "INSERT INTO claimed_one_time_prekeys (user_id, public_key, claimed_at)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[])",
        &[&owners, &keys, &times],
    )
    .await?;
    Ok(())
}

async fn insert_rotations(
    client: &impl GenericClient,
    accounts: &[AccountRow],
) -> Result<(), StoreError> {
    let (owners, rotations) = owned(accounts, |a| &a.key_rotations);
    let ids: Vec<i64> = rotations.iter().map(|r| r.id).collect();
    let old_keys: Vec<&[u8]> = rotations.iter().map(|r| &r.old_key[..]).collect();
    let new_keys: Vec<&[u8]> = rotations.iter().map(|r| &r.new_key[..]).collect();
    let times: Vec<i64> = rotations.iter().map(|r| r.rotated_at).collect();
    let old_signatures: Vec<&[u8]> = rotations.iter().map(|r| &r.old_signature[..]).collect();
    let new_signatures: Vec<&[u8]> = rotations.iter().map(|r| &r.new_signature[..]).collect();
    execute(
        client,
        "INSERT INTO key_rotations
             (id, user_id, old_key, new_key, rotated_at, old_signature, new_signature)
         OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[],
                              $5::bigint[], $6::bytea[], $7::bytea[])",
        &[
            &ids,
            &owners,
            &old_keys,
            &new_keys,
            &times,
            &old_signatures,
            &new_signatures,
        ],
    )
    .await?;
    Ok(())
}

/// Copy the queued messages in batches; how many there were.
async fn copy_messages(
    client: &impl GenericClient,
    source: &mut dyn Source,
) -> Result<u64, CopyError> {
    let mut copied = 0;
    let mut after = i64::MIN;
    loop {
        let messages = source
            .messages_after(after, MESSAGE_BATCH, MESSAGE_BATCH_BYTES)
            .map_err(CopyError::Source)?;
        let Some(last) = messages.last() else {
            return Ok(copied);
        };
        after = last.id;
        insert_messages(client, &messages).await?;
        copied += messages.len() as u64;
    }
}

async fn insert_messages(
    client: &impl GenericClient,
    messages: &[MessageRow],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    let recipients: Vec<UserId> = messages.iter().map(|m| m.recipient_id).collect();
    let senders: Vec<UserId> = messages.iter().map(|m| m.sender_id).collect();
    let envelopes: Vec<&[u8]> = messages.iter().map(|m| &m.envelope[..]).collect();
    let received: Vec<i64> = messages.iter().map(|m| m.received_at).collect();
    execute(
        client,
        "INSERT INTO messages (id, recipient_id, sender_id, envelope, received_at)
         OVERRIDING SYSTEM VALUE
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[],
                              $5::bigint[])",
        &[&ids, &recipients, &senders, &envelopes, &received],
    )
    .await?;
    Ok(())
}

/// Move each identity sequence past the ids copied — the messages' also
/// past `last_message_id`, the source's highest ever — so that new rows
/// never take an id given before.
async fn move_sequences(
    client: &impl GenericClient,
    last_message_id: i64,
) -> Result<(), StoreError> {
    for (table, issued) in [
        ("users", 0),
        ("key_rotations", 0),
        ("messages", last_message_id),
    ] {
        execute(
            client,
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), last)
                 FROM (SELECT greatest(max(id), $1::bigint) AS last FROM {table}) AS copied
                 WHERE last > 0"
            ),
            &[&issued],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
