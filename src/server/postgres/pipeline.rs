//! Transactions whose BEGIN and COMMIT travel with their statements.
//!
//! tokio-postgres sends a request when its future is first polled, and
//! PostgreSQL runs requests in the order they arrive. So statements that
//! need no answer from one another can leave together and cost one round
//! trip between them (a flight), where awaiting each would cost one each.
//! [`Transaction::begin_with`] sends BEGIN ahead of the first flight and
//! [`Transaction::commit_with`] sends COMMIT right behind the last, so that
//! a transaction costs no round trip of its own.
//!
//! Order is what makes this safe. Every flight polls its futures in the
//! order written (`join!(biased; …)`), so BEGIN leaves before the
//! statements and COMMIT after them. A statement not yet prepared on the
//! connection would wait for its preparation and leave after the COMMIT,
//! so `commit_with` prepares the flight's statements first (free once the
//! connection has cached them); the statements sent ahead of a COMMIT must
//! each be one request, sent when first polled, as a query is.
//!
//! A statement that fails on the server aborts the transaction, and the
//! COMMIT behind it then rolls it back (one that fails before it is sent,
//! on parameters it cannot encode, leaves the COMMIT to commit what came
//! before it). A transaction dropped before it ended (an error returned
//! early, a panic) takes its connection out of the pool and closes it,
//! which makes the server roll it back: no connection goes back to the
//! pool inside a transaction. Errors are rare (a conflict lost to another
//! transaction, a database out of reach), and the pool opens a new
//! connection in its place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Object, Pool};
use tracing::warn;

use super::{is_retryable, pool_error};
use crate::server::store::StoreError;

/// How the store's transactions begin.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// How a transaction that only reads begins: one snapshot for all its
/// statements, taken at the first.
const BEGIN_READING: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Runs of a transaction that loses a deadlock or a serialization
/// conflict before the error is returned.
const MAX_ATTEMPTS: u32 = 5;

/// Run `attempt` (a transaction, say) until it succeeds or fails for a
/// reason other than losing a deadlock or serialization conflict to
/// another transaction; after such a loss it runs again, a little later
/// each time, up to [`MAX_ATTEMPTS`] runs.
pub(super) async fn retrying<T, Attempt>(
    mut attempt: impl FnMut() -> Attempt,
) -> Result<T, StoreError>
where
    Attempt: Future<Output = Result<T, StoreError>>,
{
    let mut runs = 1;
    loop {
        match attempt().await {
            Err(error) if is_retryable(&error) && runs < MAX_ATTEMPTS => {
                warn!(%error, attempt = runs, "a transaction conflicted; running it again");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(runs))).await;
                runs += 1;
            }
            result => return result,
        }
    }
}

/// A transaction on one pooled connection.
pub(super) struct Transaction {
    /// The connection; `None` only while dropping.
    client: Option<Object>,
    /// Whether a COMMIT has ended the transaction (committed it, or rolled
    /// back one that a failed statement aborted).
    ended: AtomicBool,
}

impl Transaction {
    /// A transaction on a connection from `pool`;
    /// [`Transaction::begin_with`] begins it.
    pub(super) async fn on(pool: &Pool) -> Result<Self, StoreError> {
        Ok(Self {
            client: Some(pool.get().await.map_err(pool_error)?),
            ended: AtomicBool::new(false),
        })
    }

    /// The connection, for the transaction's statements.
    pub(super) fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the connection is only taken when dropping")
    }

    /// Begin, sending BEGIN ahead of the requests `statements` sends when
    /// first polled, and run them. BEGIN fails only on a connection that
    /// is lost, on which the statements fail too.
    pub(super) async fn begin_with<T>(
        &self,
        statements: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.begin_as(BEGIN, statements).await
    }

    /// [`Transaction::begin_with`] for statements that only read, which
    /// then all see the database as it was at the first: no commit in
    /// between shows in some of them and not in others.
    pub(super) async fn begin_reading_with<T>(
        &self,
        statements: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.begin_as(BEGIN_READING, statements).await
    }

    async fn begin_as<T>(
        &self,
        begin: &str,
        statements: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let begin = async { Ok(self.client().batch_execute(begin).await?) };
        let ((), value) = tokio::try_join!(biased; begin, statements)?;
        Ok(value)
    }

    /// End the transaction, sending COMMIT right behind the requests
    /// `statements` sends when first polled, once the texts in `prepared`
    /// (every statement among them) are prepared on the connection.
    /// Returns the statements' outcome; if that is an error the database
    /// returned, the COMMIT rolled the transaction back, but one that the
    /// statements' own code makes of what came back (a check of the rows)
    /// leaves the COMMIT to commit. The outer error is the COMMIT's own.
    pub(super) async fn commit_with<T>(
        &self,
        prepared: &[&str],
        statements: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        for text in prepared {
            self.client().prepare_cached(text).await?;
        }
        let commit = async { self.client().batch_execute("COMMIT").await };
        let (value, committed) = tokio::join!(biased; statements, commit);
        // Committed or rolled back, the transaction is over; a COMMIT that
        // failed (a lost connection, a conflict found at commit) ended it
        // too.
        self.ended.store(true, Ordering::Release);
        committed?;
        Ok(value)
    }

    /// Commit what the transaction did.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        self.commit_with(&[], async { Ok(()) }).await?
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !*self.ended.get_mut()
        {
            // Out of the pool: dropping the connection closes it.
            drop(Object::take(client));
        }
    }
}

#[cfg(test)]
mod tests;
