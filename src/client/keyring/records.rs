//! The serialised forms of keyring files and the values they hold.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::wire::crypto::PublicKey;
use crate::wire::envelope::RecipientPrekey;
use crate::wire::protocol::{NameError, Replaced, UserName, unix_now};

/// A session token: a bearer secret, so `Debug` never shows it.
#[derive(Clone)]
pub struct SessionToken(zeroize::Zeroizing<Vec<u8>>);

impl SessionToken {
    /// Wrap raw token bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }

    /// The raw token, for sending to the server.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(redacted)")
    }
}

/// A session token and when it expires.
#[derive(Debug, Clone)]
pub struct Session {
    /// The bearer token.
    pub token: SessionToken,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl Session {
    /// Whether the session is still live `margin` seconds from now.
    pub fn is_live(&self, margin: u64) -> bool {
        self.expires_at > unix_now().saturating_add(margin)
    }
}

/// A pinned contact key.
#[derive(Debug, Clone)]
pub struct Contact {
    /// The name as the server spells it.
    pub name: UserName,
    /// The pinned identity key.
    pub key: PublicKey,
    /// The signed prekey last seen for the contact, its signature checked
    /// against `key`; lets `create` seal before the server confirms it.
    pub prekey: Option<RecipientPrekey>,
    /// The identity keys the contact rotated out since it was first
    /// pinned, oldest first, with when each was replaced: messages sent
    /// before then may be signed by them.
    pub previous: Vec<Replaced>,
}

/// `account.toml`: written once the server confirmed registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The name as the server stores it.
    pub user: UserName,
    /// Fingerprint of the registered public key (the current one, after
    /// rotations).
    pub fingerprint: String,
    /// Fingerprints of the keys rotated out (`msgr rotate`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<String>,
}

/// `session.toml`.
#[derive(Serialize, Deserialize)]
pub(super) struct SessionRecord {
    token: String,
    expires_at: u64,
}

impl SessionRecord {
    pub fn from_session(session: &Session) -> Self {
        Self {
            token: STANDARD.encode(session.token.expose()),
            expires_at: session.expires_at,
        }
    }

    pub fn into_session(self) -> Result<Session, String> {
        let token = STANDARD.decode(&self.token).map_err(|e| e.to_string())?;
        Ok(Session {
            token: SessionToken::new(token),
            expires_at: self.expires_at,
        })
    }
}

/// One entry of `contacts.toml`, keyed by the case-folded name.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ContactRecord {
    name: String,
    fingerprint: String,
    public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prekey_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prekey: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<PreviousKeyRecord>,
}

/// A key a contact rotated out, in `contacts.toml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviousKeyRecord {
    public_key: String,
    replaced_at: u64,
}

impl ContactRecord {
    pub fn new(contact: &Contact) -> Self {
        Self {
            name: contact.name.to_string(),
            fingerprint: contact.key.fingerprint(),
            public_key: STANDARD.encode(contact.key.to_der()),
            prekey_id: contact.prekey.map(|prekey| prekey.id),
            prekey: contact
                .prekey
                .map(|prekey| STANDARD.encode(prekey.public_key)),
            previous: contact
                .previous
                .iter()
                .map(|replaced| PreviousKeyRecord {
                    public_key: STANDARD.encode(replaced.key.to_der()),
                    replaced_at: replaced.at,
                })
                .collect(),
        }
    }

    pub fn to_contact(&self) -> Result<Contact, String> {
        let key = parse_key(&self.public_key)?;
        let prekey = match (self.prekey_id, &self.prekey) {
            (Some(id), Some(public_key)) => {
                let public_key = STANDARD.decode(public_key).map_err(|e| e.to_string())?;
                let public_key = public_key
                    .try_into()
                    .map_err(|_| "a prekey is not 32 bytes long".to_owned())?;
                Some(RecipientPrekey { id, public_key })
            }
            _ => None,
        };
        let previous = self
            .previous
            .iter()
            .map(|record| {
                Ok(Replaced {
                    key: parse_key(&record.public_key)?,
                    at: record.replaced_at,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Contact {
            name: self.name.parse().map_err(|e: NameError| e.to_string())?,
            key,
            prekey,
            previous,
        })
    }
}

/// A public key from its base64 DER.
fn parse_key(base64: &str) -> Result<PublicKey, String> {
    let der = STANDARD.decode(base64).map_err(|e| e.to_string())?;
    PublicKey::from_der(&der).map_err(|e| e.to_string())
}
