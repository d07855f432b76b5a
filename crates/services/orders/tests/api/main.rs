//! The orders service end to end: the whole checkout fleet on fresh SQLite files, spoken to
//! over HTTP the way the gateway does, with every peer asked afterwards what it really did.
//! One binary for all of it (one link instead of one per file).

mod access;
mod cart_claims;
mod checkout;
mod concurrency;
mod failures;
mod harness;
mod idempotency;
mod operator;
mod recovery;
