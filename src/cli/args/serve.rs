//! The arguments of `msgr serve`: where to listen, where to keep data, TLS
//! material, and the server's limits (defaults in [`crate::server::limits`],
//! checked by [`crate::server::Limits::from_args`]).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::server::limits::{
    DEFAULT_HANDSHAKE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_LOGINS_PER_MINUTE,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PENDING,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES, DEFAULT_REGISTRATIONS_PER_HOUR,
    DEFAULT_SESSION_TTL_SECS,
};

/// `msgr serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port to listen on; 0 picks a free one and prints it.
    pub port: u16,

    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
    pub bind: IpAddr,

    /// Where the database and the generated certificate live
    /// [default: the platform data dir].
    #[arg(long, env = "MSGR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

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

    /// How long a login session stays valid, in seconds.
    #[arg(long, default_value_t = DEFAULT_SESSION_TTL_SECS, value_name = "SECONDS")]
    pub session_ttl: u64,

    /// Most connections served at once; further greeted connections wait
    /// for a free slot.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,

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
}
