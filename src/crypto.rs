//! Identity keys and the RSA primitives msgr uses: key generation and PKCS#8
//! storage, RSA-PSS-SHA256 signatures, RSA-OAEP-SHA256 key wrapping, and
//! SHA-256 fingerprints. The message envelope built from them is in
//! [`crate::envelope`]; both are specified in `docs/PROTOCOL.md`.
//!
//! The operations run on aws-lc-rs (the crypto provider rustls uses too):
//! its private-key operations are several times faster than a pure-Rust
//! implementation, and they are the floor of every `create` and `read`.

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rsa::pkcs8::der::{SecretDocument, pem::LineEnding};
use rsa::pkcs8::{EncodePublicKey, PrivateKeyInfo};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// Key sizes `register --bits` accepts and servers take.
pub const ALLOWED_BITS: [usize; 3] = [2048, 3072, 4096];

/// Default identity key size, as OpenSSH and GnuPG choose.
pub const DEFAULT_BITS: usize = 3072;

/// The PEM label of an unencrypted PKCS#8 private key.
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

/// Failures of the key primitives.
#[derive(Debug, Error)]
pub enum CryptoError {
    /// Key size outside [`ALLOWED_BITS`].
    #[error("RSA keys of {0} bits are not supported; use 2048, 3072 or 4096")]
    UnsupportedSize(usize),
    /// The PEM or DER encoding could not be parsed as an RSA key.
    #[error("not a valid RSA key: {0}")]
    BadKey(String),
    /// An RSA operation failed (bad padding, wrong key, corrupt input).
    #[error("RSA operation failed")]
    Rsa,
}

/// An account's RSA private key. Never printed: `Debug` shows only the size.
///
/// Loading checks the encoding and reads the public half; the two
/// private-key forms are built (and validated by aws-lc, which costs about
/// as much as one signature) only on first use, as a command needs one of
/// them at most: `create` signs, `read` decrypts.
pub struct PrivateKey {
    /// The PKCS#8 DER encoding, wiped on drop.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The public half, read from the encoding.
    public: PublicKey,
    /// Built on first signature.
    signing: OnceLock<KeyPair>,
    /// Built on first decryption.
    decrypting: OnceLock<OaepPrivateDecryptingKey>,
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
        let key = PrivateDecryptingKey::generate(size).map_err(|_| CryptoError::Rsa)?;
        let der = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(|_| CryptoError::Rsa)?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// Parse an unencrypted PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let bad = |e: &dyn std::fmt::Display| CryptoError::BadKey(e.to_string());
        let info = PrivateKeyInfo::try_from(der).map_err(|e| bad(&e))?;
        let key = rsa::pkcs1::RsaPrivateKey::try_from(info.private_key).map_err(|e| bad(&e))?;
        let public = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(key.modulus.as_bytes()),
            rsa::BigUint::from_bytes_be(key.public_exponent.as_bytes()),
        )
        .map_err(|e| bad(&e))?;
        let public_der = public.to_public_key_der().map_err(|e| bad(&e))?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            public: PublicKey::from_der(public_der.as_bytes())?,
            signing: OnceLock::new(),
            decrypting: OnceLock::new(),
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

    /// RSA-PSS-SHA256 signature (MGF1-SHA256, 32-byte salt) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = built_once(&self.signing, || {
            KeyPair::from_pkcs8(&self.pkcs8).map_err(|e| CryptoError::BadKey(e.to_string()))
        })?;
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PSS_SHA256,
            &SystemRandom::new(),
            message,
            &mut signature,
        )
        .map_err(|_| CryptoError::Rsa)?;
        Ok(signature)
    }

    /// Undo [`PublicKey::wrap`]: RSA-OAEP-SHA256 decryption.
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.decrypting_key()?;
        let mut plaintext = Zeroizing::new(vec![0; key.min_output_size()]);
        let len = key
            .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut plaintext, None)
            .map_err(|_| CryptoError::Rsa)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }

    /// Build the decryption form now (as a command that will decrypt can
    /// do on another thread while it waits for the network) rather than at
    /// the first [`unwrap`](Self::unwrap).
    pub fn prepare_decryption(&self) -> Result<(), CryptoError> {
        self.decrypting_key().map(drop)
    }

    fn decrypting_key(&self) -> Result<&OaepPrivateDecryptingKey, CryptoError> {
        built_once(&self.decrypting, || {
            let key = PrivateDecryptingKey::from_pkcs8(&self.pkcs8)
                .map_err(|e| CryptoError::BadKey(e.to_string()))?;
            OaepPrivateDecryptingKey::new(key).map_err(|_| CryptoError::Rsa)
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

/// An RSA public key: a contact's, the server's record of an account's, or
/// one's own.
#[derive(Clone)]
pub struct PublicKey {
    /// SubjectPublicKeyInfo DER, normalised; identity of the key.
    der: Vec<u8>,
    /// Parsed for RSA-PSS verification.
    verifying: ParsedPublicKey,
    /// Parsed for RSA-OAEP encryption.
    encrypting: PublicEncryptingKey,
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
        let encrypting =
            PublicEncryptingKey::from_der(der).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let bits = encrypting.key_size_bits();
        if !ALLOWED_BITS.contains(&bits) {
            return Err(CryptoError::UnsupportedSize(bits));
        }
        let der = AsDer::<PublicKeyX509Der>::as_der(&encrypting)
            .map_err(|_| CryptoError::BadKey("cannot encode the key".into()))?
            .as_ref()
            .to_vec();
        let verifying = ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &der)
            .map_err(|e| CryptoError::BadKey(e.to_string()))?;
        Ok(Self {
            der,
            verifying,
            encrypting,
        })
    }

    /// Encode as SubjectPublicKeyInfo DER.
    pub fn to_der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.encrypting.key_size_bits()
    }

    /// `SHA256:` and the unpadded base64 SHA-256 of the DER encoding.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// Check an RSA-PSS-SHA256 signature made by [`PrivateKey::sign`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying.verify_sig(message, signature).is_ok()
    }

    /// RSA-OAEP-SHA256 (MGF1-SHA256, empty label) encryption of a short secret.
    pub fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key =
            OaepPublicEncryptingKey::new(self.encrypting.clone()).map_err(|_| CryptoError::Rsa)?;
        let mut ciphertext = vec![0; key.ciphertext_size()];
        let len = key
            .encrypt(&OAEP_SHA256_MGF1SHA256, secret, &mut ciphertext, None)
            .map_err(|_| CryptoError::Rsa)?
            .len();
        ciphertext.truncate(len);
        Ok(ciphertext)
    }
}

/// OpenSSH-style fingerprint of any DER blob: `SHA256:` and unpadded base64.
pub fn fingerprint(der: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(der)))
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
        let signature = key.sign(b"hello").unwrap();
        assert!(key.public_key().verify(b"hello", &signature));
        assert!(!key.public_key().verify(b"hellO", &signature));
    }

    #[test]
    fn wrap_and_unwrap() {
        let key = test_key();
        let wrapped = key.public_key().wrap(&[7; 32]).unwrap();
        assert_eq!(key.unwrap(&wrapped).unwrap().as_slice(), &[7; 32]);
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

    /// The formats must not depend on the library: check each operation
    /// against the pure-Rust `rsa` crate's implementation of the same
    /// standard (PSS with a 32-byte salt, OAEP with SHA-256 and an empty label).
    #[test]
    fn signatures_and_wrapped_keys_match_an_independent_implementation() {
        use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let key = test_key();
        let reference = rsa::RsaPublicKey::from_public_key_der(&key.public_key().to_der()).unwrap();
        let signature = key.sign(b"message").unwrap();
        let digest = Sha256::digest(b"message");
        reference
            .verify(rsa::Pss::new::<Sha256>(), &digest, &signature)
            .expect("an RSA-PSS-SHA256 signature with a 32-byte salt");

        let reference_private = rsa::RsaPrivateKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
        let wrapped = key.public_key().wrap(&[5; 32]).unwrap();
        let unwrapped = reference_private
            .decrypt(rsa::Oaep::new::<Sha256>(), &wrapped)
            .unwrap();
        assert_eq!(unwrapped, [5; 32]);
        let mut rng = rand::rngs::OsRng;
        let wrapped = reference
            .encrypt(&mut rng, rsa::Oaep::new::<Sha256>(), &[6; 32])
            .unwrap();
        assert_eq!(key.unwrap(&wrapped).unwrap().as_slice(), &[6; 32]);
    }

    #[test]
    fn a_damaged_private_key_fails_when_used_not_with_a_panic() {
        let mut der = test_key().to_pkcs8_der().to_vec();
        let index = der.len() - 10; // inside the last CRT coefficient
        der[index] ^= 1;
        if let Ok(key) = PrivateKey::from_pkcs8_der(&der) {
            assert!(matches!(key.sign(b"x"), Err(CryptoError::BadKey(_))));
            assert!(matches!(key.unwrap(&[0; 256]), Err(CryptoError::BadKey(_))));
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
