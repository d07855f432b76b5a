//! Checkout throughput of `flotilla run` (issue #4): 32 concurrent customers check out through
//! the gateway of an in-process host on SQLite, each checkout timed from `POST /api/orders` to a
//! terminal order. Beside it, measured in the same run, the raw rate of single-row insert
//! transactions on an SQLite file with the same settings: the physical limit the saga's ~15
//! write transactions per checkout (over six databases) share.
//!
//!     cargo bench -p flotilla --bench checkout            # 15 s of load
//!     FLOTILLA_BENCH_SECS=30 FLOTILLA_BENCH_USERS=32 cargo bench -p flotilla --bench checkout
//!
//! Other `FLOTILLA_*` variables configure the host as they do `flotilla run`.

mod support;

use flotilla::cli::Common;
use flotilla::host::{Host, Mode};
use flotilla_chassis::db::{Db, PoolSettings};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{INITIAL_STOCK, MAX_QUANTITY, PRODUCTS, WARM_UP, env_u64};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_u64("FLOTILLA_BENCH_SECS", 15);
    let users = env_u64("FLOTILLA_BENCH_USERS", 32) as usize;
    let dir = tempfile::tempdir()?;
    let config = figment::Figment::from(figment::providers::Serialized::defaults(json!({
        "catalog": {"seed_products": PRODUCTS},
        "inventory": {"seed_products": PRODUCTS, "initial_stock": INITIAL_STOCK},
        "cart": {"max_quantity": MAX_QUANTITY},
        // 32 customers from one address, each checking out as fast as it can: the gateway's
        // rate limits would measure themselves, not the shop.
        "gateway": {"rate_limit": {"enabled": false}},
    })))
    // Any `FLOTILLA_*` setting applies, as to `flotilla run` (e.g. the pool size:
    // FLOTILLA_DATABASE__MAX_CONNECTIONS=1).
    .merge(flotilla_chassis::config::environment());
    let common = Common {
        port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        ..Common::default()
    };
    let (config, settings) = flotilla::settings(config, &common)?;
    let pool_size = settings.database.max_connections;
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
    let bearers = support::customers(&http, &base, users).await?;

    support::load(&http, &base, &bearers, WARM_UP, "false").await;
    let cpu_before = cpu_time();
    let outcome = support::load(&http, &base, &bearers, Duration::from_secs(secs), "true").await;
    let cpu = cpu_time().saturating_sub(cpu_before);
    stop.cancel();
    let _ = server.await;

    let inserts = raw_insert_rate(dir.path(), users, pool_size, Duration::from_secs(3)).await?;

    println!();
    println!(
        "flotilla checkout bench: {} cores, {users} users, {secs} s, SQLite, one process",
        support::cores()
    );
    println!();
    let mut rows = outcome.rows();
    rows.push([
        "CPU per checkout (whole process: shop and load generator)".into(),
        format!(
            "{:.2} ms",
            cpu.as_secs_f64() * 1000.0 / outcome.confirmed.max(1) as f64
        ),
    ]);
    rows.push([
        format!(
            "raw SQLite single-row insert transactions/s ({users} tasks, same settings, \
             pool of {pool_size})"
        ),
        format!("{inserts:.0}"),
    ]);
    support::print_table(["measure", "value"], &rows);
    Ok(())
}

/// CPU time (user + system) this process has used so far: per checkout, a figure much less
/// noisy than throughput on a shared machine.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let (user, system) = (u.user_time(), u.system_time());
            let micros = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            micros(user) + micros(system)
        })
        .unwrap_or_default()
}

/// Single-row insert transactions per second on a fresh SQLite file, `tasks` writers at once
/// through a pool of `max_connections`.
async fn raw_insert_rate(
    dir: &std::path::Path,
    tasks: usize,
    max_connections: u32,
    duration: Duration,
) -> anyhow::Result<f64> {
    let pool = PoolSettings {
        max_connections,
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
