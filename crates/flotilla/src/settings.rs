//! The host's settings: where to listen, where data lives, which services are elsewhere.
//! Read from the layered configuration (file ← `FLOTILLA_*` environment ← flags); see the
//! README's configuration reference for every key.

use flotilla_chassis::Limits;
use flotilla_chassis::server::{ConnectionLimits, TlsSettings};
use flotilla_discovery::OutlierSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Where `run` serves its metrics when no address is configured: loopback only, on the port
/// OpenTelemetry's Prometheus exporters use.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// The value a remote service has when it is found through discovery instead of a fixed URL
/// (`--remote payments` without `=URL`).
pub const DISCOVER: &str = "discover";

/// Top-level settings of one Flotilla process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HostSettings {
    /// Address to bind listeners on (`FLOTILLA_HOST`). Loopback by default: expose on purpose.
    pub host: IpAddr,
    /// Gateway port for `run` (`FLOTILLA_PORT`); first service port for `serve`.
    pub port: u16,
    /// Directory holding one SQLite file per service and the service secret (`FLOTILLA_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Services reached over HTTP instead of in-process: name → base URL
    /// (`FLOTILLA_REMOTE__CART=http://127.0.0.1:9003`).
    pub remote: BTreeMap<String, String>,
    /// `serve` only: a listen address per service (`FLOTILLA_LISTEN__CART=127.0.0.1:9003`).
    pub listen: BTreeMap<String, SocketAddr>,
    /// Shared secret for service credentials (`FLOTILLA_SERVICE_SECRET`, at least 32 chars).
    /// When unset, one is generated into `<data_dir>/service-secret` and reused.
    pub service_secret: Option<String>,
    /// Request limits (`[limits] body_bytes`, `request_timeout`).
    pub limits: Limits,
    /// Connection limits of every listener (`[connections]`: `header_read_timeout`,
    /// `idle_timeout`, `body_read_timeout` in ms, `max` open connections per process;
    /// `FLOTILLA_CONNECTIONS__MAX=2000`). `max` is lowered to fit the process's file limit.
    pub connections: ConnectionLimits,
    /// TLS on the gateway's listener (`[tls] cert_path`, `key_path`: PEM files;
    /// `FLOTILLA_TLS__CERT_PATH`, `FLOTILLA_TLS__KEY_PATH`): HTTP/2 and HTTP/1.1 by ALPN.
    /// Plain HTTP (HTTP/1.1 and h2c) when unset. Service listeners stay plain.
    pub tls: Option<TlsSettings>,
    /// The listener whose socket this process received as its standard input, inetd-style
    /// (`FLOTILLA_INHERITED_LISTENER=cart`): `flotilla up` binds every port itself and hands
    /// each instance its socket, so no other process can take the port in between.
    pub inherited_listener: Option<String>,
    /// Connections per service database pool (`FLOTILLA_DATABASE__MAX_CONNECTIONS`).
    pub database: DatabaseSettings,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub drain_secs: u64,
    /// A PostgreSQL server (`FLOTILLA_DATABASE_URL`); each service then creates and migrates its
    /// own database `<database_prefix>_<service>` on it. SQLite files under `data_dir` otherwise.
    pub database_url: Option<String>,
    /// Prefix of the per-service database names (`FLOTILLA_DATABASE_PREFIX`).
    pub database_prefix: String,
    /// NATS with JetStream (`FLOTILLA_NATS_URL`) carries events between processes; without it
    /// events travel only inside this process.
    pub nats_url: Option<String>,
    /// Redis (`FLOTILLA_REDIS_URL`): the gateway's rate-limit buckets are shared there by every
    /// gateway replica; local to each gateway without it.
    pub redis_url: Option<String>,
    /// Where instances find each other (`FLOTILLA_DISCOVERY`): `static` (the `remote` URLs),
    /// `etcd://host:port`, or `dns://{service}.namespace.svc.cluster.local:8080`.
    pub discovery: String,
    /// Name of this deployment: NATS stream and subject prefix, etcd key prefix
    /// (`FLOTILLA_CLUSTER`). Two fleets sharing a NATS or etcd need different names.
    pub cluster: String,
    /// Address other processes should use to reach this one's listeners (`FLOTILLA_ADVERTISE_HOST`);
    /// defaults to `host`, or, when `host` is unspecified (0.0.0.0, as in a container), the
    /// address of the interface that routes outward (`host/advertise.rs`).
    pub advertise_host: Option<String>,
    /// etcd lease TTL in seconds: a dead instance leaves discovery within it.
    pub discovery_ttl_secs: u64,
    /// The etcd user and password of this process (`[etcd] user`, `password`;
    /// `FLOTILLA_ETCD__USER`, `FLOTILLA_ETCD__PASSWORD`), for an etcd with authentication on.
    pub etcd: EtcdSettings,
    /// On SIGTERM, how long an instance keeps serving after leaving discovery, so that callers
    /// see it gone before it stops accepting (`FLOTILLA_DEREGISTER_GRACE_MS`).
    pub deregister_grace_ms: u64,
    /// The metrics listener (`FLOTILLA_METRICS_LISTEN`, `--metrics-listen`): `GET /metrics` with
    /// every series of the process (`?service=<name>` for one service's), on an address of its
    /// own so the public listener never serves it. `run` defaults to 127.0.0.1:9464 (and goes on
    /// without it, with a warning, when that port is taken); `serve` has none unless given, as
    /// each service's own listener serves its `/metrics` (README, "Metrics").
    pub metrics_listen: Option<SocketAddr>,
    /// Outlier ejection and health probes of the instances of services reached over the
    /// network (`[outlier]`, `FLOTILLA_OUTLIER__BASE_EJECTION_MS=10000`); see the README.
    pub outlier: OutlierSettings,
}

/// `[etcd]` settings: who this process is to etcd. Both or neither.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct EtcdSettings {
    /// The user.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

impl HostSettings {
    /// The etcd login of this process, when discovery is etcd. The pairing of user and password
    /// is checked only then: with `dns://` or `static` discovery nothing logs in to etcd, and a
    /// Deployment that names its etcd user for the etcd option (with the password's Secret key
    /// optional, absent where discovery is DNS) must still start.
    pub fn etcd_login(&self) -> anyhow::Result<Option<flotilla_discovery::Credentials>> {
        if !self.discovery.starts_with("etcd://") {
            return Ok(None);
        }
        match (&self.etcd.user, &self.etcd.password) {
            (Some(user), Some(password)) => Ok(Some(flotilla_discovery::Credentials {
                user: user.clone(),
                password: password.clone(),
            })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("etcd.user and etcd.password go together: set both or neither"),
        }
    }
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[database]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Most connections per service pool.
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { max_connections: 4 }
    }
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            data_dir: PathBuf::from("./data"),
            remote: BTreeMap::new(),
            listen: BTreeMap::new(),
            service_secret: None,
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            tls: None,
            inherited_listener: None,
            database: DatabaseSettings::default(),
            drain_secs: 10,
            database_url: None,
            database_prefix: "flotilla".to_owned(),
            nats_url: None,
            redis_url: None,
            discovery: "static".to_owned(),
            cluster: "flotilla".to_owned(),
            advertise_host: None,
            discovery_ttl_secs: 5,
            etcd: EtcdSettings::default(),
            deregister_grace_ms: 2000,
            outlier: OutlierSettings::default(),
            metrics_listen: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EtcdSettings, HostSettings};

    fn with(discovery: &str, user: Option<&str>, password: Option<&str>) -> HostSettings {
        HostSettings {
            discovery: discovery.to_owned(),
            etcd: EtcdSettings {
                user: user.map(str::to_owned),
                password: password.map(str::to_owned),
            },
            ..HostSettings::default()
        }
    }

    /// The Deployments name their etcd user always and take the password from an optional
    /// Secret key: without it, a pod on DNS discovery must start (it crash-looped before).
    #[test]
    fn an_etcd_user_without_a_password_is_refused_only_when_discovery_is_etcd() {
        for discovery in ["dns://{service}.flotilla.svc.cluster.local:8080", "static"] {
            let settings = with(discovery, Some("catalog"), None);
            assert!(
                settings.etcd_login().expect("not etcd").is_none(),
                "{discovery}"
            );
        }
        let settings = with("etcd://127.0.0.1:2379", Some("catalog"), None);
        let err = settings.etcd_login().expect_err("half a login");
        assert!(err.to_string().contains("go together"), "{err}");
        let settings = with("etcd://127.0.0.1:2379", None, Some("secret"));
        assert!(settings.etcd_login().is_err());
        let settings = with("etcd://127.0.0.1:2379", Some("catalog"), Some("secret"));
        let login = settings.etcd_login().expect("both").expect("a login");
        assert_eq!(login.user, "catalog");
        assert!(
            with("etcd://127.0.0.1:2379", None, None)
                .etcd_login()
                .expect("neither")
                .is_none()
        );
    }
}
