//! The command line. Flags override the configuration file and `FLOTILLA_*` environment
//! variables, which override the defaults.

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::settings::DISCOVER;

/// Flotilla: an online shop built as a fleet of small Rust services.
///
/// With no command, `flotilla` runs the whole shop in one process (`flotilla run`).
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./flotilla.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

const EXAMPLES: &str = "\
Examples:
  flotilla                                   the shop at http://localhost:8080, data in ./data
  flotilla run --port 9000 --data-dir /tmp/shop
  flotilla serve cart --port 9003 --remote catalog=http://127.0.0.1:8080/api/catalog
  flotilla run --remote cart=http://127.0.0.1:9003   cart lives in another process
  flotilla seed --products 100000            a large catalog for benchmarks
  flotilla proxy --proxy pg=127.0.0.1:25432=127.0.0.1:5432   a fault proxy before PostgreSQL
  flotilla chaos shipping --latency 5s --rate 0.5 --for 60s   slow down half of shipping's requests
  flotilla load --rate 200 --duration 30s    load the shop and check its invariants

Every flag has a FLOTILLA_* environment equivalent and a key in flotilla.toml; see the README.";

/// `serve`'s help for its services, read from [`crate::host::SERVICES`] so that a service added
/// there is listed here too (the hand-written list had fallen four services behind).
fn serve_help() -> String {
    let names: Vec<&str> = crate::host::SERVICES
        .iter()
        .map(|spec| spec.name)
        .chain([crate::host::GATEWAY])
        .collect();
    format!("Services to serve: {}", names.join(", "))
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in this process behind the gateway: the shop at http://HOST:PORT.
    ///
    /// Storage is one SQLite file per service under --data-dir. A service given with
    /// --remote is reached over HTTP at that URL instead of being run here.
    Run(Common),
    /// Serve only the named services, each on its own port, reaching the others over HTTP.
    ///
    /// Services get consecutive ports from --port (or --listen NAME=ADDR each). Services not
    /// served here must be given with --remote NAME=URL; a `flotilla run` process exposes its
    /// services at http://HOST:PORT/api/NAME. Callers must present a service credential
    /// (same --data-dir or FLOTILLA_SERVICE_SECRET).
    Serve {
        #[arg(required = true, value_name = "SERVICE", help = serve_help())]
        services: Vec<String>,
        /// Per-service listen address, NAME=HOST:PORT (repeatable).
        #[arg(long, value_name = "NAME=ADDR", value_parser = parse_listen)]
        listen: Vec<(String, SocketAddr)>,
        #[command(flatten)]
        common: Common,
    },
    /// Start a local fleet: every service instance its own OS process, then supervise them.
    ///
    /// The gateway listens on --port and the instances on the ports after it (free ports with
    /// --port 0). Events travel through NATS (--nats-url is required); storage is SQLite files
    /// shared by a service's replicas, or PostgreSQL with --database-url. Ctrl-C stops them all.
    Up {
        /// Replicas per service, e.g. catalog=3,cart=2 (default 1 each).
        #[arg(long, value_name = "NAME=N,...", value_parser = parse_replicas)]
        replicas: Vec<Vec<(String, u16)>>,
        #[command(flatten)]
        common: Common,
    },
    /// List services, their instances (from discovery) and the health of each.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Create or upgrade each service's database (and seed the catalog), then exit.
    Migrate {
        /// Services to migrate (default: all).
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Write each service's OpenAPI documents to DIR, then exit: NAME.json (public, what the
    /// gateway serves under /api/NAME) and NAME.internal.json (service-to-service only).
    Openapi {
        /// Directory to write the documents into (created when missing).
        #[arg(long, value_name = "DIR", default_value = "openapi")]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Check the services' contracts (OpenAPI documents and event schemas) against the last
    /// released snapshots under contracts/, or rewrite those snapshots.
    ///
    /// `check` exits 1 listing every breaking change (a removed operation, field, status or
    /// event; a narrowed type; a new required input...) of a service whose CONTRACT_VERSION
    /// (in its contract.rs) was not raised. Additive changes pass. `snapshot` rewrites the
    /// snapshots, and refuses a breaking change under an unchanged version.
    Contracts(crate::contracts::ContractsArgs),
    /// Inject a fault into a running service (through the gateway), list its faults, or clear
    /// them.
    ///
    /// Latency (--latency, --jitter), an error status (--status) or an aborted connection
    /// (--abort), on the service's own routes (all but its probes and admin routes, or one
    /// --route) or on its calls to a peer (--upstream), for a share of requests (--rate) until
    /// it expires (--for, default 60s, at most 1h). Needs an admin: FLOTILLA_ADMIN_TOKEN, or
    /// FLOTILLA_ADMIN_EMAIL and FLOTILLA_ADMIN_PASSWORD. Faults live in each instance's memory;
    /// with replicas, one call reaches one instance.
    #[command(after_help = CHAOS_EXAMPLES)]
    Chaos(crate::chaos::ChaosArgs),
    /// Drive a running shop through its gateway with user journeys, measure latency from
    /// intended start times, and check the shop's invariants.
    ///
    /// Open loop at --rate journeys a second (constant, or stepped: 100..1000/step 100), or
    /// closed loop with --users. Prints a report per step (a table, or JSON with --json). Exit
    /// status: 0 when every invariant held, 3 when one was violated, 1 when the run could not
    /// be made. See the README, "flotilla load".
    #[command(after_help = LOAD_EXAMPLES)]
    Load(crate::load::args::LoadArgs),
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise (within 2 s): the container image's
    /// health check, which has no curl (`HEALTHCHECK CMD ["flotilla", "probe"]`).
    Probe {
        /// What to probe.
        #[arg(value_name = "URL", default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
    /// Append N deterministic products to the catalog (for large-catalog benchmarks).
    Seed {
        /// How many products to add.
        #[arg(long, value_name = "N")]
        products: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Run a TCP fault proxy with Toxiproxy's toxics, controlled over HTTP (Toxiproxy's API).
    ///
    /// Put it on a link by pointing the client at a proxy's listen address; then add toxics,
    /// e.g. `curl -d '{"type":"latency","attributes":{"latency":500}}'
    /// http://127.0.0.1:8474/proxies/pg/toxics`. See the README, "Fault proxy".
    Proxy {
        /// Address of the control API.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
        listen_api: SocketAddr,
        /// A proxy to create at start, NAME=LISTEN=UPSTREAM, e.g.
        /// pg=127.0.0.1:25432=127.0.0.1:5432 (repeatable; LISTEN may use port 0).
        #[arg(long, value_name = "NAME=LISTEN=UPSTREAM", value_parser = parse_proxy)]
        proxy: Vec<(String, String, String)>,
        /// Proxies at most; creating one more is refused with 409 (each proxy holds a socket).
        #[arg(long, value_name = "N", default_value_t = flotilla_faultproxy::Limits::PROXIES)]
        max_proxies: usize,
        /// Toxics per proxy at most; adding one more is refused with 409.
        #[arg(long, value_name = "N", default_value_t = flotilla_faultproxy::Limits::TOXICS_PER_PROXY)]
        max_toxics: usize,
        /// Open connections per proxy at most (each holds two sockets); one more is closed at
        /// once.
        #[arg(long, value_name = "N", default_value_t = flotilla_faultproxy::Limits::CONNECTIONS_PER_PROXY)]
        max_connections: usize,
    },
}

const CHAOS_EXAMPLES: &str = "\
Examples:
  flotilla chaos shipping --latency 5s --rate 0.5 --for 60s
  flotilla chaos catalog --route GET:/products/{id} --status 503 --rate 50%
  flotilla chaos orders --upstream payments --abort --for 30s
  flotilla chaos shipping --list
  flotilla chaos shipping --clear            (all)   --clear flt_…   (one)";

const LOAD_EXAMPLES: &str = "\
Examples:
  flotilla load --rate 200 --duration 30s                 200 journeys/s for 30 s
  flotilla load --rate 100..1000/step 100 --step-duration 20s --json > steps.json
  flotilla load --users 50 --duration 1m                  closed loop, 50 users
  flotilla load --mix checkout=1 --rate 20 --order-deadline 10s";

/// Options every command takes.
#[derive(Debug, Args, Default, Clone)]
pub struct Common {
    /// Address to listen on [env: FLOTILLA_HOST] [default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Gateway port for `run`, first port for `serve` [env: FLOTILLA_PORT] [default: 8080];
    /// 0 picks a free port.
    #[arg(long, short, value_name = "PORT")]
    pub port: Option<u16>,
    /// Directory for the SQLite files [env: FLOTILLA_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Reach a service over HTTP instead of in-process: NAME=URL for a fixed address, or just
    /// NAME to find its instances through discovery (repeatable) [env: FLOTILLA_REMOTE__<NAME>].
    #[arg(long, value_name = "NAME[=URL]", value_parser = parse_remote)]
    pub remote: Vec<(String, String)>,
    /// PostgreSQL server for every service's database, e.g. postgres://user@host:5432
    /// [env: FLOTILLA_DATABASE_URL] [default: SQLite files under --data-dir].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Prefix of the per-service PostgreSQL databases: <prefix>_<service>
    /// [env: FLOTILLA_DATABASE_PREFIX] [default: flotilla].
    #[arg(long, value_name = "PREFIX")]
    pub database_prefix: Option<String>,
    /// NATS server with JetStream for events between processes, e.g. nats://127.0.0.1:4222
    /// [env: FLOTILLA_NATS_URL] [default: in-process events].
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// Redis for the rate limits every gateway replica shares, e.g. redis://127.0.0.1:6379
    /// [env: FLOTILLA_REDIS_URL] [default: each gateway counts alone].
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Also send spans with OTLP/HTTP (JSON) to this base URL (`/v1/traces` is appended), e.g.
    /// a collector at http://127.0.0.1:4318 or a Flotilla gateway's receiver at
    /// http://HOST:PORT/api/gateway/otlp [env: OTEL_EXPORTER_OTLP_ENDPOINT] [default: none].
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Also keep the spans of the telemetry store in this SQLite file (created if missing), so
    /// that the traces of before a restart are still shown [env: FLOTILLA_TELEMETRY__DB]
    /// [default: memory only].
    #[arg(long, value_name = "PATH")]
    pub telemetry_db: Option<PathBuf>,
    /// Service discovery: static, etcd://host:port, or dns://{service}.ns.svc.cluster.local:PORT
    /// [env: FLOTILLA_DISCOVERY] [default: static].
    #[arg(long, value_name = "SPEC")]
    pub discovery: Option<String>,
    /// Serve `GET /metrics` (Prometheus text, every service of the process) on this address
    /// [env: FLOTILLA_METRICS_LISTEN] [default: 127.0.0.1:9464 for `run`, none for `serve`].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Deployment name: NATS stream/subject and etcd key prefix [env: FLOTILLA_CLUSTER]
    /// [default: flotilla].
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

fn parse_remote(s: &str) -> Result<(String, String), String> {
    let Some((name, urls)) = s.split_once('=') else {
        return Ok((s.to_owned(), DISCOVER.to_owned()));
    };
    for url in urls.split(',') {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http:// URL"));
        }
    }
    Ok((name.to_owned(), urls.trim_end_matches('/').to_owned()))
}

fn parse_replicas(s: &str) -> Result<Vec<(String, u16)>, String> {
    s.split(',')
        .map(|pair| {
            let (name, n) = pair.split_once('=').ok_or("expected NAME=N")?;
            let n: u16 = n.parse().map_err(|_| format!("{n:?} is not a count"))?;
            if n == 0 || n > 32 {
                return Err(format!("replicas of {name} must be 1 to 32"));
            }
            Ok((name.to_owned(), n))
        })
        .collect()
}

fn parse_proxy(s: &str) -> Result<(String, String, String), String> {
    let mut parts = s.splitn(3, '=');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(listen), Some(upstream))
            if !name.is_empty() && !listen.is_empty() && !upstream.is_empty() =>
        {
            Ok((name.to_owned(), listen.to_owned(), upstream.to_owned()))
        }
        _ => Err("expected NAME=LISTEN=UPSTREAM, e.g. pg=127.0.0.1:0=127.0.0.1:5432".to_owned()),
    }
}

fn parse_listen(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s.split_once('=').ok_or("expected NAME=HOST:PORT")?;
    let addr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    Ok((name.to_owned(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn serve_help_lists_every_service_and_the_gateway() {
        let mut cli = Cli::command();
        let serve = cli
            .find_subcommand_mut("serve")
            .expect("serve is a subcommand");
        let help = serve.render_long_help().to_string();
        for spec in crate::host::SERVICES {
            assert!(
                help.contains(spec.name),
                "{} missing from:\n{help}",
                spec.name
            );
        }
        assert!(
            help.contains(crate::host::GATEWAY),
            "gateway missing from:\n{help}"
        );
        // The services this test was written for, in case SERVICES itself loses one.
        for name in [
            "inventory",
            "payments",
            "shipping",
            "orders",
            "notifications",
        ] {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
    }
}
