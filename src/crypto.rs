//! Identity keys and the RSA primitives msgr uses: key generation and PKCS#8
//! storage, RSA-PSS-SHA256 signatures, RSA-OAEP-SHA256 key wrapping, and
//! SHA-256 fingerprints. The message envelope built from them is in
//! [`crate::envelope`]; both are specified in `docs/PROTOCOL.md`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::rngs::OsRng;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Key sizes `register --bits` accepts and servers take.
pub const ALLOWED_BITS: [usize; 3] = [2048, 3072, 4096];

/// Default identity key size, as OpenSSH and GnuPG choose.
pub const DEFAULT_BITS: usize = 3072;

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
pub struct PrivateKey {
    key: RsaPrivateKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits, redacted)", self.key.size() * 8)
    }
}

impl PrivateKey {
    /// Generate a fresh key of `bits` bits (one of [`ALLOWED_BITS`]).
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        if !ALLOWED_BITS.contains(&bits) {
            return Err(CryptoError::UnsupportedSize(bits));
        }
        let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(|_| CryptoError::Rsa)?;
        Ok(Self { key })
    }

    /// Parse an unencrypted PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let key =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        key.validate()
            .map_err(|e| CryptoError::BadKey(e.to_string()))?;
        Ok(Self { key })
    }

    /// Encode as unencrypted PKCS#8 PEM; the string is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, CryptoError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CryptoError::BadKey(e.to_string()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.to_public_key(),
        }
    }

    /// RSA-PSS-SHA256 signature (MGF1-SHA256, 32-byte salt) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let digest = Sha256::digest(message);
        self.key
            .sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), &digest)
            .map_err(|_| CryptoError::Rsa)
    }

    /// Undo [`PublicKey::wrap`]: RSA-OAEP-SHA256 decryption.
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        self.key
            .decrypt(Oaep::new::<Sha256>(), wrapped)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| CryptoError::Rsa)
    }
}

/// An RSA public key: a contact's, the server's record of an account's, or
/// one's own.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Parse SubjectPublicKeyInfo DER, refusing sizes outside [`ALLOWED_BITS`].
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let bits = key.size() * 8;
        if !ALLOWED_BITS.contains(&bits) {
            return Err(CryptoError::UnsupportedSize(bits));
        }
        Ok(Self { key })
    }

    /// Encode as SubjectPublicKeyInfo DER.
    pub fn to_der(&self) -> Vec<u8> {
        self.key
            .to_public_key_der()
            .expect("an RSA public key always encodes")
            .into_vec()
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// `SHA256:` and the unpadded base64 SHA-256 of the DER encoding.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.to_der())
    }

    /// Check an RSA-PSS-SHA256 signature made by [`PrivateKey::sign`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest = Sha256::digest(message);
        self.key
            .verify(Pss::new::<Sha256>(), &digest, signature)
            .is_ok()
    }

    /// RSA-OAEP-SHA256 (MGF1-SHA256, empty label) encryption of a short secret.
    pub fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key
            .encrypt(&mut OsRng, Oaep::new::<Sha256>(), secret)
            .map_err(|_| CryptoError::Rsa)
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

    #[test]
    fn odd_sizes_are_refused() {
        assert!(matches!(
            PrivateKey::generate(1024),
            Err(CryptoError::UnsupportedSize(1024))
        ));
        assert!(PublicKey::from_der(b"garbage").is_err());
    }
}
