//! The resilience layers: the circuit breaker and the bulkhead against a scripted upstream on
//! tokio's paused time (RELIABILITY.md F9, and L4's "in flight never above the cap, the rest
//! rejected at once"), the breaker once more in front of a real HTTP transport, and deadlines
//! against real chassis routers, in-process and over HTTP on local sockets (F8, F11, F12:
//! answers at the deadline, never later). One binary for all of them (one link).

mod breaker;
mod bulkhead;
mod deadline;
mod over_http;
mod stack;
mod upstream;
