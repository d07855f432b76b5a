//! RELIABILITY.md F15 in a fleet (`flotilla up`, etcd discovery, 2 catalog replicas): kill -9
//! one replica, then 100 reads at once through the gateway: none fails. Then a replica is frozen
//! with SIGSTOP: none fails, those sent before its ejection wait one per-try timeout (2 s, then
//! repeated on the other replica) rather than the whole deadline, and none sent after it waits
//! at all. The etcd lease TTL is set
//! long (30 s) so that only the gateway's outlier ejection can be what spares the reads, not the
//! instance leaving discovery.

use crate::fleet::up_on;
use crate::infra;
use crate::support::Process;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
}

/// 100 reads of one product at once through the gateway: (failures, slowest).
async fn burst(http: &reqwest::Client, base: &str) -> (Vec<String>, Duration) {
    let reads = (0..100).map(|_| async {
        let started = Instant::now();
        let outcome = http
            .get(format!("{base}/api/catalog/products/p0000001"))
            .send()
            .await;
        let failure = match outcome {
            Ok(r) if r.status() == 200 => None,
            Ok(r) => Some(format!("status {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        (failure, started.elapsed())
    });
    let results = futures::future::join_all(reads).await;
    let slowest = results.iter().map(|(_, t)| *t).max().unwrap_or_default();
    (
        results.into_iter().filter_map(|(f, _)| f).collect(),
        slowest,
    )
}

#[tokio::test]
async fn a_killed_then_a_frozen_catalog_replica_fails_no_read() {
    let postgres = infra::postgres();
    let fleet = up_on(
        &postgres,
        "catalog=2",
        &[
            ("FLOTILLA_DISCOVERY_TTL_SECS", "30"),
            ("FLOTILLA_OUTLIER__BASE_EJECTION_MS", "1000"),
            ("FLOTILLA_OUTLIER__HEALTH_INTERVAL_MS", "200"),
            // Not shorter: on a busy CI machine a slow /readyz would eject a healthy replica.
            ("FLOTILLA_OUTLIER__HEALTH_TIMEOUT_MS", "500"),
        ],
    );
    let http = reqwest::Client::new();
    let base = fleet.gateway.clone();
    let catalogs = fleet.instances("catalog");
    assert_eq!(catalogs.len(), 2);
    // Warm: the gateway has connections to both replicas.
    let (failed, _) = burst(&http, &base).await;
    assert!(failed.is_empty(), "healthy fleet: {failed:?}");

    // kill -9: every read refused by the dead replica is sent to the other one.
    let (dead_url, dead_pid) = catalogs[0].clone();
    signal(dead_pid, Signal::SIGKILL);
    // Until the kernel has torn the process down, its listening socket still completes
    // handshakes and the requests written there are then reset: those reached "an instance" and
    // are the retry layer's to repeat, not the balancer's. Wait until `up` has reaped it.
    let gone = Instant::now();
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(dead_pid as i32), None).is_ok() {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "the killed replica lingers"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (failed, slowest) = burst(&http, &base).await;
    eprintln!(
        "after kill -9: {} failed, slowest {slowest:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "after kill -9: {failed:?}");

    // A replica again where the dead one was; back in rotation once its ejection time is over
    // and its /readyz passes.
    let addr = dead_url.trim_start_matches("http://");
    let listen = format!("catalog={addr}");
    let mut args = vec!["serve", "catalog", "--listen", &listen];
    let join = fleet.join_args(&postgres);
    args.extend(join.iter().map(String::as_str));
    let _replacement = Process::start(&args, &[("FLOTILLA_DISCOVERY_TTL_SECS", "30")]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // SIGSTOP the other one: the kernel still accepts its connections, but nothing answers.
    // Reads sent at once are cut after the per-try timeout (2 s) and repeated on the
    // replacement (the outside tester's M2: they used to wait for the whole 10 s deadline and
    // fail).
    let (_, frozen_pid) = catalogs[1].clone();
    signal(frozen_pid, Signal::SIGSTOP);
    let (failed, slowest) = burst(&http, &base).await;
    eprintln!("at SIGSTOP: {} failed, slowest {slowest:?}", failed.len());
    assert!(failed.is_empty(), "at SIGSTOP: {failed:?}");
    assert!(slowest < Duration::from_secs(4), "slowest read {slowest:?}");
    // Its probes time out within 200 ms + 500 ms and eject it; reads sent after that neither
    // fail nor wait.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (failed, slowest) = burst(&http, &base).await;
    signal(frozen_pid, Signal::SIGCONT);
    eprintln!(
        "after SIGSTOP: {} failed, slowest {slowest:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "after SIGSTOP: {failed:?}");
    // The deadline is the transport timeout (10 s) for now; none comes near it.
    assert!(slowest < Duration::from_secs(2), "slowest read {slowest:?}");
}
