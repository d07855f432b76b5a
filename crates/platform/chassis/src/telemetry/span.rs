//! One span: what it records, and the handle that records it when it ends.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

use super::Telemetry;
use crate::trace_context::TraceParent;

/// What a span measures, as OpenTelemetry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Serving a request.
    Server,
    /// A call to another service.
    Client,
    /// Sending an event.
    Producer,
    /// Handling an event.
    Consumer,
    /// Work inside a service (a saga step).
    Internal,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Text.
    Str(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Self {
        Self::Str(Cow::Borrowed(text))
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::Str(Cow::Owned(text))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Self::Int(i64::from(n))
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

/// How a span ended (OpenTelemetry's span status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "code", content = "message", rename_all = "lowercase")]
pub enum Status {
    /// Nothing said: for HTTP, any answer below the error range.
    Unset,
    /// Failed, with why.
    Error(String),
}

/// A finished span.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpanRecord {
    /// The trace it belongs to.
    #[serde(serialize_with = "hex128")]
    pub trace_id: u128,
    /// Its own id.
    #[serde(serialize_with = "hex64")]
    pub span_id: u64,
    /// Its parent's id; `None` for a trace's root.
    #[serde(serialize_with = "hex64_opt")]
    pub parent_span_id: Option<u64>,
    /// What it did (`GET /products/{id}`).
    pub name: Cow<'static, str>,
    /// What kind of work it measures.
    pub kind: SpanKind,
    /// The service that recorded it (the resource's `service.name`).
    pub service: Cow<'static, str>,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// How long it took, in nanoseconds.
    pub duration_nanos: u64,
    /// How it ended.
    pub status: Status,
    /// Its attributes, by semantic-convention name (an object in JSON).
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(Cow<'static, str>, Value)>,
}

impl SpanRecord {
    /// The attribute named `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find_map(|(k, v)| (*k == key).then_some(v))
    }

    /// When it ended, in nanoseconds since the Unix epoch.
    pub fn end_unix_nanos(&self) -> u64 {
        self.start_unix_nanos.saturating_add(self.duration_nanos)
    }
}

fn as_map<S: serde::Serializer>(
    attributes: &[(Cow<'static, str>, Value)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(attributes.iter().map(|(k, v)| (k, v)))
}

fn hex128<S: serde::Serializer>(id: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{id:032x}"))
}

fn hex64<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{id:016x}"))
}

fn hex64_opt<S: serde::Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => hex64(id, s),
        None => s.serialize_none(),
    }
}

/// A span under way: records itself into the installed telemetry when dropped (ended, or
/// cancelled with the work it measured). A span of an unsampled trace, or with no telemetry
/// installed, records nothing and costs nothing.
#[derive(Debug)]
pub struct Span {
    active: Option<Box<Active>>,
}

#[derive(Debug)]
struct Active {
    record: SpanRecord,
    started: Instant,
    telemetry: &'static Telemetry,
}

impl Span {
    /// A span that records nothing.
    pub const fn off() -> Self {
        Self { active: None }
    }

    /// Starts a span of `kind` whose own context is `context` (its trace, its id, its sampled
    /// flag), under the parent span `parent`, recorded by `service`.
    pub fn start(
        kind: SpanKind,
        name: impl Into<Cow<'static, str>>,
        service: impl Into<Cow<'static, str>>,
        context: TraceParent,
        parent: Option<u64>,
    ) -> Self {
        let Some(telemetry) = super::installed().filter(|_| context.is_sampled()) else {
            return Self::off();
        };
        let start_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        Self {
            active: Some(Box::new(Active {
                record: SpanRecord {
                    trace_id: context.trace_id,
                    span_id: context.span_id,
                    parent_span_id: parent,
                    name: name.into(),
                    kind,
                    service: service.into(),
                    start_unix_nanos: u64::try_from(start_unix_nanos).unwrap_or(u64::MAX),
                    duration_nanos: 0,
                    status: Status::Unset,
                    attributes: Vec::with_capacity(6),
                },
                started: Instant::now(),
                telemetry,
            })),
        }
    }

    /// Whether this span will be recorded (worth computing attributes for).
    pub fn is_recording(&self) -> bool {
        self.active.is_some()
    }

    /// Sets attribute `key`.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(active) = &mut self.active {
            let value = value.into();
            let attributes = &mut active.record.attributes;
            match attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => attributes.push((Cow::Borrowed(key), value)),
            }
        }
    }

    /// Renames the span (a server span learns its route once routed).
    pub fn rename(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(active) = &mut self.active {
            active.record.name = name.into();
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&mut self, message: impl Into<String>) {
        if let Some(active) = &mut self.active {
            active.record.status = Status::Error(message.into());
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            let Active {
                mut record,
                started,
                telemetry,
            } = *active;
            record.duration_nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            telemetry.finish(record);
        }
    }
}

/// The text of `method` with no allocation: the standard methods by name, any other as
/// `_OTHER` (OpenTelemetry's convention, which also keeps span names few).
pub fn method_name(method: &http::Method) -> &'static str {
    use http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find_map(|(known, name)| (known == method).then_some(*name))
        .unwrap_or("_OTHER")
}

#[cfg(test)]
mod tests {
    use super::method_name;
    use http::Method;

    #[test]
    fn methods_outside_the_standard_set_share_one_name() {
        assert_eq!(method_name(&Method::GET), "GET");
        assert_eq!(method_name(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_name(&odd), "_OTHER");
    }
}
