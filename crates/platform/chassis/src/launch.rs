//! Starting one service, the same way in every host (and in the test kit): platform tables,
//! context, constructor, event wiring (outbox relay, consumer, admin routes), its fault registry
//! (on its own routes and on the transports its peers hand out, with `/admin/faults`), its
//! resilience stacks (`[resilience]`, around every transport its peers hand out, with
//! `/admin/resilience`), its metrics (collectors of its pool, events and resilience stacks,
//! and its own `/metrics`), then the finished router behind the standard middleware.

use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::db::Db;
use crate::db::collector::PoolCollector;
use crate::events::admin::{self, EventsAdmin};
use crate::events::collector::EventsCollector;
use crate::events::relay::Relay;
use crate::events::{self, Consumer, RelaySettings, SharedBus};
use crate::faults::Faults;
use crate::layers::Limits;
use crate::metrics::Metrics;
use crate::openapi::Documents;
use crate::resilience::collector::ResilienceCollector;
use crate::resilience::stack::{Policies, Resilience};
use crate::service::{BackgroundTask, ServiceContext, ServiceSpec, StartError};
use crate::transport::Peers;
use crate::trust::TrustPolicy;

/// What every service in one host shares.
#[derive(Clone)]
pub struct LaunchEnv {
    /// The layered configuration.
    pub config: figment::Figment,
    /// How to reach other services.
    pub peers: Peers,
    /// Wall clock.
    pub clock: SharedClock,
    /// The host's shutdown token.
    pub shutdown: CancellationToken,
    /// Request limits.
    pub limits: Limits,
    /// Who may assert caller identity.
    pub trust: TrustPolicy,
    /// The event bus.
    pub bus: SharedBus,
    /// Outbox relay and delivery settings.
    pub relay: RelaySettings,
    /// The host's metrics: each service adds its collectors and serves its own `/metrics`.
    pub metrics: Metrics,
}

/// A started service.
pub struct Launched {
    /// Its name.
    pub name: &'static str,
    /// The finished router (API, admin, probes, contract, standard middleware).
    pub router: Router,
    /// Its public and internal OpenAPI documents.
    pub openapi: Documents,
    /// Background tasks to spawn (the service's own plus the outbox relay).
    pub tasks: Vec<BackgroundTask>,
    /// Its event consumer, if it consumes any.
    pub consumer: Option<Arc<Consumer>>,
}

/// Starts `spec` with `db` (which must be given when the spec needs a database).
pub async fn launch(
    spec: &ServiceSpec,
    env: &LaunchEnv,
    db: Option<Db>,
) -> Result<Launched, StartError> {
    if spec.needs_database && db.is_none() {
        return Err(StartError::Other(format!("{} needs a database", spec.name)));
    }
    if let Some(db) = &db {
        events::migrate(db).await?;
    }
    let faults = Faults::new(spec.name);
    let policies = Policies::load(&env.config).map_err(|e| StartError::Other(e.to_string()))?;
    let resilience = Resilience::new(spec.name, Arc::new(policies));
    let peers = env
        .peers
        .with_faults(faults.clone())
        .with_resilience(resilience.clone());
    let ctx = ServiceContext::new(
        spec.name,
        env.config.clone(),
        db.clone(),
        peers.clone(),
        env.clock.clone(),
        env.shutdown.clone(),
    );
    let outbox = ctx.outbox.clone();
    let mut service = (spec.factory)(ctx).await?;
    // Its clients are built: the upstreams it calls are those it has a stack for.
    faults.know_upstreams(resilience.upstreams());
    let mut tasks = std::mem::take(&mut service.tasks);

    let consumer = match (&db, service.subscriptions.is_empty()) {
        (Some(db), false) => {
            let subscriptions = std::mem::take(&mut service.subscriptions);
            let consumer = Arc::new(Consumer::new(
                spec.name,
                db.clone(),
                env.clock.clone(),
                subscriptions,
                env.relay.max_deliveries,
            ));
            env.bus
                .subscribe(consumer.clone())
                .await
                .map_err(|e| StartError::Other(format!("subscribing {}: {e}", spec.name)))?;
            Some(consumer)
        }
        (None, false) => {
            return Err(StartError::Other(format!(
                "{} consumes events but has no database",
                spec.name
            )));
        }
        _ => None,
    };
    let relay_stats = outbox.map(|outbox| {
        let relay = Relay::new(outbox, env.bus.clone(), env.relay.clone());
        let stats = relay.stats();
        let shutdown = env.shutdown.clone();
        tasks.push(Box::pin(relay.run(shutdown)));
        stats
    });
    if let Some(db) = &db {
        env.metrics
            .add_collector(PoolCollector::new(spec.name, db.clone()));
        env.metrics.add_collector(EventsCollector::new(
            spec.name,
            db.clone(),
            env.clock.clone(),
            relay_stats.clone(),
            consumer.clone(),
        ));
        let admin = EventsAdmin {
            db: db.clone(),
            clock: env.clock.clone(),
            relay: relay_stats,
            consumer: consumer.clone(),
        };
        service.api = service
            .api
            .merge(admin::routes(admin))
            .merge(crate::audit::routes(crate::audit::AuditLog {
                db: db.clone(),
            }));
    }
    env.metrics
        .add_collector(ResilienceCollector::new(resilience.clone()));
    service.api = service
        .api
        // Its own series only; not in its contract, so the gateway never serves it.
        .route("/metrics", env.metrics.service_routes(spec.name))
        .merge(crate::faults::admin::routes(faults.clone()))
        .merge(crate::resilience::admin::routes(resilience, peers));
    service.faults = Some(faults);
    let (router, openapi, own_tasks) = service.into_parts(env.limits, env.trust.clone());
    tasks.extend(own_tasks);
    Ok(Launched {
        name: spec.name,
        router,
        openapi,
        tasks,
        consumer,
    })
}
