//! The arguments of `msgr serve`: where to listen, where to keep data, TLS
//! material, and the server's limits.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

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

    /// Largest message (sealed envelope) accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024 + 4096, value_name = "BYTES")]
    pub max_message_bytes: u64,

    /// How long a login session stays valid, in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600, value_name = "SECONDS")]
    pub session_ttl: u64,

    /// Most connections served at once; more wait for a free slot.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
}
