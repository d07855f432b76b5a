//! Test harness for service crates: starts services on random local ports with fresh
//! databases, wired to each other in-process, and gives tests an HTTP client that speaks to them
//! the way the gateway does (with a service credential and, when asked, a user's identity).
//!
//! The databases are SQLite files unless `FLOTILLA_TEST_DATABASE_URL` names a PostgreSQL
//! server (see [`databases`]); the same tests then run every query on PostgreSQL:
//! `FLOTILLA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432 cargo test -p flotilla-cart`.
//!
//! ```ignore
//! let fleet = TestFleet::start(&[flotilla_catalog::SPEC]).await;
//! let res = fleet.get("catalog", "/products").send().await?;
//! ```

use axum::http::Method;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::caller::{Caller, Role, TrustPolicy};
use crate::clock::{SharedClock, SystemClock};
use crate::db::Db;
use crate::events::{Consumer, InProcessBus, RelaySettings, SharedBus};
use crate::launch::{LaunchEnv, launch};
use crate::layers::Limits;
use crate::service::ServiceSpec;
use crate::service_credential::{SERVICE_TOKEN, ServiceCredentials};
use crate::transport::Peers;
use crate::transport::http::{HttpPool, HttpSettings};
use crate::transport::in_process::InProcessRegistry;

pub mod databases;
pub mod private_postgres;
pub use databases::{TEST_DATABASE_URL, TestDatabases, test_db};
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
    credentials: Arc<ServiceCredentials>,
    shutdown: CancellationToken,
    /// Declared last: dropped after everything that uses the databases.
    _databases: TestDatabases,
}

/// Options for [`TestFleet::start_with`].
#[derive(Default)]
pub struct FleetOptions {
    /// Configuration (figment) given to every service, e.g. `[catalog] seed_products = 50`.
    pub config: Option<figment::Figment>,
    /// Limits; defaults otherwise.
    pub limits: Option<Limits>,
    /// Clock; the system clock otherwise.
    pub clock: Option<SharedClock>,
    /// Event bus; a fresh in-process bus otherwise.
    pub bus: Option<SharedBus>,
    /// Relay and delivery settings; defaults otherwise.
    pub relay: Option<RelaySettings>,
}

impl TestFleet {
    /// Starts `services` with default options.
    pub async fn start(services: &[ServiceSpec]) -> Self {
        Self::start_with(services, FleetOptions::default()).await
    }

    /// Starts `services`; panics (this is test code) if any fails to start.
    pub async fn start_with(services: &[ServiceSpec], options: FleetOptions) -> Self {
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
        let config = options.config.unwrap_or_default();
        let limits = options.limits.unwrap_or_default();
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let trust = TrustPolicy {
            credentials: Some(credentials.clone()),
            require_credential: true,
        };
        let mut urls = HashMap::new();
        let bus = options.bus.unwrap_or_else(|| Arc::new(InProcessBus::new()));
        let env = LaunchEnv {
            config,
            peers,
            clock,
            shutdown: shutdown.clone(),
            limits,
            trust,
            bus: bus.clone(),
            relay: options.relay.unwrap_or_default(),
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
        let server = crate::server::Server::new(Default::default());
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
        Self {
            urls,
            http: reqwest::Client::new(),
            bus,
            consumers,
            dbs,
            credentials,
            shutdown,
            _databases: databases,
        }
    }

    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> &str {
        self.urls
            .get(service)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{service} not started"))
    }

    /// A request to `service` carrying a service credential, as the gateway would send it.
    pub fn request(&self, method: Method, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.credentialed(method, service, path, None)
    }

    /// A request with a credential for `service` acting for `caller`, as another process sends it.
    fn credentialed(
        &self,
        method: Method,
        service: &str,
        path: &str,
        caller: Option<&Caller>,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url(service)))
            .header(
                SERVICE_TOKEN.as_str(),
                self.credentials.token(service, caller),
            )
    }

    /// A service credential for `service` acting for `caller`, for tests that build their own
    /// requests (e.g. to replay it elsewhere).
    pub fn credential(&self, service: &str, caller: Option<&Caller>) -> String {
        self.credentials.token(service, caller)
    }

    /// A transport to `service` over real HTTP with the fleet's credential, for testing typed
    /// clients exactly as another process would use them.
    pub fn transport(&self, service: &str) -> crate::transport::Transport {
        HttpPool::new(self.credentials.clone(), HttpSettings::default())
            .transport(service, self.url(service))
            .expect("valid base url")
    }

    /// `GET` with a service credential.
    pub fn get(&self, service: &str, path: &str) -> reqwest::RequestBuilder {
        self.request(Method::GET, service, path)
    }

    /// A request acting for user `user_id` with `role`.
    pub fn as_user(
        &self,
        method: Method,
        service: &str,
        path: &str,
        user_id: &str,
        role: Role,
    ) -> reqwest::RequestBuilder {
        let caller = Caller {
            user_id: user_id.to_owned(),
            role,
        };
        self.credentialed(method, service, path, Some(&caller))
    }
}

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
) -> crate::Problem {
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let problem: crate::Problem = expect_json(res, status).await;
    assert_eq!(content_type.as_deref(), Some(crate::problem::PROBLEM_JSON));
    assert_eq!(problem.status, status.as_u16());
    problem
}

/// `p` followed by seven digits: the id of the catalog's `n`th seeded product.
pub fn product_id(n: u64) -> String {
    format!("p{n:07}")
}

/// An event envelope as a publisher would send it, for delivering straight to a consumer.
pub fn event(
    id: &str,
    event_type: &str,
    version: u32,
    payload: serde_json::Value,
) -> crate::events::Event {
    crate::events::Event {
        id: id.to_owned(),
        event_type: event_type.to_owned(),
        version,
        source: "test".to_owned(),
        time: "2026-01-01T00:00:00Z".to_owned(),
        traceparent: None,
        payload,
    }
}
