//! The deployment's NATS users (deploy/k8s/dev-deps/nats.conf, which deploy/compose.yaml mounts
//! too) on a private nats-server started with that very file on a free port, so the shared
//! test server is not touched: each service logs in as its own user
//! (`NatsSettings::user`/`password`), publishes its own events and consumes others', cannot
//! publish an event in another service's name, creates its own stream only (a consumer that
//! starts first waits for its publisher's), updates and deletes none, and nobody gets in
//! without a password.
//! Needs the `nats-server` binary (`bash scripts/deps.sh nats`).

use async_nats::jetstream::{self, stream::Config as StreamConfig};
use flotilla_chassis::clock::SystemClock;
use flotilla_chassis::db::{Db, PoolSettings};
use flotilla_chassis::events::{
    self, Bus, Consumer, Event, EventHandler, HandlerError, Subscription,
};
use flotilla_nats::{NatsBus, NatsSettings, Password};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The users the configuration declares, each given the password `pw-<user>`.
const USERS: &[&str] = &[
    "identity",
    "catalog",
    "cart",
    "inventory",
    "payments",
    "shipping",
    "orders",
    "notifications",
    "storefront",
    "gateway",
];

/// A nats-server of this test's own, killed when dropped.
struct PrivateNats {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateNats {
    async fn start() -> Self {
        let conf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/k8s/dev-deps/nats.conf");
        let text = std::fs::read_to_string(&conf).expect("deploy/k8s/dev-deps/nats.conf");
        for user in USERS {
            assert!(
                text.contains(&format!("user: {user}\n")),
                "nats.conf declares no user {user}"
            );
        }
        Self::start_with(&conf).await
    }

    /// A server with the configuration file `conf` (the users' passwords `pw-<user>`).
    async fn start_with(conf: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let store = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new("nats-server");
        command
            .arg("-c")
            .arg(conf)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for user in USERS {
            command.env(
                format!("NATS_PASSWORD_{}", user.to_uppercase()),
                format!("pw-{user}"),
            );
        }
        let child = command
            .spawn()
            .expect("nats-server on PATH (bash scripts/deps.sh nats)");
        let nats = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nats
    }

    /// Connects as `user` with `password` (none: anonymous), under the deployment's prefix.
    async fn connect(
        &self,
        user: Option<&str>,
        password: Option<&str>,
        shutdown: &CancellationToken,
    ) -> Result<NatsBus, String> {
        let settings = NatsSettings {
            connect_timeout_ms: 2_000,
            user: user.map(str::to_owned),
            password: password.map(Password::new),
            ..NatsSettings::default()
        };
        NatsBus::connect_with(&self.url, "flotilla", settings, shutdown.child_token())
            .await
            .map_err(|e| e.to_string())
    }

    async fn service(&self, user: &str, shutdown: &CancellationToken) -> NatsBus {
        self.connect(Some(user), Some(&format!("pw-{user}")), shutdown)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"))
    }
}

fn event(source: &str, event_type: &str) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        version: 1,
        source: source.to_owned(),
        time: "2026-12-07T12:00:00Z".to_owned(),
        traceparent: None,
        payload: serde_json::json!({"order_id": "ord_1"}),
    }
}

struct Accept;

impl EventHandler for Accept {
    fn handle<'a>(
        &'a self,
        _tx: &'a mut sqlx::AnyConnection,
        _event: &'a Event,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn per_service_users_publish_only_their_own_events() {
    let nats = PrivateNats::start().await;
    let shutdown = CancellationToken::new();

    // Nobody gets in without the right password.
    let (anonymous, wrong) = tokio::join!(
        nats.connect(None, None, &shutdown),
        nats.connect(Some("orders"), Some("guess"), &shutdown),
    );
    assert!(anonymous.is_err(), "an anonymous connection was accepted");
    assert!(wrong.is_err(), "a wrong password was accepted");

    // orders publishes its own event; cart, a consumer of it, receives it. cart subscribes
    // first, before orders' stream exists, and may not create it: it waits for orders to.
    let orders = nats.service("orders", &shutdown).await;
    let cart = nats.service("cart", &shutdown).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_sqlite(&dir.path().join("cart.db"), &PoolSettings::default())
        .await
        .expect("db");
    events::migrate(&db).await.expect("platform tables");
    let consumer = Arc::new(Consumer::new(
        "cart",
        db.clone(),
        Arc::new(SystemClock),
        vec![Subscription {
            source: "orders",
            event_type: "order.confirmed",
            handler: Arc::new(Accept),
        }],
        3,
    ));
    cart.subscribe(consumer.clone())
        .await
        .expect("cart may consume orders' events");
    orders
        .publish(&event("orders", "order.confirmed"))
        .await
        .expect("orders may publish its own events");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.stats().snapshot().handled < 1 {
        assert!(Instant::now() < deadline, "cart never received the event");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // payments may publish on its own subjects, not in orders' name.
    let payments = nats.service("payments", &shutdown).await;
    payments
        .publish(&event("payments", "payment.captured"))
        .await
        .expect("payments may publish its own events");
    // The gateway neither publishes nor consumes. (Both refusals wait out the publish's ack
    // timeout: the server drops a forbidden publish without an answer; so they run together.)
    let gateway = nats.service("gateway", &shutdown).await;
    let (as_orders, from_gateway) = (
        event("orders", "order.confirmed"),
        event("gateway", "anything"),
    );
    let (forged, from_gateway) =
        tokio::join!(payments.publish(&as_orders), gateway.publish(&from_gateway),);
    assert!(forged.is_err(), "payments published an order.confirmed");
    assert!(from_gateway.is_err(), "the gateway published an event");

    assert_eq!(
        consumer.stats().snapshot().handled,
        1,
        "only the real event arrived"
    );

    // No user hears another's deliveries: the gateway's login may not subscribe to cart's
    // inboxes (nor the shared `_INBOX.>`), so a second event reaches cart and nobody else.
    let eavesdropper = async_nats::ConnectOptions::new()
        .user_and_password("gateway".into(), "pw-gateway".into())
        .connect(nats.url.as_str())
        .await
        .expect("the gateway logs in");
    let mut cart_inbox = eavesdropper
        .subscribe("_INBOX_cart.>")
        .await
        .expect("a subscription is sent (the server refuses it on its side)");
    let mut shared_inbox = eavesdropper
        .subscribe("_INBOX.>")
        .await
        .expect("a subscription is sent");
    orders
        .publish(&event("orders", "order.confirmed"))
        .await
        .expect("orders publishes again");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.stats().snapshot().handled < 2 {
        assert!(
            Instant::now() < deadline,
            "cart never received the second event"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for inbox in [&mut cart_inbox, &mut shared_inbox] {
        let heard = tokio::time::timeout(Duration::from_millis(300), inbox.next()).await;
        assert!(
            !matches!(heard, Ok(Some(_))),
            "the gateway's login heard a delivery meant for cart"
        );
    }
    // Streams: each user may create its own only, and nobody may update or delete one. (cart
    // subscribed above before orders' stream existed: it waited, and orders created the stream
    // at its first event.) Raw clients, each on its own inboxes, so that the answers allowed
    // reach them: the look-ups below prove they do.
    let raw = |user: &'static str| {
        async_nats::ConnectOptions::new()
            .user_and_password(user.into(), format!("pw-{user}"))
            .custom_inbox_prefix(format!("_INBOX_{user}"))
            .connect(nats.url.clone())
    };
    let (as_payments, as_gateway) = tokio::join!(raw("payments"), raw("gateway"));
    let as_payments = jetstream::new(as_payments.expect("payments logs in"));
    let as_gateway = jetstream::new(as_gateway.expect("the gateway logs in"));
    let orders_stream = as_payments
        .get_stream("FLOTILLA_ORDERS")
        .await
        .expect("payments may look orders' stream up (and hears the answer)");
    let mut narrowed = orders_stream.cached_info().config.clone();
    narrowed.max_age = Duration::from_secs(1);
    let stream_of = |name: &str, source: &str| StreamConfig {
        name: name.to_owned(),
        subjects: vec![format!("flotilla.{source}.>")],
        ..Default::default()
    };
    // (Each refused request waits out the client's timeout: the server drops it unanswered.)
    let (others, updated, deleted, own_name_other_prefix, from_gateway) = tokio::join!(
        as_payments.create_stream(stream_of("FLOTILLA_SHIPPING", "shipping")),
        as_payments.update_stream(narrowed),
        as_payments.delete_stream("FLOTILLA_ORDERS"),
        as_payments.create_stream(stream_of("OTHER_PAYMENTS", "payments")),
        as_gateway.create_stream(stream_of("FLOTILLA_GATEWAY", "gateway")),
    );
    assert!(others.is_err(), "payments created shipping's stream");
    assert!(updated.is_err(), "payments updated orders' stream");
    assert!(deleted.is_err(), "payments deleted orders' stream");
    assert!(
        own_name_other_prefix.is_err(),
        "payments created a stream not named FLOTILLA_PAYMENTS"
    );
    assert!(from_gateway.is_err(), "the gateway created a stream");
    let after = as_payments
        .get_stream("FLOTILLA_ORDERS")
        .await
        .expect("orders' stream is still there");
    assert_eq!(
        after.cached_info().config.max_age,
        orders_stream.cached_info().config.max_age,
        "orders' stream kept its settings"
    );
    assert!(
        as_payments.get_stream("FLOTILLA_SHIPPING").await.is_err(),
        "no shipping stream was created"
    );

    shutdown.cancel();
    for bus in [&orders, &cart, &payments, &gateway] {
        bus.stopped().await;
    }
    db.close().await;
}

/// Runs openssl with `args` in `dir` (the certificates of the TLS test).
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl on PATH");
    assert!(status.success(), "openssl {args:?}");
}

/// TLS to NATS (`nats.tls_required`, `nats.tls_ca`; the prod overlay's configuration): a
/// client that requires TLS refuses a plaintext server; against a server with a certificate
/// from a CA of the test's own, a client given that CA connects, and one without it does not
/// (the certificate is checked, not merely encrypted to).
#[tokio::test]
async fn tls_is_required_and_the_server_certificate_checked() {
    let shutdown = CancellationToken::new();
    let settings = |tls_ca: Option<&Path>| NatsSettings {
        connect_timeout_ms: 2_000,
        tls_required: true,
        tls_ca: tls_ca.map(Path::to_path_buf),
        ..NatsSettings::default()
    };
    let plain = PrivateNats::start().await;
    let refused = NatsBus::connect_with(&plain.url, "flotilla", settings(None), shutdown.clone());
    assert!(
        refused.await.is_err(),
        "a client requiring TLS connected to a plaintext server"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=flotilla test CA",
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    );
    let conf = d.join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            d.join("server.crt").display(),
            d.join("server.key").display()
        ),
    )
    .expect("write");
    let tls = PrivateNats::start_with(&conf).await;
    let trusted = NatsBus::connect_with(
        &tls.url,
        "flotilla",
        settings(Some(&d.join("ca.crt"))),
        shutdown.clone(),
    )
    .await;
    assert!(
        trusted.is_ok(),
        "the client given the CA did not connect: {:?}",
        trusted.err()
    );
    let untrusted =
        NatsBus::connect_with(&tls.url, "flotilla", settings(None), shutdown.clone()).await;
    assert!(
        untrusted.is_err(),
        "a client connected to a server whose CA it was not given"
    );
    shutdown.cancel();
}
