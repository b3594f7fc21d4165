//! Admission of new connections, in two stages so that idle sockets and
//! trickled handshakes cannot keep real users out.
//!
//! A new connection is *pending* until it has finished the TLS handshake,
//! sent `hello` and found a free slot; pending connections hold no slot.
//! When more than `max_pending` are pending, the oldest is evicted (like
//! OpenSSH's `MaxStartups`): a real client's handshake takes milliseconds,
//! so it is never the oldest for long, while sockets that say nothing are.
//! Connections that have been greeted hold one of `max_connections` slots
//! until they close and are never evicted, so load cannot starve them; and
//! one source address (an IPv4 address or an IPv6 /64) holds at most
//! `max_per_source` of them, so one host cannot take them all.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The pending set and the service slots.
#[derive(Debug)]
pub struct Admission {
    /// Most pending connections.
    max_pending: usize,
    /// Pending connections by arrival; dropping a sender evicts its owner.
    pending: Mutex<PendingSet>,
    /// One permit per connection in service.
    slots: Arc<Semaphore>,
    /// How many permits `slots` has.
    max_connections: usize,
    /// Most connections in service (or waiting for a slot) per source.
    max_per_source: usize,
    /// How many each source has.
    per_source: Mutex<HashMap<IpAddr, usize>>,
}

/// A source's claim on one of its connections; given back when dropped.
#[derive(Debug)]
pub struct SourceShare {
    source: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for SourceShare {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

#[derive(Debug, Default)]
struct PendingSet {
    next: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// A connection's place in the pending set; leaves it when dropped.
#[derive(Debug)]
pub struct Pending {
    id: u64,
    admission: Arc<Admission>,
    /// Closes when this connection is evicted.
    evicted: oneshot::Receiver<()>,
}

impl Admission {
    /// Room for `max_pending` pending and `max_connections` served
    /// connections, at most `max_per_source` of them from one source (all
    /// at least 1).
    pub fn new(max_pending: usize, max_connections: usize, max_per_source: usize) -> Arc<Self> {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            max_pending: max_pending.max(1),
            pending: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            max_per_source: max_per_source.max(1),
            per_source: Mutex::default(),
        })
    }

    /// One of the connections `addr`'s source may have in service, unless
    /// it has all of them already.
    pub fn share(self: &Arc<Self>, addr: IpAddr) -> Option<SourceShare> {
        let source = super::ratelimit::source_of(addr);
        let mut counts = self.counts();
        let count = counts.entry(source).or_default();
        if *count >= self.max_per_source {
            return None;
        }
        *count += 1;
        Some(SourceShare {
            source,
            admission: Arc::clone(self),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Enter a new connection as pending, evicting the oldest pending
    /// connection if there are too many.
    pub fn admit(self: &Arc<Self>) -> Pending {
        let (evict, evicted) = oneshot::channel();
        let mut set = self.lock();
        if set.waiting.len() >= self.max_pending {
            // Dropping the sender wakes the evicted connection.
            set.waiting.pop_first();
        }
        let id = set.next;
        set.next += 1;
        set.waiting.insert(id, evict);
        Pending {
            id,
            admission: Arc::clone(self),
            evicted,
        }
    }

    /// A slot in service, waiting until one is free.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// How many connections are pending now.
    pub fn pending(&self) -> usize {
        self.lock().waiting.len()
    }

    /// How many connections hold a slot now.
    pub fn greeted(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingSet> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pending {
    /// Completes when a newer connection has evicted this one.
    pub async fn evicted(&mut self) {
        // Nothing is ever sent: the sender is only dropped.
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.admission.lock().waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_oldest_pending_connection_is_evicted_first() {
        let admission = Admission::new(2, 1, 1);
        let mut oldest = admission.admit();
        let mut middle = admission.admit();
        let _newest = admission.admit();
        tokio::time::timeout(Duration::from_secs(1), oldest.evicted())
            .await
            .expect("the oldest was evicted");
        let still_there = tokio::time::timeout(Duration::from_millis(20), middle.evicted()).await;
        assert!(still_there.is_err(), "only one was evicted");
        assert_eq!(admission.pending(), 2);
        drop(middle);
        assert_eq!(admission.pending(), 1, "leaving frees the place");
    }

    #[test]
    fn a_source_gets_its_share_of_connections_and_no_more() {
        let admission = Admission::new(1, 10, 2);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = admission.share(ip("192.0.2.1")).unwrap();
        let _second = admission.share(ip("192.0.2.1")).unwrap();
        assert!(admission.share(ip("192.0.2.1")).is_none());
        assert!(
            admission.share(ip("2001:db8::1")).is_some(),
            "another source"
        );
        drop(first);
        assert!(admission.share(ip("192.0.2.1")).is_some(), "given back");
    }

    #[tokio::test]
    async fn slots_are_held_until_released() {
        let admission = Admission::new(1, 1, 1);
        let held = admission.slot().await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), admission.slot()).await;
        assert!(waiting.is_err(), "no second slot");
        assert_eq!(admission.greeted(), 1);
        drop(held);
        assert_eq!(admission.greeted(), 0);
        let _taken = tokio::time::timeout(Duration::from_secs(1), admission.slot())
            .await
            .expect("a released slot is taken");
    }
}
