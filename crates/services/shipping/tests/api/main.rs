//! Shipping over real HTTP with a real SQLite file, spoken to like the gateway and the orders
//! service do. One test binary (modules, not files in `tests/`), so the crate links its tests
//! once.

mod admin;
mod client;
mod harness;
mod inputs;
mod quotes;
mod shipments;
