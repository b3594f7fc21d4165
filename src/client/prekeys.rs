//! Keeping the account's prekeys on the server fresh, from any command
//! that logs in: a signed prekey (made for a keyring that has none,
//! replaced once a week old), and a pool of one-time prekeys, topped up to
//! [`POOL`] when the server holds fewer than a fifth of it that senders
//! still use. Everything is made and saved under the account lock before
//! it is sent, and marked published only once the server confirms it. On
//! the way, private halves no readable message can need are deleted
//! ([`forget_before`]). The rules of when a prekey may be used live here
//! too.

use tracing::debug;
use zeroize::Zeroizing;

use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::{AccountAccess, OneTimePrekey, Prekey, Prekeys};
use crate::client::net::{Connection, unexpected};
use crate::wire::crypto::agreement::AgreementSecret;
use crate::wire::crypto::{CryptoError, PrivateKey};
use crate::wire::protocol::{
    CLOCK_SLACK, MAX_MESSAGE_AGE, ONE_TIME_PREKEY_USABLE, Request, Response, SignedPrekey,
    UserName, unix_now,
};
use crate::wire::signing::PrekeyKind;

/// One-time prekeys an account keeps on the server.
pub const POOL: u32 = 100;

/// Below this many on the server, the pool is topped up (a fifth of it).
pub const REFILL_BELOW: u32 = POOL / 5;

/// Most unused one-time prekeys a keyring holds: beyond this many, no more
/// are made, so a server that keeps reporting an empty pool (lying, or
/// losing what it is sent) cannot make the keyring grow without bound.
pub const MOST_HELD: usize = 4 * POOL as usize;

/// A signed prekey this old (seconds) is replaced.
pub const SIGNED_PREKEY_LIFETIME: u64 = 7 * 24 * 60 * 60;

/// When the private halves that no message still readable at `now` can
/// need were made: `(signed_replaced_before, one_time_made_before)` for
/// [`Prekeys::forget_older`]. A message is readable for
/// [`MAX_MESSAGE_AGE`]; a signed prekey is sealed to until it is replaced,
/// and a one-time prekey for [`ONE_TIME_PREKEY_USABLE`] after it was made;
/// each gets the clock slack on top.
pub fn forget_before(now: u64) -> (u64, u64) {
    let signed = now.saturating_sub(MAX_MESSAGE_AGE + CLOCK_SLACK);
    (signed, signed.saturating_sub(ONE_TIME_PREKEY_USABLE))
}

/// Whether a sender may use a one-time prekey made at `created_at`: made
/// less than [`ONE_TIME_PREKEY_USABLE`] ago (a prekey kept for the next
/// message too), and not in the future beyond the clock slack.
pub fn one_time_is_usable(created_at: u64, now: u64) -> bool {
    created_at.saturating_add(ONE_TIME_PREKEY_USABLE) > now
        && created_at <= now.saturating_add(CLOCK_SLACK)
}

/// What the server should get: the signed prekey if it has not confirmed
/// it, and the one-time prekeys it has not confirmed.
#[derive(Debug, Default)]
pub struct Publication {
    /// The signed prekey to publish, signed.
    pub signed: Option<SignedPrekey>,
    /// The one-time prekeys to publish, signed.
    pub one_time: Vec<SignedPrekey>,
    /// Whether they replace the server's pool: it may hold prekeys this
    /// keyring lacks (made anew, or restored without its prekeys).
    pub replace_pool: bool,
}

impl Publication {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.signed.is_none() && self.one_time.is_empty()
    }

    /// Record in the keyring that the server confirmed all of it.
    pub fn confirmed(&self, account: &impl AccountAccess) -> ClientResult<()> {
        let one_time: Vec<u32> = self.one_time.iter().map(|prekey| prekey.id).collect();
        Ok(account.locked(|locked| {
            let mut prekeys = locked.load_prekeys()?;
            if let Some(signed) = &self.signed {
                prekeys.mark_published(signed.id, unix_now());
            }
            prekeys.mark_one_time_published(&one_time);
            locked.save_prekeys(&prekeys)
        })?)
    }
}

/// Whether the keyring's prekeys need nothing from the server: the current
/// signed prekey is published and not due, and nothing else waits to be
/// published. A keyring that cannot be read counts as not, and says why
/// when the prekeys are prepared.
pub fn are_settled(account: &impl AccountAccess) -> bool {
    let now = unix_now();
    account.files().load_prekeys().is_ok_and(|mut prekeys| {
        prekeys
            .current()
            .is_some_and(|current| current.published && !is_due(current.created_at, now))
            && prekeys.unpublished_one_time().next().is_none()
            && !forget_older(&mut prekeys, now)
    })
}

/// [`Prekeys::forget_older`] as [`forget_before`] says for `now`.
fn forget_older(prekeys: &mut Prekeys, now: u64) -> bool {
    let (signed, one_time) = forget_before(now);
    prekeys.forget_older(signed, one_time)
}

/// Make (and save) what the account lacks: a signed prekey if there is
/// none or the current one is due, and one-time prekeys up to [`POOL`] if
/// the server holds `held`, fewer than [`REFILL_BELOW`] (`None`: leave the
/// pool alone). Returns the prekeys as saved.
pub fn prepare(account: &impl AccountAccess, held: Option<u32>) -> ClientResult<Prekeys> {
    let now = unix_now();
    let wanted = held
        .filter(|&held| held < REFILL_BELOW)
        .map_or(0, |held| POOL - held);
    // Made outside the lock: key generation can fail, and takes time.
    let fresh_signed = generate()?;
    let fresh_one_time = generate_one_time(wanted)?;
    Ok(account.locked(|locked| {
        let mut prekeys = locked.load_prekeys()?;
        forget_older(&mut prekeys, now);
        let due = prekeys
            .current()
            .is_none_or(|current| is_due(current.created_at, now));
        if due {
            prekeys.add(fresh_signed, now);
        }
        let unpublished = prekeys.unpublished_one_time().count() as u32;
        if held.is_some_and(|held| held.saturating_add(unpublished) < REFILL_BELOW)
            && prekeys.one_time_count() < MOST_HELD
        {
            prekeys.add_one_time(fresh_one_time, now);
        }
        locked.save_prekeys(&prekeys)?;
        Ok(prekeys)
    })?)
}

/// What a registration sends: the current signed prekey (published or
/// not: the server may never have stored it) and a pool of one-time
/// prekeys, all made now if missing and signed by `identity` as `owner`'s.
pub fn for_registration(
    account: &impl AccountAccess,
    owner: &UserName,
    identity: &PrivateKey,
) -> ClientResult<Publication> {
    let prekeys = prepare(account, Some(0))?;
    publication(&prekeys, owner, identity, true)
}

/// What a key rotation sends with the rotation: a signed prekey and a
/// pool of one-time prekeys made now (whoever stole the keyring holds the
/// private halves of the earlier ones), signed by the new identity key
/// `identity` as `owner`'s, the pool replacing the server's (signed by the
/// old key, it would be refused by every sender anyway).
pub fn for_rotation(
    account: &impl AccountAccess,
    owner: &UserName,
    identity: &PrivateKey,
) -> ClientResult<Publication> {
    let now = unix_now();
    let fresh_signed = generate()?;
    let fresh_one_time = generate_one_time(POOL)?;
    let (prekeys, fresh_ids) = account.locked(|locked| {
        let mut prekeys = locked.load_prekeys()?;
        forget_older(&mut prekeys, now);
        prekeys.add(fresh_signed, now);
        let fresh_ids = prekeys.add_one_time(fresh_one_time, now);
        locked.save_prekeys(&prekeys)?;
        Ok((prekeys, fresh_ids))
    })?;
    let current = prekeys.current().expect("just made");
    Ok(Publication {
        signed: Some(sign_signed(current, owner, identity)?),
        one_time: sign_one_time(
            prekeys.one_time().filter(|key| fresh_ids.contains(&key.id)),
            owner,
            identity,
        )?,
        replace_pool: true,
    })
}

/// What of `prekeys` the server has not confirmed (with `signed_anyway`,
/// the current signed prekey in any case), signed by `identity` as
/// `owner`'s.
fn publication(
    prekeys: &Prekeys,
    owner: &UserName,
    identity: &PrivateKey,
    signed_anyway: bool,
) -> ClientResult<Publication> {
    let signed = prekeys
        .current()
        .filter(|current| signed_anyway || !current.published)
        .map(|current| sign_signed(current, owner, identity))
        .transpose()?;
    let one_time = sign_one_time(prekeys.unpublished_one_time(), owner, identity)?;
    Ok(Publication {
        signed,
        replace_pool: !one_time.is_empty() && prekeys.pool_needs_replacing(),
        one_time,
    })
}

/// `prekey` signed by `identity` as `owner`'s signed prekey.
fn sign_signed(
    prekey: &Prekey,
    owner: &UserName,
    identity: &PrivateKey,
) -> ClientResult<SignedPrekey> {
    SignedPrekey::sign(
        PrekeyKind::Signed,
        owner,
        prekey.id,
        prekey.created_at,
        &prekey.secret,
        identity,
    )
    .map_err(signing_failed)
}

/// `keys` signed by `identity` as `owner`'s one-time prekeys.
fn sign_one_time<'a>(
    keys: impl Iterator<Item = &'a OneTimePrekey>,
    owner: &UserName,
    identity: &PrivateKey,
) -> ClientResult<Vec<SignedPrekey>> {
    keys.map(|key| {
        SignedPrekey::sign(
            PrekeyKind::OneTime,
            owner,
            key.id,
            key.created_at,
            &key.secret().map_err(made_no_prekey)?,
            identity,
        )
        .map_err(signing_failed)
    })
    .collect()
}

/// Bring the server's copy of the account's prekeys up to date, given
/// that it holds `held` one-time prekeys. `connection` must act for `me`.
pub fn maintain(
    connection: &mut Connection,
    account: &impl AccountAccess,
    me: &UserName,
    identity: &PrivateKey,
    held: u32,
) -> ClientResult<()> {
    if are_settled(account) && held >= REFILL_BELOW {
        return Ok(());
    }
    // A keyring whose pool the server never confirmed gets a pool of its
    // own, whatever the server holds.
    let held = if needs_new_pool(account) { 0 } else { held };
    let prekeys = prepare(account, Some(held))?;
    let publication = publication(&prekeys, me, identity, false)?;
    if publication.is_empty() {
        return Ok(());
    }
    debug!(
        signed = publication.signed.is_some(),
        one_time = publication.one_time.len(),
        "publishing prekeys"
    );
    let request = Request::PublishPrekeys {
        signed_prekey: publication.signed.clone(),
        one_time_prekeys: publication.one_time.clone(),
        replace_one_time_prekeys: publication.replace_pool,
    };
    match connection.request(&request)? {
        Response::PrekeysPublished { .. } => publication.confirmed(account),
        other => Err(unexpected(&other).into()),
    }
}

/// Whether the server never confirmed a one-time prekey of this keyring.
fn needs_new_pool(account: &impl AccountAccess) -> bool {
    account
        .files()
        .load_prekeys()
        .is_ok_and(|prekeys| prekeys.pool_needs_replacing())
}

/// Whether a signed prekey made at `created_at` is due for replacement:
/// a week old, or made so far in the future (a clock set wrong then) that
/// it would otherwise never be.
fn is_due(created_at: u64, now: u64) -> bool {
    created_at.saturating_add(SIGNED_PREKEY_LIFETIME) <= now
        || created_at > now.saturating_add(SIGNED_PREKEY_LIFETIME)
}

fn generate() -> ClientResult<AgreementSecret> {
    AgreementSecret::generate().map_err(made_no_prekey)
}

/// `count` new one-time prekeys, as their private keys' bytes.
fn generate_one_time(count: u32) -> ClientResult<Vec<Zeroizing<Vec<u8>>>> {
    (0..count)
        .map(|_| generate()?.to_bytes().map_err(made_no_prekey))
        .collect()
}

fn made_no_prekey(source: CryptoError) -> ClientError {
    ClientError::Crypto {
        doing: "make a prekey",
        source,
    }
}

fn signing_failed(source: CryptoError) -> ClientError {
    ClientError::Crypto {
        doing: "sign a prekey",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_reporting_an_empty_pool_forever_cannot_grow_the_keyring_without_bound() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = crate::client::keyring::Keyring::at(dir.path());
        let account = keyring
            .create_account_dir(
                &crate::wire::protocol::username("Alice"),
                &"localhost:12000".parse().unwrap(),
            )
            .unwrap();
        for _ in 0..6 {
            let prekeys = prepare(&account, Some(0)).unwrap();
            // Every command publishes them, and the server confirms them,
            // yet reports none held the next time.
            let ids: Vec<u32> = prekeys.unpublished_one_time().map(|key| key.id).collect();
            account
                .locked(|locked| {
                    let mut prekeys = locked.load_prekeys()?;
                    prekeys.mark_one_time_published(&ids);
                    locked.save_prekeys(&prekeys)
                })
                .unwrap();
        }
        let held = account.load_prekeys().unwrap().one_time_count();
        assert_eq!(held, MOST_HELD);
    }

    #[test]
    fn a_signed_prekey_is_due_after_a_week_or_if_made_in_the_future() {
        let now = 1_800_000_000;
        assert!(!is_due(now, now));
        assert!(!is_due(now - SIGNED_PREKEY_LIFETIME + 1, now));
        assert!(is_due(now - SIGNED_PREKEY_LIFETIME, now));
        assert!(!is_due(now + 60, now), "a clock a minute apart is fine");
        assert!(is_due(now + SIGNED_PREKEY_LIFETIME + 1, now));
    }

    #[test]
    fn private_halves_are_kept_while_a_message_sealed_to_them_is_readable() {
        let now = 1_800_000_000;
        let (signed, one_time) = forget_before(now);
        // Replaced just now: a message sealed just before may wait 30 days.
        assert_eq!(signed, now - MAX_MESSAGE_AGE - CLOCK_SLACK);
        // Usable for two weeks after it was made, then readable 30 days.
        assert_eq!(
            one_time,
            now - ONE_TIME_PREKEY_USABLE - MAX_MESSAGE_AGE - CLOCK_SLACK
        );
    }

    #[test]
    fn a_one_time_prekey_is_used_for_two_weeks_and_not_from_the_future() {
        let now = 1_800_000_000;
        assert!(one_time_is_usable(now, now));
        assert!(one_time_is_usable(now - ONE_TIME_PREKEY_USABLE + 1, now));
        assert!(!one_time_is_usable(now - ONE_TIME_PREKEY_USABLE, now));
        assert!(one_time_is_usable(now + CLOCK_SLACK, now));
        assert!(!one_time_is_usable(now + CLOCK_SLACK + 1, now));
    }
}
