//! Tracing in one process and in a fleet (issue 14): one checkout is one trace, from the gateway through
//! orders, its saga steps and the services they call, to the event's consumers — the structure
//! asserted span by span, read back from the gateway's admin API.

use crate::checkout::{
    ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, login, shop, terminal, traced_checkout,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The spans the gateway at `base` keeps of `trace`, as soon as `ready` holds for them (spans
/// arrive after the answers: events are consumed, exports batched); fails after `within`.
pub(crate) async fn spans_once(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    trace: &str,
    within: Duration,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let res = http
            .get(format!("{base}/api/gateway/admin/traces/{trace}"))
            .header("authorization", admin)
            .send()
            .await
            .expect("trace");
        // 404 until the trace's first span is kept.
        let mut spans = Vec::new();
        if res.status() == 200 {
            let body: Value = res.json().await.expect("json");
            spans = body["spans"].as_array().cloned().unwrap_or_default();
            if ready(&spans) {
                return spans;
            }
        } else {
            assert_eq!(res.status(), 404, "reading trace {trace}");
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace} not complete within {within:?}: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spans_named<'a>(spans: &'a [Value], service: &str, kind: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["service"] == service && s["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn one_checkout_is_one_trace_from_the_gateway_to_the_events_consumers() {
    let app = shop(30, 5).await;
    let (http, base) = (&app.http, app.base.as_str());
    let ada = customer(http, base).await;
    add_to_cart(http, base, &ada, "p0000003", 1).await;
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let order = traced_checkout(http, base, &ada, "trace-1", &traceparent).await;
    let id = order["id"].as_str().expect("id");
    let order = terminal(http, base, &ada, id, Duration::from_secs(15)).await;
    assert_eq!(order["status"], "CONFIRMED");

    // The events' consumers finish after the answer: wait for both of them.
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let spans = spans_once(
        http,
        base,
        &admin,
        TRACE,
        Duration::from_secs(10),
        |spans| spans.iter().filter(|s| s["kind"] == "consumer").count() >= 2,
    )
    .await;
    one_checkout_trace(&spans, TRACE, id);

    // The list shows the trace, newest first, and filters by service.
    let list: Value = http
        .get(format!(
            "{base}/api/gateway/admin/traces?service=payments&limit=5"
        ))
        .header("authorization", &admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        list["traces"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["trace_id"] == TRACE)),
        "{list:#}"
    );
}

/// The same in a fleet (`flotilla up` on PostgreSQL, NATS and etcd, every service its own
/// process): each process exports its spans to the gateway's receiver (`up` points them there
/// when no OTLP endpoint is configured), so the gateway holds the whole trace, with the same
/// structure as in one process.
#[cfg(all(feature = "etcd", feature = "fleet"))]
#[tokio::test]
async fn one_checkout_is_one_trace_across_the_processes_of_a_fleet() {
    const FLEET_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let fleet = crate::fleet::up_on(&crate::infra::postgres(), "", &[]);
    let http = reqwest::Client::new();
    let base = fleet.gateway.as_str();
    let ada = customer(&http, base).await;
    add_to_cart(&http, base, &ada, "p0000003", 1).await;
    let traceparent = format!("00-{FLEET_TRACE}-{CALLER_SPAN}-01");
    let order = traced_checkout(&http, base, &ada, "fleet-trace-1", &traceparent).await;
    let id = order["id"].as_str().expect("id");
    let order = terminal(&http, base, &ada, id, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "CONFIRMED");
    let admin = login(&http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // Exports are batched: wait until every process's part has arrived.
    let spans = spans_once(
        &http,
        base,
        &admin,
        FLEET_TRACE,
        Duration::from_secs(30),
        |spans| {
            let served: HashSet<&str> = spans
                .iter()
                .filter(|s| s["kind"] == "server")
                .filter_map(|s| s["service"].as_str())
                .collect();
            spans.iter().filter(|s| s["kind"] == "consumer").count() >= 2
                && ["orders", "inventory", "payments", "shipping"]
                    .iter()
                    .all(|s| served.contains(s))
        },
    )
    .await;
    one_checkout_trace(&spans, FLEET_TRACE, id);
}

/// A second shop process (`flotilla run`) of `receiver`'s fleet (its service secret) exporting
/// its spans to `endpoint`, with its data directory.
fn exporting_member(
    receiver: &crate::support::TestApp,
    endpoint: &str,
) -> (crate::support::Process, tempfile::TempDir) {
    let secret = std::fs::read_to_string(receiver.dir.path().join("service-secret"))
        .expect("the receiver's secret");
    let dir = tempfile::tempdir().expect("tempdir");
    let member = crate::support::Process::start(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("FLOTILLA_SERVICE_SECRET", secret.trim()),
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "5"),
        ],
    );
    (member, dir)
}

/// Asserts that `spans` are one checkout's trace `trace` (order `id`), span by span: the
/// gateway's server span its root (the caller's span its parent), every other span hanging
/// from a span of the trace, each service's server span the child of a client span that named
/// it, the saga's steps spans of orders, order.confirmed's consumers children of its
/// publication.
fn one_checkout_trace(spans: &[Value], trace: &str, id: &str) {
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["span_id"].as_str().expect("span id"), s))
        .collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    let parent = |span: &Value| -> &Value {
        let id = span["parent_span_id"].as_str().expect("a parent");
        by_id
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("{span:#} has a parent outside the trace"))
    };

    // The root: the gateway's server span, child of the caller's own span.
    let edge = spans_named(spans, "gateway", "server");
    assert_eq!(edge.len(), 1, "{spans:#?}");
    assert_eq!(edge[0]["parent_span_id"], CALLER_SPAN);
    assert_eq!(edge[0]["name"], "POST /api/{*rest}");
    order_status(spans);
    // Every other span hangs from a span of this trace: nothing is cut off.
    for span in spans {
        if span["span_id"] != edge[0]["span_id"] {
            parent(span);
        }
        assert_eq!(span["trace_id"], trace);
    }
    // Each service's server span is the child of a client span that called it by name.
    let mut served = HashSet::new();
    for span in spans
        .iter()
        .filter(|s| s["kind"] == "server" && s["service"] != "gateway")
    {
        let service = span["service"].as_str().expect("service");
        let call = parent(span);
        assert_eq!(call["kind"], "client", "{span:#}");
        assert_eq!(call["attributes"]["server.address"], service, "{call:#}");
        served.insert(service);
    }
    for service in ["orders", "inventory", "payments", "shipping"] {
        assert!(served.contains(service), "{service} served in {served:?}");
    }
    let checkout = spans
        .iter()
        // orders serves the checkout at its own `/` (the gateway's `/api/orders`).
        .find(|s| s["service"] == "orders" && s["name"] == "POST /")
        .unwrap_or_else(|| panic!("orders served the checkout: {spans:#?}"));
    assert_eq!(checkout["kind"], "server");
    assert_eq!(checkout["attributes"]["http.route"], "/");
    assert_eq!(parent(parent(checkout))["span_id"], edge[0]["span_id"]);
    // The saga's steps are spans of orders, and the calls they make are their children.
    let steps: Vec<&Value> = spans
        .iter()
        .filter(|s| {
            s["kind"] == "internal" && s["name"].as_str().is_some_and(|n| n.starts_with("saga "))
        })
        .collect();
    assert!(steps.len() >= 3, "saga steps: {steps:#?}");
    for step in &steps {
        assert_eq!(step["attributes"]["flotilla.order_id"], id);
    }
    let payment = spans
        .iter()
        .find(|s| s["service"] == "payments" && s["kind"] == "server")
        .expect("payments served");
    assert_eq!(parent(parent(payment))["kind"], "internal", "{payment:#}");
    // order.confirmed: published by orders, processed by the cart and by notifications, each
    // consumer's span the child of the publication.
    let published = spans
        .iter()
        .find(|s| s["kind"] == "producer" && s["name"] == "publish order.confirmed")
        .expect("order.confirmed published");
    assert_eq!(published["service"], "orders");
    let consumers: Vec<&str> = spans
        .iter()
        .filter(|s| s["kind"] == "consumer" && s["name"] == "process order.confirmed")
        .inspect(|s| assert_eq!(parent(s)["span_id"], published["span_id"]))
        .map(|s| s["service"].as_str().expect("service"))
        .collect();
    for consumer in ["cart", "notifications"] {
        assert!(consumers.contains(&consumer), "{consumer} in {consumers:?}");
    }
}

/// The status the gateway answered the checkout with, from its own span.
fn order_status(spans: &[Value]) {
    let edge = spans_named(spans, "gateway", "server");
    let status = edge[0]["attributes"]["http.response.status_code"].clone();
    assert!(status == 201 || status == 202, "{:#}", edge[0]);
}

#[tokio::test]
async fn traces_are_for_administrators_and_ids_are_checked() {
    let app = shop(5, 5).await;
    let (http, base) = (&app.http, app.base.as_str());
    let res = http
        .get(format!("{base}/api/gateway/admin/traces"))
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 401);
    let ada = customer(http, base).await;
    let res = http
        .get(format!("{base}/api/gateway/admin/traces"))
        .header("authorization", &ada)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 403);
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let unknown = format!("traces/{}", "a".repeat(32));
    for (path, status) in [
        ("traces/not-hex", 400),
        ("traces/00000000000000000000000000000000", 400),
        (unknown.as_str(), 404),
        ("traces?limit=0", 400),
        ("traces?limit=201", 400),
        ("traces?colour=red", 400),
        ("traces?limit=1", 200),
    ] {
        let res = http
            .get(format!("{base}/api/gateway/admin/{path}"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), status, "{path}");
        if status != 200 {
            assert_eq!(
                res.headers()["content-type"],
                "application/problem+json",
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn another_process_exports_its_spans_to_the_gateways_otlp_receiver() {
    // The receiver: a shop in this process; the exporter: the real binary in another,
    // configured only through the standard OpenTelemetry variables and the flag.
    let (receiver, admin) = crate::checkout::admin_shop().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("{}/api/gateway/otlp", receiver.base);
    let headers = format!("authorization={}", admin.replace(' ', "%20"));
    let exporter = crate::support::Process::start(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
            "--otlp-endpoint",
            &endpoint,
        ],
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str()),
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "5"),
        ],
    );
    let trace = "1af7651916cd43dd8448eb211c80319c";
    let res = receiver
        .http
        .get(format!(
            "{}/api/catalog/products/p0000001",
            exporter.url("gateway")
        ))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    // Batches leave at most a second after their first span.
    let spans = spans_once(
        &receiver.http,
        &receiver.base,
        &admin,
        trace,
        Duration::from_secs(15),
        |spans| spans.iter().any(|s| s["name"] == "GET /products/{id}"),
    )
    .await;
    let edge = spans_named(&spans, "gateway", "server");
    assert_eq!(edge.len(), 1, "{spans:#?}");
    assert_eq!(edge[0]["parent_span_id"], "b7ad6b7169203331");
    // (The gateway reads catalog's contract first, in the same trace.)
    let read = spans_named(&spans, "catalog", "server")
        .into_iter()
        .find(|s| s["name"] == "GET /products/{id}")
        .unwrap_or_else(|| panic!("the read's span: {spans:#?}"));
    assert_eq!(read["attributes"]["http.response.status_code"], 200);

    // A process of the same fleet needs no token: it sends its service credential, and only
    // to a gateway's receiver.
    let (member, _fleet_dir) = exporting_member(&receiver, &endpoint);
    let fleet_trace = "1af7651916cd43dd8448eb211c80319c";
    let res = receiver
        .http
        .get(format!(
            "{}/api/catalog/products/p0000002",
            member.url("gateway")
        ))
        .header(
            "traceparent",
            format!("00-{fleet_trace}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    spans_once(
        &receiver.http,
        &receiver.base,
        &admin,
        fleet_trace,
        Duration::from_secs(15),
        |spans| !spans.is_empty(),
    )
    .await;

    // Nobody else may write into the store.
    let res = receiver
        .http
        .post(format!("{endpoint}/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("anonymous export");
    assert_eq!(res.status(), 401);
    let res = receiver
        .http
        .post(format!("{endpoint}/v1/traces"))
        .header("authorization", &admin)
        .header("content-type", "application/x-protobuf")
        .body(vec![0u8; 8])
        .send()
        .await
        .expect("protobuf export");
    assert_eq!(res.status(), 415);
    let res = receiver
        .http
        .post(format!("{endpoint}/v1/traces"))
        .header("authorization", &admin)
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#)
        .send()
        .await
        .expect("bad export");
    assert_eq!(res.status(), 400);
}

/// The receiver on a listener of its own (`gateway.otlp_port`; port 4318 in the Kubernetes
/// manifests, the one port of the gateway the fleet's pods may reach): another process of the
/// fleet exports to it with the real exporter and its service credential, and that listener
/// serves the receiver and nothing else, so reaching it is no way to the services.
#[tokio::test]
async fn the_gateways_own_otlp_port_takes_the_fleets_spans_and_serves_nothing_else() {
    let otlp = crate::support::free_port();
    let receiver = crate::support::spawn_app_with(json!({
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "gateway": {"otlp_port": otlp},
    }))
    .await;
    let admin = login(&receiver.http, &receiver.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let endpoint = format!("http://127.0.0.1:{otlp}/api/gateway/otlp");
    let (member, _dir) = exporting_member(&receiver, &endpoint);
    let trace = "2af7651916cd43dd8448eb211c80319c";
    let res = receiver
        .http
        .get(format!(
            "{}/api/catalog/products/p0000001",
            member.url("gateway")
        ))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 200);
    spans_once(
        &receiver.http,
        &receiver.base,
        &admin,
        trace,
        Duration::from_secs(15),
        |spans| spans.iter().any(|s| s["name"] == "GET /products/{id}"),
    )
    .await;
    // Nothing but the receiver there: no API, no site, no probes, no admin routes; and the
    // receiver still wants a credential.
    for path in [
        "/api/catalog/products",
        "/",
        "/healthz",
        "/api/gateway/admin/traces",
    ] {
        let res = receiver
            .http
            .get(format!("http://127.0.0.1:{otlp}{path}"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 404, "{path}");
    }
    let res = receiver
        .http
        .post(format!("{endpoint}/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("anonymous export");
    assert_eq!(res.status(), 401);
}
