//! The `[orders]` configuration section: the defaults, and the settings refused at start-up
//! because they are typos rather than policies.

use flotilla_chassis::StartError;
use serde::Deserialize;

/// Longest reservation inventory accepts (7 days).
const MAX_RESERVATION_TTL_SECS: u64 = 7 * 24 * 3600;

/// The `[orders]` configuration section.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct OrdersConfig {
    /// Deadline of each peer call of checkout and of each saga step, in ms (default 2000).
    pub step_timeout_ms: u64,
    /// Tries of a forward step whose failures are transient before it counts as failed
    /// (default 3).
    pub step_attempts: u32,
    /// First backoff between tries, in ms; it doubles, with jitter, up to 30 s (default 100).
    pub retry_base_ms: u64,
    /// How often the recovery loop looks for unfinished sagas, in ms (default 500).
    pub recovery_interval_ms: u64,
    /// How long an executor holds a saga without renewing, in ms: after a crash, the longest
    /// a saga waits to be resumed (default 10000). Must exceed twice `step_timeout_ms`.
    pub lease_ms: u64,
    /// How long `POST /` waits for the saga before answering 202, in ms (default 2000).
    pub respond_within_ms: u64,
    /// Most lines one order may have (default 50, at most 1000: the lines are stored with one
    /// statement, 6 bound values each).
    pub max_lines: u32,
    /// How long the stock is reserved for a saga, in seconds (default 900).
    pub reservation_ttl_secs: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            step_timeout_ms: 2000,
            step_attempts: 3,
            retry_base_ms: 100,
            recovery_interval_ms: 500,
            lease_ms: 10_000,
            respond_within_ms: 2000,
            max_lines: 50,
            reservation_ttl_secs: 900,
        }
    }
}

impl OrdersConfig {
    /// Refuses settings that are typos rather than policies.
    pub(crate) fn check(&self) -> Result<(), StartError> {
        let fail = |msg: &str| Err(StartError::Other(format!("[orders] {msg}")));
        if self.step_timeout_ms == 0 || self.step_attempts == 0 || self.retry_base_ms == 0 {
            return fail("step_timeout_ms, step_attempts and retry_base_ms must be at least 1");
        }
        if self.recovery_interval_ms == 0 {
            return fail("recovery_interval_ms must be at least 1");
        }
        if !(1..=MAX_LINES_LIMIT).contains(&self.max_lines) {
            return fail("max_lines must be between 1 and 1000");
        }
        // A lease shorter than a step (plus the renewal around it) would let a second executor
        // take over a saga whose step is still in flight.
        if self.lease_ms <= self.step_timeout_ms.saturating_mul(2) {
            return fail("lease_ms must exceed twice step_timeout_ms");
        }
        if !(1..=MAX_RESERVATION_TTL_SECS).contains(&self.reservation_ttl_secs) {
            return fail("reservation_ttl_secs must be between 1 and 604800 (7 days)");
        }
        Ok(())
    }
}

/// The largest `max_lines` allowed: SQLite binds at most 32766 values in one statement.
const MAX_LINES_LIMIT: u32 = 1000;
