//! What an operator asks for (`NewFault`, the body of `POST /admin/faults`) and what the
//! registry keeps once it has been checked (`FaultSpec`): a target, an effect, a rate and a
//! lifetime. Every rule checked here is also written into the published schema (ranges, the
//! route and upstream patterns, the accepted statuses), so a client that follows the document
//! is never refused and one that does not is always told why, field by field (422).

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::problem::{FieldError, Problem};

/// Longest fixed latency (and longest jitter) a fault may add, in ms: five minutes, beyond any
/// caller's deadline, so that a "hung" dependency can be played.
pub const MAX_LATENCY_MS: u64 = 300_000;
/// Longest a fault may live, in seconds: every fault ends on its own.
pub const MAX_FOR_SECS: u64 = 3_600;
/// A fault's lifetime when the request names none, in seconds.
pub const DEFAULT_FOR_SECS: u64 = 60;
/// Longest route pattern, in characters.
pub const MAX_ROUTE_CHARS: usize = 200;
/// Longest upstream (service) name, in characters.
pub const MAX_UPSTREAM_CHARS: usize = 63;

/// The methods a route pattern may name (`*` for any).
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*",
];
/// The characters of a route pattern's path besides ASCII letters and digits: RFC 3986's
/// `pchar` and `/`, plus `{}` for parameters.
const PATH_PUNCTUATION: &str = "-._~!$&'()*+,;=:@%/{}";

/// `POST /admin/faults`: a fault to inject until it expires.
///
/// With neither `route` nor `upstream`, the fault applies to every route this service serves
/// (except its probes, its contract and its `/admin/` routes). With `upstream`, it applies to
/// this service's calls to that service instead (only those matching `route`, when given).
/// With probability `rate`, a matching request is delayed by `latency_ms` ± `jitter_ms`, then
/// aborted (`abort`) or answered `status` instead of being served (not both: refused). A fault with no effect injects nothing and only counts the requests it matches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFault {
    /// `METHOD:/path` (or just `/path`, any method) of the routes to fault: `{name}` stands for
    /// one path segment, a final `*` for any rest (`GET:/products/{id}`, `*:/quotes*`). On the
    /// client side (with `upstream`) it is the path called on the upstream.
    #[serde(default)]
    #[schema(schema_with = route_schema, example = "GET:/products/{id}")]
    pub route: Option<String>,
    /// A peer service whose calls from this service are faulted (client side).
    #[serde(default)]
    #[schema(schema_with = upstream_schema, example = "shipping")]
    pub upstream: Option<String>,
    /// Delay added before the request is served, in ms (default 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 300_000, example = 5000)]
    pub latency_ms: u64,
    /// The delay varies uniformly by up to this much either way, in ms (never below 0).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 300_000, example = 1000)]
    pub jitter_ms: u64,
    /// Answer this status (429 or 500–599, a problem+json saying the fault was injected)
    /// instead of serving the request.
    #[serde(default)]
    #[schema(schema_with = status_schema, example = 503)]
    pub status: Option<u16>,
    /// Drop the connection without an answer instead of serving the request (the caller sees
    /// a reset connection).
    #[serde(default)]
    pub abort: bool,
    /// Share of matching requests the fault acts on, 0 to 1 (default 1).
    #[serde(default = "always")]
    #[schema(minimum = 0, maximum = 1, default = 1.0, example = 0.5)]
    pub rate: f64,
    /// Seconds until the fault expires, 1 to 3600 (default 60).
    #[serde(default = "default_for")]
    #[schema(minimum = 1, maximum = 3600, default = 60, example = 60)]
    pub for_secs: u64,
}

fn always() -> f64 {
    1.0
}

fn default_for() -> u64 {
    DEFAULT_FOR_SECS
}

/// The route rule as a schema: the pattern [`RoutePattern::parse`] accepts.
fn route_schema() -> Schema {
    let methods = METHODS
        .iter()
        .map(|m| m.replace('*', "\\*"))
        .collect::<Vec<_>>()
        .join("|");
    let pattern = format!("^(?:(?:{methods}):)?/[A-Za-z0-9\\-._~!$&'()*+,;=:@%/{{}}]*$");
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .pattern(Some(pattern))
            .max_length(Some(MAX_ROUTE_CHARS))
            .description(Some(
                "`METHOD:/path` or `/path`: `{name}` is one path segment, a final `*` any rest",
            ))
            .build(),
    )
}

/// The upstream rule as a schema: a service name.
fn upstream_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .pattern(Some("^[a-z][a-z0-9_-]*$"))
            .max_length(Some(MAX_UPSTREAM_CHARS))
            .description(Some("A peer service's name, e.g. `shipping`"))
            .build(),
    )
}

/// The status rule as a schema: 429, or 500 to 599.
fn status_schema() -> Schema {
    let integer = || ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer));
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(RefOr::T(Schema::Object(
                integer().minimum(Some(429)).maximum(Some(429)).build(),
            )))
            .item(RefOr::T(Schema::Object(
                integer().minimum(Some(500)).maximum(Some(599)).build(),
            )))
            .item(RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Null))
                    .build(),
            )))
            .description(Some("429, or 500 to 599"))
            .build(),
    )
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Requests this service serves (all of its routes when `None`).
    Served(Option<RoutePattern>),
    /// Calls this service makes to `upstream` (all of them when the route is `None`).
    Upstream {
        /// The peer's name.
        upstream: String,
        /// The calls' method and path.
        route: Option<RoutePattern>,
    },
}

/// What a firing fault does after its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Close the connection without an answer.
    Abort,
    /// Answer this status.
    Status(StatusCode),
}

/// A checked fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Which requests.
    pub target: Target,
    /// Fixed delay.
    pub latency: Duration,
    /// Uniform variation of the delay, either way.
    pub jitter: Duration,
    /// What happens after the delay, if anything but serving the request.
    pub failure: Option<Failure>,
    /// Probability of acting on a matching request.
    pub rate: f64,
    /// Lifetime.
    pub lifetime: Duration,
}

impl NewFault {
    /// The fault this request describes, or a 422 listing every invalid field.
    pub fn check(&self) -> Result<FaultSpec, Problem> {
        let mut errors = Vec::new();
        let mut invalid = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            })
        };
        let route = match self.route.as_deref().map(RoutePattern::parse) {
            Some(Err(message)) => {
                invalid("route", message);
                None
            }
            Some(Ok(route)) => Some(route),
            None => None,
        };
        if let Some(upstream) = &self.upstream
            && let Err(message) = check_upstream(upstream)
        {
            invalid("upstream", message);
        }
        for (field, value) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
        ] {
            if value > MAX_LATENCY_MS {
                invalid(
                    field,
                    format!("must be at most {MAX_LATENCY_MS} (5 minutes)"),
                );
            }
        }
        let status = match self.status {
            Some(code) if code == 429 || (500..=599).contains(&code) => {
                StatusCode::from_u16(code).ok()
            }
            Some(_) => {
                invalid("status", "must be 429 or 500 to 599".to_owned());
                None
            }
            None => None,
        };
        if self.abort && self.status.is_some() {
            // Which one was meant cannot be told: refused rather than one silently dropped.
            for field in ["abort", "status"] {
                invalid(
                    field,
                    "abort and status cannot be given together: an aborted request gets no answer"
                        .to_owned(),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.rate) {
            invalid("rate", "must be from 0 to 1".to_owned());
        }
        if !(1..=MAX_FOR_SECS).contains(&self.for_secs) {
            invalid(
                "for_secs",
                format!("must be from 1 to {MAX_FOR_SECS} (an hour): every fault expires"),
            );
        }
        if !errors.is_empty() {
            return Err(Problem::invalid_fields(errors));
        }
        let target = match &self.upstream {
            Some(upstream) => Target::Upstream {
                upstream: upstream.clone(),
                route,
            },
            None => Target::Served(route),
        };
        let failure = if self.abort {
            Some(Failure::Abort)
        } else {
            status.map(Failure::Status)
        };
        Ok(FaultSpec {
            target,
            latency: Duration::from_millis(self.latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            failure,
            // -0.0 is 0 (and is echoed as 0).
            rate: self.rate + 0.0,
            lifetime: Duration::from_secs(self.for_secs),
        })
    }
}

/// The integer fields and the values they take: a value no integer of the field's type holds
/// (negative, fractional, too large) is refused with the field's real range, not the type's
/// (`latency_ms: -1` was "not a whole number from 0 to 18446744073709551615").
const WHOLE_FIELDS: [(&str, u64, &str); 4] = [
    ("latency_ms", u64::MAX, "a whole number from 0 to 300000"),
    ("jitter_ms", u64::MAX, "a whole number from 0 to 300000"),
    (
        "status",
        u16::MAX as u64,
        "429, or a whole number from 500 to 599",
    ),
    ("for_secs", u64::MAX, "a whole number from 1 to 3600"),
];

/// What a fault is checked against beyond its own fields: the service it is injected into
/// and, when known, the upstreams that service calls.
#[derive(Debug, Clone, Copy)]
pub struct FaultContext<'a> {
    /// The service whose faults these are.
    pub service: &'a str,
    /// The peers it calls (`None`: not known, any well-formed name is taken).
    pub upstreams: Option<&'a [String]>,
}

impl NewFault {
    /// Reads the body of `POST /admin/faults` (an object) and checks it in `context`: the fault,
    /// or a 422 naming every invalid field.
    pub fn read(
        mut body: serde_json::Map<String, serde_json::Value>,
        context: FaultContext<'_>,
    ) -> Result<FaultSpec, Problem> {
        let mut errors = Vec::new();
        for (field, max, range) in WHOLE_FIELDS {
            let whole = match body.get(field) {
                None | Some(serde_json::Value::Null) => continue,
                Some(value) => value.as_u64().or_else(|| {
                    // 3.0 is the integer 3 to JSON Schema (`extract::read_typed` reads it so).
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                        .map(|f| f as u64)
                }),
            };
            if whole.is_none_or(|n| n > max) {
                errors.push(FieldError {
                    field: field.to_owned(),
                    message: format!("must be {range}"),
                });
                body.remove(field);
            }
        }
        let merged = |mut errors: Vec<FieldError>, problem: Problem| {
            if problem.errors.is_empty() && !errors.is_empty() {
                errors.push(FieldError {
                    field: ".".to_owned(),
                    message: problem.detail.unwrap_or_default(),
                });
                Problem::invalid_fields(errors)
            } else if errors.is_empty() {
                problem
            } else {
                errors.extend(problem.errors);
                Problem::invalid_fields(errors)
            }
        };
        let new: NewFault =
            match crate::extract::read_typed(&serde_json::Value::Object(body).to_string()) {
                Ok(new) => new,
                Err(problem) => return Err(merged(errors, problem)),
            };
        match new.check_in(context) {
            Ok(spec) if errors.is_empty() => Ok(spec),
            Ok(_) => Err(Problem::invalid_fields(errors)),
            Err(problem) => Err(merged(errors, problem)),
        }
    }

    /// [`Self::check`], and the upstream checked against `context`: not the service itself,
    /// and one it calls when that is known.
    pub fn check_in(&self, context: FaultContext<'_>) -> Result<FaultSpec, Problem> {
        let checked = self.check();
        let upstream_error = self.upstream.as_deref().and_then(|upstream| {
            if check_upstream(upstream).is_err() {
                None // already said by `check`
            } else if upstream == context.service {
                Some(format!(
                    "{upstream} is this service: its own routes are faulted without upstream"
                ))
            } else {
                context
                    .upstreams
                    .filter(|known| !known.iter().any(|k| k == upstream))
                    .map(|known| {
                        if known.is_empty() {
                            format!("{} calls no other service", context.service)
                        } else {
                            format!(
                                "{} does not call {}; it calls {}",
                                context.service,
                                crate::input_message::quote(upstream),
                                known.join(", ")
                            )
                        }
                    })
            }
        });
        let Some(message) = upstream_error else {
            return checked;
        };
        let mut errors = match checked {
            Ok(_) => Vec::new(),
            Err(problem) => problem.errors,
        };
        let at = errors
            .iter()
            .position(|e| e.field != "route")
            .unwrap_or(errors.len());
        errors.insert(
            at,
            FieldError {
                field: "upstream".to_owned(),
                message,
            },
        );
        Err(Problem::invalid_fields(errors))
    }
}

fn check_upstream(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !starts_well || !rest_ok {
        return Err(format!(
            "{} is not a service name (a lower-case letter, then letters, digits, - or _)",
            crate::input_message::quote(name)
        ));
    }
    if name.len() > MAX_UPSTREAM_CHARS {
        return Err(format!("must be at most {MAX_UPSTREAM_CHARS} characters"));
    }
    Ok(())
}

/// A method and path pattern: `GET:/products/{id}`, `/quotes`, `*:/admin*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// `None` for any method.
    method: Option<Method>,
    /// The path's segments, split at `/` (the first is empty).
    segments: Vec<String>,
    /// A final `*`: the last segment is a prefix and any further segments match.
    prefix: bool,
    /// The pattern as written.
    text: String,
}

impl RoutePattern {
    /// Parses `[METHOD:]/path`; the error says what is wrong, for people.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (method, path) = match text.split_once(":/") {
            Some((method, _)) if !method.starts_with('/') => {
                (Some(method), &text[method.len() + 1..])
            }
            _ => (None, text),
        };
        let method = match method {
            None | Some("*") => None,
            Some(m) if METHODS.contains(&m) => Some(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("{} is not a method", crate::input_message::quote(m)))?,
            ),
            Some(m) => {
                return Err(format!(
                    "{} is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or * (upper case)",
                    crate::input_message::quote(m)
                ));
            }
        };
        if !path.starts_with('/') {
            return Err("must be METHOD:/path or /path (a path starts with /)".to_owned());
        }
        if let Some(bad) = path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || PATH_PUNCTUATION.contains(*c)))
        {
            return Err(format!(
                "{} may not appear in a path pattern",
                crate::input_message::quote(&bad.to_string())
            ));
        }
        if text.chars().count() > MAX_ROUTE_CHARS {
            return Err(format!("must be at most {MAX_ROUTE_CHARS} characters"));
        }
        if path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(
                "may not have . or .. segments: a request's path reaches the service resolved"
                    .to_owned(),
            );
        }
        let (path, prefix) = match path.strip_suffix('*') {
            Some(rest) => (rest, true),
            None => (path, false),
        };
        Ok(Self {
            method,
            segments: path.split('/').map(str::to_owned).collect(),
            prefix,
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `method path` is one of the routes this pattern names.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let got: Vec<&str> = path.split('/').collect();
        let n = self.segments.len();
        if got.len() < n || (!self.prefix && got.len() != n) {
            return false;
        }
        self.segments
            .iter()
            .zip(&got)
            .enumerate()
            .all(|(i, (want, got))| {
                let parameter = want.len() >= 2 && want.starts_with('{') && want.ends_with('}');
                if parameter {
                    !got.is_empty()
                } else if self.prefix && i == n - 1 {
                    got.starts_with(want.as_str())
                } else {
                    want == got
                }
            })
    }

    /// True when the pattern matches `method path` and spells the path out rather than
    /// reaching it through a parameter or a bare wildcard: `/readyz`, `GET:/ready*` name
    /// `/readyz`; `/*`, `*:/*` and `/{page}` only match it. Probes are faulted only by a route
    /// that names them.
    pub fn names(&self, method: &Method, path: &str) -> bool {
        let spelt = self
            .segments
            .iter()
            .skip(1)
            .all(|s| !(s.starts_with('{') && s.ends_with('}')))
            && self.segments.get(1).is_some_and(|first| !first.is_empty());
        spelt && self.matches(method, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: serde_json::Value) -> Result<FaultSpec, Problem> {
        serde_json::from_value::<NewFault>(json)
            .expect("well-formed")
            .check()
    }

    #[test]
    fn route_patterns_match_methods_parameters_and_prefixes() {
        let get = Method::GET;
        let exact = RoutePattern::parse("GET:/products/{id}").expect("valid");
        assert!(exact.matches(&get, "/products/p1"));
        assert!(!exact.matches(&Method::POST, "/products/p1"));
        assert!(!exact.matches(&get, "/products"));
        assert!(
            !exact.matches(&get, "/products/"),
            "a parameter is not empty"
        );
        assert!(!exact.matches(&get, "/products/p1/stock"));
        let any = RoutePattern::parse("/quotes").expect("valid");
        assert!(any.matches(&Method::POST, "/quotes"));
        assert!(!any.matches(&get, "/quotes/q1"));
        let prefix = RoutePattern::parse("*:/quotes*").expect("valid");
        assert!(prefix.matches(&get, "/quotes"));
        assert!(prefix.matches(&get, "/quotes/q1"));
        assert!(prefix.matches(&get, "/quotesx"));
        assert!(!prefix.matches(&get, "/shipments"));
        let tree = RoutePattern::parse("DELETE:/a/*").expect("valid");
        assert!(tree.matches(&Method::DELETE, "/a/b/c"));
        assert!(!tree.matches(&Method::DELETE, "/a"));
        let root = RoutePattern::parse("/*").expect("valid");
        assert!(root.matches(&get, "/anything/at/all"));
        assert!(
            RoutePattern::parse("/a:b")
                .expect("a colon in a path")
                .matches(&get, "/a:b")
        );
    }

    #[test]
    fn bad_route_patterns_say_why() {
        for (text, says) in [
            ("get:/x", "upper case"),
            ("FETCH:/x", "is not one of"),
            ("x", "starts with /"),
            ("GET:x", "starts with /"),
            ("/a b", "may not appear"),
            ("/a?b", "may not appear"),
        ] {
            let err = RoutePattern::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
        let long = format!("/{}", "a".repeat(MAX_ROUTE_CHARS));
        assert!(RoutePattern::parse(&long).is_err());
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let spec = fault(serde_json::json!({"latency_ms": 5000, "rate": 0.5})).expect("valid");
        assert_eq!(spec.target, Target::Served(None));
        assert_eq!(spec.latency, Duration::from_secs(5));
        assert_eq!(spec.lifetime, Duration::from_secs(DEFAULT_FOR_SECS));
        assert_eq!(spec.failure, None);
        let spec =
            fault(serde_json::json!({"upstream": "shipping", "abort": true})).expect("valid");
        assert_eq!(spec.failure, Some(Failure::Abort));
        assert!(
            matches!(spec.target, Target::Upstream { ref upstream, route: None } if upstream == "shipping")
        );
        let problem = fault(serde_json::json!({
            "latency_ms": MAX_LATENCY_MS + 1, "status": 404, "rate": 1.5, "for_secs": 0,
            "upstream": "Shipping", "route": "GET /x"
        }))
        .expect_err("invalid");
        assert_eq!(problem.status, 422);
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "route",
                "upstream",
                "latency_ms",
                "status",
                "rate",
                "for_secs"
            ]
        );
        assert!(fault(serde_json::json!({"for_secs": MAX_FOR_SECS + 1})).is_err());
        assert!(fault(serde_json::json!({"status": 429})).is_ok());
        assert!(fault(serde_json::json!({"status": 599, "rate": 0})).is_ok());
        assert!(serde_json::from_value::<NewFault>(serde_json::json!({"latency": 5})).is_err());
    }
}
