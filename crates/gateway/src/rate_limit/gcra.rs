//! The generic cell rate algorithm (GCRA): a token bucket kept as one number per key, the
//! *theoretical arrival time* (TAT) of the next request if the client sent at exactly the
//! allowed rate. A request at `now` is admitted when `max(TAT, now) + T − burst·T ≤ now`
//! (`T` = 1 / rate), and then moves TAT on by `T`; otherwise it is refused, and may come back
//! when that inequality will hold. A bucket of burst `b` and rate `r` admits `b` at once and `r`
//! per second after that: 20-burst, 10/s over 10 s admits 20 + 100 = 120 (RELIABILITY.md L6).
//!
//! Written here rather than taken from `governor`: the shared (Redis) limiter runs the same
//! step as a Lua script (`redis.rs`), and the local one must agree with it to the request; and
//! the local table must be bounded (a client can make up keys: IPv6 addresses, user ids), which
//! `governor`'s keyed store is not. [`step`] is that one rule; [`LocalBuckets`] keeps the TATs
//! in a bounded cache, updated with one compare-and-swap.

use quick_cache::sync::Cache;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A bucket's rate and burst, in GCRA's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds between two requests at the sustained rate (`T`).
    pub interval_us: u64,
    /// Requests admitted at once from a full bucket.
    pub burst: u64,
}

impl Rate {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            interval_us: (1_000_000.0 / per_second).round().max(1.0) as u64,
            burst: u64::from(burst.max(1)),
        }
    }
}

/// One request's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted.
    Admit,
    /// Refused; a request is admitted again after this many microseconds.
    Refuse {
        /// Microseconds until the bucket admits one more.
        retry_after_us: u64,
    },
}

/// GCRA's step: the verdict for a request at `now_us` on a bucket whose TAT is `tat_us` (0 for
/// a key never seen), and the TAT to store when admitted.
pub fn step(tat_us: u64, now_us: u64, rate: Rate) -> (Verdict, u64) {
    let new_tat = tat_us.max(now_us).saturating_add(rate.interval_us);
    let allow_at = new_tat.saturating_sub(rate.interval_us.saturating_mul(rate.burst));
    if now_us < allow_at {
        (
            Verdict::Refuse {
                retry_after_us: allow_at - now_us,
            },
            tat_us,
        )
    } else {
        (Verdict::Admit, new_tat)
    }
}

/// The local buckets: a TAT per key, at most `capacity` keys (the least recently used go
/// first; a forgotten key starts again with a full bucket, so the bound errs towards admitting).
/// Keys are hashed with a per-process random seed, so a client cannot aim at a collision.
pub struct LocalBuckets {
    tats: Cache<u64, Arc<AtomicU64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl LocalBuckets {
    /// A table for up to `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            tats: Cache::new(capacity.max(1)),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The verdict for one request on `key`'s bucket at `now_us`.
    pub fn check(&self, key: impl Hash, now_us: u64, rate: Rate) -> Verdict {
        let hashed = self.hasher.hash_one(key);
        // One value per key even when its first requests race (the others wait for it).
        let Ok(tat) = self.tats.get_or_insert_with(&hashed, || {
            Ok::<_, std::convert::Infallible>(Arc::default())
        });
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let (verdict, next) = step(current, now_us, rate);
            if verdict != Verdict::Admit {
                return verdict;
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Verdict::Admit,
                Err(seen) => current = seen,
            }
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.tats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    /// Requests sent evenly over `secs` at `per_second`, counted as admitted.
    fn admitted(buckets: &LocalBuckets, rate: Rate, per_second: u64, secs: u64) -> u64 {
        let total = per_second * secs;
        (0..total)
            .filter(|i| {
                let now = 1_000 * SECOND + i * SECOND / per_second;
                buckets.check("client", now, rate) == Verdict::Admit
            })
            .count() as u64
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_its_rate() {
        // RELIABILITY.md L6: 1,000 requests in 10 s against a 20-burst, 10/s bucket.
        let buckets = LocalBuckets::new(16);
        let got = admitted(&buckets, Rate::new(10.0, 20), 100, 10);
        assert!((118..=122).contains(&got), "{got} admitted");
    }

    #[test]
    fn a_refusal_says_when_to_come_back_and_costs_nothing() {
        let rate = Rate::new(2.0, 3);
        let buckets = LocalBuckets::new(16);
        let now = 5 * SECOND;
        for _ in 0..3 {
            assert_eq!(buckets.check("k", now, rate), Verdict::Admit);
        }
        let Verdict::Refuse { retry_after_us } = buckets.check("k", now, rate) else {
            panic!("the fourth at once is refused");
        };
        assert_eq!(retry_after_us, SECOND / 2);
        // Refusals do not push the bucket further away.
        for _ in 0..100 {
            assert_ne!(buckets.check("k", now, rate), Verdict::Admit);
        }
        assert_eq!(
            buckets.check("k", now + SECOND / 2, rate),
            Verdict::Admit,
            "admitted again once the interval has passed"
        );
    }

    #[test]
    fn keys_are_separate_and_the_table_is_bounded() {
        let rate = Rate::new(1.0, 1);
        let buckets = LocalBuckets::new(100);
        assert_eq!(buckets.check("a", SECOND, rate), Verdict::Admit);
        assert_ne!(buckets.check("a", SECOND, rate), Verdict::Admit);
        assert_eq!(buckets.check("b", SECOND, rate), Verdict::Admit);
        for i in 0..10_000 {
            buckets.check(i, SECOND, rate);
        }
        assert!(buckets.len() <= 200, "{} keys held", buckets.len());
    }

    #[test]
    fn concurrent_requests_never_overdraw_a_bucket() {
        let rate = Rate::new(1.0, 50);
        let buckets = Arc::new(LocalBuckets::new(16));
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let buckets = &buckets;
                    s.spawn(move || {
                        (0..100)
                            .filter(|_| buckets.check("k", SECOND, rate) == Verdict::Admit)
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(admitted, 50);
    }
}
