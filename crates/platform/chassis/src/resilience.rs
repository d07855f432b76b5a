//! Designed for failure: the tower layers that wrap every [`Transport`](crate::transport::Transport)
//! so that one slow or broken dependency cannot take its callers down with it (issue 12).
//!
//! Each pattern is one layer from a `Transport` to a `Transport`, so the stack is composed the
//! same way around an in-process, an HTTP or a balanced transport, and a typed client, the
//! gateway and the balancer never know which are applied. Each is tested on its own on tokio's
//! paused time, and every policy is a config struct with documented serde defaults, checked by
//! its `validate`. Outermost first, the stack around a call to one upstream is:
//!
//! 1. **deadline** ([`deadline`]) — the caller's remaining time travels with each request
//!    (`x-flotilla-deadline-ms`) and bounds every call made on its behalf; nothing outlives it;
//! 2. **retry** ([`retry`]) — Envoy/Linkerd-style: only where repeating is safe, with
//!    full-jitter backoff, never past the deadline, within a per-upstream retry budget;
//! 3. **circuit breaker** ([`breaker`]) — after a failure rate over a sliding window of calls, or
//!    a run of consecutive failures, calls fail fast with `CircuitOpen` for a wait time, then a
//!    few probes decide whether to close again (Resilience4j's and Polly's semantics);
//! 4. **bulkhead** ([`bulkhead`]) — at most N calls in flight to the upstream; one more is
//!    rejected at once with `Overloaded`, never queued (Hystrix's semaphore isolation);
//! 5. **per-attempt deadline** — each attempt bounded by the upstream's `timeout_ms` within
//!    the request's deadline, so a hung attempt leaves time for a retry.
//!
//! The breaker sits outside the bulkhead, so calls a full bulkhead rejects are our own overload,
//! not the upstream's failure, and do not count against it. [`stack`] applies the layers: every
//! transport a service's (or the gateway's) `Peers` hand out is wrapped in that caller's stack
//! for the upstream, with the upstream's policy from `[resilience]`; [`admin`] shows each
//! stack's policy, state and counters at `GET /admin/resilience`. Inside a balanced upstream,
//! each instance is guarded by outlier ejection (`flotilla_discovery`), Envoy's per-host
//! breaker. The breaker, the bulkhead and the deadline share one shape, the transport's gate
//! ([`crate::transport::gate`]), so the stack runs the three as one gate: one future and one
//! timer per attempt.
//!
//! On the serving side, [`shedding`] caps the requests a server (the gateway) serves at once
//! and refuses the excess at once with 503 `overloaded` and `Retry-After`: the bulkhead's
//! semaphore in front of a router instead of behind a client.

pub mod admin;
pub mod breaker;
pub mod bulkhead;
pub mod collector;
pub mod stack;
/// The deadline layer lives with the transports, which apply it to every call; it is part of
/// the resilience stack all the same.
pub use crate::transport::deadline;
pub mod retry;
pub mod shedding;
