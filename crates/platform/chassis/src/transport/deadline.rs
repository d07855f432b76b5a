//! Deadline propagation: a request carries the time its caller is still willing to wait, and
//! no call made on its behalf outlives it (gRPC's deadline propagation, carried in our own
//! header because our calls are plain HTTP/JSON).
//!
//! **The header.** `x-flotilla-deadline-ms: <integer>` is the number of milliseconds the caller
//! will still wait, measured when the request left it. A relative time, not an absolute one, so
//! that hosts' clocks need not agree. The receiving chassis
//! ([`crate::request_context::middleware`]) turns it into an absolute [`Instant`] on its own
//! clock as the request arrives: `0` (or a deadline that passes before the handler starts) is
//! answered `504` (`deadline-exceeded`: problem+json, or the service's error page) without
//! running the handler; a value that is
//! not an integer is ignored (as if absent); a value above [`MAX_INCOMING`] is cut to it. A
//! request without the header has no deadline beyond the service's own `request_timeout`; event
//! handlers and background work have none.
//!
//! **Outgoing calls.** [`DeadlineLayer`] wraps every transport (in-process and HTTP): it bounds a
//! call by the earlier of the current request's deadline and the upstream's own timeout, sends
//! what is left of that as the header (minus `margin_ms`, 0 by default: the transmission delay
//! already makes each hop's deadline a little later than its caller's, and the caller's own timer
//! is what cancels), and fails a call whose deadline has already passed with
//! [`TransportError::DeadlineExceeded`] without making it. Running out cancels the call: the
//! in-process callee's future is dropped, an HTTP callee sees its connection close. Under the
//! stack's per-attempt deadline ([`crate::resilience::stack`]), which cuts the call no later,
//! the transport's layer is told so as the stack hands it the call, and sets no second timer
//! (one timer per attempt); the header is then the stack's, with the stack's margin.
//!
//! The header's wire format (name, parsing on arrival) is the leaf module [`crate::deadline`],
//! so that the request context can read it without depending on the transports.
//!
//! The deadline is read in `Service::call`, which runs on the caller's task (no transport puts
//! a buffer's worker task between a caller and its call), and the call is started there: the
//! future only waits. The layer is a gate ([`crate::resilience::gate`]), so the stack fuses it
//! with the breaker and the bulkhead into one future.

use axum::body::Body;
use axum::http::Request;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::Layer;

use super::gate::{self, Admission, Answer, Gate};
use crate::transport::{Transport, TransportCall, TransportError};

pub use crate::deadline::{
    DEADLINE_EXCEEDED, DEADLINE_HEADER, Incoming, MAX_INCOMING, header_value, incoming,
};

/// How outgoing calls to one upstream are bounded. `[resilience.deadline]`-style config; every
/// field has a default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlineConfig {
    /// The upstream's own timeout: no call waits longer, whatever the deadline (ms; 10 000).
    pub timeout_ms: u64,
    /// Subtracted from the remaining time written into the header (ms; 0).
    pub margin_ms: u64,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            margin_ms: 0,
        }
    }
}

/// A deadline policy that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidDeadlineConfig {
    /// The timeout is zero or above [`MAX_INCOMING`].
    #[error("timeout_ms must be between 1 and 300000 (got {0})")]
    Timeout(u64),
    /// The margin would eat the whole timeout.
    #[error("margin_ms ({margin}) must be smaller than timeout_ms ({timeout})")]
    Margin {
        /// The margin given.
        margin: u64,
        /// The timeout given.
        timeout: u64,
    },
}

impl DeadlineConfig {
    /// Checks the policy.
    pub fn validate(&self) -> Result<(), InvalidDeadlineConfig> {
        if self.timeout_ms == 0 || u128::from(self.timeout_ms) > MAX_INCOMING.as_millis() {
            return Err(InvalidDeadlineConfig::Timeout(self.timeout_ms));
        }
        if self.margin_ms >= self.timeout_ms {
            return Err(InvalidDeadlineConfig::Margin {
                margin: self.margin_ms,
                timeout: self.timeout_ms,
            });
        }
        Ok(())
    }
}

/// Bounds calls to `service` by the current deadline and `config`'s timeout.
pub fn layer(service: &str, config: &DeadlineConfig) -> DeadlineLayer {
    DeadlineLayer {
        policy: Arc::new(Policy {
            service: service.to_owned(),
            timeout: Duration::from_millis(config.timeout_ms),
            margin: Duration::from_millis(config.margin_ms),
            tells_inner: false,
        }),
    }
}

/// Like [`layer`], for the stack's per-attempt deadline: the transport beneath is told when
/// this layer cuts the call ([`CUT_BY`]), so that its own deadline layer sets no second timer.
pub(crate) fn per_attempt(service: &str, config: &DeadlineConfig) -> DeadlineLayer {
    let mut layer = layer(service, config);
    if let Some(policy) = Arc::get_mut(&mut layer.policy) {
        policy.tells_inner = true;
    }
    layer
}

/// The layer [`layer`] makes (cheap to clone).
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    policy: Arc<Policy>,
}

#[derive(Debug)]
struct Policy {
    service: String,
    timeout: Duration,
    margin: Duration,
    /// Whether the transport beneath is told its cut-off ([`CUT_BY`]).
    tells_inner: bool,
}

tokio::task_local! {
    /// The instant by which the stack's per-attempt deadline will cut the call being handed
    /// to the transport beneath it, scoped around that hand-over only (`Service::call`, which
    /// admits synchronously): the transport's own deadline layer, which would cut the call no
    /// earlier, then sets no second timer and leaves the header as the stack wrote it. A
    /// layer that hands the request on later (an injected delay, a balancer keeping a copy to
    /// re-send) no longer sees it and bounds the call itself, as without the stack. Scoped
    /// rather than carried on the request, so it costs no allocation and can never reach a
    /// callee.
    static CUT_BY: Instant;
}

/// The instant by which the stack's per-attempt deadline will cut the call being handed over
/// right now, when there is one (read synchronously, in the transport's `Service::call`). A
/// balancer keeps it to tell a cut attempt (the instance did not answer in time: its fault)
/// from one its caller gave up on (no one's).
pub fn cut_off() -> Option<Instant> {
    CUT_BY.try_with(|at| *at).ok()
}

/// What a call this layer admitted is cut by.
#[derive(Debug)]
pub(crate) struct Limit {
    /// `None` when a layer above cuts the call no later.
    at: Option<Instant>,
    /// Whether `at` is the request's deadline (rather than the upstream's timeout).
    by_deadline: bool,
}

impl Layer<Transport> for DeadlineLayer {
    type Service = Transport;

    fn layer(&self, inner: Transport) -> Transport {
        gate::guard(self.clone(), inner)
    }
}

/// Bounds the call: the deadline is read and the call started in `call`, in the caller's task;
/// the future only waits.
impl Gate for DeadlineLayer {
    type Pass = Limit;

    fn admit(&self, req: &mut Request<Body>, at: &Admission) -> Result<Limit, TransportError> {
        let policy = &*self.policy;
        // The upstream's timeout, or the retry layer's per-try timeout when it is sooner: both
        // end the attempt with `Timeout`, which a retry may repeat.
        let own = match at.try_cut {
            Some(cut) => cut.min(at.now + policy.timeout),
            None => at.now + policy.timeout,
        };
        let (limit, by_deadline) = match at.deadline {
            Some(d) if d <= at.now => {
                return Err(TransportError::DeadlineExceeded(policy.service.clone()));
            }
            Some(d) => (d.min(own), d <= own),
            None => (own, false),
        };
        if let Ok(outer) = CUT_BY.try_with(|at| *at)
            && outer <= limit
        {
            return Ok(Limit {
                at: None,
                by_deadline,
            });
        }
        let remaining = (limit - at.now).saturating_sub(policy.margin);
        req.headers_mut()
            .insert(DEADLINE_HEADER.clone(), header_value(remaining));
        Ok(Limit {
            at: Some(limit),
            by_deadline,
        })
    }

    fn call_inner(&self, limit: &Limit, call: impl FnOnce() -> TransportCall) -> TransportCall {
        match limit.at {
            Some(at) if self.policy.tells_inner => CUT_BY.sync_scope(at, call),
            _ => call(),
        }
    }

    fn cut_at(&self, limit: &Limit) -> Option<Instant> {
        limit.at
    }

    fn cut_error(&self, limit: &Limit) -> TransportError {
        let service = self.policy.service.clone();
        if limit.by_deadline {
            TransportError::DeadlineExceeded(service)
        } else {
            TransportError::Timeout(service)
        }
    }

    fn settle(&self, _: Limit, answer: Answer) -> Answer {
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            DEADLINE_HEADER.clone(),
            HeaderValue::from_str(value).expect("test header"),
        );
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn the_header_is_read_bounded_and_absurd_values_are_ignored() {
        let now = Instant::now();
        assert_eq!(incoming(&HeaderMap::new(), now), Incoming::Absent);
        assert_eq!(incoming(&with("0"), now), Incoming::Expired);
        assert_eq!(
            incoming(&with("1500"), now),
            Incoming::At(now + Duration::from_millis(1500))
        );
        assert_eq!(
            incoming(&with("99999999999"), now),
            Incoming::At(now + MAX_INCOMING)
        );
        for absurd in ["-5", "1.5", "soon", ""] {
            assert_eq!(incoming(&with(absurd), now), Incoming::Absent, "{absurd}");
        }
    }

    #[test]
    fn configs_are_checked() {
        assert_eq!(DeadlineConfig::default().validate(), Ok(()));
        let zero = DeadlineConfig {
            timeout_ms: 0,
            ..DeadlineConfig::default()
        };
        assert!(zero.validate().is_err());
        let margin = DeadlineConfig {
            timeout_ms: 100,
            margin_ms: 100,
        };
        assert!(margin.validate().is_err());
    }
}
