//! Fault injection as an operator uses it: `/api/<service>/admin/faults` through the gateway of
//! a one-process shop (admin only; each kind of fault seen from outside; an upstream fault
//! seen through the service that calls), and `flotilla chaos` as a process against a running
//! `flotilla run` (on PostgreSQL too, when `FLOTILLA_TEST_DATABASE_URL` names a server).

use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, login, shop};
use crate::support::Process;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) async fn post_fault(
    http: &reqwest::Client,
    base: &str,
    service: &str,
    admin: &str,
    fault: Value,
) -> Value {
    let res = http
        .post(format!("{base}/api/{service}/admin/faults"))
        .header("authorization", admin)
        .json(&fault)
        .send()
        .await
        .expect("post fault");
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
    res.json().await.expect("fault")
}

async fn clear(http: &reqwest::Client, base: &str, service: &str, admin: &str) -> u64 {
    let res = http
        .delete(format!("{base}/api/{service}/admin/faults"))
        .header("authorization", admin)
        .send()
        .await
        .expect("clear");
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.expect("cleared")["cleared"]
        .as_u64()
        .expect("count")
}

#[tokio::test]
async fn faults_through_the_gateway_are_for_admins_and_do_what_they_say() {
    let app = shop(10, 10).await;
    let (http, base) = (&app.http, app.base.as_str());
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let shopper = customer(http, base).await;
    let faults = format!("{base}/api/catalog/admin/faults");

    // Exposed by the gateway (it is in catalog's public document), for admins only.
    let res = http.get(&faults).send().await.expect("anonymous");
    assert_eq!(res.status(), 401);
    let res = http
        .get(&faults)
        .header("authorization", &shopper)
        .send()
        .await
        .expect("customer");
    assert_eq!(res.status(), 403);
    let res = http
        .post(&faults)
        .header("authorization", &shopper)
        .json(&json!({"status": 503}))
        .send()
        .await
        .expect("customer");
    assert_eq!(res.status(), 403);
    let doc: Value = http
        .get(format!("{base}/api/catalog/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert!(doc["paths"]["/admin/faults"]["post"].is_object());
    assert!(doc["paths"]["/admin/faults/{id}"]["delete"].is_object());

    // A status on one route of catalog: that route fails, the others answer.
    let product = format!("{base}/api/catalog/products/p0000001");
    post_fault(
        http,
        base,
        "catalog",
        &admin,
        json!({"route": "GET:/products/{id}", "status": 503}),
    )
    .await;
    let res = http.get(&product).send().await.expect("product");
    assert_eq!(res.status(), 503);
    let problem: Value = res.json().await.expect("problem");
    assert_eq!(problem["type"], "urn:flotilla:problem:fault-injected");
    let res = http
        .get(format!("{base}/api/catalog/products"))
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200, "another route");
    let listed: Value = http
        .get(&faults)
        .header("authorization", &admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    // The gateway's retry layer meets the fault as it would a real 503 on a GET: the first
    // attempt and its two retries.
    assert_eq!(listed["faults"][0]["fired"], 3);
    assert!(
        listed["faults"][0]["remaining_ms"]
            .as_u64()
            .expect("remaining")
            > 50_000
    );
    assert_eq!(clear(http, base, "catalog", &admin).await, 1);
    assert_eq!(
        http.get(&product).send().await.expect("product").status(),
        200
    );

    // An abort: the gateway meets a reset connection and says so (502).
    post_fault(
        http,
        base,
        "catalog",
        &admin,
        json!({"route": "GET:/products/{id}", "abort": true}),
    )
    .await;
    let res = http.get(&product).send().await.expect("product");
    assert_eq!(res.status(), 502);
    clear(http, base, "catalog", &admin).await;

    // Latency, as the gateway's caller sees it.
    post_fault(
        http,
        base,
        "catalog",
        &admin,
        json!({"route": "GET:/products/{id}", "latency_ms": 400}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        http.get(&product).send().await.expect("product").status(),
        200
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    clear(http, base, "catalog", &admin).await;

    // An upstream fault in cart: its calls to catalog fail; catalog itself is fine.
    post_fault(
        http,
        base,
        "cart",
        &admin,
        json!({"upstream": "catalog", "abort": true}),
    )
    .await;
    let res = http
        .put(format!("{base}/api/cart/items/p0000001"))
        .header("authorization", &shopper)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .expect("add to cart");
    assert_eq!(
        res.status(),
        503,
        "{}",
        res.text().await.unwrap_or_default()
    );
    assert_eq!(
        http.get(&product).send().await.expect("product").status(),
        200
    );
    clear(http, base, "cart", &admin).await;
    add_to_cart(http, base, &shopper, "p0000001", 1).await;

    // The fault API itself answers whatever is injected.
    post_fault(http, base, "catalog", &admin, json!({"status": 500})).await;
    post_fault(
        http,
        base,
        "catalog",
        &admin,
        json!({"route": "/admin/*", "abort": true}),
    )
    .await;
    assert_eq!(clear(http, base, "catalog", &admin).await, 2);
}

/// The outside tester's H1: a fault on one route opened the gateway's breaker for catalog, which
/// then refused catalog's fault API (so the fault could not be removed), its probes and its
/// contract. The operator's routes pass an open breaker, and their answers never open it.
#[tokio::test]
async fn an_open_breaker_never_locks_the_admin_out_of_the_fault_api_or_the_probes() {
    let app = shop(10, 10).await;
    let (http, base) = (&app.http, app.base.as_str());
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    post_fault(
        http,
        base,
        "catalog",
        &admin,
        json!({"route": "GET:/products/{id}", "status": 503, "for_secs": 120}),
    )
    .await;
    let product = format!("{base}/api/catalog/products/p0000001");
    let mut open = false;
    for _ in 0..20 {
        let res = http.get(&product).send().await.expect("product");
        assert_eq!(res.status(), 503);
        let problem: Value = res.json().await.expect("problem");
        if problem["type"] == "urn:flotilla:problem:upstream-circuit-open" {
            open = true;
            break;
        }
    }
    assert!(open, "the gateway's breaker for catalog opened");

    for path in ["healthz", "readyz", "openapi.json"] {
        let res = http
            .get(format!("{base}/api/catalog/{path}"))
            .send()
            .await
            .expect("control plane");
        assert_eq!(res.status(), 200, "{path} passes the open breaker");
    }
    let res = http
        .get(format!("{base}/api/catalog/admin/faults"))
        .header("authorization", &admin)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200, "the fault list passes the open breaker");
    assert_eq!(clear(http, base, "catalog", &admin).await, 1);

    // The breaker is still open for catalog's work (the operator's calls did not close it),
    // and closes on its own after its wait now that the fault is gone.
    let resilience: Value = http
        .get(format!("{base}/api/gateway/admin/resilience"))
        .header("authorization", &admin)
        .send()
        .await
        .expect("resilience")
        .json()
        .await
        .expect("json");
    let catalog = resilience["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["upstream"] == "catalog")
        .expect("the gateway calls catalog");
    assert_eq!(catalog["breaker"]["state"], "open", "{catalog}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while http.get(&product).send().await.expect("product").status() != 200 {
        assert!(Instant::now() < deadline, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `flotilla chaos` with a closed stdout (`… | head -1` once `head` has gone) ends quietly with
/// status 0 instead of panicking (exit 101), and conflicting flags are refused before anything
/// is sent (the outside tester's L6 and L2).
#[tokio::test]
async fn flotilla_chaos_survives_a_closed_stdout_and_refuses_conflicting_flags() {
    let app = shop(10, 10).await;
    let (http, base) = (&app.http, app.base.as_str());
    let admin = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = admin.trim_start_matches("Bearer ");
    for args in [
        vec!["catalog", "--latency", "10ms", "--for", "60s"],
        vec!["catalog", "--list"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("chaos")
            .args(&args)
            .args(["--gateway", base, "--token", token])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run flotilla chaos");
        // The reader goes away before the command prints anything.
        drop(child.stdout.take());
        // Waited for off the runtime, which serves the shop the command talks to.
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // The fault was injected all the same.
    assert_eq!(clear(http, base, "catalog", &admin).await, 1);

    for args in [
        ["catalog", "--list", "--clear"].as_slice(),
        &["catalog", "--abort", "--status", "503"],
    ] {
        let (ok, _, stderr) = chaos(base, args, &[("FLOTILLA_ADMIN_TOKEN", token)]);
        assert!(!ok, "{args:?} accepted");
        assert!(stderr.contains("cannot be used with"), "{args:?}: {stderr}");
    }
}

/// `flotilla chaos ARGS…` against `gateway`, as an operator runs it; (success, stdout, stderr).
fn chaos(gateway: &str, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    cmd.arg("chaos")
        .args(args)
        .args(["--gateway", gateway])
        .env("RUST_LOG", "warn")
        .env_remove("FLOTILLA_ADMIN_TOKEN")
        .env_remove("FLOTILLA_ADMIN_EMAIL")
        .env_remove("FLOTILLA_ADMIN_PASSWORD");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run flotilla chaos");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("$ flotilla chaos {}\n{stdout}{stderr}", args.join(" "));
    (out.status.success(), stdout, stderr)
}

#[tokio::test]
async fn flotilla_chaos_injects_lists_and_clears_faults_of_a_running_shop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let mut args = vec!["run", "--port", "0", "--data-dir", data];
    // `ft_`: the prefix of test databases, which the test kit's clean-up command removes.
    let prefix = format!("ft_chaos{}", rand::random::<u32>());
    let pg = std::env::var("FLOTILLA_TEST_DATABASE_URL").ok();
    if let Some(url) = &pg {
        args.extend(["--database-url", url, "--database-prefix", &prefix]);
    }
    let admin = [
        ("FLOTILLA_ADMIN_EMAIL", ADMIN_EMAIL),
        ("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ];
    let app = Process::start(
        &args,
        &[
            admin[0],
            admin[1],
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "20"),
            ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "20"),
        ],
    );
    let gateway = app.url("gateway");
    let http = reqwest::Client::new();

    // The example, word for word.
    let (ok, out, _) = chaos(
        &gateway,
        &[
            "shipping",
            "--latency",
            "5s",
            "--rate",
            "0.5",
            "--for",
            "60s",
        ],
        &admin,
    );
    assert!(ok);
    assert!(out.contains("shipping: fault flt_"), "{out}");
    assert!(
        out.contains("latency 5s on all routes, 50% of requests"),
        "{out}"
    );
    let (ok, out, _) = chaos(&gateway, &["shipping", "--list"], &admin);
    assert!(ok);
    assert!(
        out.contains("1 active fault(s)") && out.contains("latency 5s"),
        "{out}"
    );
    let (ok, out, _) = chaos(&gateway, &["shipping", "--clear"], &admin);
    assert!(ok);
    assert!(out.contains("cleared 1 fault(s)"), "{out}");
    assert!(out.contains("(pid "), "which instance cleared them: {out}");

    // A route of catalog with an error status, seen from outside, then removed by id.
    let (ok, out, _) = chaos(
        &gateway,
        &[
            "catalog",
            "--route",
            "get:/products/{id}",
            "--status",
            "503",
        ],
        &admin,
    );
    assert!(ok, "{out}");
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("flt_"))
        .expect("an id")
        .to_owned();
    let product = format!("{gateway}/api/catalog/products/p0000001");
    assert_eq!(
        http.get(&product).send().await.expect("product").status(),
        503
    );
    let (ok, out, _) = chaos(&gateway, &["catalog", "--clear", &id], &admin);
    assert!(ok);
    assert!(out.contains(&format!("removed fault {id}")), "{out}");
    assert_eq!(
        http.get(&product).send().await.expect("product").status(),
        200
    );

    // A token instead of the admin's password.
    let token = login(&http, &gateway, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = token.trim_start_matches("Bearer ");
    let (ok, out, _) = chaos(
        &gateway,
        &["cart", "--list"],
        &[("FLOTILLA_ADMIN_TOKEN", token)],
    );
    assert!(ok);
    assert!(
        out.contains("cart (pid ") && out.contains("0 active fault(s)"),
        "{out}"
    );

    // Failures: non-zero exit and a reason.
    let (ok, _, err) = chaos(&gateway, &["shipping", "--status", "404"], &admin);
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("status: must be 429 or 500 to 599"),
        "{err}"
    );
    let (ok, _, err) = chaos(&gateway, &["shipping", "--list"], &[]);
    assert!(!ok);
    assert!(err.contains("FLOTILLA_ADMIN_TOKEN"), "{err}");
    let (ok, _, err) = chaos(&gateway, &["shipping", "--rate", "0.5"], &admin);
    assert!(!ok);
    assert!(err.contains("nothing to inject"), "{err}");
    let (ok, _, err) = chaos(&gateway, &["shipping", "--clear", "flt_nope"], &admin);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    let (ok, _, err) = chaos(&gateway, &["nosuch", "--list"], &admin);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    let (ok, _, err) = chaos(&gateway, &["shipping", "--list", "--abort"], &admin);
    assert!(!ok, "--list takes no fault");
    assert!(err.contains("cannot be used with"), "{err}");

    drop(app);
    if let Some(url) = &pg {
        for spec in flotilla::host::SERVICES {
            let database = format!("{prefix}_{}", spec.name);
            flotilla_chassis::db::Db::drop_postgres(url, &database)
                .await
                .expect("drop the test's database");
        }
    }
}
