//! The outside world a host connects its services to, chosen by configuration: storage (SQLite
//! files or a PostgreSQL server), the event bus (in-process or NATS JetStream), and discovery
//! (static URLs, etcd or DNS) with the transports to services that run elsewhere.

use anyhow::{Context, bail};
use flotilla_chassis::cluster_fingerprint;
use flotilla_chassis::db::{Db, PoolSettings};
use flotilla_chassis::events::{InProcessBus, SharedBus};
use flotilla_chassis::transport::Peers;
use flotilla_chassis::transport::http::HttpPool;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_discovery::{self as discovery, Balancer, Discovery, DiscoverySettings};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::settings::DISCOVER;
use crate::settings::HostSettings;

/// Opens the database of `service`: `<data_dir>/<service>.db`, or `<prefix>_<service>` on the
/// configured PostgreSQL server (created and migrated there by the service at start), and claims
/// it for the fleet whose secret has `fingerprint`: a database another fleet already uses stops
/// the start with the clash named ([`cluster_fingerprint`]).
pub async fn open_db(
    settings: &HostSettings,
    service: &str,
    fingerprint: &str,
) -> anyhow::Result<Db> {
    let pool = PoolSettings {
        max_connections: settings.database.max_connections,
        ..PoolSettings::default()
    };
    let (db, place) = match &settings.database_url {
        Some(url) => {
            let name = format!("{}_{}", settings.database_prefix, service);
            let db = Db::open_postgres(url, &name, &pool)
                .await
                .with_context(|| format!("opening PostgreSQL database {name}"))?;
            (db, format!("PostgreSQL database {name}"))
        }
        None => {
            let path = settings.data_dir.join(format!("{service}.db"));
            let db = Db::open_sqlite(&path, &pool)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            (db, format!("database {}", path.display()))
        }
    };
    cluster_fingerprint::claim_database(&db, &place, fingerprint).await?;
    Ok(db)
}

/// Checks, before any instance starts, that the discovery namespace and the databases `up` is
/// about to use belong to no other fleet, so that a clash stops `up` itself with one message.
pub async fn claim_cluster(settings: &HostSettings, secret: &[u8]) -> anyhow::Result<()> {
    let fingerprint = cluster_fingerprint::of_secret(secret);
    claim_discovery(settings, discovery(settings).await?.as_ref(), &fingerprint).await?;
    for spec in super::SERVICES.iter().filter(|s| s.needs_database) {
        open_db(settings, spec.name, &fingerprint)
            .await?
            .close()
            .await;
    }
    Ok(())
}

/// Claims the discovery namespace (`--cluster` in etcd) for the fleet with `fingerprint`.
pub async fn claim_discovery(
    settings: &HostSettings,
    discovery: &dyn Discovery,
    fingerprint: &str,
) -> anyhow::Result<()> {
    let recorded = discovery
        .claim_fingerprint(fingerprint)
        .await
        .with_context(|| format!("claiming cluster {:?} in discovery", settings.cluster))?;
    if let Some(found) = recorded {
        let place = format!("cluster {:?} in {}", settings.cluster, settings.discovery);
        cluster_fingerprint::compare(&place, found, fingerprint)?;
    }
    Ok(())
}

/// The event bus: NATS JetStream when configured, otherwise in-process.
pub async fn bus(
    settings: &HostSettings,
    config: &figment::Figment,
    shutdown: &CancellationToken,
) -> anyhow::Result<SharedBus> {
    match &settings.nats_url {
        Some(url) => nats_bus(url, settings, config, shutdown).await,
        None => Ok(Arc::new(InProcessBus::new())),
    }
}

#[cfg(feature = "nats")]
async fn nats_bus(
    url: &str,
    settings: &HostSettings,
    config: &figment::Figment,
    shutdown: &CancellationToken,
) -> anyhow::Result<SharedBus> {
    let nats: flotilla_nats::NatsSettings = flotilla_chassis::config::section(config, "nats")?;
    let bus = flotilla_nats::NatsBus::connect_with(url, &settings.cluster, nats, shutdown.clone())
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    Ok(Arc::new(bus))
}

/// A binary built without NATS (the default, a quicker first build: issue 10) says how to get
/// one that has it.
#[cfg(not(feature = "nats"))]
async fn nats_bus(
    url: &str,
    _: &HostSettings,
    _: &figment::Figment,
    _: &CancellationToken,
) -> anyhow::Result<SharedBus> {
    bail!(
        "--nats-url {url}: this flotilla was built without the NATS event bus; build it with \
         `cargo build --release --features fleet` (or run `cargo run --release --features fleet -- ...`)"
    )
}

/// The discovery backend named by `settings.discovery`; `static` serves the `remote` URLs.
pub async fn discovery(settings: &HostSettings) -> anyhow::Result<Arc<dyn Discovery>> {
    let static_urls: BTreeMap<String, Vec<String>> = settings
        .remote
        .iter()
        .filter(|(_, v)| v.as_str() != DISCOVER)
        .map(|(k, v)| {
            (
                k.clone(),
                v.split(',')
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect(),
            )
        })
        .collect();
    let ds = DiscoverySettings {
        ttl: Duration::from_secs(settings.discovery_ttl_secs.max(1)),
        etcd_credentials: settings.etcd_login()?,
        ..DiscoverySettings::default()
    };
    discovery::from_spec(&settings.discovery, &settings.cluster, &static_urls, &ds)
        .await
        .with_context(|| format!("discovery {:?}", settings.discovery))
}

/// Whether services found nowhere else are looked up in discovery (etcd, DNS) rather than
/// expected in this process.
pub fn discovers(settings: &HostSettings) -> bool {
    settings.discovery != "static"
}

/// Transports for the services that do not run here: balanced over the instances discovery
/// reports (a static list, or a live etcd/DNS view), with outlier ejection and health probes as
/// `[outlier]` configures them; returned with their balancers, which report on the instances.
pub async fn peers(
    settings: &HostSettings,
    local: &[&str],
    all: &[&str],
    discovery: &dyn Discovery,
    pool: &HttpPool,
    registry: InProcessRegistry,
) -> anyhow::Result<(Peers, Vec<Balancer>)> {
    settings
        .outlier
        .validate()
        .context("invalid configuration [outlier]")?;
    let mut balancers = Vec::new();
    for name in all.iter().filter(|n| !local.contains(n)) {
        let configured = settings.remote.get(*name);
        if configured.is_none() && !discovers(settings) {
            continue; // expected in this process (or absent: calls fail fast with 503)
        }
        if configured.is_some_and(|v| v == DISCOVER) && !discovers(settings) {
            bail!(
                "{name} is to be found through discovery, but --discovery is static: give NAME=URL"
            );
        }
        let instances = discovery
            .watch(name)
            .await
            .with_context(|| format!("watching {name}"))?;
        let balancer = Balancer::new(name, instances, pool, settings.outlier.clone());
        balancers.push(balancer);
    }
    let mut peers = Peers::new(registry, HashMap::new());
    for balancer in &balancers {
        let reported = balancer.clone();
        peers.insert_reported(
            balancer.service(),
            balancer.transport(),
            Arc::new(move || serde_json::to_value(reported.snapshot()).unwrap_or_default()),
        );
    }
    Ok((peers, balancers))
}
