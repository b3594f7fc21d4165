//! The SQL behind [`super::PgStore`]: one function per operation, run on
//! the transaction (or, for plain reads, the connection) it is given, kept
//! by topic: `accounts`, `prekeys`, `sessions`, `messages` (the queues)
//! and `operator` (what `msgr admin` and the metrics read). `key_bundle`,
//! which every `create` waits for, begins and commits the transaction it
//! is given itself, so as to send all of it in one flight (`super::pipeline`).
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
//!    sessions, `FOR SHARE` to claim one of its prekeys, `FOR KEY SHARE`
//!    to queue for it or from it (which keeps it from being deleted while
//!    the message names it, as `messages` has no foreign keys here, and
//!    waits for nothing but a deletion); only the clean-up of deleted
//!    accounts' rows skips those it finds locked;
//! 2. queue totals (`queue_totals`), in ascending recipient id, by
//!    whoever inserts or deletes messages, so a recipient's quota check
//!    and insert are one step and its messages' ids grow in commit order;
//! 3. then the rows the operation changes;
//! 4. last, just before the commit, the journal of ended sessions.
//!
//! Deadlocks with other writers (which PostgreSQL breaks by failing one
//! transaction) are retried by the caller (`super::pipeline::retrying`).

mod accounts;
mod messages;
mod operator;
mod prekeys;
mod sessions;

pub(super) use accounts::{
    delete_unreferenced_accounts, find_user, register, rotate_key, unregister, user_from_row,
};
pub(super) use messages::{EXPIRE_BATCH, ack, expire, fetch, lock_queues};
pub(super) use operator::{accounts, stats};
pub(super) use prekeys::{key_bundle, one_time_prekey_count, publish_prekeys};
pub(super) use sessions::{
    authenticate, create_session, delete_session, delete_sessions, find_session, revocations_after,
};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::server::store::StoreError;

/// Parameters of one statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// PostgreSQL keeps signed 64-bit integers; larger times and ids are
/// clamped, as in the SQLite store.
pub(super) fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Column `index` of `row` as an unsigned number.
pub(super) fn unsigned<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, StoreError> {
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
