//! Command-line definitions: the global options and one args struct per
//! subcommand. Parsing only; the work lives in [`crate::commands`].

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

mod serve;

pub use serve::ServeArgs;

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
