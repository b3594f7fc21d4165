//! Other users' keys: fetched from the server, checked, pinned, and
//! compared with the pin every time after. The server's answer is believed
//! only as far as it can be checked: it must be for the name asked for, its
//! identity key must be the pinned one (or be pinned now, visibly, under
//! the pin policy, or match the fingerprint the user expects, or be reached
//! from the pin by a chain of rotations each signed by both its keys), and
//! its prekeys must be signed by that identity key.

use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::{AccountAccess, Contact, OneTimeOffer};
use crate::client::net::{Connection, NetError, unexpected};
use crate::client::prekeys;
use crate::wire::crypto::PublicKey;
use crate::wire::envelope::RecipientPrekey;
use crate::wire::protocol::{
    ErrorCode, KeyRotation, Replaced, Request, Response, SignedPrekey, UserName, follow, history,
    printable, unix_now,
};
use crate::wire::signing::PrekeyKind;

/// How a fetched key relates to the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// No pin existed; the key is pinned now.
    New,
    /// The key equals the pin.
    Unchanged,
    /// The key differed and replaced the pin, as the user expected.
    Replaced,
    /// The key differed, and the owner's signed rotations lead from the
    /// pin to it: the pin moved to it.
    Rotated,
}

/// Whether a key for a name nobody pinned yet may be pinned on sight
/// (`pin_policy` in `config.toml`: `first-use` or `explicit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinPolicy {
    /// Pin it on first contact, with a notice (the default).
    #[default]
    FirstUse,
    /// Refuse it: pins are made only by `msgr key NAME`.
    Explicit,
}

/// What a key may be accepted as.
#[derive(Debug, Clone, Copy)]
pub struct Acceptance<'a> {
    /// For a name with no pin.
    pub policy: PinPolicy,
    /// Accept only the key with this fingerprint, pinned or not (`key
    /// NAME --expect`).
    pub expect: Option<&'a str>,
}

/// A user's keys as fetched and checked.
#[derive(Debug)]
pub struct CheckedKey {
    /// The name as the server spells it (the name asked for, in some
    /// letter case).
    pub name: UserName,
    /// The identity key, equal to the pin now.
    pub key: PublicKey,
    /// The signed prekey, its signature checked; absent if the user has
    /// published none.
    pub prekey: Option<RecipientPrekey>,
    /// A one-time prekey handed out for one message, its signature
    /// checked, if one was claimed and the server had one still usable
    /// ([`prekeys::one_time_is_usable`]; never without a signed prekey).
    pub one_time: Option<OneTimeOffer>,
    /// How it related to the pin before.
    pub status: PinStatus,
    /// With [`PinStatus::Rotated`], the keys replaced since the pin, the
    /// pinned one first.
    pub replaced: Vec<Replaced>,
}

impl CheckedKey {
    /// The key pinned before a rotation moved the pin, if one did.
    pub fn rotated_from(&self) -> Option<&PublicKey> {
        match self.status {
            PinStatus::Rotated => self.replaced.first().map(|replaced| &replaced.key),
            _ => None,
        }
    }
}

/// The request for `name`'s key; with `claim`, for one of their one-time
/// prekeys too (which the server then hands out to no one else).
pub fn key_request(name: &UserName, claim: bool) -> Request {
    Request::GetKey {
        claim,
        user: name.to_string(),
    }
}

/// Fetch `name`'s keys and check them as [`check_answer`] does.
pub fn fetch_checked(
    connection: &mut Connection,
    account: &impl AccountAccess,
    name: &UserName,
    acceptance: Acceptance<'_>,
) -> ClientResult<CheckedKey> {
    check_answer(
        account,
        name,
        connection.request(&key_request(name, false)),
        acceptance,
    )
}

/// Check an `answer` to [`key_request`] for `name` and pin what it brings
/// if `acceptance` allows. The pin is checked again under the account lock
/// before it is written, so a pin made meanwhile by another msgr process is
/// never overwritten unasked.
pub fn check_answer(
    account: &impl AccountAccess,
    name: &UserName,
    answer: Result<Response, NetError>,
    acceptance: Acceptance<'_>,
) -> ClientResult<CheckedKey> {
    let offered = parse_key(name, answer)?;
    let pinned = account.files().contact(name)?;
    let (status, _) = pin_status(pinned.as_ref(), &offered.owner, acceptance)?;
    // A prekey pinned with this very key was checked when it was pinned.
    let checked_before = match (&pinned, status) {
        (Some(pin), PinStatus::Unchanged) => pin.prekey,
        _ => None,
    };
    let offered = offered.with_checked_prekeys(checked_before)?;
    if status == PinStatus::Unchanged
        && pinned.is_some_and(|pin| pin.prekey == offered.prekey || offered.prekey.is_none())
    {
        return Ok(offered.checked(status, Vec::new()));
    }
    let (status, replaced) = account.locked(|locked| {
        let pinned = locked.contact(name)?;
        let (status, replaced) = match pin_status(pinned.as_ref(), &offered.owner, acceptance) {
            Ok(status) => status,
            Err(refused) => return Ok(Err(refused)),
        };
        let owner = &offered.owner;
        let (prekey, previous) = match pinned {
            Some(pin) if status == PinStatus::Unchanged => (pin.prekey, pin.previous),
            Some(pin) if status == PinStatus::Rotated => {
                (None, [pin.previous, replaced.clone()].concat())
            }
            // A key pinned afresh: what its own chain says came before it.
            _ => (None, history(&owner.rotations, &owner.name, &owner.key)),
        };
        locked.pin_contact(&Contact {
            name: owner.name.clone(),
            key: owner.key.clone(),
            prekey: offered.prekey.or(prekey),
            previous,
        })?;
        Ok(Ok((status, replaced)))
    })??;
    Ok(offered.checked(status, replaced))
}

/// The pinned key of `name`, or else its key fetched and checked under
/// `policy`; with how it related to the pin.
pub fn pinned_or_fetch(
    connection: &mut Connection,
    account: &impl AccountAccess,
    name: &UserName,
    policy: PinPolicy,
) -> ClientResult<(PublicKey, PinStatus)> {
    if let Some(contact) = account.files().contact(name)? {
        return Ok((contact.key, PinStatus::Unchanged));
    }
    let acceptance = Acceptance {
        policy,
        expect: None,
    };
    let checked = fetch_checked(connection, account, name, acceptance)?;
    Ok((checked.key, checked.status))
}

/// Whose keys an answer offers: the name as the server spells it, the
/// identity key and the rotations that lead to it.
struct Owner {
    name: UserName,
    key: PublicKey,
    rotations: Vec<KeyRotation>,
}

/// A key answer for the name asked for, its prekeys not yet checked.
struct Offered {
    owner: Owner,
    signed_prekey: Option<SignedPrekey>,
    one_time_prekey: Option<SignedPrekey>,
}

impl Offered {
    /// The answer with its prekeys checked against its identity key (the
    /// signed prekey not again if it is `checked_before`).
    fn with_checked_prekeys(
        self,
        checked_before: Option<RecipientPrekey>,
    ) -> ClientResult<Verified> {
        let Self {
            owner,
            signed_prekey,
            one_time_prekey,
        } = self;
        let (name, key) = (&owner.name, &owner.key);
        let check = |kind, prekey: &SignedPrekey| -> ClientResult<RecipientPrekey> {
            let public_key =
                prekey
                    .verify(kind, name, key)
                    .ok_or_else(|| ClientError::ForeignPrekey {
                        name: name.to_string(),
                        fingerprint: key.fingerprint(),
                    })?;
            Ok(RecipientPrekey {
                id: prekey.id,
                public_key,
            })
        };
        let prekey = match &signed_prekey {
            None => None,
            Some(signed) if checked_before.is_some_and(|known| signed.names(&known)) => {
                checked_before
            }
            Some(signed) => Some(check(PrekeyKind::Signed, signed)?),
        };
        let one_time = match (&prekey, &one_time_prekey) {
            (Some(_), Some(one_time)) => Some(OneTimeOffer {
                prekey: check(PrekeyKind::OneTime, one_time)?,
                created_at: one_time.created_at,
            }),
            _ => None,
        }
        .filter(|offer| prekeys::one_time_is_usable(offer.created_at, unix_now()));
        Ok(Verified {
            owner,
            prekey,
            one_time,
        })
    }
}

/// A key answer that passed every check that needs no pin.
struct Verified {
    owner: Owner,
    prekey: Option<RecipientPrekey>,
    one_time: Option<OneTimeOffer>,
}

impl Verified {
    fn checked(self, status: PinStatus, replaced: Vec<Replaced>) -> CheckedKey {
        CheckedKey {
            name: self.owner.name,
            key: self.owner.key,
            prekey: self.prekey,
            one_time: self.one_time,
            status,
            replaced,
        }
    }
}

/// How the `owner`'s offered key relates to `pinned` — with the keys
/// replaced since the pin if a rotation chain leads from it — or the trust
/// error if `acceptance` does not allow it.
fn pin_status(
    pinned: Option<&Contact>,
    owner: &Owner,
    acceptance: Acceptance<'_>,
) -> ClientResult<(PinStatus, Vec<Replaced>)> {
    let (name, key) = (&owner.name, &owner.key);
    if let Some(expected) = acceptance.expect {
        let offered = key.fingerprint();
        if expected != offered {
            return Err(ClientError::UnexpectedKey {
                name: name.to_string(),
                offered,
                expected: expected.to_owned(),
            });
        }
    }
    let none = Vec::new;
    match pinned {
        Some(pin) if pin.key == *key => Ok((PinStatus::Unchanged, none())),
        Some(_) if acceptance.expect.is_some() => Ok((PinStatus::Replaced, none())),
        Some(pin) => match follow(&owner.rotations, name, &pin.key, key) {
            Some(replaced) => Ok((PinStatus::Rotated, replaced)),
            None => Err(key_changed(name, &pin.key, key)),
        },
        None if acceptance.expect.is_some() || acceptance.policy == PinPolicy::FirstUse => {
            Ok((PinStatus::New, none()))
        }
        None => Err(ClientError::NotPinned {
            name: name.to_string(),
        }),
    }
}

/// The trust error for a key that differs from its pin.
fn key_changed(name: &UserName, pinned: &PublicKey, offered: &PublicKey) -> ClientError {
    ClientError::KeyChanged {
        name: name.to_string(),
        pinned: pinned.fingerprint(),
        offered: offered.fingerprint(),
    }
}

/// The keys in `answer`, if it answers for `name`: the answer names the
/// user asked for and its identity key parses (its prekey is checked by
/// [`Offered::with_checked_prekeys`]).
fn parse_key(name: &UserName, answer: Result<Response, NetError>) -> ClientResult<Offered> {
    let response = answer.map_err(|error| match error {
        NetError::Server {
            code: ErrorCode::UnknownUser,
            ..
        } => ClientError::UnknownUser {
            name: name.to_string(),
        },
        other => other.into(),
    })?;
    let Response::Key {
        user,
        public_key,
        signed_prekey,
        one_time_prekey,
        rotations,
    } = response
    else {
        return Err(unexpected(&response).into());
    };
    let answered = printable(&user).into_owned();
    let user = name
        .same_account(user)
        .ok_or_else(|| ClientError::OtherAccount {
            asked: name.to_string(),
            answered,
        })?;
    let key = PublicKey::from_der(&public_key.0).map_err(|source| ClientError::UnusableKey {
        name: user.to_string(),
        source,
    })?;
    Ok(Offered {
        owner: Owner {
            name: user,
            key,
            rotations,
        },
        signed_prekey,
        one_time_prekey,
    })
}
