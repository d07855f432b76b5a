//! The event contract on a real NATS JetStream server (`FLOTILLA_TEST_NATS_URL`, default
//! nats://127.0.0.1:4222, which scripts/test.sh starts when none is running): outbox + relay +
//! [`NatsBus`] + inbox, with SQLite files for the services. Every test names its streams with a
//! random prefix and deletes them at the end (also when it fails), so tests run in parallel and
//! leave the server as they found it. A broker outage is left to the system tests, which may stop
//! and start the server.

use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::db::{Db, PoolSettings};
use flotilla_chassis::events::relay::Relay;
use flotilla_chassis::events::{
    self, Bus, Consumer, Event, EventHandler, HandlerError, NewEvent, Outbox, RelaySettings,
    SharedBus, Subscription,
};
use flotilla_nats::{NatsBus, NatsSettings};
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The server the tests use.
fn url() -> String {
    std::env::var("FLOTILLA_TEST_NATS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

/// One test's corner of the server: its prefix, its "processes" (each a connection of its own)
/// and their databases. `finish` stops everything and deletes the streams; if the test panics
/// first, `Drop` still deletes them.
struct Broker {
    prefix: String,
    shutdown: CancellationToken,
    processes: Vec<Arc<NatsBus>>,
    dir: tempfile::TempDir,
    finished: bool,
}

/// A connection to the broker as one process would hold it, stoppable on its own.
struct Process {
    bus: Arc<NatsBus>,
    stop: CancellationToken,
}

impl Process {
    /// Stops this process's consumers, finishing the event in hand.
    async fn stop(&self) {
        self.stop.cancel();
        self.bus.stopped().await;
    }
}

impl Broker {
    fn new() -> Self {
        Self {
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
            shutdown: CancellationToken::new(),
            processes: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            finished: false,
        }
    }

    async fn process(&mut self) -> Process {
        let settings = NatsSettings {
            redelivery_base_ms: 200,
            redelivery_max_ms: 2_000,
            ..NatsSettings::default()
        };
        let stop = self.shutdown.child_token();
        let bus = NatsBus::connect_with(&url(), &self.prefix, settings, stop.clone())
            .await
            .expect("NATS with JetStream at FLOTILLA_TEST_NATS_URL (default 127.0.0.1:4222)");
        let bus = Arc::new(bus);
        self.processes.push(bus.clone());
        Process { bus, stop }
    }

    /// A service database with the platform tables and an `effects` table.
    async fn db(&self, name: &str) -> Db {
        let path = self.dir.path().join(format!("{name}.db"));
        let db = Db::open_sqlite(&path, &PoolSettings::default())
            .await
            .expect("db");
        events::migrate(&db).await.expect("platform tables");
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS effects (order_id TEXT NOT NULL)")
            .execute(db.pool())
            .await
            .expect("effects");
        db
    }

    /// Starts the outbox relay of `outbox` onto `bus` until the test ends.
    fn relay(&self, outbox: &Outbox, bus: &Arc<NatsBus>) {
        let settings = RelaySettings {
            retry_base_ms: 10,
            retry_max_ms: 100,
            ..RelaySettings::default()
        };
        let bus: SharedBus = bus.clone();
        let relay = Relay::new(outbox.clone(), bus, settings);
        tokio::spawn(relay.run(self.shutdown.child_token()));
    }

    async fn finish(mut self) {
        self.shutdown.cancel();
        for bus in &self.processes {
            bus.stopped().await;
        }
        let deleted = NatsBus::purge(&url(), &self.prefix).await.expect("purge");
        assert!(deleted >= 1, "the test's streams existed");
        self.finished = true;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.shutdown.cancel();
        let prefix = self.prefix.clone();
        // Drop cannot await, and the test's runtime is unwinding: purge from a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(NatsBus::purge(&url(), &prefix));
            }
        })
        .join();
    }
}

/// A consumer's effect: one row per order, in its own table.
struct CountOrders {
    /// Orders whose handling always fails, with the instants of the attempts.
    failing: Option<(&'static str, Arc<Mutex<Vec<Instant>>>)>,
}

impl EventHandler for CountOrders {
    fn handle<'a>(
        &'a self,
        tx: &'a mut sqlx::AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Placed {
                order_id: String,
            }
            let placed: Placed = event.decode(1)?;
            if let Some((order, attempts)) = &self.failing
                && placed.order_id == *order
            {
                attempts.lock().expect("attempts").push(Instant::now());
                return Err(HandlerError::new("the warehouse is on fire"));
            }
            sqlx::query("INSERT INTO effects (order_id) VALUES ($1)")
                .bind(placed.order_id)
                .execute(tx)
                .await?;
            Ok(())
        })
    }
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn consumer(service: &'static str, db: &Db, max_deliveries: u32) -> Arc<Consumer> {
    consumer_with(service, db, max_deliveries, CountOrders { failing: None })
}

fn consumer_with(
    service: &'static str,
    db: &Db,
    max_deliveries: u32,
    handler: CountOrders,
) -> Arc<Consumer> {
    let sub = Subscription {
        source: "orders",
        event_type: "order.placed",
        handler: Arc::new(handler),
    };
    Arc::new(Consumer::new(
        service,
        db.clone(),
        clock(),
        vec![sub],
        max_deliveries,
    ))
}

/// Commits an `order.placed` event in the orders outbox and wakes the relay.
async fn publish(outbox: &Outbox, db: &Db, order_id: &str, version: u32) {
    let mut tx = db.pool().begin().await.expect("tx");
    let event = NewEvent::new(
        "order.placed",
        version,
        &serde_json::json!({"order_id": order_id}),
    )
    .expect("json");
    outbox.append(&mut tx, event).await.expect("append");
    tx.commit().await.expect("commit");
    outbox.wake();
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .expect("count")
}

async fn effects(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT order_id FROM effects")
        .fetch_all(db.pool())
        .await
        .expect("effects")
}

/// Polls `check` until it holds, failing the test after 20 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn orders_outbox(db: &Db) -> Outbox {
    Outbox::new("orders", db.clone(), clock())
}

#[tokio::test]
async fn relayed_events_take_effect_once_even_when_published_before_the_consumer_existed() {
    let mut broker = Broker::new();
    let (orders, counter) = (broker.db("orders").await, broker.db("counter").await);
    let process = broker.process().await;
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &process.bus);
    for i in 0..20 {
        publish(&outbox, &orders, &format!("early{i}"), 1).await;
    }
    until("the early events to reach the stream", || async {
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    let consumer = consumer("counter", &counter, 3);
    process
        .bus
        .subscribe(consumer.clone())
        .await
        .expect("subscribe");
    for i in 0..30 {
        publish(&outbox, &orders, &format!("late{i}"), 1).await;
    }
    until("50 events handled", || async {
        consumer.stats().snapshot().handled >= 50
    })
    .await;
    assert_eq!(
        count(&counter, "SELECT COUNT(DISTINCT order_id) FROM effects").await,
        50
    );
    let stats = consumer.stats().snapshot();
    assert_eq!((stats.handled, stats.duplicates), (50, 0), "{stats:?}");
    broker.finish().await;
}

#[tokio::test]
async fn a_republished_event_is_dropped_by_the_duplicate_window() {
    let mut broker = Broker::new();
    let counter = broker.db("counter").await;
    let process = broker.process().await;
    let consumer = consumer("counter", &counter, 3);
    process
        .bus
        .subscribe(consumer.clone())
        .await
        .expect("subscribe");
    let event = |id: &str, order: &str| Event {
        id: id.into(),
        event_type: "order.placed".into(),
        version: 1,
        source: "orders".into(),
        time: "2026-01-01T00:00:00Z".into(),
        traceparent: None,
        payload: serde_json::json!({"order_id": order}),
    };
    // A relay publishes, dies before marking the row, and its successor publishes it again.
    let twice = event("e-twice", "twice");
    process.bus.publish(&twice).await.expect("first publish");
    process.bus.publish(&twice).await.expect("republish acked");
    process
        .bus
        .publish(&event("e-marker", "marker"))
        .await
        .expect("marker");
    // One replica reads a stream in order: had the copy been stored, it would have been
    // delivered (and counted as a duplicate) before the marker.
    until("both events handled", || async {
        consumer.stats().snapshot().handled >= 2
    })
    .await;
    assert_eq!(effects(&counter).await, vec!["twice", "marker"]);
    let stats = consumer.stats().snapshot();
    assert_eq!(
        (stats.handled, stats.duplicates),
        (2, 0),
        "the broker, not the inbox, dropped the copy: {stats:?}"
    );
    broker.finish().await;
}

#[tokio::test]
async fn replicas_of_one_service_share_the_events_and_handle_each_once() {
    let mut broker = Broker::new();
    let orders = broker.db("orders").await;
    let (replica_a, replica_b) = (broker.db("counter-a").await, broker.db("counter-b").await);
    let publisher = broker.process().await;
    let (process_a, process_b) = (broker.process().await, broker.process().await);
    process_a
        .bus
        .subscribe(consumer("counter", &replica_a, 3))
        .await
        .expect("subscribe a");
    process_b
        .bus
        .subscribe(consumer("counter", &replica_b, 3))
        .await
        .expect("subscribe b");
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &publisher.bus);
    // Events in rounds of 50 until both replicas have handled some: one replica may take a
    // whole round in one fetch (it did once, under a loaded machine: 200 + 0), so how the
    // broker shares them is observed over rounds, not assumed from one.
    let mut published = 0;
    loop {
        for i in published..published + 50 {
            publish(&outbox, &orders, &format!("o{i}"), 1).await;
        }
        published += 50;
        until("every effect across the replicas", || async {
            effects(&replica_a).await.len() + effects(&replica_b).await.len() >= published
        })
        .await;
        let (a, b) = (effects(&replica_a).await, effects(&replica_b).await);
        if (!a.is_empty() && !b.is_empty()) || published >= 1_000 {
            break;
        }
    }
    let (a, b) = (effects(&replica_a).await, effects(&replica_b).await);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both replicas work: {} + {}",
        a.len(),
        b.len()
    );
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        (a.len() + b.len(), all.len()),
        (published, published),
        "each event handled once"
    );
    broker.finish().await;
}

#[tokio::test]
async fn every_subscribing_service_gets_every_event() {
    let mut broker = Broker::new();
    let orders = broker.db("orders").await;
    let (counter, auditor) = (broker.db("counter").await, broker.db("auditor").await);
    let publisher = broker.process().await;
    let (process_c, process_a) = (broker.process().await, broker.process().await);
    process_c
        .bus
        .subscribe(consumer("counter", &counter, 3))
        .await
        .expect("subscribe counter");
    process_a
        .bus
        .subscribe(consumer("auditor", &auditor, 3))
        .await
        .expect("subscribe auditor");
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &publisher.bus);
    for i in 0..40 {
        publish(&outbox, &orders, &format!("o{i}"), 1).await;
    }
    for (name, db) in [("counter", &counter), ("auditor", &auditor)] {
        until(name, || async {
            count(db, "SELECT COUNT(*) FROM effects").await >= 40
        })
        .await;
        assert_eq!(
            count(db, "SELECT COUNT(DISTINCT order_id) FROM effects").await,
            40
        );
        assert_eq!(count(db, "SELECT COUNT(*) FROM effects").await, 40);
    }
    broker.finish().await;
}

#[tokio::test]
async fn a_stopped_consumer_resumes_where_it_left_off() {
    let mut broker = Broker::new();
    let (orders, counter) = (broker.db("orders").await, broker.db("counter").await);
    let publisher = broker.process().await;
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &publisher.bus);
    let first = broker.process().await;
    first
        .bus
        .subscribe(consumer("counter", &counter, 3))
        .await
        .expect("subscribe");
    for i in 0..10 {
        publish(&outbox, &orders, &format!("before{i}"), 1).await;
    }
    until("10 effects", || async {
        count(&counter, "SELECT COUNT(*) FROM effects").await >= 10
    })
    .await;
    first.stop().await;
    // Published while the consumer is away: the broker keeps them for it.
    for i in 0..10 {
        publish(&outbox, &orders, &format!("during{i}"), 1).await;
    }
    until("the outbox to drain", || async {
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    let restarted = broker.process().await;
    let consumer = consumer("counter", &counter, 3);
    restarted
        .bus
        .subscribe(consumer.clone())
        .await
        .expect("subscribe again");
    until("the missed events handled", || async {
        consumer.stats().snapshot().handled >= 10
    })
    .await;
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 20);
    let stats = consumer.stats().snapshot();
    assert_eq!(
        (stats.handled, stats.duplicates),
        (10, 0),
        "only the missed events, none of the acknowledged ones: {stats:?}"
    );
    broker.finish().await;
}

#[tokio::test]
async fn a_failing_event_is_redelivered_with_backoff_then_parked_while_later_events_flow() {
    let mut broker = Broker::new();
    let (orders, counter) = (broker.db("orders").await, broker.db("counter").await);
    let process = broker.process().await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let handler = CountOrders {
        failing: Some(("bad", attempts.clone())),
    };
    process
        .bus
        .subscribe(consumer_with("counter", &counter, 4, handler))
        .await
        .expect("subscribe");
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &process.bus);
    publish(&outbox, &orders, "bad", 1).await;
    for i in 0..5 {
        publish(&outbox, &orders, &format!("good{i}"), 1).await;
    }
    until("the events behind the failing one", || async {
        count(&counter, "SELECT COUNT(*) FROM effects").await >= 5
    })
    .await;
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "later events did not wait for the failing one to be parked"
    );
    until("the failing event to be parked", || async {
        count(&counter, "SELECT COUNT(*) FROM dead_letters").await == 1
    })
    .await;
    assert_eq!(
        count(&counter, "SELECT attempts FROM dead_letters").await,
        4
    );
    // Redelivery delays: at least half of 200 ms, 400 ms, 800 ms (exponential, equal jitter).
    let times = attempts.lock().expect("attempts").clone();
    assert_eq!(times.len(), 4);
    for (n, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let floor = Duration::from_millis(100 << n);
        assert!(
            gap >= floor,
            "redelivery {} after {gap:?} < {floor:?}",
            n + 1
        );
    }
    publish(&outbox, &orders, "after", 1).await;
    until("an event after the parked one", || async {
        effects(&counter).await.contains(&"after".to_owned())
    })
    .await;
    assert_eq!(
        attempts.lock().expect("attempts").len(),
        4,
        "a parked event is acked, not redelivered"
    );
    broker.finish().await;
}

#[tokio::test]
async fn poison_events_end_parked() {
    let mut broker = Broker::new();
    let (orders, counter) = (broker.db("orders").await, broker.db("counter").await);
    let process = broker.process().await;
    process
        .bus
        .subscribe(consumer("counter", &counter, 2))
        .await
        .expect("subscribe");
    let outbox = orders_outbox(&orders);
    broker.relay(&outbox, &process.bus);
    publish(&outbox, &orders, "unknown-version", 7).await;
    // Larger than the broker's 1 MiB message limit: it travels with its payload replaced.
    let huge = NewEvent::new("order.placed", 1, &"x".repeat(2 << 20)).expect("json");
    let mut tx = orders.pool().begin().await.expect("tx");
    let huge_id = outbox.append(&mut tx, huge).await.expect("append");
    tx.commit().await.expect("commit");
    outbox.wake();
    until("the stream", || async {
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    // Something that is not a Flotilla relay writes garbage on the subject.
    let client = async_nats::connect(url()).await.expect("client");
    let js = async_nats::jetstream::new(client);
    let subject = format!("{}.orders.order.placed", broker.prefix);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "garbage-1");
    js.publish_with_headers(subject, headers, "{\"not\": an envelope".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    publish(&outbox, &orders, "after", 1).await;
    until(
        "the poison events parked and the good one handled",
        || async {
            count(&counter, "SELECT COUNT(*) FROM dead_letters").await == 3
                && !effects(&counter).await.is_empty()
        },
    )
    .await;
    assert_eq!(effects(&counter).await, vec!["after".to_owned()]);
    // Each parked at its first delivery, the unknown version too: no redelivery changes them.
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM dead_letters")
        .fetch_all(counter.pool())
        .await
        .expect("attempts");
    assert_eq!(attempts, vec![1, 1, 1]);
    let garbage: String =
        sqlx::query_scalar("SELECT event FROM dead_letters WHERE event_id = 'garbage-1'")
            .fetch_one(counter.pool())
            .await
            .expect("garbage parked under its message id");
    let parked: Event = serde_json::from_str(&garbage).expect("parked as an event");
    assert_eq!(parked.event_type, "order.placed");
    assert_eq!(parked.payload, "{\"not\": an envelope");
    let huge: String = sqlx::query_scalar("SELECT event FROM dead_letters WHERE event_id = $1")
        .bind(&huge_id)
        .fetch_one(counter.pool())
        .await
        .expect("oversized event parked");
    assert!(huge.contains("dropped: the broker takes at most"), "{huge}");
    broker.finish().await;
}

#[tokio::test]
async fn connecting_to_no_server_fails_within_the_timeout() {
    let started = Instant::now();
    let settings = NatsSettings {
        connect_timeout_ms: 500,
        ..NatsSettings::default()
    };
    // A port nothing listens on (and a black-holed address would hit the same timeout).
    let result = NatsBus::connect_with(
        "nats://127.0.0.1:1",
        "nobody",
        settings,
        CancellationToken::new(),
    )
    .await;
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_event_from_a_service_that_does_not_own_its_type_is_refused_and_parked() {
    let mut broker = Broker::new();
    let counter = broker.db("counter").await;
    let process = broker.process().await;
    let consumer = consumer("counter", &counter, 5);
    process
        .bus
        .subscribe(consumer.clone())
        .await
        .expect("subscribe");
    // Another client on the broker publishes a well-formed `order.placed` on orders' subject,
    // naming payments as its source; then a genuine-looking one naming orders.
    let client = async_nats::connect(url()).await.expect("client");
    let js = async_nats::jetstream::new(client);
    // orders' stream, as orders' first event would have created it (a consumer never does).
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: format!("{}_ORDERS", broker.prefix.to_uppercase()),
        subjects: vec![format!("{}.orders.>", broker.prefix)],
        ..Default::default()
    })
    .await
    .expect("orders' stream");
    let envelope = |id: &str, event_type: &str, source: &str| {
        serde_json::to_vec(&Event {
            id: id.into(),
            event_type: event_type.into(),
            version: 1,
            source: source.into(),
            time: "2026-01-01T00:00:00Z".into(),
            traceparent: None,
            payload: serde_json::json!({"order_id": id}),
        })
        .expect("json")
    };
    for (subject, body) in [
        (
            "order.placed",
            envelope("forged-source", "order.placed", "payments"),
        ),
        (
            "order.placed",
            envelope("own-source", "order.placed", "orders"),
        ),
    ] {
        js.publish(format!("{}.orders.{subject}", broker.prefix), body.into())
            .await
            .expect("publish")
            .await
            .expect("acked");
    }
    until(
        "the forged event parked and the genuine one handled",
        || async {
            count(&counter, "SELECT COUNT(*) FROM dead_letters").await == 1
                && effects(&counter).await == vec!["own-source".to_owned()]
        },
    )
    .await;
    let (id, attempts, reason): (String, i64, String) =
        sqlx::query_as("SELECT event_id, attempts, last_error FROM dead_letters")
            .fetch_one(counter.pool())
            .await
            .expect("parked");
    assert_eq!((id.as_str(), attempts), ("forged-source", 1));
    assert!(reason.contains("published by orders"), "{reason}");
    assert!(
        consumer.replay(&id).await.is_err(),
        "a forgery is not replayed"
    );
    assert_eq!(effects(&counter).await, vec!["own-source".to_owned()]);
    broker.finish().await;
}
