//! What a read hands over: each genuine message, opened, to a [`Sink`],
//! which writes it out; and each message that was not shown, with why
//! ([`Problem`]).

use std::path::PathBuf;

use crate::client::directory::{CheckedKey, PinStatus};
use crate::client::error::ClientError;
use crate::wire::envelope::EnvelopeError;
use crate::wire::protocol::UserName;

/// A verified, decrypted message.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The sender's random message id, as lowercase hex.
    pub id: String,
    /// The sender, as the envelope names them.
    pub sender: &'a UserName,
    /// The recipient, as the envelope names them.
    pub recipient: &'a UserName,
    /// Send time, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// The plaintext body.
    pub body: &'a [u8],
    /// Whether the sender's key was pinned on reading this message.
    pub sender_pin: PinStatus,
}

/// Which message a problem is about, as its envelope names it (the id and
/// send time unverified unless the problem says otherwise).
#[derive(Debug, Clone)]
pub struct About {
    /// The sender the envelope names.
    pub sender: UserName,
    /// The sender's message id, as lowercase hex.
    pub message_id: String,
    /// Send time, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

/// A queued message that was not shown.
#[derive(Debug)]
pub enum Problem {
    /// The envelope cannot be parsed; it was discarded.
    Unreadable {
        /// The server's id of the message.
        id: u64,
        /// The sender the server recorded, made printable.
        recorded: String,
        /// What is wrong with it.
        error: EnvelopeError,
    },
    /// The envelope names another sender than the server recorded; it was
    /// discarded.
    SenderMismatch {
        /// The message, with the sender its envelope claims.
        about: About,
        /// The sender the server recorded, made printable.
        recorded: String,
    },
    /// The envelope failed verification or decryption.
    Failed {
        /// The message.
        about: About,
        /// Why it failed.
        error: EnvelopeError,
        /// Where the message is kept, if it is.
        kept: Kept,
    },
    /// The message was sent too long ago to be shown; it was discarded.
    Stale {
        /// The message (its signature checked).
        about: About,
        /// What it was sent before.
        limit: StaleLimit,
    },
    /// The sender's key is not available now; the message stays queued.
    Held {
        /// The message.
        about: About,
        /// Why the key is not available.
        error: ClientError,
    },
}

/// What became of a message that failed verification.
#[derive(Debug)]
pub enum Kept {
    /// Saved in this file of the account's `rejected/` folder.
    Saved(PathBuf),
    /// Tried again from this file, where it stays.
    StillIn(PathBuf),
    /// Discarded: the `rejected/` folder holds as many as it may.
    Discarded,
}

/// Why a message is too old to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleLimit {
    /// It was sent more than the maximum message age ago: a copy the
    /// server kept (or replays) after its time.
    MaxAge,
    /// It was sent before this keyring made its first prekey, so it was
    /// not sealed for this keyring.
    Keyring,
}

/// Where a read's results go: genuine messages, keys pinned on the way,
/// and the messages that were not shown. An `Err` from `deliver` (such as
/// a closed stdout) stops the read; what was delivered before it is still
/// acknowledged.
pub trait Sink {
    /// The sink's failure; the read's own failures convert into it.
    type Error: From<ClientError>;

    /// Write `message` out in full; then it is acknowledged.
    fn deliver(&mut self, message: &Opened<'_>) -> Result<(), Self::Error>;

    /// The key of `user` was pinned on sight, to open a message.
    fn pinned_on_sight(&mut self, user: &str, fingerprint: &str);

    /// The pin of a sender followed their key rotations to `checked`, to
    /// open a message.
    fn key_rotated(&mut self, checked: &CheckedKey);

    /// A message was not shown.
    fn not_shown(&mut self, problem: Problem);

    /// A following read lost its connection with `error` and will try to
    /// connect again for up to `within`.
    fn connection_lost(&mut self, error: &ClientError, within: std::time::Duration);

    /// A following read is connected again to `server`.
    fn reconnected(&mut self, server: &str);
}
