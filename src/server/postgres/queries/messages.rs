//! The queues: the recipients' totals locked before messages are added or
//! removed, pages of a queue, acknowledgements, and deleting what has
//! outlived its use.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::prekeys::usable_since;
use super::{execute, rows, sql_int, unsigned};
use crate::server::store::{Expired, Page, REVOCATIONS_KEPT, StoreError, StoredMessage, UserId};
use crate::wire::protocol::CLOCK_SLACK;

/// Most rows one [`expire`] step deletes of each kind, so that it holds
/// its locks only briefly; the caller repeats while it deletes that many.
pub(in crate::server::postgres) const EXPIRE_BATCH: u64 = 10_000;

/// Lock the queue totals of the recipients with these canonical names
/// and these ids, in ascending id, before their messages are inserted or
/// deleted; their rows, `recipient_id, messages, bytes`.
pub(in crate::server::postgres) async fn lock_queues(
    client: &impl GenericClient,
    names: &[String],
    ids: &[UserId],
) -> Result<Vec<Row>, StoreError> {
    rows(
        client,
        // One array of ids, so that the primary key's index finds them
        // all (and in order), where an OR would scan the table.
        "SELECT recipient_id, messages, bytes FROM queue_totals
         WHERE recipient_id = ANY(array_cat($2, ARRAY(SELECT id FROM users WHERE name_key = ANY($1))))
         ORDER BY recipient_id FOR UPDATE",
        &[&names, &ids],
    )
    .await
}

/// A page of the recipient's queue, oldest first, within its byte budget
/// (counted by the server from the stored lengths, so envelopes beyond the
/// budget are never read).
pub(in crate::server::postgres) async fn fetch(
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
pub(in crate::server::postgres) async fn ack(
    client: &impl GenericClient,
    recipient: UserId,
    ids: &[u64],
) -> Result<u64, StoreError> {
    let ids: Vec<i64> = ids
        .iter()
        .filter_map(|&id| i64::try_from(id).ok())
        .collect();
    lock_queues(client, &[], &[recipient]).await?;
    execute(
        client,
        "DELETE FROM messages WHERE recipient_id = $1 AND id = ANY($2)",
        &[&recipient, &ids],
    )
    .await
}

/// Delete, up to [`EXPIRE_BATCH`] of each, the messages received more than
/// `max_message_age` seconds before `now`, the one-time prekeys senders no
/// longer use, and the record of one-time prekeys handed out so long ago
/// (with the clock slack on top) that, published again, they would not be
/// used either.
pub(in crate::server::postgres) async fn expire(
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
    lock_queues(client, &[], &recipients).await?;
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
