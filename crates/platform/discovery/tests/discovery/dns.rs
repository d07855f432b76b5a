//! DNS discovery: the real resolver on `localhost`, and the refresh timing against a scripted
//! resolver on paused time (the refresh loop only talks to the `Resolve` trait).

use flotilla_discovery::{
    Discovery, DiscoveryError, DiscoverySettings, DnsDiscovery, DnsTemplate, Resolve, Resolved,
    from_spec,
};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn localhost_resolves_to_its_loopback_addresses() {
    let discovery = from_spec(
        "dns://{service}:8080",
        "t",
        &BTreeMap::new(),
        &DiscoverySettings::default(),
    )
    .await
    .expect("dns discovery");
    let rx = discovery.watch("localhost").await.expect("watch localhost");
    let instances = rx.borrow().clone();
    assert!(
        (1..=2).contains(&instances.len()),
        "one or two addresses: {instances:?}"
    );
    for url in &instances {
        assert!(
            url == "http://127.0.0.1:8080" || url == "http://[::1]:8080",
            "not a loopback instance: {url}"
        );
    }
}

#[tokio::test]
async fn a_pinned_service_ignores_dns() {
    let pinned = BTreeMap::from([(
        "localhost".to_owned(),
        vec!["http://10.0.0.7:9002".to_owned()],
    )]);
    let discovery = from_spec(
        "dns://{service}:8080",
        "t",
        &pinned,
        &DiscoverySettings::default(),
    )
    .await
    .expect("dns discovery");
    let rx = discovery.watch("localhost").await.expect("watch");
    assert_eq!(*rx.borrow(), ["http://10.0.0.7:9002"]);
}

/// Answers from a script, and records when it was asked.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<Resolved, ()>>>,
    asked: Mutex<Vec<(String, Instant)>>,
}

impl Scripted {
    fn new(answers: impl IntoIterator<Item = Result<Resolved, ()>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into_iter().collect()),
            asked: Mutex::default(),
        })
    }

    fn asked(&self) -> Vec<(String, Instant)> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Resolve for Scripted {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Resolved, DiscoveryError>> {
        let now = Instant::now();
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((host.to_owned(), now));
        let next = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        Box::pin(async move {
            match next {
                Some(Ok(answer)) => Ok(answer),
                // An exhausted script stays silent, as a dead DNS server would.
                Some(Err(())) | None => Err(DiscoveryError::Unavailable {
                    backend: "DNS",
                    source: "scripted failure".into(),
                }),
            }
        })
    }
}

fn answer(last_octets: &[u8], ttl: Option<u64>) -> Result<Resolved, ()> {
    Ok(Resolved {
        addrs: last_octets
            .iter()
            .map(|o| IpAddr::from([10, 0, 0, *o]))
            .collect(),
        ttl: ttl.map(Duration::from_secs),
    })
}

fn discovery(resolver: Arc<Scripted>) -> DnsDiscovery {
    let template = DnsTemplate::parse("dns://{service}.shop:8080").ok();
    let settings = DiscoverySettings {
        dns_refresh: Duration::from_secs(5),
        ..DiscoverySettings::default()
    };
    DnsDiscovery::with_resolver(template.expect("valid template"), resolver, &settings)
}

fn urls(last_octets: &[u8]) -> Vec<String> {
    last_octets
        .iter()
        .map(|o| format!("http://10.0.0.{o}:8080"))
        .collect()
}

/// The lookup times relative to the first one, in whole milliseconds.
fn offsets(asked: &[(String, Instant)]) -> Vec<u128> {
    let start = asked[0].1;
    asked
        .iter()
        .map(|(_, t)| (*t - start).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn re_resolves_every_refresh_and_publishes_changes() {
    let resolver = Scripted::new([
        answer(&[2, 1], None),
        answer(&[1, 2, 3], None),
        answer(&[3], None),
    ]);
    let dns = discovery(resolver.clone());
    let mut rx = dns.watch("catalog").await.expect("first lookup");
    assert_eq!(*rx.borrow_and_update(), urls(&[1, 2]));
    rx.changed().await.expect("second answer");
    assert_eq!(*rx.borrow_and_update(), urls(&[1, 2, 3]));
    rx.changed().await.expect("third answer");
    assert_eq!(*rx.borrow_and_update(), urls(&[3]));
    let asked = resolver.asked();
    assert!(asked.iter().all(|(host, _)| host == "catalog.shop"));
    assert_eq!(offsets(&asked), [0, 5_000, 10_000]);
}

#[tokio::test(start_paused = true)]
async fn a_short_ttl_brings_the_next_lookup_forward() {
    let resolver = Scripted::new([
        answer(&[1], Some(1)),
        answer(&[2], Some(0)),
        answer(&[3], Some(60)),
        answer(&[4], None),
    ]);
    let dns = discovery(resolver.clone());
    let mut rx = dns.watch("cart").await.expect("first lookup");
    rx.wait_for(|v| *v == urls(&[4]))
        .await
        .expect("fourth answer");
    // TTL 1 s → after 1 s; TTL 0 → after the floor; TTL 60 s → after the refresh (5 s).
    assert_eq!(offsets(&resolver.asked()), [0, 1_000, 1_250, 6_250]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_lookup_keeps_the_last_instances_and_an_empty_answer_empties_them() {
    let resolver = Scripted::new([
        answer(&[1, 2], None),
        Err(()),
        answer(&[1, 2], None),
        answer(&[], None),
    ]);
    let dns = discovery(resolver.clone());
    let mut rx = dns.watch("cart").await.expect("first lookup");
    rx.wait_for(|v| v.is_empty()).await.expect("empty answer");
    assert_eq!(offsets(&resolver.asked()), [0, 5_000, 10_000, 15_000]);
    // No notification for the failure nor for the unchanged answer: one change in all.
    assert!(!rx.has_changed().expect("still watched"));
}

#[tokio::test(start_paused = true)]
async fn the_first_lookup_failing_fails_the_watch() {
    let dns = discovery(Scripted::new([Err(())]));
    assert!(matches!(
        dns.watch("cart").await,
        Err(DiscoveryError::Unavailable { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_loop_stops_when_nobody_watches() {
    let resolver = Scripted::new([answer(&[1], None), answer(&[2], None)]);
    let dns = discovery(resolver.clone());
    let mut rx = dns.watch("cart").await.expect("first lookup");
    rx.changed().await.expect("second answer");
    drop(rx);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(resolver.asked().len(), 2);
}

#[tokio::test]
async fn register_is_passive_but_checks_its_input() {
    let dns = discovery(Scripted::new([]));
    let registration = dns.register("cart", "http://10.0.0.1:8080/").await;
    assert_eq!(
        registration.as_ref().map(|r| r.url()).ok(),
        Some("http://10.0.0.1:8080")
    );
    if let Ok(registration) = registration {
        registration.deregister().await;
    }
    assert!(dns.register("a/b", "http://x:1").await.is_err());
    assert!(dns.register("cart", "x:1").await.is_err());
}
