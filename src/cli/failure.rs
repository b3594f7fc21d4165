//! The failures only the command line meets — settings that are missing or
//! malformed, a command's own checks, output that cannot be written, and
//! `serve`'s local set-up — in words. Their exit statuses and hints are in
//! the one table in [`crate::cli::error`], with every other layer's errors.

use std::path::PathBuf;

use thiserror::Error;

use crate::cli::args::LimitError;
use crate::cli::error::ExitStatus;
use crate::cli::output::listed;
use crate::client::net::AddrError;
use crate::server::store::StoreError;
use crate::server::tls::TlsError;
use crate::wire::crypto::CryptoError;
use crate::wire::protocol::{NameError, printable};

/// A failure of the command line itself.
#[derive(Debug, Error)]
pub enum Failure {
    /// clap did not understand the command line (JSON mode reports it).
    #[error("{message}")]
    CommandLine {
        /// What clap found wrong, as one line.
        message: String,
        /// clap's tips, such as the name of a similar subcommand.
        tips: Vec<String>,
        /// The usage of the command concerned, if clap gave it.
        usage: Option<String>,
    },
    /// `create` was given the words of its message as separate arguments.
    #[error("the message must be one argument, but {} were given", .words.len())]
    UnquotedMessage {
        /// The recipients, joined by commas.
        recipients: String,
        /// The words of the message, in order.
        words: Vec<String>,
    },
    /// No `--server`, `MSGR_SERVER` or `server` in config.toml.
    #[error("no server given")]
    NoServer,
    /// The server address does not parse.
    #[error(transparent)]
    BadServer(#[from] AddrError),
    /// No `--user`, `MSGR_USER` or `user` in config.toml.
    #[error("no user given")]
    NoUser,
    /// A user name given on the command line breaks the naming rules.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// `key --expect` was given something that is no fingerprint.
    #[error("--expect {0:?} is not a key fingerprint")]
    NotAFingerprint(String),
    /// The keyring has no private key for the account.
    #[error(
        "there is no key for {} on {} in the keyring {}{}",
        .0.user,
        .0.server,
        .0.keyring.display(),
        .0.found()
    )]
    NoKey(Searched),
    /// A `msgr rotate` was interrupted: the server may already hold the
    /// new key, so signing with the old one could produce messages that
    /// contacts refuse.
    #[error("a key rotation of this account is unfinished ({} holds the new key)", .pending.display())]
    UnfinishedRotation {
        /// The new key's file.
        pending: PathBuf,
    },
    /// `unregister` was not confirmed: declined at the terminal, or there
    /// was no terminal to ask at and no `--yes`.
    #[error("{user} was not unregistered: {why}")]
    NotConfirmed {
        /// The account.
        user: String,
        /// What happened instead of a confirmation.
        why: &'static str,
    },
    /// Standard input holds more than `create` reads.
    #[error("standard input holds more than {} MiB, more than any msgr server takes", limit / (1024 * 1024))]
    StdinTooLarge {
        /// The most bytes read.
        limit: u64,
    },
    /// `whoami` for an account the keyring never registered.
    /// Also any other command for an account whose folder is not in the
    /// keyring: only `register` makes one.
    #[error(
        "{} is not registered on {} in the keyring {}{}",
        .0.user,
        .0.server,
        .0.keyring.display(),
        .0.found()
    )]
    NotRegisteredHere(Searched),
    /// `register` for an account the keyring registered already.
    #[error("{user} is already registered on {server} from this keyring")]
    AlreadyRegistered {
        /// The account.
        user: String,
        /// The server.
        server: String,
        /// Where its key is.
        identity: PathBuf,
    },
    /// Making a new identity key failed.
    #[error("{0}")]
    KeyGeneration(CryptoError),
    /// A command typed in an interactive session that only runs on its
    /// own (`serve`, `admin`, …).
    #[error("{0} does not run in an interactive session")]
    NotInSession(&'static str),
    /// `msgr shell` without a terminal to prompt at.
    #[error("the interactive session needs a terminal (standard input and output)")]
    NoTerminal,
    /// The terminal of an interactive session failed.
    #[error("cannot read from the terminal: {0}")]
    Terminal(String),
    /// The body is empty and `--allow-empty` was not given.
    #[error("the message is empty, so nothing was sent")]
    EmptyBody,
    /// The body could not be read from standard input.
    #[error("cannot read the message from standard input: {0}")]
    Stdin(std::io::Error),
    /// Every recipient failed; `status` is the first one's.
    #[error("the message was sent to nobody: not to {missed}")]
    SentToNobody {
        /// Who did not get it, as a list.
        missed: String,
        /// The exit status of the first recipient's failure.
        status: ExitStatus,
    },
    /// Some recipients got the message and some did not.
    #[error("the message was sent to {reached} but not to {missed}")]
    Partial {
        /// Who got it, as a list.
        reached: String,
        /// Who did not, as a list.
        missed: String,
    },
    /// `read` met messages it could not verify, or refused as too old.
    #[error("{0} message(s) were not shown; the warnings above say why")]
    NotVerified(u64),
    /// `read --out-dir` was given a folder that others may write to (and
    /// so plant files or links in) or that belongs to another user.
    #[error("{} {why}", .dir.display())]
    OutDirNotPrivate {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `man` for a command msgr does not have.
    #[error("msgr has no command named {name}")]
    NoSuchCommand {
        /// The name asked for.
        name: String,
        /// The commands there are, as a list.
        commands: String,
    },
    /// clap_mangen failed.
    #[error("cannot render the manual page: {0}")]
    ManualPage(std::io::Error),
    /// Standard output cannot be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    /// A `serve` limit flag is out of range.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// `msgr admin` found no database in the data directory.
    #[error("there is no msgr database in {}", dir.display())]
    NoDatabase {
        /// The data directory.
        dir: PathBuf,
    },
    /// `msgr admin` was named an account the store does not have.
    #[error("there is no account named {name} in {store}")]
    NoSuchAccount {
        /// The name given.
        name: String,
        /// The store.
        store: StorePlace,
    },
    /// `msgr admin backup` was given a file that exists.
    #[error("{} exists already; a backup is written to a new file only", file.display())]
    BackupExists {
        /// The file.
        file: PathBuf,
    },
    /// `msgr admin backup` was given `--database`: it copies SQLite only.
    #[error("`msgr admin backup` copies a data directory's database, not PostgreSQL's at {target}")]
    BackupOfSharedDatabase {
        /// The database, as `user@host:port/database`.
        target: String,
    },
    /// `msgr admin migrate` was given a database that holds accounts.
    #[error(
        "{target} holds accounts already; msgr copies a data directory into an empty database only"
    )]
    DatabaseNotEmpty {
        /// The database, as `user@host:port/database`.
        target: String,
    },
    /// No `--data-dir` and no platform data directory.
    #[error("cannot determine the platform data directory")]
    NoDataDir,
    /// The data directory cannot be created.
    #[error("cannot create the data directory {}: {source}", dir.display())]
    CreateDataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another `msgr serve` holds the data directory's lock: two servers
    /// must never share one database.
    #[error(
        "the data directory {} is in use by another msgr serve{}, which holds its lock {}",
        dir.display(),
        pid.map(|pid| format!(" (process {pid})")).unwrap_or_default(),
        lock.display()
    )]
    DataDirInUse {
        /// The data directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The process id the holder wrote into the lock file, if readable.
        pid: Option<u32>,
    },
    /// The data directory's lock file cannot be opened or locked.
    #[error("cannot take the data directory's lock {}: {source}", lock.display())]
    LockDataDir {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory cannot be made owner-only.
    #[error("cannot restrict the data directory {} to its owner: {source}", dir.display())]
    RestrictDataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be opened.
    #[error("cannot open the database in {}: {source}", dir.display())]
    OpenStore {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The database of `--database` cannot be used.
    #[error("cannot use the database given with --database: {0}")]
    OpenSharedStore(StoreError),
    /// The self-signed certificate kept in the shared database cannot be
    /// used.
    #[error(transparent)]
    SharedTls(TlsError),
    /// An operator's command on the database failed.
    #[error("the database at {store} failed: {source}")]
    StoreFailed {
        /// The store.
        store: StorePlace,
        /// Why.
        source: StoreError,
    },
    /// The operator's `--cert`/`--key` cannot be used.
    #[error(transparent)]
    OperatorTls(TlsError),
    /// The self-signed certificate in the data directory cannot be used.
    #[error("{source}")]
    SelfSignedTls {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: TlsError,
    },
    /// The host name given to `--bind` does not resolve.
    #[error("cannot resolve --bind {host}: {source}")]
    Resolve {
        /// The name as given.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// The listening socket cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// `ADDRESS:PORT` as asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The socket of `--metrics` cannot be bound.
    #[error("cannot listen for metrics on {address}: {source}")]
    MetricsListen {
        /// `ADDRESS:PORT` as given to `--metrics`.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A step of starting the server that needs no advice: the runtime,
    /// the signal handlers, the socket's options.
    #[error("cannot {doing}: {source}")]
    Start {
        /// What was being done.
        doing: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The store an operator's command works on, as messages name it.
#[derive(Debug, Clone)]
pub enum StorePlace {
    /// The SQLite database in this data directory.
    DataDir(PathBuf),
    /// The PostgreSQL database, as `user@host:port/database` (never with
    /// its password).
    Database(String),
}

impl std::fmt::Display for StorePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DataDir(dir) => dir.display().fmt(f),
            Self::Database(target) => f.write_str(target),
        }
    }
}

/// Where an account was looked for and not found, and what the keyring
/// holds instead: an account is tied to the exact spelling of its server,
/// so `127.0.0.1:12000` does not find one registered on `localhost:12000`.
#[derive(Debug)]
pub struct Searched {
    /// The account name as given.
    pub user: String,
    /// The server as given.
    pub server: String,
    /// The config directory searched.
    pub keyring: PathBuf,
    /// Whether the config directory exists.
    pub keyring_exists: bool,
    /// The servers the keyring registered `user` on, as its folders name
    /// them (sorted, and printed safely: they are file names).
    pub elsewhere: Vec<String>,
}

impl Searched {
    /// The end of the sentence: what the keyring holds for the user.
    fn found(&self) -> String {
        if !self.keyring_exists {
            return ", which does not exist".to_owned();
        }
        match self.elsewhere.as_slice() {
            [] => format!("; it holds no account of {} on any other server", self.user),
            servers => {
                let listed = listed(servers.iter().map(|s| printable(s)));
                format!("; it holds {} on {listed}", self.user)
            }
        }
    }
}
