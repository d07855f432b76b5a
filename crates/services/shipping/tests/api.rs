//! Shipping over real HTTP with a real SQLite file, spoken to like the gateway and the orders
//! service do. One test binary (modules, not files in `tests/`), so the crate links its tests
//! once.

#[path = "api/admin.rs"]
mod admin;
#[path = "api/client.rs"]
mod client;
#[path = "api/harness.rs"]
mod harness;
#[path = "api/inputs.rs"]
mod inputs;
#[path = "api/quotes.rs"]
mod quotes;
#[path = "api/shipments.rs"]
mod shipments;
