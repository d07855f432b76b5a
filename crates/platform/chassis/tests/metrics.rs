//! The metrics each family records, read back from the Prometheus text a scrape gets, after
//! driving the real thing: requests through a launched service's chassis stack (route
//! templates, never raw paths), a circuit breaker opening in a caller's resilience stack, and
//! events written to an outbox on a real database, relayed, handled and dead-lettered. The
//! exposition is also held to `promtool check metrics`.
//!
//! Every test names its own services, so they hold in one process (`cargo test`) as well as in
//! one process each (nextest): the recorder is the process's.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::db::Db;
use flotilla_chassis::db::collector::PoolCollector;
use flotilla_chassis::events::collector::EventsCollector;
use flotilla_chassis::events::relay::Relay;
use flotilla_chassis::events::{
    self, Consumer, Event, EventHandler, HandlerError, InProcessBus, NewEvent, Outbox,
    RelaySettings, SharedBus, Subscription,
};
use flotilla_chassis::launch::{LaunchEnv, launch};
use flotilla_chassis::metrics::Metrics;
use flotilla_chassis::resilience::breaker::BreakerConfig;
use flotilla_chassis::resilience::collector::ResilienceCollector;
use flotilla_chassis::resilience::stack::{Policies, Resilience, UpstreamPolicy};
use flotilla_chassis::service::{Service, ServiceContext, ServiceSpec, StartError};
use flotilla_chassis::transport::Peers;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::trust::TrustPolicy;
use flotilla_testkit::prometheus::{promtool_check, sample, value};
use flotilla_testkit::{TestDatabases, test_db};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use utoipa_axum::router::OpenApiRouter;

const RED: ServiceSpec = ServiceSpec {
    name: "red",
    factory: red,
    needs_database: false,
};

/// `GET /items/{id}` and `GET /slow` (never answers within the timeout).
fn red(_: ServiceContext) -> BoxFuture<'static, Result<Service, StartError>> {
    Box::pin(async {
        let router = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    "late"
                }),
            );
        Ok(Service::new("red", OpenApiRouter::from(router), None))
    })
}

async fn send(router: &Router, method: Method, path: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn requests_through_the_chassis_stack_are_recorded_by_route_template() {
    let metrics = Metrics::new();
    let registry = InProcessRegistry::default();
    let env = LaunchEnv {
        config: figment::Figment::new(),
        peers: Peers::new(registry.clone(), HashMap::new()),
        clock: Arc::new(SystemClock),
        shutdown: tokio_util::sync::CancellationToken::new(),
        limits: flotilla_chassis::Limits {
            request_timeout: std::time::Duration::from_millis(50),
            ..Default::default()
        },
        trust: TrustPolicy {
            credentials: None,
            require_credential: true,
        },
        bus: Arc::new(InProcessBus::new()),
        relay: Default::default(),
        metrics: metrics.clone(),
    };
    let router = launch(&RED, &env, None).await.expect("launch").router;
    // Without a credential on a service's own listener: refused by the trust layer before any
    // route is matched, so recorded under `unmatched`.
    assert_eq!(
        send(&router, Method::GET, "/items/1").await.0,
        StatusCode::UNAUTHORIZED
    );
    let router = {
        let env = LaunchEnv {
            trust: TrustPolicy {
                credentials: None,
                require_credential: false,
            },
            ..env
        };
        launch(&RED, &env, None).await.expect("launch").router
    };
    for id in ["1", "2", "3"] {
        assert_eq!(
            send(&router, Method::GET, &format!("/items/{id}")).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&router, Method::GET, "/nowhere/at/all").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(
            &router,
            Method::from_bytes(b"BREW").expect("a token"),
            "/items/4"
        )
        .await
        .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Cut by the timeout outside the route: still the route's.
    assert_eq!(
        send(&router, Method::GET, "/slow").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The service's own /metrics: its series only.
    let (status, text) = send(&router, Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let count = "http_server_request_duration_seconds_count";
    let at = |route: &str, method: &str, status: &str| {
        value(
            &text,
            count,
            &[
                ("service", "red"),
                ("route", route),
                ("method", method),
                ("status", status),
            ],
        )
    };
    assert_eq!(at("/items/{id}", "GET", "200"), 3.0);
    assert_eq!(at("unmatched", "GET", "401"), 1.0);
    assert_eq!(at("unmatched", "GET", "404"), 1.0);
    assert_eq!(at("/items/{id}", "_OTHER", "405"), 1.0);
    assert_eq!(at("/slow", "GET", "503"), 1.0);
    assert!(
        !text.contains("/items/1") && !text.contains("/nowhere"),
        "raw paths never become labels:\n{text}"
    );
    // A bucket at or above the timeout holds the slow request; the lowest holds none of it.
    let le = |bound: &str| {
        value(
            &text,
            "http_server_request_duration_seconds_bucket",
            &[("route", "/slow"), ("status", "503"), ("le", bound)],
        )
    };
    assert_eq!((le("0.0001"), le("0.1")), (0.0, 1.0));
    assert!(text.contains("# HELP http_server_request_duration_seconds "));
    assert!(
        text.lines()
            .all(|l| l.starts_with('#') || l.contains("service=\"red\""))
    );
    promtool_check(&text);
}

/// An upstream that answers 503 to everything.
fn failing_upstream() -> flotilla_chassis::transport::Transport {
    BoxCloneSyncService::new(tower::service_fn(|_: Request<Body>| async {
        let mut response = axum::http::Response::new(Body::from("down"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok(response)
    }))
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opening_shows_in_its_state_counters_and_the_callers_red_series() {
    let policy = UpstreamPolicy {
        breaker: BreakerConfig {
            consecutive_failures: 3,
            ..BreakerConfig::default()
        },
        ..UpstreamPolicy::default()
    };
    let metrics = Metrics::new();
    let caller = Resilience::new("brk", Arc::new(Policies::uniform(policy)));
    metrics.add_collector(ResilienceCollector::new(caller.clone()));
    let transport = caller.wrap("pricing", failing_upstream());
    let before = metrics.render(Some("brk")).await;
    let closed = [("upstream", "pricing"), ("state", "closed")];
    assert_eq!(
        sample(&before, "flotilla_breaker_state", &closed),
        Some(1.0)
    );

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let get = Request::get("/prices")
            .body(Body::empty())
            .expect("request");
        statuses.push(
            transport
                .clone()
                .oneshot(get)
                .await
                .map(|r| r.status())
                .ok(),
        );
    }
    let text = metrics.render(Some("brk")).await;
    let labels = [("service", "brk"), ("upstream", "pricing")];
    let state = |s: &str| {
        value(
            &text,
            "flotilla_breaker_state",
            &[labels[0], labels[1], ("state", s)],
        )
    };
    assert_eq!(
        (state("open"), state("closed"), state("half_open")),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(value(&text, "flotilla_breaker_opened_total", &labels), 1.0);
    let answered = statuses.iter().filter(|s| s.is_some()).count();
    let refused = value(&text, "flotilla_breaker_rejections_total", &labels);
    assert!(refused >= 1.0 && answered >= 1, "{statuses:?}\n{text}");
    let calls = |outcome: &str| {
        value(
            &text,
            "http_client_request_duration_seconds_count",
            &[labels[0], labels[1], ("outcome", outcome)],
        )
    };
    assert_eq!(calls("server_error"), answered as f64);
    assert_eq!(calls("refused"), (6 - answered) as f64);
    assert_eq!(calls("success"), 0.0);
    // Retries of the GETs were sent, within the budget.
    assert!(value(&text, "flotilla_retries_total", &labels) >= 1.0);
    assert_eq!(
        value(&text, "flotilla_bulkhead_rejections_total", &labels),
        0.0
    );
    promtool_check(&text);
}

/// Decodes version 1 of `thing.made`; any other version is a permanent failure (parked).
struct Decodes;

impl EventHandler for Decodes {
    fn handle<'a>(
        &'a self,
        _: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let _: serde_json::Value = event.decode(1)?;
            Ok(())
        })
    }
}

async fn events_db(name: &str) -> (Db, TestDatabases) {
    let (db, guard) = test_db(name).await;
    events::migrate(&db).await.expect("platform tables");
    (db, guard)
}

#[tokio::test]
async fn an_outbox_relayed_to_a_consumer_shows_backlog_lag_and_dead_letters() {
    // First: handles made before the process's recorder is installed record nothing.
    let metrics = Metrics::new();
    let clock: SharedClock = Arc::new(SystemClock);
    let ((maker, _maker_db), (taker, _taker_db)) =
        (events_db("mxmaker").await, events_db("mxtaker").await);
    let outbox = Outbox::new("mxmaker", maker.clone(), clock.clone());
    let subscription = Subscription {
        source: "mxmaker",
        event_type: "thing.made",
        handler: Arc::new(Decodes),
    };
    let consumer = Arc::new(Consumer::new(
        "mxtaker",
        taker.clone(),
        clock.clone(),
        vec![subscription],
        3,
    ));
    let bus: SharedBus = Arc::new(InProcessBus::new());
    bus.subscribe(consumer.clone()).await.expect("subscribe");
    let relay = Relay::new(outbox.clone(), bus, RelaySettings::default());
    metrics.add_collector(EventsCollector::new(
        "mxmaker",
        maker.clone(),
        clock.clone(),
        Some(relay.stats()),
        None,
    ));
    metrics.add_collector(PoolCollector::new("mxmaker", maker.clone()));
    metrics.add_collector(EventsCollector::new(
        "mxtaker",
        taker.clone(),
        clock.clone(),
        None,
        Some(consumer),
    ));

    // Two events a consumer understands and one it never will, written before any relay runs.
    for version in [1, 1, 2] {
        let mut tx = maker.pool().begin().await.expect("tx");
        let event =
            NewEvent::new("thing.made", version, &serde_json::json!({"n": version})).expect("json");
        outbox.append(&mut tx, event).await.expect("append");
        tx.commit().await.expect("commit");
    }
    let waiting = metrics.render(Some("mxmaker")).await;
    let maker_labels = [("service", "mxmaker")];
    assert_eq!(
        value(&waiting, "flotilla_outbox_backlog_events", &maker_labels),
        3.0
    );
    assert!(
        value(
            &waiting,
            "flotilla_outbox_oldest_unpublished_age_seconds",
            &maker_labels
        ) >= 0.0
    );

    while relay.pass().await.expect("pass") > 0 {}
    let text = metrics.render(None).await;
    assert_eq!(
        value(&text, "flotilla_outbox_backlog_events", &maker_labels),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "flotilla_outbox_oldest_unpublished_age_seconds",
            &maker_labels
        ),
        0.0
    );
    assert_eq!(
        value(&text, "flotilla_outbox_published_total", &maker_labels),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "flotilla_outbox_relay_lag_seconds_count",
            &maker_labels
        ),
        3.0
    );
    let taker_labels = [("service", "mxtaker")];
    let consumed = |result: &str| {
        value(
            &text,
            "flotilla_events_consumed_total",
            &[taker_labels[0], ("result", result)],
        )
    };
    assert_eq!((consumed("handled"), consumed("duplicate")), (2.0, 0.0));
    assert_eq!(value(&text, "flotilla_dead_letters", &taker_labels), 1.0);
    assert_eq!(
        value(&text, "flotilla_events_dead_lettered_total", &taker_labels),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "flotilla_event_consumer_lag_seconds_count",
            &[taker_labels[0], ("event_type", "thing.made")]
        ),
        2.0
    );
    let pool = metrics.render(Some("mxmaker")).await;
    let pool_state = |state: &str| {
        value(
            &pool,
            "flotilla_db_pool_connections",
            &[maker_labels[0], ("state", state)],
        )
    };
    assert!(value(&pool, "flotilla_db_pool_max_connections", &maker_labels) >= 1.0);
    assert_eq!(pool_state("used"), 0.0, "nothing holds a connection now");
    assert!(pool_state("idle") >= 1.0);
    promtool_check(&metrics.render(Some("mxtaker")).await);
}
