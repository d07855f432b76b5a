//! A TCP fault proxy with Toxiproxy's toxics: the faults of the reliability battery
//! (RELIABILITY.md, "Faults") put on any link, service → service, service → PostgreSQL or
//! service → NATS, by tests in-process or by an operator through `flotilla proxy` and its
//! HTTP API.
//!
//! Written here on tokio rather than taken from crates.io: the one Rust port of Toxiproxy,
//! noxious, is built on tokio-util 0.6 and does not resolve with this workspace (CRATES.md).
//! The names, units and semantics are Toxiproxy's, so its documentation applies:
//! latency (± jitter), bandwidth, slow_close, timeout, reset_peer, slicer and limit_data, each on
//! the `upstream` (client → server) or `downstream` (server → client) stream, acting on a
//! connection with probability `toxicity`.
//!
//! ```ignore
//! let fault_proxy = FaultProxy::new();
//! let proxy = fault_proxy.proxy("postgres", "127.0.0.1:5432").await?;
//! // connect to proxy.addr() instead of 127.0.0.1:5432, then:
//! proxy.add_toxic(Toxic::new(ToxicKind::Latency { latency: 100, jitter: 10 })).await?;
//! ```

pub mod api;
mod error;
mod link;
mod registry;
mod toxic;

pub use error::Error;
pub use registry::{FaultProxy, Limits, Proxy, ProxyInfo, ProxyUpdate};
pub use toxic::{Stream, Toxic, ToxicKind};
