//! The identity service over real HTTP with a real database, as the gateway would call it. One
//! test binary (modules, not files in `tests/`), so the crate links its tests once.

mod harness;
mod login;
mod public;
mod signup;
