//! Sessions ended while connections may still be acting with them — one
//! by `logout`, or all of an account's by `logout_all` or a key rotation —
//! so that those connections stop acting for the account: the ended
//! session may be a stolen token, or one its owner revoked. A connection
//! remembers the count of endings when it authenticated; while the count
//! has not moved, the check is one atomic load. This covers the
//! connections of one server process; servers sharing a database record
//! here what the others ended, read from the database's journal within a
//! second (`follow_revocations` in the server).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::store::{TokenHash, UserId};

/// The endings seen so far.
#[derive(Debug, Default)]
pub struct SessionEnds {
    /// How many endings there were.
    count: AtomicU64,
    ended: Mutex<Ended>,
}

/// When (in the count) sessions ended.
#[derive(Debug, Default)]
struct Ended {
    /// Each account's last ending of all its sessions.
    accounts: HashMap<UserId, u64>,
    /// Sessions ended one by one, with when they would have expired (they
    /// are forgotten after that: an expired session stops by itself).
    sessions: HashMap<TokenHash, (u64, u64)>,
}

impl SessionEnds {
    /// The count now, to remember at authentication.
    pub fn now(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Record that every session of `user` ended; returns the count it was
    /// recorded under (the starting point of a connection that goes on
    /// acting with a session made since, such as the one that rotated the
    /// account's key).
    pub fn ended_all(&self, user: UserId) -> u64 {
        let mut ended = self.ended();
        let count = self.bump();
        ended.accounts.insert(user, count);
        count
    }

    /// Record that the session `token` ended, which would have expired at
    /// `expires_at`; the clock reads `now`.
    pub fn ended_one(&self, token: TokenHash, expires_at: u64, now: u64) {
        let mut ended = self.ended();
        let count = self.bump();
        ended.sessions.retain(|_, &mut (_, expiry)| expiry > now);
        ended.sessions.insert(token, (count, expires_at));
    }

    /// Whether the session `token` of `user` ended after the count was
    /// `since`.
    pub fn ended_since(&self, user: UserId, token: &TokenHash, since: u64) -> bool {
        if self.now() == since {
            return false;
        }
        let ended = self.ended();
        let after = |&at: &u64| at > since;
        ended.accounts.get(&user).is_some_and(after)
            || ended.sessions.get(token).is_some_and(|(at, _)| after(at))
    }

    fn bump(&self) -> u64 {
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn ended(&self) -> MutexGuard<'_, Ended> {
        self.ended
            .lock()
            .expect("never poisoned: no panics under it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ended_sessions_stop() {
        let ends = SessionEnds::default();
        let since = ends.now();
        let (mine, other) = ([1; 32], [2; 32]);
        assert!(!ends.ended_since(1, &mine, since));
        ends.ended_one(mine, 100, 50);
        assert!(ends.ended_since(1, &mine, since));
        assert!(!ends.ended_since(1, &other, since), "another session");
        let all = ends.ended_all(2);
        assert!(ends.ended_since(2, &other, since));
        assert!(!ends.ended_since(3, &other, since), "another account");
        assert!(!ends.ended_since(2, &other, all), "a session made since");
        // An ended session is forgotten once it would have expired.
        ends.ended_one(other, 500, 100);
        assert!(!ends.ended.lock().unwrap().sessions.contains_key(&mine));
    }
}
