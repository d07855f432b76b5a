//! The resilience layers (circuit breaker, bulkhead), each against a scripted upstream on
//! tokio's paused time (RELIABILITY.md F9, and L4's "in flight never above the cap, the rest
//! rejected at once"), and the breaker once more in front of a real HTTP transport. One binary
//! for all of them (one link instead of several).

mod breaker;
mod bulkhead;
mod over_http;
mod upstream;
