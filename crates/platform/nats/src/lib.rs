//! The NATS JetStream bus: the fleet's [`Bus`], where the broker holds events between a
//! publisher's relay and its consumers, so either side may be down while the other works. A
//! crate of its own because only the hosts (the `flotilla` binary) connect to a broker: a
//! service publishes through the chassis's outbox and consumes through its `Consumer`, and
//! compiles no NATS code.
//!
//! Names all start with a prefix, so deployments (and tests) sharing one server never meet:
//! - one stream per *publishing* service, `{PREFIX}_{SOURCE}`, holding the subjects
//!   `{prefix}.{source}.>` on file storage for [`NatsSettings::retention_ms`], with a 2-minute
//!   duplicate window. Its publisher creates it, at its first publish; a consumer that comes
//!   first waits for it (its durable consumer, once created, starts at the stream's first
//!   event), so a deployment can let each NATS user create its own stream only;
//! - an event is published on `{prefix}.{source}.{event_type}` with `Nats-Msg-Id` = event id, so
//!   the stream drops a republish of the same outbox row (a relay that died before marking it,
//!   two relay replicas racing) within the window; `publish` returns once the stream acked;
//! - each consuming service has one durable pull consumer per source stream, named after the
//!   service and shared by all its replicas: every event reaches one replica of each service.
//!
//! Deliveries go to the same [`Consumer::deliver`] as in one process, which de-duplicates in the
//! inbox and parks an event as a dead letter after `max_deliveries` failures. So the broker never
//! gives up (`max_deliver` unlimited): `Ok` is acked; `Err` is nak'ed with an exponential,
//! jittered, capped delay computed from the broker's delivery count.
//!
//! A consumer of one event type from a source filters on that subject; a consumer of several
//! filters on the source's whole stream and acks the types it does not handle (`Ignored`).
//! Filtering on several subjects (`filter_subjects`) needs NATS 2.10; this works with the 2.9.10
//! that Debian packages (and async-nats is built without its `server_2_10` feature).
//!
//! An envelope that does not decode (written by something other than a Flotilla relay) is not
//! dropped: it is delivered as an event whose payload is the raw message text and whose version
//! is 0, so the consumer's handler refuses it and it ends parked, visible and inspectable under
//! `/admin/dead-letters`. The same holds for an event too large for the broker: its payload is
//! replaced by a note saying so, rather than the relay retrying it forever.

mod names;
mod reader;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use flotilla_chassis::deadline::within;
use futures::future::BoxFuture;
use futures::{StreamExt, TryFutureExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use flotilla_chassis::events::{Bus, BusError, Consumer, Event};
use names::Names;
use reader::Reader;

/// How long the stream remembers message ids to drop republished events.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// NATS tuning; the defaults suit the fleet, tests shorten the redelivery delays.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    /// Longest wait for the first connection, in ms (later outages are reconnected forever).
    pub connect_timeout_ms: u64,
    /// How long a delivered, unacknowledged event waits before the broker redelivers it, in ms.
    pub ack_wait_ms: u64,
    /// Unacknowledged events in flight per consuming service.
    pub max_ack_pending: i64,
    /// Events asked for per pull request.
    pub batch: usize,
    /// Redelivery delay after a first failed delivery, in ms (doubles per delivery).
    pub redelivery_base_ms: u64,
    /// Longest redelivery delay, in ms (also the longest wait before re-opening a consumer).
    pub redelivery_max_ms: u64,
    /// How long a stream keeps events, in ms; a consumer away longer misses the older ones.
    pub retention_ms: u64,
    /// The user this process authenticates as (`FLOTILLA_NATS__USER`); deployments give each
    /// service its own, allowed to publish only on its own subjects (deploy/nats.conf).
    pub user: Option<String>,
    /// That user's password (`FLOTILLA_NATS__PASSWORD`). Not accepted inside the URL: the URL
    /// appears in logs and errors.
    pub password: Option<Password>,
    /// Refuse to talk to the server without TLS (`FLOTILLA_NATS__TLS_REQUIRED`); a `tls://`
    /// URL requires it too. Without it the client follows the server (TLS when the server
    /// asks for it).
    pub tls_required: bool,
    /// A PEM file of the certificate authorities the server's certificate must chain to
    /// (`FLOTILLA_NATS__TLS_CA`), added to the system's; implies TLS.
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate and its key, PEM files (`FLOTILLA_NATS__TLS_CERT`,
    /// `FLOTILLA_NATS__TLS_KEY`), for a server that verifies clients (mutual TLS); both or
    /// neither.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (see `tls_cert`).
    pub tls_key: Option<std::path::PathBuf>,
}

/// A NATS password: never shown by `Debug`.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            ack_wait_ms: 30_000,
            max_ack_pending: 256,
            batch: 32,
            redelivery_base_ms: 250,
            redelivery_max_ms: 30_000,
            retention_ms: 7 * 24 * 3600 * 1000,
            user: None,
            password: None,
            tls_required: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The bus on NATS JetStream (see the module docs for names and delivery).
pub struct NatsBus {
    js: jetstream::Context,
    names: Names,
    settings: NatsSettings,
    /// Sources whose stream is known to exist (a std lock: never held across an await).
    streams: Mutex<HashSet<String>>,
    max_payload: usize,
    shutdown: CancellationToken,
    consumers: TaskTracker,
}

impl NatsBus {
    /// Connects to `url` with default settings; see [`NatsBus::connect_with`].
    pub async fn connect(
        url: &str,
        prefix: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        Self::connect_with(url, prefix, NatsSettings::default(), shutdown).await
    }

    /// Connects to `url` (failing after `connect_timeout_ms`, and when the server has no
    /// JetStream) and names everything with `prefix`. The client reconnects by itself after
    /// later outages; consumers stop when `shutdown` is cancelled.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        settings: NatsSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let names = Names::new(prefix)?;
        let client = connect_client(url, &settings).await?;
        let js = jetstream::new(client.clone());
        // Fails fast when the server runs without JetStream. (The typed `query_account` does
        // not parse a 2.9 server's answer, so the raw one is read.)
        let info: Response<serde_json::Value> = js
            .request("INFO", &())
            .await
            .map_err(|e| BusError::Broker(format!("JetStream at {url}: {e}")))?;
        if let Response::Err { error } = info {
            return Err(BusError::Broker(format!("JetStream at {url}: {error}")));
        }
        Ok(Self {
            js,
            names,
            // 0 when the server did not say: then the server alone judges.
            max_payload: match client.server_info().max_payload {
                0 => usize::MAX,
                limit => limit,
            },
            settings,
            streams: Mutex::new(HashSet::new()),
            shutdown,
            consumers: TaskTracker::new(),
        })
    }

    /// Waits until every consumer loop has stopped (after the shutdown token was cancelled):
    /// the event being handled is finished and acked first.
    pub async fn stopped(&self) {
        self.consumers.close();
        self.consumers.wait().await;
    }

    /// Deletes every stream named with `prefix` (and so its consumers); returns how many.
    /// Tests use it to clean up after themselves.
    pub async fn purge(url: &str, prefix: &str) -> Result<usize, BusError> {
        let names = Names::new(prefix)?;
        let js = jetstream::new(connect_client(url, &NatsSettings::default()).await?);
        let mut doomed = Vec::new();
        let mut streams = js.streams();
        while let Some(info) = streams.next().await {
            let config = info.map_err(broker)?.config;
            if names.owns_stream(&config.name, &config.subjects) {
                doomed.push(config.name);
            }
        }
        for name in &doomed {
            js.delete_stream(name).await.map_err(broker)?;
        }
        Ok(doomed.len())
    }

    /// Creates the source's stream unless it is known to exist.
    async fn ensure_stream(&self, source: &str) -> Result<(), BusError> {
        if self.known_streams().contains(source) {
            return Ok(());
        }
        ensure_stream(&self.js, &self.names, &self.settings, source).await?;
        self.known_streams().insert(source.to_owned());
        Ok(())
    }

    fn known_streams(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish_event(&self, event: &Event) -> Result<(), BusError> {
        self.ensure_stream(&event.source).await?;
        let subject = self.names.subject(&event.source, &event.event_type);
        let mut body = serde_json::to_vec(event).map_err(broker)?;
        // Headers and the subject share the limit with the body; 4 KiB is ample for them.
        if body.len().saturating_add(4096) > self.max_payload {
            tracing::error!(event_id = %event.id, bytes = body.len(), "event too large for the broker; its payload is replaced");
            let note = format!(
                "payload of {} bytes dropped: the broker takes at most {}",
                body.len(),
                self.max_payload
            );
            let stub = Event {
                payload: serde_json::Value::String(note),
                ..event.clone()
            };
            body = serde_json::to_vec(&stub).map_err(broker)?;
        }
        let mut message = PublishMessage::build()
            .payload(body.into())
            .message_id(&event.id);
        if let Some(traceparent) = &event.traceparent {
            // Also a header, so NATS tooling sees the trace without decoding the body.
            message = message.header("traceparent", traceparent.as_str());
        }
        let acked = match self.js.send_publish(subject, message).await {
            Ok(ack) => ack.await.map_err(broker),
            Err(err) => Err(broker(err)),
        };
        match acked {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(event_id = %event.id, "republished event dropped by the stream's duplicate window");
                }
                Ok(())
            }
            Err(err) => {
                // The stream may have been deleted: look again next time.
                self.known_streams().remove(&event.source);
                Err(err)
            }
        }
    }
}

impl Bus for NatsBus {
    fn publish<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(self.publish_event(event))
    }

    fn stopped(&self) -> BoxFuture<'_, ()> {
        Box::pin(NatsBus::stopped(self))
    }

    fn subscribe(&self, consumer: Arc<Consumer>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            for (source, event_types) in consumer.event_types_by_source() {
                let filter = match event_types.as_slice() {
                    [one] => self.names.subject(source, one),
                    _ => self.names.subjects(source),
                };
                let reader = Reader {
                    js: self.js.clone(),
                    names: self.names.clone(),
                    settings: self.settings.clone(),
                    source,
                    filter,
                    consumer: consumer.clone(),
                    shutdown: self.shutdown.clone(),
                };
                // The first opening reports its failure to the caller; later ones retry. A
                // source whose stream does not exist yet is waited for: its publisher creates
                // it, never a consumer.
                let pull = match reader.open().await {
                    Ok(pull) => Some(pull),
                    Err(reader::Open::NoStream(_)) => None,
                    Err(reader::Open::Failed(err)) => return Err(err),
                };
                self.consumers.spawn(reader.run(pull));
            }
            Ok(())
        })
    }
}

async fn connect_client(
    url: &str,
    settings: &NatsSettings,
) -> Result<async_nats::Client, BusError> {
    let timeout = Duration::from_millis(settings.connect_timeout_ms.max(1));
    if let Ok(addr) = url.parse::<async_nats::ServerAddr>() {
        // async-nats would silently ignore them, and the URL is printed in errors and logs.
        if addr.username().is_some() || addr.password().is_some() {
            return Err(BusError::Broker(
                "the NATS URL holds credentials: give them as nats.user and nats.password \
                 (FLOTILLA_NATS__USER, FLOTILLA_NATS__PASSWORD) instead"
                    .to_owned(),
            ));
        }
    }
    let mut options = async_nats::ConnectOptions::new();
    match (&settings.user, &settings.password) {
        (Some(user), Some(Password(password))) => {
            // Each user's replies and deliveries on inboxes of its own, so that the server can
            // let a user subscribe to its own only (deploy/k8s/dev-deps/nats.conf).
            options = options
                .user_and_password(user.clone(), password.clone())
                .custom_inbox_prefix(format!("_INBOX_{user}"));
        }
        (None, None) => {}
        _ => {
            return Err(BusError::Broker(
                "nats.user and nats.password go together: set both or neither".to_owned(),
            ));
        }
    }
    if settings.tls_required || settings.tls_ca.is_some() {
        options = options.require_tls(true);
    }
    if let Some(ca) = &settings.tls_ca {
        if !ca.is_file() {
            return Err(BusError::Broker(format!(
                "nats.tls_ca {}: no such file",
                ca.display()
            )));
        }
        options = options.add_root_certificates(ca.clone());
    }
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            options = options
                .require_tls(true)
                .add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(BusError::Broker(
                "nats.tls_cert and nats.tls_key go together: set both or neither".to_owned(),
            ));
        }
    }
    let options = options
        .name("flotilla")
        .connection_timeout(timeout)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                other => tracing::warn!(event = %other, "NATS"),
            }
        });
    // The client's own timeout covers one attempt; this one covers resolving and retries too.
    let connect = options
        .connect(url)
        .map_err(|err| BusError::Broker(format!("connecting to {url}: {err}")));
    within(timeout, connect, |limit| {
        BusError::Broker(format!("connecting to {url}: no answer within {limit:?}"))
    })
    .await
}

/// Creates the source's stream unless it exists (idempotent: replicas may race to it).
async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    settings: &NatsSettings,
    source: &str,
) -> Result<jetstream::stream::Stream, BusError> {
    let config = StreamConfig {
        name: names.stream(source),
        subjects: vec![names.subjects(source)],
        description: Some(format!("Flotilla events published by {source}")),
        storage: StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: Duration::from_millis(settings.retention_ms),
        ..Default::default()
    };
    // Tried a few times: nats-server 2.9 fails a create ("error creating store for stream")
    // that races with the deletion of the account's last stream.
    let mut attempt = 1;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(err) if attempt >= 3 => return Err(broker(err)),
            Err(err) => {
                tracing::debug!(stream = %config.name, error = %err, "stream not created; retrying");
                tokio::time::sleep(backoff(attempt, 50, 1_000)).await;
                attempt += 1;
            }
        }
    }
}

/// Exponential backoff with "equal jitter" (half fixed, half random), capped, as the relay's.
fn backoff(attempt: i64, base_ms: u64, max_ms: u64) -> Duration {
    let exp = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    let ceiling = base_ms.saturating_mul(1 << exp).min(max_ms).max(1);
    let jitter = rand::random::<u64>() % ceiling;
    Duration::from_millis((ceiling / 2 + jitter / 2).max(1))
}

fn broker(err: impl std::fmt::Display) -> BusError {
    BusError::Broker(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_delays_grow_and_stay_capped() {
        for attempt in 1..30 {
            let delay = backoff(attempt, 100, 5_000).as_millis() as u64;
            let ceiling = (100u64 << (attempt.clamp(1, 20) - 1)).min(5_000);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay}"
            );
        }
    }
}
