//! `--telemetry-db` (issue 14 item 2): `flotilla run` is stopped (SIGTERM) and started again
//! on the same telemetry file, and the first run's trace is still served by the admin API, span
//! for span.

use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, login};
use crate::support::Process;
use serde_json::Value;
use std::time::Duration;

const TRACE: &str = "5af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn start(data: &str, db: &str) -> Process {
    Process::start(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            data,
            "--telemetry-db",
            db,
        ],
        &[
            ("FLOTILLA_ADMIN_EMAIL", ADMIN_EMAIL),
            ("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "3"),
        ],
    )
}

/// The spans the admin API serves of `TRACE` once the gateway's server span is among them.
async fn spans(http: &reqwest::Client, base: &str, admin: &str) -> Vec<Value> {
    crate::traces::spans_once(http, base, admin, TRACE, Duration::from_secs(10), |spans| {
        spans
            .iter()
            .any(|s| s["service"] == "gateway" && s["kind"] == "server")
    })
    .await
}

#[tokio::test]
async fn a_restart_on_the_same_telemetry_db_keeps_the_traces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("path");
    let db = dir.path().join("telemetry.db");
    let db = db.to_str().expect("path");
    let http = reqwest::Client::new();

    let first = start(data, db);
    let base = first.url("gateway");
    let res = http
        .get(format!("{base}/api/catalog/products/p0000001"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("product");
    assert_eq!(res.status(), 200);
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let before = spans(&http, &base, &admin).await;
    drop(first); // SIGTERM, and waits for the exit

    let second = start(data, db);
    let base = second.url("gateway");
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let after = spans(&http, &base, &admin).await;
    let ids = |spans: &[Value]| {
        let mut ids: Vec<(String, String)> = spans
            .iter()
            .map(|s| (s["span_id"].to_string(), s["parent_span_id"].to_string()))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&before), "{after:#?}");
    let root = after
        .iter()
        .find(|s| s["service"] == "gateway" && s["kind"] == "server")
        .expect("the gateway's span");
    assert_eq!(root["parent_span_id"], CALLER_SPAN);
    assert_eq!(
        root["attributes"]["url.path"],
        "/api/catalog/products/p0000001"
    );
    let list: Value = http
        .get(format!("{base}/api/gateway/admin/traces?limit=200"))
        .header("authorization", &admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let listed = list["traces"].as_array().expect("traces");
    assert!(listed.iter().any(|t| t["trace_id"] == TRACE), "{list:#}");
    assert_eq!(list["unpersisted_spans"], 0);
}

#[test]
fn a_telemetry_db_that_is_not_a_database_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("telemetry.db");
    std::fs::write(&db, "not a database ".repeat(100)).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["run", "--port", "0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--telemetry-db")
        .arg(&db)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&format!("telemetry database {}", db.display())),
        "{stderr}"
    );
}
