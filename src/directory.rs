//! Other users' public keys: fetched from the server, pinned on first
//! sight, and compared with the pin every time after. A key that differs
//! from its pin is refused until the user replaces the pin deliberately.

use crate::crypto::PublicKey;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::keyring::{AccountAccess, Contact};
use crate::net::{Connection, NetError, unexpected};
use crate::protocol::{ErrorCode, Request, Response};

/// How a fetched key relates to the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// No pin existed; the key is pinned now.
    New,
    /// The key equals the pin.
    Unchanged,
    /// The key differed and replaced the pin on request.
    Replaced,
}

/// A user's key as fetched and checked.
#[derive(Debug)]
pub struct CheckedKey {
    /// The name as the server spells it.
    pub name: String,
    /// The key, equal to the pin now.
    pub key: PublicKey,
    /// How it related to the pin before.
    pub status: PinStatus,
}

/// Fetch `name`'s key and check it against the pin; pin it if new. A
/// changed key is a trust error unless `replace` is set. The pin is
/// checked again under the account lock before it is written, so a pin
/// made meanwhile by another msgr process is never overwritten unasked.
pub fn fetch_checked(
    connection: &mut Connection,
    account: &impl AccountAccess,
    name: &str,
    replace: bool,
) -> AppResult<CheckedKey> {
    check_answer(
        account,
        name,
        connection.request(&key_request(name)),
        replace,
    )
}

/// The request for `name`'s key, for callers that send it themselves.
pub fn key_request(name: &str) -> Request {
    Request::GetKey {
        user: name.to_owned(),
    }
}

/// [`fetch_checked`] for an `answer` to [`key_request`] already read.
pub fn check_answer(
    account: &impl AccountAccess,
    name: &str,
    answer: Result<Response, NetError>,
    replace: bool,
) -> AppResult<CheckedKey> {
    let (name, key) = parse_key(name, answer)?;
    let status = pin_status(account.files().contact(&name)?, &name, &key, replace)?;
    if status == PinStatus::Unchanged {
        return Ok(CheckedKey { name, key, status });
    }
    let status = account.locked(|locked| {
        let status = match pin_status(locked.contact(&name)?, &name, &key, replace) {
            Ok(status) => status,
            Err(changed) => return Ok(Err(changed)),
        };
        if status != PinStatus::Unchanged {
            locked.pin_contact(&name, &key)?;
        }
        Ok(Ok(status))
    })??;
    Ok(CheckedKey { name, key, status })
}

/// How `key` relates to the pin, or the trust error if it differs and is
/// not to be replaced.
fn pin_status(
    pinned: Option<Contact>,
    name: &str,
    key: &PublicKey,
    replace: bool,
) -> AppResult<PinStatus> {
    match pinned {
        None => Ok(PinStatus::New),
        Some(pinned) if pinned.key == *key => Ok(PinStatus::Unchanged),
        Some(_) if replace => Ok(PinStatus::Replaced),
        Some(pinned) => Err(key_changed(name, &pinned.key, key)),
    }
}

/// The pinned key of `name`, fetching and pinning it if there is none.
pub fn pinned_or_fetch(
    connection: &mut Connection,
    account: &impl AccountAccess,
    name: &str,
) -> AppResult<PublicKey> {
    match account.files().contact(name)? {
        Some(contact) => Ok(contact.key),
        None => Ok(fetch_checked(connection, account, name, false)?.key),
    }
}

/// The trust error for a key that differs from its pin.
pub fn key_changed(name: &str, pinned: &PublicKey, offered: &PublicKey) -> AppError {
    AppError::new(
        ExitStatus::Trust,
        format!(
            "the key the server offers for {name} does not match the pinned one: pinned fingerprint {}, offered fingerprint {}",
            pinned.fingerprint(),
            offered.fingerprint()
        ),
    )
    .hint(format!(
        "if {name} really has a new key, confirm its fingerprint with them and run `msgr key {name} --replace`"
    ))
}

fn parse_key(name: &str, answer: Result<Response, NetError>) -> AppResult<(String, PublicKey)> {
    let response = answer.map_err(|error| match error {
        NetError::Server {
            code: ErrorCode::UnknownUser,
            ..
        } => AppError::new(
            ExitStatus::UnknownUser,
            format!("there is no user named {name} on this server"),
        )
        .hint("check the spelling of the name"),
        other => other.into(),
    })?;
    let Response::Key { user, public_key } = response else {
        return Err(unexpected(&response).into());
    };
    let key = PublicKey::from_der(&public_key.0).map_err(|e| {
        AppError::new(
            ExitStatus::Connection,
            format!("the server sent an unusable key for {name}: {e}"),
        )
    })?;
    Ok((user, key))
}
