//! The Flotilla binary's library half: command line, settings and the host that wires services
//! together. Integration tests start hosts through it exactly as `main` does.

pub mod chaos;
pub mod cli;
pub mod contracts;
pub mod fleet;
pub mod host;
pub mod load;
pub mod output;
pub mod probe;
mod secret;
pub mod settings;
pub mod signal;
pub mod status;
pub mod topology;

use figment::Figment;
use figment::providers::Serialized;

use cli::Common;
use settings::HostSettings;

/// [`settings`] with no command-line options: what a command that only reads the
/// configuration (e.g. `chaos`, for the gateway's address) sees.
pub fn default_settings(config: Figment) -> anyhow::Result<(Figment, HostSettings)> {
    settings(config, &Common::default())
}

/// Merges command-line flags over the layered configuration and extracts the host settings.
pub fn settings(config: Figment, common: &Common) -> anyhow::Result<(Figment, HostSettings)> {
    let mut overrides = serde_json::Map::new();
    if let Some(host) = common.host {
        overrides.insert("host".into(), host.to_string().into());
    }
    if let Some(port) = common.port {
        overrides.insert("port".into(), port.into());
    }
    if let Some(addr) = common.metrics_listen {
        overrides.insert("metrics_listen".into(), addr.to_string().into());
    }
    if let Some(dir) = &common.data_dir {
        overrides.insert("data_dir".into(), dir.display().to_string().into());
    }
    for (key, value) in [
        ("database_url", &common.database_url),
        ("database_prefix", &common.database_prefix),
        ("nats_url", &common.nats_url),
        ("redis_url", &common.redis_url),
        ("discovery", &common.discovery),
        ("cluster", &common.cluster),
    ] {
        if let Some(value) = value {
            overrides.insert(key.into(), value.clone().into());
        }
    }
    let mut telemetry = serde_json::Map::new();
    if let Some(endpoint) = &common.otlp_endpoint {
        telemetry.insert("otlp_endpoint".into(), endpoint.clone().into());
    }
    if let Some(path) = &common.telemetry_db {
        telemetry.insert("db".into(), path.display().to_string().into());
    }
    if !telemetry.is_empty() {
        overrides.insert("telemetry".into(), telemetry.into());
    }
    let mut config = config.merge(Serialized::defaults(serde_json::Value::Object(overrides)));
    for (name, url) in &common.remote {
        config = config.merge(Serialized::default(&format!("remote.{name}"), url));
    }
    let settings: HostSettings = config
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok((config, settings))
}

/// Appends `count` deterministic products to the catalog database under the data directory.
pub async fn seed_catalog(settings: &HostSettings, count: u64) -> anyhow::Result<u64> {
    use flotilla_chassis::db::{Db, PoolSettings};
    flotilla_chassis::private_files::private_dir(&settings.data_dir)?;
    let path = settings
        .data_dir
        .join(format!("{}.db", flotilla_catalog::NAME));
    let db = Db::open_sqlite(&path, &PoolSettings::default()).await?;
    let added =
        flotilla_catalog::seed::seed_products(&db, count, flotilla_chassis::Currency::EUR).await?;
    db.close().await;
    Ok(added)
}
