//! How much of its telemetry a process keeps: a module of its own because the span store and
//! its file ([`super::persist`]) both apply the same bounds, and neither should import the
//! other for them.

use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much the store keeps (`[telemetry]` in the configuration; README, "Telemetry").
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreLimits {
    /// Spans kept at most; the oldest go first.
    pub max_spans: usize,
    /// Seconds a span is kept at most.
    pub max_age_secs: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_spans: 20_000,
            max_age_secs: 3600,
        }
    }
}

/// Now, as nanoseconds since the Unix epoch: the clock the age bound is measured on (spans
/// carry wall-clock times, so that a restart or another process can read them).
pub(crate) fn now_unix_nanos() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}
