//! The store read for copying into another backend (`msgr admin
//! migrate`): a read-only connection of its own holding one read
//! transaction, so that every part read comes from the same moment, and
//! one query per table and part, in id order.

use rusqlite::{Connection, Row, params};

use super::schema::configure;
use super::{DB_FILE, SqliteStore};
use crate::server::store::copy::{
    AccountRow, ClaimedRow, MessageRow, PrekeyRow, RotationRow, SessionRow, Source,
};
use crate::server::store::{StoreError, UserId};

/// The store as it was when [`SqliteStore::export`] was called.
pub struct Export {
    /// In a read transaction until dropped.
    conn: Connection,
}

impl SqliteStore {
    /// A view of the store to copy from, which later writes do not change.
    pub fn export(&self) -> Result<Export, StoreError> {
        let conn = Connection::open(self.dir.join(DB_FILE))?;
        configure(&conn)?;
        conn.pragma_update(None, "query_only", "ON")?;
        // The view is taken by the first read, and kept until the end.
        conn.execute_batch("BEGIN")?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Ok(Export { conn })
    }
}

impl Source for Export {
    fn accounts_after(
        &mut self,
        after: UserId,
        limit: usize,
    ) -> Result<Vec<AccountRow>, StoreError> {
        let mut accounts = self
            .conn
            .prepare_cached(
                "SELECT id, name, name_key, public_key, created_at FROM users
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, limit as i64], |row| {
                Ok(AccountRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    name_key: row.get(2)?,
                    public_key: row.get(3)?,
                    created_at: row.get(4)?,
                    sessions: Vec::new(),
                    signed_prekey: None,
                    one_time_prekeys: Vec::new(),
                    claimed_one_time_prekeys: Vec::new(),
                    key_rotations: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = accounts.last().map(|account| account.id) else {
            return Ok(accounts);
        };
        let ids = (after, last);
        self.attach(
            &mut accounts,
            ids,
            "SELECT user_id, token_hash, expires_at FROM sessions
             WHERE user_id > ?1 AND user_id <= ?2 ORDER BY user_id, token_hash",
            |row| {
                Ok(SessionRow {
                    token_hash: row.get(1)?,
                    expires_at: row.get(2)?,
                })
            },
            |account, session| account.sessions.push(session),
        )?;
        self.attach(
            &mut accounts,
            ids,
            "SELECT user_id, id, public_key, created_at, signature FROM signed_prekeys
             WHERE user_id > ?1 AND user_id <= ?2",
            prekey_from_row,
            |account, prekey| account.signed_prekey = Some(prekey),
        )?;
        self.attach(
            &mut accounts,
            ids,
            "SELECT user_id, id, public_key, created_at, signature FROM one_time_prekeys
             WHERE user_id > ?1 AND user_id <= ?2 ORDER BY user_id, id",
            prekey_from_row,
            |account, prekey| account.one_time_prekeys.push(prekey),
        )?;
        self.attach(
            &mut accounts,
            ids,
            "SELECT user_id, public_key, claimed_at FROM claimed_one_time_prekeys
             WHERE user_id > ?1 AND user_id <= ?2 ORDER BY user_id, public_key",
            |row| {
                Ok(ClaimedRow {
                    public_key: row.get(1)?,
                    claimed_at: row.get(2)?,
                })
            },
            |account, claimed| account.claimed_one_time_prekeys.push(claimed),
        )?;
        self.attach(
            &mut accounts,
            ids,
            "SELECT user_id, id, old_key, new_key, rotated_at, old_signature, new_signature
             FROM key_rotations WHERE user_id > ?1 AND user_id <= ?2 ORDER BY id",
            |row| {
                Ok(RotationRow {
                    id: row.get(1)?,
                    old_key: row.get(2)?,
                    new_key: row.get(3)?,
                    rotated_at: row.get(4)?,
                    old_signature: row.get(5)?,
                    new_signature: row.get(6)?,
                })
            },
            |account, rotation| account.key_rotations.push(rotation),
        )?;
        Ok(accounts)
    }

    fn messages_after(
        &mut self,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, recipient_id, sender_id, envelope, received_at FROM messages
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut rows = statement.query(params![after, limit as i64])?;
        let (mut messages, mut bytes) = (Vec::new(), 0);
        // Rows are read one by one: those beyond the byte budget never are.
        while bytes < max_bytes
            && let Some(row) = rows.next()?
        {
            let message = MessageRow {
                id: row.get(0)?,
                recipient_id: row.get(1)?,
                sender_id: row.get(2)?,
                envelope: row.get(3)?,
                received_at: row.get(4)?,
            };
            bytes += message.envelope.len();
            messages.push(message);
        }
        Ok(messages)
    }

    /// `AUTOINCREMENT` keeps the highest id given in `sqlite_sequence`.
    fn last_message_id(&mut self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
                        coalesce((SELECT max(id) FROM messages), 0))",
            [],
            |row| row.get(0),
        )?)
    }
}

impl Export {
    /// Give each of `accounts` (in id order, with ids in `ids`, after the
    /// first and up to the second) its rows of a table: `sql` selects
    /// them by those bounds, the owner's id first; `read` makes the row,
    /// and `put` adds it to its account.
    fn attach<T>(
        &self,
        accounts: &mut [AccountRow],
        ids: (UserId, UserId),
        sql: &str,
        read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
        put: impl Fn(&mut AccountRow, T),
    ) -> Result<(), StoreError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let mut rows = statement.query(params![ids.0, ids.1])?;
        while let Some(row) = rows.next()? {
            let owner: UserId = row.get(0)?;
            let index = accounts
                .binary_search_by_key(&owner, |account| account.id)
                .map_err(|_| {
                    StoreError::Corrupt(format!("a row belongs to account {owner}, which is gone"))
                })?;
            put(&mut accounts[index], read(row)?);
        }
        Ok(())
    }
}

/// A prekey from the columns `user_id, id, public_key, created_at,
/// signature`.
fn prekey_from_row(row: &Row<'_>) -> rusqlite::Result<PrekeyRow> {
    Ok(PrekeyRow {
        id: row.get(1)?,
        public_key: row.get(2)?,
        created_at: row.get(3)?,
        signature: row.get(4)?,
    })
}
