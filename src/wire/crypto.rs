//! The primitives msgr uses, all on aws-lc-rs (the crypto provider rustls
//! uses too): RSA identity keys that only ever sign [`Statement`]s
//! (RSA-PSS-SHA256; key generation and PKCS#8 storage), X25519 key
//! agreement for prekeys ([`agreement`]), SHA-256, fingerprints and the
//! random generator. The envelope built from them is in
//! [`crate::wire::envelope`]; both are specified in `docs/PROTOCOL.md`.
//!
//! One key, one purpose: an identity key signs and never decrypts, so no
//! server can turn a client into a decryption oracle for it.

pub mod agreement;
pub mod key_encryption;

use std::sync::OnceLock;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicEncryptingKey};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use pkcs8::PrivateKeyInfo;
use pkcs8::der::{SecretDocument, pem::LineEnding};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::wire::signing::Statement;

/// Key sizes `register --bits` accepts and servers take.
pub const ALLOWED_BITS: [usize; 3] = [2048, 3072, 4096];

/// Default identity key size, as OpenSSH and GnuPG choose.
pub const DEFAULT_BITS: usize = 3072;

/// [`ALLOWED_BITS`] as a person reads them: `2048, 3072 or 4096`.
pub fn allowed_sizes() -> String {
    let sizes: Vec<String> = ALLOWED_BITS.iter().map(usize::to_string).collect();
    let (last, rest) = sizes.split_last().expect("some sizes are allowed");
    format!("{} or {last}", rest.join(", "))
}

/// The PEM label of an unencrypted PKCS#8 private key.
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

/// Failures of the key primitives.
#[derive(Debug, Error)]
pub enum CryptoError {
    /// Key size outside [`ALLOWED_BITS`].
    #[error("RSA keys of {0} bits are not supported; use {sizes}", sizes = allowed_sizes())]
    UnsupportedSize(usize),
    /// The PEM or DER encoding could not be parsed as an RSA key.
    #[error("not a valid RSA key: {0}")]
    BadKey(String),
    /// A key operation failed (generation, signing, key agreement).
    #[error("a key operation failed")]
    Failed,
}

/// An account's RSA private key. Never printed: `Debug` shows only the size.
///
/// Loading checks the encoding and reads the public half; the signing form
/// is built (and validated by aws-lc, which costs about as much as one
/// signature) only on first use, or ahead of it by
/// [`prepare`](Self::prepare), as many commands (a `read` with a live
/// session) never sign.
pub struct PrivateKey {
    /// The PKCS#8 DER encoding, wiped on drop.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The public half, read from the encoding.
    public: PublicKey,
    /// Built on first signature.
    signing: OnceLock<KeyPair>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits, redacted)", self.bits())
    }
}

impl PrivateKey {
    /// Generate a fresh key of `bits` bits (one of [`ALLOWED_BITS`]).
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(CryptoError::UnsupportedSize(other)),
        };
        let key = KeyPair::generate(size).map_err(|_| CryptoError::Failed)?;
        let der = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(|_| CryptoError::Failed)?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// Parse an unencrypted PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let bad = |e: &dyn std::fmt::Display| CryptoError::BadKey(e.to_string());
        let info = PrivateKeyInfo::try_from(der).map_err(|e| bad(&e))?;
        let key = pkcs1::RsaPrivateKey::try_from(info.private_key).map_err(|e| bad(&e))?;
        let public = PublicKeyComponents {
            n: key.modulus.as_bytes(),
            e: key.public_exponent.as_bytes(),
        };
        let public_der = AsDer::<PublicKeyX509Der>::as_der(&public)
            .map_err(|_| CryptoError::BadKey("the public key cannot be encoded".into()))?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            public: PublicKey::from_der(public_der.as_ref())?,
            signing: OnceLock::new(),
        })
    }

    /// Parse an unencrypted PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let (label, document) =
            SecretDocument::from_pem(pem).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        if label != PKCS8_PEM_LABEL {
            return Err(CryptoError::BadKey(format!(
                "expected a PEM \"{PKCS8_PEM_LABEL}\" block, found \"{label}\""
            )));
        }
        Self::from_pkcs8_der(document.as_bytes())
    }

    /// The unencrypted PKCS#8 DER encoding; wiped on drop.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// Encode as unencrypted PKCS#8 PEM; the string is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, CryptoError> {
        SecretDocument::try_from(self.pkcs8.as_slice())
            .and_then(|document| document.to_pem(PKCS8_PEM_LABEL, LineEnding::LF))
            .map_err(|e| CryptoError::BadKey(e.to_string()))
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.public.bits()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// RSA-PSS-SHA256 signature (MGF1-SHA256, 32-byte salt) over a
    /// statement.
    pub fn sign(&self, statement: &Statement) -> Result<Vec<u8>, CryptoError> {
        let key = self.signing_key()?;
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PSS_SHA256,
            &SystemRandom::new(),
            statement.as_bytes(),
            &mut signature,
        )
        .map_err(|_| CryptoError::Failed)?;
        Ok(signature)
    }

    /// Build the signing form now (as a command that will sign can do on
    /// another thread while it waits for the network) rather than at the
    /// first [`sign`](Self::sign).
    pub fn prepare(&self) -> Result<(), CryptoError> {
        self.signing_key().map(drop)
    }

    fn signing_key(&self) -> Result<&KeyPair, CryptoError> {
        built_once(&self.signing, || {
            KeyPair::from_pkcs8(&self.pkcs8).map_err(|e| CryptoError::BadKey(e.to_string()))
        })
    }
}

/// The value in `cell`, built by `build` the first time.
fn built_once<T>(
    cell: &OnceLock<T>,
    build: impl FnOnce() -> Result<T, CryptoError>,
) -> Result<&T, CryptoError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = build()?;
    Ok(cell.get_or_init(|| value))
}

/// An RSA identity public key: a contact's, the server's record of an
/// account's, or one's own. It verifies signatures; nothing is ever
/// encrypted to it.
#[derive(Clone)]
pub struct PublicKey {
    /// SubjectPublicKeyInfo DER, normalised; identity of the key.
    der: Vec<u8>,
    /// Size of the modulus in bits.
    bits: usize,
    /// Parsed for RSA-PSS verification.
    verifying: ParsedPublicKey,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Parse SubjectPublicKeyInfo DER, refusing sizes outside [`ALLOWED_BITS`].
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        // aws-lc parses and measures RSA public keys through this type; it
        // is dropped here, never used to encrypt.
        let parsed =
            PublicEncryptingKey::from_der(der).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let bits = parsed.key_size_bits();
        if !ALLOWED_BITS.contains(&bits) {
            return Err(CryptoError::UnsupportedSize(bits));
        }
        let der = AsDer::<PublicKeyX509Der>::as_der(&parsed)
            .map_err(|_| CryptoError::BadKey("cannot encode the key".into()))?
            .as_ref()
            .to_vec();
        if public_exponent(&der) != Some(&PUBLIC_EXPONENT[..]) {
            return Err(CryptoError::BadKey(
                "the public exponent is not 65537, the only one msgr accepts".into(),
            ));
        }
        let verifying = ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &der)
            .map_err(|e| CryptoError::BadKey(e.to_string()))?;
        Ok(Self {
            der,
            bits,
            verifying,
        })
    }

    /// Encode as SubjectPublicKeyInfo DER.
    pub fn to_der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// `SHA256:` and the unpadded base64 SHA-256 of the DER encoding.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// Check an RSA-PSS-SHA256 signature made by [`PrivateKey::sign`].
    pub fn verify(&self, statement: &Statement, signature: &[u8]) -> bool {
        self.verifying
            .verify_sig(statement.as_bytes(), signature)
            .is_ok()
    }
}

/// The public exponent every identity key has: 65537, what every current
/// implementation makes. One value is simpler to check everywhere, and a
/// small one such as 3 has a history of attacks on careless verifiers.
const PUBLIC_EXPONENT: [u8; 3] = [1, 0, 1];

/// The big-endian public exponent of the RSA key in SubjectPublicKeyInfo
/// `der`, if it parses.
fn public_exponent(der: &[u8]) -> Option<&[u8]> {
    let info = pkcs8::SubjectPublicKeyInfoRef::try_from(der).ok()?;
    let bits = info.subject_public_key.as_bytes()?;
    let key = pkcs1::RsaPublicKey::try_from(bits).ok()?;
    Some(key.public_exponent.as_bytes())
}

/// OpenSSH-style fingerprint of any DER blob: `SHA256:` and unpadded base64.
pub fn fingerprint(der: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(sha256(der)))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    digest(&SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

/// `N` bytes from the operating system's random generator (through
/// aws-lc). Failing to get randomness is not recoverable.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    bytes
}

/// Three 2048-bit keys generated once and shared by the unit tests.
#[cfg(test)]
pub(crate) fn test_keys() -> &'static [PrivateKey; 3] {
    static KEYS: std::sync::OnceLock<[PrivateKey; 3]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| std::array::from_fn(|_| PrivateKey::generate(2048).unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> &'static PrivateKey {
        &test_keys()[0]
    }

    #[test]
    fn sign_and_verify() {
        let key = test_key();
        let statement = crate::wire::signing::envelope(b"hello");
        let signature = key.sign(&statement).unwrap();
        assert!(key.public_key().verify(&statement, &signature));
        let other = crate::wire::signing::envelope(b"hellO");
        assert!(!key.public_key().verify(&other, &signature));
    }

    #[test]
    fn pem_and_der_round_trip() {
        let key = test_key();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = PrivateKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let public = PublicKey::from_der(&key.public_key().to_der()).unwrap();
        assert_eq!(public.fingerprint(), key.public_key().fingerprint());
        assert!(public.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn only_keys_with_the_public_exponent_65537_are_accepted() {
        use rsa::pkcs8::EncodePublicKey;
        let mut rng = rand::thread_rng();
        let mut with = |exponent: u32| {
            let key = rsa::RsaPrivateKey::new_with_exp(&mut rng, 2048, &exponent.into()).unwrap();
            key.to_public_key().to_public_key_der().unwrap()
        };
        assert!(PublicKey::from_der(with(65537).as_bytes()).is_ok());
        let refused = PublicKey::from_der(with(3).as_bytes()).unwrap_err();
        assert!(refused.to_string().contains("65537"), "{refused}");
    }

    /// The format must not depend on the library: check a signature with
    /// the pure-Rust `rsa` crate's implementation of the same standard (PSS
    /// with SHA-256 and a 32-byte salt).
    #[test]
    fn signatures_match_an_independent_implementation() {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::sha2::{Digest, Sha256};
        let key = test_key();
        let reference = rsa::RsaPublicKey::from_public_key_der(&key.public_key().to_der()).unwrap();
        let statement = crate::wire::signing::envelope(b"message");
        let signature = key.sign(&statement).unwrap();
        let digest = Sha256::digest(statement.as_bytes());
        reference
            .verify(rsa::Pss::new::<Sha256>(), &digest, &signature)
            .expect("an RSA-PSS-SHA256 signature with a 32-byte salt");
    }

    #[test]
    fn sha256_and_random_bytes() {
        assert_eq!(
            crate::wire::protocol::hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    #[test]
    fn a_damaged_private_key_fails_when_used_not_with_a_panic() {
        let mut der = test_key().to_pkcs8_der().to_vec();
        let index = der.len() - 10; // inside the last CRT coefficient
        der[index] ^= 1;
        if let Ok(key) = PrivateKey::from_pkcs8_der(&der) {
            let statement = crate::wire::signing::envelope(b"x");
            assert!(matches!(key.sign(&statement), Err(CryptoError::BadKey(_))));
        }
    }

    #[test]
    fn odd_sizes_are_refused() {
        assert!(matches!(
            PrivateKey::generate(1024),
            Err(CryptoError::UnsupportedSize(1024))
        ));
        assert!(PublicKey::from_der(b"garbage").is_err());
    }
}
