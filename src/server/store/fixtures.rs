//! What the store's tests build on, for the contract and for each
//! backend's own tests: prekeys, accounts, rotations, pages, a roomy
//! quota, a queued message.

use super::*;
use crate::wire::protocol::{Base64Bytes, SignedPrekey, unix_now, username};

/// When the tests' prekeys are made: the time of the first one, so that
/// the same prekey made twice is equal even if a second passes between.
fn made_at() -> u64 {
    static MADE_AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MADE_AT.get_or_init(unix_now)
}

/// A signed prekey numbered `id` (its signature is not checked here).
pub(crate) fn prekey(id: u32) -> SignedPrekey {
    SignedPrekey {
        id,
        public_key: Base64Bytes(vec![id as u8; 32]),
        created_at: made_at() + u64::from(id),
        signature: Base64Bytes(vec![9; 256]),
    }
}

/// The signed prekey `id` alone.
pub(crate) fn signed(id: u32) -> Prekeys {
    Prekeys {
        signed: Some(prekey(id)),
        one_time: Vec::new(),
        replace_one_time: false,
    }
}

/// One-time prekeys numbered `ids`.
pub(crate) fn one_time(ids: std::ops::Range<u32>) -> Prekeys {
    Prekeys {
        signed: None,
        one_time: ids.map(prekey).collect(),
        replace_one_time: false,
    }
}

/// The signed prekey `get_key` would hand out for `name`.
pub(crate) fn signed_prekey_of(store: &dyn Store, name: &str) -> Option<SignedPrekey> {
    store
        .key_bundle(name, false)
        .unwrap()
        .and_then(|bundle| bundle.signed_prekey)
}

/// Register `name` with its name's bytes as its key.
pub(crate) fn user(store: &dyn Store, name: &str) -> User {
    match store
        .register(&username(name), name.as_bytes(), &signed(1), 3)
        .unwrap()
    {
        RegisterOutcome::Created(user) => user,
        other => panic!("registering {name}: {other:?}"),
    }
}

pub(crate) fn page(after: u64, limit: u32, max_bytes: usize) -> Page {
    Page {
        after,
        limit,
        max_bytes,
    }
}

pub(crate) const ROOMY: Quota = Quota {
    max_messages: 1000,
    max_bytes: 1 << 20,
    sender_share: 100,
};

pub(crate) fn queue(store: &dyn Store, to: &User, from: &User, envelope: &[u8]) -> u64 {
    match store
        .enqueue(to.id, from.id, envelope.to_vec(), ROOMY)
        .unwrap()
    {
        Enqueued::Queued(id) => id,
        full => panic!("{full:?}"),
    }
}

pub(crate) fn ids(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

/// A rotation from key `old` to `new` (its signatures are not checked
/// here).
pub(crate) fn rotation(old: &[u8], new: &[u8], rotated_at: u64) -> KeyRotation {
    KeyRotation {
        old_key: Base64Bytes(old.to_vec()),
        new_key: Base64Bytes(new.to_vec()),
        rotated_at,
        old_signature: Base64Bytes(vec![1; 8]),
        new_signature: Base64Bytes(vec![2; 8]),
    }
}

/// `work(n)` for each `n` in `0..threads`, each on a thread of its own,
/// all at once; their results one after the other.
pub(crate) fn on_threads<T: Send>(threads: usize, work: impl Fn(usize) -> Vec<T> + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads)
            .map(|n| {
                let work = &work;
                scope.spawn(move || work(n))
            })
            .collect();
        running
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    })
}
