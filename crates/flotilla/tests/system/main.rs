//! System tests: whole hosts, real SQLite files, real HTTP on random ports. One test binary
//! (one link) for all of them.

mod checkout;
mod crash;
mod fleet;
mod gateway;
mod infra;
mod journey;
mod support;
