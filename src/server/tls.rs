//! The server's TLS material: a TLS 1.3-only rustls configuration built
//! either from the operator's PEM files (`--cert`/`--key`) or from a
//! self-signed certificate that is made on first start and kept — in the
//! data directory, or in a shared database for every server on it — and
//! reused afterwards, so that clients' pins stay valid; and the
//! certificate presented now ([`Presenting`]), which a renewal replaces
//! while the server runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

use crate::files::{self, FileError};

use crate::wire::crypto::{fingerprint, sha256};
use crate::wire::signing::CertificateDigest;

/// File name of the generated certificate in the data directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the generated certificate's private key.
pub const KEY_FILE: &str = "key.pem";

/// Names the generated certificate is valid for, besides the host name.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why no TLS configuration could be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The certificate chain file is missing, unreadable or not PEM.
    #[error("cannot use the certificate file {}: {reason}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key file is missing, unreadable or not PEM.
    #[error("cannot use the private key file {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (unsupported key, key not matching).
    #[error("the certificate in {} and the key in {} are not a usable pair: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// Making the self-signed certificate failed.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Saving the self-signed certificate failed.
    #[error("cannot save {}: {source}", path.display())]
    Save {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The self-signed certificate kept in the database is unusable.
    #[error("the certificate kept in the database is unusable: {0}")]
    Stored(String),
}

/// A self-signed certificate and its private key, as PEM text.
pub struct SelfSigned {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: zeroize::Zeroizing<String>,
}

/// A ready server configuration and the fingerprint clients will see.
#[derive(Debug)]
pub struct ServerTls {
    /// The rustls configuration for the accept loop.
    pub config: Arc<ServerConfig>,
    /// `SHA256:…` of the leaf certificate's DER, as clients pin it.
    pub fingerprint: String,
    /// SHA-256 of the leaf certificate's DER, which login and registration
    /// statements are bound to.
    pub certificate_digest: CertificateDigest,
}

/// What a connection is accepted with: the TLS configuration, and the
/// digest of its certificate, which the login and registration statements
/// made on that connection must name.
pub struct Accepting {
    /// Performs the TLS handshake.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the certificate presented.
    pub certificate_digest: CertificateDigest,
}

/// The certificate the server presents, replaceable while it runs: new
/// connections get the replacement, and each connection keeps the one it
/// was accepted with.
#[derive(Clone)]
pub struct Presenting(Arc<RwLock<Arc<Accepting>>>);

impl Presenting {
    /// Present `tls`.
    pub fn new(tls: &ServerTls) -> Self {
        Self(Arc::new(RwLock::new(accepting(tls))))
    }

    /// What a connection accepted now is accepted with.
    pub fn now(&self) -> Arc<Accepting> {
        Arc::clone(&self.0.read().expect("not poisoned"))
    }

    /// Present `tls` to connections accepted from now on.
    pub fn replace(&self, tls: &ServerTls) {
        *self.0.write().expect("not poisoned") = accepting(tls);
    }
}

fn accepting(tls: &ServerTls) -> Arc<Accepting> {
    Arc::new(Accepting {
        acceptor: TlsAcceptor::from(Arc::clone(&tls.config)),
        certificate_digest: tls.certificate_digest,
    })
}

/// Build the configuration from a PEM certificate chain and PEM private key.
pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
    let chain = load_chain(cert)?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::Key {
        path: key.to_owned(),
        reason: files::pem_reason(error, "private key"),
    })?;
    server_tls(chain, private_key).map_err(|source| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The configuration presenting `chain` (leaf first) with `key`.
fn server_tls(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerTls, rustls::Error> {
    let fingerprint = fingerprint(chain[0].as_ref());
    let certificate_digest = sha256(chain[0].as_ref());
    Ok(ServerTls {
        config: Arc::new(server_config(chain, key)?),
        fingerprint,
        certificate_digest,
    })
}

/// Build the configuration from a self-signed certificate kept elsewhere
/// than in files (a shared database).
pub fn from_self_signed(kept: &SelfSigned) -> Result<ServerTls, TlsError> {
    let unusable = |what| move |error| TlsError::Stored(files::pem_reason(error, what));
    let cert = CertificateDer::from_pem_slice(kept.cert_pem.as_bytes())
        .map_err(unusable("certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(kept.key_pem.as_bytes()).map_err(unusable("private key"))?;
    server_tls(vec![cert], key).map_err(|error| TlsError::Stored(error.to_string()))
}

/// Use the self-signed certificate in `data_dir`, making it first if there
/// is none yet.
pub fn self_signed(data_dir: &Path) -> Result<ServerTls, TlsError> {
    let cert = data_dir.join(CERT_FILE);
    let key = data_dir.join(KEY_FILE);
    // The key is saved before the certificate, so a certificate on disk
    // always has its key; a lone key from an interrupted start is replaced.
    if !cert.exists() {
        generate_into(data_dir)?;
    }
    from_files(&cert, &key)
}

/// The self-signed certificate kept in `data_dir`, if there is one, and
/// the fingerprint clients pinned; checked to be usable.
pub fn kept_in(data_dir: &Path) -> Result<Option<(SelfSigned, String)>, TlsError> {
    let cert = data_dir.join(CERT_FILE);
    let key = data_dir.join(KEY_FILE);
    if !cert.exists() {
        return Ok(None);
    }
    let fingerprint = from_files(&cert, &key)?.fingerprint;
    let cert_pem = std::fs::read_to_string(&cert).map_err(|error| TlsError::Cert {
        path: cert.clone(),
        reason: error.to_string(),
    })?;
    let key_pem = std::fs::read_to_string(&key).map_err(|error| TlsError::Key {
        path: key.clone(),
        reason: error.to_string(),
    })?;
    let kept = SelfSigned {
        cert_pem,
        key_pem: zeroize::Zeroizing::new(key_pem),
    };
    Ok(Some((kept, fingerprint)))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // msgr clients never resume a TLS session, so issuing tickets would
    // only cost both sides work on every connection.
    config.send_tls13_tickets = 0;
    Ok(config)
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    files::certificate_chain(path).map_err(|reason| TlsError::Cert {
        path: path.to_owned(),
        reason,
    })
}

/// Make a new self-signed certificate for this machine's names.
pub fn generate() -> Result<SelfSigned, TlsError> {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(subject_alt_names())?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: zeroize::Zeroizing::new(key_pair.serialize_pem()),
    })
}

/// Make a new self-signed certificate and save it with its key in
/// `data_dir`.
fn generate_into(data_dir: &Path) -> Result<(), TlsError> {
    let made = generate()?;
    let save = |error: FileError| TlsError::Save {
        path: error.path,
        source: error.source,
    };
    files::write_atomic(&data_dir.join(KEY_FILE), made.key_pem.as_bytes()).map_err(save)?;
    files::write_atomic(&data_dir.join(CERT_FILE), made.cert_pem.as_bytes()).map_err(save)
}

/// The local names plus this machine's host name, when it is a plain DNS
/// name a certificate can carry.
fn subject_alt_names() -> Vec<String> {
    let mut names: Vec<String> = LOCAL_NAMES.iter().map(|&name| name.to_owned()).collect();
    let host = gethostname::gethostname()
        .to_string_lossy()
        .to_ascii_lowercase();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.');
    if !host.is_empty() && host.chars().all(plain) && !names.contains(&host) {
        names.push(host);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = self_signed(dir.path()).unwrap();
        let second = self_signed(dir.path()).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert!(first.fingerprint.starts_with("SHA256:"));
        for file in [CERT_FILE, KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn the_certificate_kept_in_a_data_directory_is_read_as_made() {
        let dir = tempfile::tempdir().unwrap();
        assert!(kept_in(dir.path()).unwrap().is_none());
        let made = self_signed(dir.path()).unwrap();
        let (kept, fingerprint) = kept_in(dir.path()).unwrap().unwrap();
        assert_eq!(fingerprint, made.fingerprint);
        assert_eq!(
            from_self_signed(&kept).unwrap().fingerprint,
            made.fingerprint
        );
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(matches!(kept_in(dir.path()), Err(TlsError::Key { .. })));
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let generated = dir.path().join(CERT_FILE);
        self_signed(dir.path()).unwrap();
        let missing = dir.path().join("missing.pem");
        let error = from_files(&missing, &dir.path().join(KEY_FILE)).unwrap_err();
        assert!(matches!(&error, TlsError::Cert { path, .. } if *path == missing));
        // A certificate file is no private key.
        let error = from_files(&generated, &generated).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot use the private key file {}: it holds no PEM private key",
                generated.display()
            )
        );
    }

    #[test]
    fn host_name_joins_the_local_names() {
        let names = subject_alt_names();
        assert_eq!(names[..3], LOCAL_NAMES);
        assert!(names.len() <= 4);
    }
}
