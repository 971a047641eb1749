//! Rate limits: token buckets keyed by identity or source address. No I/O: the caller passes
//! the time in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets for many keys.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, Bucket>,
    last_prune: Option<Instant>,
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

    /// Take one token for `key` at `now`; false when none is left.
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        self.prune(now);
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forget buckets that have refilled completely (they behave like new ones), at most
    /// once a minute, so memory follows active keys only.
    fn prune(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_prune = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(2.0, 3.0);
        let k = "alice";
        assert!((0..3).all(|_| limiter.allow(&k, t0)));
        assert!(!limiter.allow(&k, t0), "burst spent");
        assert!(limiter.allow(&"bob", t0), "keys are independent");
        assert!(
            limiter.allow(&k, t0 + Duration::from_millis(500)),
            "refills at 2/s"
        );
        assert!(!limiter.allow(&k, t0 + Duration::from_millis(600)));
        assert!(
            (0..3).all(|_| limiter.allow(&k, t0 + Duration::from_secs(10))),
            "caps at burst"
        );
        assert!(!limiter.allow(&k, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(1.0, 2.0);
        assert!(limiter.allow(&1u32, t0));
        assert_eq!(limiter.len(), 1);
        assert!(limiter.allow(&2u32, t0 + Duration::from_secs(120)));
        assert_eq!(limiter.len(), 1, "key 1 refilled and was pruned");
    }
}
