//! `msgr admin migrate`: a stopped server's data directory copied into an
//! empty PostgreSQL database, so that servers started with `--database`
//! go on where it stopped — every account (with the rows of deleted ones
//! whose messages are still queued), session, queued message under its
//! id, prekey and rotation, and the self-signed certificate its clients
//! pinned. The data directory's lock is held throughout, as a server
//! holds it, so no server changes it meanwhile; the copy is one
//! transaction, so a failure leaves the database as it was.

use std::io::Write;

use serde::Serialize;

use super::{emit, open_data_dir, require_database};
use crate::cli::args::MigrateArgs;
use crate::cli::commands::serve::lock_data_dir;
use crate::cli::error::AppResult;
use crate::cli::failure::{Failure, StorePlace};
use crate::cli::output::{Human, Output, Render};
use crate::server::postgres::PgStore;
use crate::server::store::copy::{Copied, CopyError};
use crate::server::tls;

/// Copy the data directory into the database and say what was copied.
pub fn run(args: &MigrateArgs, output: &Output) -> AppResult<()> {
    let dir = &args.data_dir;
    require_database(dir)?;
    let _lock = lock_data_dir(dir)?;
    let source = open_data_dir(dir)?;
    let certificate = tls::kept_in(dir).map_err(|source| Failure::SelfSignedTls {
        dir: dir.clone(),
        source,
    })?;
    let target = PgStore::open(&args.database).map_err(Failure::OpenSharedStore)?;
    let failed = |store, source| Failure::StoreFailed { store, source };
    let mut export = source
        .export()
        .map_err(|error| failed(StorePlace::DataDir(dir.clone()), error))?;
    let copied = target
        .import(&mut export, certificate.as_ref().map(|(kept, _)| kept))
        .map_err(|error| match error {
            CopyError::NotEmpty => Failure::DatabaseNotEmpty {
                target: target.target().to_owned(),
            },
            CopyError::Source(error) => failed(StorePlace::DataDir(dir.clone()), error),
            CopyError::Target(error) => {
                failed(StorePlace::Database(target.target().to_owned()), error)
            }
        })?;
    emit(
        output,
        &Migrated::new(
            copied,
            certificate.map(|(_, fingerprint)| fingerprint),
            target.target(),
        ),
    )
}

/// `admin migrate`: what was copied, and where to.
#[derive(Serialize)]
struct Migrated {
    accounts: u64,
    deleted_accounts: u64,
    sessions: u64,
    queued_messages: u64,
    signed_prekeys: u64,
    one_time_prekeys: u64,
    claimed_one_time_prekeys: u64,
    key_rotations: u64,
    /// The fingerprint of the certificate copied, if the data directory
    /// held one.
    certificate: Option<String>,
    /// `user@host:port/database`.
    database: String,
}

impl Migrated {
    fn new(copied: Copied, certificate: Option<String>, database: &str) -> Self {
        Self {
            accounts: copied.accounts,
            deleted_accounts: copied.deleted_accounts,
            sessions: copied.sessions,
            queued_messages: copied.messages,
            signed_prekeys: copied.signed_prekeys,
            one_time_prekeys: copied.one_time_prekeys,
            claimed_one_time_prekeys: copied.claimed_one_time_prekeys,
            key_rotations: copied.key_rotations,
            certificate,
            database: database.to_owned(),
        }
    }
}

impl Render for Migrated {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        let deleted = match self.deleted_accounts {
            0 => String::new(),
            n => format!(" (and {n} deleted ones whose messages are queued)"),
        };
        let certificate = match &self.certificate {
            Some(fingerprint) => format!("the certificate {fingerprint}"),
            None => "no certificate (the data directory holds none)".to_owned(),
        };
        writeln!(
            out,
            "Copied {} accounts{deleted}, {} sessions, {} queued messages, {} signed prekeys, \
             {} one-time prekeys, the record of {} handed out, {} key rotations and {certificate} \
             into {}; start the servers with --database",
            self.accounts,
            self.sessions,
            self.queued_messages,
            self.signed_prekeys,
            self.one_time_prekeys,
            self.claimed_one_time_prekeys,
            self.key_rotations,
            self.database
        )
    }
}
