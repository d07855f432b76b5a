//! The breaking differences between two OpenAPI documents of one service, and between two sets
//! of its event schemas: the rules of [`super`]'s check above the level of a single schema
//! (which [`schema_diff`](super::schema_diff) judges).
//!
//! For the HTTP API, per operation (matched by method and path, path parameters by position so
//! renaming `{id}` is not a change): a removed operation; a removed parameter, a new required
//! one or one that became required; a request body that appeared as required, became required
//! or went away; a content type no longer accepted or answered; a documented status no longer
//! documented (a status that changes meaning shows as one removed and one added); a response
//! header no longer sent, or its value's schema changed as a response's would; an operation
//! that now needs a token or a scope it did not. New operations, optional parameters and
//! statuses are additive. For events: a type no longer published, a changed payload version
//! (consumers refuse versions they do not know), and the payload schema read as a response.

use serde_json::{Map, Value};

use super::schema_diff::{Direction, SchemaDiff, resolve};
use flotilla_chassis::openapi::METHODS;

/// The breaking differences from `old` to `new`, each `"<label> <METHOD> <path>: …"`.
pub fn documents(label: &str, old: &Value, new: &Value) -> Vec<String> {
    let mut diff = SchemaDiff::new(old, new);
    let mut found = Vec::new();
    let new_paths = by_template(new);
    for (template, (old_path, old_item)) in by_template(old) {
        for method in METHODS {
            let Some(old_op) = old_item.get(*method) else {
                continue;
            };
            let at = format!("{label} {} {old_path}", method.to_uppercase());
            match new_paths.iter().find(|(t, _)| *t == template) {
                Some((_, (_, new_item))) if new_item.get(*method).is_some() => {
                    let (old_params, new_params) = (
                        parameters(old, &old_item, old_op),
                        parameters(new, new_item, &new_item[*method]),
                    );
                    compare_parameters(&mut diff, &at, &old_params, &new_params);
                    compare_body(
                        &mut diff,
                        &mut found,
                        &at,
                        old,
                        old_op,
                        new,
                        &new_item[*method],
                    );
                    compare_responses(&mut diff, &mut found, &at, old_op, &new_item[*method]);
                    compare_security(&mut found, &at, old, old_op, new, &new_item[*method]);
                }
                _ => found.push(format!("{at}: operation removed")),
            }
        }
    }
    found.extend(diff.found);
    found
}

/// The breaking differences between two event sets (`{type: {version, schema}}`).
#[derive(Debug, Default)]
pub struct EventBreaks {
    /// Breaking for the service's contract: a raised `CONTRACT_VERSION` lets them through.
    pub breaking: Vec<String>,
    /// A payload that changed incompatibly under the same event version: never allowed. A
    /// consumer knows a payload only by its event's version, so an old consumer would read the
    /// new payload as the one it knows; the event's own version must be raised (and consumers
    /// taught it first), whatever the service's contract version says.
    pub same_version: Vec<String>,
}

/// The breaking differences between two event sets.
pub fn events(old: &Map<String, Value>, new: &Map<String, Value>) -> EventBreaks {
    let mut found = EventBreaks::default();
    for (event_type, old_event) in old {
        let at = format!("event {event_type}");
        let Some(new_event) = new.get(event_type) else {
            found.breaking.push(format!("{at}: no longer published"));
            continue;
        };
        let same_version = old_event["version"] == new_event["version"];
        if !same_version {
            found.breaking.push(format!(
                "{at}: payload version {} → {} (consumers refuse versions they do not know)",
                old_event["version"], new_event["version"]
            ));
        }
        let (old_schema, new_schema) = (&old_event["schema"], &new_event["schema"]);
        let mut diff = SchemaDiff::new(old_schema, new_schema);
        diff.compare(
            &format!("{at} payload"),
            old_schema,
            new_schema,
            Direction::Response,
        );
        if same_version {
            found
                .same_version
                .extend(diff.found.into_iter().map(|change| {
                    format!(
                        "{change} under the same event version {} (raise the event's version)",
                        new_event["version"]
                    )
                }));
        } else {
            found.breaking.extend(diff.found);
        }
    }
    found
}

/// The document's path items keyed by their template with parameter names erased
/// (`/orders/{}`), so that renaming a path parameter is not a removed route.
fn by_template(doc: &Value) -> Vec<(String, (String, Value))> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, item)| {
            let mut template = String::new();
            let mut in_name = false;
            for c in path.chars() {
                match c {
                    '{' => {
                        in_name = true;
                        template.push('{');
                    }
                    '}' => {
                        in_name = false;
                        template.push('}');
                    }
                    _ if in_name => {}
                    _ => template.push(c),
                }
            }
            (template, (path.clone(), resolve(doc, item).0))
        })
        .collect()
}

/// An operation's parameters (the path item's and its own, references resolved), keyed by
/// `in` and name; path parameters by position (`path#0`…).
fn parameters(doc: &Value, item: &Value, op: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut path_index = 0;
    for list in [item.get("parameters"), op.get("parameters")] {
        for param in list.and_then(Value::as_array).into_iter().flatten() {
            let param = resolve(doc, param).0;
            let location = param["in"].as_str().unwrap_or_default().to_owned();
            let key = if location == "path" {
                path_index += 1;
                format!("path#{}", path_index - 1)
            } else {
                format!("{location} {}", param["name"].as_str().unwrap_or_default())
            };
            out.retain(|(k, _)| *k != key);
            out.push((key, param));
        }
    }
    out
}

fn is_required(value: &Value) -> bool {
    value
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn compare_parameters(
    diff: &mut SchemaDiff<'_>,
    at: &str,
    old: &[(String, Value)],
    new: &[(String, Value)],
) {
    for (key, old_param) in old {
        let here = format!("{at}: parameter {key}");
        match new.iter().find(|(k, _)| k == key) {
            None => diff.found.push(format!(
                "{here}: removed (callers still send it: refused or silently ignored)"
            )),
            Some((_, new_param)) => {
                if !is_required(old_param) && is_required(new_param) {
                    diff.found.push(format!("{here}: now required"));
                }
                if let (Some(o), Some(n)) = (old_param.get("schema"), new_param.get("schema")) {
                    diff.compare(&here, o, n, Direction::Request);
                }
            }
        }
    }
    for (key, new_param) in new {
        if is_required(new_param) && !old.iter().any(|(k, _)| k == key) {
            diff.found
                .push(format!("{at}: parameter {key}: new required parameter"));
        }
    }
}

fn compare_body(
    diff: &mut SchemaDiff<'_>,
    found: &mut Vec<String>,
    at: &str,
    old_doc: &Value,
    old_op: &Value,
    new_doc: &Value,
    new_op: &Value,
) {
    let old_body = old_op.get("requestBody").map(|b| resolve(old_doc, b).0);
    let new_body = new_op.get("requestBody").map(|b| resolve(new_doc, b).0);
    let here = format!("{at}: request body");
    match (old_body, new_body) {
        (None, Some(new)) if is_required(&new) => found.push(format!("{here}: new required body")),
        (Some(_), None) => found.push(format!("{here}: removed (callers still send one)")),
        (Some(old), Some(new)) => {
            if !is_required(&old) && is_required(&new) {
                found.push(format!("{here}: now required"));
            }
            compare_content(diff, found, &here, &old, &new, Direction::Request);
        }
        _ => {}
    }
}

fn compare_responses(
    diff: &mut SchemaDiff<'_>,
    found: &mut Vec<String>,
    at: &str,
    old_op: &Value,
    new_op: &Value,
) {
    let empty = Map::new();
    let old = old_op
        .get("responses")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new = new_op
        .get("responses")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (status, old_response) in old {
        let here = format!("{at}: response {status}");
        match new.get(status) {
            None => found.push(format!("{here}: no longer documented")),
            Some(new_response) => {
                let old_response = resolve(diff.old_root(), old_response).0;
                let new_response = resolve(diff.new_root(), new_response).0;
                compare_headers(diff, found, &here, &old_response, &new_response);
                compare_content(
                    diff,
                    found,
                    &here,
                    &old_response,
                    &new_response,
                    Direction::Response,
                );
            }
        }
    }
}

/// Compares the headers a response documents: one the old side had and the new one lacks is
/// breaking (clients read it: orders' `Location` is how a pending order is polled); one both
/// have has its schema compared as a response. Header names compare case-insensitively.
fn compare_headers(
    diff: &mut SchemaDiff<'_>,
    found: &mut Vec<String>,
    at: &str,
    old: &Value,
    new: &Value,
) {
    let Some(old_headers) = old.get("headers").and_then(Value::as_object) else {
        return;
    };
    let new_headers = new.get("headers").and_then(Value::as_object);
    for (name, old_header) in old_headers {
        let new_header = new_headers.and_then(|headers| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, h)| h)
        });
        match new_header {
            None => found.push(format!("{at}: header {name} no longer sent")),
            Some(new_header) => {
                let old_header = resolve(diff.old_root(), old_header).0;
                let new_header = resolve(diff.new_root(), new_header).0;
                if let (Some(o), Some(n)) = (old_header.get("schema"), new_header.get("schema")) {
                    diff.compare(&format!("{at} header {name}"), o, n, Direction::Response);
                }
            }
        }
    }
}

/// Compares the media types of a request body or response: one the old side had and the new
/// one lacks is breaking; common ones have their schemas compared.
fn compare_content(
    diff: &mut SchemaDiff<'_>,
    found: &mut Vec<String>,
    at: &str,
    old: &Value,
    new: &Value,
    dir: Direction,
) {
    let empty = Map::new();
    let old_content = old
        .get("content")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_content = new
        .get("content")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (media, old_media) in old_content {
        match new_content.get(media) {
            None if dir == Direction::Request => {
                found.push(format!("{at}: {media} no longer accepted"))
            }
            None => found.push(format!("{at}: {media} no longer answered")),
            Some(new_media) => {
                if let (Some(o), Some(n)) = (old_media.get("schema"), new_media.get("schema")) {
                    diff.compare(&format!("{at} ({media})"), o, n, dir);
                }
            }
        }
    }
}

/// The security requirements that apply to an operation: its own, else the document's.
fn security(doc: &Value, op: &Value) -> Vec<Map<String, Value>> {
    op.get("security")
        .or_else(|| doc.get("security"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default()
}

fn compare_security(
    found: &mut Vec<String>,
    at: &str,
    old_doc: &Value,
    old_op: &Value,
    new_doc: &Value,
    new_op: &Value,
) {
    let (old, new) = (security(old_doc, old_op), security(new_doc, new_op));
    // No requirement, or an empty one among them, means a caller may come without credentials.
    let open = |reqs: &[Map<String, Value>]| reqs.is_empty() || reqs.iter().any(Map::is_empty);
    if open(&old) && !open(&new) {
        found.push(format!("{at}: now requires credentials"));
        return;
    }
    let scopes = |reqs: &[Map<String, Value>]| -> Vec<String> {
        reqs.iter()
            .flat_map(|req| {
                req.iter().flat_map(|(scheme, scopes)| {
                    scopes
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(move |scope| format!("{scheme}:{scope}"))
                })
            })
            .collect()
    };
    let old_scopes = scopes(&old);
    for scope in scopes(&new) {
        if !old_scopes.contains(&scope) {
            found.push(format!("{at}: now requires scope {scope}"));
        }
    }
}
