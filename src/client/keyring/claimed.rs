//! `claimed/<user>/<id>`: one-time prekeys claimed from other users and
//! kept for the next message to them, so that `create` can seal that
//! message while it connects instead of after the server's answer. Each
//! file is written once and taken by deleting it, which only one process
//! can do: two messages never use one prekey, and no lock is needed. The
//! files hold public keys only and are written without fsync, as one lost
//! in a crash costs an unused prekey; but a deletion is made durable
//! ([`AccountDir::persist_taken`]) before the prekey is used, or a power
//! loss could bring it back for a second message.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{AccountDir, KeyringError};
use crate::files::{TEMPORARY_PREFIX, create_private_dir, sync_folder, write_atomic_unsynced};
use crate::wire::crypto::PublicKey;
use crate::wire::envelope::RecipientPrekey;
use crate::wire::protocol::UserName;

/// Another user's one-time prekey, its signature checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimeOffer {
    /// The prekey.
    pub prekey: RecipientPrekey,
    /// When its owner made it (signed with it), seconds since the epoch.
    pub created_at: u64,
}

/// One file's form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimedRecord {
    id: u32,
    public_key: String,
    created_at: u64,
    /// Fingerprint of the identity key whose signature was checked.
    signer: String,
}

impl AccountDir {
    /// Keep `offer`, checked against `signer`, for the next message to
    /// `name`.
    pub fn keep_claimed(
        &self,
        name: &UserName,
        signer: &PublicKey,
        offer: &OneTimeOffer,
    ) -> Result<(), KeyringError> {
        let dir = self.claimed_dir(name);
        create_private_dir(&dir)?;
        let record = ClaimedRecord {
            id: offer.prekey.id,
            public_key: STANDARD.encode(offer.prekey.public_key),
            created_at: offer.created_at,
            signer: signer.fingerprint(),
        };
        let text = toml::to_string(&record).expect("a claimed prekey always serialises");
        Ok(write_atomic_unsynced(
            &dir.join(offer.prekey.id.to_string()),
            text.as_bytes(),
        )?)
    }

    /// Take a prekey kept for `name` that was checked against `signer` and
    /// that `usable` accepts, deleting it so no one else takes it; any
    /// other found on the way is deleted too. Best effort: a folder that
    /// cannot be read yields nothing.
    pub fn take_claimed(
        &self,
        name: &UserName,
        signer: &PublicKey,
        usable: impl Fn(&OneTimeOffer) -> bool,
    ) -> Option<OneTimeOffer> {
        let fingerprint = signer.fingerprint();
        let entries = std::fs::read_dir(self.claimed_dir(name)).ok()?;
        entries
            .filter_map(Result::ok)
            .filter(|entry| {
                !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMPORARY_PREFIX)
            })
            .find_map(|entry| {
                let path = entry.path();
                let text = std::fs::read_to_string(&path).ok();
                // Whoever deletes the file owns the prekey.
                std::fs::remove_file(&path).ok()?;
                let record: ClaimedRecord = toml::from_str(&text?).ok()?;
                let offer = record.offer()?;
                (record.signer == fingerprint && usable(&offer)).then_some(offer)
            })
    }

    /// Make the taking of `name`'s kept prekeys durable, so that none
    /// comes back after a power loss to be used for a second message.
    pub fn persist_taken(&self, name: &UserName) -> Result<(), KeyringError> {
        Ok(sync_folder(&self.claimed_dir(name))?)
    }

    fn claimed_dir(&self, name: &UserName) -> PathBuf {
        self.dir.join("claimed").join(name.canonical())
    }
}

impl ClaimedRecord {
    fn offer(&self) -> Option<OneTimeOffer> {
        let public_key = STANDARD.decode(&self.public_key).ok()?.try_into().ok()?;
        Some(OneTimeOffer {
            prekey: RecipientPrekey {
                id: self.id,
                public_key,
            },
            created_at: self.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;
    use crate::wire::protocol::username;

    fn offer(id: u32, created_at: u64) -> OneTimeOffer {
        OneTimeOffer {
            prekey: RecipientPrekey {
                id,
                public_key: [id as u8; 32],
            },
            created_at,
        }
    }

    #[test]
    fn a_kept_prekey_is_taken_once_and_only_for_its_signer() {
        let temp = tempfile::tempdir().unwrap();
        let account = AccountDir {
            dir: temp.path().to_owned(),
        };
        let [john, other, _] = test_keys();
        let name = username("John");
        assert_eq!(
            account.take_claimed(&name, &john.public_key(), |_| true),
            None
        );
        account
            .keep_claimed(&name, &john.public_key(), &offer(7, 100))
            .unwrap();
        account
            .keep_claimed(&username("carol"), &john.public_key(), &offer(8, 100))
            .unwrap();
        assert_eq!(
            account.take_claimed(&username("JOHN"), &john.public_key(), |_| true),
            Some(offer(7, 100))
        );
        assert_eq!(
            account.take_claimed(&name, &john.public_key(), |_| true),
            None,
            "taken once only"
        );
        // One checked against another key, or refused, is deleted unused.
        account
            .keep_claimed(&name, &other.public_key(), &offer(9, 100))
            .unwrap();
        account
            .keep_claimed(&name, &john.public_key(), &offer(10, 5))
            .unwrap();
        assert_eq!(
            account.take_claimed(&name, &john.public_key(), |offer| offer.created_at > 50),
            None
        );
        assert_eq!(
            std::fs::read_dir(account.claimed_dir(&name))
                .unwrap()
                .count(),
            0
        );
    }
}
