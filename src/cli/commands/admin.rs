//! `msgr admin`: the operator's commands on a server's store, run beside
//! the server (the database takes several processes): list the accounts,
//! show the totals, delete an account, end an account's sessions (every
//! server on the database stops the connections acting with them within
//! a second, through the journal it reads), and write an online backup.
//! They work on the SQLite database of a data directory, or (`--database`)
//! on the PostgreSQL one that servers share, through the [`Store`]
//! contract; `migrate` copies the one into the other.

mod migrate;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::args::{AdminArgs, AdminCommand, StoreLocation};
use crate::cli::commands::serve::chosen_data_dir;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::{Failure, StorePlace};
use crate::cli::output::{Human, Output, Render, rfc3339_seconds};
use crate::server::Store;
use crate::server::postgres::PgStore;
use crate::server::sqlite::{DB_FILE, SqliteStore};
use crate::server::store::{StoreError, StoreStats, User};
use crate::wire::crypto::fingerprint;
use crate::wire::protocol::unix_now;

/// Run the operator's command on the store it names.
pub fn run(args: &AdminArgs, output: &Output) -> AppResult<()> {
    if let AdminCommand::Migrate(migrate) = &args.command {
        return migrate::run(migrate, output);
    }
    let opened = open(args)?;
    let store = opened.store();
    let failed = |source| opened.failed(source);
    match &args.command {
        AdminCommand::Users => {
            for account in store.accounts().map_err(failed)? {
                emit(
                    output,
                    &UserRow {
                        user: account.name,
                        fingerprint: fingerprint(&account.public_key),
                        registered_at: rfc3339_seconds(account.created_at.saturating_mul(1000)),
                        queued_messages: account.queued_messages,
                        queued_bytes: account.queued_bytes,
                        sessions: account.sessions,
                    },
                )?;
            }
            Ok(())
        }
        AdminCommand::Stats => emit(
            output,
            &Stats::from(store.stats(unix_now()).map_err(failed)?),
        ),
        AdminCommand::DeleteUser { name } => {
            let user = account(&opened, name)?;
            store.unregister(user.id).map_err(failed)?;
            emit(
                output,
                &Deleted {
                    user: user.name.to_string(),
                },
            )
        }
        AdminCommand::RevokeSessions { name } => {
            let user = account(&opened, name)?;
            let ended = store.delete_sessions(user.id).map_err(failed)?;
            emit(
                output,
                &Revoked {
                    user: user.name.to_string(),
                    sessions_ended: ended,
                },
            )
        }
        AdminCommand::Backup { file } => backup(&opened, file, output),
        AdminCommand::Migrate(_) => unreachable!("migrate returned above"),
    }
}

/// The store an operator's command works on.
enum Opened {
    /// The SQLite database of a data directory.
    DataDir(SqliteStore, PathBuf),
    /// The PostgreSQL database of `--database`.
    Shared(Box<PgStore>),
}

impl Opened {
    fn store(&self) -> &dyn Store {
        match self {
            Self::DataDir(store, _) => store,
            Self::Shared(store) => store.as_ref(),
        }
    }

    /// The store, as messages name it.
    fn place(&self) -> StorePlace {
        match self {
            Self::DataDir(_, dir) => StorePlace::DataDir(dir.clone()),
            Self::Shared(store) => StorePlace::Database(store.target().to_owned()),
        }
    }

    /// An operation on the store failed.
    fn failed(&self, source: StoreError) -> Failure {
        Failure::StoreFailed {
            store: self.place(),
            source,
        }
    }
}

/// Open the database of `--database`, else the one in the data directory.
fn open(args: &AdminArgs) -> AppResult<Opened> {
    match args.store.location() {
        StoreLocation::Database(url) => {
            let store = PgStore::open(url).map_err(Failure::OpenSharedStore)?;
            Ok(Opened::Shared(Box::new(store)))
        }
        StoreLocation::DataDir(given) => {
            let dir = chosen_data_dir(given)?;
            Ok(Opened::DataDir(open_data_dir(&dir)?, dir))
        }
    }
}

/// Fail unless `dir` holds a database: `msgr admin` makes none.
fn require_database(dir: &Path) -> AppResult<()> {
    if !dir.join(DB_FILE).is_file() {
        return Err(Failure::NoDatabase {
            dir: dir.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// The SQLite store in `dir`, which must hold one.
fn open_data_dir(dir: &Path) -> AppResult<SqliteStore> {
    require_database(dir)?;
    Ok(SqliteStore::open(dir).map_err(|source| Failure::OpenStore {
        dir: dir.to_owned(),
        source,
    })?)
}

/// The account named `name` (in any letter case).
fn account(opened: &Opened, name: &str) -> AppResult<User> {
    let found = opened
        .store()
        .find_user(name)
        .map_err(|source| opened.failed(source))?;
    Ok(found.ok_or_else(|| Failure::NoSuchAccount {
        name: crate::wire::protocol::printable(name).into_owned(),
        store: opened.place(),
    })?)
}

/// Write a consistent copy of the data directory's database to `file`;
/// PostgreSQL has tools of its own for that.
fn backup(opened: &Opened, file: &Path, output: &Output) -> AppResult<()> {
    let (store, dir) = match opened {
        Opened::DataDir(store, dir) => (store, dir),
        Opened::Shared(store) => {
            return Err(Failure::BackupOfSharedDatabase {
                target: store.target().to_owned(),
            }
            .into());
        }
    };
    let done = store.backup(file).map_err(|source| opened.failed(source))?;
    if !done {
        return Err(Failure::BackupExists {
            file: file.to_owned(),
        }
        .into());
    }
    let bytes = std::fs::metadata(file).map_or(0, |metadata| metadata.len());
    emit(
        output,
        &BackedUp {
            backup: file.to_owned(),
            bytes,
            data_dir: dir.clone(),
        },
    )
}

/// Print `record`, the result of a command.
fn emit(output: &Output, record: &impl Render) -> AppResult<()> {
    output.emit(record).map_err(AppError::stdout)
}

/// One line of `admin users`.
#[derive(Serialize)]
struct UserRow {
    user: String,
    fingerprint: String,
    registered_at: String,
    queued_messages: u64,
    queued_bytes: u64,
    sessions: u64,
}

impl Render for UserRow {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "{} {} registered {}, {} queued ({} bytes), {} sessions",
            self.user,
            self.fingerprint,
            self.registered_at,
            self.queued_messages,
            self.queued_bytes,
            self.sessions
        )
    }
}

/// `admin stats`.
#[derive(Serialize)]
struct Stats {
    accounts: u64,
    queued_messages: u64,
    queued_bytes: u64,
    oldest_queued_at: Option<String>,
    sessions: u64,
    database_bytes: u64,
}

impl From<StoreStats> for Stats {
    fn from(stats: StoreStats) -> Self {
        Self {
            accounts: stats.accounts,
            queued_messages: stats.queued_messages,
            queued_bytes: stats.queued_bytes,
            oldest_queued_at: stats
                .oldest_queued_at
                .map(|at| rfc3339_seconds(at.saturating_mul(1000))),
            sessions: stats.sessions,
            database_bytes: stats.database_bytes,
        }
    }
}

impl Render for Stats {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(out, "accounts: {}", self.accounts)?;
        writeln!(
            out,
            "queued: {} messages, {} bytes",
            self.queued_messages, self.queued_bytes
        )?;
        let oldest = self.oldest_queued_at.as_deref().unwrap_or("none");
        writeln!(out, "oldest queued message: {oldest}")?;
        writeln!(out, "live sessions: {}", self.sessions)?;
        writeln!(out, "database: {} bytes", self.database_bytes)
    }
}

/// `admin delete-user`.
#[derive(Serialize)]
struct Deleted {
    user: String,
}

impl Render for Deleted {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Deleted {} (its key, queue and sessions); the name is free",
            self.user
        )
    }
}

/// `admin revoke-sessions`.
#[derive(Serialize)]
struct Revoked {
    user: String,
    sessions_ended: u64,
}

impl Render for Revoked {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Ended {} sessions of {}; servers stop the connections acting with them within a second",
            self.sessions_ended, self.user
        )
    }
}

/// `admin backup`.
#[derive(Serialize)]
struct BackedUp {
    backup: PathBuf,
    bytes: u64,
    #[serde(skip)]
    data_dir: PathBuf,
}

impl Render for BackedUp {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Wrote a copy of the database to {} ({} bytes); keep cert.pem and key.pem from {} with it",
            self.backup.display(),
            self.bytes,
            self.data_dir.display()
        )
    }
}
