//! Wake-ups for readers waiting on an empty queue: `send` notifies the
//! recipient's waiters the moment the envelope is stored, so a waiting
//! `fetch` answers without any polling; a store shared with other servers
//! passes on their sends too ([`Arrivals`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::store::{Arrivals, UserId};

/// One wake-up signal per recipient with a waiting reader.
#[derive(Debug, Default)]
pub struct Mailboxes {
    waiters: Mutex<HashMap<UserId, Arc<Notify>>>,
}

impl Mailboxes {
    /// The signal for `user`, created if nobody waits yet. Hand it back with
    /// [`Mailboxes::release`] when done waiting.
    pub fn subscribe(&self, user: UserId) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().expect("mailbox lock");
        Arc::clone(waiters.entry(user).or_default())
    }

    /// Wake everyone waiting for `user`'s messages.
    pub fn notify(&self, user: UserId) {
        if let Some(notify) = self.waiters.lock().expect("mailbox lock").get(&user) {
            notify.notify_waiters();
        }
    }

    /// Wake everyone waiting, for whomever.
    pub fn notify_all(&self) {
        for notify in self.waiters.lock().expect("mailbox lock").values() {
            notify.notify_waiters();
        }
    }

    /// Drop a subscription; the entry goes once its last waiter has left.
    pub fn release(&self, user: UserId, signal: Arc<Notify>) {
        let mut waiters = self.waiters.lock().expect("mailbox lock");
        drop(signal);
        if waiters
            .get(&user)
            .is_some_and(|n| Arc::strong_count(n) == 1)
        {
            waiters.remove(&user);
        }
    }
}

impl Arrivals for Mailboxes {
    fn arrived(&self, user: UserId) {
        self.notify(user);
    }

    fn look_again(&self) {
        self.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_a_subscribed_waiter_and_release_cleans_up() {
        let mailboxes = Mailboxes::default();
        let signal = mailboxes.subscribe(7);
        {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            mailboxes.notify(7);
            tokio::time::timeout(std::time::Duration::from_secs(1), notified)
                .await
                .expect("woken");
        }
        mailboxes.release(7, signal);
        assert!(mailboxes.waiters.lock().unwrap().is_empty());
    }
}
