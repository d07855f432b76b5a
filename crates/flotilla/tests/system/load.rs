//! `flotilla load` as a process against a one-process shop (issue 15): a short open-loop run
//! passes its invariants and prints a JSON report that parses; the same run against a shop whose
//! orders cannot reach payments in time (a real fault, injected through the fault API) finds
//! acknowledged orders that do not end within the deadline, and exits 3.

use crate::chaos::post_fault;
use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, login, shop};
use serde_json::{Value, json};
use std::process::Output;

/// Runs `flotilla load` against `base` with `args`; async, so the shop in this process keeps
/// serving while it runs.
async fn load(base: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("load")
        .args(["--target", base])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("flotilla load runs")
}

#[tokio::test]
async fn a_short_load_passes_its_invariants_and_reports_json() {
    let app = shop(40, 1000).await;
    let out = load(
        &app.base,
        &[
            "--rate",
            "20",
            "--duration",
            "3s",
            "--warmup",
            "500ms",
            "--seed",
            "7",
            "--mix",
            "browse=50,cart=20,checkout=30",
            "--order-deadline",
            "20s",
            "--json",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    assert_eq!(report["format"], "flotilla-load/1");
    assert_eq!(report["mode"], "open");
    assert_eq!(report["seed"], 7);
    let step = &report["steps"][0];
    assert_eq!(step["offered_rate"], 20.0);
    let journeys = step["journeys"].as_u64().expect("journeys");
    assert!(
        (30..=100).contains(&journeys),
        "{journeys} journeys at 20/s for 3 s"
    );
    assert!(step["requests"].as_u64().expect("requests") > journeys);
    for field in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(
            step["latency"][field].as_f64().expect(field) > 0.0,
            "{field}: {step}"
        );
    }
    let routes: Vec<&str> = step["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["route"].as_str())
        .collect();
    for route in [
        "GET /api/catalog/search",
        "PUT /api/cart/items/{id}",
        "POST /api/orders",
    ] {
        assert!(routes.contains(&route), "{route} in {routes:?}");
    }
    let invariants = &report["invariants"];
    assert_eq!(invariants["passed"], true, "{invariants}");
    assert!(invariants["orders_acknowledged"].as_u64().expect("orders") > 0);
    assert_eq!(
        invariants["orders_acknowledged"],
        invariants["orders_terminal"]
    );
    assert!(invariants["stock_reads"].as_u64().expect("stock reads") > 0);
    assert_eq!(step["errors"]["status_5xx"], 0, "{step}");
}

#[tokio::test]
async fn orders_that_do_not_end_in_time_fail_the_run() {
    let app = shop(40, 1000).await;
    let admin = login(&app.http, &app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // Every call from orders to payments waits 10 s: each checkout is acknowledged (202 after
    // respond_within_ms) and its saga is still retrying the authorization at the deadline.
    post_fault(
        &app.http,
        &app.base,
        "orders",
        &admin,
        json!({"upstream": "payments", "latency_ms": 10_000, "for_secs": 120}),
    )
    .await;
    let out = load(
        &app.base,
        &[
            "--rate",
            "5",
            "--duration",
            "2s",
            "--mix",
            "checkout=1",
            "--order-deadline",
            "2s",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("invariant violation"), "{stderr}");
    assert!(stdout.contains("invariants: VIOLATED"), "{stdout}");
    assert!(
        stdout.contains("neither CONFIRMED nor CANCELLED within 2s"),
        "{stdout}"
    );
}

/// `--report-every` slices a constant rate into steps of the report: a time series.
#[tokio::test]
async fn a_constant_rate_is_reported_in_slices() {
    let app = shop(40, 1000).await;
    let out = load(
        &app.base,
        &[
            "--rate",
            "20",
            "--duration",
            "2500ms",
            "--report-every",
            "1s",
            "--mix",
            "browse=1",
            "--json",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    let steps = report["steps"].as_array().expect("steps");
    let slices: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| {
            (
                s["offered_rate"].as_f64().expect("rate"),
                s["duration_s"].as_f64().expect("duration"),
            )
        })
        .collect();
    assert_eq!(slices.len(), 3, "{slices:?}");
    assert!(slices.iter().all(|(rate, _)| *rate == 20.0), "{slices:?}");
    for (i, want) in [1.0, 1.0, 0.5].into_iter().enumerate() {
        assert!((slices[i].1 - want).abs() < 0.05, "slice {i}: {slices:?}");
    }
}

#[tokio::test]
async fn bad_flags_are_refused_with_what_to_write() {
    let out = load("http://127.0.0.1:9", &["--rate", "100..10"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FROM..TO/step STEP"), "{stderr}");
    let out = load("http://127.0.0.1:9", &["--rate", "100..10/step", "10"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is below the first"));
    let out = load("http://127.0.0.1:9", &["--mix", "browse=1,pay=2"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("use browse, cart and checkout"));
    for (flags, says) in [
        (
            &["--rate", "10..20/step", "10", "--report-every", "1s"][..],
            "slices a constant --rate",
        ),
        (
            &["--duration", "10s", "--report-every", "1ms"][..],
            "more than 1000 slices",
        ),
    ] {
        let out = load("http://127.0.0.1:9", flags).await;
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    // Nothing listens there: the run cannot be made, and says where it looked.
    let out = load("http://127.0.0.1:9", &["--duration", "1s"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read the catalog at http://127.0.0.1:9")
    );
}
