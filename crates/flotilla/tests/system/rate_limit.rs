//! Issue 13's rate limits and RELIABILITY.md L6 and S6, through the gateway of a whole shop:
//! buckets per client address (told apart here by `X-Forwarded-For` behind one trusted hop)
//! and per user, per route class; shared by two gateways through a real Redis; failing open or
//! closed when Redis does not answer; and identity's throttle on failed logins.

use crate::checkout::customer;
use crate::support::{TestApp, client, gateway_health, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

const PRODUCT: &str = "/api/catalog/products/p0000001";

/// The limits of these tests: on, clients told apart by one trusted `X-Forwarded-For` hop,
/// `read` per address as given, everything else as loose as the defaults or looser.
fn limits(read_per_ip: Value, more: Value) -> Value {
    let mut config = json!({
        "gateway": {"rate_limit": {
            "enabled": true,
            "forwarded_for_hops": 1,
            "read": {
                "per_ip": read_per_ip,
                "per_user": {"per_second": 0.0, "burst": 0},
            },
        }},
    });
    merge(&mut config, more);
    config
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

/// What came back for a batch of requests.
#[derive(Default, Debug)]
struct Tally {
    admitted: usize,
    limited: usize,
    other: Vec<u16>,
}

/// Checks a 429: problem+json of kind `rate-limited`, `Retry-After` of a second or more.
async fn assert_limited(res: reqwest::Response) {
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 says when to come back");
    assert!(retry_after >= 1);
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(kind.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.expect("problem");
    assert_eq!(body["type"], "urn:flotilla:problem:rate-limited", "{body}");
}

/// `total` reads of `path` from client `ip`, sent on a clock at `per_second` (open loop), over
/// `bases` in turn; the tally and the time from the first send to the last.
async fn paced_reads(
    http: &reqwest::Client,
    bases: &[&str],
    ip: &str,
    total: usize,
    per_second: u64,
) -> (Tally, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..total)
        .map(|i| {
            let at = start + Duration::from_micros(i as u64 * 1_000_000 / per_second);
            let url = format!("{}{PRODUCT}", bases[i % bases.len()]);
            let (http, ip) = (http.clone(), ip.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let sent = Instant::now();
                let res = http
                    .get(url)
                    .header("x-forwarded-for", ip)
                    .send()
                    .await
                    .expect("read");
                (sent, res)
            })
        })
        .collect();
    let mut tally = Tally::default();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for task in tasks {
        let (sent, res) = task.await.expect("task");
        first = Some(first.map_or(sent, |f| f.min(sent)));
        last = Some(last.map_or(sent, |l| l.max(sent)));
        match res.status() {
            StatusCode::OK => tally.admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                tally.limited += 1;
                assert_limited(res).await;
            }
            other => tally.other.push(other.as_u16()),
        }
    }
    let span = last.zip(first).map_or(Duration::ZERO, |(l, f)| l - f);
    (tally, span)
}

/// The admitted count GCRA allows for `span` of steady sending: the burst, then the rate.
fn expected(burst: f64, per_second: f64, span: Duration) -> f64 {
    burst + per_second * span.as_secs_f64()
}

async fn get_as(app: &TestApp, ip: &str) -> StatusCode {
    app.http
        .get(format!("{}{PRODUCT}", app.base))
        .header("x-forwarded-for", ip)
        .send()
        .await
        .expect("read")
        .status()
}

#[tokio::test]
async fn one_client_gets_its_burst_then_its_rate_and_another_is_unaffected() {
    // RELIABILITY.md L6: 1,000 requests in 10 s against a 20-burst, 10/s bucket.
    let app = spawn_app_with(limits(json!({"per_second": 10.0, "burst": 20}), json!({}))).await;
    let (tally, span) = paced_reads(&app.http, &[&app.base], "203.0.113.1", 1_000, 100).await;
    let want = expected(20.0, 10.0, span);
    eprintln!("L6: {tally:?} over {span:?}, GCRA allows {want:.1}");
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert!(
        (tally.admitted as f64 - want).abs() <= 2.0,
        "{} admitted over {span:?}; the bucket allows {want:.1}",
        tally.admitted
    );
    assert_eq!(tally.admitted + tally.limited, 1_000);
    // The client that flooded is still limited; another address is not.
    assert_eq!(get_as(&app, "203.0.113.1").await, 429);
    for _ in 0..10 {
        assert_eq!(get_as(&app, "203.0.113.2").await, 200);
    }
    let health = gateway_health(&app.http, &app.base).await;
    assert_eq!(health["rate_limit"]["backend"], "local", "{health}");
    assert!(health["rate_limit"]["limited"].as_u64() >= Some(tally.limited as u64));
    // Probes are never limited.
    let probe = app
        .http
        .get(format!("{}/api/catalog/readyz", app.base))
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await
        .expect("probe");
    assert_eq!(probe.status(), 200);
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_the_buckets() {
    let cluster = format!("rl{}", rand::random::<u32>());
    let config = || {
        limits(
            json!({"per_second": 10.0, "burst": 20}),
            json!({"redis_url": "redis://127.0.0.1:6379", "cluster": cluster}),
        )
    };
    let (a, b) = (
        spawn_app_with(config()).await,
        spawn_app_with(config()).await,
    );
    // 150 reads over 3 s, alternating between the two gateways.
    let (tally, span) = paced_reads(&a.http, &[&a.base, &b.base], "198.51.100.7", 150, 50).await;
    let want = expected(20.0, 10.0, span);
    eprintln!("shared: {tally:?} over {span:?}, GCRA allows {want:.1}");
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert!(
        (tally.admitted as f64 - want).abs() <= 2.0,
        "{} admitted by two gateways over {span:?}; one shared bucket allows {want:.1}",
        tally.admitted
    );
    let health = gateway_health(&a.http, &a.base).await;
    assert_eq!(health["rate_limit"]["backend"], "redis", "{health}");
    assert_eq!(health["rate_limit"]["redis_errors"], 0, "{health}");
}

#[tokio::test]
async fn a_redis_that_does_not_answer_fails_open_or_closed_as_configured() {
    // Open (the default), with a Redis that accepts connections and never answers: every
    // request is admitted after at most the check's timeout.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}", hung.local_addr().expect("addr"));
    let open = spawn_app_with(limits(
        json!({"per_second": 1.0, "burst": 2}),
        json!({"redis_url": url, "gateway": {"rate_limit": {"redis_timeout_ms": 100}}}),
    ))
    .await;
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get_as(&open, "192.0.2.1").await, 200);
        took.push(started.elapsed());
    }
    // The first waits the check's timeout; then Redis is left alone for a second, and the
    // others take the failure mode at once (each waited 340 ms on a reconnection before).
    assert!(took[0] < Duration::from_secs(2), "{took:?}");
    assert!(
        took[1..].iter().sum::<Duration>() < Duration::from_millis(400),
        "{took:?}"
    );
    let health = gateway_health(&open.http, &open.base).await;
    assert!(
        health["rate_limit"]["redis_errors"].as_u64() >= Some(5),
        "every failed check is counted: {health}"
    );

    // Closed, with no Redis at all: refused with a 503 problem.
    let refused = crate::support::free_port();
    let closed = spawn_app_with(limits(
        json!({"per_second": 1.0, "burst": 2}),
        json!({
            "redis_url": format!("redis://127.0.0.1:{refused}"),
            "gateway": {"rate_limit": {"on_redis_error": "closed"}},
        }),
    ))
    .await;
    let res = closed
        .http
        .get(format!("{}{PRODUCT}", closed.base))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .expect("read");
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rate limits")),
        "{body}"
    );
    // A page gets the shop's error page.
    let res = closed
        .http
        .get(format!("{}/", closed.base))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), 503);
    let kind = res.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    drop(hung);
}

#[tokio::test]
async fn a_user_is_limited_wherever_they_connect_from() {
    let app = spawn_app_with(limits(
        json!({"per_second": 1000.0, "burst": 1000}),
        json!({"gateway": {"rate_limit": {"read": {"per_user": {"per_second": 0.1, "burst": 3}}}}}),
    ))
    .await;
    let (alice, bob) = (
        customer(&app.http, &app.base).await,
        customer(&app.http, &app.base).await,
    );
    let me = |token: &str, ip: &str| {
        app.http
            .get(format!("{}/api/identity/me", app.base))
            .header("authorization", token)
            .header("x-forwarded-for", ip.to_owned())
            .send()
    };
    for ip in ["192.0.2.10", "192.0.2.11", "192.0.2.12"] {
        assert_eq!(me(&alice, ip).await.expect("me").status(), 200);
    }
    let res = me(&alice, "192.0.2.13").await.expect("me");
    assert_eq!(res.status(), 429, "a fourth address does not help");
    assert_limited(res).await;
    assert_eq!(me(&bob, "192.0.2.10").await.expect("me").status(), 200);
}

#[tokio::test]
async fn sign_ups_and_logins_are_limited_far_more_strictly_than_reads() {
    // The default limits, with the site's forms from one address.
    let app = spawn_app_with(json!({"gateway": {"rate_limit": {"enabled": true}}})).await;
    let web = client();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let res = web
            .post(format!("{}/login", app.base))
            .form(&[
                ("email", format!("nobody{i}@example.com")),
                ("password", "wrong".into()),
            ])
            .send()
            .await
            .expect("login");
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            let kind = res.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .to_owned();
            assert!(
                kind.starts_with("text/html"),
                "a page for the browser: {kind}"
            );
            let page = res.text().await.expect("page");
            assert!(page.contains("Slow down"), "{page}");
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    // Reads from the same address are another bucket.
    for _ in 0..20 {
        let res = web
            .get(format!("{}/", app.base))
            .send()
            .await
            .expect("home");
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn password_guessing_stops_after_ten_failures_alike_for_known_and_unknown_accounts() {
    // RELIABILITY.md S6, on identity's own throttle (the gateway's limits off, so that every
    // try reaches it): 100 tries on one account in a few seconds, 20 at a time.
    let app = spawn_app_with(json!({})).await;
    let known = format!("s6-{}@example.com", rand::random::<u32>());
    let res = app
        .http
        .post(format!("{}/api/identity/signup", app.base))
        .json(&json!({"email": known, "password": "the right password", "name": "Sam"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), 201);
    let unknown = format!("nobody-{}@example.com", rand::random::<u32>());
    let mut answers = Vec::new();
    for email in [&known, &unknown] {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let batch: Vec<_> = (0..20)
                .map(|_| {
                    app.http
                        .post(format!("{}/api/identity/login", app.base))
                        .json(&json!({"email": email, "password": "a wrong guess"}))
                        .send()
                })
                .collect();
            for res in futures::future::join_all(batch).await {
                let res = res.expect("login");
                let status = res.status().as_u16();
                if status == 429 {
                    assert!(res.headers().contains_key("retry-after"));
                }
                let body: Value = res.json().await.expect("problem");
                statuses.push(status);
                answers.push((status, body["type"].to_string(), body["title"].to_string()));
            }
        }
        let failed = statuses.iter().filter(|s| **s == 401).count();
        let throttled = statuses.iter().filter(|s| **s == 429).count();
        assert!(failed <= 10, "{email}: {failed} passwords checked");
        assert_eq!(failed + throttled, 100, "{statuses:?}");
        // Racing tries may all see each other and all be refused, so the batches can leave
        // fewer than ten failures: one try at a time then checks exactly the rest.
        let mut checked = failed;
        loop {
            let res = app
                .http
                .post(format!("{}/api/identity/login", app.base))
                .json(&json!({"email": email, "password": "a wrong guess"}))
                .send()
                .await
                .expect("login");
            let status = res.status().as_u16();
            let body: Value = res.json().await.expect("problem");
            answers.push((status, body["type"].to_string(), body["title"].to_string()));
            match status {
                401 => checked += 1,
                429 => break,
                other => panic!("{email}: answered {other}"),
            }
            assert!(checked <= 10, "{email}: {checked} passwords checked");
        }
        assert_eq!(
            checked, 10,
            "{email}: the eleventh try within the window is refused"
        );
    }
    // Known and unknown accounts got the same answers.
    let kinds = |status: u16| {
        answers
            .iter()
            .filter(|a| a.0 == status)
            .map(|a| (a.1.clone(), a.2.clone()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(kinds(401).len(), 1, "{answers:?}");
    assert_eq!(kinds(429).len(), 1, "{answers:?}");
    // The right password waits too; another account does not.
    let res = app
        .http
        .post(format!("{}/api/identity/login", app.base))
        .json(&json!({"email": known, "password": "the right password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 429);
    let other = customer(&app.http, &app.base).await;
    assert!(!other.is_empty());
}

#[tokio::test]
async fn the_web_forms_lockout_says_when_to_come_back() {
    // Identity's throttle through the site's login form (the gateway's limits off).
    let app = spawn_app_with(json!({})).await;
    let web = client();
    let email = format!("form-{}@example.com", rand::random::<u32>());
    for i in 0..11 {
        let res = web
            .post(format!("{}/login", app.base))
            .form(&[("email", email.as_str()), ("password", "a wrong guess")])
            .send()
            .await
            .expect("login");
        if i < 10 {
            assert_eq!(res.status(), 401, "try {i}");
            continue;
        }
        assert_eq!(res.status(), 429);
        let wait: u64 = res.headers()["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=61).contains(&wait), "{wait}");
        let page = res.text().await.expect("page");
        assert!(page.contains("Too many failed attempts"), "{page}");
    }
}
