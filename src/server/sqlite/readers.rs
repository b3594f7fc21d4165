//! A few read-only connections, so lookups and `fetch`es run beside the
//! writer: with write-ahead logging a reader sees the last commit and never
//! waits for the one in progress; a read of several statements can have
//! them share one snapshot.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use super::schema::configure;
use crate::server::store::StoreError;

/// Read connections kept open.
const READERS: usize = 4;

/// The idle read connections; a caller borrows one for each read.
pub(super) struct Readers {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl Readers {
    /// Open the read connections on the database at `path`.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let idle = (0..READERS)
            .map(|_| {
                let conn = Connection::open(path)?;
                configure(&conn)?;
                conn.pragma_update(None, "query_only", "ON")?;
                Ok(conn)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
        })
    }

    /// Run `read` on an idle connection, waiting for one if all are busy.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut idle = self.lock();
        let conn = loop {
            match idle.pop() {
                Some(conn) => break conn,
                None => {
                    idle = self
                        .returned
                        .wait(idle)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        };
        drop(idle);
        let lease = Lease {
            readers: self,
            conn: Some(conn),
        };
        read(lease.conn.as_ref().expect("held until dropped"))
    }

    /// [`Readers::read`] for a read of several statements, run in one
    /// transaction so that all of them see the database as of the first:
    /// a commit in between (a key rotation, say, between an account's key
    /// and its signed prekey) shows in all of them or in none. A read of
    /// one statement needs no transaction for that.
    pub(super) fn read_at_one_moment<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let value = read(&snapshot)?;
            snapshot.commit()?;
            Ok(value)
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        // The list stays sound even if a holder panicked.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A borrowed connection, handed back even if the read panics.
struct Lease<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.lock().push(conn);
            self.readers.returned.notify_one();
        }
    }
}
