//! A host: one OS process running some of Flotilla's services and deciding how they meet the
//! world. `run` mounts every service in-process behind the gateway on one port; `serve` gives
//! each named service its own listener. Business code is identical in both; only this wiring
//! differs.

use anyhow::{Context, bail};
use axum::Router;
use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::config::section;
use flotilla_chassis::db::Db;
use flotilla_chassis::events::{InProcessBus, SharedBus};
use flotilla_chassis::launch::{LaunchEnv, launch};
use flotilla_chassis::metrics::Metrics;
use flotilla_chassis::resilience::collector::ResilienceCollector;
use flotilla_chassis::resilience::stack::{Policies, Resilience};
use flotilla_chassis::server::{ConnectionLimits, Server, TlsAcceptor};
use flotilla_chassis::service::{BackgroundTask, ServiceSpec};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::Peers;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::trust::TrustPolicy;
use flotilla_discovery::{Balancer, Discovery, Registration};
use flotilla_gateway::{
    Authenticator, Gateway, GatewayConfig, KeyCache, RateLimitConfig, RateLimiter, RoutePolicy,
};
use flotilla_identity::IdentityConfig;
use flotilla_identity::client::IdentityClient;
use flotilla_identity::token::TokenVerifier;
use flotilla_storefront::StorefrontConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::settings::HostSettings;

mod advertise;
mod infra;

/// The discovery backend `settings` name (for `flotilla status`).
pub async fn discovery_for(settings: &HostSettings) -> anyhow::Result<Arc<dyn Discovery>> {
    infra::discovery(settings).await
}

/// Refuses to start `up` on a cluster or databases another fleet (another service secret)
/// already uses.
pub async fn claim_cluster(settings: &HostSettings, secret: &[u8]) -> anyhow::Result<()> {
    infra::claim_cluster(settings, secret).await
}

/// Every service Flotilla has, in start order.
pub const SERVICES: &[ServiceSpec] = &[
    flotilla_identity::SPEC,
    flotilla_catalog::SPEC,
    flotilla_cart::SPEC,
    flotilla_inventory::SPEC,
    flotilla_payments::SPEC,
    flotilla_shipping::SPEC,
    flotilla_orders::SPEC,
    flotilla_notifications::SPEC,
    flotilla_storefront::SPEC,
];

/// The gateway's name where a name is needed (`serve gateway`).
pub const GATEWAY: &str = "gateway";

/// The name of the metrics listener's endpoint (never announced in discovery).
pub const METRICS: &str = "metrics";

/// The name of the gateway's OTLP receiver's own listener (`gateway.otlp_port`; never
/// announced in discovery).
pub const GATEWAY_OTLP: &str = "gateway-otlp";

/// Which services this process runs and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everything (except services configured as remote) in-process, behind the gateway.
    Run,
    /// Only these services (and optionally `gateway`), each on its own listener.
    Serve(Vec<String>),
    /// Start the named services' storage (migrate, seed) and stop.
    Migrate(Vec<String>),
}

/// One bound listener and what it serves.
pub struct Endpoint {
    /// `gateway` or a service name.
    pub name: String,
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    listener: TcpListener,
    router: Router,
    /// TLS on this listener (the gateway's, when `[tls]` is configured).
    tls: Option<TlsAcceptor>,
}

impl Endpoint {
    /// `https` on a TLS listener, `http` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// A built host, ready to serve.
pub struct Host {
    /// Listeners, in start order.
    pub endpoints: Vec<Endpoint>,
    /// Where each service lives, for the start-up table: (name, "in-process" or URL).
    pub placement: Vec<(String, String)>,
    tasks: Vec<BackgroundTask>,
    dbs: Vec<Db>,
    registrations: Vec<Registration>,
    discovery: Arc<dyn Discovery>,
    bus: SharedBus,
    deregister_grace: Duration,
    /// The balancer of each service reached over the network, for the resilience report
    /// (instances, ejections, counters: [`Balancer::snapshot`]).
    pub balancers: Vec<Balancer>,
    /// Each local service's OpenAPI document (the gateway exposes what they publish).
    pub openapi: std::collections::HashMap<&'static str, flotilla_chassis::openapi::Documents>,
    shutdown: CancellationToken,
    drain: Duration,
    server: Server,
    inherited_listener: Option<String>,
}

/// Who this process is to the rest of the fleet: the credentials it mints for its calls, and the
/// fingerprint of the fleet's secret that databases and discovery are claimed with.
struct ProcessIdentity {
    credentials: Arc<ServiceCredentials>,
    fingerprint: String,
}

impl ProcessIdentity {
    /// The header this process's spans carry to a gateway's OTLP receiver: a fresh service
    /// credential for the gateway each time.
    fn otlp_credential(&self) -> flotilla_chassis::telemetry::otlp::Credential {
        let credentials = Arc::clone(&self.credentials);
        Arc::new(move || {
            let token = credentials.token("gateway", None);
            let value = axum::http::HeaderValue::from_str(&token).ok()?;
            Some((
                flotilla_chassis::service_credential::SERVICE_TOKEN.clone(),
                value,
            ))
        })
    }

    /// Creates the data directory and loads (or creates) the fleet's secret in it.
    fn load(settings: &HostSettings, mode: &Mode) -> anyhow::Result<Self> {
        flotilla_chassis::private_files::private_dir(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let secret =
            crate::secret::load_or_create(settings.service_secret.as_deref(), &settings.data_dir)?;
        let process = match mode {
            Mode::Run => "flotilla-run".to_owned(),
            Mode::Serve(names) | Mode::Migrate(names) => {
                format!("flotilla-serve:{}", names.join(","))
            }
        };
        Ok(Self {
            credentials: Arc::new(ServiceCredentials::new(&secret, process)),
            fingerprint: flotilla_chassis::cluster_fingerprint::of_secret(&secret),
        })
    }
}

/// What the local services are connected to: discovery, their peers (in-process or remote) and
/// the event bus. The host builds these, so that the chassis's `launch` needs neither NATS nor
/// discovery, only the `Peers` and `SharedBus` they become.
struct Wiring {
    discovery: Arc<dyn Discovery>,
    registry: InProcessRegistry,
    peers: Peers,
    balancers: Vec<Balancer>,
    bus: SharedBus,
}

impl Wiring {
    /// Claims the discovery namespace, builds transports to the services that run elsewhere,
    /// and connects the bus (none for `migrate`, which delivers nothing).
    async fn connect(
        config: &figment::Figment,
        settings: &HostSettings,
        mode: &Mode,
        identity: &ProcessIdentity,
        local: &[ServiceSpec],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let discovery = infra::discovery(settings).await?;
        infra::claim_discovery(settings, discovery.as_ref(), &identity.fingerprint).await?;
        let registry = InProcessRegistry::default();
        let pool = HttpPool::new(identity.credentials.clone(), HttpSettings::default());
        let local_names: Vec<&str> = local.iter().map(|s| s.name).collect();
        let all_names: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
        // Checked here once, so that a typo stops the process before anything starts.
        let policies = Policies::load(config)?;
        if let Some(unknown) = policies.named().find(|n| !all_names.contains(n)) {
            bail!(
                "[resilience.upstreams.{unknown}]: there is no service {unknown:?}; known: {}",
                known()
            );
        }
        let (peers, balancers) = infra::peers(
            settings,
            &local_names,
            &all_names,
            discovery.as_ref(),
            &pool,
            registry.clone(),
        )
        .await?;
        let bus: SharedBus = if matches!(mode, Mode::Migrate(_)) {
            Arc::new(InProcessBus::new())
        } else {
            infra::bus(settings, config, shutdown).await?
        };
        Ok(Self {
            discovery,
            registry,
            peers,
            balancers,
            bus,
        })
    }
}

impl Host {
    /// Opens storage, starts services and binds listeners: the process's identity, its wiring
    /// to the outside, the local services, the placement table, the listeners, discovery.
    pub async fn build(
        config: figment::Figment,
        settings: HostSettings,
        mode: Mode,
    ) -> anyhow::Result<Self> {
        let identity = ProcessIdentity::load(&settings, &mode)?;
        flotilla_chassis::config::section_over_defaults::<
            flotilla_chassis::telemetry::TelemetryConfig,
        >(&config, "telemetry")?
        .install(Some(identity.otlp_credential()))
        .await
        .map_err(anyhow::Error::msg)?;
        // Before any service starts: handles made before the recorder record nothing.
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let clock: SharedClock = Arc::new(SystemClock);
        let (local, with_gateway) = local_services(&mode, &settings)?;
        let wiring =
            Wiring::connect(&config, &settings, &mode, &identity, &local, &shutdown).await?;
        let env = LaunchEnv {
            config: config.clone(),
            peers: wiring.peers.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            limits: settings.limits,
            trust: TrustPolicy {
                credentials: Some(identity.credentials.clone()),
                require_credential: !matches!(mode, Mode::Run),
            },
            bus: wiring.bus.clone(),
            relay: section(&config, "events")?,
            metrics: metrics.clone(),
        };
        let mut host = Host::new(&settings, &wiring, shutdown);
        let routers = host
            .start_services(&local, &env, &wiring.registry, &settings, &identity)
            .await?;
        host.placement = placement(&settings, &local);
        if matches!(mode, Mode::Migrate(_)) {
            return Ok(host);
        }
        let gateway = if with_gateway {
            let credentials = identity.credentials.clone();
            let gateway = build_gateway(
                &config,
                &settings,
                &wiring.peers,
                clock,
                credentials,
                &metrics,
            )?;
            Some(gateway.draining_on(host.shutdown.clone()))
        } else {
            None
        };
        let otlp_port = section::<GatewayConfig>(&config, GATEWAY)?.otlp_port;
        host.bind_listeners(&settings, &mode, gateway, otlp_port, routers)
            .await?;
        host.bind_metrics(&settings, &mode, &metrics).await?;
        if let Some(name) = &host.inherited_listener {
            bail!("this process was handed a listener for {name}, which it does not serve");
        }
        host.register(&settings, &mode).await?;
        Ok(host)
    }

    /// A host with nothing started yet.
    fn new(settings: &HostSettings, wiring: &Wiring, shutdown: CancellationToken) -> Self {
        Host {
            endpoints: Vec::new(),
            placement: Vec::new(),
            tasks: Vec::new(),
            dbs: Vec::new(),
            openapi: std::collections::HashMap::new(),
            registrations: Vec::new(),
            discovery: wiring.discovery.clone(),
            balancers: wiring.balancers.clone(),
            bus: wiring.bus.clone(),
            deregister_grace: Duration::from_millis(settings.deregister_grace_ms),
            shutdown,
            drain: Duration::from_secs(settings.drain_secs),
            server: Server::new(fit_file_limit(settings.connections)),
            inherited_listener: settings.inherited_listener.clone(),
        }
    }

    /// Opens each local service's database and launches it, registering it for in-process
    /// calls; returns each one's finished router.
    async fn start_services(
        &mut self,
        local: &[ServiceSpec],
        env: &LaunchEnv,
        registry: &InProcessRegistry,
        settings: &HostSettings,
        identity: &ProcessIdentity,
    ) -> anyhow::Result<Vec<(&'static str, Router)>> {
        let mut routers = Vec::new();
        for spec in local {
            let db = if spec.needs_database {
                let db = infra::open_db(settings, spec.name, &identity.fingerprint).await?;
                self.dbs.push(db.clone());
                Some(db)
            } else {
                None
            };
            let launched = launch(spec, env, db)
                .await
                .with_context(|| format!("starting {}", spec.name))?;
            registry.register(spec.name, launched.router.clone());
            self.tasks.extend(launched.tasks);
            self.openapi.insert(spec.name, launched.openapi);
            routers.push((spec.name, launched.router));
        }
        Ok(routers)
    }

    /// Binds the gateway's listener (on `--port` in `run`) and its OTLP receiver's on
    /// `otlp_port` when given, and, in `serve`, one per service: its `--listen` address or the
    /// next port up.
    async fn bind_listeners(
        &mut self,
        settings: &HostSettings,
        mode: &Mode,
        gateway: Option<Gateway>,
        otlp_port: Option<u16>,
        routers: Vec<(&'static str, Router)>,
    ) -> anyhow::Result<()> {
        let with_gateway = gateway.is_some();
        if let Some(gateway) = gateway {
            let port = match mode {
                Mode::Run => settings.port,
                _ => settings
                    .listen
                    .get(GATEWAY)
                    .map(|a| a.port())
                    .unwrap_or(settings.port),
            };
            let addr = settings
                .listen
                .get(GATEWAY)
                .copied()
                .unwrap_or(SocketAddr::new(settings.host, port));
            let routers = gateway.into_routers(settings.limits);
            self.bind(GATEWAY, addr, routers.public).await?;
            if let Some(tls) = &settings.tls
                && let Some(endpoint) = self.endpoints.last_mut()
            {
                let acceptor = tls.acceptor().context("setting up the gateway's TLS")?;
                endpoint.tls = Some(acceptor);
            }
            // Plain HTTP on the cluster's network, like the services' own listeners.
            if let Some(port) = otlp_port {
                let addr = SocketAddr::new(addr.ip(), port);
                self.bind(GATEWAY_OTLP, addr, routers.otlp).await?;
            }
        }
        if let Mode::Serve(_) = mode {
            let mut next_port = settings.port.saturating_add(u16::from(with_gateway));
            for (name, router) in routers {
                let addr = match settings.listen.get(name) {
                    Some(addr) => *addr,
                    None => {
                        let addr = SocketAddr::new(settings.host, next_port);
                        if next_port != 0 {
                            next_port = next_port.saturating_add(1);
                        }
                        addr
                    }
                };
                self.bind(name, addr, router).await?;
            }
        }
        Ok(())
    }

    /// Binds the metrics listener: the configured address, or in `run` the default one when it
    /// is free (a second shop on one machine goes on without, and says so).
    async fn bind_metrics(
        &mut self,
        settings: &HostSettings,
        mode: &Mode,
        metrics: &Metrics,
    ) -> anyhow::Result<()> {
        let router = metrics.routes();
        match (settings.metrics_listen, mode) {
            (Some(addr), _) => self.bind(METRICS, addr, router).await,
            (None, Mode::Run) => {
                let addr = crate::settings::DEFAULT_METRICS_LISTEN;
                if let Err(err) = self.bind(METRICS, addr, router).await {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "no metrics listener (set --metrics-listen to choose another address)"
                    );
                }
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }

    /// The metrics listener's address, when this host has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|e| e.name == METRICS)
            .map(|e| e.addr)
    }

    /// Announces this process's listeners in discovery: each served service (and the gateway)
    /// at its own address; in `run` mode, each local service behind this gateway's `/api/<name>`
    /// (the gateway passes credentialed calls from other Flotilla processes straight through).
    async fn register(&mut self, settings: &HostSettings, mode: &Mode) -> anyhow::Result<()> {
        if !infra::discovers(settings) {
            return Ok(());
        }
        let advertise = |addr: SocketAddr| advertise::url(settings.advertise_host.as_deref(), addr);
        let mut announced = Vec::new();
        match mode {
            Mode::Run => {
                if let Some(addr) = self.gateway_addr() {
                    let base = advertise(addr);
                    for (name, place) in &self.placement {
                        if place == "in-process" {
                            announced.push((name.clone(), format!("{base}/api/{name}")));
                        }
                    }
                }
            }
            _ => {
                for e in self
                    .endpoints
                    .iter()
                    .filter(|e| e.name != METRICS && e.name != GATEWAY_OTLP)
                {
                    announced.push((e.name.clone(), advertise(e.addr)));
                }
            }
        }
        for (name, url) in announced {
            let registration = self
                .discovery
                .register(&name, &url)
                .await
                .with_context(|| format!("registering {name} at {url}"))?;
            self.registrations.push(registration);
        }
        Ok(())
    }

    /// Binds `name`'s listener, or takes the socket handed over on standard input for it.
    async fn bind(&mut self, name: &str, addr: SocketAddr, router: Router) -> anyhow::Result<()> {
        let listener = if self.inherited_listener.as_deref() == Some(name) {
            self.inherited_listener = None;
            inherited_listener().with_context(|| format!("taking over {name}'s listener"))?
        } else {
            let listener = flotilla_chassis::server::bind(addr)
                .with_context(|| format!("binding {name} to {addr}"))?;
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)?
        };
        let addr = listener.local_addr()?;
        self.endpoints.push(Endpoint {
            name: name.to_owned(),
            addr,
            listener,
            router,
            tls: None,
        });
        Ok(())
    }

    /// The token that stops this host; cancel it to shut down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The gateway's address, when this host runs one.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|e| e.name == GATEWAY)
            .map(|e| e.addr)
    }

    /// Serves until the shutdown token is cancelled, then drains: listeners stop accepting,
    /// in-flight requests get the drain time to finish, background tasks stop, storage closes.
    pub async fn run(self) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        for task in self.tasks {
            tracker.spawn(task);
        }
        let mut servers = tokio::task::JoinSet::new();
        // Listeners stop on their own token: after the host has left discovery, not at the signal.
        let stop_serving = CancellationToken::new();
        for endpoint in self.endpoints {
            let stop = stop_serving.clone();
            let server = self.server.clone();
            servers.spawn(async move {
                server
                    .serve_with(endpoint.listener, endpoint.router, stop, endpoint.tls)
                    .await
            });
        }
        self.shutdown.cancelled().await;
        // Leave discovery first, so that callers stop choosing this instance while it still
        // answers the requests already on their way; then stop accepting and drain.
        let leaving = !self.registrations.is_empty();
        for registration in self.registrations {
            registration.deregister().await;
        }
        if leaving {
            tokio::time::sleep(self.deregister_grace).await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        stop_serving.cancel();
        let drained = tokio::time::timeout(self.drain, async {
            while servers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("drain timeout reached; abandoning remaining requests");
            servers.abort_all();
        }
        tracker.close();
        let _ = tokio::time::timeout(self.drain, tracker.wait()).await;
        // Consumers finish (and ack) the event in hand before storage closes.
        let _ = tokio::time::timeout(self.drain, self.bus.stopped()).await;
        for db in self.dbs {
            db.close().await;
        }
        // The spans of the last requests, into the telemetry database (with one).
        if let Some(telemetry) = flotilla_chassis::telemetry::installed() {
            let _ = tokio::time::timeout(self.drain, telemetry.store().flush()).await;
        }
        Ok(())
    }
}

/// Where each service lives, for the start-up table: in this process, at a configured URL, or
/// found through discovery; services found nowhere are left out.
fn placement(settings: &HostSettings, local: &[ServiceSpec]) -> Vec<(String, String)> {
    SERVICES
        .iter()
        .filter_map(|spec| {
            let place = match settings.remote.get(spec.name) {
                Some(url) if url == crate::settings::DISCOVER => {
                    format!("via {}", settings.discovery)
                }
                Some(url) => url.clone(),
                None if local.iter().any(|s| s.name == spec.name) => "in-process".to_owned(),
                None if infra::discovers(settings) => format!("via {}", settings.discovery),
                None => return None,
            };
            Some((spec.name.to_owned(), place))
        })
        .collect()
}

/// The listening socket `flotilla up` handed this process as its standard input.
fn inherited_listener() -> anyhow::Result<TcpListener> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("standard input is closed")?;
    let listener = std::net::TcpListener::from(fd);
    listener
        .local_addr()
        .context("standard input is not a TCP socket")?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// File descriptors kept for what is not a served connection (databases, NATS, etcd, calls to
/// other services): a quarter of the file limit, at most this many.
const RESERVED_FDS: u64 = 256;

/// `limits` with `max` lowered to what the process's file limit allows: a cap above it would
/// let accepted connections take the descriptors that health checks and databases need.
fn fit_file_limit(mut limits: ConnectionLimits) -> ConnectionLimits {
    use nix::sys::resource::{Resource, getrlimit};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let reserved = RESERVED_FDS.min(soft / 4);
        let room = usize::try_from(soft.saturating_sub(reserved).max(16)).unwrap_or(usize::MAX);
        if room < limits.max {
            tracing::info!(
                configured = limits.max,
                file_limit = soft,
                max = room,
                "open connections capped below the file limit"
            );
            limits.max = room;
        }
    }
    limits
}

/// The services this process runs itself, and whether it runs the gateway.
fn local_services(
    mode: &Mode,
    settings: &HostSettings,
) -> anyhow::Result<(Vec<ServiceSpec>, bool)> {
    for name in settings.remote.keys() {
        if !SERVICES.iter().any(|s| s.name == name) {
            bail!(
                "remote service {name:?} is not a Flotilla service ({})",
                known()
            );
        }
    }
    match mode {
        Mode::Run => Ok((
            SERVICES
                .iter()
                .filter(|s| !settings.remote.contains_key(s.name))
                .copied()
                .collect(),
            true,
        )),
        Mode::Serve(names) | Mode::Migrate(names) => {
            let mut specs = Vec::new();
            let mut gateway = false;
            for name in names {
                if name == GATEWAY && matches!(mode, Mode::Serve(_)) {
                    gateway = true;
                    continue;
                }
                let spec = SERVICES
                    .iter()
                    .find(|s| s.name == name)
                    .with_context(|| format!("unknown service {name:?} ({})", known()))?;
                if settings.remote.contains_key(spec.name) {
                    bail!("{name} is both served here and configured as remote");
                }
                if !specs.iter().any(|s: &ServiceSpec| s.name == spec.name) {
                    specs.push(*spec);
                }
            }
            if matches!(mode, Mode::Migrate(_)) && names.is_empty() {
                specs = SERVICES.to_vec();
            }
            Ok((specs, gateway))
        }
    }
}

fn known() -> String {
    let names: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
    format!("known: {}, {GATEWAY}", names.join(", "))
}

/// Services whose every public operation acts for a user: anonymous calls stop at the gateway.
const USER_ONLY: &[&str] = &["cart", "orders", "notifications"];

/// The gateway over `peers`: every service under `/api/<name>/`, the storefront at `/`.
fn build_gateway(
    config: &figment::Figment,
    settings: &HostSettings,
    peers: &Peers,
    clock: SharedClock,
    credentials: Arc<ServiceCredentials>,
    metrics: &Metrics,
) -> anyhow::Result<Gateway> {
    let identity_config: IdentityConfig = section(config, flotilla_identity::NAME)?;
    let gateway_config: GatewayConfig = section(config, GATEWAY)?;
    let storefront_config: StorefrontConfig = section(config, flotilla_storefront::NAME)?;
    // The gateway is a caller like any service: its calls go through its own resilience stack.
    let policies = Policies::load(config)?;
    let resilience = Resilience::new(GATEWAY, Arc::new(policies));
    metrics.add_collector(ResilienceCollector::new(resilience.clone()));
    let peers = &peers.with_resilience(resilience.clone());
    let report = {
        let peers = peers.clone();
        move || {
            serde_json::to_value(flotilla_chassis::resilience::admin::build(
                &resilience,
                &peers,
            ))
            .unwrap_or_default()
        }
    };
    let keys = KeyCache::new(
        IdentityClient::new(peers.transport(flotilla_identity::NAME)),
        Duration::from_secs(gateway_config.jwks_refresh_secs),
    );
    let auth = Authenticator::new(TokenVerifier::new(&identity_config), keys, clock);
    gateway_config
        .deadline
        .validate()
        .context("[gateway.deadline]")?;
    // Shared by every gateway of the deployment when Redis is given, under its cluster name.
    let rate_limit: RateLimitConfig =
        flotilla_chassis::config::section_over_defaults(config, "gateway.rate_limit")?;
    let limiter = RateLimiter::new(
        rate_limit,
        settings.redis_url.as_deref(),
        &format!("flotilla:{}", settings.cluster),
    )
    .map_err(anyhow::Error::msg)?;
    let mut gateway = Gateway::new(auth, credentials)
        .metrics(metrics.clone())
        .rate_limit(limiter)
        .resilience_report(Arc::new(report))
        .secure_cookies(gateway_config.secure_cookies)
        .fleet_passthrough(gateway_config.fleet_passthrough)
        .cors(&gateway_config.cors)
        .map_err(anyhow::Error::msg)?
        .deadlines(gateway_config.deadline)
        .shedding(gateway_config.shedding)
        .context("[gateway.shedding]")?
        .storefront(peers.transport(flotilla_storefront::NAME))
        .site_error_page(flotilla_storefront::error_page(
            &storefront_config.shop_name,
        ));
    for spec in SERVICES
        .iter()
        .filter(|s| s.name != flotilla_storefront::NAME)
    {
        let policy = if USER_ONLY.contains(&spec.name) {
            RoutePolicy::Authenticated
        } else {
            RoutePolicy::Public
        };
        gateway = gateway.route(spec.name, peers.transport(spec.name), policy);
    }
    Ok(gateway)
}
