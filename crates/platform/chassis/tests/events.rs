//! The event contract against real databases (SQLite files, or PostgreSQL when
//! `FLOTILLA_TEST_DATABASE_URL` is set): outbox + relay + in-process bus + inbox.
//! Crash points are simulated where they matter: after the business commit but before the
//! publish (rows left in the outbox), after the publish but before it is marked (the bus took
//! it, the relay "crashed"), and after the consumer's effect but before its ack (redelivery).

use flotilla_chassis::clock::{SharedClock, SystemClock};
use flotilla_chassis::db::Db;
use flotilla_chassis::events::relay::Relay;
use flotilla_chassis::events::{
    self, Bus, BusError, Consumer, Event, EventHandler, HandlerError, InProcessBus, NewEvent,
    Outbox, Outcome, RelaySettings, SharedBus, Subscription,
};
use flotilla_testkit::{TestDatabases, test_db};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A consumer's effect: count each order once in a table of its own.
struct CountOrders;

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
            sqlx::query("INSERT INTO effects (order_id) VALUES ($1)")
                .bind(placed.order_id)
                .execute(tx)
                .await?;
            Ok(())
        })
    }
}

/// A fresh database with the platform tables and the effects table; keep the guard alive.
async fn db(name: &str) -> (Db, TestDatabases) {
    let (db, guard) = test_db(name).await;
    events::migrate(&db).await.expect("platform tables");
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS effects (order_id TEXT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("effects");
    (db, guard)
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn consumer(db: &Db) -> Arc<Consumer> {
    let sub = Subscription {
        source: "orders",
        event_type: "order.placed",
        handler: Arc::new(CountOrders),
    };
    Arc::new(Consumer::new("counter", db.clone(), clock(), vec![sub], 3))
}

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
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .expect("count")
}

fn settings() -> RelaySettings {
    RelaySettings {
        retry_base_ms: 1,
        retry_max_ms: 1,
        ..RelaySettings::default()
    }
}

#[tokio::test]
async fn rows_left_by_a_crash_before_publishing_are_all_delivered_once() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    // The business transactions commit; the process "dies" before any relay runs.
    for i in 0..100 {
        publish(&outbox, &orders, &format!("o{i}"), 1).await;
    }
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        100
    );
    // A new process starts its relay.
    let bus: SharedBus = Arc::new(InProcessBus::new());
    bus.subscribe(consumer(&counter).await)
        .await
        .expect("subscribe");
    let relay = Relay::new(outbox, bus, settings());
    while relay.pass().await.expect("pass") > 0 {}
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 100);
    assert_eq!(
        count(&counter, "SELECT COUNT(DISTINCT order_id) FROM effects").await,
        100
    );
}

/// A bus that delivers, then reports failure the first `fail` times: the relay "crashed" after
/// the consumer took the event but before the outbox row was marked published.
struct LosesAcks {
    inner: InProcessBus,
    fail: AtomicU32,
}

impl Bus for LosesAcks {
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.inner.publish(event).await?;
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(BusError::Broker("ack lost".into()));
            }
            Ok(())
        })
    }

    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>> {
        self.inner.subscribe(consumer)
    }
}

#[tokio::test]
async fn lost_acknowledgements_cause_redelivery_without_a_second_effect() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    for i in 0..20 {
        publish(&outbox, &orders, &format!("o{i}"), 1).await;
    }
    let bus = Arc::new(LosesAcks {
        inner: InProcessBus::new(),
        fail: AtomicU32::new(40),
    });
    let consumer = consumer(&counter).await;
    bus.subscribe(consumer.clone()).await.expect("subscribe");
    let relay = Relay::new(outbox, bus, settings());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(
        &orders,
        "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
    )
    .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "outbox drains");
        relay.pass().await.expect("pass");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM effects").await,
        20,
        "each effect exactly once"
    );
    let stats = consumer.stats().snapshot();
    assert_eq!(stats.handled, 20);
    assert_eq!(
        stats.duplicates, 40,
        "every redelivery recognised and counted"
    );
}

#[tokio::test]
async fn every_event_delivered_three_times_has_one_effect() {
    let (counter, _counter_db) = db("counter").await;
    let consumer = consumer(&counter).await;
    for i in 0..30 {
        let event = Event {
            id: format!("e{i}"),
            event_type: "order.placed".into(),
            version: 1,
            source: "orders".into(),
            time: "2026-01-01T00:00:00Z".into(),
            traceparent: None,
            payload: serde_json::json!({"order_id": format!("o{i}")}),
        };
        let outcomes: Vec<Outcome> =
            futures::future::join_all((0..3).map(|_| consumer.deliver(&event)))
                .await
                .into_iter()
                .map(|r| r.expect("delivered"))
                .collect();
        assert_eq!(
            outcomes.iter().filter(|o| **o == Outcome::Handled).count(),
            1,
            "{outcomes:?}"
        );
    }
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 30);
    assert_eq!(consumer.stats().snapshot().duplicates, 60);
}

#[tokio::test]
async fn poison_events_are_parked_and_later_events_still_flow() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    publish(&outbox, &orders, "before", 1).await;
    publish(&outbox, &orders, "unknown-version", 7).await;
    // A truncated payload and a 10 MiB one, written as a buggy publisher would.
    for (id, payload) in [
        ("truncated", "{\"order_id\": \"tru".to_owned()),
        ("huge", format!("\"{}\"", "x".repeat(10 << 20))),
    ] {
        sqlx::query(
            "INSERT INTO outbox (id, event_type, version, source, occurred_at, traceparent, payload,
                                 published_at, attempts, next_attempt_at, last_error)
             VALUES ($1, 'order.placed', 1, 'orders', 0, NULL, $2, NULL, 0, 0, NULL)",
        )
        .bind(id)
        .bind(payload)
        .execute(orders.pool())
        .await
        .expect("poison row");
    }
    publish(&outbox, &orders, "after", 1).await;
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let consumer = consumer(&counter).await;
    bus.subscribe(consumer.clone()).await.expect("subscribe");
    let relay = Relay::new(outbox, bus, settings());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(
        &orders,
        "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
    )
    .await
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "outbox drains despite poison"
        );
        relay.pass().await.expect("pass");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM effects").await,
        2,
        "good events handled"
    );
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM dead_letters").await,
        3,
        "poison parked"
    );
    let attempts: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, attempts FROM dead_letters ORDER BY event_id")
            .fetch_all(counter.pool())
            .await
            .expect("x");
    // A version this consumer does not know and a payload that does not decode are parked at
    // their first delivery: no redelivery changes them (a parked event is replayable after an
    // upgrade).
    for (id, n) in &attempts {
        assert_eq!(*n, 1, "{id} parked at once: {attempts:?}");
    }
    assert_eq!(consumer.stats().snapshot().failures, 3);
    // Replaying still fails (the event is still poison) and leaves it parked.
    let parked: String =
        sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE event_id = 'truncated'")
            .fetch_one(counter.pool())
            .await
            .expect("parked");
    assert!(consumer.replay(&parked).await.is_err());
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM dead_letters").await,
        3
    );
}

#[tokio::test]
async fn an_event_from_a_service_that_does_not_own_its_type_is_refused_and_parked() {
    let ((payments, _payments_db), (counter, _counter_db)) =
        (db("payments").await, db("counter").await);
    // Payments' outbox publishing an `order.placed`: a bug or a forgery, never orders' event.
    let forger = Outbox::new("payments", payments.clone(), clock());
    publish(&forger, &payments, "forged", 1).await;
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let consumer = consumer(&counter).await;
    bus.subscribe(consumer.clone()).await.expect("subscribe");
    let relay = Relay::new(forger, bus, settings());
    assert_eq!(relay.pass().await.expect("pass"), 1, "taken by the bus");
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 0);
    let (id, attempts, reason): (String, i64, String) =
        sqlx::query_as("SELECT event_id, attempts, last_error FROM dead_letters")
            .fetch_one(counter.pool())
            .await
            .expect("parked");
    assert_eq!(attempts, 1, "refused at its first delivery");
    assert!(
        reason.contains("published by orders") && reason.contains("\"payments\""),
        "{reason}"
    );
    // A replay would apply the forgery: it is refused and the event stays parked.
    assert!(consumer.replay(&id).await.is_err());
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 0);
    assert_eq!(
        count(&counter, "SELECT COUNT(*) FROM dead_letters").await,
        1
    );
}

#[tokio::test]
async fn a_replayed_dead_letter_is_handled_once() {
    let (counter, _counter_db) = db("counter").await;
    let consumer = consumer(&counter).await;
    // Park an event by failing its handler: the effects table is missing for a while.
    sqlx::raw_sql("ALTER TABLE effects RENAME TO effects_away")
        .execute(counter.pool())
        .await
        .expect("rename");
    let event = Event {
        id: "e-replay".into(),
        event_type: "order.placed".into(),
        version: 1,
        source: "orders".into(),
        time: "2026-01-01T00:00:00Z".into(),
        traceparent: None,
        payload: serde_json::json!({"order_id": "o1"}),
    };
    for _ in 0..2 {
        assert!(consumer.deliver(&event).await.is_err());
    }
    assert_eq!(
        consumer.deliver(&event).await.expect("parked"),
        Outcome::DeadLettered
    );
    assert_eq!(
        consumer.deliver(&event).await.expect("still parked"),
        Outcome::DeadLettered
    );
    sqlx::raw_sql("ALTER TABLE effects_away RENAME TO effects")
        .execute(counter.pool())
        .await
        .expect("rename");
    assert_eq!(
        consumer.replay("e-replay").await.expect("replayed"),
        Outcome::Handled
    );
    assert!(
        consumer.replay("e-replay").await.is_err(),
        "no longer parked"
    );
    assert_eq!(
        consumer.deliver(&event).await.expect("dup"),
        Outcome::Duplicate
    );
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 1);
}

/// A bus that refuses the first publish of each event whose order is in `refuse`, and delivers
/// everything else.
struct RefusesOnce {
    inner: InProcessBus,
    refuse: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl RefusesOnce {
    fn new(refuse: &[&str]) -> Self {
        Self {
            inner: InProcessBus::new(),
            refuse: std::sync::Mutex::new(refuse.iter().map(|s| (*s).to_owned()).collect()),
        }
    }
}

impl Bus for RefusesOnce {
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let order = event.payload["order_id"].as_str().unwrap_or_default();
            if self.refuse.lock().expect("lock").remove(order) {
                return Err(BusError::Broker(format!("refused {order}")));
            }
            self.inner.publish(event).await
        })
    }

    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>> {
        self.inner.subscribe(consumer)
    }
}

#[tokio::test]
async fn a_pass_marks_what_the_bus_took_and_schedules_the_rest_for_a_retry() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    for i in 0..10 {
        publish(&outbox, &orders, &format!("o{i}"), 1).await;
    }
    let bus = Arc::new(RefusesOnce::new(&["o3", "o7"]));
    bus.subscribe(consumer(&counter).await)
        .await
        .expect("subscribe");
    let relay = Relay::new(
        outbox,
        bus,
        RelaySettings {
            retry_base_ms: 60_000,
            retry_max_ms: 60_000,
            ..RelaySettings::default()
        },
    );
    assert_eq!(relay.pass().await.expect("pass"), 10);
    // The eight the bus took are marked, by one statement (one timestamp); the two it refused
    // are not, and wait for their retry.
    let marks: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT published_at FROM outbox WHERE published_at IS NOT NULL",
    )
    .fetch_all(orders.pool())
    .await
    .expect("marks");
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NOT NULL"
        )
        .await,
        8
    );
    let refused: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT payload, attempts, last_error FROM outbox WHERE published_at IS NULL
         ORDER BY id",
    )
    .fetch_all(orders.pool())
    .await
    .expect("refused");
    assert_eq!(refused.len(), 2);
    for ((payload, attempts, error), order) in refused.iter().zip(["o3", "o7"]) {
        assert!(payload.contains(order), "{payload}");
        assert_eq!(*attempts, 1);
        assert_eq!(
            error.as_deref(),
            Some(format!("broker: refused {order}").as_str())
        );
    }
    assert_eq!(
        relay.pass().await.expect("pass"),
        0,
        "not due before the backoff"
    );
    assert_eq!(relay.stats().snapshot().published, 8);
    assert_eq!(relay.stats().snapshot().failures, 2);
    // Once due, they go out; each effect exactly once.
    sqlx::query("UPDATE outbox SET next_attempt_at = 0 WHERE published_at IS NULL")
        .execute(orders.pool())
        .await
        .expect("due now");
    assert_eq!(relay.pass().await.expect("pass"), 2);
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&counter, "SELECT COUNT(DISTINCT order_id) FROM effects").await,
        10
    );
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 10);
}

/// A bus that delivers, then makes the outbox unwritable for the relay's mark (the table goes
/// away), the first time: the database failed after the bus took the events.
struct MarkFails {
    inner: InProcessBus,
    orders: Db,
    armed: std::sync::atomic::AtomicBool,
}

impl Bus for MarkFails {
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.inner.publish(event).await?;
            if self.armed.swap(false, Ordering::SeqCst) {
                sqlx::raw_sql("ALTER TABLE outbox RENAME TO outbox_away")
                    .execute(self.orders.pool())
                    .await
                    .map_err(|e| BusError::Broker(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>> {
        self.inner.subscribe(consumer)
    }
}

#[tokio::test]
async fn a_batch_whose_mark_fails_is_published_again_without_a_second_effect() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    for i in 0..5 {
        publish(&outbox, &orders, &format!("o{i}"), 1).await;
    }
    let bus = Arc::new(MarkFails {
        inner: InProcessBus::new(),
        orders: orders.clone(),
        armed: std::sync::atomic::AtomicBool::new(true),
    });
    let consumer = consumer(&counter).await;
    bus.subscribe(consumer.clone()).await.expect("subscribe");
    let relay = Relay::new(outbox, bus, settings());
    assert!(relay.pass().await.is_err(), "the mark fails");
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 5);
    sqlx::raw_sql("ALTER TABLE outbox_away RENAME TO outbox")
        .execute(orders.pool())
        .await
        .expect("rename back");
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        5,
        "nothing was marked"
    );
    assert_eq!(relay.pass().await.expect("pass"), 5);
    assert_eq!(
        count(
            &orders,
            "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(count(&counter, "SELECT COUNT(*) FROM effects").await, 5);
    assert_eq!(consumer.stats().snapshot().duplicates, 5);
}

#[tokio::test]
async fn a_running_relay_delivers_when_woken_and_times_its_own_retries() {
    let ((orders, _orders_db), (counter, _counter_db)) = (db("orders").await, db("counter").await);
    let outbox = Outbox::new("orders", orders.clone(), clock());
    let bus = Arc::new(RefusesOnce::new(&["o2"]));
    bus.subscribe(consumer(&counter).await)
        .await
        .expect("subscribe");
    // A poll interval far beyond the test: only wake-ups and the relay's own retry timer can
    // move these events.
    let settings = RelaySettings {
        poll_interval_ms: 600_000,
        retry_base_ms: 50,
        retry_max_ms: 50,
        ..RelaySettings::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = tokio::spawn(Relay::new(outbox.clone(), bus, settings).run(stop.clone()));
    let delivered = |order: &'static str| {
        let counter = counter.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects WHERE order_id = $1")
                    .bind(order)
                    .fetch_one(counter.pool())
                    .await
                    .expect("count");
                if n > 0 {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "{order} delivered");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    // Let the start-up pass find nothing, so that the next one needs a wake-up.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    publish(&outbox, &orders, "o1", 1).await;
    outbox.wake();
    delivered("o1").await;
    // Refused at first: delivered by the retry the relay scheduled itself.
    publish(&outbox, &orders, "o2", 1).await;
    outbox.wake();
    delivered("o2").await;
    stop.cancel();
    relay.await.expect("relay stops");
}
