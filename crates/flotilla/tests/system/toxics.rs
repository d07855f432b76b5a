//! RELIABILITY.md F12: Toxiproxy's faults on every link between services. The shop runs as two
//! processes — `flotilla run` (gateway, identity, cart, orders, notifications, storefront) and
//! `flotilla serve catalog inventory payments shipping` — and every call from the first to the
//! second goes through a fault proxy of the test's own, one per service: the gateway's calls to
//! all four, cart's to catalog, and orders' to catalog, inventory, payments and shipping. Each
//! toxic in turn is put on every link; meanwhile a shopper's requests (every one with a 1 s
//! deadline) go to the gateway. The pass figures: no panic; clients see only 502, 503 or 504
//! when they do not see a success; no answer later than the deadline + 100 ms; once the toxic
//! is removed, everything works again within 5 s.
//!
//! The client's own link to the gateway carries no toxic: a fault there is between the test and
//! the gateway, and no answer of the shop's could reach through it.

use crate::checkout::{add_to_cart, customer};
use crate::partition::Split;
use flotilla_testkit::fault_proxy::{Proxy, Stream, Toxic, ToxicKind};
use serde_json::json;
use std::time::{Duration, Instant};

/// The shop the database and NATS link tests start: an admin, a small catalog, a short
/// respond-within and a 1 s breaker wait, so that recovery shows within the test.
#[cfg(feature = "postgres")]
const SHOP_ENV: &[(&str, &str)] = &[
    ("FLOTILLA_ADMIN_EMAIL", crate::checkout::ADMIN_EMAIL),
    ("FLOTILLA_ADMIN_PASSWORD", crate::checkout::ADMIN_PASSWORD),
    ("FLOTILLA_CATALOG__SEED_PRODUCTS", "20"),
    ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "20"),
    ("FLOTILLA_INVENTORY__INITIAL_STOCK", "100"),
    ("FLOTILLA_ORDERS__RESPOND_WITHIN_MS", "500"),
    ("FLOTILLA_RESILIENCE__BREAKER__OPEN_WAIT_MS", "1000"),
];

/// The deadline every request carries.
const DEADLINE: Duration = Duration::from_millis(1000);
/// F12's margin over the deadline.
const LATE: Duration = Duration::from_millis(100);
/// How long each toxic stays on.
const PHASE: Duration = Duration::from_millis(1500);
/// F12: everything works again within 5 s of the toxic's removal.
const RECOVERY: Duration = Duration::from_secs(5);

/// Every toxic type, with attributes that hurt within the deadline.
fn toxics() -> Vec<ToxicKind> {
    vec![
        ToxicKind::Latency {
            latency: 300,
            jitter: 100,
        },
        ToxicKind::Bandwidth { rate: 1 },
        ToxicKind::SlowClose { delay: 500 },
        ToxicKind::Timeout { timeout: 400 },
        ToxicKind::ResetPeer { timeout: 0 },
        ToxicKind::Slicer {
            average_size: 16,
            size_variation: 8,
            delay: 2000,
        },
        ToxicKind::LimitData { bytes: 200 },
    ]
}

#[derive(Debug)]
struct Answer {
    what: &'static str,
    status: Option<u16>,
    took: Duration,
    detail: String,
}

impl Answer {
    /// A success; or, for a checkout, the shop's true answer that the buyer's previous order is
    /// still running (its saga waits out a toxic, or its backoff) and holds the cart (409
    /// checkout-in-progress), or ended and emptied it while this one was being priced (409
    /// cart-changed). The test checks out the same cart round after round; those are its own
    /// races, not the faults'.
    fn ok(&self) -> bool {
        matches!(self.status, Some(200..=299))
            || (self.what == "POST order"
                && self.status == Some(409)
                && (self.detail.contains("checkout-in-progress")
                    || self.detail.contains("cart-changed")))
    }
}

async fn send(what: &'static str, request: reqwest::RequestBuilder) -> Answer {
    let sent = Instant::now();
    let res = request
        .header("x-flotilla-deadline-ms", DEADLINE.as_millis().to_string())
        .timeout(DEADLINE * 5)
        .send()
        .await;
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            // The answer has come when its body has.
            let detail = res.text().await.unwrap_or_else(|e| format!("body: {e}"));
            Answer {
                what,
                status: Some(status),
                took: sent.elapsed(),
                detail: detail.chars().take(300).collect(),
            }
        }
        Err(e) => Answer {
            what,
            status: None,
            took: sent.elapsed(),
            detail: e.to_string(),
        },
    }
}

/// One round of a shopper's requests, at once: a product and a page of products (gateway →
/// catalog), a stock level (gateway → inventory), a cart line (cart → catalog) and a checkout
/// (orders → catalog and shipping, its saga → inventory, payments and shipping).
async fn round(
    http: &reqwest::Client,
    base: &str,
    shopper: &str,
    buyer: &str,
    n: u32,
) -> Vec<Answer> {
    let product = format!("p{:07}", n % 20 + 1);
    let reads = futures::future::join_all([
        send(
            "GET product",
            http.get(format!("{base}/api/catalog/products/{product}")),
        ),
        send(
            "GET products",
            http.get(format!("{base}/api/catalog/products?page_size=50")),
        ),
        send(
            "GET stock",
            http.get(format!("{base}/api/inventory/stock/{product}")),
        ),
        send(
            "PUT cart line",
            http.put(format!("{base}/api/cart/items/{product}"))
                .header("authorization", shopper)
                .json(&json!({"quantity": n % 5 + 1})),
        ),
    ]);
    let buy = async {
        let line = send(
            "PUT cart line (buyer)",
            http.put(format!("{base}/api/cart/items/{product}"))
                .header("authorization", buyer)
                .json(&json!({"quantity": 1})),
        )
        .await;
        if !line.ok() {
            return vec![line];
        }
        let order = send(
            "POST order",
            http.post(format!("{base}/api/orders"))
                .header("authorization", buyer)
                .header("idempotency-key", format!("f12-{n}-{}", rand::random::<u32>()))
                .json(&json!({
                    "address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
                    "card_number": "4242424242424242",
                })),
        )
        .await;
        vec![line, order]
    };
    let (mut answers, bought) = tokio::join!(reads, buy);
    answers.extend(bought);
    answers
}

/// What in `answers` breaks F12's figures.
fn violations(toxic: &str, answers: &[Answer]) -> Vec<String> {
    let mut found = Vec::new();
    for a in answers {
        if !(a.ok() || matches!(a.status, Some(502..=504))) {
            found.push(format!(
                "{toxic}: {} answered {:?} after {:?}: {}",
                a.what, a.status, a.took, a.detail
            ));
        } else if a.took > DEADLINE + LATE {
            found.push(format!(
                "{toxic}: {} answered {:?} after {:?}, past the deadline {DEADLINE:?} + {LATE:?}: {}",
                a.what, a.status, a.took, a.detail
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_on_every_link_give_only_502_503_504_by_the_deadline_and_recover_within_5s() {
    let mut split = Split::start(
        &["catalog", "inventory", "payments", "shipping"],
        &[
            // A checkout answers 202 (still running) before its client's deadline.
            ("FLOTILLA_ORDERS__RESPOND_WITHIN_MS", "500"),
            // A breaker the toxics opened lets probes through 1 s later (default 5 s): the
            // figure is about what comes back within 5 s.
            ("FLOTILLA_RESILIENCE__BREAKER__OPEN_WAIT_MS", "1000"),
        ],
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let base = split.gateway.clone();
    let problems = every_toxic_on(&split.links, &http, &base, &[]).await;
    assert!(split.run.running(), "the run process exited");
    assert!(split.served.running(), "the serve process exited");
    no_panic(&split);
    assert!(
        problems.is_empty(),
        "{} answers break F12's figures",
        problems.len()
    );
}

/// Puts each toxic in turn on every proxy of `links` while a shopper's rounds go to the gateway
/// at `base`, then removes it and waits until a round succeeds again; prints what it saw and
/// returns every breach of F12's figures.
///
/// With `drained` services named, recovery also needs each one's outbox empty
/// (`/admin/outbox` pending 0): its events are flowing again.
pub(crate) async fn every_toxic_on(
    links: &[(String, Proxy)],
    http: &reqwest::Client,
    base: &str,
    drained: &[&str],
) -> Vec<String> {
    let admin = crate::checkout::login(
        http,
        base,
        crate::checkout::ADMIN_EMAIL,
        crate::checkout::ADMIN_PASSWORD,
    )
    .await;
    let shopper = customer(http, base).await;
    let buyer = customer(http, base).await;
    add_to_cart(http, base, &buyer, "p0000001", 1).await;
    let mut n = 0;
    let healthy = round(http, base, &shopper, &buyer, n).await;
    assert!(healthy.iter().all(Answer::ok), "healthy: {healthy:?}");
    let mut report = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for kind in toxics() {
        let name = kind.type_name();
        for (_, link) in links {
            link.add_toxic(Toxic::new(kind).on(Stream::Downstream))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let on = Instant::now();
        let mut answers = Vec::new();
        while on.elapsed() < PHASE {
            n += 1;
            answers.extend(round(http, base, &shopper, &buyer, n).await);
            // A shopper's pace: fast failures (reset_peer) must not turn this into a flood.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let found = violations(name, &answers);
        let broken = found.len();
        problems.extend(found);
        let failed = answers.iter().filter(|a| !a.ok()).count();
        let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();

        let toxic = format!("{name}_downstream");
        for (_, link) in links {
            link.remove_toxic(&toxic)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let off = Instant::now();
        loop {
            n += 1;
            let answers = round(http, base, &shopper, &buyer, n).await;
            problems.extend(violations(&format!("after {name}"), &answers));
            let mut undrained = Vec::new();
            for service in drained {
                let report: serde_json::Value = http
                    .get(format!("{base}/api/{service}/admin/outbox"))
                    .header("authorization", &admin)
                    .send()
                    .await
                    .expect("outbox")
                    .json()
                    .await
                    .expect("json");
                if report["pending"] != 0 {
                    undrained.push(format!("{service}: {report}"));
                }
            }
            if answers.iter().all(Answer::ok) && undrained.is_empty() {
                break;
            }
            if off.elapsed() > RECOVERY {
                problems.push(format!(
                    "{name}: not recovered {:?} after its removal: {:?}",
                    off.elapsed(),
                    answers.iter().filter(|a| !a.ok()).collect::<Vec<_>>()
                ));
                problems.extend(undrained);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovered = off.elapsed();
        report.push(format!(
            "{name}: {} answers, {failed} failed, {broken} past the figures, slowest {slowest:?}, recovered in {recovered:?}",
            answers.len()
        ));
    }
    for line in &report {
        eprintln!("F12: {line}");
    }
    for line in &problems {
        eprintln!("F12 violation: {line}");
    }
    problems
}

/// Neither process logged a panic.
pub(crate) fn no_panic(split: &Split) {
    for log in ["run.log", "serve.log"] {
        no_panic_in(&split.logs.path().join(log));
    }
}

/// The standard error a process wrote to `log` has no panic in it.
pub(crate) fn no_panic_in(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("panicked"),
        "a panic in {}:\n{text}",
        log.display()
    );
}

/// F12 on the link every service has to its database: `flotilla run` on a PostgreSQL server of
/// the test's own, reached through a fault proxy (the shared server is never touched), with
/// each toxic on it in turn. The services' connection pools must come back within 5 s of the
/// toxic's removal.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_on_the_database_link_give_only_502_503_504_by_the_deadline_and_pools_recover() {
    use crate::support::Process;
    let pg = flotilla_testkit::PrivatePostgres::start().await;
    let link =
        flotilla_testkit::fault_proxy::fault_proxy(&format!("127.0.0.1:{}", pg.port())).await;
    let url = format!("postgres://postgres@{}", link.addr());
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let log = dir.path().join("run.log");
    let mut run = Process::start_logging(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--database-url",
            &url,
            "--database-prefix",
            "f12",
        ],
        SHOP_ENV,
        &log,
    );
    let http = reqwest::Client::new();
    let base = run.url("gateway");
    let problems = every_toxic_on(&[("postgres".to_owned(), link)], &http, &base, &[]).await;
    assert!(run.running(), "the run process exited");
    no_panic_in(&log);
    assert!(
        problems.is_empty(),
        "{} answers break F12's figures",
        problems.len()
    );
}

/// F12 on the link to the event bus: `flotilla run` on a NATS JetStream server of the test's
/// own, reached through a fault proxy, with each toxic on it in turn. Events go out through the
/// outbox, so a shopper's requests must not feel the link at all beyond the figures; recovery
/// is the outboxes of orders, payments, inventory and shipping empty again within 5 s.
#[cfg(all(feature = "etcd", feature = "fleet"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_on_the_nats_link_give_only_502_503_504_by_the_deadline_and_recover() {
    use crate::support::Process;
    let nats = crate::infra::nats();
    let link =
        flotilla_testkit::fault_proxy::fault_proxy(nats.url.trim_start_matches("nats://")).await;
    let url = format!("nats://{}", link.addr());
    let cluster = crate::infra::unique("ft");
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let log = dir.path().join("run.log");
    let mut run = Process::start_logging(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--nats-url",
            &url,
            "--cluster",
            &cluster,
        ],
        SHOP_ENV,
        &log,
    );
    let http = reqwest::Client::new();
    let base = run.url("gateway");
    let problems = every_toxic_on(
        &[("nats".to_owned(), link)],
        &http,
        &base,
        &["orders", "payments", "inventory", "shipping"],
    )
    .await;
    assert!(run.running(), "the run process exited");
    no_panic_in(&log);
    assert!(
        problems.is_empty(),
        "{} answers break F12's figures",
        problems.len()
    );
}
