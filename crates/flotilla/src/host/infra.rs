//! The outside world a host connects its services to, chosen by configuration: storage (SQLite
//! files or a PostgreSQL server), the event bus (in-process or NATS JetStream), and discovery
//! (static URLs, etcd or DNS) with the transports to services that run elsewhere.

use anyhow::{Context, bail};
use flotilla_chassis::db::{Db, PoolSettings};
use flotilla_chassis::discovery::{self, Discovery, DiscoverySettings};
use flotilla_chassis::events::{InProcessBus, NatsBus, NatsSettings, SharedBus};
use flotilla_chassis::transport::balanced::balanced;
use flotilla_chassis::transport::http::HttpPool;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::transport::{Peers, Transport};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::cli::DISCOVER;
use crate::settings::HostSettings;

/// Opens the database of `service`: `<data_dir>/<service>.db`, or `<prefix>_<service>` on the
/// configured PostgreSQL server (created and migrated there by the service at start).
pub async fn open_db(settings: &HostSettings, service: &str) -> anyhow::Result<Db> {
    let pool = PoolSettings {
        max_connections: settings.database.max_connections,
        ..PoolSettings::default()
    };
    match &settings.database_url {
        Some(url) => {
            let name = format!("{}_{}", settings.database_prefix, service);
            Db::open_postgres(url, &name, &pool)
                .await
                .with_context(|| format!("opening PostgreSQL database {name}"))
        }
        None => {
            let path = settings.data_dir.join(format!("{service}.db"));
            Db::open_sqlite(&path, &pool)
                .await
                .with_context(|| format!("opening {}", path.display()))
        }
    }
}

/// The event bus: NATS JetStream when configured (returned twice: as the bus, and as itself so
/// the host can wait for its consumers to stop), otherwise in-process.
pub async fn bus(
    settings: &HostSettings,
    nats: NatsSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SharedBus, Option<Arc<NatsBus>>)> {
    Ok(match &settings.nats_url {
        Some(url) => {
            let bus = Arc::new(
                NatsBus::connect_with(url, &settings.cluster, nats, shutdown.clone())
                    .await
                    .with_context(|| format!("connecting to NATS at {url}"))?,
            );
            (bus.clone(), Some(bus))
        }
        None => (Arc::new(InProcessBus::new()), None),
    })
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
/// reports (a static list, or a live etcd/DNS view).
pub async fn peers(
    settings: &HostSettings,
    local: &[&str],
    all: &[&str],
    discovery: &dyn Discovery,
    pool: &HttpPool,
    registry: InProcessRegistry,
) -> anyhow::Result<Peers> {
    let mut remote: HashMap<String, Transport> = HashMap::new();
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
        remote.insert((*name).to_owned(), balanced(name, instances, pool));
    }
    Ok(Peers::new(registry, remote))
}
