//! System tests: whole hosts, real SQLite files, real HTTP on random ports. One test binary
//! (one link) for all of them.

mod chaos;
mod checkout;
mod connections;
mod contract;
mod crash;
#[cfg(unix)]
mod data_files;
// The fleets register in etcd: only a build with etcd support can run them.
#[cfg(feature = "etcd")]
mod fleet;
mod gateway;
#[cfg(feature = "etcd")]
mod infra;
mod journey;
mod pg_restart;
mod support;
mod up;
