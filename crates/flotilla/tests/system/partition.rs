//! RELIABILITY.md F8: a silent partition between orders and inventory. The shop runs as two
//! processes — `flotilla run` with inventory remote, and `flotilla serve inventory` — and the
//! run process reaches inventory only through a fault proxy of the test's own
//! (`flotilla_testkit::fault_proxy`), on which a `timeout` toxic of 0 (a black hole: nothing
//! passes, nothing is closed) makes the partition silent: no reset, no refusal, no answer.
//!
//! The row's 20 s partition is shortened to 8 s to keep CI fast: every figure the row names is
//! settled within the first 4 s (the first calls are cut at their 2 s deadline, the breaker
//! opens on them, and the reservations' 3 s TTL passes), and the rest of the partition only
//! repeats refused calls.

use crate::checkout::{ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, login, try_checkout};
use crate::support::Process;
use flotilla_chassis::service_credential::ServiceCredentials;
use flotilla_chassis::{Caller, Role};
use flotilla_testkit::fault_proxy::{Proxy, Stream, Toxic, ToxicKind, fault_proxy};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The service secret both processes share (service credentials between them).
pub(crate) const SECRET: &str = "fault-tests-shared-secret-0123456789abcdef";

/// `flotilla run` with some services (`served`) in a `flotilla serve` process of its own, each
/// reached through a fault proxy; both processes write their standard error to `run.log` and
/// `serve.log` in [`Split::logs`].
pub(crate) struct Split {
    pub(crate) run: Process,
    pub(crate) served: Process,
    /// The proxy on the link from the run process (its services and the gateway) to each
    /// served service.
    pub(crate) links: Vec<(String, Proxy)>,
    pub(crate) gateway: String,
    pub(crate) logs: tempfile::TempDir,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Split {
    /// Starts both processes; `run_env` and `serve_env` are added to each one's environment.
    pub(crate) async fn start(
        served: &[&str],
        run_env: &[(&str, &str)],
        serve_env: &[(&str, &str)],
    ) -> Split {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let logs = tempfile::tempdir().expect("dir");
        let common = [
            ("FLOTILLA_SERVICE_SECRET", SECRET),
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "20"),
            ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "20"),
            ("FLOTILLA_INVENTORY__INITIAL_STOCK", "100"),
        ];
        let mut env = common.to_vec();
        env.extend_from_slice(serve_env);
        let data = b.path().to_str().expect("utf-8").to_owned();
        let mut args = vec!["serve"];
        args.extend_from_slice(served);
        args.extend(["--port", "0", "--data-dir", &data]);
        let served_process = Process::start_logging(&args, &env, &logs.path().join("serve.log"));
        let mut links = Vec::new();
        let mut remotes = Vec::new();
        for name in served {
            let url = served_process.url(name);
            let link = fault_proxy(url.trim_start_matches("http://")).await;
            remotes.push(format!("{name}=http://{}", link.addr()));
            links.push(((*name).to_owned(), link));
        }
        let mut env = common.to_vec();
        env.extend([
            ("FLOTILLA_ADMIN_EMAIL", ADMIN_EMAIL),
            ("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ]);
        env.extend_from_slice(run_env);
        let data = a.path().to_str().expect("utf-8").to_owned();
        let mut args = vec!["run", "--port", "0", "--data-dir", &data];
        for remote in &remotes {
            args.extend(["--remote", remote]);
        }
        let run = Process::start_logging(&args, &env, &logs.path().join("run.log"));
        let gateway = run.url("gateway");
        Split {
            run,
            served: served_process,
            links,
            gateway,
            logs,
            _dirs: (a, b),
        }
    }

    /// The proxy in front of `service`.
    pub(crate) fn link(&self, service: &str) -> &Proxy {
        &self
            .links
            .iter()
            .find(|(name, _)| name == service)
            .expect("a proxied service")
            .1
    }

    /// GET `path` of the inventory process itself (not through the proxy), as a peer acting
    /// for an admin would.
    pub(crate) async fn inventory_admin(&self, http: &reqwest::Client, path: &str) -> Value {
        let peer = ServiceCredentials::new(SECRET.as_bytes(), "test");
        let admin = Caller {
            user_id: "test-admin".into(),
            role: Role::Admin,
        };
        let res = http
            .get(format!("{}{path}", self.served.url("inventory")))
            .header(
                "x-flotilla-service-token",
                peer.token("inventory", Some(&admin)),
            )
            .header("x-flotilla-user-id", "test-admin")
            .header("x-flotilla-user-role", "admin")
            .send()
            .await
            .expect("inventory");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.expect("json")
    }
}

/// Orders' view of its upstream `name` (`GET /api/orders/admin/resilience`).
pub(crate) async fn upstream(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> Value {
    let report: Value = http
        .get(format!("{base}/api/orders/admin/resilience"))
        .header("authorization", admin)
        .send()
        .await
        .expect("resilience")
        .json()
        .await
        .expect("json");
    report["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["upstream"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {name} in {report}"))
}

fn millis(at: &Value) -> i128 {
    let at = at.as_str().expect("timestamp");
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{at}: {e}"))
        .unix_timestamp_nanos()
        / 1_000_000
}

/// The step deadline of orders (its default, spelled out: the figures below depend on it).
const STEP_DEADLINE_MS: u64 = 2000;
/// The deadline a client sends with its own call across the partition.
const CLIENT_DEADLINE_MS: u64 = 1500;
/// Orders' cap on calls in flight to inventory.
const MAX_IN_FLIGHT: u64 = 4;
/// Customers checking out at once when the partition starts: twice the cap.
const SHOPPERS: usize = 8;
const PARTITION: Duration = Duration::from_secs(8);
/// A reservation's TTL, and how often inventory releases expired ones.
const TTL_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_from_inventory_opens_the_breaker_and_heals() {
    let split = Split::start(
        &["inventory"],
        &[
            ("FLOTILLA_ORDERS__STEP_TIMEOUT_MS", "2000"),
            ("FLOTILLA_ORDERS__RESERVATION_TTL_SECS", "3"),
            (
                "FLOTILLA_RESILIENCE__UPSTREAMS__INVENTORY__BULKHEAD__MAX_IN_FLIGHT",
                "4",
            ),
            (
                "FLOTILLA_RESILIENCE__UPSTREAMS__INVENTORY__BREAKER__OPEN_WAIT_MS",
                "1000",
            ),
        ],
        &[("FLOTILLA_INVENTORY__EXPIRY_INTERVAL_MS", "200")],
    )
    .await;
    let http = reqwest::Client::new();
    let base = split.gateway.as_str();
    let admin = login(&http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut shoppers = Vec::new();
    for k in 0..SHOPPERS {
        let bearer = customer(&http, base).await;
        add_to_cart(&http, base, &bearer, &format!("p{:07}", k % 4 + 1), 1).await;
        shoppers.push(bearer);
    }
    // Warm: orders has a connection to inventory, and the breaker has seen a success.
    let bearer = customer(&http, base).await;
    add_to_cart(&http, base, &bearer, "p0000010", 1).await;
    let (status, _) = try_checkout(&http, base, &bearer, "warm", "4242424242424242")
        .await
        .expect("checkout");
    assert!(matches!(status, 201 | 202), "healthy checkout: {status}");

    // The partition. Answers are lost first (so requests already on their way reach inventory
    // and hold stock that orders never hears of), then requests too.
    split
        .link("inventory")
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }).on(Stream::Downstream))
        .await
        .expect("toxic");
    let cut = Instant::now();
    let checkouts = shoppers.iter().enumerate().map(|(k, bearer)| {
        let http = http.clone();
        async move {
            let sent = Instant::now();
            let key = format!("partition-{k}");
            let answer = try_checkout(&http, base, bearer, &key, "4242424242424242")
                .await
                .expect("checkout");
            (answer, sent.elapsed())
        }
    });
    // Meanwhile: orders' bulkhead for inventory, sampled; and the breaker's state.
    let watch = async {
        let mut most = 0;
        let mut opened = None;
        while cut.elapsed() < Duration::from_millis(STEP_DEADLINE_MS * 3) && opened.is_none() {
            let up = upstream(&http, base, &admin, "inventory").await;
            most = most.max(up["bulkhead"]["in_flight"].as_u64().expect("in flight"));
            if opened.is_none() && up["breaker"]["state"] == "open" {
                opened = Some(cut.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (most, opened)
    };
    let (answers, (most_in_flight, opened)) =
        tokio::join!(futures::future::join_all(checkouts), watch);
    split
        .link("inventory")
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }).on(Stream::Upstream))
        .await
        .expect("toxic");
    let mut orders = Vec::new();
    for ((status, body), took) in &answers {
        // Answered 202 (still running) when the saga did not finish within respond_within, or
        // 503 at once when the breaker already refused: never a hang, never a 500.
        assert!(matches!(status, 202 | 503), "checkout: {status} {body}");
        assert!(
            *took < Duration::from_millis(2000 + 1000),
            "a checkout took {took:?}"
        );
        if *status == 202 {
            orders.push(body["id"].as_str().expect("id").to_owned());
        }
    }
    eprintln!(
        "F8: {} of {SHOPPERS} checkouts placed (202), most calls in flight to inventory \
         {most_in_flight}, breaker open {opened:?} after the partition began",
        orders.len()
    );
    assert!(
        most_in_flight <= MAX_IN_FLIGHT,
        "{most_in_flight} calls in flight"
    );
    // The breaker opens on 5 failures in a row (its default): the first 4 calls (the
    // bulkhead's cap) are cut at 2 s, the next at 4 s plus a backoff; 6 s leaves a margin.
    let opened = opened.expect("orders' breaker for inventory opened within 6 s");

    // Every call that went out was cut at its deadline (2 s, ±10 %): the first RESERVE of each
    // placed order, as orders recorded it, against the order's creation.
    let mut cut_at = Vec::new();
    for id in &orders {
        let saga: Value = http
            .get(format!("{base}/api/orders/admin/sagas/{id}"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("saga")
            .json()
            .await
            .expect("json");
        let order: Value = http
            .get(format!("{base}/api/orders/admin/orders?page_size=100"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("orders")
            .json()
            .await
            .expect("json");
        let created = order["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|o| o["id"] == id.as_str())
            .map(|o| millis(&o["created_at"]))
            .expect("the order is listed");
        let first = &saga["steps"][0];
        assert_eq!(first["step"], "RESERVE", "{saga}");
        let detail = first["detail"].as_str().unwrap_or_default();
        // Calls refused at once by the bulkhead or the breaker never went out.
        if detail.contains("is busy") || detail.contains("is failing") {
            continue;
        }
        cut_at.push((millis(&first["at"]) - created, detail.to_owned()));
    }
    eprintln!(
        "F8: breaker opened {opened:?} after the partition began; first calls cut after (ms, detail): {cut_at:?}"
    );
    assert!(!cut_at.is_empty(), "no call to inventory went out");
    let (low, high) = (STEP_DEADLINE_MS * 9 / 10, STEP_DEADLINE_MS * 11 / 10);
    for (ms, detail) in &cut_at {
        assert!(
            (i128::from(low)..=i128::from(high)).contains(ms),
            "a call failed after {ms} ms, not at its deadline of {STEP_DEADLINE_MS} ms ±10 %: {detail}"
        );
    }

    // A client's own call across the partition (the gateway's link to inventory is the same
    // proxy) fails at the client's deadline ±10 %.
    let sent = Instant::now();
    let res = http
        .get(format!("{base}/api/inventory/stock/p0000001"))
        .header("x-flotilla-deadline-ms", CLIENT_DEADLINE_MS.to_string())
        .send()
        .await
        .expect("stock");
    let took = sent.elapsed();
    eprintln!(
        "F8: a client's call with a {CLIENT_DEADLINE_MS} ms deadline: {} after {took:?}",
        res.status()
    );
    // 504 when the call itself ran out; 503 when the gateway's first look at inventory's
    // contract (it had not routed to inventory before) is what the deadline cut.
    assert!(
        matches!(res.status().as_u16(), 503 | 504),
        "{}",
        res.status()
    );
    let client = Duration::from_millis(CLIENT_DEADLINE_MS);
    assert!(
        took >= client * 9 / 10 && took <= client * 11 / 10,
        "{took:?}"
    );

    // Once the breaker has opened, at most its half-open probes (3) wait on the partition:
    // every other call is refused at once.
    let up = upstream(&http, base, &admin, "inventory").await;
    let waiting = up["bulkhead"]["in_flight"].as_u64().expect("in flight");
    eprintln!("F8: calls in flight to inventory after the breaker opened: {waiting}");
    assert!(waiting <= 3, "{up}");

    // The reservations inventory made for answers that were lost expire (TTL 3 s) and are
    // released by inventory alone, before the partition ends.
    let held_deadline = cut + Duration::from_secs(TTL_SECS) + Duration::from_secs(2);
    loop {
        let summary = split.inventory_admin(&http, "/admin/summary").await;
        if summary["held"] == 0 {
            eprintln!("F8: inventory during the partition: {summary}");
            break;
        }
        assert!(
            Instant::now() < held_deadline,
            "reservations still held {:?} after the partition began: {summary}",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = split.inventory_admin(&http, "/admin/summary").await;
    assert!(
        summary["released"].as_u64().unwrap_or(0) >= 1,
        "no reservation reached inventory to expire: {summary}"
    );

    // The end of the partition.
    if let Some(left) = PARTITION.checked_sub(cut.elapsed()) {
        tokio::time::sleep(left).await;
    }
    for stream in ["downstream", "upstream"] {
        split
            .link("inventory")
            .remove_toxic(&format!("timeout_{stream}"))
            .await
            .expect("remove toxic");
    }
    let healed = Instant::now();
    // Orders' recovery loop resumes the unfinished sagas: their calls are the breaker's probes.
    // A new checkout is refused (503) while the breaker is open and goes through once closed.
    let bearer = customer(&http, base).await;
    let mut closed = None;
    let mut attempt = 0;
    while closed.is_none() {
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "orders' breaker for inventory not closed {:?} after the partition ended: {}",
            healed.elapsed(),
            upstream(&http, base, &admin, "inventory").await
        );
        let up = upstream(&http, base, &admin, "inventory").await;
        if up["breaker"]["state"] == "closed" {
            closed = Some(healed.elapsed());
            break;
        }
        attempt += 1;
        add_to_cart(&http, base, &bearer, "p0000011", 1).await;
        let _ = try_checkout(
            &http,
            base,
            &bearer,
            &format!("after-{attempt}"),
            "4242424242424242",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("F8: breaker closed {closed:?} after the partition ended");

    // Inventory holds nothing for the orders of the partition, and no unit is lost: available
    // + sold = the stock it started with. (Orders whose compensation backed off during the
    // partition end later, at their next try: the saga's backoff grows to 30 s.)
    let end = Instant::now() + Duration::from_secs(5);
    let summary = loop {
        let summary = split.inventory_admin(&http, "/admin/summary").await;
        if summary["held"] == 0 {
            break summary;
        }
        assert!(Instant::now() < end, "held after the partition: {summary}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut available = 0;
    for k in 1..=20 {
        let stock = split
            .inventory_admin(&http, &format!("/stock/p{k:07}"))
            .await;
        available += stock["available"].as_i64().expect("available");
    }
    let sold = summary["units_committed"].as_i64().expect("committed");
    eprintln!("F8: after the partition: {summary}, {available} units available");
    assert_eq!(available + sold, 20 * 100, "{summary}");
    crate::toxics::no_panic(&split);
}
