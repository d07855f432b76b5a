//! The toxics: what a fault does to the bytes of one direction of a link, named and shaped as
//! Toxiproxy names them (`type`, `stream`, `toxicity`, `attributes`), so that a test or an
//! operator who knows Toxiproxy knows this proxy. Every attribute is a whole number with a
//! documented range; input is checked here, once, for the HTTP API and the library alike.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// Which bytes of a link a toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → server: what the proxy's clients send.
    Upstream,
    /// Server → client: what the upstream answers (Toxiproxy's default).
    Downstream,
}

impl Stream {
    /// The name in JSON and in default toxic names.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "upstream" => Ok(Stream::Upstream),
            "downstream" => Ok(Stream::Downstream),
            other => Err(Error::invalid(
                "stream",
                format!("{other:?} is not a stream; expected upstream or downstream"),
            )),
        }
    }
}

/// What a toxic does, with its attributes (Toxiproxy's names and units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToxicKind {
    /// Each chunk is delayed `latency` ms ± up to `jitter` ms after it was read.
    Latency { latency: u64, jitter: u64 },
    /// At most `rate` KB/s (1 KB = 1000 bytes) pass; 0 is no limit.
    Bandwidth { rate: u64 },
    /// The close (end of stream) is passed on `delay` ms late.
    SlowClose { delay: u64 },
    /// No data passes; the connection closes `timeout` ms after the last chunk dropped (or after
    /// the toxic took effect); 0 is a black hole that never closes. Removing the toxic closes
    /// the connections it held, as Toxiproxy's does.
    Timeout { timeout: u64 },
    /// The first chunk is dropped and the connection is reset (RST, `SO_LINGER` 0) `timeout` ms
    /// later.
    ResetPeer { timeout: u64 },
    /// Chunks are cut into slices of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: u64,
    },
    /// `bytes` bytes pass, then the connection closes.
    LimitData { bytes: u64 },
}

/// One attribute of a toxic type: its name, its range and its default.
struct Attribute {
    name: &'static str,
    min: u64,
    max: u64,
    default: u64,
}

const HOUR_MS: u64 = 3_600_000;

const fn attr(name: &'static str, min: u64, max: u64, default: u64) -> Attribute {
    Attribute {
        name,
        min,
        max,
        default,
    }
}

/// Every toxic type with its attributes, in the order [`ToxicKind::values`] lists them.
const TYPES: &[(&str, &[Attribute])] = &[
    (
        "latency",
        &[
            attr("latency", 0, HOUR_MS, 0),
            attr("jitter", 0, HOUR_MS, 0),
        ],
    ),
    ("bandwidth", &[attr("rate", 0, 10_000_000, 0)]),
    ("slow_close", &[attr("delay", 0, HOUR_MS, 0)]),
    ("timeout", &[attr("timeout", 0, HOUR_MS, 0)]),
    ("reset_peer", &[attr("timeout", 0, HOUR_MS, 0)]),
    (
        "slicer",
        &[
            attr("average_size", 1, 1 << 20, 1),
            attr("size_variation", 0, 1 << 20, 0),
            attr("delay", 0, 60_000_000, 0),
        ],
    ),
    ("limit_data", &[attr("bytes", 0, 1 << 50, 0)]),
];

fn type_names() -> String {
    TYPES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ToxicKind {
    /// Toxiproxy's name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }

    fn values(&self) -> Vec<u64> {
        match *self {
            ToxicKind::Latency { latency, jitter } => vec![latency, jitter],
            ToxicKind::Bandwidth { rate } => vec![rate],
            ToxicKind::SlowClose { delay } => vec![delay],
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => vec![timeout],
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![average_size, size_variation, delay],
            ToxicKind::LimitData { bytes } => vec![bytes],
        }
    }

    fn from_values(type_name: &str, v: &[u64]) -> Option<Self> {
        let at = |i: usize| v.get(i).copied();
        Some(match type_name {
            "latency" => ToxicKind::Latency {
                latency: at(0)?,
                jitter: at(1)?,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: at(0)? },
            "slow_close" => ToxicKind::SlowClose { delay: at(0)? },
            "timeout" => ToxicKind::Timeout { timeout: at(0)? },
            "reset_peer" => ToxicKind::ResetPeer { timeout: at(0)? },
            "slicer" => ToxicKind::Slicer {
                average_size: at(0)?,
                size_variation: at(1)?,
                delay: at(2)?,
            },
            "limit_data" => ToxicKind::LimitData { bytes: at(0)? },
            _ => return None,
        })
    }

    fn spec(type_name: &str) -> Result<&'static [Attribute], Error> {
        TYPES
            .iter()
            .find(|(name, _)| *name == type_name)
            .map(|(_, attrs)| *attrs)
            .ok_or_else(|| {
                Error::invalid(
                    "type",
                    format!(
                        "{type_name:?} is not a toxic type; expected one of {}",
                        type_names()
                    ),
                )
            })
    }

    /// Reads a type and its JSON attributes; attributes not given keep the values of `base`
    /// (an update) or their defaults (a new toxic).
    pub fn from_json(
        type_name: &str,
        attributes: Option<&Value>,
        base: Option<&ToxicKind>,
    ) -> Result<Self, Error> {
        let spec = Self::spec(type_name)?;
        let mut values: Vec<u64> = match base {
            Some(base) => base.values(),
            None => spec.iter().map(|a| a.default).collect(),
        };
        match attributes {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let index = spec.iter().position(|a| a.name == key).ok_or_else(|| {
                        let known: Vec<&str> = spec.iter().map(|a| a.name).collect();
                        Error::invalid(
                            format!("attributes.{key}"),
                            format!(
                                "{type_name} has no attribute {key:?}; expected {}",
                                known.join(", ")
                            ),
                        )
                    })?;
                    values[index] = whole_number(value).ok_or_else(|| {
                        Error::invalid(format!("attributes.{key}"), "must be a whole number")
                    })?;
                }
            }
            Some(_) => return Err(Error::invalid("attributes", "must be an object")),
        }
        let kind = Self::from_values(type_name, &values)
            .ok_or_else(|| Error::invalid("type", "unknown toxic type"))?;
        kind.validate()?;
        Ok(kind)
    }

    /// Checks every attribute against its range.
    pub fn validate(&self) -> Result<(), Error> {
        let spec = Self::spec(self.type_name())?;
        for (a, value) in spec.iter().zip(self.values()) {
            if value < a.min || value > a.max {
                return Err(Error::invalid(
                    format!("attributes.{}", a.name),
                    format!("must be from {} to {}, not {value}", a.min, a.max),
                ));
            }
        }
        Ok(())
    }

    /// The attributes as Toxiproxy writes them.
    pub fn attributes(&self) -> Map<String, Value> {
        let spec = Self::spec(self.type_name()).unwrap_or(&[]);
        spec.iter()
            .zip(self.values())
            .map(|(a, v)| (a.name.to_owned(), Value::from(v)))
            .collect()
    }
}

/// A number written `3` or `3.0`, non-negative and whole.
fn whole_number(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f < 2f64.powi(53)).then_some(f as u64)
}

/// A named toxic on one stream of a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique within its proxy; `<type>_<stream>` when not given.
    pub name: String,
    /// The direction it acts on.
    pub stream: Stream,
    /// The probability that it acts on a given connection, drawn once per connection (and again
    /// when the toxic is updated), as Toxiproxy does.
    pub toxicity: f64,
    /// What it does.
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic on the downstream with toxicity 1, named `<type>_downstream`.
    pub fn new(kind: ToxicKind) -> Self {
        Self {
            name: format!("{}_{}", kind.type_name(), Stream::Downstream.as_str()),
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// This toxic on `stream`; a default name follows the stream.
    pub fn on(mut self, stream: Stream) -> Self {
        if self.name == format!("{}_{}", self.kind.type_name(), self.stream.as_str()) {
            self.name = format!("{}_{}", self.kind.type_name(), stream.as_str());
        }
        self.stream = stream;
        self
    }

    /// This toxic named `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// This toxic with the given probability per connection.
    pub fn with_toxicity(mut self, toxicity: f64) -> Self {
        self.toxicity = toxicity;
        self
    }

    /// Checks the name, the toxicity and the attributes.
    pub fn validate(&self) -> Result<(), Error> {
        validate_name("name", &self.name)?;
        validate_toxicity(self.toxicity)?;
        self.kind.validate()
    }

    /// Reads a toxic from its Toxiproxy JSON form (`name`, `type`, `stream`, `toxicity`,
    /// `attributes`), with Toxiproxy's defaults for what is left out.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(Error::invalid("body", "a toxic is a JSON object"));
        };
        for key in fields.keys() {
            if !["name", "type", "stream", "toxicity", "attributes"].contains(&key.as_str()) {
                return Err(Error::invalid(
                    key.clone(),
                    "unknown field; expected name, type, stream, toxicity, attributes",
                ));
            }
        }
        let type_name = match fields.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => return Err(Error::invalid("type", "must be a string")),
            None => return Err(Error::invalid("type", "is required")),
        };
        let kind = ToxicKind::from_json(type_name, fields.get("attributes"), None)?;
        let stream = match fields.get("stream") {
            None | Some(Value::Null) => Stream::Downstream,
            Some(Value::String(s)) => Stream::parse(s)?,
            Some(_) => return Err(Error::invalid("stream", "must be a string")),
        };
        let mut toxic = Toxic::new(kind).on(stream);
        match fields.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) => toxic.name = name.clone(),
            Some(_) => return Err(Error::invalid("name", "must be a string")),
        }
        if let Some(t) = read_toxicity(fields.get("toxicity"))? {
            toxic.toxicity = t;
        }
        toxic.validate()?;
        Ok(toxic)
    }

    /// This toxic changed by an update body: `toxicity` and `attributes` (merged over the
    /// current ones); `type` and `stream` may be repeated but not changed.
    pub fn updated(&self, body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(Error::invalid("body", "a toxic update is a JSON object"));
        };
        let mut next = self.clone();
        for (key, value) in fields {
            match key.as_str() {
                "toxicity" => {
                    if let Some(t) = read_toxicity(Some(value))? {
                        next.toxicity = t;
                    }
                }
                "attributes" => {
                    next.kind =
                        ToxicKind::from_json(self.kind.type_name(), Some(value), Some(&self.kind))?
                }
                "name" if value.as_str() == Some(self.name.as_str()) => {}
                "type" if value.as_str() == Some(self.kind.type_name()) => {}
                "stream" if value.as_str() == Some(self.stream.as_str()) => {}
                "name" | "type" | "stream" => {
                    return Err(Error::invalid(
                        key.clone(),
                        "cannot be changed; remove the toxic and add a new one",
                    ));
                }
                _ => {
                    return Err(Error::invalid(
                        key.clone(),
                        "unknown field; expected toxicity, attributes",
                    ));
                }
            }
        }
        next.validate()?;
        Ok(next)
    }

    /// The Toxiproxy JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

impl Serialize for Toxic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

fn read_toxicity(value: Option<&Value>) -> Result<Option<f64>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let t = v
                .as_f64()
                .ok_or_else(|| Error::invalid("toxicity", "must be a number from 0 to 1"))?;
            validate_toxicity(t)?;
            Ok(Some(t))
        }
    }
}

fn validate_toxicity(t: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(Error::invalid(
            "toxicity",
            format!("must be from 0 to 1, not {t}"),
        ))
    }
}

/// Names go into URL paths: 1 to 100 of letters, digits, `_`, `-` and `.`.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{name:?} is not a name: 1 to 100 letters, digits, '_', '-' or '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_toxiproxy_json_with_its_defaults() {
        let t = Toxic::from_json(&json!({"type": "latency", "attributes": {"latency": 100}}))
            .expect("valid");
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.kind,
            ToxicKind::Latency {
                latency: 100,
                jitter: 0
            }
        );
        let t = Toxic::from_json(&json!({"type": "timeout", "stream": "upstream"})).expect("ok");
        assert_eq!(t.name, "timeout_upstream");
        assert_eq!(t.to_json()["attributes"], json!({"timeout": 0}));
    }

    #[test]
    fn refuses_bad_input_with_the_field_named() {
        let field = |body: Value| match Toxic::from_json(&body) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(field(json!({"type": "nope"})), "type");
        assert_eq!(field(json!({})), "type");
        assert_eq!(
            field(json!({"type": "latency", "stream": "sideways"})),
            "stream"
        );
        assert_eq!(
            field(json!({"type": "latency", "toxicity": 1.5})),
            "toxicity"
        );
        assert_eq!(
            field(json!({"type": "latency", "toxicity": "x"})),
            "toxicity"
        );
        assert_eq!(
            field(json!({"type": "latency", "attributes": {"latency": -1}})),
            "attributes.latency"
        );
        assert_eq!(
            field(json!({"type": "latency", "attributes": {"rate": 1}})),
            "attributes.rate"
        );
        assert_eq!(
            field(json!({"type": "slicer", "attributes": {"average_size": 0}})),
            "attributes.average_size"
        );
        assert_eq!(field(json!({"type": "latency", "name": "a/b"})), "name");
        assert_eq!(field(json!({"type": "latency", "colour": 1})), "colour");
    }

    #[test]
    fn an_update_merges_attributes_and_keeps_type_and_stream() {
        let t = Toxic::from_json(
            &json!({"type": "latency", "attributes": {"latency": 100, "jitter": 5}}),
        )
        .expect("valid");
        let u = t
            .updated(&json!({"attributes": {"jitter": 10}, "toxicity": 0.5}))
            .expect("valid");
        assert_eq!(
            u.kind,
            ToxicKind::Latency {
                latency: 100,
                jitter: 10
            }
        );
        assert_eq!(u.toxicity, 0.5);
        assert!(t.updated(&json!({"stream": "upstream"})).is_err());
        assert!(t.updated(&json!({"type": "latency"})).is_ok());
    }
}
