//! The server's resource limits as a plain value, their defaults (which
//! `msgr serve`'s flags show and the README documents) and their ceilings.
//! Whoever builds a [`Limits`] from user input checks it against them (the
//! command line does, naming the flag at fault).

use std::time::Duration;

use super::store::Quota;
use crate::wire::protocol::MAX_MESSAGE_AGE;

/// Default largest envelope: a 1 MiB body plus room for the envelope's
/// keys, names and signature.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024 + 4096;

/// Ceiling of `--max-message-bytes`: one such envelope, base64-encoded in a
/// `fetch` response, still fits the client's frame limit.
pub const MAX_MESSAGE_BYTES_CEILING: u64 = 8 * 1024 * 1024;

/// Default lifetime of a login session, in seconds (7 days).
pub const DEFAULT_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;

/// Default number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Default number of connections served at once for one source address.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 32;

/// Default number of connections still in their TLS handshake or not yet
/// greeted; beyond it the oldest such connection is dropped.
pub const DEFAULT_MAX_PENDING: usize = 128;

/// Default deadline, in seconds, for a new connection's TLS handshake and
/// `hello`.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Default deadline, in seconds, for each request to arrive and each
/// response to be taken.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// Default most messages queued for one recipient.
pub const DEFAULT_MAX_QUEUED_MESSAGES: u64 = 10_000;

/// Default most envelope bytes queued for one recipient (256 MiB).
pub const DEFAULT_MAX_QUEUED_BYTES: u64 = 256 * 1024 * 1024;

/// Default free space, in bytes, the data volume keeps: below it, sends
/// are refused (64 MiB).
pub const DEFAULT_MIN_FREE_DISK: u64 = 64 * 1024 * 1024;

/// Default most bytes of large frames (beyond what a connection that is
/// not logged in may send) being read or handled at once, server-wide.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 256 * 1024 * 1024;

/// Default most accounts registered with one key.
pub const DEFAULT_MAX_ACCOUNTS_PER_KEY: u64 = 3;

/// Default share, in percent, of a recipient's quota that one sender's
/// messages may take.
pub const DEFAULT_SENDER_SHARE: u64 = 25;

/// Default `login` requests per minute from one source address.
pub const DEFAULT_LOGINS_PER_MINUTE: u32 = 30;

/// Default `register` requests per hour from one source address.
pub const DEFAULT_REGISTRATIONS_PER_HOUR: u32 = 10;

/// Default `get_key` requests per minute from one source address on
/// connections that act for nobody.
pub const DEFAULT_LOOKUPS_PER_MINUTE: u32 = 120;

/// Room in a frame beyond the base64 envelope: JSON keys, names, quoting,
/// and a `register` or `publish_prekeys` carrying a full pool of one-time
/// prekeys (200 of about 800 bytes each with a 4096-bit key).
const FRAME_SLACK: u64 = 256 * 1024;

/// Largest frame payload read before `hello` is answered: a `hello` is a
/// few dozen bytes.
pub const HELLO_MAX_FRAME: usize = 1024;

/// Largest frame payload read from a connection that acts for nobody:
/// enough for a `register` with a full pool of one-time prekeys, far less
/// than a message, which only an account can send.
pub const ANONYMOUS_MAX_FRAME: usize = FRAME_SLACK as usize;

/// Up to `burst` events per `period` from one source, refilled evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Most events allowed at once, and per period.
    pub burst: u32,
    /// The period over which `burst` events are refilled.
    pub period: Duration,
}

/// The server's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest envelope accepted, in bytes.
    pub max_message_bytes: u64,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Connections served at once (after their `hello`).
    pub max_connections: usize,
    /// Connections served at once for one source address.
    pub max_connections_per_source: usize,
    /// Connections still being admitted (TLS handshake, `hello`, waiting
    /// for a free slot); more evict the oldest.
    pub max_pending: usize,
    /// Deadline for a new connection's TLS handshake, `hello` and slot.
    pub handshake_timeout: Duration,
    /// Deadline for each read of a request and write of a response (on a
    /// connection that acts for nobody, the handshake timeout if shorter).
    pub idle_timeout: Duration,
    /// Most messages and bytes queued for one recipient.
    pub mailbox: Quota,
    /// How long a message may wait for its recipient before it expires.
    pub max_message_age: Duration,
    /// Most accounts registered with one key.
    pub max_accounts_per_key: u64,
    /// Most bytes of frames larger than a connection that is not logged in
    /// may send, being read or held by `send`s in flight, server-wide; a
    /// connection about to read one more waits. At least the largest frame.
    pub max_buffered_bytes: u64,
    /// Free bytes the data volume keeps; sends that would eat into them
    /// are refused.
    pub min_free_disk: u64,
    /// `login` requests per source address.
    pub logins: Rate,
    /// `register` requests per source address.
    pub registrations: Rate,
    /// Unauthenticated `get_key` requests per source address.
    pub lookups: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            session_ttl: Duration::from_secs(DEFAULT_SESSION_TTL_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            max_pending: DEFAULT_MAX_PENDING,
            handshake_timeout: Duration::from_secs(DEFAULT_HANDSHAKE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            mailbox: Quota {
                max_messages: DEFAULT_MAX_QUEUED_MESSAGES,
                max_bytes: DEFAULT_MAX_QUEUED_BYTES,
                sender_share: DEFAULT_SENDER_SHARE,
            },
            max_message_age: Duration::from_secs(MAX_MESSAGE_AGE),
            max_accounts_per_key: DEFAULT_MAX_ACCOUNTS_PER_KEY,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            min_free_disk: DEFAULT_MIN_FREE_DISK,
            logins: Rate {
                burst: DEFAULT_LOGINS_PER_MINUTE,
                period: Duration::from_secs(60),
            },
            registrations: Rate {
                burst: DEFAULT_REGISTRATIONS_PER_HOUR,
                period: Duration::from_secs(3600),
            },
            lookups: Rate {
                burst: DEFAULT_LOOKUPS_PER_MINUTE,
                period: Duration::from_secs(60),
            },
        }
    }
}

impl Limits {
    /// How often expired messages and prekeys are looked for: a tenth of
    /// the message age, between once a second and once a minute.
    pub fn expiry_interval(&self) -> Duration {
        (self.max_message_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Largest frame payload read from a logged-in connection: a
    /// base64-encoded maximal envelope plus JSON overhead, never beyond
    /// what a 32-bit length can announce.
    pub fn max_frame(&self) -> usize {
        let base64 = self.max_message_bytes.saturating_mul(4) / 3;
        let max = base64.saturating_add(FRAME_SLACK).min(u64::from(u32::MAX));
        usize::try_from(max).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::CLIENT_MAX_FRAME;

    #[test]
    fn the_largest_message_fits_one_client_frame() {
        let limits = Limits {
            max_message_bytes: MAX_MESSAGE_BYTES_CEILING,
            ..Limits::default()
        };
        // A fetch response: base64 envelope, JSON framing, the sender's name.
        let response = limits.max_message_bytes.div_ceil(3) * 4 + 1024;
        assert!(response < CLIENT_MAX_FRAME as u64);
        assert!(limits.max_frame() < CLIENT_MAX_FRAME);
    }
}
