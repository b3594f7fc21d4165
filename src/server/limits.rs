//! The server's resource limits: their defaults (which `msgr serve`'s flags
//! show and the README documents), their ceilings, and the check that turns
//! the flags into a [`Limits`] value or a clear refusal before start-up.

use std::time::Duration;

use thiserror::Error;

use super::store::Quota;
use crate::cli::args::ServeArgs;
use crate::wire::protocol::CLIENT_MAX_FRAME;

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

/// Default `login` requests per minute from one source address.
pub const DEFAULT_LOGINS_PER_MINUTE: u32 = 30;

/// Default `register` requests per hour from one source address.
pub const DEFAULT_REGISTRATIONS_PER_HOUR: u32 = 10;

/// Room in a frame beyond the base64 envelope: JSON keys, names, quoting.
const FRAME_SLACK: u64 = 64 * 1024;

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
    /// Connections still being admitted (TLS handshake, `hello`, waiting
    /// for a free slot); more evict the oldest.
    pub max_pending: usize,
    /// Deadline for a new connection's TLS handshake, `hello` and slot.
    pub handshake_timeout: Duration,
    /// Deadline for each read of a request and write of a response.
    pub idle_timeout: Duration,
    /// Most messages and bytes queued for one recipient.
    pub mailbox: Quota,
    /// `login` requests per source address.
    pub logins: Rate,
    /// `register` requests per source address.
    pub registrations: Rate,
}

/// A `serve` flag outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{flag} {problem}")]
pub struct LimitError {
    /// The flag at fault, as typed.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl Limits {
    /// Check the flags of `msgr serve` and gather them.
    pub fn from_args(args: &ServeArgs) -> Result<Self, LimitError> {
        at_least_one("--max-message-bytes", args.max_message_bytes)?;
        if args.max_message_bytes > MAX_MESSAGE_BYTES_CEILING {
            return Err(LimitError {
                flag: "--max-message-bytes",
                problem: format!(
                    "is at most {MAX_MESSAGE_BYTES_CEILING} (8 MiB), so that every message \
                     fits in one response to a client ({CLIENT_MAX_FRAME} bytes)"
                ),
            });
        }
        if args.max_queued_bytes < args.max_message_bytes {
            return Err(LimitError {
                flag: "--max-queued-bytes",
                problem: format!(
                    "must be at least --max-message-bytes ({}), or a largest message \
                     could never be queued",
                    args.max_message_bytes
                ),
            });
        }
        for (flag, value) in [
            ("--session-ttl", args.session_ttl),
            ("--handshake-timeout", args.handshake_timeout),
            ("--idle-timeout", args.idle_timeout),
            ("--max-queued-messages", args.max_queued_messages),
            ("--max-connections", args.max_connections as u64),
            ("--max-pending", args.max_pending as u64),
            ("--max-logins-per-minute", args.max_logins_per_minute.into()),
            (
                "--max-registrations-per-hour",
                args.max_registrations_per_hour.into(),
            ),
        ] {
            at_least_one(flag, value)?;
        }
        Ok(Self {
            max_message_bytes: args.max_message_bytes,
            session_ttl: Duration::from_secs(args.session_ttl),
            max_connections: args.max_connections,
            max_pending: args.max_pending,
            handshake_timeout: Duration::from_secs(args.handshake_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            mailbox: Quota {
                max_messages: args.max_queued_messages,
                max_bytes: args.max_queued_bytes,
            },
            logins: Rate {
                burst: args.max_logins_per_minute,
                period: Duration::from_secs(60),
            },
            registrations: Rate {
                burst: args.max_registrations_per_hour,
                period: Duration::from_secs(3600),
            },
        })
    }

    /// Largest frame payload read: a base64-encoded maximal envelope plus
    /// JSON overhead, never beyond what a 32-bit length can announce.
    pub fn max_frame(&self) -> usize {
        let base64 = self.max_message_bytes.saturating_mul(4) / 3;
        let max = base64.saturating_add(FRAME_SLACK).min(u64::from(u32::MAX));
        usize::try_from(max).unwrap_or(usize::MAX)
    }
}

fn at_least_one(flag: &'static str, value: u64) -> Result<(), LimitError> {
    if value == 0 {
        return Err(LimitError {
            flag,
            problem: "must be at least 1".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::args::ServeArgs;

    /// Just the serve arguments, parsed as `msgr serve` would.
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn limits(flags: &[&str]) -> Result<Limits, LimitError> {
        let argv = ["serve", "0"].iter().chain(flags);
        Limits::from_args(&Serve::try_parse_from(argv).unwrap().args)
    }

    #[test]
    fn defaults_are_accepted() {
        let limits = limits(&[]).unwrap();
        assert_eq!(limits.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(limits.mailbox.max_messages, DEFAULT_MAX_QUEUED_MESSAGES);
        assert_eq!(limits.logins.period, Duration::from_secs(60));
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_largest_message_fits_one_client_frame() {
        let limits = limits(&["--max-message-bytes", "8388608"]).unwrap();
        // A fetch response: base64 envelope, JSON framing, the sender's name.
        let response = limits.max_message_bytes.div_ceil(3) * 4 + 1024;
        assert!(response < CLIENT_MAX_FRAME as u64);
        assert!(limits.max_frame() < CLIENT_MAX_FRAME);
    }

    #[test]
    fn out_of_range_values_name_the_flag() {
        let error = limits(&["--max-message-bytes", "8388609"]).unwrap_err();
        assert_eq!(error.flag, "--max-message-bytes");
        assert!(error.to_string().contains("at most 8388608"), "{error}");
        let error = limits(&["--max-connections", "0"]).unwrap_err();
        assert_eq!(error.to_string(), "--max-connections must be at least 1");
        let error = limits(&["--max-queued-bytes", "1000"]).unwrap_err();
        assert_eq!(error.flag, "--max-queued-bytes");
    }
}
