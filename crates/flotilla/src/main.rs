//! `flotilla`: parses the command line, sets up logging, and hands over to a host.

use clap::Parser;
use figment::providers::Serialized;
use flotilla::cli::{Cli, Command, Common};
use flotilla::host::{GATEWAY, Host, Mode};
use std::io::IsTerminal;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// mimalloc rather than glibc's malloc: per-request allocations were 19 % of the gateway's CPU
/// samples, and the gateway served 26 % more requests a second with it, side by side
/// (docs/benchmarks.md, "The gateway against nginx and HAProxy").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is logged when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info,sqlx=warn";

/// The log filter from `RUST_LOG`: comma-separated `target=level` directives and a bare default
/// level (`info,flotilla_orders=debug,sqlx=warn`). tracing-subscriber's `Targets` rather than
/// `EnvFilter`: the span and field directives `EnvFilter` adds need regex, which was a tenth
/// of a first build's time (issue 10) for a feature logs here do not use.
fn log_filter(rust_log: Option<String>) -> (Targets, Option<String>) {
    let default = || DEFAULT_LOG.parse::<Targets>();
    match rust_log.filter(|text| !text.trim().is_empty()) {
        None => (default().unwrap_or_default(), None),
        Some(text) => match text.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (default().unwrap_or_default(), Some(error.to_string())),
        },
    }
}

/// Whether logs are JSON lines (one object per line, with the request's `request_id`,
/// `trace_id` and `span_id` under `span`): by `FLOTILLA_LOG_FORMAT` (`json`, `text`, `auto`),
/// and with `auto` (the default) when stderr is not a terminal — a collector reads them, not a
/// person. Also the format asked for when it is not one of those.
fn log_as_json(format: Option<&str>, terminal: bool) -> (bool, Option<String>) {
    match format.map(str::trim) {
        Some("json") => (true, None),
        Some("text") => (false, None),
        None | Some("" | "auto") => (!terminal, None),
        Some(other) => (!terminal, Some(other.to_owned())),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (filter, unreadable) = log_filter(std::env::var("RUST_LOG").ok());
    let format = std::env::var("FLOTILLA_LOG_FORMAT").ok();
    let (json, unknown_format) = log_as_json(format.as_deref(), std::io::stderr().is_terminal());
    // One of the two layers is `None`: an `Option` of a layer is a layer that does nothing.
    let (pretty, structured) = if json {
        let layer = fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr);
        (None, Some(layer))
    } else {
        (Some(fmt::layer().with_writer(std::io::stderr)), None)
    };
    tracing_subscriber::registry()
        .with(pretty.with_filter(filter.clone()))
        .with(structured.with_filter(filter))
        .init();
    if let Some(error) = unreadable {
        tracing::warn!(%error, "RUST_LOG is not a list of target=level directives; logging at the default `{DEFAULT_LOG}`");
    }
    if let Some(format) = unknown_format {
        tracing::warn!("FLOTILLA_LOG_FORMAT={format:?} is not json, text or auto; using auto");
    }
    let config = flotilla_chassis::config::load(cli.config.as_deref());
    let command = cli.command.unwrap_or(Command::Run(Common::default()));
    match command {
        Command::Run(common) => {
            let (config, settings) = flotilla::settings(config, &common)?;
            serve(Host::build(config, settings, Mode::Run).await?).await
        }
        Command::Serve {
            services,
            listen,
            common,
        } => {
            let mut config = config;
            for (name, addr) in &listen {
                config = config.merge(Serialized::default(
                    &format!("listen.{name}"),
                    addr.to_string(),
                ));
            }
            let (config, settings) = flotilla::settings(config, &common)?;
            serve(Host::build(config, settings, Mode::Serve(services)).await?).await
        }
        Command::Up { replicas, common } => {
            let (config, settings) = flotilla::settings(config, &common)?;
            // Whether spans already have somewhere to go (a flag, the configuration or the
            // standard OTEL_* variables); if not, `up` sends them to its gateway.
            let export_configured = flotilla_chassis::config::section_over_defaults::<
                flotilla_chassis::telemetry::TelemetryConfig,
            >(&config, "telemetry")?
            .otlp_target(|name| std::env::var(name).ok())
            .map_err(anyhow::Error::msg)?
            .is_some();
            let replicas = replicas.into_iter().flatten().collect();
            let planned = flotilla::fleet::plan(&replicas, settings.host, settings.port)?;
            // Databases are created, migrated and seeded once, before any instance starts.
            let (migrate_config, migrate_settings) = flotilla::settings(
                flotilla_chassis::config::load(cli.config.as_deref()),
                &common,
            )?;
            let host =
                Host::build(migrate_config, migrate_settings, Mode::Migrate(Vec::new())).await?;
            host.shutdown_token().cancel();
            host.run().await?;
            flotilla::fleet::up(
                cli.config.as_deref(),
                &common,
                &settings,
                planned,
                export_configured,
            )
            .await
        }
        Command::Status { common } => {
            let (_, settings) = flotilla::settings(config, &common)?;
            let ready = flotilla::status::status(&settings).await?;
            if !ready {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Migrate { services, common } => {
            let (config, settings) = flotilla::settings(config, &common)?;
            let host = Host::build(config, settings, Mode::Migrate(services)).await?;
            for (name, _) in &host.placement {
                flotilla::report!("{name}: migrated");
            }
            host.shutdown_token().cancel();
            host.run().await
        }
        Command::Openapi { out, common } => {
            let (config, settings) = flotilla::settings(config, &common)?;
            let host = Host::build(config, settings, Mode::Migrate(Vec::new())).await?;
            std::fs::create_dir_all(&out)?;
            for (name, documents) in &host.openapi {
                for (file, document) in [
                    (format!("{name}.json"), &documents.public),
                    (format!("{name}.internal.json"), &documents.internal),
                ] {
                    let path = out.join(file);
                    std::fs::write(&path, serde_json::to_vec_pretty(document)?)?;
                    flotilla::report!("{}", path.display());
                }
            }
            host.shutdown_token().cancel();
            host.run().await
        }
        Command::Contracts(args) => {
            if !flotilla::contracts::run(args).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Proxy {
            listen_api,
            proxy,
            max_proxies,
            max_toxics,
            max_connections,
        } => {
            let limits = flotilla_faultproxy::Limits {
                proxies: max_proxies,
                toxics_per_proxy: max_toxics,
                connections_per_proxy: max_connections,
            };
            fault_proxy(listen_api, proxy, limits).await
        }
        Command::Chaos(args) => flotilla::chaos::run(args, &config).await,
        Command::Load(args) => {
            if !flotilla::load::run(args).await? {
                std::process::exit(flotilla::load::EXIT_VIOLATION);
            }
            Ok(())
        }
        Command::Probe { url } => match flotilla::probe::once(&url).await {
            Ok(status) if status.is_success() => Ok(()),
            Ok(status) => {
                eprintln!("{url}: {status}");
                std::process::exit(1)
            }
            Err(error) => {
                eprintln!("{url}: {error:#}");
                std::process::exit(1)
            }
        },
        Command::Seed { products, common } => {
            let (config, settings) = flotilla::settings(config, &common)?;
            let catalog = vec![flotilla_catalog::NAME.to_owned()];
            let host = Host::build(config, settings.clone(), Mode::Migrate(catalog)).await?;
            host.shutdown_token().cancel();
            host.run().await?;
            let added = flotilla::seed_catalog(&settings, products).await?;
            flotilla::report!("catalog: added {added} products");
            Ok(())
        }
    }
}

/// Prints where everything runs, then serves until Ctrl-C or SIGTERM.
async fn serve(host: Host) -> anyhow::Result<()> {
    flotilla::notice!("{:<14} WHERE", "SERVICE");
    for (name, place) in &host.placement {
        let listener = host.endpoints.iter().find(|e| &e.name == name);
        match listener {
            Some(e) => flotilla::notice!("{name:<14} {}://{}", e.scheme(), e.addr),
            None => flotilla::notice!("{name:<14} {place}"),
        }
    }
    for endpoint in &host.endpoints {
        flotilla::notice!(
            "{} listening on {}://{}",
            endpoint.name,
            endpoint.scheme(),
            endpoint.addr
        );
    }
    match host.endpoints.iter().find(|e| e.name == GATEWAY) {
        Some(gateway) => flotilla::notice!(
            "Flotilla is ready: open {}://{}/ (the {GATEWAY} fronts the services above)",
            gateway.scheme(),
            gateway.addr
        ),
        None => flotilla::notice!("Flotilla is ready."),
    }
    let token = host.shutdown_token();
    tokio::spawn(async move {
        tokio::select! {
            _ = flotilla::signal::wait() => {}
            _ = flotilla::signal::parent_gone() => eprintln!("the supervising flotilla up is gone; stopping"),
        }
        token.cancel();
    });
    host.run().await
}

/// Runs the fault proxy with the proxies given on the command line until Ctrl-C or SIGTERM.
async fn fault_proxy(
    listen_api: std::net::SocketAddr,
    proxies: Vec<(String, String, String)>,
    limits: flotilla_faultproxy::Limits,
) -> anyhow::Result<()> {
    use flotilla_faultproxy::FaultProxy;
    let fault_proxy = FaultProxy::with_limits(limits);
    for (name, listen, upstream) in &proxies {
        let info = fault_proxy
            .create(name, listen, upstream, true)
            .await
            .map_err(|e| anyhow::anyhow!("proxy {name}: {e}"))?;
        flotilla::notice!("proxy {name}: {} -> {}", info.listen, info.upstream);
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let api = flotilla_faultproxy::api::start(
        fault_proxy.clone(),
        &listen_api.to_string(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot listen on {listen_api} for the API: {e}"))?;
    flotilla::notice!(
        "fault proxy API on http://{api} (Toxiproxy's: /proxies, /proxies/NAME/toxics, /reset)"
    );
    flotilla::signal::wait().await;
    shutdown.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_as_json;

    #[test]
    fn logs_are_json_for_collectors_and_text_for_people_unless_told() {
        assert_eq!(log_as_json(None, false), (true, None));
        assert_eq!(log_as_json(None, true), (false, None));
        assert_eq!(log_as_json(Some("json"), true), (true, None));
        assert_eq!(log_as_json(Some("text"), false), (false, None));
        assert_eq!(log_as_json(Some("auto"), true), (false, None));
        assert_eq!(
            log_as_json(Some("xml"), false),
            (true, Some("xml".to_owned()))
        );
    }
}
