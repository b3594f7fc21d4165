//! X25519 key agreement (RFC 7748) on aws-lc-rs: the prekeys messages are
//! encrypted to, and the sender's one-message ephemeral keys.

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use zeroize::Zeroizing;

use super::CryptoError;

/// Bytes of an X25519 public key, private key and shared secret.
pub const X25519_LEN: usize = 32;

/// An X25519 public key.
pub type AgreementPublic = [u8; X25519_LEN];

/// An X25519 private key. Never printed.
pub struct AgreementSecret(agreement::PrivateKey);

impl std::fmt::Debug for AgreementSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgreementSecret(redacted)")
    }
}

impl AgreementSecret {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        agreement::PrivateKey::generate(&X25519)
            .map(Self)
            .map_err(|_| CryptoError::Failed)
    }

    /// The key with these 32 private bytes (as [`to_bytes`](Self::to_bytes)
    /// gives them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        agreement::PrivateKey::from_private_key(&X25519, bytes)
            .map(Self)
            .map_err(|e| CryptoError::BadKey(e.to_string()))
    }

    /// The 32 private bytes, wiped on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let seed: Curve25519SeedBin<'_> = self.0.as_be_bytes().map_err(|_| CryptoError::Failed)?;
        Ok(Zeroizing::new(seed.as_ref().to_vec()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<AgreementPublic, CryptoError> {
        let public = self
            .0
            .compute_public_key()
            .map_err(|_| CryptoError::Failed)?;
        public.as_ref().try_into().map_err(|_| CryptoError::Failed)
    }

    /// The shared secret with `peer`. Fails for a peer key of low order,
    /// whose shared secret would be all zeros.
    pub fn agree(&self, peer: &AgreementPublic) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        agreement::agree(
            &self.0,
            UnparsedPublicKey::new(&X25519, peer),
            CryptoError::Failed,
            |secret| Ok(Zeroizing::new(secret.to_vec())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_keys_round_trip() {
        let (a, b) = (
            AgreementSecret::generate().unwrap(),
            AgreementSecret::generate().unwrap(),
        );
        let shared = a.agree(&b.public_key().unwrap()).unwrap();
        assert_eq!(shared, b.agree(&a.public_key().unwrap()).unwrap());
        let again = AgreementSecret::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(again.public_key().unwrap(), a.public_key().unwrap());
    }

    /// RFC 7748, section 6.1.
    #[test]
    fn matches_the_rfc_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let alice = AgreementSecret::from_bytes(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .unwrap();
        let bob_public: AgreementPublic =
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                .try_into()
                .unwrap();
        assert_eq!(
            alice.public_key().unwrap().to_vec(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            alice.agree(&bob_public).unwrap().to_vec(),
            hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    #[test]
    fn a_low_order_peer_key_is_refused() {
        let a = AgreementSecret::generate().unwrap();
        assert!(a.agree(&[0; X25519_LEN]).is_err());
    }
}
