//! Command-line definitions: the global options and one args struct per
//! subcommand. Parsing only; the work lives in [`crate::commands`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

/// End-to-end encrypted messaging: one binary for server and client.
#[derive(Debug, Parser)]
#[command(name = "msgr", version, about, long_about = None)]
pub struct Cli {
    /// Global client options.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every client command shares; each also has an environment
/// variable and a `config.toml` key.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Server to talk to.
    #[arg(long, global = true, env = "MSGR_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,

    /// Account name on that server.
    #[arg(long, global = true, env = "MSGR_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// Where keys, tokens and pins are kept [default: the platform config dir].
    #[arg(long, global = true, env = "MSGR_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Verify the server against this CA or certificate (PEM) instead of
    /// system roots and first-use pinning.
    #[arg(long, global = true, env = "MSGR_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create a key pair and register the account on the server.
    Register(RegisterArgs),
    /// Get a fresh session token (other commands do this on their own).
    Login,
    /// Fetch, pin and show a user's public key fingerprint.
    Key(KeyArgs),
    /// Send an encrypted message.
    Create(CreateArgs),
    /// Receive, verify, decrypt and print queued messages.
    Read,
}

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

/// `msgr register`.
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// RSA key size.
    #[arg(long, default_value_t = 3072, value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"]).map(|s| s.parse::<usize>().expect("listed values are numbers")))]
    pub bits: usize,
}

/// `msgr key`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Whose key to fetch.
    pub name: String,

    /// Accept a key that differs from the pinned one (after checking its
    /// fingerprint with its owner).
    #[arg(long)]
    pub replace: bool,
}

/// `msgr create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Who receives the message.
    pub recipient: String,

    /// The message; omitted or `-` reads the body from standard input.
    pub message: Option<String>,
}
