//! The checkout load both benches drive (`checkout`: an in-process host; `fleet`: real
//! `flotilla run` and `flotilla up` processes): customers sign up and log in through the
//! gateway, then each, in a loop, puts a product in its cart and checks out with an
//! `Idempotency-Key`, timing each checkout from `POST /api/orders` to a terminal order.

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Products in the catalog and in stock; customers cycle through them.
pub const PRODUCTS: u64 = 200;

/// Units of each product in stock: more than any run sells.
pub const INITIAL_STOCK: u64 = 1_000_000_000;

/// The largest quantity of one product a cart may hold.
pub const MAX_QUANTITY: u64 = 99;

/// How long the load runs, unmeasured, before the measured run.
pub const WARM_UP: Duration = Duration::from_secs(2);

/// `name` from the environment as a number, `default` when unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Logical cores of this machine (0 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// Signs up and logs in `users` customers (`bench{u}@example.com`); their bearer headers.
pub async fn customers(
    http: &reqwest::Client,
    base: &str,
    users: usize,
) -> anyhow::Result<Vec<String>> {
    let mut bearers = Vec::new();
    for u in 0..users {
        let email = format!("bench{u}@example.com");
        http.post(format!("{base}/api/identity/signup"))
            .json(&json!({"email": email, "password": "bench-password", "name": "Bench"}))
            .send()
            .await?;
        let token: Value = http
            .post(format!("{base}/api/identity/login"))
            .json(&json!({"email": email, "password": "bench-password"}))
            .send()
            .await?
            .json()
            .await?;
        let token = token["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access token for {email}: {token}"))?;
        bearers.push(format!("Bearer {token}"));
    }
    Ok(bearers)
}

/// What one run of the load did.
pub struct Outcome {
    /// Checkouts that ended CONFIRMED.
    pub confirmed: u64,
    /// Failed cart updates, failed or cancelled checkouts.
    pub errors: u64,
    /// Latency of the confirmed checkouts, in µs.
    pub hist: Histogram<u64>,
    /// From the start until every customer finished its last checkout.
    pub elapsed: Duration,
}

impl Outcome {
    /// Confirmed checkouts per second.
    pub fn per_sec(&self) -> f64 {
        self.confirmed as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `quantile`, in ms.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The measure rows both benches print.
    pub fn rows(&self) -> Vec<[String; 2]> {
        vec![
            [
                "checkouts/s (confirmed)".into(),
                format!("{:.0}", self.per_sec()),
            ],
            [
                "checkout p50 (POST to CONFIRMED)".into(),
                format!("{:.1} ms", self.ms(0.50)),
            ],
            ["checkout p99".into(), format!("{:.1} ms", self.ms(0.99))],
            [
                "checkouts confirmed / errors".into(),
                format!("{} / {}", self.confirmed, self.errors),
            ],
        ]
    }
}

/// Every customer checks out in a loop for `duration`; `tag` keeps idempotency keys of different
/// runs apart.
pub async fn load(
    http: &reqwest::Client,
    base: &str,
    bearers: &[String],
    duration: Duration,
    tag: &str,
) -> Outcome {
    let started = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (u, bearer) in bearers.iter().cloned().enumerate() {
        let (http, base, ok, errors, tag) = (
            http.clone(),
            base.to_owned(),
            ok.clone(),
            errors.clone(),
            tag.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let product = format!("p{:07}", (u as u64 * 7 + n) % PRODUCTS + 1);
                let put = http
                    .put(format!("{base}/api/cart/items/{product}"))
                    .header("authorization", &bearer)
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await;
                if !put.is_ok_and(|r| r.status().is_success()) {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let started = Instant::now();
                match checkout(&http, &base, &bearer, &format!("bench-{u}-{n}-{tag}")).await {
                    Some(true) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let _ = hist.record(started.elapsed().as_micros() as u64);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = hist.add(h);
        }
    }
    Outcome {
        confirmed: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        hist,
        elapsed: started.elapsed(),
    }
}

/// One checkout: `Some(true)` when it ended CONFIRMED.
async fn checkout(http: &reqwest::Client, base: &str, bearer: &str, key: &str) -> Option<bool> {
    let res = http
        .post(format!("{base}/api/orders"))
        .header("authorization", bearer)
        .header("idempotency-key", key)
        .json(&json!({
            "address": {"name": "Bench", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "card_number": "4242424242424242",
        }))
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let mut order: Value = res.json().await.ok()?;
    let id = order["id"].as_str()?.to_owned();
    while order["status"] == "PENDING" {
        tokio::time::sleep(Duration::from_millis(5)).await;
        order = http
            .get(format!("{base}/api/orders/{id}"))
            .header("authorization", bearer)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
    }
    Some(order["status"] == "CONFIRMED")
}

/// Prints a markdown table: the header row, the separator, the rows.
pub fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(N));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}
