//! RELIABILITY.md F6 (issue 9, defect 3): Flotilla on a PostgreSQL server of the test's own,
//! which is stopped at once (as in a crash) for 5 s and started again; in one process
//! (`flotilla run`) and as a fleet with replicas (`flotilla up`). While it is down every service
//! answers 503 promptly, never 500 and never a hang; within 5 s of its return every service is
//! ready and a checkout goes through, with nothing restarted. Before the fix, orders and
//! inventory kept handing out their dead connections and answered 500 until restarted.

use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, terminal, try_checkout};
use crate::support::spawn_app_with;
use flotilla_testkit::PrivatePostgres;
use serde_json::json;
use std::time::{Duration, Instant};

/// Every service of `flotilla run`; each has a database.
const SERVICES: &[&str] = &[
    "identity",
    "catalog",
    "cart",
    "inventory",
    "orders",
    "payments",
    "shipping",
    "notifications",
];

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(5);
/// How soon a request must be answered while it is down (the request deadline is 10 s).
const PROMPT: Duration = Duration::from_secs(1);
/// How soon after the database is back everything must work again (F6).
const RECOVERY: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_answered_503_and_recovered_from_without_a_restart() {
    let pg = PrivatePostgres::start().await;
    let app = spawn_app_with(json!({
        "database_url": pg.url(),
        "database_prefix": "restart",
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "catalog": {"seed_products": 5},
        "inventory": {"seed_products": 5, "initial_stock": 100},
        "orders": {"respond_within_ms": 2000},
    }))
    .await;
    let probes = SERVICES
        .iter()
        .map(|s| {
            (
                format!("{s} readyz"),
                format!("{}/api/{s}/readyz", app.base),
            )
        })
        .collect();
    survive_a_restart(&pg, &app.base, probes).await;
}

/// The same with every service its own process and orders, cart and catalog replicated
/// (`flotilla up`): each instance's own `/readyz` is probed.
#[cfg(all(feature = "etcd", feature = "fleet"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_answers_503_while_postgres_restarts_and_recovers_without_a_restart() {
    let pg = PrivatePostgres::start().await;
    let fleet = crate::fleet::up_on(&pg.url(), "orders=2,cart=2,catalog=2", &[]);
    let probes = SERVICES
        .iter()
        .flat_map(|s| {
            fleet
                .instances(s)
                .into_iter()
                .map(move |(url, pid)| (format!("{s} {pid} readyz"), format!("{url}/readyz")))
        })
        .collect();
    survive_a_restart(&pg, &fleet.gateway, probes).await;
}

/// A checkout on the shop at `base`; the database stopped for [`OUTAGE`], during which every
/// probe and shopper request is answered 503 within [`PROMPT`]; then started again, after which
/// every probe answers 200 and a checkout is confirmed within [`RECOVERY`].
async fn survive_a_restart(pg: &PrivatePostgres, base: &str, probes: Vec<(String, String)>) {
    let http = reqwest::Client::new();
    let bearer = customer(&http, base).await;
    add_to_cart(&http, base, &bearer, "p0000001", 1).await;
    let (status, order) = try_checkout(&http, base, &bearer, "before", "4242424242424242")
        .await
        .expect("checkout");
    assert!(matches!(status, 201 | 202), "{status} {order}");
    let id = order["id"].as_str().expect("order id").to_owned();
    assert_eq!(
        terminal(&http, base, &bearer, &id, Duration::from_secs(20)).await["status"],
        "CONFIRMED"
    );

    pg.stop().await;
    let down = Instant::now();
    let mut asked = 0;
    while down.elapsed() < OUTAGE {
        let probing = probes
            .iter()
            .map(|(what, url)| (what.clone(), http.get(url)));
        for (what, request) in probing.chain(shopper_requests(&http, base, &bearer)) {
            let sent = Instant::now();
            let res = tokio::time::timeout(PROMPT * 2, request.send())
                .await
                .unwrap_or_else(|_| panic!("{what} hangs while the database is down"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let took = sent.elapsed();
            let status = res.status().as_u16();
            let retry_after = res.headers().get("retry-after").cloned();
            let body = res.text().await.unwrap_or_default();
            assert_eq!(status, 503, "{what} while the database is down: {body}");
            assert!(took < PROMPT, "{what} took {took:?} to answer 503");
            if !what.ends_with("readyz") {
                assert!(
                    retry_after.is_some(),
                    "{what}: 503 without Retry-After: {body}"
                );
            }
            asked += 1;
        }
        // A shopper's pace, not a flood: the machine is shared with the services under test.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{asked} requests answered 503 while the database was down");

    pg.resume().await;
    let back = Instant::now();
    let mut waiting: Vec<&(String, String)> = probes.iter().collect();
    let mut checkout_ok = false;
    let mut attempt = 0;
    while !(waiting.is_empty() && checkout_ok) {
        assert!(
            back.elapsed() < RECOVERY,
            "not recovered {:?} after the database returned: not ready {waiting:?}, checkout ok: {checkout_ok}",
            back.elapsed()
        );
        let mut still = Vec::new();
        for probe in waiting {
            let ready = http
                .get(&probe.1)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if !ready {
                still.push(probe);
            }
        }
        waiting = still;
        if !checkout_ok {
            attempt += 1;
            // The cart's own answer is not awaited for: the checkout tells whether it worked.
            let _ = http
                .put(format!("{base}/api/cart/items/p0000002"))
                .header("authorization", &bearer)
                .json(&json!({"quantity": 1}))
                .send()
                .await;
            let key = format!("after-{attempt}");
            if let Ok((201 | 202, order)) =
                try_checkout(&http, base, &bearer, &key, "4242424242424242").await
            {
                let id = order["id"].as_str().expect("order id");
                let done = terminal(&http, base, &bearer, id, RECOVERY).await;
                assert_eq!(done["status"], "CONFIRMED", "{done}");
                checkout_ok = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered {:?} after the database returned", back.elapsed());
}

/// What a shopper asks while the database is down: requests that need the cart's, catalog's
/// and orders' databases, and a checkout.
fn shopper_requests(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
) -> Vec<(String, reqwest::RequestBuilder)> {
    let mut requests = Vec::new();
    requests.push((
        "GET /api/orders".into(),
        http.get(format!("{base}/api/orders"))
            .header("authorization", bearer),
    ));
    requests.push((
        "GET /api/cart".into(),
        http.get(format!("{base}/api/cart"))
            .header("authorization", bearer),
    ));
    requests.push((
        "GET /api/catalog/products".into(),
        http.get(format!("{base}/api/catalog/products")),
    ));
    requests.push((
        "POST /api/orders".into(),
        http.post(format!("{base}/api/orders"))
            .header("authorization", bearer)
            .header("idempotency-key", format!("down-{}", rand::random::<u64>()))
            .json(&json!({
                "address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
                "card_number": "4242424242424242",
            })),
    ));
    requests
}
