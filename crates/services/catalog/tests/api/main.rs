//! The catalog over real HTTP with a real SQLite file. One test binary (modules, not files in
//! `tests/`), so the crate links its tests once.

mod client;
mod harness;
mod listing;
mod lookup;
mod search;
mod seeding;
