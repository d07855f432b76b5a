//! The fleet (issue #5): every service its own process (`flotilla up`) on PostgreSQL, NATS
//! JetStream and etcd, with replicas; instances leaving discovery; a NATS outage; payments
//! killed mid-checkout; L2 on PostgreSQL; and mixed mode with payments extracted.

use crate::checkout::{
    ADMIN_EMAIL, ADMIN_PASSWORD, SKUS, STOCK, add_to_cart, checkout, customer, login,
    never_oversell, terminal, try_checkout,
};
use crate::infra;
use crate::journey::api_journey;
use crate::support::{Process, spawn_app_with};
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::{Caller, Role};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A fleet started with `flotilla up` on its own NATS and etcd and fresh PostgreSQL databases.
pub(crate) struct Fleet {
    process: Process,
    pub(crate) gateway: String,
    nats: infra::Server,
    _etcd: infra::Server,
    _dir: tempfile::TempDir,
    cluster: String,
    etcd_url: String,
}

fn up(replicas: &str, extra_env: &[(&str, &str)]) -> Fleet {
    up_on(&infra::postgres(), replicas, extra_env)
}

/// [`up`] on the PostgreSQL server `postgres`.
pub(crate) fn up_on(postgres: &str, replicas: &str, extra_env: &[(&str, &str)]) -> Fleet {
    let nats = infra::nats();
    let etcd = infra::etcd();
    let dir = tempfile::tempdir().expect("dir");
    let cluster = infra::unique("ft");
    let mut envs = vec![
        ("FLOTILLA_ADMIN_EMAIL", ADMIN_EMAIL),
        ("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("FLOTILLA_CATALOG__SEED_PRODUCTS", "20"),
        ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "20"),
        ("FLOTILLA_INVENTORY__INITIAL_STOCK", "1000"),
        ("FLOTILLA_DISCOVERY_TTL_SECS", "2"),
        ("FLOTILLA_EVENTS__RETRY_MAX_MS", "1000"),
    ];
    envs.extend_from_slice(extra_env);
    let data = dir.path().to_str().expect("path").to_owned();
    let mut args = vec![
        "up",
        "--port",
        "0",
        "--data-dir",
        &data,
        "--database-url",
        postgres,
        "--database-prefix",
        &cluster,
        "--cluster",
        &cluster,
        "--nats-url",
        &nats.url,
        "--discovery",
        &etcd.url,
    ];
    if !replicas.is_empty() {
        args.extend(["--replicas", replicas]);
    }
    let process = Process::start(&args, &envs);
    let gateway = process.url("gateway");
    let etcd_url = etcd.url.clone();
    Fleet {
        process,
        gateway,
        nats,
        _etcd: etcd,
        _dir: dir,
        cluster,
        etcd_url,
    }
}

impl Fleet {
    pub(crate) fn instances(&self, service: &str) -> Vec<(String, u32)> {
        self.process
            .instances
            .iter()
            .filter(|(s, _, _)| s == service)
            .map(|(_, u, p)| (u.clone(), *p))
            .collect()
    }

    /// Arguments that make a `flotilla serve` join this fleet on `postgres`: its data directory
    /// (with the fleet's secret), databases, cluster, NATS and etcd.
    pub(crate) fn join_args(&self, postgres: &str) -> Vec<String> {
        let data = self._dir.path().to_str().expect("path").to_owned();
        [
            "--data-dir",
            &data,
            "--database-url",
            postgres,
            "--database-prefix",
            &self.cluster,
            "--cluster",
            &self.cluster,
            "--nats-url",
            &self.nats.url,
            "--discovery",
            &self.etcd_url,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The instances of `service` etcd currently lists.
    async fn registered(&self, service: &str) -> Vec<String> {
        let discovery = flotilla_discovery::from_spec(
            &self.etcd_url,
            &self.cluster,
            &Default::default(),
            &Default::default(),
        )
        .await
        .expect("discovery");
        let mut rx = discovery.watch(service).await.expect("watch");
        let _ = tokio::time::timeout(Duration::from_millis(300), rx.changed()).await;
        rx.borrow().clone()
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
}

async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin_get(http: &reqwest::Client, url: String, admin: &str) -> Value {
    http.get(url)
        .header("authorization", admin)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// The instance `pid` listens at `url` on the socket `flotilla up` bound and handed it as its
/// standard input: the port printed is the port served, with no probe released in between.
fn serves_the_socket_up_bound(url: &str, pid: u32) {
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in url");
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("stdin of instance");
    let stdin = stdin.to_string_lossy();
    let inode = stdin
        .strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{url}: standard input is {stdin}, not a socket"));
    let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let listening = tcp.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        let listen = fields.get(3) == Some(&"0A");
        (listen && u16::from_str_radix(local_port, 16).ok() == Some(port)).then(|| fields[9])
    });
    assert_eq!(
        listening,
        Some(inode),
        "{url}: the listening socket is not the one handed over"
    );
}

#[tokio::test]
async fn a_fleet_with_replicas_runs_the_shop_and_handles_each_event_once_per_service() {
    let fleet = up("catalog=2,cart=2,orders=2,notifications=2", &[]);
    assert_eq!(fleet.process.instances.len(), 14);
    for (_, url, pid) in &fleet.process.instances {
        serves_the_socket_up_bound(url, *pid);
    }
    let http = reqwest::Client::new();
    let base = fleet.gateway.clone();
    api_journey(&http, &base).await;

    let bearer = customer(&http, &base).await;
    let mut orders = Vec::new();
    for k in 0..10 {
        add_to_cart(&http, &base, &bearer, &format!("p{:07}", k % 5 + 1), 1).await;
        let (status, order) = checkout(
            &http,
            &base,
            &bearer,
            &format!("fleet-{k}"),
            "4242424242424242",
        )
        .await;
        assert!(status == 201 || status == 202, "{status} {order}");
        let id = order["id"].as_str().expect("id").to_owned();
        let order = terminal(&http, &base, &bearer, &id, Duration::from_secs(30)).await;
        assert_eq!(order["status"], "CONFIRMED");
        orders.push(id);
    }
    // Each order.confirmed reaches one notifications replica exactly once.
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    eventually(
        "one message per order",
        Duration::from_secs(30),
        async || {
            let messages = admin_get(
                &http,
                format!("{base}/api/notifications/admin/messages?page_size=100"),
                &admin,
            )
            .await;
            let items = messages["items"].as_array().cloned().unwrap_or_default();
            orders
                .iter()
                .all(|o| items.iter().filter(|m| m["order_id"] == o.as_str()).count() == 1)
        },
    )
    .await;
    // ... and across the replicas of each subscriber, every event was handled exactly once
    // (read from each replica directly, as a fleet peer would: a credential minted for that
    // service, acting for an admin).
    let secret = std::fs::read_to_string(fleet._dir.path().join("service-secret")).expect("secret");
    let peer = ServiceCredentials::new(secret.trim().as_bytes(), "test");
    let test_admin = Caller {
        user_id: "test-admin".into(),
        role: Role::Admin,
    };
    let handled_by = async |service: &str| {
        let mut handled = 0;
        for (url, _) in fleet.instances(service) {
            let report: Value = http
                .get(format!("{url}/admin/outbox"))
                .header(
                    "x-flotilla-service-token",
                    peer.token(service, Some(&test_admin)),
                )
                .send()
                .await
                .expect("report")
                .json()
                .await
                .expect("json");
            handled += report["consumer"]["handled"]
                .as_u64()
                .unwrap_or_else(|| panic!("{service} at {url}: no consumer count in {report}"));
        }
        handled
    };
    for service in ["notifications", "cart"] {
        // Each subscriber consumes at its own pace (the cart's replicas may still be attaching
        // to the stream when notifications are done): wait for all ten, then check no more.
        eventually(
            &format!("{service} handles every order.confirmed"),
            Duration::from_secs(30),
            async || handled_by(service).await >= 10,
        )
        .await;
        assert_eq!(
            handled_by(service).await,
            10,
            "{service}: each order.confirmed handled once across its replicas"
        );
    }

    // Issue 9 (4), RELIABILITY.md S8: a credential captured from a call to cart opens no other
    // service, whatever caller headers come with it; one without a user gives no admin.
    let for_cart = peer.token("cart", Some(&test_admin));
    let anonymous = peer.token("inventory", None);
    let stock = format!("{}/stock/p0000001", fleet.instances("inventory")[0].0);
    for service in ["inventory", "payments", "orders"] {
        let url = &fleet.instances(service)[0].0;
        let res = http
            .get(format!("{url}/admin/outbox"))
            .header("x-flotilla-service-token", &for_cart)
            .header("x-flotilla-user-id", "test-admin")
            .header("x-flotilla-user-role", "admin")
            .send()
            .await
            .expect("replay");
        assert_eq!(
            res.status(),
            401,
            "{service} refuses a credential minted for cart"
        );
    }
    for token in [&for_cart, &anonymous] {
        let res = http
            .put(&stock)
            .header("x-flotilla-service-token", token)
            .header("x-flotilla-user-id", "test-admin")
            .header("x-flotilla-user-role", "admin")
            .json(&json!({"available": 1}))
            .send()
            .await
            .expect("set stock");
        assert_eq!(res.status(), 401, "no admin from bare headers");
    }
    let res = http
        .put(&stock)
        .header(
            "x-flotilla-service-token",
            peer.token("inventory", Some(&test_admin)),
        )
        .json(&json!({"available": 1000}))
        .send()
        .await
        .expect("set stock");
    assert!(
        res.status().is_success(),
        "a credential for inventory acting for an admin: {}",
        res.status()
    );
}

#[tokio::test]
async fn instances_leave_discovery_when_stopped_killed_or_frozen() {
    let fleet = up("catalog=3", &[]);
    let http = reqwest::Client::new();
    let base = fleet.gateway.clone();
    let catalogs = fleet.instances("catalog");
    assert_eq!(catalogs.len(), 3);
    assert_eq!(fleet.registered("catalog").await.len(), 3);

    // Steady traffic while one instance is stopped with SIGTERM: not one request fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http
                    .get(format!("{base}/api/catalog/products/p0000001"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok += 1,
                    other => {
                        eprintln!(
                            "failed during the graceful stop: {:?}",
                            other.map(|r| r.status())
                        );
                        failed += 1;
                    }
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(catalogs[0].1, nix::sys::signal::Signal::SIGTERM);
    eventually("SIGTERM deregisters", Duration::from_secs(3), async || {
        fleet.registered("catalog").await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load");
    assert!(ok > 0);
    assert_eq!(
        failed, 0,
        "requests failed while an instance was stopped gracefully"
    );

    // kill -9: gone within the lease TTL (2 s) + 1 s.
    let killed = Instant::now();
    signal(catalogs[1].1, nix::sys::signal::Signal::SIGKILL);
    eventually(
        "kill -9 leaves discovery",
        Duration::from_secs(3),
        async || fleet.registered("catalog").await.len() == 1,
    )
    .await;
    assert!(killed.elapsed() <= Duration::from_secs(3));

    // SIGSTOP: frozen, its lease lapses; SIGCONT: back within 2 s.
    let frozen = Instant::now();
    signal(catalogs[2].1, nix::sys::signal::Signal::SIGSTOP);
    eventually(
        "a frozen instance leaves discovery",
        Duration::from_secs(3),
        async || fleet.registered("catalog").await.is_empty(),
    )
    .await;
    assert!(frozen.elapsed() <= Duration::from_secs(3));
    // The gateway learns of it through its watch, a moment after etcd: a request sent in that
    // moment still goes to the frozen instance (and times out). Once it knows, the answer is an
    // immediate 503, not a hang.
    eventually(
        "no instance left: an immediate 503",
        Duration::from_secs(2),
        async || {
            http.get(format!("{base}/api/catalog/products/p0000001"))
                .timeout(Duration::from_millis(500))
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        },
    )
    .await;
    signal(catalogs[2].1, nix::sys::signal::Signal::SIGCONT);
    let thawed = Instant::now();
    eventually(
        "re-registered after SIGCONT",
        Duration::from_secs(3),
        async || fleet.registered("catalog").await.len() == 1,
    )
    .await;
    assert!(thawed.elapsed() <= Duration::from_secs(3));
    eventually("traffic returns", Duration::from_secs(3), async || {
        http.get(format!("{base}/api/catalog/products/p0000001"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

#[tokio::test]
async fn checkouts_succeed_while_nats_is_down_and_no_event_is_lost() {
    let mut fleet = up("", &[]);
    let http = reqwest::Client::new();
    let base = fleet.gateway.clone();
    let bearer = customer(&http, &base).await;
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    fleet.nats.stop();
    let outage = Instant::now();
    let mut orders = Vec::new();
    let mut k = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        k += 1;
        add_to_cart(&http, &base, &bearer, &format!("p{:07}", k % 5 + 1), 1).await;
        let (status, order) = checkout(
            &http,
            &base,
            &bearer,
            &format!("outage-{k}"),
            "4242424242424242",
        )
        .await;
        assert!(status == 201 || status == 202, "{status} {order}");
        let id = order["id"].as_str().expect("id").to_owned();
        let order = terminal(&http, &base, &bearer, &id, Duration::from_secs(30)).await;
        assert_eq!(order["status"], "CONFIRMED", "checkout works without NATS");
        orders.push(id);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fleet.nats.restart();
    let back = Instant::now();
    eventually("the backlog drains", Duration::from_secs(30), async || {
        let messages = admin_get(
            &http,
            format!("{base}/api/notifications/admin/messages?page_size=100"),
            &admin,
        )
        .await;
        let items = messages["items"].as_array().cloned().unwrap_or_default();
        orders
            .iter()
            .all(|o| items.iter().filter(|m| m["order_id"] == o.as_str()).count() == 1)
    })
    .await;
    eprintln!(
        "{} orders during a 30 s NATS outage; every notification {} ms after NATS returned",
        orders.len(),
        back.elapsed().as_millis()
    );
    let outbox = admin_get(&http, format!("{base}/api/orders/admin/outbox"), &admin).await;
    assert_eq!(outbox["pending"], 0, "{outbox}");
}

#[tokio::test]
async fn never_oversell_on_postgresql() {
    let prefix = infra::unique("fl2");
    let app = spawn_app_with(json!({
        "database_url": infra::postgres(),
        "database_prefix": prefix,
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "catalog": {"seed_products": SKUS},
        "inventory": {"seed_products": SKUS, "initial_stock": STOCK},
        "orders": {"respond_within_ms": 200},
    }))
    .await;
    never_oversell(&app.base).await;
}

#[tokio::test]
async fn payments_killed_mid_checkout_in_the_fleet() {
    let fleet = up("", &[("FLOTILLA_ORDERS__RECOVERY_INTERVAL_MS", "200")]);
    let http = reqwest::Client::new();
    let base = fleet.gateway.clone();
    let mut users = Vec::new();
    for u in 0..20u64 {
        let bearer = customer(&http, &base).await;
        add_to_cart(&http, &base, &bearer, &format!("p{:07}", u % 20 + 1), 1).await;
        users.push(bearer);
    }
    let mut tasks = Vec::new();
    for (u, bearer) in users.iter().enumerate() {
        for k in 0..5 {
            let (http, base, bearer) = (http.clone(), base.clone(), bearer.clone());
            tasks.push(tokio::spawn(async move {
                let id = match try_checkout(
                    &http,
                    &base,
                    &bearer,
                    &format!("f1-{u}-{k}"),
                    "4242424242424242",
                )
                .await
                {
                    Ok((201 | 202, order)) => order["id"].as_str().map(str::to_owned),
                    _ => None,
                };
                (id, bearer)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (payments_url, payments_pid) = fleet.instances("payments")[0].clone();
    signal(payments_pid, nix::sys::signal::Signal::SIGKILL);
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Ok((Some(id), bearer)) = task.await {
            acknowledged.push((id, bearer));
        }
    }
    // Bring payments back where the others expect it.
    let addr = payments_url.trim_start_matches("http://");
    let data = fleet._dir.path().to_str().expect("path").to_owned();
    let postgres = infra::postgres();
    let _payments = Process::start(
        &[
            "serve",
            "payments",
            "--listen",
            &format!("payments={addr}"),
            "--data-dir",
            &data,
            "--database-url",
            &postgres,
            "--database-prefix",
            &fleet.cluster,
            "--cluster",
            &fleet.cluster,
            "--nats-url",
            &fleet.nats.url,
            "--discovery",
            &fleet.etcd_url,
        ],
        &[("FLOTILLA_DISCOVERY_TTL_SECS", "2")],
    );
    let mut confirmed_total = 0;
    for (id, bearer) in &acknowledged {
        let order = terminal(&http, &base, bearer, id, Duration::from_secs(30)).await;
        if order["status"] == "CONFIRMED" {
            confirmed_total += order["total"]["amount_minor"].as_i64().expect("total");
        }
    }
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let summary = admin_get(&http, format!("{base}/api/orders/admin/summary"), &admin).await;
    eventually(
        "every order terminal",
        Duration::from_secs(30),
        async || {
            admin_get(&http, format!("{base}/api/orders/admin/summary"), &admin).await["pending"]
                == 0
        },
    )
    .await;
    let summary_after = admin_get(&http, format!("{base}/api/orders/admin/summary"), &admin).await;
    let money = admin_get(&http, format!("{base}/api/payments/admin/summary"), &admin).await;
    let captured = money["captured_total"].as_i64().expect("captured");
    let refunded = money["refunded_total"].as_i64().expect("refunded");
    let all_confirmed = summary_after["confirmed_total_minor"]
        .as_i64()
        .expect("total");
    assert!(all_confirmed >= confirmed_total);
    assert_eq!(
        captured - refunded,
        all_confirmed,
        "money {money} vs orders {summary_after} (before: {summary})"
    );
    let mut per_order: HashMap<String, u32> = HashMap::new();
    let payments = admin_get(
        &http,
        format!("{base}/api/payments/admin/payments?page_size=100"),
        &admin,
    )
    .await;
    for p in payments["items"].as_array().cloned().unwrap_or_default() {
        if p["status"] == "captured" || p["status"] == "refunded" {
            *per_order
                .entry(p["order_id"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    assert!(per_order.values().all(|n| *n <= 1), "one capture per order");
}

#[tokio::test]
async fn payments_extracted_from_the_one_process_shop() {
    let payments_port = crate::support::free_port();
    let payments_dir = tempfile::tempdir().expect("dir");
    let shop_dir = tempfile::tempdir().expect("dir");
    let secret = format!("{:064x}", rand::random::<u128>());
    let envs = [
        ("FLOTILLA_SERVICE_SECRET", secret.as_str()),
        ("FLOTILLA_CATALOG__SEED_PRODUCTS", "30"),
        ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "30"),
    ];
    let payments = Process::start(
        &[
            "serve",
            "payments",
            "--port",
            &payments_port.to_string(),
            "--data-dir",
            payments_dir.path().to_str().expect("p"),
        ],
        &envs,
    );
    let shop = Process::start(
        &[
            "run",
            "--port",
            "0",
            "--data-dir",
            shop_dir.path().to_str().expect("p"),
            "--remote",
            &format!("payments={}", payments.url("payments")),
        ],
        &envs,
    );
    let http = reqwest::Client::new();
    let base = shop.url("gateway");
    api_journey(&http, &base).await;
    let bearer = customer(&http, &base).await;
    add_to_cart(&http, &base, &bearer, "p0000002", 1).await;
    let (status, order) = checkout(&http, &base, &bearer, "mixed-1", "4242424242424242").await;
    assert!(status == 201 || status == 202, "{status} {order}");
    let order = terminal(
        &http,
        &base,
        &bearer,
        order["id"].as_str().expect("id"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    // The payment lives in the extracted process's database.
    assert!(payments_dir.path().join("payments.db").exists());
    assert!(!shop_dir.path().join("payments.db").exists());
}

/// Issue 9 (9): a second fleet on the same PostgreSQL prefix with another service secret (its
/// own data dir) refuses to start, naming the clash; the first keeps serving.
#[tokio::test]
async fn a_second_fleet_on_the_same_database_prefix_with_another_secret_refuses_to_start() {
    let prefix = infra::unique("clash");
    let postgres = infra::postgres();
    let (first_dir, second_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let args = |dir: &tempfile::TempDir| -> Vec<String> {
        [
            "serve",
            "cart",
            "--port",
            "0",
            "--database-url",
            &postgres,
            "--database-prefix",
            &prefix,
            "--data-dir",
            dir.path().to_str().expect("path"),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let first_args = args(&first_dir);
    let first = Process::start(
        &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let cart = first.url("cart");

    let started = Instant::now();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args(&second_dir))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the second host");
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = second.kill();
            panic!("the second host with another secret is still running after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success(), "the second host started: {err}");
    assert!(
        err.contains(&format!("PostgreSQL database {prefix}_cart"))
            && err.contains("belongs to another Flotilla fleet")
            && err.contains("--database-prefix"),
        "the message names the clash and the way out: {err}"
    );

    // The first host still serves, with its own credential.
    let secret = std::fs::read_to_string(first_dir.path().join("service-secret")).expect("secret");
    let peer = ServiceCredentials::new(secret.trim().as_bytes(), "test");
    let alice = Caller {
        user_id: "alice".into(),
        role: Role::Customer,
    };
    let res = reqwest::Client::new()
        .get(format!("{cart}/"))
        .header("x-flotilla-service-token", peer.token("cart", Some(&alice)))
        .send()
        .await
        .expect("cart");
    assert_eq!(res.status(), 200);
    drop(first);
}
