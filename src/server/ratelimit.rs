//! Per-source token buckets for the requests anyone can send before
//! authenticating and that cost the server a disk write: `login` (a new
//! session row) and `register` (a new account). Each source starts with a
//! full bucket of `burst` tokens, spends one per request and regains
//! `burst` per `period`, evenly.
//!
//! A source is an IPv4 address or an IPv6 /64, since one IPv6 host
//! commonly holds a whole /64. Buckets live in memory only (a restart
//! forgives everyone), and their number is capped: full buckets are
//! forgotten first, and when every tracked source is still throttled the
//! one spent from longest ago is forgotten (forgiven), so that a new source
//! is never refused for others' sake.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::limits::Rate;

/// Most sources tracked at once.
const MAX_SOURCES: usize = 65_536;

/// One source's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by source.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// Buckets refilling at `rate`.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Spend one token of `addr`'s source at `now`, or say how long until
    /// one is available.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let source = source_of(addr);
        if !buckets.contains_key(&source) && buckets.len() >= MAX_SOURCES {
            buckets.retain(|_, bucket| self.refill(*bucket, now).tokens < self.burst());
            let oldest = buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.updated)
                .map(|(source, _)| *source);
            if let Some(oldest) = oldest.filter(|_| buckets.len() >= MAX_SOURCES) {
                buckets.remove(&oldest);
            }
        }
        let full = Bucket {
            tokens: self.burst(),
            updated: now,
        };
        let bucket = buckets.entry(source).or_insert(full);
        *bucket = self.refill(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.per_token().mul_f64(1.0 - bucket.tokens))
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate.burst)
    }

    /// Time to regain one token.
    fn per_token(&self) -> Duration {
        self.rate.period / self.rate.burst.max(1)
    }

    fn refill(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let gained = elapsed.as_secs_f64() / self.per_token().as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + gained).min(self.burst()),
            updated: now,
        }
    }
}

/// The key a request is charged to: the IPv4 address (also when mapped
/// into IPv6), or the IPv6 address's /64 prefix.
pub fn source_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, period_secs: u64) -> RateLimiter {
        RateLimiter::new(Rate {
            burst,
            period: Duration::from_secs(period_secs),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_tokens_come_back_evenly() {
        let limiter = limiter(3, 60);
        let start = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limiter.check(addr, start), Ok(()));
        }
        assert_eq!(limiter.check(addr, start), Err(Duration::from_secs(20)));
        let later = start + Duration::from_secs(15);
        assert_eq!(limiter.check(addr, later), Err(Duration::from_secs(5)));
        assert_eq!(limiter.check(addr, later + Duration::from_secs(5)), Ok(()));
        // Another source has its own bucket.
        assert_eq!(limiter.check(ip("192.0.2.2"), start), Ok(()));
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        let limiter = limiter(1, 60);
        let now = Instant::now();
        assert!(limiter.check(ip("2001:db8::1"), now).is_ok());
        assert!(limiter.check(ip("2001:db8::2"), now).is_err(), "same /64");
        assert!(limiter.check(ip("2001:db8:0:1::1"), now).is_ok());
    }

    #[test]
    fn a_full_table_forgets_refilled_sources_first_then_the_stalest() {
        let limiter = limiter(1, 1);
        let start = Instant::now();
        let addr = |n: usize| IpAddr::V4((n as u32).into());
        for n in 0..MAX_SOURCES {
            let at = start + Duration::from_micros(n as u64);
            assert!(limiter.check(addr(n), at).is_ok());
        }
        // Everyone throttled: the source spent from longest ago is forgotten
        // to make room, and a newcomer is served.
        let full = start + Duration::from_millis(100);
        assert!(limiter.check(addr(MAX_SOURCES), full).is_ok());
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.len(), MAX_SOURCES);
        assert!(!buckets.contains_key(&addr(0)));
        assert!(buckets.contains_key(&addr(1)));
        drop(buckets);
        // Refilled buckets go first.
        let refilled = start + Duration::from_secs(2);
        assert!(limiter.check(addr(MAX_SOURCES + 1), refilled).is_ok());
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
