//! Wall-clock reads go through a [`Clock`] so that tests (and, later, simulations) can move time.
//! Timers and sleeps use tokio's time, which tests pause and advance instead.
//!
//! Past the edge of a service (contracts, events, domain values) a time is a
//! [`time::OffsetDateTime`] in UTC, on the wire as RFC 3339 text (`#[serde(with =
//! "time::serde::rfc3339")]`, the same text [`rfc3339`] writes); in a database it is a BIGINT of
//! milliseconds since the epoch ([`millis`] and [`at_millis`] convert at the store's edge).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Now, as a UTC date-time to the millisecond.
    fn now(&self) -> OffsetDateTime {
        at_millis(self.now_millis())
    }
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        unix_millis(SystemTime::now())
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: i64) -> Self {
        Self(AtomicI64::new(millis))
    }

    /// Moves the clock by `millis` (negative moves it back).
    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the epoch for a [`SystemTime`] (0 before the epoch).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The UTC date-time `millis` after the epoch, clamped to what [`OffsetDateTime`] holds (years
/// -9999 to 9999), so a corrupt stored value cannot fail a read.
pub fn at_millis(millis: i64) -> OffsetDateTime {
    let nanos = i128::from(millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if millis < 0 {
        time::macros::datetime!(-9999-01-01 0:00 UTC)
    } else {
        time::macros::datetime!(9999-12-31 23:59:59.999 UTC)
    })
}

/// Milliseconds since the epoch of `t` (what a store writes in a BIGINT column).
pub fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// RFC 3339 text for a millisecond timestamp, as the APIs show times.
pub fn rfc3339(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_through_date_times_and_print_as_before() {
        for m in [0, 1, 1_733_500_000_123, -1_000, 253_402_300_799_999] {
            assert_eq!(millis(at_millis(m)), m);
        }
        let t = at_millis(1_733_500_000_123);
        let text = t
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formats");
        assert_eq!(text, rfc3339(1_733_500_000_123));
        assert_eq!(ManualClock::new(5_000).now(), at_millis(5_000));
        assert_eq!(at_millis(i64::MAX).year(), 9999, "clamped, not a panic");
    }
}
