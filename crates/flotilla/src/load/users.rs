//! The shoppers the cart and checkout journeys act as. A journey that needs a shopper takes one
//! from the pool, or signs a new one up (and logs in) when none is free, then hands it back: the
//! pool grows to the number of such journeys in flight and no further, and no two journeys ever
//! share a cart. Sign-up and log-in are real requests, recorded under the journey that made them.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A token this close to its expiry is renewed before the journey uses it.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The password of every generated shopper.
pub const PASSWORD: &str = "load-generator-password";

/// A signed-up shopper and their current token.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub email: String,
    pub token: String,
    pub expires: Instant,
}

impl Shopper {
    /// Whether the token should be renewed before use.
    pub fn stale(&self, now: Instant) -> bool {
        self.expires.saturating_duration_since(now) < RENEW_BEFORE
    }
}

/// Free shoppers, and the names of new ones.
#[derive(Debug)]
pub struct UserPool {
    free: Mutex<Vec<Shopper>>,
    /// Distinguishes this run's addresses from an earlier run's against the same shop.
    run: u128,
    next: Mutex<u64>,
}

impl Default for UserPool {
    fn default() -> Self {
        Self::new()
    }
}

impl UserPool {
    pub fn new() -> Self {
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            free: Mutex::new(Vec::new()),
            run,
            next: Mutex::new(0),
        }
    }

    /// A free shopper, if any.
    pub fn take(&self) -> Option<Shopper> {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Hands a shopper back.
    pub fn give_back(&self, shopper: Shopper) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(shopper);
    }

    /// A new, unused address.
    pub fn new_email(&self) -> String {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        format!("load-{:x}-{}@example.com", self.run, *next)
    }
}
