//! System tests: whole hosts, real SQLite files, real HTTP on random ports. One test binary
//! (one link) for all of them.

mod chaos;
mod checkout;
mod connections;
mod console;
mod contract;
mod crash;
#[cfg(unix)]
mod data_files;
mod degradation;
mod edge;
// The fleets register in etcd, share events over NATS and store in PostgreSQL: only a build
// with `etcd` and `fleet` can run them.
#[cfg(all(feature = "etcd", feature = "fleet"))]
mod fleet;
mod gateway;
#[cfg(all(feature = "etcd", feature = "fleet"))]
mod infra;
mod journey;
// `flotilla load` against a one-process shop (issue 15).
mod load;
mod metrics;
// RELIABILITY.md F8 and F12: `flotilla run` and `flotilla serve inventory` on SQLite, a fault
// proxy between them; no feature needed.
#[cfg(all(feature = "etcd", feature = "fleet"))]
mod outlier;
mod partition;
// `flotilla run` on PostgreSQL needs a build with it.
#[cfg(feature = "postgres")]
mod pg_restart;
mod rate_limit;
mod shedding;
mod support;
mod telemetry_db;
mod topology;
mod toxics;
mod traces;
// `flotilla up` needs NATS.
#[cfg(feature = "nats")]
mod up;
