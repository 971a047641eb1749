//! Rate limits: token buckets keyed by identity or source address. No I/O and no clock: the
//! caller passes the time in, as milliseconds (a clock that steps back refills nothing).

use std::collections::HashMap;
use std::hash::Hash;

/// How often full buckets are forgotten, ms.
const PRUNE_EVERY_MS: u64 = 60_000;

/// One token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Token buckets for many keys.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
    last_prune: Option<u64>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `rate` per second sustained, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            buckets: HashMap::new(),
            last_prune: None,
        }
    }

    /// Take one token for `key` at `now_ms`; false when none is left.
    pub fn allow(&mut self, key: &K, now_ms: u64) -> bool {
        self.prune(now_ms);
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            last_ms: now_ms,
        });
        bucket.tokens = (bucket.tokens + seconds(bucket.last_ms, now_ms) * rate).min(burst);
        // A clock that stepped back counts as no time passed, and refills go on from the
        // new time.
        bucket.last_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forget buckets that have refilled completely (they behave like new ones), at most
    /// once a minute, so memory follows active keys only.
    fn prune(&mut self, now_ms: u64) {
        if self
            .last_prune
            .is_some_and(|t| now_ms.abs_diff(t) < PRUNE_EVERY_MS)
        {
            return;
        }
        self.last_prune = Some(now_ms);
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .retain(|_, b| b.tokens + seconds(b.last_ms, now_ms) * rate < burst);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Seconds from `from_ms` to `to_ms`, 0 if the clock went back.
fn seconds(from_ms: u64, to_ms: u64) -> f64 {
    to_ms.saturating_sub(from_ms) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = 1_000_000;
        let mut limiter = RateLimiter::new(2.0, 3.0);
        let k = "alice";
        assert!((0..3).all(|_| limiter.allow(&k, t0)));
        assert!(!limiter.allow(&k, t0), "burst spent");
        assert!(limiter.allow(&"bob", t0), "keys are independent");
        assert!(limiter.allow(&k, t0 + 500), "refills at 2/s");
        assert!(!limiter.allow(&k, t0 + 600));
        assert!(
            (0..3).all(|_| limiter.allow(&k, t0 + 10_000)),
            "caps at burst"
        );
        assert!(!limiter.allow(&k, t0 + 10_000));
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing_and_then_goes_on() {
        let t0 = 10_000_000;
        let mut limiter = RateLimiter::new(1.0, 1.0);
        assert!(limiter.allow(&"alice", t0));
        // An hour back: no refill for the step, but a second later there is a token again.
        let back = t0 - 3_600_000;
        assert!(!limiter.allow(&"alice", back));
        assert!(limiter.allow(&"alice", back + 1_000));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = 1_000_000;
        let mut limiter = RateLimiter::new(1.0, 2.0);
        assert!(limiter.allow(&1u32, t0));
        assert_eq!(limiter.len(), 1);
        assert!(limiter.allow(&2u32, t0 + 120_000));
        assert_eq!(limiter.len(), 1, "key 1 refilled and was pruned");
    }
}
