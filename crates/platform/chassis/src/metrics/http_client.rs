//! RED metrics of the calls a caller makes to an upstream service:
//! `http_client_request_duration_seconds`, a histogram by `service` (the caller), `upstream`
//! and `outcome`, timed around the whole resilience stack (retries included: the time the
//! caller waited). The handles of every outcome are made with the caller's stack for the
//! upstream, so a call costs a clock read and an atomic push.

use ::metrics::{Histogram, describe_histogram, histogram};
use std::time::Duration;

/// The histogram's name (OpenTelemetry's `http.client.request.duration`, in Prometheus form).
pub const REQUEST_DURATION: &str = "http_client_request_duration_seconds";

/// How a call ended, as the caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// An answer below 400.
    Success,
    /// A 4xx answer: the upstream is fine, the request was refused.
    ClientError,
    /// A 5xx answer.
    ServerError,
    /// No answer in time (the upstream's timeout or the request's deadline).
    Timeout,
    /// Refused before reaching the upstream: breaker open, bulkhead full.
    Refused,
    /// No answer: no instance, connection failed.
    Failed,
}

impl CallOutcome {
    const ALL: [CallOutcome; 6] = [
        CallOutcome::Success,
        CallOutcome::ClientError,
        CallOutcome::ServerError,
        CallOutcome::Timeout,
        CallOutcome::Refused,
        CallOutcome::Failed,
    ];

    /// The outcome of an answer with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            500.. => CallOutcome::ServerError,
            400.. => CallOutcome::ClientError,
            _ => CallOutcome::Success,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::ClientError => "client_error",
            CallOutcome::ServerError => "server_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Refused => "refused",
            CallOutcome::Failed => "failed",
        }
    }
}

/// The series of one caller's calls to one upstream. A clone is one reference count.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    by_outcome: std::sync::Arc<[Histogram; 6]>,
}

impl ClientMetrics {
    /// The series of `service`'s calls to `upstream`.
    pub fn new(service: &str, upstream: &str) -> Self {
        describe_histogram!(
            REQUEST_DURATION,
            ::metrics::Unit::Seconds,
            "Duration of calls to other services, retries included, by upstream and outcome \
             (success, client_error, server_error, timeout, refused, failed)."
        );
        let series = |outcome: CallOutcome| {
            histogram!(
                REQUEST_DURATION,
                "service" => service.to_owned(),
                "upstream" => upstream.to_owned(),
                "outcome" => outcome.as_str(),
            )
        };
        Self {
            by_outcome: std::sync::Arc::new(CallOutcome::ALL.map(series)),
        }
    }

    /// Records a call that ended with `outcome` after `elapsed`.
    pub fn record(&self, outcome: CallOutcome, elapsed: Duration) {
        self.by_outcome[outcome as usize].record(elapsed.as_secs_f64());
    }
}
