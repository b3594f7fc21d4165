//! The self-signed certificate that every server on one database
//! presents when the operator gives none: the first server to need it
//! makes it and keeps it in `server_certificate`; the others, and later
//! starts, present the one kept, so a client that pinned it can be served
//! by any of them. Two servers making one at the same moment both end up
//! presenting whichever was committed first. A copy from a data directory
//! brings that directory's certificate, which its clients pinned.

use super::PgStore;
use super::queries::{execute, row, sql_int};
use crate::server::store::StoreError;
use crate::server::tls::SelfSigned;
use crate::wire::protocol::unix_now;

impl PgStore {
    /// The certificate kept in the database, if a server kept one.
    pub fn kept_certificate(&self) -> Result<Option<SelfSigned>, StoreError> {
        self.read(async |client| kept(client).await)
    }

    /// Keep `made` for every server on the database, unless another
    /// server kept one first; returns the one kept.
    pub fn keep_certificate(&self, made: &SelfSigned) -> Result<SelfSigned, StoreError> {
        self.transaction(async |tx| {
            execute(
                tx,
                "INSERT INTO server_certificate (cert_pem, key_pem, created_at)
                 VALUES ($1, $2, $3) ON CONFLICT (only_row) DO NOTHING",
                &[&made.cert_pem, &made.key_pem.as_str(), &sql_int(unix_now())],
            )
            .await?;
            kept(tx)
                .await?
                .ok_or_else(|| StoreError::Corrupt("the certificate kept vanished".into()))
        })
    }
}

/// Keep `certificate` in place of any kept before.
pub(super) async fn replace(
    client: &impl deadpool_postgres::GenericClient,
    certificate: &SelfSigned,
) -> Result<(), StoreError> {
    execute(
        client,
        "INSERT INTO server_certificate (cert_pem, key_pem, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (only_row) DO UPDATE SET cert_pem = excluded.cert_pem,
             key_pem = excluded.key_pem, created_at = excluded.created_at",
        &[
            &certificate.cert_pem,
            &certificate.key_pem.as_str(),
            &sql_int(unix_now()),
        ],
    )
    .await?;
    Ok(())
}

/// The certificate in the database, if one was kept.
async fn kept(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<SelfSigned>, StoreError> {
    let Some(found) = row(
        client,
        "SELECT cert_pem, key_pem FROM server_certificate",
        &[],
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(SelfSigned {
        cert_pem: found.try_get(0)?,
        key_pem: zeroize::Zeroizing::new(found.try_get(1)?),
    }))
}
