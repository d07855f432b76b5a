//! What a circuit breaker is told: its thresholds, their defaults (documented in the README's
//! "Resilience" section) and the check that refuses values that cannot work.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Thresholds of one circuit breaker; every field has a default (see the README, "Resilience").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Calls in the sliding window (the last N calls made while closed).
    pub window: u32,
    /// Calls the window must hold before the failure rate can open the breaker.
    pub min_calls: u32,
    /// Failure rate, in percent of the calls in the window, at or above which the breaker opens.
    pub failure_rate_percent: u32,
    /// Failures in a row that open the breaker whatever the rate.
    pub consecutive_failures: u32,
    /// How long an open breaker fails calls fast before letting probes through, in ms.
    pub open_wait_ms: u64,
    /// Probe calls let through when half-open; all must succeed to close the breaker.
    pub half_open_probes: u32,
    /// Longest wait for a probe's answer, in ms; a probe cut by it counts as a failure.
    pub probe_timeout_ms: u64,
    /// A call cut by the request's deadline counts as a failure when that deadline gave it at
    /// least this long, in ms (a client's very short deadline is its own business).
    pub slow_call_ms: u64,
    /// Response statuses that count as failures (5xx only; a 4xx is never the upstream's fault).
    pub failure_statuses: Vec<u16>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_rate_percent: 50,
            consecutive_failures: 5,
            open_wait_ms: 5_000,
            half_open_probes: 3,
            probe_timeout_ms: 2_000,
            slow_call_ms: 250,
            failure_statuses: vec![500, 502, 503, 504],
        }
    }
}

/// A [`BreakerConfig`] that cannot work, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker setting {field}: {reason}")]
pub struct InvalidBreakerConfig {
    /// The field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl BreakerConfig {
    /// Checks every field; a breaker is only built from a valid config.
    pub fn validate(&self) -> Result<(), InvalidBreakerConfig> {
        let fail = |field, reason| Err(InvalidBreakerConfig { field, reason });
        if self.window == 0 || self.window > 10_000 {
            return fail("window", "must be between 1 and 10000 calls");
        }
        if self.min_calls == 0 || self.min_calls > self.window {
            return fail("min_calls", "must be between 1 and the window");
        }
        if self.failure_rate_percent == 0 || self.failure_rate_percent > 100 {
            return fail("failure_rate_percent", "must be between 1 and 100");
        }
        if self.consecutive_failures == 0 {
            return fail("consecutive_failures", "must be at least 1");
        }
        if self.open_wait_ms == 0 {
            return fail("open_wait_ms", "must be at least 1 ms");
        }
        if self.half_open_probes == 0 {
            return fail("half_open_probes", "must be at least 1");
        }
        if self.probe_timeout_ms == 0 {
            return fail("probe_timeout_ms", "must be at least 1 ms");
        }
        if self
            .failure_statuses
            .iter()
            .any(|s| !(500..=599).contains(s))
        {
            return fail(
                "failure_statuses",
                "only 5xx statuses can count as failures",
            );
        }
        Ok(())
    }
}
