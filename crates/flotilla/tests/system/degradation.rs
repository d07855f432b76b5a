//! RELIABILITY.md L4 and issue 12's "shipping answering in 5 s": one dependency of the pages
//! turns slow and the pages do not. The storefront asks shipping for an estimate on every
//! product and cart page, under a 300 ms optional-call deadline; once shipping answers in 5 s
//! (an injected fault), the first few pages wait those 300 ms, the cuts open the storefront's
//! circuit to shipping, and from then on the pages skip the estimate at once and say so. The
//! bulkhead caps the calls waiting on shipping at the configured cap; a checkout, whose saga
//! books the parcel with shipping, still answers within its deadline.

use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, customer, login};
use crate::support::{TestApp, client, spawn_app_with};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the pages say in place of the estimate.
const NO_ESTIMATE: &str = "Shipping costs are unavailable right now";
/// Clients loading pages at once.
const CLIENTS: usize = 8;
/// The storefront's cap on calls in flight to shipping, for this test: as many as the clients,
/// so that no healthy page is refused its estimate (each page makes one call), while a slow
/// shipping can hold no more. (The chassis's bulkhead tests show the excess refused at once.)
const SHIPPING_CAP: u64 = CLIENTS as u64;
/// The storefront's deadline for an optional call (its default `[storefront] optional_call_ms`).
const OPTIONAL_CALL_MS: u64 = 300;

struct Measured {
    product: Vec<Duration>,
    cart: Vec<Duration>,
    without_estimate: usize,
    pages: usize,
}

fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// `CLIENTS` loops of product page then cart page, for `run`.
async fn load(app: &TestApp, web: &reqwest::Client, product: &str, run: Duration) -> Measured {
    let until = Instant::now() + run;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (web, base, product) = (web.clone(), app.base.clone(), product.to_owned());
            tokio::spawn(async move {
                let mut m = Measured {
                    product: Vec::new(),
                    cart: Vec::new(),
                    without_estimate: 0,
                    pages: 0,
                };
                while Instant::now() < until {
                    for (path, samples) in [
                        (format!("/product/{product}"), &mut m.product),
                        ("/cart".to_owned(), &mut m.cart),
                    ] {
                        let started = Instant::now();
                        let res = web.get(format!("{base}{path}")).send().await.expect("page");
                        assert_eq!(res.status(), 200, "{path}");
                        let html = res.text().await.expect("html");
                        samples.push(started.elapsed());
                        m.pages += 1;
                        if html.contains(NO_ESTIMATE) {
                            m.without_estimate += 1;
                        }
                    }
                }
                m
            })
        })
        .collect();
    let mut all = Measured {
        product: Vec::new(),
        cart: Vec::new(),
        without_estimate: 0,
        pages: 0,
    };
    for task in tasks {
        let m = task.await.expect("client");
        all.product.extend(m.product);
        all.cart.extend(m.cart);
        all.without_estimate += m.without_estimate;
        all.pages += m.pages;
    }
    all
}

/// The storefront's view of shipping in its resilience report.
async fn shipping_seen_by_storefront(app: &TestApp, admin: &str) -> Value {
    let res = app
        .http
        .get(format!("{}/admin/resilience", app.base))
        .header("authorization", admin)
        .send()
        .await
        .expect("report");
    let status = res.status();
    let report: Value = res.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{report}");
    report["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["upstream"] == "shipping")
        .cloned()
        .expect("storefront calls shipping")
}

/// How the page latencies with a slow shipping are judged against the healthy ones.
#[derive(Clone, Copy, PartialEq)]
enum Judge {
    /// Only the pages the circuit breaker lets through waited on shipping, each for the whole
    /// optional-call deadline: the ones in flight when shipping turned slow (one per client; the
    /// breaker opens on 5 straight failures) and the half-open probes (3 every 5 s of open
    /// wait). Holds on a 2-core machine running the whole suite, where p99s swing 3×.
    OnlyTheProbesWaited,
    /// RELIABILITY.md L4's figure, p99 ≤ 1.2 × the healthy p99 (+10 ms of scheduling noise):
    /// a measurement, meaningful only on a machine not running 600 other tests.
    L4Ratio,
}

#[tokio::test]
async fn a_slow_shipping_costs_the_pages_nothing_but_their_estimate() {
    slow_shipping(Judge::OnlyTheProbesWaited).await;
}

/// L4's ratio, run alone: `cargo nextest run -p flotilla --all-features --test system
/// --run-ignored only l4_figures` (docs/benchmarks.md).
#[tokio::test]
#[ignore = "a measurement: its latency ratio depends on the machine's spare cores"]
async fn l4_figures() {
    slow_shipping(Judge::L4Ratio).await;
}

async fn slow_shipping(judge: Judge) {
    let app = spawn_app_with(json!({
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "orders": {"respond_within_ms": 200},
        "resilience": {"upstreams": {"shipping": {"bulkhead": {"max_in_flight": SHIPPING_CAP}}}},
    }))
    .await;
    let base = app.base.as_str();
    let admin = login(&app.http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // A shopper with one product in the cart, logged in on the web.
    let web = client();
    let res = crate::support::web_signup(&web, base, "l4").await;
    assert_eq!(res.status(), 303);
    let product = "p0000001";
    let res = web
        .post(format!("{base}/cart/items"))
        .form(&[("product_id", product), ("quantity", "1")])
        .send()
        .await
        .expect("add");
    assert_eq!(res.status(), 303);

    load(&app, &web, product, Duration::from_secs(1)).await;
    let mut healthy = load(&app, &web, product, Duration::from_secs(4)).await;
    assert_eq!(
        healthy.without_estimate,
        0,
        "healthy pages carry the estimate: {} of {} did not; {}",
        healthy.without_estimate,
        healthy.pages,
        shipping_seen_by_storefront(&app, &admin).await
    );

    let res = app
        .http
        .post(format!("{base}/api/shipping/admin/faults"))
        .header("authorization", &admin)
        .json(&json!({"latency_ms": 5_000, "for_secs": 120}))
        .send()
        .await
        .expect("fault");
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );

    // While the pages load, watch the calls in flight to shipping.
    let watching = Arc::new(AtomicBool::new(true));
    let most_in_flight = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (http, base, admin) = (app.http.clone(), app.base.clone(), admin.clone());
        let (watching, most) = (watching.clone(), most_in_flight.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let report: Value = http
                    .get(format!("{base}/admin/resilience"))
                    .header("authorization", &admin)
                    .send()
                    .await
                    .expect("report")
                    .json()
                    .await
                    .expect("json");
                for upstream in report["upstreams"].as_array().into_iter().flatten() {
                    if upstream["upstream"] == "shipping" {
                        let now = upstream["bulkhead"]["in_flight"].as_u64().unwrap_or(0);
                        most.fetch_max(now, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut slow = load(&app, &web, product, Duration::from_secs(8)).await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("watcher");

    assert_eq!(
        slow.without_estimate, slow.pages,
        "every page while shipping is slow says the estimate is missing"
    );
    for (page, healthy, slow) in [
        ("product", &mut healthy.product, &mut slow.product),
        ("cart", &mut healthy.cart, &mut slow.cart),
    ] {
        let (b, p) = (p99(healthy), p99(slow));
        eprintln!(
            "{page}: healthy p99 {b:?}, shipping slow p99 {p:?} ({} pages)",
            slow.len()
        );
        if judge == Judge::L4Ratio {
            let bound = b.mul_f64(1.2) + Duration::from_millis(10);
            assert!(
                p <= bound,
                "{page} page p99 {p:?} against {b:?} healthy (bound {bound:?})"
            );
        }
    }
    // A page that waited on shipping took the whole optional-call deadline.
    let deadline = Duration::from_millis(OPTIONAL_CALL_MS);
    let waited = slow
        .product
        .iter()
        .chain(&slow.cart)
        .filter(|t| **t >= deadline)
        .count();
    // In flight at the turn, plus two rounds of half-open probes in 8 s, plus 4 for noise.
    let let_through = CLIENTS + 2 * 3 + 4;
    assert!(
        waited <= let_through,
        "{waited} of {} pages took {deadline:?} or more while shipping was slow",
        slow.pages
    );
    let shipping = shipping_seen_by_storefront(&app, &admin).await;
    assert!(
        most_in_flight.load(Ordering::Relaxed) <= SHIPPING_CAP,
        "in flight to shipping: {} (cap {SHIPPING_CAP})",
        most_in_flight.load(Ordering::Relaxed)
    );
    assert!(
        shipping["breaker"]["times_opened"].as_u64() >= Some(1),
        "the cuts opened the circuit: {shipping}"
    );

    // A checkout books its parcel with the slow shipping and still answers in its deadline.
    let shopper = customer(&app.http, base).await;
    crate::checkout::add_to_cart(&app.http, base, &shopper, product, 1).await;
    let started = Instant::now();
    let res = app
        .http
        .post(format!("{base}/api/orders"))
        .header("authorization", &shopper)
        .header("idempotency-key", "l4-checkout")
        .header("x-flotilla-deadline-ms", "3000")
        .json(&json!({
            "address": {
                "name": "Lin", "line1": "1 Main St", "city": "Berlin",
                "postal_code": "10115", "country": "DE"
            },
            "card_number": "4242424242424242"
        }))
        .send()
        .await
        .expect("checkout");
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(3_100),
        "checkout answered after {took:?}"
    );
    assert!(
        [201, 202, 503, 504].contains(&res.status().as_u16()),
        "{}",
        res.status()
    );
}
