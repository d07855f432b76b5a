//! Outlier ejection and active health against real servers on random ports (RELIABILITY.md
//! F10, and the instance-level half of F15): a replica answering 500, a killed one, a hung one,
//! one coming back on its old address. Settings are scaled down (ejection in hundreds of ms) so
//! that each test takes a second or two.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flotilla_chassis::transport::{Transport, TransportError};
use flotilla_discovery::{Balancer, InstanceSnapshot, OutlierSettings};
use futures::StreamExt;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::support::{Answer, Hung, Instance, pool, pool_with_timeout};

/// Ejections in hundreds of ms, probes every 50 ms.
fn quick() -> OutlierSettings {
    OutlierSettings {
        base_ejection_ms: 300,
        max_ejection_ms: 900,
        health_interval_ms: 50,
        health_timeout_ms: 200,
        ..OutlierSettings::default()
    }
}

fn balancer(urls: &[&str], settings: OutlierSettings) -> (Balancer, watch::Sender<Vec<String>>) {
    balancer_on(urls, settings, &pool())
}

fn balancer_on(
    urls: &[&str],
    settings: OutlierSettings,
    pool: &flotilla_chassis::transport::http::HttpPool,
) -> (Balancer, watch::Sender<Vec<String>>) {
    let mut list: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
    list.sort();
    let (tx, rx) = watch::channel(list);
    (Balancer::new("catalog", rx, pool, settings), tx)
}

/// `GET /whoami`: the answering instance's id, or the status / error as a failure.
async fn whoami(transport: &Transport) -> Result<String, String> {
    let request = Request::get("/whoami")
        .body(Body::empty())
        .expect("request");
    let response = transport
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn instance<'a>(
    balancer: &Balancer,
    url: &str,
    snapshot: &'a mut Vec<InstanceSnapshot>,
) -> &'a InstanceSnapshot {
    *snapshot = balancer.snapshot().instances;
    snapshot
        .iter()
        .find(|i| i.url == url)
        .expect("instance listed")
}

fn stats(balancer: &Balancer, url: &str) -> InstanceSnapshot {
    let mut all = Vec::new();
    instance(balancer, url, &mut all).clone()
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `n` GETs, `concurrency` at a time; returns (successes, failures), checking after every
/// request that no more than `cap` instances are ejected.
async fn load(balancer: &Balancer, n: usize, concurrency: usize, cap: usize) -> (usize, usize) {
    let transport = balancer.transport();
    let outcomes: Vec<bool> = futures::stream::iter(0..n)
        .map(|_| {
            let transport = transport.clone();
            async move {
                let ok = whoami(&transport).await.is_ok();
                let ejected = balancer
                    .snapshot()
                    .instances
                    .iter()
                    .filter(|i| i.ejected)
                    .count();
                assert!(
                    ejected <= cap,
                    "{ejected} instances ejected at once, cap {cap}"
                );
                ok
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ok = outcomes.iter().filter(|o| **o).count();
    (ok, n - ok)
}

/// F10, the rules: five 5xx in a row eject, and each ejection in a row lasts longer. The
/// failure penalty is off here so that the failing instance keeps being chosen and the runs
/// of 5xx can be counted.
#[tokio::test]
async fn five_consecutive_5xx_eject_and_each_ejection_lasts_longer() {
    let good = Instance::start("good");
    let bad = Instance::start_with("bad", Answer::ServerError);
    // A short decay keeps either replica from starving on one slow sample.
    let settings = OutlierSettings {
        failure_penalty_ms: 0,
        probe_all: false,
        ewma_decay_ms: 50,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&good.url, &bad.url], settings);
    let transport = balancer.transport();

    let mut lengths = Vec::new();
    for round in 1..=3u64 {
        // Sequential requests until the bad instance is ejected for the round-th time.
        let started = Instant::now();
        loop {
            let _ = whoami(&transport).await;
            let bad_now = stats(&balancer, &bad.url);
            if bad_now.ejections == round {
                assert!(bad_now.ejected);
                assert_eq!(
                    bad_now.failures,
                    5 * round,
                    "ejected after exactly five 5xx in a row"
                );
                let until = bad_now.ejected_until_unix_ms.expect("ejected until");
                lengths.push(until.saturating_sub(unix_ms_now()));
                break;
            }
            assert_eq!(bad_now.ejections, round - 1);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "round {round} never ejected"
            );
        }
        // No traffic while ejected.
        let before = stats(&balancer, &bad.url).requests;
        for _ in 0..20 {
            assert_eq!(whoami(&transport).await.as_deref(), Ok("good"));
        }
        assert_eq!(stats(&balancer, &bad.url).requests, before);
        // Its /readyz passes: back after the ejection time.
        let out = Instant::now();
        while stats(&balancer, &bad.url).ejected {
            assert!(out.elapsed() < Duration::from_secs(3), "never came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("ejection lengths (ms): {lengths:?}");
    // 300, 600, 900 ms (the maximum), less the few ms to read them.
    assert!(lengths[0] <= 300 && lengths[0] >= 250, "{lengths:?}");
    assert!(lengths[1] <= 600 && lengths[1] >= 550, "{lengths:?}");
    assert!(lengths[2] <= 900 && lengths[2] >= 850, "{lengths:?}");
}

/// F10, the figures: 1 of 3 replicas answering 500, then 2 of 3; 2,000 GETs each, 8 at a
/// time, the failing replicas' 500s counted as failures: at least 99 % succeed and never more
/// than the cap (1 of 3 at 50 %) is ejected. With 2 failing, one of them must stay in rotation;
/// the failure penalty makes it lose the power-of-two comparison.
#[tokio::test]
async fn one_then_two_of_three_failing_replicas_cost_under_one_percent() {
    let instances: Vec<Instance> = (0..3).map(|i| Instance::start(&format!("i{i}"))).collect();
    let urls: Vec<&str> = instances.iter().map(|i| i.url.as_str()).collect();
    let (balancer, _tx) = balancer(&urls, quick());
    let (ok, _) = load(&balancer, 100, 8, 1).await;
    assert_eq!(ok, 100, "healthy at first");
    for failing in [1usize, 2] {
        instances[failing - 1].answer(Answer::ServerError);
        let started = Instant::now();
        let (ok, failed) = load(&balancer, 2_000, 8, 1).await;
        let share = ok as f64 / 2_000.0;
        eprintln!(
            "{failing} of 3 failing: {ok} ok, {failed} failed ({:.2} %) in {:?}; \
             (requests, failures, ejections) per replica: {:?}",
            share * 100.0,
            started.elapsed(),
            balancer
                .snapshot()
                .instances
                .iter()
                .map(|i| (i.requests, i.failures, i.ejections))
                .collect::<Vec<_>>()
        );
        assert!(
            share >= 0.99,
            "{failing} of 3 failing: only {ok} of 2000 succeeded"
        );
    }
}

/// What the failure penalty buys, measured: 2 of 3 failing with the penalty off. The fast
/// failing replica that the cap keeps in rotation wins most comparisons on latency alone.
#[tokio::test]
async fn without_the_failure_penalty_a_fast_failing_replica_takes_traffic() {
    let instances: Vec<Instance> = (0..3)
        .map(|i| {
            let answer = if i < 2 {
                Answer::ServerError
            } else {
                Answer::Id
            };
            Instance::start_with(&format!("i{i}"), answer)
        })
        .collect();
    let urls: Vec<&str> = instances.iter().map(|i| i.url.as_str()).collect();
    let settings = OutlierSettings {
        failure_penalty_ms: 0,
        ..quick()
    };
    let (balancer, _tx) = balancer(&urls, settings);
    let (ok, failed) = load(&balancer, 2_000, 8, 1).await;
    eprintln!("2 of 3 failing, no penalty: {ok} ok, {failed} failed");
    assert!(
        failed > 20,
        "ejection alone kept failures under 1 % ({failed}); the penalty would not be needed"
    );
}

/// A killed replica (listener and connections closed at once), then 100 requests at once: none
/// fails, because each refused request is sent to the other replica; the dead one is ejected at
/// its first refusal and gets no attempt after it.
#[tokio::test]
async fn a_killed_replica_costs_no_request() {
    let alive = Instance::start("alive");
    let mut dead = Instance::start("dead");
    // Requests alone find it dead here (no probes).
    let settings = OutlierSettings {
        probe_all: false,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&alive.url, &dead.url], settings);
    let transport = balancer.transport();
    let warm: Vec<_> = futures::stream::iter(0..40)
        .map(|_| whoami(&transport))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(warm.iter().all(Result::is_ok));
    assert!(stats(&balancer, &dead.url).requests > 0, "warm on both");
    dead.kill();
    // The client notices the closed keep-alive connections once its tasks run.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let before = stats(&balancer, &dead.url).requests;
    let burst: Vec<_> = futures::future::join_all((0..100).map(|_| whoami(&transport))).await;
    let failed: Vec<_> = burst.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    let after_burst = stats(&balancer, &dead.url);
    assert!(after_burst.ejected);
    assert_eq!(after_burst.ejections, 1);
    assert_eq!(after_burst.routed_while_ejected, 0);
    eprintln!(
        "attempts on the dead replica during the burst: {} (all routed before its first refusal)",
        after_burst.requests - before
    );

    // Once ejected, no attempt at all: a second burst leaves its count where it was.
    let burst: Vec<_> = futures::future::join_all((0..100).map(|_| whoami(&transport))).await;
    assert!(burst.iter().all(Result::is_ok));
    assert_eq!(stats(&balancer, &dead.url).requests, after_burst.requests);
}

/// A refused request is sent again to another instance once, whatever its method, body
/// included; with nowhere else to go the refusal is the answer.
#[tokio::test]
async fn a_refused_post_is_sent_to_another_instance_with_its_body() {
    let alive = Instance::start("alive");
    let nothing = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let post = |text: &str| {
        Request::post("/echo")
            .header("content-type", "text/plain")
            .body(Body::from(text.to_owned()))
            .expect("request")
    };
    let settings = OutlierSettings {
        probe_all: false,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&alive.url, &nothing], settings);
    for n in 0..20 {
        let text = format!("order {n}");
        let response = balancer
            .transport()
            .oneshot(post(&text))
            .await
            .expect("answered");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, text.as_bytes());
    }
    assert_eq!(stats(&balancer, &nothing).requests, 1);

    let (alone, _tx) = balancer_on(&[&nothing], quick(), &pool());
    let refused = alone.transport().oneshot(post("x")).await;
    assert!(
        matches!(refused, Err(TransportError::Connect { .. })),
        "{refused:?}"
    );
}

/// A hung replica (accepts, never answers), found by requests alone: a request waits the
/// transport timeout once, the replica is ejected, the rest go to the healthy one; its probes
/// time out, so it stays ejected past its ejection time.
#[tokio::test]
async fn a_hung_replica_holds_one_request_per_ejection() {
    let alive = Instance::start("alive");
    let hung = Hung::start().await;
    let timeout = Duration::from_millis(300);
    let settings = OutlierSettings {
        probe_all: false,
        ..quick()
    };
    let (balancer, _tx) = balancer_on(
        &[&alive.url, &hung.url],
        settings,
        &pool_with_timeout(timeout),
    );
    let transport = balancer.transport();
    let mut slow = 0;
    let mut failed = 0;
    for _ in 0..40 {
        let started = Instant::now();
        if whoami(&transport).await.is_err() {
            failed += 1;
        }
        if started.elapsed() >= timeout {
            slow += 1;
        }
    }
    assert_eq!(
        (slow, failed),
        (1, 1),
        "one request waited on the hung replica"
    );
    assert!(stats(&balancer, &hung.url).ejected);

    // Past the 300 ms ejection its probe times out: still out, still no request.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let now = stats(&balancer, &hung.url);
    assert!(now.ejected, "a hung replica passed its probe");
    assert_eq!(now.ejections, 1);
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(whoami(&transport).await.as_deref(), Ok("alive"));
        assert!(started.elapsed() < timeout);
    }
}

/// Reads through a caller's resilience stack whose per-try timeout (200 ms here) cuts an
/// attempt on a hung replica: the cut attempt is blamed on the replica (as a 504), so one read
/// pays the cut and the balancer sends the next ones to the live replica. Before the cut was
/// counted, the hung replica, never measured, looked fastest and got most reads, each paying
/// 200 ms. A read its caller gives up on before the cut blames no one.
#[tokio::test]
async fn an_attempt_cut_by_the_per_try_timeout_counts_against_its_replica() {
    use flotilla_chassis::resilience::stack::{Policies, Resilience, UpstreamPolicy};

    let alive = Instance::start("alive");
    let hung = Hung::start().await;
    let settings = OutlierSettings {
        probe_all: false,
        ..quick()
    };
    let (balancer, _tx) = balancer_on(
        &[&alive.url, &hung.url],
        settings,
        &pool_with_timeout(Duration::from_secs(10)),
    );
    let mut policy = UpstreamPolicy::default();
    policy.retry.try_timeout_ms = 200;
    let resilience = Resilience::new("test", Arc::new(Policies::uniform(policy)));
    let stacked = resilience.wrap("catalog", balancer.transport());

    // A caller giving up after 50 ms, before the cut: not the replica's fault.
    for _ in 0..4 {
        let _ = tokio::time::timeout(Duration::from_millis(50), whoami(&stacked)).await;
    }
    let before = stats(&balancer, &hung.url);
    assert_eq!(before.failures, 0, "a caller's own give-up was blamed");

    let mut slow = 0;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(whoami(&stacked).await.as_deref(), Ok("alive"));
        if started.elapsed() >= Duration::from_millis(200) {
            slow += 1;
        }
    }
    let after = stats(&balancer, &hung.url);
    assert!(
        after.failures >= 1,
        "the cut attempt was not counted: {after:?}"
    );
    assert!(
        slow <= 1 && after.requests - before.requests <= 1,
        "{slow} reads paid the cut, {} reached the hung replica",
        after.requests - before.requests
    );
}

/// One replica failing every request, kept in rotation by the ejection cap, while the other
/// was ejected for a short fault and is healthy again: the healthy one comes back at its first
/// passing probe, not at the end of its (here 30 s) ejection. Before, every request failed
/// until the ejection ran out (an outside tester's run: 30 s at 99 % failures).
#[tokio::test]
async fn a_recovered_replica_returns_early_when_the_one_in_rotation_is_failing() {
    let failing = Instance::start_with("failing", Answer::ServerError);
    let mut back = Instance::start("back");
    let addr = back.addr;
    let settings = OutlierSettings {
        base_ejection_ms: 30_000,
        max_ejection_ms: 30_000,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&failing.url, &back.url], settings);
    let transport = balancer.transport();
    back.kill();
    let started = Instant::now();
    while !stats(&balancer, &back.url).ejected {
        let _ = whoami(&transport).await;
        assert!(started.elapsed() < Duration::from_secs(2), "never ejected");
    }
    let _back = Instance::start_on(addr, "back");
    let restarted = Instant::now();
    loop {
        if whoami(&transport).await.as_deref() == Ok("back") {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "still ejected: {:?}",
            stats(&balancer, &back.url)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("back after {:?}", restarted.elapsed());
    // From then on the failing one, penalised, is left aside.
    let mut ok = 0;
    for _ in 0..20 {
        ok += usize::from(whoami(&transport).await.is_ok());
    }
    assert!(ok >= 19, "{ok} of 20 answered");
}

/// A replica that answered before and is stuck since, once the latency estimates have decayed
/// (an instance idle for a while): requests arriving one after another are spread by the
/// requests in flight, so the stuck one holds a few, not most of them. Before the floor in the
/// cost, its estimate decayed to nothing and it won every comparison whatever it held.
#[tokio::test]
async fn a_burst_spreads_by_requests_in_flight_when_estimates_have_decayed() {
    let alive = Instance::start("alive");
    let stuck = Instance::start("stuck");
    let settings = OutlierSettings {
        probe_all: false,
        ewma_decay_ms: 1,
        ..quick()
    };
    let (balancer, _tx) = balancer_on(
        &[&alive.url, &stuck.url],
        settings,
        &pool_with_timeout(Duration::from_millis(500)),
    );
    let transport = balancer.transport();
    for _ in 0..20 {
        assert!(whoami(&transport).await.is_ok());
    }
    stuck.answer(Answer::Hang);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let arrivals = (0..40u64).map(|i| {
        let transport = transport.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5 * i)).await;
            whoami(&transport).await
        }
    });
    let burst: Vec<_> = futures::future::join_all(arrivals).await;
    let failed = burst.iter().filter(|r| r.is_err()).count();
    assert!(failed <= 4, "{failed} of 40 waited on the stuck replica");
}

/// A client's own deadline says nothing about an instance: requests whose deadline has run out
/// (refused before they leave) or runs out within milliseconds (cut in flight, here on a hung
/// replica) eject nothing — an outside tester ejected healthy replicas, for up to 300 s, with
/// `x-flotilla-deadline-ms: 1`. Nor does a 503 that reports a dependency's failure.
#[tokio::test]
async fn a_clients_tiny_deadline_or_a_dependencys_failure_ejects_no_instance() {
    use flotilla_chassis::request_context;
    let alive = Instance::start("alive");
    let hung = Hung::start().await;
    // No probes: the hung replica would fail them, and that is not what is tested here.
    let settings = OutlierSettings {
        probe_all: false,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&alive.url, &hung.url], settings.clone());
    let transport = balancer.transport();
    for deadline_ms in [0u64, 1, 5, 20] {
        for _ in 0..10 {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(deadline_ms);
            let _ = request_context::with_deadline(Some(deadline), whoami(&transport)).await;
        }
    }
    for url in [&alive.url, &hung.url] {
        let s = stats(&balancer, url);
        assert!(!s.ejected && s.failures == 0, "{s:?}");
    }

    let forwarding = Instance::start_with("forwarding", Answer::DependencyFailed);
    let (balancer, _tx) = balancer_on(&[&forwarding.url, &alive.url], settings, &pool());
    let transport = balancer.transport();
    for _ in 0..20 {
        let _ = whoami(&transport).await;
    }
    let s = stats(&balancer, &forwarding.url);
    assert!(!s.ejected && s.failures == 0, "{s:?}");
}

/// With probes of every instance, a hung replica is ejected before any request waits on it:
/// 100 requests at once, none fails, none waits.
#[tokio::test]
async fn probes_eject_a_hung_replica_before_requests_reach_it() {
    let alive = Instance::start("alive");
    let hung = Hung::start().await;
    let timeout = Duration::from_secs(2);
    let settings = OutlierSettings {
        health_interval_ms: 100,
        health_timeout_ms: 100,
        ..quick()
    };
    let (balancer, _tx) = balancer_on(
        &[&alive.url, &hung.url],
        settings,
        &pool_with_timeout(timeout),
    );
    let transport = balancer.transport();
    let found = Instant::now();
    while !stats(&balancer, &hung.url).ejected {
        assert!(
            found.elapsed() < Duration::from_secs(1),
            "probe never ejected it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let burst: Vec<_> = futures::future::join_all((0..100).map(|_| whoami(&transport))).await;
    assert!(burst.iter().all(|r| r.as_deref() == Ok("alive")));
    assert!(started.elapsed() < Duration::from_millis(1_000));
    assert_eq!(stats(&balancer, &hung.url).requests, 0);
}

/// A killed replica started again on its address returns to rotation once its ejection time
/// is over and its /readyz passes, not before.
#[tokio::test]
async fn a_replica_back_on_its_address_returns_after_the_ejection_time() {
    let alive = Instance::start("alive");
    let mut back = Instance::start("back");
    let addr = back.addr;
    let settings = OutlierSettings {
        base_ejection_ms: 500,
        ..quick()
    };
    let (balancer, _tx) = balancer(&[&alive.url, &back.url], settings);
    let transport = balancer.transport();
    back.kill();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ejected = Instant::now();
    while !stats(&balancer, &back.url).ejected {
        assert!(whoami(&transport).await.is_ok());
        assert!(ejected.elapsed() < Duration::from_secs(2));
    }
    let ejected = Instant::now();
    let _back = Instance::start_on(addr, "back");
    loop {
        let who = whoami(&transport).await.expect("answered");
        if who == "back" {
            break;
        }
        assert!(ejected.elapsed() < Duration::from_secs(3), "never returned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = ejected.elapsed();
    eprintln!("back in rotation after {took:?}");
    assert!(
        took >= Duration::from_millis(450),
        "returned before its ejection time: {took:?}"
    );
    assert!(!stats(&balancer, &back.url).ejected);
}

/// The snapshot an admin endpoint will show serialises, settings included.
#[tokio::test]
async fn the_snapshot_serialises() {
    let a = Instance::start("a");
    let (balancer, _tx) = balancer(&[&a.url], quick());
    assert_eq!(whoami(&balancer.transport()).await.as_deref(), Ok("a"));
    let json = serde_json::to_value(balancer.snapshot()).expect("serialises");
    assert_eq!(json["service"], "catalog");
    assert_eq!(json["settings"]["consecutive_5xx"], 5);
    assert_eq!(json["instances"][0]["requests"], 1);
    assert_eq!(json["instances"][0]["ejected"], false);
}
