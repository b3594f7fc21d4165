//! `msgr admin`: the operator's commands on a server's store, run beside
//! the server (the database takes several processes): list the accounts,
//! show the totals, delete an account, end an account's sessions (every
//! server on the database stops the connections acting with them within a
//! second, through the journal it reads), and write an online backup.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::args::{AdminArgs, AdminCommand};
use crate::cli::commands::serve::chosen_data_dir;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Output, Render, rfc3339_seconds};
use crate::server::Store;
use crate::server::sqlite::{DB_FILE, SqliteStore};
use crate::server::store::{StoreStats, User};
use crate::wire::crypto::fingerprint;
use crate::wire::protocol::unix_now;

/// Run the operator's command on the store in the data directory.
pub fn run(args: &AdminArgs, output: &Output) -> AppResult<()> {
    let dir = chosen_data_dir(args.data_dir.as_deref())?;
    if !dir.join(DB_FILE).is_file() {
        return Err(Failure::NoDatabase { dir }.into());
    }
    let store = SqliteStore::open(&dir).map_err(|source| Failure::OpenStore {
        dir: dir.clone(),
        source,
    })?;
    let failed = |source| Failure::StoreFailed {
        dir: dir.clone(),
        source,
    };
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
            let user = account(&store, name, &dir)?;
            store.unregister(user.id).map_err(failed)?;
            emit(
                output,
                &Deleted {
                    user: user.name.to_string(),
                },
            )
        }
        AdminCommand::RevokeSessions { name } => {
            let user = account(&store, name, &dir)?;
            let ended = store.delete_sessions(user.id).map_err(failed)?;
            emit(
                output,
                &Revoked {
                    user: user.name.to_string(),
                    sessions_ended: ended,
                },
            )
        }
        AdminCommand::Backup { file } => {
            if !store.backup(file).map_err(failed)? {
                return Err(Failure::BackupExists { file: file.clone() }.into());
            }
            let bytes = std::fs::metadata(file).map_or(0, |metadata| metadata.len());
            emit(
                output,
                &BackedUp {
                    backup: file.clone(),
                    bytes,
                    data_dir: dir,
                },
            )
        }
    }
}

/// The account named `name` (in any letter case).
fn account(store: &SqliteStore, name: &str, dir: &Path) -> AppResult<User> {
    let found = store
        .find_user(name)
        .map_err(|source| Failure::StoreFailed {
            dir: dir.to_owned(),
            source,
        })?;
    Ok(found.ok_or_else(|| Failure::NoSuchAccount {
        name: crate::wire::protocol::printable(name).into_owned(),
        dir: dir.to_owned(),
    })?)
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
