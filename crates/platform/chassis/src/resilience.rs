//! Resilience as tower layers around a [`Transport`](crate::transport::Transport): each takes a
//! transport and returns one, so a typed client, the gateway and the balancer never know which
//! are applied. Every policy is a config struct with documented serde defaults, checked by its
//! `validate`.
//!
//! - [`deadline`]: the caller's remaining time travels with each request
//!   (`x-flotilla-deadline-ms`) and bounds every call made on its behalf;
//! - [`retry`]: Envoy/Linkerd-style retries — only where repeating is safe, with full-jitter
//!   backoff, never past the deadline, within a per-upstream retry budget.

pub mod deadline;
pub mod retry;
