//! The command line. Flags override the configuration file and `FLOTILLA_*` environment
//! variables, which override the defaults.

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

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

Every flag has a FLOTILLA_* environment equivalent and a key in flotilla.toml; see the README.";

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
        /// Services to serve: identity, catalog, cart, storefront, gateway.
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
        /// Per-service listen address, NAME=HOST:PORT (repeatable).
        #[arg(long, value_name = "NAME=ADDR", value_parser = parse_listen)]
        listen: Vec<(String, SocketAddr)>,
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
    /// Append N deterministic products to the catalog (for large-catalog benchmarks).
    Seed {
        /// How many products to add.
        #[arg(long, value_name = "N")]
        products: u64,
        #[command(flatten)]
        common: Common,
    },
}

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
    /// Reach a service over HTTP at a base URL instead of in-process, NAME=URL (repeatable)
    /// [env: FLOTILLA_REMOTE__<NAME>].
    #[arg(long, value_name = "NAME=URL", value_parser = parse_remote)]
    pub remote: Vec<(String, String)>,
}

fn parse_remote(s: &str) -> Result<(String, String), String> {
    let (name, url) = s.split_once('=').ok_or("expected NAME=URL")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// URL"));
    }
    Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
}

fn parse_listen(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s.split_once('=').ok_or("expected NAME=HOST:PORT")?;
    let addr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    Ok((name.to_owned(), addr))
}
