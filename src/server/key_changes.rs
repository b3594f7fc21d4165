//! Key rotations this server has carried out, so that a connection which
//! authenticated before its account's key was replaced stops acting for the
//! account (it may be a thief's, holding the old key or a stolen token).
//! A counter that every rotation bumps makes the check one atomic load
//! while nothing changed; only then is the account's own entry looked up.
//! This covers the connections of one server process; servers sharing a
//! database learn of one another's rotations only through the sessions the
//! rotation ended, when a connection authenticates again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::store::UserId;

/// The rotations seen so far: how many, and when each account's last one
/// came in that count.
#[derive(Debug, Default)]
pub struct KeyChanges {
    count: AtomicU64,
    latest: Mutex<HashMap<UserId, u64>>,
}

impl KeyChanges {
    /// The count now, to remember at authentication.
    pub fn now(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Record that `user`'s key was replaced; returns the count it was
    /// recorded under (the rotating connection's new starting point).
    pub fn rotated(&self, user: UserId) -> u64 {
        let mut latest = self
            .latest
            .lock()
            .expect("never poisoned: no panics under it");
        let count = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        latest.insert(user, count);
        count
    }

    /// Whether `user`'s key was replaced after the count was `since`.
    pub fn changed_since(&self, user: UserId, since: u64) -> bool {
        self.now() != since
            && self
                .latest
                .lock()
                .expect("never poisoned: no panics under it")
                .get(&user)
                .is_some_and(|&at| at > since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rotated_account_counts_as_changed() {
        let changes = KeyChanges::default();
        let since = changes.now();
        assert!(!changes.changed_since(1, since));
        let rotated_at = changes.rotated(1);
        assert!(changes.changed_since(1, since));
        assert!(!changes.changed_since(2, since), "another account");
        assert!(
            !changes.changed_since(1, rotated_at),
            "the rotating connection"
        );
    }
}
