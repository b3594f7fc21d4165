//! `prekeys.toml`: the private halves of the account's prekeys (X25519),
//! which messages to the account are encrypted to. Signed prekeys: the
//! newest is the one published, replaced weekly; older ones are kept while
//! messages sealed to them may still be read. One-time prekeys: a pool the
//! server hands out one per message; each private half is deleted once its
//! message is shown, so a copy of the keyring taken later opens none of
//! them again, and an unused one once no message sealed to it could still
//! be read. When those times come is [`crate::client::prekeys`]' affair.
//! The file also records when the keyring made its first prekey. Mode 0600
//! like every keyring file; not covered by the identity key's passphrase
//! (see SECURITY.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use zeroize::Zeroizing;

use crate::wire::crypto::CryptoError;
use crate::wire::crypto::agreement::{AgreementSecret, X25519_LEN};

/// One signed prekey's private half.
#[derive(Debug)]
pub struct Prekey {
    /// Its number, as envelopes name it.
    pub id: u32,
    /// When it was made, seconds since the Unix epoch (signed with it).
    pub created_at: u64,
    /// The X25519 private key.
    pub secret: AgreementSecret,
    /// Whether the server confirmed it as the account's signed prekey.
    pub published: bool,
    /// When the server confirmed it (unknown for a keyring from before
    /// this was recorded): senders have sealed to it since, and to the
    /// one before it until then.
    pub published_at: Option<u64>,
}

impl Prekey {
    /// When senders started sealing to this prekey, once published: when
    /// the server confirmed it, or else (not recorded) when it was made.
    fn in_use_since(&self) -> Option<u64> {
        self.published
            .then(|| self.published_at.unwrap_or(self.created_at))
    }
}

/// One one-time prekey's private half. Kept as its 32 bytes and made a key
/// only when used: a pool is a hundred of them, and every command that
/// logs in reads the file.
#[derive(Debug)]
pub struct OneTimePrekey {
    /// Its number, as envelopes name it; never reused.
    pub id: u32,
    /// When it was made, seconds since the Unix epoch (signed with it).
    pub created_at: u64,
    /// The X25519 private key's bytes.
    secret: Zeroizing<Vec<u8>>,
    /// Whether the server confirmed it into the account's pool.
    pub published: bool,
}

impl OneTimePrekey {
    /// The X25519 private key.
    pub fn secret(&self) -> Result<AgreementSecret, CryptoError> {
        AgreementSecret::from_bytes(&self.secret)
    }
}

/// Every prekey of the account: signed ones oldest first, and the pool of
/// one-time ones.
#[derive(Debug, Default)]
pub struct Prekeys {
    keys: Vec<Prekey>,
    one_time: Vec<OneTimePrekey>,
    /// The number the next one-time prekey gets (numbers are never reused,
    /// so a message sealed to a deleted one can never meet another key).
    next_one_time_id: u32,
    /// Whether the server confirmed one-time prekeys of this keyring. Until
    /// it has, the server's pool (if any) holds prekeys this keyring lacks
    /// (it was made anew, or lost its file), and is replaced.
    pool_confirmed: bool,
    /// When the first prekey was made: no message sent before can have
    /// been sealed for this keyring.
    created_at: Option<u64>,
}

impl Prekeys {
    /// The newest prekey, the one to publish.
    pub fn current(&self) -> Option<&Prekey> {
        self.keys.last()
    }

    /// When the keyring made its first prekey, if it has made one.
    pub fn created_at(&self) -> Option<u64> {
        self.created_at
    }

    /// Delete the private halves of the signed prekeys replaced (by a
    /// newer one made) before `signed_replaced_before`, and of the unused
    /// one-time prekeys made before `one_time_made_before`; whether any
    /// was held.
    pub fn forget_older(&mut self, signed_replaced_before: u64, one_time_made_before: u64) -> bool {
        let before = (self.keys.len(), self.one_time.len());
        // A signed prekey is replaced once a later one is in use.
        let replaced_at: Vec<Option<u64>> = (0..self.keys.len())
            .map(|index| self.keys[index + 1..].iter().find_map(Prekey::in_use_since))
            .collect();
        let mut replaced = replaced_at.into_iter();
        self.keys.retain(|_| {
            replaced
                .next()
                .flatten()
                .is_none_or(|at| at >= signed_replaced_before)
        });
        self.one_time
            .retain(|key| key.created_at >= one_time_made_before);
        (self.keys.len(), self.one_time.len()) != before
    }

    /// The private key of prekey number `id`.
    pub fn secret(&self, id: u32) -> Option<&AgreementSecret> {
        self.keys
            .iter()
            .find(|key| key.id == id)
            .map(|key| &key.secret)
    }

    /// Add `secret` as a new prekey made at `created_at`, numbered after
    /// the newest; returns it.
    pub fn add(&mut self, secret: AgreementSecret, created_at: u64) -> &Prekey {
        let id = self
            .current()
            .map_or(1, |key| key.id.wrapping_add(1).max(1));
        self.keys.push(Prekey {
            id,
            created_at,
            secret,
            published: false,
            published_at: None,
        });
        self.created_at.get_or_insert(created_at);
        self.keys.last().expect("just pushed")
    }

    /// Record that the server confirmed prekey `id` at `at`.
    pub fn mark_published(&mut self, id: u32, at: u64) {
        if let Some(key) = self.keys.iter_mut().find(|key| key.id == id) {
            key.published = true;
            key.published_at.get_or_insert(at);
        }
    }

    /// The private key of one-time prekey number `id`, unless it was used
    /// (or its bytes are not a key).
    pub fn one_time_secret(&self, id: u32) -> Option<AgreementSecret> {
        self.one_time
            .iter()
            .find(|key| key.id == id)
            .and_then(|key| key.secret().ok())
    }

    /// Add new one-time prekeys made at `created_at`, given as their
    /// private keys' bytes ([`AgreementSecret::to_bytes`]); returns the
    /// numbers they got.
    pub fn add_one_time(&mut self, secrets: Vec<Zeroizing<Vec<u8>>>, created_at: u64) -> Vec<u32> {
        let mut ids = Vec::with_capacity(secrets.len());
        for secret in secrets {
            let id = self.next_one_time_id.max(1);
            ids.push(id);
            self.one_time.push(OneTimePrekey {
                id,
                created_at,
                secret,
                published: false,
            });
            self.next_one_time_id = id.wrapping_add(1);
        }
        ids
    }

    /// Every one-time prekey held.
    pub fn one_time(&self) -> impl Iterator<Item = &OneTimePrekey> {
        self.one_time.iter()
    }

    /// How many one-time prekeys' private halves are held.
    pub fn one_time_count(&self) -> usize {
        self.one_time.len()
    }

    /// The one-time prekeys the server has not confirmed yet.
    pub fn unpublished_one_time(&self) -> impl Iterator<Item = &OneTimePrekey> {
        self.one_time.iter().filter(|key| !key.published)
    }

    /// Record that the server confirmed the one-time prekeys `ids` (into
    /// a pool that holds only this keyring's from now on).
    pub fn mark_one_time_published(&mut self, ids: &[u32]) {
        for key in &mut self.one_time {
            if ids.contains(&key.id) {
                key.published = true;
            }
        }
        self.pool_confirmed |= !ids.is_empty();
    }

    /// Whether the server's pool must be replaced rather than added to: it
    /// has never confirmed one of this keyring's one-time prekeys.
    pub fn pool_needs_replacing(&self) -> bool {
        !self.pool_confirmed
    }

    /// Delete the private halves of the one-time prekeys `ids`; whether
    /// any was held.
    pub fn remove_one_time(&mut self, ids: &[u32]) -> bool {
        let before = self.one_time.len();
        self.one_time.retain(|key| !ids.contains(&key.id));
        self.one_time.len() != before
    }
}

/// The file's form.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PrekeysFile {
    #[serde(default)]
    signed: Vec<PrekeyRecord>,
    #[serde(default)]
    next_one_time_id: u32,
    #[serde(default)]
    pool_confirmed: bool,
    #[serde(default)]
    one_time: Vec<PrekeyRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrekeyRecord {
    id: u32,
    created_at: u64,
    private_key: String,
    published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published_at: Option<u64>,
}

impl PrekeyRecord {
    fn new(id: u32, created_at: u64, secret: &[u8], published: bool) -> Self {
        Self {
            id,
            created_at,
            private_key: STANDARD.encode(secret),
            published,
            published_at: None,
        }
    }

    /// The private key's bytes, checked for length only.
    fn secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(&self.private_key)
                .map_err(|e| e.to_string())?,
        );
        if bytes.len() != X25519_LEN {
            return Err(format!("prekey {} is not {X25519_LEN} bytes long", self.id));
        }
        Ok(bytes)
    }
}

impl PrekeysFile {
    pub fn from_prekeys(prekeys: &Prekeys) -> Result<Self, CryptoError> {
        let signed = prekeys
            .keys
            .iter()
            .map(|key| {
                let bytes = key.secret.to_bytes()?;
                Ok(PrekeyRecord {
                    published_at: key.published_at,
                    ..PrekeyRecord::new(key.id, key.created_at, &bytes, key.published)
                })
            })
            .collect::<Result<_, CryptoError>>()?;
        let one_time = prekeys
            .one_time
            .iter()
            .map(|key| PrekeyRecord::new(key.id, key.created_at, &key.secret, key.published))
            .collect();
        Ok(Self {
            signed,
            next_one_time_id: prekeys.next_one_time_id,
            pool_confirmed: prekeys.pool_confirmed,
            one_time,
            created_at: prekeys.created_at,
        })
    }

    pub fn into_prekeys(self) -> Result<Prekeys, String> {
        let keys = self
            .signed
            .iter()
            .map(|record| {
                let bytes = record.secret_bytes()?;
                Ok(Prekey {
                    id: record.id,
                    created_at: record.created_at,
                    secret: AgreementSecret::from_bytes(&bytes).map_err(|e| e.to_string())?,
                    published: record.published,
                    published_at: record.published_at,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let one_time = self
            .one_time
            .iter()
            .map(|record| {
                Ok(OneTimePrekey {
                    id: record.id,
                    created_at: record.created_at,
                    secret: record.secret_bytes()?,
                    published: record.published,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let highest = one_time.iter().map(|key| key.id).max().unwrap_or(0);
        // A file from before this was recorded: its oldest prekey tells.
        let created_at = self
            .created_at
            .or_else(|| keys.iter().map(|key| key.created_at).min());
        Ok(Prekeys {
            keys,
            one_time,
            next_one_time_id: self.next_one_time_id.max(highest.wrapping_add(1)),
            pool_confirmed: self.pool_confirmed,
            created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_prekeys_are_numbered_in_order_and_round_trip() {
        let mut prekeys = Prekeys::default();
        assert!(prekeys.current().is_none());
        let fresh = || AgreementSecret::generate().unwrap();
        assert_eq!(prekeys.add(fresh(), 10).id, 1);
        assert_eq!(prekeys.add(fresh(), 20).id, 2);
        prekeys.mark_published(2, 25);
        let file = PrekeysFile::from_prekeys(&prekeys).unwrap();
        let text = toml::to_string(&file).unwrap();
        let back = toml::from_str::<PrekeysFile>(&text)
            .unwrap()
            .into_prekeys()
            .unwrap();
        let current = back.current().unwrap();
        assert_eq!(
            (current.id, current.created_at, current.published),
            (2, 20, true)
        );
        assert_eq!(
            back.secret(1).unwrap().public_key().unwrap(),
            prekeys.secret(1).unwrap().public_key().unwrap()
        );
        assert!(back.secret(3).is_none());
        assert_eq!(back.created_at(), Some(10), "when the first was made");
    }

    #[test]
    fn prekeys_are_forgotten_by_when_they_were_replaced_or_made() {
        let mut prekeys = Prekeys::default();
        let fresh = || AgreementSecret::generate().unwrap();
        for made in [100, 200, 300] {
            prekeys.add(fresh(), made);
        }
        // Prekey 2 reached the server late, and 3 not yet.
        prekeys.mark_published(1, 110);
        prekeys.mark_published(2, 260);
        let bytes = || fresh().to_bytes().unwrap();
        prekeys.add_one_time(vec![bytes()], 150);
        prekeys.add_one_time(vec![bytes()], 250);
        assert!(!prekeys.forget_older(200, 150), "nothing that old");
        // Prekey 1 was in use until 260, when 2 was published.
        assert!(prekeys.forget_older(250, 200), "one-time prekey 1 goes");
        assert!(prekeys.secret(1).is_some());
        assert!(prekeys.one_time_secret(1).is_none());
        assert!(prekeys.one_time_secret(2).is_some());
        assert!(prekeys.forget_older(261, 200));
        assert!(prekeys.secret(1).is_none());
        // Nothing replaced prekey 2 on the server yet.
        prekeys.forget_older(u64::MAX, 0);
        assert!(prekeys.secret(2).is_some() && prekeys.secret(3).is_some());
        prekeys.mark_published(3, 300);
        assert!(prekeys.forget_older(u64::MAX, u64::MAX));
        assert!(prekeys.secret(2).is_none());
        assert_eq!(prekeys.current().map(|current| current.id), Some(3));
        assert_eq!(prekeys.created_at(), Some(100), "the keyring's birth stays");
    }

    #[test]
    fn one_time_prekeys_round_trip_and_their_numbers_are_never_reused() {
        let mut prekeys = Prekeys::default();
        let fresh = || AgreementSecret::generate().unwrap();
        let secrets = [fresh(), fresh(), fresh()];
        let bytes = secrets.iter().map(|s| s.to_bytes().unwrap()).collect();
        prekeys.add_one_time(bytes, 5);
        prekeys.mark_one_time_published(&[1, 2]);
        let unpublished: Vec<u32> = prekeys.unpublished_one_time().map(|k| k.id).collect();
        assert_eq!(unpublished, [3]);
        assert!(prekeys.remove_one_time(&[1, 3]));
        assert!(!prekeys.remove_one_time(&[1]), "gone already");
        let text = toml::to_string(&PrekeysFile::from_prekeys(&prekeys).unwrap()).unwrap();
        let mut back = toml::from_str::<PrekeysFile>(&text)
            .unwrap()
            .into_prekeys()
            .unwrap();
        assert!(back.one_time_secret(1).is_none());
        assert_eq!(
            back.one_time_secret(2).unwrap().public_key().unwrap(),
            secrets[1].public_key().unwrap()
        );
        back.remove_one_time(&[2]);
        back.add_one_time(vec![fresh().to_bytes().unwrap()], 6);
        let ids: Vec<u32> = back.unpublished_one_time().map(|k| k.id).collect();
        assert_eq!(ids, [4], "numbers go on after the highest ever made");
    }
}
