//! Checkout throughput of `flotilla run` (issue #4): 32 concurrent customers check out through
//! the gateway of an in-process host on SQLite, each checkout timed from `POST /api/orders` to a
//! terminal order. Beside it, measured in the same run, the raw rate of single-row insert
//! transactions on an SQLite file with the same settings: the physical limit the saga's ~15
//! write transactions per checkout (over six databases) share.
//!
//!     cargo bench -p flotilla --bench checkout            # 15 s of load
//!     FLOTILLA_BENCH_SECS=30 FLOTILLA_BENCH_USERS=32 cargo bench -p flotilla --bench checkout

use flotilla::cli::Common;
use flotilla::host::{Host, Mode};
use flotilla_chassis::db::{Db, PoolSettings};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PRODUCTS: u64 = 200;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_u64("FLOTILLA_BENCH_SECS", 15);
    let users = env_u64("FLOTILLA_BENCH_USERS", 32) as usize;
    let dir = tempfile::tempdir()?;
    let config = figment::Figment::from(figment::providers::Serialized::defaults(json!({
        "catalog": {"seed_products": PRODUCTS},
        "inventory": {"seed_products": PRODUCTS, "initial_stock": 1_000_000_000},
        "cart": {"max_quantity": 99},
    })));
    let common = Common {
        port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        ..Common::default()
    };
    let (config, settings) = flotilla::settings(config, &common)?;
    let host = Host::build(config, settings, Mode::Run).await?;
    let base = format!(
        "http://{}",
        host.gateway_addr()
            .ok_or_else(|| anyhow::anyhow!("no gateway"))?
    );
    let stop = host.shutdown_token();
    let server = tokio::spawn(host.run());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users * 2)
        .build()?;

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
        bearers.push(format!(
            "Bearer {}",
            token["access_token"].as_str().unwrap_or_default()
        ));
    }

    let run = |duration: Duration, record: bool| {
        let bearers = bearers.clone();
        let (http, base) = (http.clone(), base.clone());
        async move {
            let ok = Arc::new(AtomicU64::new(0));
            let errors = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + duration;
            let mut tasks = Vec::new();
            for (u, bearer) in bearers.into_iter().enumerate() {
                let (http, base, ok, errors) =
                    (http.clone(), base.clone(), ok.clone(), errors.clone());
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
                        match checkout(&http, &base, &bearer, &format!("bench-{u}-{n}-{record}"))
                            .await
                        {
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
            (
                ok.load(Ordering::Relaxed),
                errors.load(Ordering::Relaxed),
                hist,
            )
        }
    };

    run(Duration::from_secs(2), false).await; // warm-up
    let started = Instant::now();
    let (ok, errors, hist) = run(Duration::from_secs(secs), true).await;
    let elapsed = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = server.await;

    let inserts = raw_insert_rate(dir.path(), users, Duration::from_secs(3)).await?;

    println!();
    println!(
        "flotilla checkout bench: {} cores, {users} users, {secs} s, SQLite, one process",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| checkouts/s (confirmed) | {:.0} |", ok as f64 / elapsed);
    println!(
        "| checkout p50 (POST to CONFIRMED) | {:.1} ms |",
        hist.value_at_quantile(0.50) as f64 / 1000.0
    );
    println!(
        "| checkout p99 | {:.1} ms |",
        hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!("| checkouts confirmed / errors | {ok} / {errors} |");
    println!(
        "| raw SQLite single-row insert transactions/s ({users} tasks, same settings) | {inserts:.0} |"
    );
    Ok(())
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

/// Single-row insert transactions per second on a fresh SQLite file, `tasks` writers at once.
async fn raw_insert_rate(
    dir: &std::path::Path,
    tasks: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let pool = PoolSettings {
        max_connections: flotilla::settings::DatabaseSettings::default().max_connections,
        ..PoolSettings::default()
    };
    let db = Db::open_sqlite(&dir.join("raw.db"), &pool).await?;
    sqlx::raw_sql("CREATE TABLE t (id TEXT PRIMARY KEY, v BIGINT NOT NULL)")
        .execute(db.pool())
        .await?;
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (db, count) = (db.clone(), count.clone());
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let inserted = sqlx::query("INSERT INTO t (id, v) VALUES ($1, $2)")
                    .bind(format!("{t}-{i}"))
                    .bind(i as i64)
                    .execute(db.pool())
                    .await;
                if inserted.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
