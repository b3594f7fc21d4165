//! The shared database of `msgr serve --database`: opened (its schema
//! brought up to date by whichever server comes first), and the
//! certificate every server on it presents — the operator's, else the
//! self-signed one kept in the database, made by the first server that
//! needed it.

use crate::cli::error::AppResult;
use crate::cli::failure::Failure;
use crate::server::metrics::BatchSizes;
use crate::server::postgres::PgStore;
use crate::server::tls::{self, ServerTls};

/// A server's share of the database.
pub struct Shared {
    /// The database.
    pub store: PgStore,
    /// The operator's TLS material, else the shared self-signed
    /// certificate.
    pub tls: ServerTls,
}

/// Open the database at `url`; `operator_tls` is the TLS material of
/// `--cert` and `--key`, if given; the database records the size of its
/// group commits in `batches`.
pub fn open(url: &str, operator_tls: Option<ServerTls>, batches: BatchSizes) -> AppResult<Shared> {
    let store = PgStore::open_recording(url, Some(batches)).map_err(Failure::OpenSharedStore)?;
    let tls = match operator_tls {
        Some(tls) => tls,
        None => {
            let kept = match store.kept_certificate().map_err(Failure::OpenSharedStore)? {
                Some(kept) => kept,
                None => {
                    let made = tls::generate().map_err(Failure::SharedTls)?;
                    store
                        .keep_certificate(&made)
                        .map_err(Failure::OpenSharedStore)?
                }
            };
            tls::from_self_signed(&kept).map_err(Failure::SharedTls)?
        }
    };
    Ok(Shared { store, tls })
}
