//! Command-line definitions: the global options and one args struct per
//! subcommand. Parsing only; the work lives in [`crate::cli::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod serve;
mod store;

use crate::cli::failure::Failure;
use crate::client::directory::PinPolicy;
use crate::client::settings::{Overrides, parse_timeout};
use crate::wire::crypto::{ALLOWED_BITS, DEFAULT_BITS, allowed_sizes};

pub use serve::{BindHost, LimitError, ServeArgs};
pub use store::{StoreArgs, StoreLocation};

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

/// Options every client command shares. Each setting comes from the flag,
/// else its environment variable, else its `config.toml` key, else the
/// default.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Server to talk to.
    #[arg(long, global = true, env = "MSGR_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,

    /// Account name on that server.
    #[arg(long, global = true, env = "MSGR_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// Where config.toml, keys, tokens and pins are kept [default: the
    /// platform config dir].
    #[arg(long, global = true, env = "MSGR_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Verify the server against this CA or certificate (PEM) instead of
    /// system roots and first-use pinning.
    #[arg(long, global = true, env = "MSGR_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Print results as JSON (one object per line) and errors as JSON
    /// objects on stderr; `--json=false` overrides config.toml.
    #[arg(
        long,
        global = true,
        env = "MSGR_JSON",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        hide_possible_values = true
    )]
    pub json: Option<bool>,

    /// Read the key's passphrase from the first line of this file (else
    /// MSGR_PASSPHRASE, else config.toml's passphrase_file, else a
    /// terminal prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Whether `create` and `read` may pin the key of a user seen for the
    /// first time (`first-use`, with a notice) or only `msgr key` may
    /// (`explicit`) [default: first-use].
    #[arg(long, global = true, env = "MSGR_PIN_POLICY", value_name = "POLICY")]
    pub pin_policy: Option<PinPolicyArg>,

    /// Give up (exit status 3) if connecting, or any one answer of the
    /// server, takes longer than this [default: 30].
    #[arg(
        long,
        global = true,
        env = "MSGR_TIMEOUT",
        value_name = "SECONDS",
        value_parser = parse_timeout
    )]
    pub timeout: Option<Duration>,

    /// Log more (repeat for more detail); overrides RUST_LOG.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Drop notices and log only what is more serious than usual.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The values of `--pin-policy`; the command line's twin of
/// [`PinPolicy`], so that clap stays out of the client layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PinPolicyArg {
    /// Pin on first contact, with a notice.
    FirstUse,
    /// Pin only with `msgr key NAME`.
    Explicit,
}

impl GlobalArgs {
    /// The settings given as flags or environment variables.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_dir: self.config_dir.clone(),
            server: self.server.clone(),
            user: self.user.clone(),
            ca_cert: self.ca_cert.clone(),
            json: self.json,
            passphrase_file: self.passphrase_file.clone(),
            pin_policy: self.pin_policy.map(|policy| match policy {
                PinPolicyArg::FirstUse => PinPolicy::FirstUse,
                PinPolicyArg::Explicit => PinPolicy::Explicit,
            }),
            timeout: self.timeout,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Create a key pair and register the account on the server.
    Register(RegisterArgs),
    /// Get a fresh session token (other commands do this on their own).
    Login,
    /// Fetch, pin and show a user's public key fingerprint.
    Key(KeyArgs),
    /// Send an encrypted message to one or more users.
    Create(CreateArgs),
    /// Receive, verify, decrypt and print queued messages.
    Read(ReadArgs),
    /// Replace the account's key; contacts follow the signed rotation.
    Rotate(RotateArgs),
    /// Show the account, its key fingerprint, the server pin and the
    /// session's expiry (without contacting the server).
    Whoami,
    /// List the pinned keys of other users with their fingerprints.
    Contacts,
    /// End the session on the server and forget its token.
    Logout(LogoutArgs),
    /// Delete the account on the server (its queue, sessions and key) and
    /// its folder in this keyring.
    Unregister(UnregisterArgs),
    /// Type commands at a prompt, all on one connection (also what msgr
    /// without a command does on a terminal).
    Shell,
    /// Look after a server's store: accounts, sessions, totals, backups
    /// (safe while the server runs).
    Admin(AdminArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print a manual page (roff).
    Man(ManArgs),
}

impl Cli {
    /// The process's command line parsed, with `--data-dir` or
    /// `--database` settled ([`StoreArgs::settle`]).
    pub fn from_command_line() -> Result<Self, clap::Error> {
        let matches = Self::command().try_get_matches()?;
        let mut cli =
            Self::from_arg_matches(&matches).map_err(|e| e.format(&mut Self::command()))?;
        let (store, name) = match &mut cli.command {
            Command::Serve(args) => (&mut args.store, "serve"),
            // `migrate` names its data directory and database itself.
            Command::Admin(args) if !matches!(args.command, AdminCommand::Migrate(_)) => {
                (&mut args.store, "admin")
            }
            _ => return Ok(cli),
        };
        let sub = matches
            .subcommand_matches(name)
            .expect("the command parsed is this subcommand");
        store.settle(name, sub)?;
        Ok(cli)
    }

    /// What a command line without a command means on a terminal (stdin
    /// and stdout both): an interactive session with its global options.
    /// `None` for any other parse `error`, or without a terminal, where
    /// `error` stands as it is.
    pub fn interactive(error: &clap::Error) -> Option<Self> {
        use clap::error::ErrorKind::{DisplayHelpOnMissingArgumentOrSubcommand, MissingSubcommand};
        use std::io::IsTerminal;
        let missing = matches!(
            error.kind(),
            MissingSubcommand | DisplayHelpOnMissingArgumentOrSubcommand
        );
        if !missing || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            return None;
        }
        let lenient = Self::command()
            .subcommand_required(false)
            .arg_required_else_help(false);
        let matches = lenient.try_get_matches().ok()?;
        Some(Self {
            global: GlobalArgs::from_arg_matches(&matches).ok()?,
            command: Command::Shell,
        })
    }
}

/// `msgr register`.
#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// RSA key size: 2048, 3072 or 4096.
    #[arg(long, default_value_t = DEFAULT_BITS, value_parser = key_bits, value_name = "BITS")]
    pub bits: usize,

    /// Protect the private key with a passphrase (encrypted PKCS#8).
    #[arg(long)]
    pub passphrase: bool,
}

/// `msgr logout`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// End every session of the account, on every machine (logging in
    /// first if needed), not only this keyring's.
    #[arg(long)]
    pub all: bool,
}

/// `msgr admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The server's store, as `serve` was given it.
    #[command(flatten)]
    pub store: StoreArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The operator's commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// List the accounts: name, key fingerprint, registration time,
    /// messages and bytes queued, live sessions.
    Users,
    /// Show the totals: accounts, queued messages and bytes, the oldest
    /// queued message, live sessions, the database's size.
    Stats,
    /// Delete an account: its key, queue and sessions; the name is free
    /// again.
    DeleteUser {
        /// The account.
        name: String,
    },
    /// End every session of an account; servers stop the connections
    /// acting with them within a second.
    RevokeSessions {
        /// The account.
        name: String,
    },
    /// Write a consistent copy of the database to FILE (which must not
    /// exist), taken while the server runs.
    Backup {
        /// Where the copy goes.
        file: PathBuf,
    },
    /// Copy a stopped server's data directory — accounts, sessions,
    /// queued messages, prekeys, rotations and its certificate — into an
    /// empty PostgreSQL database, for `serve --database`.
    Migrate(MigrateArgs),
}

/// `msgr admin migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The data directory to copy; no server may be running on it.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// The empty PostgreSQL database to copy it into:
    /// postgresql://USER@HOST:PORT/DATABASE (a password is better given in
    /// MSGR_DATABASE_URL, which `ps` does not show).
    #[arg(
        long,
        env = "MSGR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: String,
}

/// `msgr unregister`.
#[derive(Debug, Clone, Args)]
pub struct UnregisterArgs {
    /// Delete without asking (needed where there is no terminal to ask
    /// at).
    #[arg(long)]
    pub yes: bool,
}

/// `msgr rotate`.
#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// RSA key size of the new key: 2048, 3072 or 4096 [default: the
    /// current key's].
    #[arg(long, value_parser = key_bits, value_name = "BITS")]
    pub bits: Option<usize>,

    /// Protect the new private key with a passphrase (it is protected
    /// anyway if the current one is).
    #[arg(long)]
    pub passphrase: bool,
}

/// A key size `register --bits` and `rotate --bits` accept.
fn key_bits(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|bits| ALLOWED_BITS.contains(bits))
        .ok_or_else(|| format!("use {}", allowed_sizes()))
}

/// `msgr key`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Whose key to fetch.
    pub name: String,

    /// Pin the key only if it has this fingerprint (as its owner's `msgr
    /// whoami` shows it), replacing a different pinned key.
    #[arg(long, value_name = "FINGERPRINT")]
    pub expect: Option<String>,
}

/// `msgr create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Who receives the message; several names separated by commas.
    #[arg(value_name = "RECIPIENT[,RECIPIENT...]", value_parser = parse_recipients)]
    pub recipients: Recipients,

    /// The message; omitted or `-` reads the body (any bytes) from
    /// standard input.
    pub message: Option<String>,

    /// Send an empty message (refused otherwise, as a script that lost its
    /// input would send one).
    #[arg(long)]
    pub allow_empty: bool,
}

/// What clap's `error` about `args` was, if it is `create` given its
/// message unquoted (`create John Hello world`): the failure that says so.
/// The words after the message are allowed only here, when clap has
/// refused the command line, so that help, manual pages and completions do
/// not show them.
pub fn unquoted_message<I, T>(error: &clap::Error, args: I) -> Option<Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    const EXTRA: &str = "unquoted";
    if error.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let extra = clap::Arg::new(EXTRA)
        .num_args(1..)
        .action(ArgAction::Append);
    let lenient = Cli::command().mut_subcommand("create", |create| create.arg(extra));
    let matches = lenient.try_get_matches_from(args).ok()?;
    let ("create", create) = matches.subcommand()? else {
        return None;
    };
    let words: Vec<String> = create.get_many::<String>(EXTRA)?.cloned().collect();
    let parsed = CreateArgs::from_arg_matches(create).ok()?;
    Some(Failure::UnquotedMessage {
        recipients: parsed.recipients.0.join(","),
        words: parsed.message.into_iter().chain(words).collect(),
    })
}

/// The names in a comma-separated recipient list, as given but for the
/// spaces around each (`"John, Carol"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients(pub Vec<String>);

fn parse_recipients(list: &str) -> Result<Recipients, std::convert::Infallible> {
    Ok(Recipients(
        list.split(',').map(|name| name.trim().to_owned()).collect(),
    ))
}

/// `msgr read`.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// If nothing is queued, wait up to this long for a message.
    #[arg(long, value_name = "SECONDS", conflicts_with = "follow")]
    pub wait: Option<u64>,

    /// Stay connected and print each message as it arrives, until
    /// interrupted (SIGINT or SIGTERM).
    #[arg(long, short)]
    pub follow: bool,

    /// With --follow: when the connection is lost (the server restarts),
    /// keep trying to connect again for this long before giving up.
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "follow",
        default_value = "300",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub reconnect_for: u64,

    /// First open again the messages kept in the account's rejected/
    /// folder (they failed verification before), then read the queue.
    #[arg(long)]
    pub retry_rejected: bool,

    /// Read at most this many messages.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,

    /// Write each body to its own file in this folder, named by message
    /// id, and print the paths instead of the bodies.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `msgr completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// `msgr man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print [default: the msgr(1) overview].
    pub command: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn recipients_split_on_commas_and_json_takes_an_optional_value() {
        let cli = Cli::try_parse_from(["msgr", "--json", "create", "John,Carol", "Hi"]).unwrap();
        assert_eq!(cli.global.json, Some(true));
        let Command::Create(args) = cli.command else {
            panic!("create expected")
        };
        assert_eq!(args.recipients.0, ["John", "Carol"]);
        assert_eq!(args.message.as_deref(), Some("Hi"));
        let cli = Cli::try_parse_from(["msgr", "create", " John , Carol", "Hi"]).unwrap();
        let Command::Create(args) = cli.command else {
            panic!("create expected")
        };
        assert_eq!(args.recipients.0, ["John", "Carol"]);
        let cli = Cli::try_parse_from(["msgr", "read", "--json=false"]).unwrap();
        assert_eq!(cli.global.json, Some(false));
        assert!(Cli::try_parse_from(["msgr", "read", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["msgr", "read", "--wait", "1", "--follow"]).is_err());
        assert!(Cli::try_parse_from(["msgr", "-v", "-q", "read"]).is_err());
        let cli = Cli::try_parse_from(["msgr", "--pin-policy", "explicit", "whoami"]).unwrap();
        let overrides = cli.global.overrides();
        assert_eq!(overrides.pin_policy, Some(PinPolicy::Explicit));
        assert!(Cli::try_parse_from(["msgr", "--pin-policy", "sometimes", "whoami"]).is_err());
        for (bits, ok) in [
            ("2048", true),
            ("4096", true),
            ("1024", false),
            ("x", false),
        ] {
            let parsed = Cli::try_parse_from(["msgr", "register", "--bits", bits]);
            assert_eq!(parsed.is_ok(), ok, "{bits}");
        }
    }

    #[test]
    fn an_unquoted_message_is_told_from_other_unexpected_arguments() {
        let unquoted = |args: &[&str]| {
            let error = Cli::try_parse_from(args).unwrap_err();
            unquoted_message(&error, args)
        };
        let args = [
            "msgr",
            "-q",
            "create",
            "John, Carol",
            "Hi",
            "there",
            "--allow-empty",
        ];
        assert!(matches!(
            unquoted(&args),
            Some(Failure::UnquotedMessage { recipients, words })
                if recipients == "John,Carol" && words == ["Hi", "there"]
        ));
        assert!(unquoted(&["msgr", "create", "John", "Hi", "--bogus"]).is_none());
        assert!(unquoted(&["msgr", "key", "John", "Carol"]).is_none());
        assert!(unquoted(&["msgr", "create", "John", "Hi", "there", "--bogus"]).is_none());
    }
}
