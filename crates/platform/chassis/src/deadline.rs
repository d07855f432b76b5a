//! One deadline for a call to something outside the process (a peer's HTTP answer, a DNS lookup,
//! an etcd call, a broker connection): a call that does not end in time fails like the call
//! itself failing, with the caller's own error, so that a dead peer never hangs its caller.
//! Written once here instead of a `tokio::time::timeout` match at every such call.
//!
//! Here too, as a leaf every layer may read, the wire format of a request's deadline
//! (`x-flotilla-deadline-ms`): how it is read on arrival and written on the way out. What
//! propagates it is [`crate::resilience::deadline`].

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The header carrying the caller's remaining time in milliseconds.
pub static DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-flotilla-deadline-ms");

/// The problem type slug of a `504` answered because a deadline ran out.
pub const DEADLINE_EXCEEDED: &str = "deadline-exceeded";

/// The header every 504 `deadline-exceeded` problem carries (set where a problem becomes a
/// response), so that a caller's circuit breaker can tell it without reading the body: a
/// deadline ran out at or below the service that answered, whose own breaker for the slow
/// dependency counts it; the caller's breaker does not hold it against the service that
/// answered (a slow shipping once opened the gateway's breaker for orders, whose checkouts
/// answered 504, and with it every orders route).
pub const DEADLINE_EXCEEDED_MARK: &str = "x-flotilla-deadline-exceeded";

/// The longest deadline a request may bring: a larger header value is cut to this.
pub const MAX_INCOMING: Duration = Duration::from_secs(300);

/// What a request's deadline header says, read on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// No usable header: no deadline.
    Absent,
    /// The caller has no time left.
    Expired,
    /// Answer by this instant.
    At(Instant),
}

/// Reads the deadline header of a request that arrived at `now`.
pub fn incoming(headers: &HeaderMap, now: Instant) -> Incoming {
    let Some(value) = headers.get(&DEADLINE_HEADER) else {
        return Incoming::Absent;
    };
    match value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        None => {
            tracing::debug!(value = ?value, "ignoring a deadline header that is not an integer");
            Incoming::Absent
        }
        Some(0) => Incoming::Expired,
        Some(ms) => Incoming::At(now + Duration::from_millis(ms).min(MAX_INCOMING)),
    }
}

/// The header value for `remaining` time.
pub fn header_value(remaining: Duration) -> HeaderValue {
    let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
    HeaderValue::from(ms)
}

/// Runs `call` for at most `limit`. Its own error passes through unchanged; running out of time
/// is the error `late(limit)` makes.
pub async fn within<T, E>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
    late: impl FnOnce(Duration) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(late(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_ends_in_time_keeps_its_result_and_a_late_one_fails() {
        let quick = within(Duration::from_secs(1), async { Ok::<_, String>(7) }, |_| {
            "late".to_owned()
        });
        assert_eq!(quick.await, Ok(7));

        let failing = within(
            Duration::from_secs(1),
            async { Err::<u8, _>("refused".to_owned()) },
            |_| "late".to_owned(),
        );
        assert_eq!(failing.await, Err("refused".to_owned()));

        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<u8, String>(1)
        };
        let late = within(Duration::from_secs(1), slow, |limit| {
            format!("no answer in {limit:?}")
        });
        assert_eq!(late.await, Err("no answer in 1s".to_owned()));
    }
}
