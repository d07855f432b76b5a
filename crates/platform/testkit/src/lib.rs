//! The test kit: starts services on random local ports with fresh databases, wired to each
//! other in-process, and gives tests an HTTP client that speaks to them the way the gateway does
//! (with a service credential and, when asked, a user's identity). A crate of its own and a
//! dev-dependency only, so no service or host ever links it.
//!
//! Every harness starts its fleet with one builder ([`TestFleet::of`]) naming what differs
//! between suites, which services run, their configuration, the clock, the bus, the limits, and
//! talks to one service through [`TestFleet::client`]:
//!
//! ```ignore
//! let fleet = TestFleet::of(&[flotilla_catalog::SPEC, flotilla_cart::SPEC])
//!     .config("catalog", json!({ "seed_products": 30 }))
//!     .manual_clock(1_750_000_000_000)
//!     .start()
//!     .await;
//! let cart = fleet.client(flotilla_cart::NAME);
//! let res = cart.as_customer(Method::GET, "/", "alice").send().await?;
//! fleet.manual_clock().advance(60_000);
//! ```
//!
//! The databases are SQLite files unless `FLOTILLA_TEST_DATABASE_URL` names a PostgreSQL
//! server (see [`databases`]); the same tests then run every query on PostgreSQL:
//! `FLOTILLA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432 cargo test -p flotilla-cart`.

use axum::http::Method;
use figment::Figment;
use figment::providers::Serialized;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use flotilla_chassis::caller::{Caller, Role};
use flotilla_chassis::clock::{ManualClock, SharedClock, SystemClock};
use flotilla_chassis::db::Db;
use flotilla_chassis::events::{Consumer, InProcessBus, RelaySettings, SharedBus};
use flotilla_chassis::launch::{LaunchEnv, launch};
use flotilla_chassis::layers::Limits;
use flotilla_chassis::service::{ServiceContext, ServiceSpec};
use flotilla_chassis::service_credential::{SERVICE_TOKEN, ServiceCredentials};
use flotilla_chassis::transport::Peers;
use flotilla_chassis::transport::Transport;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::trust::TrustPolicy;

pub mod databases;
pub mod fault_proxy;
pub mod private_postgres;
pub mod prometheus;
pub use databases::{TEST_DATABASE_URL, TestDatabases, test_db};
pub use fault_proxy::fault_proxy;
pub use private_postgres::PrivatePostgres;

/// A set of running services for one test.
pub struct TestFleet {
    /// Base URL of each service.
    pub urls: HashMap<&'static str, String>,
    /// The HTTP client tests use.
    pub http: reqwest::Client,
    /// The event bus the services publish on.
    pub bus: SharedBus,
    /// Each consuming service's consumer (to deliver events directly in tests).
    pub consumers: HashMap<&'static str, Arc<Consumer>>,
    /// Each service's database.
    pub dbs: HashMap<&'static str, Db>,
    config: Figment,
    clock: SharedClock,
    manual_clock: Option<Arc<ManualClock>>,
    credentials: Arc<ServiceCredentials>,
    shutdown: CancellationToken,
    metrics: flotilla_chassis::metrics::Metrics,
    /// Declared last: dropped after everything that uses the databases.
    _databases: TestDatabases,
}

/// What a fleet is started with: the services and everything a suite may choose about them.
/// Made by [`TestFleet::of`]; everything left unsaid is the default (no configuration, the system
/// clock, a fresh in-process bus, default limits and relay settings).
#[must_use = "a fleet starts only when `start` is awaited"]
pub struct FleetBuilder {
    services: Vec<ServiceSpec>,
    config: serde_json::Map<String, Value>,
    clock: Option<SharedClock>,
    manual_clock: Option<Arc<ManualClock>>,
    limits: Limits,
    bus: Option<SharedBus>,
    relay: RelaySettings,
}

impl FleetBuilder {
    /// Sets keys of the `[section]` configuration every service reads (e.g. `"catalog"`,
    /// `{"seed_products": 50}`), over what earlier calls set for that section: a harness sets
    /// its defaults and a test's overrides win key by key.
    pub fn config(mut self, section: &str, values: Value) -> Self {
        let entry = self
            .config
            .entry(section.to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
        match (entry, values) {
            (Value::Object(current), Value::Object(values)) => current.extend(values),
            (entry, values) => *entry = values,
        }
        self
    }

    /// A clock that reads `start_millis` until the test moves it ([`TestFleet::manual_clock`]).
    pub fn manual_clock(mut self, start_millis: i64) -> Self {
        let clock = Arc::new(ManualClock::new(start_millis));
        self.clock = Some(clock.clone());
        self.manual_clock = Some(clock);
        self
    }

    /// Every service reads `clock` (the test keeps its own handle to it).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self.manual_clock = None;
        self
    }

    /// Request limits for every service.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The event bus (a fresh in-process bus otherwise).
    pub fn bus(mut self, bus: SharedBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Outbox relay and delivery settings.
    pub fn relay(mut self, relay: RelaySettings) -> Self {
        self.relay = relay;
        self
    }

    /// Starts the services; panics (this is test code) if any fails to start.
    pub async fn start(self) -> TestFleet {
        let services = self.services;
        let mut databases = TestDatabases::new();
        let needing: Vec<&str> = services
            .iter()
            .filter(|spec| spec.needs_database)
            .map(|spec| spec.name)
            .collect();
        let mut opened: HashMap<&str, Db> = needing
            .iter()
            .copied()
            .zip(databases.open_all(&needing).await)
            .collect();
        let secret: [u8; 32] = rand::random();
        let credentials = Arc::new(ServiceCredentials::new(&secret, "test"));
        let registry = InProcessRegistry::default();
        let peers = Peers::new(registry.clone(), HashMap::new());
        let shutdown = CancellationToken::new();
        let config = Figment::from(Serialized::defaults(Value::Object(self.config)));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let trust = TrustPolicy {
            credentials: Some(credentials.clone()),
            require_credential: true,
        };
        let mut urls = HashMap::new();
        let bus = self.bus.unwrap_or_else(|| Arc::new(InProcessBus::new()));
        let env = LaunchEnv {
            config: config.clone(),
            peers,
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            limits: self.limits,
            trust,
            bus: bus.clone(),
            relay: self.relay,
            metrics: flotilla_chassis::metrics::Metrics::new(),
        };
        // Started together: a service reaches its peers only when it calls them (the registry
        // is read at call time), so start order does not matter, and on PostgreSQL a start is
        // mostly waiting for its migrations.
        let started = futures::future::join_all(services.iter().map(|spec| {
            let db = opened.remove(spec.name);
            let env = &env;
            async move { (spec.name, db.clone(), launch(spec, env, db).await) }
        }))
        .await;
        let mut consumers = HashMap::new();
        let mut dbs = HashMap::new();
        let server = flotilla_chassis::server::Server::new(Default::default());
        for (name, db, launched) in started {
            let launched = launched.unwrap_or_else(|e| panic!("{name} failed to start: {e}"));
            if let Some(db) = db {
                dbs.insert(name, db);
            }
            let router = launched.router;
            if let Some(consumer) = launched.consumer {
                consumers.insert(name, consumer);
            }
            for task in launched.tasks {
                tokio::spawn(task);
            }
            registry.register(name, router.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let stop = shutdown.clone();
            let server = server.clone();
            tokio::spawn(async move { server.serve(listener, router, stop).await });
            urls.insert(name, format!("http://{addr}"));
        }
        TestFleet {
            urls,
            http: reqwest::Client::new(),
            bus,
            consumers,
            dbs,
            config,
            clock,
            manual_clock: self.manual_clock,
            credentials,
            shutdown,
            metrics: env.metrics.clone(),
            _databases: databases,
        }
    }
}

impl TestFleet {
    /// A fleet of `services`, to be configured and started.
    pub fn of(services: &[ServiceSpec]) -> FleetBuilder {
        FleetBuilder {
            services: services.to_vec(),
            config: serde_json::Map::new(),
            clock: None,
            manual_clock: None,
            limits: Limits::default(),
            bus: None,
            relay: RelaySettings::default(),
        }
    }

    /// Starts `services` with nothing changed.
    pub async fn start(services: &[ServiceSpec]) -> Self {
        Self::of(services).start().await
    }

    /// Talks to `service` (a started one) the way the gateway and other services do.
    pub fn client(&self, service: &str) -> FleetClient<'_> {
        let (name, url) = self
            .urls
            .get_key_value(service)
            .unwrap_or_else(|| panic!("{service} not started"));
        FleetClient {
            fleet: self,
            service: name,
            url,
        }
    }

    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> &str {
        self.client(service).url
    }

    /// The database of `service` (panics when it has none).
    pub fn db(&self, service: &str) -> &Db {
        self.dbs
            .get(service)
            .unwrap_or_else(|| panic!("{service} has no database in this fleet"))
    }

    /// The fleet's metrics (every service's collectors), as a host's metrics listener has them.
    pub fn metrics(&self) -> &flotilla_chassis::metrics::Metrics {
        &self.metrics
    }

    /// `GET /metrics` of `service`'s listener: its own series in Prometheus text (the route
    /// needs no credential, like the probes).
    pub async fn scrape(&self, service: &str) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.url(service)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("scraping {service}: {e}"));
        assert_eq!(response.status(), 200, "GET /metrics of {service}");
        response.text().await.expect("metrics text")
    }

    /// The event consumer of `service` (panics when it consumes nothing).
    pub fn consumer(&self, service: &str) -> &Arc<Consumer> {
        self.consumers
            .get(service)
            .unwrap_or_else(|| panic!("{service} consumes no events in this fleet"))
    }

    /// The clock the services read, when the fleet was started with
    /// [`FleetBuilder::manual_clock`] (panics otherwise).
    pub fn manual_clock(&self) -> &Arc<ManualClock> {
        self.manual_clock
            .as_ref()
            .expect("the fleet was started with a manual clock")
    }

    /// The configuration every service was started with.
    pub fn config(&self) -> &Figment {
        &self.config
    }

    /// What a host would give `service` to start another instance of it beside the fleet: the
    /// fleet's configuration, clock and database of that name, and peers that reach every service
    /// of the fleet over HTTP with a service credential, as another process would.
    pub fn context(&self, service: &'static str) -> ServiceContext {
        let remote = self
            .urls
            .keys()
            .map(|name| ((*name).to_owned(), self.client(name).transport()))
            .collect();
        ServiceContext::new(
            service,
            self.config.clone(),
            self.dbs.get(service).cloned(),
            Peers::new(InProcessRegistry::default(), remote),
            self.clock.clone(),
            self.shutdown.child_token(),
        )
    }

    /// A service credential for `service` acting for `caller`, for tests that build their own
    /// requests (e.g. to replay it elsewhere).
    pub fn credential(&self, service: &str, caller: Option<&Caller>) -> String {
        self.credentials.token(service, caller)
    }

    /// Shorthand for `self.client(service).request(method, path)`.
    pub fn request(&self, method: Method, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.client(service).request(method, path)
    }

    /// Shorthand for `self.client(service).get(path)`.
    pub fn get(&self, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.client(service).get(path)
    }

    /// Shorthand for `self.client(service).as_user(method, path, user_id, role)`.
    pub fn as_user(
        &self,
        method: Method,
        service: &str,
        path: &str,
        user_id: &str,
        role: Role,
    ) -> reqwest::RequestBuilder {
        self.client(service).as_user(method, path, user_id, role)
    }

    /// Shorthand for `self.client(service).transport()`.
    pub fn transport(&self, service: &str) -> Transport {
        self.client(service).transport()
    }
}

/// Requests to one service of a [`TestFleet`], each carrying a service credential as the
/// gateway's would, and for a user when the test says so.
#[derive(Clone, Copy)]
pub struct FleetClient<'a> {
    fleet: &'a TestFleet,
    service: &'a str,
    url: &'a str,
}

impl<'a> FleetClient<'a> {
    /// The service's base URL.
    pub fn url(&self) -> &'a str {
        self.url
    }

    /// `method path`, for no user (as another service calls).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.credentialed(method, path, None)
    }

    /// `GET path`, for no user.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(Method::GET, path)
    }

    /// `POST path`, for no user.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(Method::POST, path)
    }

    /// `method path` acting for `user_id` with `role`.
    pub fn as_user(
        &self,
        method: Method,
        path: &str,
        user_id: &str,
        role: Role,
    ) -> reqwest::RequestBuilder {
        let caller = Caller {
            user_id: user_id.to_owned(),
            role,
        };
        self.credentialed(method, path, Some(&caller))
    }

    /// `method path` acting for customer `user_id`.
    pub fn as_customer(
        &self,
        method: Method,
        path: &str,
        user_id: &str,
    ) -> reqwest::RequestBuilder {
        self.as_user(method, path, user_id, Role::Customer)
    }

    /// `method path` acting for an admin (user `admin-1`).
    pub fn as_admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.as_user(method, path, ADMIN, Role::Admin)
    }

    /// A transport to the service over real HTTP with the fleet's credential, for testing typed
    /// clients exactly as another process would use them.
    pub fn transport(&self) -> Transport {
        HttpPool::new(self.fleet.credentials.clone(), HttpSettings::default())
            .transport(self.service, self.url)
            .expect("valid base url")
    }

    fn credentialed(
        &self,
        method: Method,
        path: &str,
        caller: Option<&Caller>,
    ) -> reqwest::RequestBuilder {
        self.fleet
            .http
            .request(method, format!("{}{path}", self.url))
            .header(
                SERVICE_TOKEN.as_str(),
                self.fleet.credentials.token(self.service, caller),
            )
    }
}

/// The user [`FleetClient::as_admin`] acts for.
pub const ADMIN: &str = "admin-1";

impl Drop for TestFleet {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts `res` has `status` and decodes its JSON body.
pub async fn expect_json<T: serde::de::DeserializeOwned>(
    res: reqwest::Response,
    status: axum::http::StatusCode,
) -> T {
    let actual = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("undecodable body {text}: {e}"))
}

/// Asserts `res` is a problem+json document with `status` and returns it.
pub async fn expect_problem(
    res: reqwest::Response,
    status: axum::http::StatusCode,
) -> flotilla_chassis::Problem {
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let problem: flotilla_chassis::Problem = expect_json(res, status).await;
    assert_eq!(
        content_type.as_deref(),
        Some(flotilla_chassis::problem::PROBLEM_JSON)
    );
    assert_eq!(problem.status, status.as_u16());
    problem
}

/// `p` followed by seven digits: the id of the catalog's `n`th seeded product.
pub fn product_id(n: u64) -> String {
    format!("p{n:07}")
}

/// An event envelope as `source` would publish it, for publishing on the fleet's bus or
/// delivering straight to a consumer (which parks an event whose source does not own its type).
pub fn event(
    source: &str,
    id: &str,
    event_type: &str,
    version: u32,
    payload: serde_json::Value,
) -> flotilla_chassis::events::Event {
    flotilla_chassis::events::Event {
        id: id.to_owned(),
        event_type: event_type.to_owned(),
        version,
        source: source.to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        traceparent: None,
        payload,
    }
}
