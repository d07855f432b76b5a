//! A fault proxy on one link, for tests that put Toxiproxy's faults between a service and what
//! it calls (another service, PostgreSQL, NATS) without starting `flotilla proxy`.

pub use flotilla_faultproxy::{FaultProxy, Proxy, Stream, Toxic, ToxicKind};

/// A proxy on a free local port in front of `upstream` (`HOST:PORT`): point the client at
/// `proxy.addr()`, then add toxics with `proxy.add_toxic(Toxic::new(…))`. The proxy lives as
/// long as the handle.
pub async fn fault_proxy(upstream: &str) -> Proxy {
    FaultProxy::new()
        .proxy("link", upstream)
        .await
        .unwrap_or_else(|e| panic!("fault proxy in front of {upstream}: {e}"))
}
