//! A key rotation as the wire carries it: the statement that an account
//! replaced one identity key with another at a time, signed by both keys
//! ([`crate::wire::signing::rotation`]). The server keeps each account's
//! rotations in order and serves them with its key, so that a contact who
//! pinned an earlier key can follow the chain to the current one
//! ([`follow`]) while a key not chained to the pin is still refused.

use serde::{Deserialize, Serialize};

use super::{Base64Bytes, UserName};
use crate::wire::crypto::{CryptoError, PrivateKey, PublicKey};
use crate::wire::signing;

/// One link of an account's key history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// The replaced identity key, SubjectPublicKeyInfo DER.
    pub old_key: Base64Bytes,
    /// The replacing identity key, SubjectPublicKeyInfo DER.
    pub new_key: Base64Bytes,
    /// When the old key was replaced, seconds since the Unix epoch.
    pub rotated_at: u64,
    /// RSA-PSS signature by the old key over the rotation statement.
    pub old_signature: Base64Bytes,
    /// RSA-PSS signature by the new key over the same statement.
    pub new_signature: Base64Bytes,
}

impl KeyRotation {
    /// `owner` replaces `old` with `new` at `rotated_at`, signed by both.
    pub fn sign(
        owner: &UserName,
        old: &PrivateKey,
        new: &PrivateKey,
        rotated_at: u64,
    ) -> Result<Self, CryptoError> {
        let (old_key, new_key) = (old.public_key().to_der(), new.public_key().to_der());
        let statement = signing::rotation(owner, rotated_at, &old_key, &new_key);
        Ok(Self {
            old_signature: Base64Bytes(old.sign(&statement)?),
            new_signature: Base64Bytes(new.sign(&statement)?),
            old_key: Base64Bytes(old_key),
            new_key: Base64Bytes(new_key),
            rotated_at,
        })
    }

    /// The two keys, if both parse and both signed this as `owner`'s
    /// rotation.
    pub fn verify(&self, owner: &UserName) -> Option<(PublicKey, PublicKey)> {
        let old = PublicKey::from_der(&self.old_key.0).ok()?;
        let new = PublicKey::from_der(&self.new_key.0).ok()?;
        let statement = signing::rotation(owner, self.rotated_at, &self.old_key.0, &self.new_key.0);
        (old.verify(&statement, &self.old_signature.0)
            && new.verify(&statement, &self.new_signature.0))
        .then_some((old, new))
    }
}

/// A key replaced by a rotation, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The key.
    pub key: PublicKey,
    /// When it was replaced, seconds since the Unix epoch (signed by it).
    pub at: u64,
}

/// The keys `owner` replaced on the way from `pinned` to `current` along
/// `chain`, oldest first, if the chain leads there: from the link that
/// replaces `pinned`, each link signed by both its keys, replacing the key
/// the one before brought, at a time no earlier than the one before, and
/// the last bringing `current`. `None` if it does not.
pub fn follow(
    chain: &[KeyRotation],
    owner: &UserName,
    pinned: &PublicKey,
    current: &PublicKey,
) -> Option<Vec<Replaced>> {
    let start = chain
        .iter()
        .position(|link| link.old_key.0 == pinned.to_der())?;
    let mut replaced = Vec::new();
    let mut holder = pinned.clone();
    let mut since = 0;
    for link in &chain[start..] {
        let (old, new) = link.verify(owner)?;
        if old != holder || link.rotated_at < since {
            return None;
        }
        replaced.push(Replaced {
            key: old,
            at: link.rotated_at,
        });
        since = link.rotated_at;
        holder = new;
        if holder == *current {
            return Some(replaced);
        }
    }
    None
}

/// The keys `owner` had before `current`, oldest first, as far back as the
/// end of `chain` vouches for them: walking back from `current`, each link
/// that brought the key held so far, signed by both its keys, adds the key
/// it replaced. For a key pinned without an earlier pin, whose history
/// still tells which key signed a message sent before a rotation.
pub fn history(chain: &[KeyRotation], owner: &UserName, current: &PublicKey) -> Vec<Replaced> {
    let mut replaced = Vec::new();
    let mut holder = current.clone();
    let mut until = u64::MAX;
    for link in chain.iter().rev() {
        let Some((old, new)) = link.verify(owner) else {
            break;
        };
        if new != holder || link.rotated_at > until {
            break;
        }
        replaced.push(Replaced {
            key: old.clone(),
            at: link.rotated_at,
        });
        until = link.rotated_at;
        holder = old;
    }
    replaced.reverse();
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;
    use crate::wire::protocol::username;

    /// Alice's keys one, two and three, and the chain of rotations from
    /// one to two (at 100) and from two to three (at 200).
    fn alice_rotated_twice() -> (UserName, [PublicKey; 3], [KeyRotation; 2]) {
        let [one, two, three] = test_keys();
        let alice = username("Alice");
        let chain = [
            KeyRotation::sign(&alice, one, two, 100).unwrap(),
            KeyRotation::sign(&alice, two, three, 200).unwrap(),
        ];
        let keys = [one.public_key(), two.public_key(), three.public_key()];
        (alice, keys, chain)
    }

    #[test]
    fn a_chain_is_followed_from_the_pin_to_the_current_key_only() {
        let (alice, [k1, k2, k3], chain) = alice_rotated_twice();
        let [_, two, three] = test_keys();
        let replaced = follow(&chain, &alice, &k1, &k3).unwrap();
        assert_eq!(
            replaced,
            [
                Replaced {
                    key: k1.clone(),
                    at: 100
                },
                Replaced {
                    key: k2.clone(),
                    at: 200
                }
            ]
        );
        assert_eq!(follow(&chain, &alice, &k2, &k3).unwrap().len(), 1);
        assert_eq!(follow(&chain, &alice, &k1, &k2).unwrap().len(), 1);
        assert!(
            follow(&chain, &alice, &k3, &k1).is_none(),
            "never backwards"
        );
        assert!(follow(&chain, &username("Bob"), &k1, &k3).is_none());
        assert!(follow(&chain[1..], &alice, &k1, &k3).is_none(), "a gap");

        // A link signed by one key only does not count.
        let mut forged = chain.clone();
        forged[1].new_signature = forged[1].old_signature.clone();
        assert!(follow(&forged, &alice, &k1, &k3).is_none());
        assert!(chain[1].verify(&alice).is_some());
        assert!(forged[1].verify(&alice).is_none());
        // Nor does a chain that goes back in time.
        let backdated = [
            chain[0].clone(),
            KeyRotation::sign(&alice, two, three, 50).unwrap(),
        ];
        assert!(follow(&backdated, &alice, &k1, &k3).is_none());
    }

    #[test]
    fn the_history_behind_a_key_goes_back_as_far_as_the_chain_vouches() {
        let (alice, [k1, k2, k3], chain) = alice_rotated_twice();
        assert_eq!(
            history(&chain, &alice, &k3),
            [
                Replaced {
                    key: k1.clone(),
                    at: 100
                },
                Replaced {
                    key: k2.clone(),
                    at: 200
                }
            ]
        );
        assert_eq!(history(&chain, &alice, &k2), []);
        assert_eq!(history(&chain, &username("Bob"), &k3), []);
        let mut broken = chain.clone();
        broken[0].old_signature = broken[0].new_signature.clone();
        assert_eq!(
            history(&broken, &alice, &k3).len(),
            1,
            "stops at a forged link"
        );
    }
}
