//! The arguments of `msgr serve`: where to listen, where to keep data, TLS
//! material, and the server's limits (defaults and ceilings in
//! [`crate::server::limits`]), checked here by [`ServeArgs::limits`] so
//! that a value out of range is refused naming its flag.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use thiserror::Error;

use crate::cli::args::StoreArgs;
use crate::cli::logging::LogFormat;
use crate::server::Limits;
use crate::server::limits::{
    DEFAULT_HANDSHAKE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_LOGINS_PER_MINUTE,
    DEFAULT_LOOKUPS_PER_MINUTE, DEFAULT_MAX_ACCOUNTS_PER_KEY, DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_SOURCE, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PENDING, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES,
    DEFAULT_MIN_FREE_DISK, DEFAULT_REGISTRATIONS_PER_HOUR, DEFAULT_SENDER_SHARE,
    DEFAULT_SESSION_TTL_SECS, MAX_MESSAGE_BYTES_CEILING, Rate,
};
use crate::server::store::Quota;
use crate::wire::protocol::{CLIENT_MAX_FRAME, MAX_MESSAGE_AGE};

/// `msgr serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port to listen on; 0 picks a free one and prints it.
    pub port: u16,

    /// Address to listen on: an IP address, or a host name whose every
    /// address is listened on (localhost: the loopback addresses).
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
    pub bind: BindHost,

    /// Where the server keeps its state.
    #[command(flatten)]
    pub store: StoreArgs,

    /// How to write the log on stderr: `text` for people, `json` (one
    /// object per line) for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Serve metrics (GET /metrics, for Prometheus) and a health check
    /// (GET /healthz) over plain HTTP on this address and port; off unless
    /// given. The metrics tell how the server is used: keep them on
    /// loopback or a private network.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// TLS certificate chain (PEM); needs --key.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// TLS private key (PEM); needs --cert.
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Largest message (sealed envelope) accepted, in bytes; at most
    /// 8388608 (8 MiB).
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: u64,

    /// Most messages queued for one recipient; more are refused as
    /// mailbox_full until the recipient reads.
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUED_MESSAGES, value_name = "N")]
    pub max_queued_messages: u64,

    /// Most envelope bytes queued for one recipient.
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUED_BYTES, value_name = "BYTES")]
    pub max_queued_bytes: u64,

    /// Free space, in bytes, the data volume keeps: a send that would eat
    /// into it is refused as storage_full, so the database never fills
    /// the disk (0: no reserve).
    #[arg(long, default_value_t = DEFAULT_MIN_FREE_DISK, value_name = "BYTES")]
    pub min_free_disk: u64,

    /// Most bytes of large frames (messages) being read or queued for the
    /// database at once, server-wide; beyond it connections wait before
    /// reading more. At least the largest frame a message makes.
    #[arg(long, default_value_t = DEFAULT_MAX_BUFFERED_BYTES, value_name = "BYTES")]
    pub max_buffered_bytes: u64,

    /// Most accounts one key may be registered under; registering it
    /// under another is refused as key_in_use.
    #[arg(long, default_value_t = DEFAULT_MAX_ACCOUNTS_PER_KEY, value_name = "N")]
    pub max_accounts_per_key: u64,

    /// The share, in percent (1 to 100), of a recipient's message and byte
    /// quota that one sender's messages may take; beyond it that sender
    /// gets mailbox_full while others can still send.
    #[arg(long, default_value_t = DEFAULT_SENDER_SHARE, value_name = "PERCENT")]
    pub sender_share: u64,

    /// Seconds a message may wait for its recipient (default 30 days);
    /// older ones are deleted unread. Clients refuse messages sent more
    /// than 30 days ago whatever this says.
    #[arg(long, default_value_t = MAX_MESSAGE_AGE, value_name = "SECONDS")]
    pub max_message_age: u64,

    /// How long a login session stays valid, in seconds.
    #[arg(long, default_value_t = DEFAULT_SESSION_TTL_SECS, value_name = "SECONDS")]
    pub session_ttl: u64,

    /// Most connections served at once; further greeted connections wait
    /// for a free slot.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,

    /// Most connections served at once for one address (IPv6: one /64);
    /// beyond them a new connection from it is refused as busy.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_SOURCE, value_name = "N")]
    pub max_connections_per_source: usize,

    /// Most connections still in their TLS handshake or not yet greeted;
    /// beyond this the oldest of them is dropped.
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING, value_name = "N")]
    pub max_pending: usize,

    /// Seconds a new connection has for its TLS handshake and hello.
    #[arg(long, default_value_t = DEFAULT_HANDSHAKE_TIMEOUT_SECS, value_name = "SECONDS")]
    pub handshake_timeout: u64,

    /// Seconds a connection may take to send each request or receive each
    /// response; idle connections are closed after it.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT_SECS, value_name = "SECONDS")]
    pub idle_timeout: u64,

    /// `login` requests allowed per minute from one address (IPv6: one
    /// /64); more are refused as rate_limited.
    #[arg(long, default_value_t = DEFAULT_LOGINS_PER_MINUTE, value_name = "N")]
    pub max_logins_per_minute: u32,

    /// `register` requests allowed per hour from one address (IPv6: one
    /// /64); more are refused as rate_limited.
    #[arg(long, default_value_t = DEFAULT_REGISTRATIONS_PER_HOUR, value_name = "N")]
    pub max_registrations_per_hour: u32,

    /// `get_key` requests allowed per minute from one address (IPv6: one
    /// /64) on connections not logged in, so that names cannot be
    /// enumerated quickly; more are refused as rate_limited.
    #[arg(long, default_value_t = DEFAULT_LOOKUPS_PER_MINUTE, value_name = "N")]
    pub max_lookups_per_minute: u32,
}

/// What `--bind` names: an IP address (IPv6 with or without brackets), or
/// a host name that `msgr serve` resolves when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindHost {
    /// An address, bound as it is.
    Ip(IpAddr),
    /// A host name, such as `localhost`; every address it resolves to is
    /// bound.
    Name(String),
}

impl FromStr for BindHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Self::Ip(ip.into()))
                .map_err(|_| "is not an IPv6 address in brackets".into());
        }
        if let Ok(ip) = text.parse() {
            return Ok(Self::Ip(ip));
        }
        let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if text.is_empty() || !text.chars().all(name_like) {
            return Err("is neither an IP address nor a host name (give no port here)".into());
        }
        Ok(Self::Name(text.to_owned()))
    }
}

impl fmt::Display for BindHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
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

impl ServeArgs {
    /// The server's limits from the flags, or the first flag out of range.
    pub fn limits(&self) -> Result<Limits, LimitError> {
        at_least_one("--max-message-bytes", self.max_message_bytes)?;
        if self.max_message_bytes > MAX_MESSAGE_BYTES_CEILING {
            return Err(LimitError {
                flag: "--max-message-bytes",
                problem: format!(
                    "is at most {MAX_MESSAGE_BYTES_CEILING} (8 MiB), so that every message \
                     fits in one response to a client ({CLIENT_MAX_FRAME} bytes)"
                ),
            });
        }
        if self.sender_share > 100 {
            return Err(LimitError {
                flag: "--sender-share",
                problem: "is a percentage, at most 100".into(),
            });
        }
        if self.max_queued_bytes < self.max_message_bytes {
            return Err(LimitError {
                flag: "--max-queued-bytes",
                problem: format!(
                    "must be at least --max-message-bytes ({}), or a largest message \
                     could never be queued",
                    self.max_message_bytes
                ),
            });
        }
        for (flag, value) in [
            ("--session-ttl", self.session_ttl),
            ("--handshake-timeout", self.handshake_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--max-queued-messages", self.max_queued_messages),
            ("--max-message-age", self.max_message_age),
            ("--sender-share", self.sender_share),
            ("--max-accounts-per-key", self.max_accounts_per_key),
            ("--max-connections", self.max_connections as u64),
            (
                "--max-connections-per-source",
                self.max_connections_per_source as u64,
            ),
            ("--max-pending", self.max_pending as u64),
            ("--max-logins-per-minute", self.max_logins_per_minute.into()),
            (
                "--max-registrations-per-hour",
                self.max_registrations_per_hour.into(),
            ),
            (
                "--max-lookups-per-minute",
                self.max_lookups_per_minute.into(),
            ),
        ] {
            at_least_one(flag, value)?;
        }
        let limits = Limits {
            max_message_bytes: self.max_message_bytes,
            session_ttl: Duration::from_secs(self.session_ttl),
            max_connections: self.max_connections,
            max_connections_per_source: self.max_connections_per_source,
            max_pending: self.max_pending,
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            mailbox: Quota {
                max_messages: self.max_queued_messages,
                max_bytes: self.max_queued_bytes,
                sender_share: self.sender_share,
            },
            max_message_age: Duration::from_secs(self.max_message_age),
            max_accounts_per_key: self.max_accounts_per_key,
            max_buffered_bytes: self.max_buffered_bytes,
            min_free_disk: self.min_free_disk,
            logins: Rate {
                burst: self.max_logins_per_minute,
                period: Duration::from_secs(60),
            },
            registrations: Rate {
                burst: self.max_registrations_per_hour,
                period: Duration::from_secs(3600),
            },
            lookups: Rate {
                burst: self.max_lookups_per_minute,
                period: Duration::from_secs(60),
            },
        };
        let largest_frame = limits.max_frame() as u64;
        if limits.max_buffered_bytes < largest_frame {
            return Err(LimitError {
                flag: "--max-buffered-bytes",
                problem: format!(
                    "must be at least the largest frame a message makes ({largest_frame} bytes \
                     at --max-message-bytes {}), or such a message could never be read",
                    self.max_message_bytes
                ),
            });
        }
        Ok(limits)
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

    /// Just the serve arguments, parsed as `msgr serve` would.
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn limits(flags: &[&str]) -> Result<Limits, LimitError> {
        let argv = ["serve", "0"].iter().chain(flags);
        Serve::try_parse_from(argv).unwrap().args.limits()
    }

    #[test]
    fn the_default_flags_give_the_default_limits() {
        let limits = limits(&[]).unwrap();
        let defaults = Limits::default();
        assert_eq!(limits.max_message_bytes, defaults.max_message_bytes);
        assert_eq!(limits.mailbox, defaults.mailbox);
        assert_eq!(limits.logins, defaults.logins);
        assert_eq!(limits.registrations, defaults.registrations);
        assert_eq!(limits.lookups, defaults.lookups);
        assert_eq!(limits.session_ttl, defaults.session_ttl);
        assert_eq!(limits.max_message_age, defaults.max_message_age);
        assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
    }

    #[test]
    fn bind_takes_addresses_and_host_names() {
        let bind = |text: &str| text.parse::<BindHost>();
        assert_eq!(bind("127.0.0.1"), Ok(BindHost::Ip([127, 0, 0, 1].into())));
        assert_eq!(bind("::1"), Ok(BindHost::Ip(Ipv6Addr::LOCALHOST.into())));
        assert_eq!(bind("[::1]"), Ok(BindHost::Ip(Ipv6Addr::LOCALHOST.into())));
        assert_eq!(bind("localhost"), Ok(BindHost::Name("localhost".into())));
        assert_eq!(
            bind("msgr-1.example.org"),
            Ok(BindHost::Name("msgr-1.example.org".into()))
        );
        for wrong in ["", "127.0.0.1:12000", "[localhost]", "a b", "[::1"] {
            assert!(bind(wrong).is_err(), "{wrong:?}");
        }
        assert_eq!(bind("[::1]").unwrap().to_string(), "::1");
    }

    #[test]
    fn out_of_range_values_name_the_flag() {
        assert!(limits(&["--max-message-bytes", "8388608"]).is_ok());
        let error = limits(&["--max-message-bytes", "8388609"]).unwrap_err();
        assert_eq!(error.flag, "--max-message-bytes");
        assert!(error.to_string().contains("at most 8388608"), "{error}");
        let error = limits(&["--max-connections", "0"]).unwrap_err();
        assert_eq!(error.to_string(), "--max-connections must be at least 1");
        let error = limits(&["--max-queued-bytes", "1000"]).unwrap_err();
        assert_eq!(error.flag, "--max-queued-bytes");
        let error = limits(&["--max-buffered-bytes", "1000000"]).unwrap_err();
        assert_eq!(error.flag, "--max-buffered-bytes");
        assert!(error.to_string().contains("(1665706 bytes"), "{error}");
        let error = limits(&["--sender-share", "101"]).unwrap_err();
        assert_eq!(error.flag, "--sender-share");
    }
}
