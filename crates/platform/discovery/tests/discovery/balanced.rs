//! The balanced transport over real servers: spread, removal, emptiness, a dead instance.
//! Ejection and health probes have their own file, outlier.rs.

use axum::body::Body;
use axum::http::Request;
use flotilla_chassis::transport::in_process::InProcessRegistry;
use flotilla_chassis::transport::{Peers, Transport, TransportError};
use flotilla_discovery::balanced;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::support::{Instance, pool};

/// `GET /whoami` through `transport`: the id of the instance that answered.
async fn whoami(transport: &Transport) -> Result<String, TransportError> {
    let request = Request::get("/whoami")
        .body(Body::empty())
        .expect("request");
    let response = transport.clone().oneshot(request).await?;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// How many of `n` requests (8 at a time) each instance answered; fails on any error.
async fn spread(transport: &Transport, n: usize) -> BTreeMap<String, usize> {
    let answers: Vec<_> = futures::stream::iter(0..n)
        .map(|_| whoami(transport))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.expect("request answered")).or_insert(0) += 1;
    }
    counts
}

fn three() -> (
    Vec<Instance>,
    watch::Sender<Vec<String>>,
    watch::Receiver<Vec<String>>,
) {
    let instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|id| Instance::start(id))
        .collect();
    let (tx, rx) = watch::channel(instances.iter().map(|i| i.url.clone()).collect());
    (instances, tx, rx)
}

#[tokio::test]
async fn requests_spread_over_every_instance() {
    let (_instances, _tx, rx) = three();
    let transport = balanced("catalog", rx, &pool());
    let counts = spread(&transport, 300).await;
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    // Expected 100 each; P2C over equal instances is close to even, so a third of that is a
    // floor no fair run misses.
    for (id, n) in &counts {
        assert!(*n >= 33, "{id} got {n} of 300: {counts:?}");
    }
}

#[tokio::test]
async fn a_removed_instance_gets_no_new_requests_and_a_returning_one_does() {
    let (instances, tx, rx) = three();
    let transport = balanced("catalog", rx, &pool());
    assert_eq!(spread(&transport, 60).await.len(), 3);

    tx.send(vec![instances[0].url.clone(), instances[1].url.clone()])
        .expect("balancer listens");
    let counts = spread(&transport, 100).await;
    assert!(!counts.contains_key("c"), "c still chosen: {counts:?}");
    assert_eq!(counts.len(), 2);

    tx.send(instances.iter().map(|i| i.url.clone()).collect())
        .expect("balancer listens");
    let counts = spread(&transport, 100).await;
    assert!(counts.contains_key("c"), "c not chosen again: {counts:?}");
}

#[tokio::test]
async fn no_instance_fails_at_once_and_recovers_when_one_appears() {
    let a = Instance::start("a");
    let (tx, rx) = watch::channel(Vec::new());
    let transport = balanced("catalog", rx, &pool());
    let at_once = Duration::from_millis(500);

    let empty = tokio::time::timeout(at_once, whoami(&transport)).await;
    assert!(
        matches!(&empty, Ok(Err(TransportError::NoInstance(s))) if s == "catalog"),
        "{empty:?}"
    );

    tx.send(vec![a.url.clone()]).expect("balancer listens");
    assert_eq!(whoami(&transport).await.expect("answered"), "a");

    tx.send(Vec::new()).expect("balancer listens");
    let emptied = tokio::time::timeout(at_once, whoami(&transport)).await;
    assert!(
        matches!(emptied, Ok(Err(TransportError::NoInstance(_)))),
        "{emptied:?}"
    );

    // Discovery going away leaves the last set in place.
    tx.send(vec![a.url.clone()]).expect("balancer listens");
    drop(tx);
    assert_eq!(whoami(&transport).await.expect("answered"), "a");
}

/// A killed instance fails no request: each one refused there is sent to another instance
/// (outlier.rs has the burst and counting version of this).
#[tokio::test]
async fn a_killed_instance_fails_no_request() {
    let (mut instances, _tx, rx) = three();
    let transport = balanced("catalog", rx, &pool());
    assert_eq!(
        spread(&transport, 60).await.len(),
        3,
        "warm connections to all three"
    );
    instances[2].kill();
    // The client notices the closed keep-alive connections once its tasks run.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let counts = spread(&transport, 150).await;
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["a", "b"]);
}

#[tokio::test]
async fn peers_hold_a_balanced_transport() {
    let a = Instance::start("a");
    let (_tx, rx) = watch::channel(vec![a.url.clone()]);
    let mut peers = Peers::new(InProcessRegistry::default(), HashMap::new());
    assert!(!peers.is_remote("catalog"));
    peers.insert("catalog", balanced("catalog", rx, &pool()));
    assert!(peers.is_remote("catalog"));
    assert_eq!(
        whoami(&peers.transport("catalog")).await.expect("answered"),
        "a"
    );
    // Everything else is still looked up in-process.
    assert!(matches!(
        whoami(&peers.transport("cart")).await,
        Err(TransportError::NoInstance(_))
    ));
}
