//! One consuming service's loop over one source stream: it opens the service's durable pull
//! consumer, hands each message to [`Consumer::deliver`] inside the publisher's trace, acks or
//! naks it with backoff, re-opens the consumer when the message stream breaks, and on shutdown
//! gives back what it pulled but did not start.
//!
//! A message whose envelope does not decode, or whose envelope names another type than the
//! subject it was published on, is parked at its first delivery ([`Consumer::park`]): no
//! redelivery can make it readable, and the subject is what the stream's filter trusted.

use async_nats::jetstream::consumer::pull::{self, Config as PullConfig, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::names::{Names, token};
use super::{NatsSettings, backoff, broker};
use flotilla_chassis::clock::rfc3339;
use flotilla_chassis::events::{BusError, Consumer, Event};

/// Consecutive errors from one message stream after which it is re-created.
const STREAM_ERRORS_BEFORE_REOPEN: u32 = 3;

/// Longest wait between two looks for a source's stream that does not exist yet, in ms.
const NO_STREAM_POLL_MAX_MS: u64 = 2_000;

/// Why a consumer could not be opened.
pub(super) enum Open {
    /// The source's stream does not exist yet (its publisher has published nothing).
    NoStream(String),
    /// Anything else: the broker refused or did not answer.
    Failed(BusError),
}

/// One consuming service's loop over one source stream.
pub(super) struct Reader {
    pub(super) js: jetstream::Context,
    pub(super) names: Names,
    pub(super) settings: NatsSettings,
    pub(super) source: &'static str,
    pub(super) filter: String,
    pub(super) consumer: Arc<Consumer>,
    pub(super) shutdown: CancellationToken,
}

impl Reader {
    /// Creates (or updates) the service's durable consumer on the source's stream. The stream
    /// itself is its publisher's to create (at its first event): a consumer never creates one,
    /// so each NATS user may be allowed to create its own stream only (deploy/k8s/dev-deps/
    /// nats.conf). Until the stream exists this fails with [`Open::NoStream`].
    pub(super) async fn open(&self) -> Result<PullConsumer, Open> {
        let name = self.names.stream(self.source);
        let stream = match self.js.get_stream(&name).await {
            Ok(stream) => stream,
            Err(err) => {
                let missing = matches!(
                    err.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                return Err(if missing {
                    Open::NoStream(name)
                } else {
                    Open::Failed(broker(err))
                });
            }
        };
        let durable = token(self.consumer.service());
        // Creating an existing durable with the same config is a no-op, and a changed filter
        // (the service now consumes other types) is applied in place, keeping its position.
        stream
            .create_consumer(PullConfig {
                durable_name: Some(durable),
                description: Some(format!(
                    "{} consuming {} events",
                    self.consumer.service(),
                    self.source
                )),
                // A consumer created after events were published still gets them.
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_millis(self.settings.ack_wait_ms),
                max_deliver: -1,
                filter_subject: self.filter.clone(),
                max_ack_pending: self.settings.max_ack_pending,
                ..Default::default()
            })
            .await
            .map_err(|err| Open::Failed(broker(err)))
    }

    /// Reads until shutdown; a message stream that ends or keeps failing (the consumer was
    /// deleted, the server forgot it) is re-opened with backoff. Without a `first` consumer
    /// (the stream did not exist yet) it starts by opening one, looking for the stream again
    /// every few seconds at most.
    pub(super) async fn run(self, first: Option<PullConsumer>) {
        let mut pull = first;
        let mut failures: i64 = 0;
        while !self.shutdown.is_cancelled() {
            let opened = match pull.take() {
                Some(pull) => Ok(pull),
                None => self.open().await,
            };
            let problem = match opened {
                Ok(pull) => match self.read(&pull).await {
                    Read::Shutdown => return,
                    Read::Broken { handled, reason } => {
                        if handled {
                            failures = 0;
                        }
                        reason
                    }
                },
                Err(Open::NoStream(stream)) => {
                    // Nothing lost: the consumer, once created, starts at the stream's first
                    // event. Not a fault, so not a warning.
                    failures += 1;
                    let delay = backoff(failures, 250, NO_STREAM_POLL_MAX_MS);
                    tracing::debug!(service = self.consumer.service(), source = self.source, %stream, retry_in_ms = delay.as_millis() as u64, "waiting for the publisher to create its stream");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
                Err(Open::Failed(err)) => err.to_string(),
            };
            failures += 1;
            let delay = backoff(failures, 500, self.settings.redelivery_max_ms);
            tracing::warn!(service = self.consumer.service(), source = self.source, error = %problem, retry_in_ms = delay.as_millis() as u64, "event consumer interrupted");
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn read(&self, pull: &PullConsumer) -> Read {
        let opened = pull
            .stream()
            .max_messages_per_batch(self.settings.batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match opened {
            Ok(messages) => messages,
            Err(err) => return Read::broken(false, err),
        };
        let (mut handled, mut errors) = (false, 0);
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => {
                    self.release(pull, messages).await;
                    return Read::Shutdown;
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    (handled, errors) = (true, 0);
                    self.handle(message).await;
                }
                // The client re-pulls by itself after a reconnect, so a missed heartbeat or a
                // failed pull during an outage is waited out; only persistent trouble re-opens.
                Some(Err(err)) => {
                    errors += 1;
                    let fatal = matches!(
                        err.kind(),
                        MessagesErrorKind::ConsumerDeleted
                            | MessagesErrorKind::PushBasedConsumer
                            | MessagesErrorKind::RequestLimitExceeded
                    );
                    if fatal || errors >= STREAM_ERRORS_BEFORE_REOPEN {
                        return Read::broken(handled, err);
                    }
                    tracing::debug!(service = self.consumer.service(), error = %err, "event stream hiccup");
                }
                None => return Read::broken(handled, "message stream ended"),
            }
        }
    }

    /// Hands back what this replica pulled but did not start (so another replica gets it now,
    /// not after `ack_wait`), and makes sure the server has forgotten this replica's pull
    /// request before shutdown goes on: an event sent to it after that would wait `ack_wait`.
    async fn release(&self, pull: &PullConsumer, mut messages: pull::Stream) {
        while let Some(Some(Ok(message))) = messages.next().now_or_never() {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        // Dropping the stream unsubscribes its inbox, which withdraws the pull request. The
        // server reads one connection in order, so once a later request on it is answered, the
        // unsubscribe has been applied (a flush would only say it was written).
        drop(messages);
        let _ = tokio::time::timeout(Duration::from_secs(1), pull.get_info()).await;
    }

    /// Delivers one message to the consumer and acks or naks it.
    async fn handle(&self, message: jetstream::Message) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        let (event, refused) = match self.decode(&message) {
            Ok(event) => (event, None),
            Err((event, reason)) => (event, Some(reason)),
        };
        let span = tracing::info_span!("event", service = self.consumer.service(), event_id = %event.id, event_type = %event.event_type, delivered);
        // The handler's own calls and events continue the publisher's trace.
        let delivery = match refused {
            Some(reason) => self.consumer.park(&event, reason).instrument(span).await,
            None => {
                self.consumer
                    .deliver_in_trace(&event)
                    .instrument(span)
                    .await
            }
        };
        let ack = match delivery {
            Ok(_) => AckKind::Ack,
            Err(_) => AckKind::Nak(Some(backoff(
                delivered,
                self.settings.redelivery_base_ms,
                self.settings.redelivery_max_ms,
            ))),
        };
        if let Err(err) = message.ack_with(ack).await {
            // Nothing lost: the broker redelivers after ack_wait and the inbox recognises it.
            tracing::warn!(event_id = %event.id, error = %err, "acknowledgement not sent");
        }
    }

    /// The event in `message`; or, with the reason it is refused, the envelope published on the
    /// wrong subject, or — when the envelope does not decode — an event carrying the raw text,
    /// either to be parked (see the module docs).
    fn decode(&self, message: &jetstream::Message) -> Result<Event, (Event, String)> {
        let err = match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => {
                let expected = self.names.subject(self.source, &event.event_type);
                if expected == message.subject.as_str() {
                    return Ok(event);
                }
                let reason = format!(
                    "refused: a {:?} event published on subject {}",
                    event.event_type.chars().take(64).collect::<String>(),
                    message.subject
                );
                tracing::error!(event_id = %event.id, subject = %message.subject, "event on another type's subject; it will be parked");
                return Err((event, reason));
            }
            Err(err) => err,
        };
        let header = |name: &str| {
            let headers = message.headers.as_ref()?;
            headers.get(name).map(|v| v.as_str().to_owned())
        };
        let info = message.info().ok();
        let id = header("Nats-Msg-Id").unwrap_or_else(|| match &info {
            Some(info) => format!("{}:{}", info.stream, info.stream_sequence),
            None => format!("undecodable:{}", uuid::Uuid::now_v7()),
        });
        let subjects = self.names.subjects(self.source);
        let event_type = message
            .subject
            .strip_prefix(subjects.trim_end_matches('>'))
            .unwrap_or(&message.subject)
            .to_owned();
        tracing::error!(event_id = %id, subject = %message.subject, error = %err, "undecodable event envelope; it will be parked");
        let reason = format!("undecodable event envelope: {err}");
        let event = Event {
            id,
            event_type,
            version: 0,
            source: self.source.to_owned(),
            time: info.map_or_else(String::new, |info| {
                rfc3339((info.published.unix_timestamp_nanos() / 1_000_000) as i64)
            }),
            traceparent: header("traceparent"),
            payload: serde_json::Value::String(String::from_utf8_lossy(&message.payload).into()),
        };
        Err((event, reason))
    }
}

/// Why reading stopped.
enum Read {
    Shutdown,
    Broken { handled: bool, reason: String },
}

impl Read {
    fn broken(handled: bool, reason: impl std::fmt::Display) -> Self {
        Self::Broken {
            handled,
            reason: reason.to_string(),
        }
    }
}
