//! A prekey as the wire carries it: an X25519 public key that messages to
//! its owner are encrypted to, with its id, its creation time and its
//! owner's identity signature over all three under the statement of its
//! kind ([`crate::wire::signing::prekey`]): a signed prekey or a one-time
//! prekey, which the same type carries. The server stores and hands them
//! out but cannot make one: a sender uses one only after checking the
//! signature, as the kind it is offered as, against the identity key it
//! pinned for the owner.

use serde::{Deserialize, Serialize};

use super::{Base64Bytes, UserName};
use crate::wire::crypto::agreement::{AgreementPublic, AgreementSecret};
use crate::wire::crypto::{CryptoError, PrivateKey, PublicKey};
use crate::wire::envelope::RecipientPrekey;
use crate::wire::signing::{self, PrekeyKind};

/// A prekey signed by its owner's identity key: the signed prekey or a
/// one-time prekey, told apart by the statement the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPrekey {
    /// The owner's number for this prekey; envelopes name it.
    pub id: u32,
    /// The X25519 public key, 32 bytes.
    pub public_key: Base64Bytes,
    /// When it was made, seconds since the Unix epoch.
    pub created_at: u64,
    /// RSA-PSS signature by the owner's identity key.
    pub signature: Base64Bytes,
}

impl SignedPrekey {
    /// Sign `secret`'s public half as `owner`'s prekey of `kind` number
    /// `id`.
    pub fn sign(
        kind: PrekeyKind,
        owner: &UserName,
        id: u32,
        created_at: u64,
        secret: &AgreementSecret,
        identity: &PrivateKey,
    ) -> Result<Self, CryptoError> {
        let public_key = secret.public_key()?;
        let signature =
            identity.sign(&signing::prekey(kind, owner, id, created_at, &public_key))?;
        Ok(Self {
            id,
            public_key: Base64Bytes(public_key.to_vec()),
            created_at,
            signature: Base64Bytes(signature),
        })
    }

    /// Whether this is the prekey `known` (same number, same key).
    pub fn names(&self, known: &RecipientPrekey) -> bool {
        self.id == known.id && self.public_key.0 == known.public_key
    }

    /// The X25519 key, if `identity` signed it as `owner`'s prekey of
    /// `kind`.
    pub fn verify(
        &self,
        kind: PrekeyKind,
        owner: &UserName,
        identity: &PublicKey,
    ) -> Option<AgreementPublic> {
        let public: AgreementPublic = self.public_key.0.as_slice().try_into().ok()?;
        let statement = signing::prekey(kind, owner, self.id, self.created_at, &public);
        identity
            .verify(&statement, &self.signature.0)
            .then_some(public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;
    use crate::wire::protocol::username;

    #[test]
    fn verifies_only_for_its_owner_and_signer() {
        let [alice, john, _] = test_keys();
        let secret = AgreementSecret::generate().unwrap();
        let prekey = SignedPrekey::sign(
            PrekeyKind::Signed,
            &username("Alice"),
            7,
            100,
            &secret,
            alice,
        )
        .unwrap();
        let public = secret.public_key().unwrap();
        assert_eq!(
            prekey.verify(PrekeyKind::Signed, &username("alice"), &alice.public_key()),
            Some(public)
        );
        assert_eq!(
            prekey.verify(PrekeyKind::Signed, &username("John"), &alice.public_key()),
            None
        );
        assert_eq!(
            prekey.verify(PrekeyKind::Signed, &username("Alice"), &john.public_key()),
            None
        );
        // A signed prekey is no one-time prekey, and the other way round.
        assert_eq!(
            prekey.verify(PrekeyKind::OneTime, &username("Alice"), &alice.public_key()),
            None
        );
        for tampered in [
            SignedPrekey {
                id: 8,
                ..prekey.clone()
            },
            SignedPrekey {
                created_at: 101,
                ..prekey.clone()
            },
            SignedPrekey {
                public_key: Base64Bytes(vec![1; 32]),
                ..prekey.clone()
            },
            SignedPrekey {
                public_key: Base64Bytes(vec![1; 31]),
                ..prekey.clone()
            },
        ] {
            assert_eq!(
                tampered.verify(PrekeyKind::Signed, &username("Alice"), &alice.public_key()),
                None
            );
        }
    }
}
