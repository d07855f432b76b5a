//! Designed for failure: the tower layers that wrap every [`Transport`](crate::transport::Transport)
//! so that one slow or broken dependency cannot take its callers down with it (issue 12).
//!
//! Each pattern is one layer from a `Transport` to a `Transport`, so the stack is composed the
//! same way around an in-process, an HTTP or a balanced transport, and each is tested on its own
//! on tokio's paused time. Outermost first, the intended stack around a call to one upstream is:
//!
//! 1. **deadline** — the caller's remaining budget travels with the request; nothing outlives it;
//! 2. **retry** — only what is safe to repeat, within a retry budget;
//! 3. **circuit breaker** ([`breaker`]) — after a failure rate over a sliding window of calls, or
//!    a run of consecutive failures, calls fail fast with `CircuitOpen` for a wait time, then a
//!    few probes decide whether to close again (Resilience4j's and Polly's semantics);
//! 4. **bulkhead** ([`bulkhead`]) — at most N calls in flight to the upstream; one more is
//!    rejected at once with `Overloaded`, never queued (Hystrix's semaphore isolation).
//!
//! The breaker sits outside the bulkhead, so calls a full bulkhead rejects are our own overload,
//! not the upstream's failure, and do not count against it. Breakers and bulkheads are kept in
//! keyed registries ([`breaker::Breakers`], [`bulkhead::Bulkheads`]): one per upstream, or one
//! per instance inside a balanced transport, each with a serialisable snapshot of its state and
//! counters for the admin endpoint. None of these layers is applied by default yet.

pub mod breaker;
pub mod bulkhead;
