//! Sign-in throttling per user and per client address, in front of the tenant's smart
//! lockout: lockout protects an account across replicas, this keeps one client or one
//! target from consuming the service. Per replica, in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before idle ones are dropped; bounds memory under a spray of names.
const MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per key: `per_minute` attempts a minute, bursts up to `per_minute`.
pub struct Throttle {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Throttle {
    pub fn new(per_minute: u32) -> Self {
        Throttle {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one attempt for `key`; `Err(wait)` when none is left.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            // Full buckets carry no information: drop them.
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let t = Throttle::new(3);
        assert!(t.check("a").is_ok());
        assert!(t.check("a").is_ok());
        assert!(t.check("a").is_ok());
        let wait = t.check("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(t.check("b").is_ok(), "keys are independent");
        assert!(
            Throttle::new(0).check("a").is_ok(),
            "0 turns throttling off"
        );
    }
}
