//! System tests: whole hosts, real SQLite files, real HTTP on random ports. One test binary
//! (one link) for all of them.

mod checkout;
mod contract;
mod crash;
// The fleets register in etcd: only a build with etcd support can run them.
#[cfg(feature = "etcd")]
mod fleet;
mod gateway;
#[cfg(feature = "etcd")]
mod infra;
mod journey;
mod support;
mod up;
