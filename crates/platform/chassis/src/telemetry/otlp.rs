//! OTLP/HTTP with JSON bodies: the spans this process records, sent to any OpenTelemetry
//! collector, Jaeger or Tempo (`POST {endpoint}/v1/traces`), and read back by the gateway's
//! own receiver, so a fleet's spans can be gathered in one place.
//!
//! Written by hand (about 200 lines) rather than with `opentelemetry-otlp`: that exporter takes
//! the SDK's span type, which our recorder does not use (see the module above), and its proto
//! types pull the SDK and prost into every build; OTLP's JSON encoding is specified to the
//! field, and `serde_json` is already here. HTTP only (a collector beside the process is the
//! usual set-up; TLS to a remote one is the collector's job).

use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value as Json, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

use super::SpanSink;
use super::span::{SpanKind, SpanRecord, Status, Value};

/// The path of a Flotilla gateway's receiver, the one URL this process's credentials go to.
pub const GATEWAY_RECEIVER: &str = "/api/gateway/otlp/v1/traces";

/// Spans waiting to be sent at most; past it new ones are dropped (and counted).
const QUEUE: usize = 8192;
/// Spans sent in one request at most.
const MAX_BATCH: usize = 512;
/// Encoded bytes of one request at most, under the gateway's default body limit (64 KiB).
const MAX_BODY: usize = 48 * 1024;
/// How long the first span of a batch waits for others.
const LINGER: Duration = Duration::from_secs(1);

/// Where and how spans are sent.
#[derive(Clone)]
pub struct OtlpTarget {
    /// The full URL spans are posted to (`http://host:4318/v1/traces`).
    pub url: Uri,
    /// Headers sent with every request (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long one request may take.
    pub timeout: Duration,
    /// This process's credential (a fresh header each time), sent only to a Flotilla
    /// gateway's receiver (a URL whose path is [`GATEWAY_RECEIVER`]), never to another
    /// collector.
    pub credential: Option<Credential>,
}

/// Makes the header that proves this process belongs to the fleet.
pub type Credential = Arc<dyn Fn() -> Option<(HeaderName, HeaderValue)> + Send + Sync>;

impl std::fmt::Debug for OtlpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTarget")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("timeout", &self.timeout)
            .field("credential", &self.credential.is_some())
            .finish()
    }
}

impl OtlpTarget {
    /// The target for `endpoint` (a base URL, to which `/v1/traces` is appended, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` means), or for `traces_url` (used as it is, as
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` means), with `headers` (`k=v,k2=v2`, values
    /// percent-decoded) and `timeout_ms`.
    pub fn parse(
        endpoint: Option<&str>,
        traces_url: Option<&str>,
        headers: Option<&str>,
        timeout_ms: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let url = match (traces_url.map(str::trim), endpoint.map(str::trim)) {
            (Some(url), _) if !url.is_empty() => url.to_owned(),
            (_, Some(base)) if !base.is_empty() => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            _ => return Ok(None),
        };
        let url: Uri = url
            .parse()
            .map_err(|_| format!("the OTLP endpoint {url:?} is not a URL"))?;
        match url.scheme_str() {
            Some("http") if url.authority().is_some() => {}
            Some("https") => {
                return Err(format!(
                    "the OTLP endpoint {url} is https: Flotilla sends OTLP over plain HTTP to a \
                     collector beside it (which forwards over TLS)"
                ));
            }
            _ => return Err(format!("the OTLP endpoint {url} is not an http:// URL")),
        }
        let mut parsed = Vec::new();
        for pair in headers.unwrap_or_default().split(',').map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not name=value"))?;
            let name = HeaderName::try_from(name.trim()).map_err(|_| {
                format!(
                    "OTEL_EXPORTER_OTLP_HEADERS: {:?} is not a header name",
                    name.trim()
                )
            })?;
            let value = percent_decode(value.trim());
            let value = HeaderValue::try_from(value).map_err(|_| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: the value of {name} is not a header value")
            })?;
            parsed.push((name, value));
        }
        let timeout = match timeout_ms.map(str::trim) {
            None | Some("") => Duration::from_secs(10),
            Some(ms) => Duration::from_millis(
                ms.parse::<u64>()
                    .ok()
                    .filter(|ms| (1..=60_000).contains(ms))
                    .ok_or_else(|| {
                        format!("OTEL_EXPORTER_OTLP_TIMEOUT must be 1 to 60000 ms, not {ms:?}")
                    })?,
            ),
        };
        Ok(Some(Self {
            url,
            headers: parsed,
            timeout,
            credential: None,
        }))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends finished spans to an OTLP receiver in batches from a background task; never blocks
/// the request that ends a span (a full queue drops the span and counts it).
#[derive(Debug)]
pub struct OtlpExporter {
    queue: mpsc::Sender<Arc<SpanRecord>>,
    dropped: Arc<AtomicU64>,
}

impl OtlpExporter {
    /// Starts sending to `target` (call inside the tokio runtime).
    pub fn start(target: OtlpTarget) -> Self {
        let (queue, spans) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(send_batches(target, spans, Arc::clone(&dropped)));
        Self { queue, dropped }
    }

    /// Spans not sent: the queue was full, or the receiver refused or did not answer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SpanSink for OtlpExporter {
    fn record(&self, span: &Arc<SpanRecord>) {
        if self.queue.try_send(Arc::clone(span)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send_batches(
    target: OtlpTarget,
    mut spans: mpsc::Receiver<Arc<SpanRecord>>,
    dropped: Arc<AtomicU64>,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(target.timeout));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut last_warning: Option<tokio::time::Instant> = None;
    while let Some(first) = spans.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        for body in encode_batches(&batch) {
            let count = body.1;
            let sent = post(&client, &target, body.0).await;
            if let Err(error) = sent {
                dropped.fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|at| now - at >= Duration::from_secs(10)) {
                    last_warning = Some(now);
                    tracing::warn!(url = %target.url, %error, "spans not exported (said at most every 10 s)");
                }
            }
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &OtlpTarget,
    body: Bytes,
) -> Result<(), String> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = target.url.clone();
    let headers = request.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &target.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(credential) = &target.credential
        && target.url.path().ends_with(GATEWAY_RECEIVER)
        && let Some((name, value)) = credential()
    {
        headers.insert(name, value);
    }
    let response = tokio::time::timeout(target.timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {:?}", target.timeout))?
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

/// `spans` as OTLP JSON request bodies of at most [`MAX_BODY`] bytes each (a single span over
/// it goes alone), with how many spans each holds.
pub fn encode_batches(spans: &[Arc<SpanRecord>]) -> Vec<(Bytes, usize)> {
    let mut bodies = Vec::new();
    let mut current: Vec<Json> = Vec::new();
    let mut size = 0;
    let mut services: Vec<&str> = Vec::new();
    for span in spans {
        let encoded = encode_span(span);
        let len = encoded.to_string().len();
        if !current.is_empty() && size + len > MAX_BODY {
            bodies.push(body(&services, std::mem::take(&mut current)));
            services.clear();
            size = 0;
        }
        size += len;
        services.push(&span.service);
        current.push(encoded);
    }
    if !current.is_empty() {
        bodies.push(body(&services, current));
    }
    bodies
}

/// One request: the spans grouped by the service that recorded them (one resource each).
fn body(services: &[&str], spans: Vec<Json>) -> (Bytes, usize) {
    let count = spans.len();
    let mut by_service: Vec<(&str, Vec<Json>)> = Vec::new();
    for (service, span) in services.iter().zip(spans) {
        match by_service.iter_mut().find(|(s, _)| s == service) {
            Some((_, spans)) => spans.push(span),
            None => by_service.push((service, vec![span])),
        }
    }
    let resource_spans: Vec<Json> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": {"attributes": [attribute("service.name", &Value::Str(Cow::Owned(service.to_owned())))]},
                "scopeSpans": [{"scope": {"name": "flotilla"}, "spans": spans}],
            })
        })
        .collect();
    let text = json!({ "resourceSpans": resource_spans }).to_string();
    (Bytes::from(text), count)
}

fn attribute(key: &str, value: &Value) -> Json {
    // OTLP JSON: 64-bit integers are strings.
    let value = match value {
        Value::Str(text) => json!({"stringValue": text}),
        Value::Int(n) => json!({"intValue": n.to_string()}),
        Value::Bool(flag) => json!({"boolValue": flag}),
    };
    json!({"key": key, "value": value})
}

fn kind_code(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn encode_span(span: &SpanRecord) -> Json {
    let mut encoded = json!({
        "traceId": format!("{:032x}", span.trace_id),
        "spanId": format!("{:016x}", span.span_id),
        "name": span.name,
        "kind": kind_code(span.kind),
        "startTimeUnixNano": span.start_unix_nanos.to_string(),
        "endTimeUnixNano": span.end_unix_nanos().to_string(),
        "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        "status": match &span.status {
            Status::Unset => json!({}),
            Status::Error(message) => json!({"code": 2, "message": message}),
        },
    });
    if let (Some(parent), Some(object)) = (span.parent_span_id, encoded.as_object_mut()) {
        object.insert("parentSpanId".into(), format!("{parent:016x}").into());
    }
    encoded
}

/// The spans of an OTLP JSON export request (`ExportTraceServiceRequest`), as the gateway's
/// receiver reads them: any producer's, within `max_spans`. Ids must be hex (the OTLP JSON
/// encoding); a span without a `service.name` in its resource is recorded as `unknown`.
pub fn decode(body: &[u8], max_spans: usize) -> Result<Vec<SpanRecord>, String> {
    let request: Json = serde_json::from_slice(body).map_err(|e| format!("not OTLP JSON: {e}"))?;
    let mut spans = Vec::new();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("unknown")
            .chars()
            .take(64)
            .collect::<String>();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                if spans.len() == max_spans {
                    return Err(format!("more than {max_spans} spans in one request"));
                }
                spans.push(decode_span(span, &service)?);
            }
        }
    }
    Ok(spans)
}

fn decode_span(span: &Json, service: &str) -> Result<SpanRecord, String> {
    let hex = |field: &str, digits: usize| -> Result<Option<u128>, String> {
        match span[field].as_str() {
            None | Some("") => Ok(None),
            Some(text) if text.len() == digits => u128::from_str_radix(text, 16)
                .map(Some)
                .map_err(|_| format!("{field} is not {digits} hex digits")),
            Some(_) => Err(format!("{field} is not {digits} hex digits")),
        }
    };
    let nanos = |field: &str| -> u64 {
        match &span[field] {
            Json::String(text) => text.parse().unwrap_or(0),
            other => other.as_u64().unwrap_or(0),
        }
    };
    let trace_id = hex("traceId", 32)?
        .filter(|id| *id != 0)
        .ok_or("a span has no traceId")?;
    let span_id = hex("spanId", 16)?
        .and_then(|id| u64::try_from(id).ok())
        .filter(|id| *id != 0)
        .ok_or("a span has no spanId")?;
    let parent_span_id = hex("parentSpanId", 16)?.and_then(|id| u64::try_from(id).ok());
    let kind = match span["kind"].as_u64() {
        Some(2) => SpanKind::Server,
        Some(3) => SpanKind::Client,
        Some(4) => SpanKind::Producer,
        Some(5) => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    let start = nanos("startTimeUnixNano");
    let end = nanos("endTimeUnixNano").max(start);
    let text = |value: &Json, limit: usize| -> String {
        value
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(limit)
            .collect()
    };
    let attributes = span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .take(64)
        .filter_map(|a| {
            let key: String = text(&a["key"], 128);
            let value = &a["value"];
            let value = if let Some(s) = value["stringValue"].as_str() {
                Value::Str(Cow::Owned(s.chars().take(1024).collect()))
            } else if let Some(flag) = value["boolValue"].as_bool() {
                Value::Bool(flag)
            } else {
                match &value["intValue"] {
                    Json::String(n) => Value::Int(n.parse().ok()?),
                    n => Value::Int(n.as_i64()?),
                }
            };
            Some((Cow::Owned(key), value))
        })
        .collect();
    let status = match span["status"]["code"].as_u64() {
        Some(2) => Status::Error(text(&span["status"]["message"], 1024)),
        _ => Status::Unset,
    };
    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        name: Cow::Owned(text(&span["name"], 256)),
        kind,
        service: Cow::Owned(service.to_owned()),
        start_unix_nanos: start,
        duration_nanos: end - start,
        status,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(service: &'static str, id: u64) -> Arc<SpanRecord> {
        Arc::new(SpanRecord {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: id,
            parent_span_id: (id > 1).then_some(1),
            name: "GET /products/{id}".into(),
            kind: SpanKind::Server,
            service: service.into(),
            start_unix_nanos: 1_700_000_000_000_000_000,
            duration_nanos: 1_500_000,
            status: Status::Error("503 Service Unavailable".into()),
            attributes: vec![
                ("http.response.status_code".into(), Value::Int(503)),
                ("url.path".into(), Value::Str("/products/p1".into())),
                ("flotilla.cached".into(), Value::Bool(false)),
            ],
        })
    }

    #[test]
    fn spans_round_trip_through_otlp_json_grouped_by_service() {
        let spans = [span("catalog", 1), span("gateway", 2), span("catalog", 3)];
        let bodies = encode_batches(&spans);
        assert_eq!(bodies.len(), 1);
        let json: Json = serde_json::from_slice(&bodies[0].0).expect("json");
        assert_eq!(json["resourceSpans"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"],
            2
        );
        let back = decode(&bodies[0].0, 100).expect("decodes");
        assert_eq!(back.len(), 3);
        let by_id = |id: u64| back.iter().find(|s| s.span_id == id).expect("span");
        assert_eq!(by_id(2).service, "gateway");
        assert_eq!(by_id(3).parent_span_id, Some(1));
        assert_eq!(by_id(1).parent_span_id, None);
        assert_eq!(by_id(1).duration_nanos, 1_500_000);
        assert_eq!(
            by_id(1).attribute("http.response.status_code"),
            Some(&Value::Int(503))
        );
        assert_eq!(
            by_id(1).attribute("flotilla.cached"),
            Some(&Value::Bool(false))
        );
        assert_eq!(
            by_id(1).status,
            Status::Error("503 Service Unavailable".into())
        );
    }

    #[test]
    fn large_exports_are_cut_under_the_body_limit() {
        let spans: Vec<_> = (1..=400).map(|i| span("catalog", i)).collect();
        let bodies = encode_batches(&spans);
        assert!(bodies.len() > 1);
        assert!(bodies.iter().all(|(b, _)| b.len() <= MAX_BODY + 1024));
        assert_eq!(bodies.iter().map(|(_, n)| n).sum::<usize>(), 400);
    }

    #[test]
    fn bad_exports_are_refused_with_a_reason() {
        for (body, why) in [
            (&b"not json"[..], "not OTLP JSON"),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"00f067aa0ba902b7"}]}]}]}"#,
                "traceId",
            ),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"00f067aa0ba902b7"}]}]}]}"#,
                "hex",
            ),
        ] {
            let err = decode(body, 10).expect_err("refused");
            assert!(err.contains(why), "{err}");
        }
        let many = encode_batches(&[span("a", 1), span("a", 2)]);
        assert!(decode(&many[0].0, 1).is_err());
    }

    #[test]
    fn targets_follow_the_otel_variables() {
        let t = OtlpTarget::parse(
            Some("http://collector:4318/"),
            None,
            Some("authorization=Bearer%20abc, x-team = shop"),
            Some("2500"),
        )
        .expect("valid")
        .expect("set");
        assert_eq!(t.url, "http://collector:4318/v1/traces");
        assert_eq!(t.headers[0].1, "Bearer abc");
        assert_eq!(t.headers[1].0, "x-team");
        assert_eq!(t.timeout, Duration::from_millis(2500));
        let t = OtlpTarget::parse(Some("http://a:1"), Some("http://b:2/custom"), None, None)
            .expect("valid")
            .expect("set");
        assert_eq!(t.url, "http://b:2/custom");
        assert!(
            OtlpTarget::parse(None, None, None, None)
                .expect("valid")
                .is_none()
        );
        for bad in [
            OtlpTarget::parse(Some("https://x"), None, None, None),
            OtlpTarget::parse(Some("collector:4318"), None, None, None),
            OtlpTarget::parse(Some("http://x"), None, Some("novalue"), None),
            OtlpTarget::parse(Some("http://x"), None, None, Some("0")),
        ] {
            assert!(bad.is_err());
        }
    }
}
