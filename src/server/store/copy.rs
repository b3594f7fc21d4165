//! A store's whole state as plain rows, for `msgr admin migrate`: one
//! backend reads it ([`Source`], the SQLite store's export) and another
//! writes it (the PostgreSQL store's import), neither knowing the other.
//! The rows hold the columns as stored, ids and times included, so that
//! the copy is exact.

use thiserror::Error;

use super::{StoreError, UserId};

/// One account's row, live or deleted (the name key of a deleted one
/// starts with `#`; it stays while messages it sent are queued), with
/// everything that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// Database id, kept in the copy: messages name it.
    pub id: UserId,
    /// The name as registered.
    pub name: String,
    /// The canonical name, or `#` and the id for a deleted account.
    pub name_key: String,
    /// SubjectPublicKeyInfo DER; empty for a deleted account.
    pub public_key: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Its sessions.
    pub sessions: Vec<SessionRow>,
    /// Its signed prekey, if it published one.
    pub signed_prekey: Option<PrekeyRow>,
    /// Its pool of one-time prekeys.
    pub one_time_prekeys: Vec<PrekeyRow>,
    /// The public keys of its one-time prekeys handed out.
    pub claimed_one_time_prekeys: Vec<ClaimedRow>,
    /// Its key rotations, oldest first.
    pub key_rotations: Vec<RotationRow>,
}

impl AccountRow {
    /// Whether the account was deleted (its row stays for the messages
    /// it sent).
    pub fn is_deleted(&self) -> bool {
        self.name_key.starts_with('#')
    }
}

/// A session's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of its token.
    pub token_hash: Vec<u8>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// A signed or one-time prekey's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrekeyRow {
    /// Its number, chosen by the account.
    pub id: i64,
    /// The X25519 public key.
    pub public_key: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// The identity key's signature.
    pub signature: Vec<u8>,
}

/// The row of a one-time prekey handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRow {
    /// The prekey's public key.
    pub public_key: Vec<u8>,
    /// When it was handed out, seconds since the Unix epoch.
    pub claimed_at: i64,
}

/// A key rotation's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRow {
    /// Database id, which orders an account's rotations.
    pub id: i64,
    /// The replaced key.
    pub old_key: Vec<u8>,
    /// The replacing key.
    pub new_key: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub rotated_at: i64,
    /// The replaced key's signature.
    pub old_signature: Vec<u8>,
    /// The replacing key's signature.
    pub new_signature: Vec<u8>,
}

/// A queued message's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Database id, kept in the copy: recipients acknowledge by it.
    pub id: i64,
    /// The recipient's account id.
    pub recipient_id: UserId,
    /// The sender's account id.
    pub sender_id: UserId,
    /// The envelope bytes.
    pub envelope: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub received_at: i64,
}

/// A store read for copying, in id order and a part at a time, all parts
/// from one consistent view of it.
pub trait Source {
    /// Up to `limit` accounts with ids above `after`, in id order.
    fn accounts_after(
        &mut self,
        after: UserId,
        limit: usize,
    ) -> Result<Vec<AccountRow>, StoreError>;

    /// Queued messages with ids above `after`, in id order: up to `limit`
    /// of them, and no more once their envelopes reach `max_bytes` (but
    /// at least one, if there is one).
    fn messages_after(
        &mut self,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<MessageRow>, StoreError>;

    /// The highest message id the store has ever given, queued or not,
    /// so that the copy never gives one again.
    fn last_message_id(&mut self) -> Result<i64, StoreError>;
}

/// What was copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Live accounts.
    pub accounts: u64,
    /// Deleted accounts kept for the messages they sent.
    pub deleted_accounts: u64,
    /// Sessions.
    pub sessions: u64,
    /// Queued messages.
    pub messages: u64,
    /// Signed prekeys.
    pub signed_prekeys: u64,
    /// One-time prekeys in the pools.
    pub one_time_prekeys: u64,
    /// Records of one-time prekeys handed out.
    pub claimed_one_time_prekeys: u64,
    /// Key rotations.
    pub key_rotations: u64,
}

impl Copied {
    /// Count `account` and what belongs to it.
    pub fn add_account(&mut self, account: &AccountRow) {
        let count = |len: usize| len as u64;
        if account.is_deleted() {
            self.deleted_accounts += 1;
        } else {
            self.accounts += 1;
        }
        self.sessions += count(account.sessions.len());
        self.signed_prekeys += u64::from(account.signed_prekey.is_some());
        self.one_time_prekeys += count(account.one_time_prekeys.len());
        self.claimed_one_time_prekeys += count(account.claimed_one_time_prekeys.len());
        self.key_rotations += count(account.key_rotations.len());
    }
}

/// Why a copy did not happen; in every case the target is left as it was.
#[derive(Debug, Error)]
pub enum CopyError {
    /// The target holds accounts or messages already.
    #[error("the target database holds accounts or messages already")]
    NotEmpty,
    /// Reading the source failed.
    #[error("reading the source failed: {0}")]
    Source(StoreError),
    /// Writing the target failed.
    #[error("writing the target failed: {0}")]
    Target(#[from] StoreError),
}
