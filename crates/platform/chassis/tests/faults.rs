//! Fault injection against real services: two small services (`front`, which calls `back`)
//! started by the test kit on real sockets, faulted through their `/admin/faults` APIs, and
//! one started in-process on paused tokio time where a delay can be measured exactly.
//!
//! Each kind of fault on the server side (latency, status at a rate, abort), on the client side
//! (an upstream), expiry, validation, authorization, and the rule that the admin routes
//! themselves are never faulted.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::get;
use flotilla_chassis::caller::InProcess;
use flotilla_chassis::clock::SystemClock;
use flotilla_chassis::events::InProcessBus;
use flotilla_chassis::launch::{LaunchEnv, launch};
use flotilla_chassis::service::{Service, ServiceContext, ServiceSpec, StartError};
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::transport::{ClientError, Peers, ServiceClient, TransportError};
use flotilla_chassis::trust::TrustPolicy;
use flotilla_testkit::{TestFleet, expect_json, expect_problem};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

const FRONT: ServiceSpec = ServiceSpec {
    name: "front",
    factory: front,
    needs_database: false,
};

const BACK: ServiceSpec = ServiceSpec {
    name: "back",
    factory: back,
    needs_database: false,
};

/// `GET /a`, `GET /b/{id}`, and `GET /call`, which calls back's `GET /x` and says how it went.
fn front(ctx: ServiceContext) -> BoxFuture<'static, Result<Service, StartError>> {
    let client = ServiceClient::new("back", ctx.peers.transport("back"));
    Box::pin(async move {
        let router = Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b/{id}", get(|| async { "b" }))
            .route(
                "/call",
                get(move || {
                    let client = client.clone();
                    async move { axum::Json(call_back(&client).await) }
                }),
            );
        Ok(Service::new("front", OpenApiRouter::from(router), None))
    })
}

/// What front's call to back came to.
async fn call_back(client: &ServiceClient) -> Value {
    match client.get::<Value>("/x", None).await {
        Ok(body) => json!({"outcome": "ok", "body": body}),
        Err(ClientError::Status { problem, .. }) => {
            json!({"outcome": "status", "status": problem.status, "slug": problem.slug()})
        }
        Err(ClientError::Transport(TransportError::Connect { source, .. })) => {
            json!({"outcome": "reset", "cause": source.to_string()})
        }
        Err(other) => json!({"outcome": "other", "error": other.to_string()}),
    }
}

fn back(_: ServiceContext) -> BoxFuture<'static, Result<Service, StartError>> {
    Box::pin(async move {
        let router = Router::new().route("/x", get(|| async { axum::Json(json!({"x": 1})) }));
        Ok(Service::new("back", OpenApiRouter::from(router), None))
    })
}

async fn fleet() -> TestFleet {
    TestFleet::start(&[FRONT, BACK]).await
}

/// Adds `fault` to `service`'s faults; returns the fault as listed.
async fn inject(fleet: &TestFleet, service: &str, fault: Value) -> Value {
    let res = fleet
        .client(service)
        .as_admin(Method::POST, "/admin/faults")
        .json(&fault)
        .send()
        .await
        .expect("post");
    expect_json(res, StatusCode::CREATED).await
}

async fn listed(fleet: &TestFleet, service: &str) -> Vec<Value> {
    let res = fleet
        .client(service)
        .as_admin(Method::GET, "/admin/faults")
        .send()
        .await
        .expect("list");
    let list: Value = expect_json(res, StatusCode::OK).await;
    assert_eq!(list["service"], service);
    list["faults"].as_array().expect("faults").clone()
}

/// (status, elapsed) of `GET path` on `service`.
async fn timed_get(fleet: &TestFleet, service: &str, path: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let res = fleet.get(service, path).send().await.expect("answer");
    let status = res.status();
    let _ = res.bytes().await;
    (status, started.elapsed())
}

#[tokio::test]
async fn latency_delays_the_targeted_route_by_the_amount_asked_and_no_other() {
    let fleet = fleet().await;
    inject(
        &fleet,
        "front",
        json!({"route": "GET:/a", "latency_ms": 300}),
    )
    .await;
    for _ in 0..5 {
        let (status, took) = timed_get(&fleet, "front", "/a").await;
        assert_eq!(status, StatusCode::OK, "served after the delay");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
        let (status, took) = timed_get(&fleet, "front", "/b/1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(took < Duration::from_millis(250), "another route: {took:?}");
    }
    fleet
        .client("front")
        .as_admin(Method::DELETE, "/admin/faults")
        .send()
        .await
        .expect("clear");
    inject(
        &fleet,
        "front",
        json!({"route": "/b/{id}", "latency_ms": 200, "jitter_ms": 100}),
    )
    .await;
    let mut spread = Vec::new();
    for _ in 0..20 {
        let (_, took) = timed_get(&fleet, "front", "/b/7").await;
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
        spread.push(took);
    }
    let (min, max) = (spread.iter().min(), spread.iter().max());
    assert!(min < max, "jittered: {spread:?}");
}

#[tokio::test]
async fn a_status_fault_answers_its_problem_always_at_rate_one_and_about_half_the_time_at_one_half()
{
    let fleet = fleet().await;
    let fault = inject(&fleet, "front", json!({"status": 503})).await;
    for _ in 0..20 {
        let res = fleet.get("front", "/a").send().await.expect("answer");
        assert_eq!(res.headers()["retry-after"], "1");
        let problem = expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(problem.slug(), "fault-injected");
        assert_eq!(problem.extensions["fault_id"], fault["id"]);
    }
    let res = fleet.get("front", "/healthz").send().await.expect("probe");
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "probes need a route naming them"
    );
    fleet
        .client("front")
        .as_admin(
            Method::DELETE,
            &format!("/admin/faults/{}", fault["id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("remove");
    assert_eq!(
        fleet.get("front", "/a").send().await.expect("a").status(),
        200
    );

    inject(
        &fleet,
        "front",
        json!({"route": "GET:/a", "status": 500, "rate": 0.5}),
    )
    .await;
    let n = 400;
    let mut failed = 0;
    for _ in 0..n {
        let status = fleet
            .get("front", "/a")
            .send()
            .await
            .expect("answer")
            .status();
        match status.as_u16() {
            500 => failed += 1,
            200 => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Binomial(400, 0.5): mean 200, standard deviation 10; six of them either way.
    assert!((140..=260).contains(&failed), "{failed} of {n} failed");
    let faults = listed(&fleet, "front").await;
    assert_eq!(faults[0]["matched"], n);
    assert_eq!(faults[0]["fired"], failed);
}

#[tokio::test]
async fn an_abort_closes_the_connection_without_an_answer() {
    let fleet = fleet().await;
    inject(&fleet, "back", json!({"route": "GET:/x", "abort": true})).await;
    // A hyper client (the chassis's HTTP transport) sees a failed exchange, not a response.
    let transport = fleet.transport("back");
    let request = Request::get("/x").body(Body::empty()).expect("request");
    match transport.oneshot(request).await {
        Err(TransportError::Connect { .. }) => {}
        Err(other) => panic!("expected a connection error, got {other}"),
        Ok(response) => panic!("expected no answer, got {}", response.status()),
    }
    let raw = fleet.get("back", "/x").send().await;
    assert!(raw.is_err(), "reqwest sees no answer either: {raw:?}");
    // In-process (front calls back without a socket) it is a reset connection too.
    let res = fleet
        .get("front", "/call")
        .send()
        .await
        .expect("front answers");
    let outcome: Value = expect_json(res, StatusCode::OK).await;
    assert_eq!(outcome["outcome"], "reset", "{outcome}");
    assert!(
        outcome["cause"].as_str().expect("cause").contains("abort"),
        "{outcome}"
    );
    // Other routes and the service itself keep answering.
    assert_eq!(
        fleet
            .get("back", "/healthz")
            .send()
            .await
            .expect("probe")
            .status(),
        200
    );
}

#[tokio::test]
async fn upstream_faults_act_on_the_callers_calls_and_the_upstream_never_sees_them() {
    let fleet = fleet().await;
    let fault = inject(&fleet, "front", json!({"upstream": "back", "status": 502})).await;
    assert_eq!(fault["upstream"], "back");
    let outcome: Value = expect_json(
        fleet.get("front", "/call").send().await.expect("call"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        outcome,
        json!({"outcome": "status", "status": 502, "slug": "fault-injected"})
    );
    assert_eq!(
        fleet.get("back", "/x").send().await.expect("x").status(),
        200,
        "back is fine"
    );
    assert_eq!(
        fleet.get("front", "/a").send().await.expect("a").status(),
        200,
        "front's own routes too"
    );

    // A fresh fleet for each kind of fault: front's circuit breaker for back meets injected
    // faults as it would meet real ones, and would remember the previous kind's failures.
    let fleet = self::fleet().await;
    inject(
        &fleet,
        "front",
        json!({"upstream": "back", "route": "GET:/x", "abort": true}),
    )
    .await;
    let outcome: Value = expect_json(
        fleet.get("front", "/call").send().await.expect("call"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(outcome["outcome"], "reset", "{outcome}");

    // A fresh fleet for each kind of fault: front's circuit breaker for back meets injected
    // faults as it would meet real ones, and would remember the previous kind's failures.
    let fleet = self::fleet().await;
    inject(
        &fleet,
        "front",
        json!({"upstream": "back", "latency_ms": 300}),
    )
    .await;
    let started = Instant::now();
    let outcome: Value = expect_json(
        fleet.get("front", "/call").send().await.expect("call"),
        StatusCode::OK,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(800),
        "{took:?}"
    );
    // A fault with a route the call does not take leaves it alone (one on an upstream front
    // does not call is refused: see `meaningless_or_ambiguous_faults_are_refused…`).
    // A fresh fleet for each kind of fault: front's circuit breaker for back meets injected
    // faults as it would meet real ones, and would remember the previous kind's failures.
    let fleet = self::fleet().await;
    inject(
        &fleet,
        "front",
        json!({"upstream": "back", "route": "POST:/x", "status": 503}),
    )
    .await;
    let outcome: Value = expect_json(
        fleet.get("front", "/call").send().await.expect("call"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(outcome["outcome"], "ok", "{outcome}");
}

#[tokio::test]
async fn the_admin_routes_are_never_faulted() {
    let fleet = fleet().await;
    for fault in [
        json!({"status": 503}),
        json!({"route": "/admin/*", "abort": true}),
        json!({"route": "*:/admin/faults", "status": 500}),
        json!({"route": "/*", "latency_ms": 300_000}),
    ] {
        inject(&fleet, "front", fault).await;
    }
    let started = Instant::now();
    assert_eq!(listed(&fleet, "front").await.len(), 4);
    let res = fleet
        .client("front")
        .as_admin(Method::DELETE, "/admin/faults")
        .send()
        .await
        .expect("clear");
    let cleared: Value = expect_json(res, StatusCode::OK).await;
    assert_eq!(cleared["cleared"], 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    let res = fleet
        .get("front", "/openapi.json")
        .send()
        .await
        .expect("doc");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_wildcard_route_does_not_fault_the_probes_only_a_route_naming_them_does() {
    let fleet = fleet().await;
    inject(&fleet, "front", json!({"route": "*:/*", "status": 500})).await;
    inject(&fleet, "front", json!({"route": "/{page}", "status": 500})).await;
    assert_eq!(
        fleet.get("front", "/a").send().await.expect("a").status(),
        500,
        "the wildcard faults the service's work"
    );
    for probe in ["/healthz", "/readyz"] {
        let res = fleet.get("front", probe).send().await.expect("probe");
        assert_eq!(res.status(), StatusCode::OK, "{probe} is not named");
    }
    inject(
        &fleet,
        "front",
        json!({"route": "GET:/readyz", "status": 503}),
    )
    .await;
    let res = fleet.get("front", "/readyz").send().await.expect("probe");
    let problem = expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem.slug(), "fault-injected");
    let res = fleet.get("front", "/healthz").send().await.expect("probe");
    assert_eq!(res.status(), StatusCode::OK, "only the probe named");
}

#[tokio::test]
async fn faults_expire_by_themselves() {
    let fleet = fleet().await;
    inject(&fleet, "front", json!({"status": 503, "for_secs": 1})).await;
    let faults = listed(&fleet, "front").await;
    let remaining = faults[0]["remaining_ms"].as_u64().expect("remaining");
    assert!((500..=1000).contains(&remaining), "{remaining}");
    assert_eq!(
        fleet.get("front", "/a").send().await.expect("a").status(),
        503
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fleet.get("front", "/a").send().await.expect("a").status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the fault outlived its second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed(&fleet, "front").await.is_empty());
}

#[tokio::test]
async fn invalid_faults_are_refused_with_every_reason() {
    let fleet = fleet().await;
    let post = |body: Value| {
        fleet
            .client("front")
            .as_admin(Method::POST, "/admin/faults")
            .json(&body)
            .send()
    };
    let res = post(json!({
        "rate": 1.5, "latency_ms": 300_001, "jitter_ms": 400_000, "status": 404,
        "for_secs": 7200, "route": "fetch /x", "upstream": "Not A Name"
    }))
    .await
    .expect("post");
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "for_secs",
            "jitter_ms",
            "latency_ms",
            "rate",
            "route",
            "status",
            "upstream"
        ]
    );
    assert!(
        problem
            .detail
            .expect("detail")
            .contains("rate: must be from 0 to 1")
    );
    for body in [
        json!({"for_secs": 0}),
        json!({"status": 200}),
        json!({"rate": -0.1}),
        json!({"latency_ms": -1}),
        json!({"latency": 5000}),
        json!({"route": "GET:/a b"}),
        json!({"abort": "yes"}),
        json!([null, null]),
        json!(null),
    ] {
        let res = post(body.clone()).await.expect("post");
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    assert!(
        listed(&fleet, "front").await.is_empty(),
        "nothing was added"
    );
    let res = fleet
        .client("front")
        .as_admin(
            Method::DELETE,
            "/admin/faults/flt_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b",
        )
        .send()
        .await
        .expect("delete");
    expect_problem(res, StatusCode::NOT_FOUND).await;
}

/// The outside tester's L2 and L5: faults that could never fire or say two things at once are
/// refused naming each field, and a number out of range is told its real range.
#[tokio::test]
async fn meaningless_or_ambiguous_faults_are_refused_with_the_real_ranges() {
    let fleet = fleet().await;
    let post = |body: Value| {
        fleet
            .client("front")
            .as_admin(Method::POST, "/admin/faults")
            .json(&body)
            .send()
    };
    for (body, field, says) in [
        (
            json!({"upstream": "nope"}),
            "upstream",
            "front does not call",
        ),
        (json!({"upstream": "front"}), "upstream", "is this service"),
        (json!({"route": "GET:/../../etc/passwd"}), "route", ".."),
        (json!({"route": "/a/./b"}), "route", ".."),
        (json!({"abort": true, "status": 503}), "abort", "together"),
        (json!({"latency_ms": -1}), "latency_ms", "0 to 300000"),
        (json!({"jitter_ms": 1.5}), "jitter_ms", "0 to 300000"),
        (json!({"for_secs": 1.5}), "for_secs", "1 to 3600"),
        (json!({"status": 99_999_999}), "status", "500 to 599"),
    ] {
        let res = post(body.clone()).await.expect("post");
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let error = problem
            .errors
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("{body}: {:?}", problem.errors));
        assert!(error.message.contains(says), "{body}: {}", error.message);
        assert!(!error.message.contains("18446744073709551615"), "{body}");
        assert!(!error.message.contains("65535"), "{body}");
    }
    // Every invalid field at once, the pre-read numbers among them.
    let res = post(
        json!({"latency_ms": -1, "for_secs": 0, "upstream": "front", "abort": true,
        "status": 503}),
    )
    .await
    .expect("post");
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        ["abort", "for_secs", "latency_ms", "status", "upstream"]
    );
    assert!(
        listed(&fleet, "front").await.is_empty(),
        "nothing was added"
    );

    // What front does call is taken; -0.0 is echoed as 0.
    let fault = inject(&fleet, "front", json!({"upstream": "back", "rate": -0.0})).await;
    assert_eq!(fault["rate"].to_string(), "0.0");
    let res = fleet
        .client("back")
        .as_admin(Method::POST, "/admin/faults")
        .json(&json!({"upstream": "front"}))
        .send()
        .await
        .expect("post");
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem.errors[0].message.contains("calls no other service"),
        "{:?}",
        problem.errors
    );
}

#[tokio::test]
async fn only_admins_see_or_change_faults() {
    let fleet = fleet().await;
    let front = fleet.client("front");
    for (method, path) in [
        (Method::GET, "/admin/faults"),
        (Method::POST, "/admin/faults"),
        (Method::DELETE, "/admin/faults"),
        (Method::DELETE, "/admin/faults/flt_1"),
    ] {
        let body = json!({"status": 503});
        let res = front
            .request(method.clone(), path)
            .json(&body)
            .send()
            .await
            .expect("anon");
        expect_problem(res, StatusCode::UNAUTHORIZED).await;
        let res = front
            .as_customer(method.clone(), path, "u1")
            .json(&body)
            .send()
            .await
            .expect("customer");
        expect_problem(res, StatusCode::FORBIDDEN).await;
    }
    assert!(listed(&fleet, "front").await.is_empty());
    assert_eq!(
        fleet.get("front", "/a").send().await.expect("a").status(),
        200
    );
}

#[tokio::test]
async fn the_fault_api_is_in_the_public_document_for_admins() {
    let fleet = fleet().await;
    let doc: Value = expect_json(
        fleet
            .get("front", "/openapi.json")
            .send()
            .await
            .expect("doc"),
        StatusCode::OK,
    )
    .await;
    for (path, method) in [
        ("/admin/faults", "get"),
        ("/admin/faults", "post"),
        ("/admin/faults", "delete"),
        ("/admin/faults/{id}", "delete"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(
            op["tags"]
                .as_array()
                .expect("tags")
                .contains(&json!("admin")),
            "{method} {path}"
        );
        assert_eq!(op["security"][0]["bearerAuth"][0], "admin");
        assert!(op["responses"]["403"].is_object());
    }
    let post = &doc["paths"]["/admin/faults"]["post"]["responses"];
    assert!(post["422"].is_object() && post["409"].is_object());
    let schema = &doc["components"]["schemas"]["NewFault"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["rate"]["maximum"], 1.0);
    assert_eq!(schema["properties"]["for_secs"]["maximum"], 3600);
    assert_eq!(schema["properties"]["latency_ms"]["maximum"], 300_000);
    assert_eq!(schema["properties"]["status"]["anyOf"][1]["minimum"], 500);
    assert!(schema["properties"]["route"]["pattern"].is_string());
}

/// `service` launched in this process, its router called directly (no socket), so that paused
/// time measures an injected delay exactly.
async fn in_process(spec: ServiceSpec) -> Router {
    let registry = InProcessRegistry::default();
    let env = LaunchEnv {
        config: figment::Figment::new(),
        peers: Peers::new(registry.clone(), HashMap::new()),
        clock: Arc::new(SystemClock),
        shutdown: tokio_util::sync::CancellationToken::new(),
        limits: Default::default(),
        trust: TrustPolicy {
            credentials: None,
            require_credential: false,
        },
        bus: Arc::new(InProcessBus::new()),
        relay: Default::default(),
        metrics: flotilla_chassis::metrics::Metrics::new(),
    };
    let launched = launch(&spec, &env, None).await.expect("launch");
    registry.register(spec.name, launched.router.clone());
    launched.router
}

fn admin_request(method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-flotilla-user-id", "admin-1")
        .header("x-flotilla-user-role", "admin")
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    req.extensions_mut().insert(InProcess);
    req
}

#[tokio::test(start_paused = true)]
async fn on_paused_time_the_delay_is_exactly_latency_and_the_fault_ends_at_its_expiry() {
    let router = in_process(FRONT).await;
    let res = router
        .clone()
        .oneshot(admin_request(
            Method::POST,
            "/admin/faults",
            Some(json!({"route": "GET:/a", "latency_ms": 5000, "for_secs": 60})),
        ))
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    let started = tokio::time::Instant::now();
    let res = router
        .clone()
        .oneshot(admin_request(Method::GET, "/a", None))
        .await
        .expect("a");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(55)).await;
    let started = tokio::time::Instant::now();
    let res = router
        .clone()
        .oneshot(admin_request(Method::GET, "/a", None))
        .await
        .expect("a");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::ZERO, "expired at 60 s");
}
