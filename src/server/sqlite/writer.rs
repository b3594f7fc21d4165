//! Group commit. One thread owns the write connection. Callers hand it
//! their write as a closure and block; the thread takes every write that is
//! waiting, runs each in its own savepoint inside one transaction, commits
//! that transaction with a single fsync, and only then answers each caller.
//! So N concurrent `send`s cost one fsync, not N, and no caller is told
//! "done" before its change is durable. A write that fails rolls back its
//! savepoint alone; a commit that fails fails every write in the batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use std::thread::JoinHandle;
use tokio::sync::oneshot;

use rusqlite::{Connection, TransactionBehavior};
use tracing::{debug, error};

use crate::server::metrics::BatchSizes;
use crate::server::store::StoreError;

/// Most writes committed together; the rest wait for the next batch.
const MAX_BATCH: usize = 512;

/// Told the batch's fate once it is known: `None` when it committed.
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// One caller's write, run inside the batch; says whether it succeeded
/// and how to answer the caller.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The handle callers use; dropping it lets the thread finish the writes
/// already queued, close the connection and exit.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the writer thread on `conn`, recording the size of each
    /// batch in `batches`.
    pub(super) fn start(conn: Connection, batches: Option<BatchSizes>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("msgr-db-writer".into())
            .spawn(move || run(conn, &queue, batches.as_ref()))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Run `op` in the next group commit and return its result once that
    /// commit is durable, blocking the calling thread until then.
    pub(super) fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(op).wait_blocking()
    }

    /// Queue `op` for the next group commit; its result arrives through the
    /// returned [`Committed`] once that commit is durable.
    pub(super) fn submit<T, F>(&self, op: F) -> Committed<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = op(conn);
            let succeeded = result.is_ok();
            let reply: Reply = Box::new(move |failure| {
                let result = match failure {
                    Some(error) => Err(StoreError::NotCommitted(error.to_string())),
                    None => result,
                };
                // The caller may have given up waiting; nothing to do then.
                let _ = done.send(result);
            });
            (succeeded, reply)
        });
        // If the writer has stopped, the job and its reply sender are
        // dropped here and the caller learns it from the closed channel.
        let _ = self
            .jobs
            .as_ref()
            .expect("jobs is only taken when dropping")
            .send(job);
        Committed(outcome)
    }
}

/// The pending result of a write handed to the writer thread.
pub(super) struct Committed<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Committed<T> {
    /// Wait for the commit on a thread that may block.
    pub(super) fn wait_blocking(self) -> Result<T, StoreError> {
        self.0.blocking_recv().map_err(|_| abandoned())?
    }

    /// Wait for the commit without blocking a thread.
    pub(super) async fn wait(self) -> Result<T, StoreError> {
        self.0.await.map_err(|_| abandoned())?
    }
}

fn abandoned() -> StoreError {
    StoreError::NotCommitted("the database writer has stopped".into())
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the database writer thread panicked");
        }
    }
}

/// The thread: batch, commit, answer, until every [`Writer`] is gone.
fn run(mut conn: Connection, queue: &mpsc::Receiver<Job>, batches: Option<&BatchSizes>) {
    let (mut commits, mut writes) = (0u64, 0u64);
    while let Ok(first) = queue.recv() {
        let batch: Vec<Job> = std::iter::once(first)
            .chain(queue.try_iter().take(MAX_BATCH - 1))
            .collect();
        let size = batch.len();
        writes += size as u64;
        commits += 1;
        commit_batch(&mut conn, batch);
        if let Some(batches) = batches {
            batches.record(size);
        }
    }
    debug!(commits, writes, "database writer stopped");
}

/// Run the batch in one transaction, then answer everyone. Callers whose
/// job never ran (the transaction could not start) or panicked find their
/// reply channel closed and report the write as not committed.
fn commit_batch(conn: &mut Connection, batch: Vec<Job>) {
    let mut replies = Vec::with_capacity(batch.len());
    let failure = run_batch(conn, batch, &mut replies).err();
    if let Some(error) = &failure {
        error!(%error, writes = replies.len(), "group commit failed");
    }
    for reply in replies {
        reply(failure.as_ref());
    }
}

fn run_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    replies: &mut Vec<Reply>,
) -> Result<(), StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch {
        let savepoint = tx.savepoint()?;
        // A panicking job loses only its own write: its savepoint rolls
        // back and its caller sees the reply channel close.
        match catch_unwind(AssertUnwindSafe(|| job(&savepoint))) {
            Ok((succeeded, reply)) => {
                replies.push(reply);
                if succeeded {
                    savepoint.commit()?;
                }
            }
            Err(_) => error!("a database write panicked; it was rolled back"),
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER NOT NULL);")
            .unwrap();
        (dir, Writer::start(conn, None).unwrap())
    }

    fn count(writer: &Writer) -> i64 {
        writer
            .write(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn a_failed_write_rolls_back_alone() {
        let (_dir, writer) = writer();
        writer
            .write(|conn| Ok(conn.execute("INSERT INTO t VALUES (1)", [])?))
            .unwrap();
        let failed = writer.write(|conn| -> Result<(), StoreError> {
            conn.execute("INSERT INTO t VALUES (2)", [])?;
            conn.execute("INSERT INTO t VALUES (NULL)", [])?;
            Ok(())
        });
        assert!(matches!(failed, Err(StoreError::Database(_))));
        assert_eq!(count(&writer), 1);
    }

    #[test]
    fn a_panicking_write_is_reported_and_the_writer_goes_on() {
        let (_dir, writer) = writer();
        let result = writer.write(|_| -> Result<(), StoreError> { panic!("bug") });
        assert!(matches!(result, Err(StoreError::NotCommitted(_))));
        writer
            .write(|conn| Ok(conn.execute("INSERT INTO t VALUES (1)", [])?))
            .unwrap();
        assert_eq!(count(&writer), 1);
    }
}
