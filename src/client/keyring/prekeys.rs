//! `prekeys.toml`: the private halves of the account's signed prekeys
//! (X25519), which messages to the account are encrypted to. The newest is
//! the one published; older ones are kept so that messages sealed to them
//! still open. Mode 0600 like every keyring file; not covered by the
//! identity key's passphrase (see SECURITY.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::wire::crypto::CryptoError;
use crate::wire::crypto::agreement::AgreementSecret;

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
}

/// Every signed prekey of the account, oldest first.
#[derive(Debug, Default)]
pub struct Prekeys {
    keys: Vec<Prekey>,
}

impl Prekeys {
    /// The newest prekey, the one to publish.
    pub fn current(&self) -> Option<&Prekey> {
        self.keys.last()
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
        });
        self.keys.last().expect("just pushed")
    }

    /// Record that the server confirmed prekey `id`.
    pub fn mark_published(&mut self, id: u32) {
        if let Some(key) = self.keys.iter_mut().find(|key| key.id == id) {
            key.published = true;
        }
    }
}

/// The file's form.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PrekeysFile {
    #[serde(default)]
    signed: Vec<PrekeyRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrekeyRecord {
    id: u32,
    created_at: u64,
    private_key: String,
    published: bool,
}

impl PrekeysFile {
    pub fn from_prekeys(prekeys: &Prekeys) -> Result<Self, CryptoError> {
        let signed = prekeys
            .keys
            .iter()
            .map(|key| {
                Ok(PrekeyRecord {
                    id: key.id,
                    created_at: key.created_at,
                    private_key: STANDARD.encode(key.secret.to_bytes()?.as_slice()),
                    published: key.published,
                })
            })
            .collect::<Result<_, CryptoError>>()?;
        Ok(Self { signed })
    }

    pub fn into_prekeys(self) -> Result<Prekeys, String> {
        let keys = self
            .signed
            .into_iter()
            .map(|record| {
                let bytes = zeroize::Zeroizing::new(
                    STANDARD
                        .decode(&record.private_key)
                        .map_err(|e| e.to_string())?,
                );
                Ok(Prekey {
                    id: record.id,
                    created_at: record.created_at,
                    secret: AgreementSecret::from_bytes(&bytes).map_err(|e| e.to_string())?,
                    published: record.published,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Prekeys { keys })
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
        prekeys.mark_published(2);
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
    }
}
