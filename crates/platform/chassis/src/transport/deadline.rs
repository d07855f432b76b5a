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
//! in-process callee's future is dropped, an HTTP callee sees its connection close.
//!
//! The header's wire format (name, parsing on arrival) is the leaf module [`crate::deadline`],
//! so that the request context can read it without depending on the transports.
//!
//! The deadline is read inside the call's future, which runs on the caller's task, not in
//! `Service::call`: behind the balancer's buffer, `call` runs on the buffer's worker task, where
//! the caller's request context is not visible.

use axum::body::Body;
use axum::http::Request;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::request_context;
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
        service: service.to_owned(),
        timeout: Duration::from_millis(config.timeout_ms),
        margin: Duration::from_millis(config.margin_ms),
    }
}

/// The layer [`layer`] makes.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    service: String,
    timeout: Duration,
    margin: Duration,
}

impl Layer<Transport> for DeadlineLayer {
    type Service = Transport;

    fn layer(&self, mut inner: Transport) -> Transport {
        let policy = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<Body>| {
            policy.call(&mut inner, req)
        }))
    }
}

impl DeadlineLayer {
    /// Bounds the call of `req` on `inner` (always ready, see [`Transport`]): the deadline is
    /// read and the call started now, in the caller's task; the future only waits.
    fn call(&self, inner: &mut Transport, mut req: Request<Body>) -> TransportCall {
        let now = Instant::now();
        let deadline = request_context::current_deadline();
        let own = now + self.timeout;
        let limit = match deadline {
            Some(d) if d <= now => {
                let expired = TransportError::DeadlineExceeded(self.service.clone());
                return Box::pin(std::future::ready(Err(expired)));
            }
            Some(d) => d.min(own),
            None => own,
        };
        let remaining = (limit - now).saturating_sub(self.margin);
        req.headers_mut()
            .insert(DEADLINE_HEADER.clone(), header_value(remaining));
        let call = inner.call(req);
        let cut_by_deadline = deadline.is_some_and(|d| d <= own);
        let service = self.service.clone();
        Box::pin(async move {
            match tokio::time::timeout_at(limit, call).await {
                Ok(result) => result,
                Err(_) if cut_by_deadline => Err(TransportError::DeadlineExceeded(service)),
                Err(_) => Err(TransportError::Timeout(service)),
            }
        })
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
