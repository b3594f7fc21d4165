//! Server certificate verification: `--ca-cert` (a CA, or the server's own
//! certificate), else what was pinned for the server — its certificate's
//! fingerprint (which binds: no other certificate is accepted, even one the
//! system's roots vouch for), or that the system's roots vouched for it
//! (which they must then do every time) — else, on first contact, the
//! system's roots, else the certificate itself. The verifier records what
//! it decided so the caller can pin a new server or report one that does
//! not match its pin.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::wire::crypto::fingerprint;

/// How the server is to be trusted.
#[derive(Debug, Clone)]
pub enum TrustPolicy {
    /// Only certificates that chain to, or equal, one of these.
    CaCertificates(Vec<CertificateDer<'static>>),
    /// What is pinned for this `host:port`; without a pin, the system
    /// roots, else the certificate is pinned on first use.
    FirstUse {
        /// The pin, if the server was seen before.
        pinned: Option<ServerPin>,
    },
}

/// What a client pins for a server on first contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPin {
    /// This certificate fingerprint, and no other certificate.
    Certificate(String),
    /// Any certificate the system's roots vouch for, and no other.
    SystemRoots,
}

impl std::fmt::Display for ServerPin {
    /// How an error names the pin: `pinned fingerprint SHA256:…`, or
    /// `pinned: one the system's roots vouch for`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Certificate(fingerprint) => write!(f, "pinned fingerprint {fingerprint}"),
            Self::SystemRoots => f.write_str("pinned: one the system's roots vouch for"),
        }
    }
}

impl ServerPin {
    /// How `known_servers.toml` writes the pin.
    pub const SYSTEM_ROOTS: &str = "system-roots";

    /// The pin as `known_servers.toml` writes it.
    pub fn stored(&self) -> &str {
        match self {
            Self::Certificate(fingerprint) => fingerprint,
            Self::SystemRoots => Self::SYSTEM_ROOTS,
        }
    }

    /// The pin `known_servers.toml` wrote as `stored`.
    pub fn from_stored(stored: &str) -> Self {
        match stored {
            Self::SYSTEM_ROOTS => Self::SystemRoots,
            fingerprint => Self::Certificate(fingerprint.to_owned()),
        }
    }
}

/// What the verifier concluded about the presented certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOutcome {
    /// Accepted by the CA file or the existing pin.
    Trusted,
    /// First contact: accepted, and this should be pinned.
    NewPin(ServerPin),
    /// Refused: the certificate is not what was pinned.
    Changed {
        /// The pin on record.
        pinned: ServerPin,
        /// The fingerprint the server presented.
        presented: String,
    },
}

/// A [`ServerCertVerifier`] implementing [`TrustPolicy`].
#[derive(Debug)]
pub struct Verifier {
    policy: TrustPolicy,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<Option<TrustOutcome>>,
}

impl Verifier {
    /// A verifier for `policy` using `provider`'s signature algorithms.
    pub fn new(policy: TrustPolicy, provider: Arc<CryptoProvider>) -> Self {
        Self {
            policy,
            provider,
            outcome: Mutex::new(None),
        }
    }

    /// What the last handshake decided, if it got that far.
    pub fn outcome(&self) -> Option<TrustOutcome> {
        self.outcome.lock().expect("verifier lock").clone()
    }

    fn record(&self, outcome: TrustOutcome) {
        *self.outcome.lock().expect("verifier lock") = Some(outcome);
    }

    fn webpki(&self, roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn chains_to(
        &self,
        roots: RootCertStore,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki(roots)?
            .verify_server_cert(end_entity, intermediates, server_name, &[], now)
    }
}

/// The system's trusted roots; loaded only when a pin does not decide.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.policy {
            TrustPolicy::CaCertificates(certs) => {
                if certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
                    self.record(TrustOutcome::Trusted);
                    return Ok(ServerCertVerified::assertion());
                }
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(certs.iter().cloned());
                let verified =
                    self.chains_to(roots, end_entity, intermediates, server_name, now)?;
                self.record(TrustOutcome::Trusted);
                Ok(verified)
            }
            TrustPolicy::FirstUse { pinned } => {
                let presented = fingerprint(end_entity);
                let vouched = || {
                    self.chains_to(system_roots(), end_entity, intermediates, server_name, now)
                        .is_ok()
                };
                let outcome = match pinned {
                    Some(ServerPin::Certificate(pinned)) if *pinned == presented => {
                        TrustOutcome::Trusted
                    }
                    Some(ServerPin::SystemRoots) if vouched() => TrustOutcome::Trusted,
                    Some(pinned) => TrustOutcome::Changed {
                        pinned: pinned.clone(),
                        presented,
                    },
                    None if vouched() => TrustOutcome::NewPin(ServerPin::SystemRoots),
                    None => TrustOutcome::NewPin(ServerPin::Certificate(presented)),
                };
                let changed = matches!(outcome, TrustOutcome::Changed { .. });
                self.record(outcome);
                if changed {
                    return Err(rustls::Error::General(
                        "server certificate fingerprint changed".into(),
                    ));
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
