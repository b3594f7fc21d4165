//! What the operator sees (`msgr admin`, the metrics): the accounts with
//! what each holds, and the totals.

use deadpool_postgres::GenericClient;

use super::{row, rows, sql_int, unsigned};
use crate::server::store::{AccountSummary, StoreError, StoreStats};

/// Every account (deleted ones still naming queued messages left out),
/// by name, with what it holds as of `now`.
pub(in crate::server::postgres) async fn accounts(
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
pub(in crate::server::postgres) async fn stats(
    client: &impl GenericClient,
    now: u64,
) -> Result<StoreStats, StoreError> {
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
