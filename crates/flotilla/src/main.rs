//! `flotilla`: parses the command line, sets up logging, and hands over to a host.

use clap::Parser;
use figment::providers::Serialized;
use flotilla::cli::{Cli, Command, Common};
use flotilla::host::{GATEWAY, Host, Mode};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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
            let (_, settings) = flotilla::settings(config, &common)?;
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
            flotilla::fleet::up(cli.config.as_deref(), &common, &settings, planned).await
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
                println!("{name}: migrated");
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
                    println!("{}", path.display());
                }
            }
            host.shutdown_token().cancel();
            host.run().await
        }
        Command::Chaos(args) => flotilla::chaos::run(args, &config).await,
        Command::Seed { products, common } => {
            let (config, settings) = flotilla::settings(config, &common)?;
            let catalog = vec![flotilla_catalog::NAME.to_owned()];
            let host = Host::build(config, settings.clone(), Mode::Migrate(catalog)).await?;
            host.shutdown_token().cancel();
            host.run().await?;
            let added = flotilla::seed_catalog(&settings, products).await?;
            println!("catalog: added {added} products");
            Ok(())
        }
    }
}

/// Prints where everything runs, then serves until Ctrl-C or SIGTERM.
async fn serve(host: Host) -> anyhow::Result<()> {
    println!("{:<12} WHERE", "SERVICE");
    for (name, place) in &host.placement {
        let listener = host.endpoints.iter().find(|e| &e.name == name);
        match listener {
            Some(e) => println!("{name:<12} http://{}", e.addr),
            None => println!("{name:<12} {place}"),
        }
    }
    for endpoint in &host.endpoints {
        println!("{} listening on http://{}", endpoint.name, endpoint.addr);
    }
    match host.gateway_addr() {
        Some(addr) => println!(
            "Flotilla is ready: open http://{addr}/ (the {GATEWAY} fronts the services above)"
        ),
        None => println!("Flotilla is ready."),
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
