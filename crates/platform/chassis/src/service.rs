//! A service is a value: [`ServiceContext`] in, [`Service`] out.
//!
//! The context carries everything a service may touch of the outside world (its configuration
//! section, its database, its peers, a clock, a shutdown token) and nothing else. The service
//! returns its HTTP surface with its OpenAPI document and its background tasks; the host decides
//! whether that surface is mounted in-process behind the gateway or served on its own listener.

use axum::Router;
use axum::routing::get;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::clock::SharedClock;
use crate::db::Db;
use crate::events::{Outbox, Subscription};
use crate::faults::Faults;
use crate::layers::{self, ErrorPage, Limits};
use crate::openapi::{self, Documents};
use crate::transport::Peers;
use crate::trust::TrustPolicy;

/// What a service is given.
#[derive(Clone)]
pub struct ServiceContext {
    /// The service's name (`catalog`, `cart`, ...), also its configuration section.
    pub name: &'static str,
    /// The service's own database (`None` for services that own no data, like the storefront).
    pub db: Option<Db>,
    /// How to reach other services.
    pub peers: Peers,
    /// Wall-clock reads.
    pub clock: SharedClock,
    /// Cancelled when the host shuts down; background tasks stop on it.
    pub shutdown: CancellationToken,
    /// The service's outbox (present whenever it has a database): publish events with it.
    pub outbox: Option<Outbox>,
    config: figment::Figment,
}

impl ServiceContext {
    /// A context; hosts and tests build these.
    pub fn new(
        name: &'static str,
        config: figment::Figment,
        db: Option<Db>,
        peers: Peers,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> Self {
        let outbox = db
            .as_ref()
            .map(|db| Outbox::new(name, db.clone(), clock.clone()));
        Self {
            name,
            db,
            peers,
            clock,
            shutdown,
            outbox,
            config,
        }
    }

    /// The service's database; an error for a service whose spec says it needs none.
    pub fn db(&self) -> Result<Db, StartError> {
        self.db.clone().ok_or_else(|| {
            StartError::Other(format!("{} was started without a database", self.name))
        })
    }

    /// The service's outbox; an error for a service without a database.
    pub fn outbox(&self) -> Result<Outbox, StartError> {
        self.outbox.clone().ok_or_else(|| {
            StartError::Other(format!("{} has no database, so no outbox", self.name))
        })
    }

    /// The service's configuration section (`[<name>]` in the file, `FLOTILLA_<NAME>__KEY` in the
    /// environment), with the type's defaults for anything missing.
    pub fn config<T: DeserializeOwned + Default>(&self) -> Result<T, Box<figment::Error>> {
        crate::config::section(&self.config, self.name)
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Its configuration section is invalid.
    #[error("configuration: {0}")]
    Config(#[from] Box<figment::Error>),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// A service constructor, as hosts hold them: `|ctx| Box::pin(catalog::service(ctx))`.
pub type ServiceFactory = fn(ServiceContext) -> BoxFuture<'static, Result<Service, StartError>>;

/// How a host learns what a service needs before starting it. Each service crate exports one
/// as `SPEC`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The service's name: its configuration section, database name and gateway prefix.
    pub name: &'static str,
    /// Its constructor.
    pub factory: ServiceFactory,
    /// Whether the host must give it a database.
    pub needs_database: bool,
}

/// A task a service runs in the background until `shutdown` is cancelled.
pub type BackgroundTask = BoxFuture<'static, ()>;

/// What a service is made of.
pub struct Service {
    /// Its name.
    pub name: &'static str,
    /// Its routes, with the OpenAPI description of each.
    pub api: OpenApiRouter,
    /// Its background tasks.
    pub tasks: Vec<BackgroundTask>,
    /// The events it consumes and their handlers.
    pub subscriptions: Vec<Subscription>,
    /// Its database, for the readiness probe.
    pub db: Option<Db>,
    /// How it answers errors with no body of their own; problem+json when `None`.
    pub error_page: Option<ErrorPage>,
    /// The faults injected into its requests (`launch` gives every service its registry).
    pub faults: Option<Faults>,
}

impl Service {
    /// A service with routes and no background tasks.
    pub fn new(name: &'static str, api: OpenApiRouter, db: Option<Db>) -> Self {
        Self {
            name,
            api,
            tasks: Vec::new(),
            subscriptions: Vec::new(),
            db,
            error_page: None,
            faults: None,
        }
    }

    /// Renders bare errors (404, 405, 408 for a late body, 413, 503 timeouts, 504 for a lapsed
    /// deadline) with `page` instead of problem+json: for a service whose callers are browsers.
    pub fn with_error_page(mut self, page: ErrorPage) -> Self {
        self.error_page = Some(page);
        self
    }

    /// The complete router: the API, `/openapi.json` (the public document),
    /// `/openapi.internal.json` (the internal one), `/healthz`, `/readyz`, behind the standard
    /// middleware. Returns the documents and the background tasks for the host to run.
    pub fn into_parts(
        self,
        limits: Limits,
        trust: TrustPolicy,
    ) -> (Router, Documents, Vec<BackgroundTask>) {
        let (api, description) = self.api.split_for_parts();
        let documents = openapi::publish(self.name, description);
        let public = documents.public.clone();
        let internal = documents.internal.clone();
        let router = api
            .route(
                "/openapi.json",
                get(move || async move { axum::Json(public) }),
            )
            .route(
                openapi::INTERNAL_PATH,
                get(move || async move { axum::Json(internal) }),
            )
            .merge(crate::health::routes(self.name, self.db));
        (
            layers::standard(
                router,
                limits,
                trust,
                self.name,
                self.error_page,
                self.faults,
            ),
            documents,
            self.tasks,
        )
    }
}
