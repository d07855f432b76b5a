//! The inventory over real HTTP with a real SQLite file. One test binary (modules, not files in
//! `tests/`), so the crate links its tests once.

mod admin;
mod client;
mod concurrency;
mod expiry;
mod harness;
mod invariant;
mod reservations;
mod stock;
