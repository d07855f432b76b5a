//! `/metrics` of real processes (issue 14, item 3): the one-process shop after a checkout — the
//! business, saga, client, server and event series read back from the metrics listener, the
//! per-service view, and the gateway's public listener refusing to serve them — and a process
//! of the fleet (`flotilla serve gateway catalog`): each service's own `/metrics` on its
//! listener, the gateway's on the metrics listener. Every exposition passes
//! `promtool check metrics` (scripts/deps.sh installs it; a test without it fails).

use crate::checkout::{
    ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, checkout, customer, login, shop, terminal,
};
use crate::support::Process;
use flotilla_testkit::prometheus::{promtool_check, sample, value};
use std::time::{Duration, Instant};

async fn scrape(http: &reqwest::Client, url: String) -> String {
    let response = http.get(&url).send().await.expect("scrape");
    assert_eq!(response.status(), 200, "GET {url}");
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.expect("text")
}

#[tokio::test]
async fn the_one_process_shop_exposes_every_family_after_a_checkout() {
    let app = shop(10, 100).await;
    let http = &app.http;
    let bearer = customer(http, &app.base).await;
    add_to_cart(http, &app.base, &bearer, "p0000001", 2).await;
    let (status, order) = checkout(http, &app.base, &bearer, "metrics-1", "4242424242424242").await;
    assert!(status == 201 || status == 202, "{status}: {order}");
    let id = order["id"].as_str().expect("id").to_owned();
    let order = terminal(http, &app.base, &bearer, &id, Duration::from_secs(15)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");

    // The notification and the cart clearing arrive by events, after the answer.
    let whole = format!("{}/metrics", app.metrics);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(http, whole.clone()).await;
        let handled = sample(
            &text,
            "flotilla_events_consumed_total",
            &[("service", "notifications"), ("result", "handled")],
        );
        if handled >= Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no event handled:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let orders = [("service", "orders")];
    assert_eq!(value(&text, "flotilla_orders_placed_total", &orders), 1.0);
    let saga = [orders[0], ("outcome", "confirmed")];
    assert_eq!(value(&text, "flotilla_sagas_completed_total", &saga), 1.0);
    assert_eq!(
        value(&text, "flotilla_saga_duration_seconds_count", &saga),
        1.0
    );
    let total = order["total"]["amount_minor"].as_f64().expect("total");
    let currency = order["total"]["currency"].as_str().expect("currency");
    assert_eq!(
        value(
            &text,
            "flotilla_order_revenue_minor_units_total",
            &[orders[0], ("currency", currency)]
        ),
        total
    );
    // Orders' calls to payments (authorize, capture) as its client saw them.
    let to_payments = [orders[0], ("upstream", "payments"), ("outcome", "success")];
    assert!(
        value(
            &text,
            "http_client_request_duration_seconds_count",
            &to_payments
        ) >= 2.0
    );
    // Served by orders, by its route template; and by the gateway, by its own.
    let served = |service: &str, route: &str, method: &str| {
        text.lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
            .filter(|l| {
                [
                    format!("service=\"{service}\""),
                    format!("route=\"{route}\""),
                    format!("method=\"{method}\""),
                ]
                .iter()
                .all(|label| l.contains(label.as_str()))
            })
            .count()
    };
    assert!(served("orders", "/", "POST") >= 1, "{text}");
    assert!(served("gateway", "/api/{*rest}", "POST") >= 1, "{text}");
    // The orders outbox relayed its events; the relay's lag was recorded for each.
    assert!(value(&text, "flotilla_outbox_published_total", &orders) >= 1.0);
    assert!(value(&text, "flotilla_outbox_relay_lag_seconds_count", &orders) >= 1.0);
    assert_eq!(
        value(
            &text,
            "flotilla_dead_letters",
            &[("service", "notifications")]
        ),
        0.0
    );
    // Pools, breakers and the gateway's load.
    assert!(value(&text, "flotilla_db_pool_max_connections", &orders) >= 1.0);
    assert_eq!(
        value(
            &text,
            "flotilla_breaker_state",
            &[orders[0], ("upstream", "payments"), ("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "flotilla_shed_requests_total",
            &[("service", "gateway")]
        ),
        0.0
    );
    promtool_check(&text);

    // One service's view: its series only, still valid.
    let view = scrape(http, format!("{whole}?service=orders")).await;
    assert!(view.contains("flotilla_orders_placed_total"));
    assert!(
        view.lines()
            .all(|l| l.starts_with('#') || l.contains("service=\"orders\"")),
        "{view}"
    );
    promtool_check(&view);

    // Never on the public listener: not at /metrics, not through a service's API path.
    // (orders' `/{id}` template would match `/metrics`: refused at the edge before it.)
    for path in ["/metrics", "/api/orders/metrics", "/api/storefront/metrics"] {
        let response = http
            .get(format!("{}{path}", app.base))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 404, "{path}: {body}");
    }
    // Admins may read it through the gateway.
    let admin_metrics = format!("{}/api/gateway/admin/metrics?service=payments", app.base);
    let anonymous = http.get(&admin_metrics).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let as_customer = http
        .get(&admin_metrics)
        .header("authorization", &bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(as_customer.status(), 403);
    let admin = login(http, &app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let response = http
        .get(&admin_metrics)
        .header("authorization", &admin)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let payments = response.text().await.expect("text");
    assert!(payments.contains("service=\"payments\"") && !payments.contains("service=\"orders\""));
}

#[tokio::test]
async fn a_fleet_process_serves_each_services_metrics_and_the_gateways_on_the_metrics_listener() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("path");
    let process = Process::start(
        &[
            "serve",
            "gateway",
            "catalog",
            "--port",
            "0",
            "--data-dir",
            data,
            "--listen",
            "catalog=127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[("FLOTILLA_CATALOG__SEED_PRODUCTS", "5")],
    );
    let http = reqwest::Client::new();
    // Through the gateway, so the gateway and catalog both have requests to show.
    let gateway = process.url("gateway");
    let products = http
        .get(format!("{gateway}/api/catalog/products"))
        .send()
        .await
        .expect("products");
    assert_eq!(products.status(), 200);

    // Catalog's own listener: its series, no credential needed (like the probes), while its
    // API still wants one.
    let catalog = process.url("catalog");
    let own = scrape(&http, format!("{catalog}/metrics")).await;
    assert!(
        own.lines()
            .all(|l| l.starts_with('#') || l.contains("service=\"catalog\""))
    );
    assert!(
        value(
            &own,
            "http_server_request_duration_seconds_count",
            &[("route", "/products"), ("method", "GET"), ("status", "200")]
        ) >= 1.0
    );
    promtool_check(&own);
    let refused = http
        .get(format!("{catalog}/products"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 401);

    // The metrics listener: the whole process, the gateway included.
    let all = scrape(&http, format!("{}/metrics", process.url("metrics"))).await;
    assert!(
        value(
            &all,
            "http_client_request_duration_seconds_count",
            &[
                ("service", "gateway"),
                ("upstream", "catalog"),
                ("outcome", "success")
            ]
        ) >= 1.0
    );
    promtool_check(&all);
    let public = http
        .get(format!("{gateway}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(public.status(), 404);
}
