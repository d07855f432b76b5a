//! Discovery through DNS, as Kubernetes offers it: a headless service's name resolves to one
//! A/AAAA record per ready pod. A template such as
//! `dns://{service}.shop.svc.cluster.local:8080` names each service; every address of that name
//! is an instance on the template's port.
//!
//! The platform does the registering, so [`DnsDiscovery::register`] only returns a passive
//! registration. Watching is a loop that re-resolves the name every `dns_refresh`, or sooner
//! when the answer's TTL runs out, and publishes the addresses it finds. A failed lookup keeps
//! the last known set (a DNS hiccup must not empty the balancer); an answer with no records is
//! an empty set (the service scaled to zero).
//!
//! Lookups go through the [`Resolve`] trait so the refresh timing can be tested with a scripted
//! resolver on paused time; [`HickoryResolver`] is the real one.

use flotilla_chassis::deadline::within;
use futures::future::BoxFuture;
#[cfg(feature = "dns")]
use hickory_resolver::TokioResolver;
#[cfg(feature = "dns")]
use hickory_resolver::config::LookupIpStrategy;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::{
    Discovery, DiscoveryError, DiscoverySettings, Registration, check_service, instance_list,
    normalize_url, publish,
};

/// The shortest pause between two lookups of one name, whatever the TTL says: a zero TTL must
/// not turn the refresh loop into a busy loop.
const MIN_REFRESH: Duration = Duration::from_millis(250);

/// Where a service's instances are in DNS: `{service}` in the host is replaced by the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTemplate {
    host: String,
    port: u16,
}

impl DnsTemplate {
    /// Parses `dns://{service}.namespace.svc.cluster.local:8080` (the `dns://` is optional).
    pub fn parse(spec: &str) -> Result<Self, DiscoveryError> {
        let invalid = || DiscoveryError::InvalidSpec(spec.to_owned());
        let rest = spec.strip_prefix("dns://").unwrap_or(spec);
        let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "-._{}".contains(c);
        if port == 0 || !host.contains("{service}") || !host.chars().all(valid_char) {
            return Err(invalid());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The name to resolve for `service`.
    pub fn host_for(&self, service: &str) -> String {
        self.host.replace("{service}", service)
    }

    /// The base URL of the instance at `ip`.
    pub fn url_for(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("http://{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("http://[{v6}]:{}", self.port),
        }
    }
}

/// One answer for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Every address of the name (empty when the name has no records).
    pub addrs: Vec<IpAddr>,
    /// How long the answer stays valid, if the resolver knows.
    pub ttl: Option<Duration>,
}

/// Looks names up; the seam between the refresh loop and a real resolver.
pub trait Resolve: Send + Sync + 'static {
    /// All A/AAAA records of `host`. "No such records" is an empty answer, not an error.
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Resolved, DiscoveryError>>;
}

/// The system's DNS configuration (`/etc/resolv.conf`, `/etc/hosts`) through hickory (feature
/// `dns`).
#[cfg(feature = "dns")]
pub struct HickoryResolver(TokioResolver);

#[cfg(feature = "dns")]
impl HickoryResolver {
    /// A resolver configured like the system's, asking for both A and AAAA records, without a
    /// cache: the refresh loop decides when to ask again, and a cache would answer it with
    /// stale addresses.
    pub fn from_system_conf() -> Result<Self, DiscoveryError> {
        let unavailable = |e: hickory_resolver::net::NetError| DiscoveryError::Unavailable {
            backend: "DNS",
            source: Box::new(e),
        };
        let mut builder = TokioResolver::builder_tokio().map_err(unavailable)?;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        builder.options_mut().cache_size = 0;
        Ok(Self(builder.build().map_err(unavailable)?))
    }
}

#[cfg(feature = "dns")]
impl Resolve for HickoryResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Resolved, DiscoveryError>> {
        Box::pin(async move {
            match self.0.lookup_ip(host).await {
                Ok(lookup) => Ok(Resolved {
                    addrs: lookup.iter().collect(),
                    ttl: Some(
                        lookup
                            .valid_until()
                            .saturating_duration_since(std::time::Instant::now()),
                    ),
                }),
                Err(e) if e.is_no_records_found() => Ok(Resolved {
                    addrs: Vec::new(),
                    ttl: None,
                }),
                Err(e) => Err(DiscoveryError::Unavailable {
                    backend: "DNS",
                    source: Box::new(e),
                }),
            }
        })
    }
}

/// Instances from DNS names built from a [`DnsTemplate`].
pub struct DnsDiscovery {
    template: DnsTemplate,
    resolver: Arc<dyn Resolve>,
    settings: DiscoverySettings,
}

impl DnsDiscovery {
    /// DNS discovery through the system's resolver.
    #[cfg(feature = "dns")]
    pub fn new(
        template: DnsTemplate,
        settings: &DiscoverySettings,
    ) -> Result<Self, DiscoveryError> {
        Ok(Self::with_resolver(
            template,
            Arc::new(HickoryResolver::from_system_conf()?),
            settings,
        ))
    }

    /// DNS discovery through `resolver`.
    pub fn with_resolver(
        template: DnsTemplate,
        resolver: Arc<dyn Resolve>,
        settings: &DiscoverySettings,
    ) -> Self {
        Self {
            template,
            resolver,
            settings: settings.clone(),
        }
    }
}

impl Discovery for DnsDiscovery {
    fn register<'a>(
        &'a self,
        service: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Registration, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            Ok(Registration::passive(service, &normalize_url(url)?))
        })
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Vec<String>>, DiscoveryError>> {
        Box::pin(async move {
            check_service(service)?;
            let refresher = Refresher {
                resolver: self.resolver.clone(),
                template: self.template.clone(),
                host: self.template.host_for(service),
                settings: self.settings.clone(),
            };
            let first = refresher.lookup().await?;
            let (tx, rx) = watch::channel(refresher.urls(&first));
            let wait = refresher.next_lookup_in(&first);
            tokio::spawn(refresher.run(tx, wait));
            Ok(rx)
        })
    }
}

/// Keeps one name's watch channel current.
struct Refresher {
    resolver: Arc<dyn Resolve>,
    template: DnsTemplate,
    host: String,
    settings: DiscoverySettings,
}

impl Refresher {
    async fn lookup(&self) -> Result<Resolved, DiscoveryError> {
        within(
            self.settings.request_timeout,
            self.resolver.lookup(&self.host),
            |limit| DiscoveryError::Unavailable {
                backend: "DNS",
                source: format!("no answer within {limit:?}").into(),
            },
        )
        .await
    }

    fn urls(&self, answer: &Resolved) -> Vec<String> {
        instance_list(answer.addrs.iter().map(|ip| self.template.url_for(*ip)))
    }

    /// The next lookup comes at the refresh interval or when the answer expires, if sooner.
    fn next_lookup_in(&self, answer: &Resolved) -> Duration {
        let refresh = self.settings.dns_refresh;
        answer
            .ttl
            .map_or(refresh, |ttl| ttl.min(refresh))
            .max(MIN_REFRESH)
    }

    /// Re-resolves until every receiver is gone.
    async fn run(self, tx: watch::Sender<Vec<String>>, mut wait: Duration) {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = match self.lookup().await {
                Ok(answer) => {
                    publish(&tx, self.urls(&answer));
                    self.next_lookup_in(&answer)
                }
                Err(error) => {
                    tracing::warn!(host = %self.host, %error, "DNS lookup failed; keeping the last known instances");
                    self.settings.dns_refresh.max(MIN_REFRESH)
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn templates_parse_and_expand() {
        let t = DnsTemplate::parse("dns://{service}.shop.svc.cluster.local:8080").ok();
        let t = t.expect("valid template");
        assert_eq!(t.host_for("catalog"), "catalog.shop.svc.cluster.local");
        assert_eq!(t.url_for([10, 0, 0, 7].into()), "http://10.0.0.7:8080");
        assert_eq!(
            t.url_for(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "http://[::1]:8080"
        );
        assert!(DnsTemplate::parse("{service}:1").is_ok());
        for bad in [
            "dns://catalog.shop:8080",
            "dns://{service}.shop",
            "dns://{service}.shop:0",
            "dns://{service}.shop:http",
            "dns://{service}.shop:99999",
            "dns://{service}/x:80",
        ] {
            assert!(DnsTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
