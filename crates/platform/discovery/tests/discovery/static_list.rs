//! Static discovery: the configured list, and registrations kept in memory.

use flotilla_discovery::{DiscoveryError, DiscoverySettings, from_spec};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{sorted, wait_until};

fn config() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "catalog".to_owned(),
        vec![
            "http://10.0.0.8:9002/".to_owned(),
            "http://10.0.0.7:9002".to_owned(),
            "http://10.0.0.8:9002".to_owned(),
        ],
    )])
}

#[tokio::test]
async fn watch_returns_the_configured_list_sorted_and_unique() {
    let discovery = from_spec("static", "t", &config(), &DiscoverySettings::default())
        .await
        .expect("static discovery");
    let rx = discovery.watch("catalog").await.expect("watch");
    assert_eq!(
        *rx.borrow(),
        sorted(&["http://10.0.0.7:9002", "http://10.0.0.8:9002"])
    );
    let unknown = discovery.watch("cart").await.expect("watch");
    assert!(unknown.borrow().is_empty());
}

#[tokio::test]
async fn registrations_join_the_list_until_they_end() {
    let discovery = from_spec("static", "t", &config(), &DiscoverySettings::default())
        .await
        .expect("static discovery");
    let mut rx = discovery.watch("catalog").await.expect("watch");
    let limit = Duration::from_secs(1);

    let extra = discovery
        .register("catalog", "http://10.0.0.9:9002")
        .await
        .expect("register");
    let all = [
        "http://10.0.0.7:9002",
        "http://10.0.0.8:9002",
        "http://10.0.0.9:9002",
    ];
    wait_until(&mut rx, limit, "registered", |v| *v == sorted(&all)).await;
    extra.deregister().await;
    assert_eq!(*rx.borrow(), sorted(&all[..2]), "deregistered at once");

    // A registration dropped without deregistering (the process "died") also goes: in
    // memory there is no TTL to wait for.
    let dropped = discovery
        .register("catalog", "http://10.0.0.9:9002")
        .await
        .expect("register");
    wait_until(&mut rx, limit, "registered again", |v| v.len() == 3).await;
    dropped.abandon();
    wait_until(&mut rx, limit, "abandoned", |v| *v == sorted(&all[..2])).await;

    // Registering a configured URL again does not duplicate it, nor remove it when it ends.
    let twin = discovery
        .register("catalog", "http://10.0.0.7:9002")
        .await
        .expect("register");
    assert_eq!(rx.borrow().len(), 2);
    twin.deregister().await;
    assert_eq!(*rx.borrow(), sorted(&all[..2]));
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let settings = DiscoverySettings::default();
    let bad_url = BTreeMap::from([("catalog".to_owned(), vec!["10.0.0.7:9002".to_owned()])]);
    assert!(matches!(
        from_spec("static", "t", &bad_url, &settings).await,
        Err(DiscoveryError::InvalidUrl(_))
    ));
    let bad_name = BTreeMap::from([("a/b".to_owned(), vec!["http://x:1".to_owned()])]);
    assert!(matches!(
        from_spec("static", "t", &bad_name, &settings).await,
        Err(DiscoveryError::InvalidService(_))
    ));
}
