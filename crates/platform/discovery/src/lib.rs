//! Service discovery: where the instances of a service are, behind one interface, and the
//! balanced transport that spreads calls over them. A crate of its own because only the hosts
//! (the `flotilla` binary) find peers over the network: a service crate reaches its peers
//! through the chassis's `Peers` and compiles neither DNS nor etcd code.
//!
//! A host announces each listener it serves with [`Discovery::register`] and learns where its
//! peers are with [`Discovery::watch`]: a `tokio::sync::watch` channel holding the current base
//! URLs, which the backend keeps up to date. A watch channel rather than a stream of changes,
//! because every consumer wants the whole current set (the balancer replaces its instance list
//! with it, keeping each known instance's counters, see [`balanced`](crate::balanced)), and a
//! slow consumer should skip to the newest set instead of replaying old ones. The balancer
//! also ejects failing instances and probes them back ([`outlier`]).
//!
//! Backends, chosen by a `--discovery` value in [`from_spec`]:
//!
//! - [`StaticDiscovery`] (`static`): a fixed list from configuration, plus the instances that
//!   register in this process;
//! - `EtcdDiscovery` (`etcd://host:port[,host:port]`, feature `etcd`): one key per instance
//!   under a TTL lease, followed with etcd's WATCH;
//! - [`DnsDiscovery`] (`dns://{service}.namespace.svc.cluster.local:port`): every A/AAAA record
//!   of a name, re-resolved periodically (a Kubernetes headless service).
//!
//! Services in the same process need none of this:
//! [`Peers`](flotilla_chassis::transport::Peers) reaches them in-process.

pub mod balanced;
mod dns;
#[cfg(feature = "etcd")]
mod etcd;
pub mod outlier;
mod registration;
mod static_list;

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use balanced::{Balancer, BalancerSnapshot, InstanceSnapshot, balanced};
#[cfg(feature = "dns")]
pub use dns::HickoryResolver;
pub use dns::{DnsDiscovery, DnsTemplate, Resolve, Resolved};
#[cfg(feature = "etcd")]
pub use etcd::EtcdDiscovery;
pub use outlier::{InvalidOutlierSettings, OutlierSettings};
pub use registration::Registration;
pub use static_list::{Pinned, StaticDiscovery};

/// Where the instances of each service are.
pub trait Discovery: Send + Sync + 'static {
    /// Announces an instance of `service` reachable at `url` (e.g. "http://10.0.0.7:9002") until
    /// the returned registration is deregistered (or the process dies: then it must vanish
    /// within the TTL).
    fn register<'a>(
        &'a self,
        service: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Registration, DiscoveryError>>;

    /// The live instances of `service`, kept current (a watch channel of base URLs, sorted,
    /// de-duplicated). The first value is a complete snapshot; when the backend becomes
    /// unreachable the channel keeps the last known set until it can be read again.
    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Vec<String>>, DiscoveryError>>;

    /// Records the cluster's fingerprint ([`flotilla_chassis::cluster_fingerprint`]) in a backend that keeps
    /// state (etcd) unless one is there already, and returns the one recorded there; `None` for
    /// backends that keep none (static, DNS).
    fn claim_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, DiscoveryError>> {
        let _ = fingerprint;
        Box::pin(async { Ok(None) })
    }
}

/// Timing of the discovery backends.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// etcd lease TTL: an instance whose process died leaves discovery within it.
    pub ttl: Duration,
    /// How often DNS names are re-resolved (sooner when the records' TTL runs out first).
    pub dns_refresh: Duration,
    /// Longest wait for one request to the backend (an etcd call, a DNS lookup).
    pub request_timeout: Duration,
    /// The etcd user to authenticate as, when etcd has authentication on (it should: anyone
    /// who may write the keys can register a fake instance and receive its traffic).
    pub etcd_credentials: Option<Credentials>,
}

/// A user name and password; `Debug` shows only the name.
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            dns_refresh: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            etcd_credentials: None,
        }
    }
}

/// Why discovery could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The `--discovery` value names no backend.
    #[error(
        "invalid discovery {0:?}: expected static, etcd://host:port[,host:port] or \
         dns://{{service}}.namespace.svc.cluster.local:port"
    )]
    InvalidSpec(String),
    /// The backend exists but was not compiled into this binary.
    #[error(
        "discovery {spec:?}: this binary was built without it; build it with \
         `cargo build --release --features {feature}`{needs}"
    )]
    NotBuiltIn {
        /// The `--discovery` value.
        spec: String,
        /// The cargo feature of the `flotilla` binary that brings the backend.
        feature: &'static str,
        /// What building it needs beyond Rust, as a sentence tail ("" for nothing).
        needs: &'static str,
    },
    /// Service names become etcd key segments and DNS labels.
    #[error("invalid service name {0:?}: expected letters, digits, '-' or '_'")]
    InvalidService(String),
    /// An instance URL must be one the HTTP transport can call.
    #[error("invalid instance url {0:?}: expected http://host:port[/prefix]")]
    InvalidUrl(String),
    /// The backend did not answer (or answered with an error).
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// "etcd" or "DNS".
        backend: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Builds a backend from a `--discovery` value: "static" (instances from `static_urls`: service
/// → list of base URLs), "etcd://host:port[,host:port]" (keys under
/// `/{prefix}/services/{service}/{instance-id}`, TTL lease), or
/// "dns://{service}.my-namespace.svc.cluster.local:8080" (a template: `{service}` is replaced;
/// every A/AAAA record of the name is an instance on that port; re-resolved every `dns_refresh`
/// and on TTL expiry; register is a no-op: Kubernetes registers).
///
/// With etcd or DNS, a service listed in `static_urls` is pinned to those URLs: configuration
/// wins over what the backend says (see [`Pinned`]).
pub async fn from_spec(
    spec: &str,
    prefix: &str,
    static_urls: &BTreeMap<String, Vec<String>>,
    settings: &DiscoverySettings,
) -> Result<Arc<dyn Discovery>, DiscoveryError> {
    let fixed = StaticDiscovery::new(static_urls)?;
    if spec == "static" {
        return Ok(Arc::new(fixed));
    }
    let backend: Arc<dyn Discovery> = if let Some(endpoints) = spec.strip_prefix("etcd://") {
        etcd_backend(spec, endpoints, prefix, settings).await?
    } else if spec.starts_with("dns://") {
        dns_backend(spec, settings)?
    } else {
        return Err(DiscoveryError::InvalidSpec(spec.to_owned()));
    };
    Ok(if static_urls.is_empty() {
        backend
    } else {
        Arc::new(Pinned::new(fixed, static_urls.keys().cloned(), backend))
    })
}

#[cfg(feature = "etcd")]
async fn etcd_backend(
    spec: &str,
    endpoints: &str,
    prefix: &str,
    settings: &DiscoverySettings,
) -> Result<Arc<dyn Discovery>, DiscoveryError> {
    let endpoints: Vec<&str> = endpoints.split(',').map(str::trim).collect();
    if endpoints.iter().any(|e| e.is_empty() || e.contains('/')) {
        return Err(DiscoveryError::InvalidSpec(spec.to_owned()));
    }
    Ok(Arc::new(
        EtcdDiscovery::connect(&endpoints, prefix, settings).await?,
    ))
}

#[cfg(not(feature = "etcd"))]
async fn etcd_backend(
    spec: &str,
    _endpoints: &str,
    _prefix: &str,
    _settings: &DiscoverySettings,
) -> Result<Arc<dyn Discovery>, DiscoveryError> {
    Err(DiscoveryError::NotBuiltIn {
        spec: spec.to_owned(),
        feature: "etcd",
        needs: " (needs protoc: `bash scripts/deps.sh`)",
    })
}

#[cfg(feature = "dns")]
fn dns_backend(
    spec: &str,
    settings: &DiscoverySettings,
) -> Result<Arc<dyn Discovery>, DiscoveryError> {
    Ok(Arc::new(DnsDiscovery::new(
        DnsTemplate::parse(spec)?,
        settings,
    )?))
}

/// Without hickory (feature `dns`, in the binary's `fleet`), a `dns://` value is checked and
/// then refused with the build advice.
#[cfg(not(feature = "dns"))]
fn dns_backend(
    spec: &str,
    _settings: &DiscoverySettings,
) -> Result<Arc<dyn Discovery>, DiscoveryError> {
    DnsTemplate::parse(spec)?;
    Err(DiscoveryError::NotBuiltIn {
        spec: spec.to_owned(),
        feature: "fleet",
        needs: "",
    })
}

/// Service names end up in etcd keys and DNS names: keep them to one plain segment.
fn check_service(service: &str) -> Result<(), DiscoveryError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if service.is_empty() || !service.chars().all(plain) {
        return Err(DiscoveryError::InvalidService(service.to_owned()));
    }
    Ok(())
}

/// An instance URL as announced: callable by the HTTP transport, without a trailing slash.
fn normalize_url(url: &str) -> Result<String, DiscoveryError> {
    let url = url.trim_end_matches('/');
    flotilla_chassis::transport::http::check_base_url(url)
        .map_err(|_| DiscoveryError::InvalidUrl(url.to_owned()))?;
    Ok(url.to_owned())
}

/// The value a watch channel carries: sorted and de-duplicated.
fn instance_list(urls: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = urls.into_iter().collect();
    list.sort();
    list.dedup();
    list
}

/// Replaces the channel's value, waking receivers only if the set changed.
fn publish(tx: &watch::Sender<Vec<String>>, list: Vec<String>) {
    tx.send_if_modified(|current| {
        if *current == list {
            return false;
        }
        *current = list;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_one_plain_segment() {
        assert!(check_service("catalog").is_ok());
        assert!(check_service("order_saga-2").is_ok());
        for bad in ["", "a/b", "a b", "..", "cät"] {
            assert!(check_service(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_url("http://10.0.0.7:9002/").ok().as_deref(),
            Some("http://10.0.0.7:9002")
        );
        assert_eq!(
            normalize_url("http://gw:8080/api/cart").ok().as_deref(),
            Some("http://gw:8080/api/cart")
        );
        for bad in ["10.0.0.7:9002", "https://x:1", "not a url", ""] {
            assert!(normalize_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn instance_lists_are_sorted_and_unique() {
        let list = instance_list(["http://b:1", "http://a:1", "http://b:1"].map(String::from));
        assert_eq!(list, ["http://a:1", "http://b:1"]);
    }

    #[tokio::test]
    async fn unknown_specs_are_refused() {
        let settings = DiscoverySettings::default();
        for spec in ["", "consul://x:1", "etcd://", "etcd://a:1,", "dns://x:80"] {
            let result = from_spec(spec, "flotilla", &BTreeMap::new(), &settings).await;
            assert!(result.is_err(), "{spec:?} accepted");
        }
    }
}
