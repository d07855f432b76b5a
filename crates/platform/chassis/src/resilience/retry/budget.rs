//! The retry budget: Finagle's `RetryBudget`, with the semantics of tower's [`TpsBudget`]
//! (which this replaced): every call deposits, a retry withdraws, a deposit counts for the
//! budget's `ttl` (in ten windows of `ttl / 10`, plus the window under way), and a reserve of
//! `min_per_sec × ttl` retries is always there. Over any `ttl`, retries ≤ `percent` × calls +
//! `min_per_sec` × `ttl`.
//!
//! Why by hand rather than tower's: `TpsBudget` takes a mutex and reads the clock on every
//! deposit, that is on every call through the stack, though the call has just read the clock
//! to admit itself. Here the caller passes that reading, and a deposit is one load and one
//! compare-and-swap on the window's slot: no lock. Each slot packs the window it counts for
//! (its number since the budget was made) with its count in one `AtomicU64`, so a slot is
//! reset for a new window and written in the same atomic step, and a deposit can neither land
//! in an expired window nor be lost to a concurrent reset. Like tower's, a withdrawal checks
//! the balance and then takes from it in two steps, so retries racing for the last token can
//! overdraw by the few that raced (tower's `try_get` has the same window).
//!
//! [`TpsBudget`]: https://docs.rs/tower/0.5/tower/retry/budget/struct.TpsBudget.html

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Ten windows and the one under way: a deposit counts until ten windows after its own have
/// passed (between `ttl` and `ttl` plus one window, as in tower's).
const SLOTS: usize = 11;

/// A retry budget, shared by every call to one upstream.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Window numbers count from here.
    origin: Instant,
    window_nanos: u64,
    /// `(window number as u32) << 32 | count as i32`, for the window whose number is the slot's
    /// index modulo `SLOTS`.
    slots: [AtomicU64; SLOTS],
    /// Withdrawals always allowed over a `ttl`, in tokens.
    reserve: i64,
    /// Tokens a call deposits and a retry withdraws (tower's amounts, so that `percent` above 1
    /// keeps its precision).
    deposit: i32,
    withdraw: i32,
}

fn pack(window: u32, count: i32) -> u64 {
    (u64::from(window) << 32) | u64::from(count as u32)
}

fn unpack(slot: u64) -> (u32, i32) {
    ((slot >> 32) as u32, slot as u32 as i32)
}

impl Budget {
    /// A budget whose deposits count for `ttl` (1 to 60 s), allowing `min_per_sec` retries a
    /// second whatever the traffic, plus `percent` (0 to 1000) of the calls. The bounds are
    /// checked by the retry policy's `validate`.
    pub(crate) fn new(ttl: Duration, min_per_sec: u32, percent: f32) -> Self {
        // tower's amounts: a withdrawal of `1 / percent` tokens against a deposit of one.
        let (deposit, withdraw) = if percent == 0.0 {
            (0, 1)
        } else if percent <= 1.0 {
            (1, (1.0 / percent) as i32)
        } else {
            (1000, (1000.0 / percent) as i32)
        };
        let reserve = i64::from(min_per_sec)
            .saturating_mul(ttl.as_secs() as i64)
            .saturating_mul(i64::from(withdraw));
        let window_nanos = u64::try_from((ttl / 10).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            origin: Instant::now(),
            window_nanos,
            slots: std::array::from_fn(|_| AtomicU64::new(pack(0, 0))),
            reserve,
            deposit,
            withdraw,
        }
    }

    /// The number of the window `now` falls in.
    fn window(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();
        // Nanoseconds fit in 64 bits for 584 years: a 64-bit division, not a 128-bit one.
        u64::try_from(since).unwrap_or(u64::MAX) / self.window_nanos
    }

    /// Adds `amount` tokens (negative to take) to the window of `now`.
    fn add(&self, now: Instant, amount: i32) {
        let window = self.window(now);
        let tag = window as u32;
        let slot = &self.slots[(window % SLOTS as u64) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (held, count) = unpack(current);
            // `held` is this window, an expired one (ten or more windows back: start over), or
            // a later one, when `now` was read a while ago (add to it: the tokens count a
            // little longer).
            let next = if (tag.wrapping_sub(held) as i32) <= 0 {
                pack(held, count.saturating_add(amount))
            } else {
                pack(tag, amount)
            };
            // Only the count is shared: relaxed ordering is enough.
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now_held) => current = now_held,
            }
        }
    }

    /// The tokens available at `now`: the reserve and every deposit and withdrawal of the last
    /// ten windows and this one.
    fn balance(&self, now: Instant) -> i64 {
        let tag = self.window(now) as u32;
        let counted: i64 = self
            .slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Relaxed)))
            .filter(|&(held, _)| (tag.wrapping_sub(held) as i32) < SLOTS as i32)
            .map(|(_, count)| i64::from(count))
            .sum();
        counted.saturating_add(self.reserve)
    }

    /// A call is made at `now` (the clock reading it was admitted with).
    pub(crate) fn deposit(&self, now: Instant) {
        if self.deposit != 0 {
            self.add(now, self.deposit);
        }
    }

    /// Whether a retry may be made at `now`, taking its tokens if so.
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        if self.balance(now) >= i64::from(self.withdraw) {
            self.add(now, -self.withdraw);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_floor_alone_allows_min_per_sec_times_ttl_retries() {
        let budget = Budget::new(Duration::from_secs(10), 10, 0.2);
        let now = Instant::now();
        let allowed = (0..1000).filter(|_| budget.withdraw(now)).count();
        assert_eq!(allowed, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_add_their_share_and_expire_after_the_ttl() {
        let budget = Budget::new(Duration::from_secs(10), 0, 0.2);
        let start = Instant::now();
        for _ in 0..100 {
            budget.deposit(start);
        }
        // 20 % of 100 calls: 20 retries.
        let allowed = (0..1000).filter(|_| budget.withdraw(start)).count();
        assert_eq!(allowed, 20);
        for _ in 0..100 {
            budget.deposit(start);
        }
        // Still counted ten seconds on (ten windows of one second and the one under way)...
        let later = start + Duration::from_millis(10_500);
        assert_eq!(budget.balance(later), 100);
        // ...and gone after eleven.
        let gone = start + Duration::from_secs(11);
        assert_eq!(budget.balance(gone), 0);
        assert!(!budget.withdraw(gone));
    }

    #[tokio::test(start_paused = true)]
    async fn a_percent_above_one_allows_more_retries_than_calls() {
        let budget = Budget::new(Duration::from_secs(1), 0, 2.0);
        let now = Instant::now();
        for _ in 0..10 {
            budget.deposit(now);
        }
        assert_eq!((0..100).filter(|_| budget.withdraw(now)).count(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn no_percent_leaves_the_floor_only() {
        let budget = Budget::new(Duration::from_secs(1), 3, 0.0);
        let now = Instant::now();
        for _ in 0..100 {
            budget.deposit(now);
        }
        assert_eq!((0..100).filter(|_| budget.withdraw(now)).count(), 3);
    }
}
