//! The payments service, exercised end to end: a real service on a fresh SQLite file, spoken to
//! over HTTP like the orders saga (through its typed client) and an operator would.
//!
//! One test binary (the modules below) so the suite links once.

mod admin;
mod bad_input;
mod cards;
mod client;
mod concurrency;
mod harness;
mod idempotency;
mod invariants;
mod movements;
