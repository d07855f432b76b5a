//! What the resilience stack costs on a service-to-service call (issue 12's performance
//! target: at most 10 % of req/s and of p99 against the bare transport, side by side in one
//! run).
//!
//! One small upstream (an axum server on a local port answering a few bytes of JSON) is called
//! by `CONCURRENCY` tasks in a closed loop, in rounds that alternate between:
//!
//! - **bare**: the chassis HTTP transport to the upstream's URL (connection pool, service
//!   credential, the transport's own timeout);
//! - **balanced**: the same pool behind the balancer alone (one instance), to tell its share;
//! - **stack**: the same pool behind the balancer (one instance, outlier ejection, `/readyz`
//!   probes) inside a caller's resilience stack with the default policy: retry with its budget,
//!   circuit breaker, bulkhead, per-attempt deadline, and the request's deadline carried.
//!
//! Each round is timed alone; the table gives every round and the median of each variant, and
//! the ratios stack / bare.
//!
//! The process allocates with mimalloc, as the shipped `flotilla` binary does
//! (`crates/flotilla/src/main.rs`); `--features bench-system-allocator` measures glibc's malloc
//! instead.
//!
//!     cargo bench -p flotilla-discovery --bench stack
//!     FLOTILLA_BENCH_SECS=5 FLOTILLA_BENCH_ROUNDS=3 FLOTILLA_BENCH_CONCURRENCY=32 \
//!         cargo bench -p flotilla-discovery --bench stack
//!     cargo bench -p flotilla-discovery --bench stack --features bench-system-allocator

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use flotilla_chassis::request_context;
use flotilla_chassis::resilience::stack::{Policies, Resilience, UpstreamPolicy};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::transport::Transport;
use flotilla_chassis::transport::http::{HttpPool, HttpSettings};
use flotilla_discovery::balanced::Balancer;
use flotilla_discovery::outlier::OutlierSettings;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The shipped binary's allocator, so that the figures are the product's.
#[cfg(not(feature = "bench-system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which allocator the figures are for.
const ALLOCATOR_NAME: &str = if cfg!(feature = "bench-system-allocator") {
    "glibc malloc"
} else {
    "mimalloc"
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Round {
    variant: &'static str,
    /// Calls made, answered or not.
    calls: u64,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
}

/// `concurrency` tasks calling `transport` for `run`; the round's figures.
async fn round(
    variant: &'static str,
    transport: &Transport,
    concurrency: u64,
    run: Duration,
) -> Round {
    let until = Instant::now() + run;
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let transport = transport.clone();
            tokio::spawn(async move {
                let mut histogram =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                let mut errors = 0;
                while Instant::now() < until {
                    let request = Request::get("/ping").body(Body::empty()).expect("request");
                    let sent = Instant::now();
                    // Each call carries a deadline, as a request through the gateway does.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    let answer = request_context::with_deadline(
                        Some(deadline),
                        transport.clone().oneshot(request),
                    )
                    .await;
                    let ok = match answer {
                        Ok(response) if response.status().is_success() => {
                            response.into_body().collect().await.is_ok()
                        }
                        _ => false,
                    };
                    if ok {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        histogram.saturating_record(micros.max(1));
                    } else {
                        errors += 1;
                    }
                }
                (histogram, errors)
            })
        })
        .collect();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await.expect("task");
        histogram.add(h).expect("same bounds");
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Round {
        variant,
        calls: histogram.len() + errors,
        per_sec: histogram.len() as f64 / elapsed,
        p50: Duration::from_micros(histogram.value_at_quantile(0.50)),
        p99: Duration::from_micros(histogram.value_at_quantile(0.99)),
        errors,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_u64("FLOTILLA_BENCH_SECS", 5);
    let rounds = env_u64("FLOTILLA_BENCH_ROUNDS", 3).max(1);
    let concurrency = env_u64("FLOTILLA_BENCH_CONCURRENCY", 32).max(1);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route(
            "/ping",
            get(|| async { axum::Json(serde_json::json!({"pong": true})) }),
        )
        .route("/readyz", get(|| async { "ready" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let credentials = Arc::new(ServiceCredentials::new(
        b"bench-secret-0123456789abcdef0123456789",
        "bench",
    ));
    let pool = HttpPool::new(credentials, HttpSettings::default());
    let bare = pool.transport("upstream", &base)?;
    let (_keep, instances) = tokio::sync::watch::channel(vec![base.clone()]);
    let balancer = Balancer::new("upstream", instances, &pool, OutlierSettings::default());
    let resilience = Resilience::new(
        "bench",
        Arc::new(Policies::uniform(UpstreamPolicy::default())),
    );
    let balanced = balancer.transport();
    let stacked = resilience.wrap("upstream", balancer.transport());

    if let Ok(only) = std::env::var("FLOTILLA_BENCH_ONLY") {
        // One variant alone, for a profiler (`valgrind --tool=callgrind`): no warm-up, no table.
        let transport = match only.as_str() {
            "bare" => bare.clone(),
            "balanced" => balancer.transport(),
            _ => resilience.wrap("upstream", balancer.transport()),
        };
        let r = round("only", &transport, concurrency, Duration::from_secs(secs)).await;
        println!(
            "{only} ({ALLOCATOR_NAME}): {} calls, {:.0}/s",
            r.calls, r.per_sec
        );
        return Ok(());
    }
    if std::env::var_os("FLOTILLA_BENCH_LAYERS").is_some() {
        // Each layer added in turn over the balancer, one short round each: where the cost is.
        use flotilla_chassis::resilience::{breaker, bulkhead, deadline, retry};
        use tower::Layer;
        let policy = UpstreamPolicy::default();
        let with_deadline =
            deadline::layer("upstream", &policy.deadline).layer(balancer.transport());
        let with_bulkhead =
            bulkhead::layer("upstream", policy.bulkhead.clone())?.layer(with_deadline.clone());
        let with_breaker =
            breaker::layer("upstream", policy.breaker.clone())?.layer(with_bulkhead.clone());
        let with_retry = retry::layer("upstream", &policy.retry)?.layer(with_breaker.clone());
        let layers = [
            ("bare", bare.clone()),
            ("balanced", balancer.transport()),
            ("+deadline", with_deadline),
            ("+bulkhead", with_bulkhead),
            ("+breaker", with_breaker),
            ("+retry", with_retry),
        ];
        println!("| layers | req/s | p50 | p99 |");
        println!("|---|---|---|---|");
        for (name, transport) in &layers {
            let r = round(name, transport, concurrency, Duration::from_secs(secs)).await;
            println!(
                "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
                r.per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3
            );
        }
        return Ok(());
    }
    println!(
        "Resilience stack against the bare transport: {concurrency} callers in a closed loop, \
         {rounds} rounds of {secs} s each, alternating; one process, one upstream on loopback; \
         {ALLOCATOR_NAME}.\n"
    );
    round("warm-up", &bare, concurrency, Duration::from_secs(1)).await;
    round("warm-up", &stacked, concurrency, Duration::from_secs(1)).await;
    let mut results = Vec::new();
    for _ in 0..rounds {
        results.push(round("bare", &bare, concurrency, Duration::from_secs(secs)).await);
        results.push(
            round(
                "balanced",
                &balanced,
                concurrency,
                Duration::from_secs(secs),
            )
            .await,
        );
        results.push(round("stack", &stacked, concurrency, Duration::from_secs(secs)).await);
    }
    println!("| round | variant | req/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|---|");
    for (i, r) in results.iter().enumerate() {
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            i / 3 + 1,
            r.variant,
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
    }
    let of = |variant: &str, f: fn(&Round) -> f64| {
        median(
            results
                .iter()
                .filter(|r| r.variant == variant)
                .map(f)
                .collect(),
        )
    };
    let rps = |r: &Round| r.per_sec;
    let p99 = |r: &Round| r.p99.as_secs_f64() * 1e3;
    let (bare_rps, balanced_rps, stack_rps) =
        (of("bare", rps), of("balanced", rps), of("stack", rps));
    let (bare_p99, balanced_p99, stack_p99) =
        (of("bare", p99), of("balanced", p99), of("stack", p99));
    println!();
    println!("| median | bare | balanced | stack | stack / bare | target |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| req/s | {bare_rps:.0} | {balanced_rps:.0} | {stack_rps:.0} | {:.3} | ≥ 0.90 |",
        stack_rps / bare_rps
    );
    println!(
        "| p99 | {bare_p99:.2} ms | {balanced_p99:.2} ms | {stack_p99:.2} ms | {:.3} | ≤ 1.10 |",
        stack_p99 / bare_p99
    );
    if let Ok(dir) = std::env::var("FLOTILLA_BENCH_RESULTS") {
        // scripts/bench.sh: the medians as a JSON line for flotilla-bench-report.
        use std::io::Write as _;
        let row = serde_json::json!({
            "layer": "resilience stack (retry with budget, breaker, bulkhead, per-attempt deadline, balancer)",
            "off": "bare transport",
            "off_rps": bare_rps, "on_rps": stack_rps,
            "off_p99_ms": bare_p99, "on_p99_ms": stack_p99,
            "target": "on ≥ 0.90 × off req/s, ≤ 1.10 × off p99",
        });
        std::fs::create_dir_all(&dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join("layers.jsonl"))?;
        writeln!(file, "{row}")?;
    }
    let snapshot = resilience.snapshot();
    if let Some(view) = snapshot.first() {
        println!(
            "\nstack counters: breaker {:?}, {} retries, bulkhead rejected {}",
            view.breaker.state, view.retries.retries, view.bulkhead.rejected
        );
    }
    Ok(())
}
