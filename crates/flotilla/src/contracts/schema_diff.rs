//! Whether one JSON Schema can replace another without breaking whoever is on the other side.
//!
//! The answer depends on the direction the data travels, so every comparison carries one:
//! - [`Direction::Response`] (a response body, an event payload: the service writes, others
//!   read): the new schema must allow *no more* than the old one, because readers were built
//!   against the old. Removing a field, letting a required one go missing, a new enum value, a
//!   wider type, `null` where there was none, looser bounds: breaking. New fields: additive.
//! - [`Direction::Request`] (a body or parameter the service reads): the new schema must accept
//!   *everything* the old one did, because callers keep sending what they sent. A new required
//!   field, a removed field (callers still send it; the server now refuses or silently ignores
//!   it), a narrower type, a removed enum value, a new enum restriction, tighter bounds, a new
//!   pattern or format: breaking. New optional fields, wider types: additive.
//!
//! Schemas are walked as `serde_json::Value`s with `$ref`s resolved against each side's own
//! document (an OpenAPI document's `#/components/schemas/…`, an event schema's `#/$defs/…`),
//! `oneOf`/`anyOf` compared as sets of alternatives matched by type (utoipa writes an `Option`
//! as `oneOf [null, …]` or `type: [T, "null"]`), and `allOf` merged. Written by hand rather
//! than with a crate: the OpenAPI diff crates on crates.io (`openapi-diff`, `oasdiff` is Go)
//! compare documents structurally without these direction rules, or target OpenAPI 3.0 only;
//! the rules here are the point, and they fit in a few hundred lines over `serde_json`.

use serde_json::{Map, Value};
use std::collections::HashSet;

/// Which way the data described by a schema travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Callers send it, the service reads it.
    Request,
    /// The service sends it, callers or consumers read it.
    Response,
}

/// Compares schemas of two documents (the snapshot's and the current one), collecting every
/// breaking difference as `"<where>: <what>"`.
pub struct SchemaDiff<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    seen: HashSet<(String, String, Direction)>,
    /// What breaks, one line each.
    pub found: Vec<String>,
}

/// Upper bounds: a smaller value (or a new one) accepts less.
const UPPER: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
/// Lower bounds: a larger value (or a new one) accepts less.
const LOWER: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
/// Longest chain of `$ref`s followed before giving up (a reference loop).
const MAX_REF_HOPS: usize = 32;

impl<'a> SchemaDiff<'a> {
    /// A diff whose `$ref`s resolve against `old_root` and `new_root`.
    pub fn new(old_root: &'a Value, new_root: &'a Value) -> Self {
        Self {
            old_root,
            new_root,
            seen: HashSet::new(),
            found: Vec::new(),
        }
    }

    /// The snapshot's document.
    pub fn old_root(&self) -> &'a Value {
        self.old_root
    }

    /// The current document.
    pub fn new_root(&self) -> &'a Value {
        self.new_root
    }

    fn breaks(&mut self, at: &str, what: impl std::fmt::Display) {
        self.found.push(format!("{at}: {what}"));
    }

    /// Compares `old` with `new` (either may be a `$ref`), data travelling `dir`.
    pub fn compare(&mut self, at: &str, old: &Value, new: &Value, dir: Direction) {
        let (old, old_ref) = resolve(self.old_root, old);
        let (new, new_ref) = resolve(self.new_root, new);
        if let (Some(o), Some(n)) = (&old_ref, &new_ref) {
            // Each pair of named schemas once per direction: recursive types terminate, and a
            // type used in ten places is reported where it is first met.
            if !self.seen.insert((o.clone(), n.clone(), dir)) {
                return;
            }
        }
        let old_variants = variants(self.old_root, &old);
        let new_variants = variants(self.new_root, &new);
        match dir {
            Direction::Response => {
                // Everything the new schema can produce, the old one described.
                for n in &new_variants {
                    if !self.match_variant(at, n, &old_variants, dir) {
                        self.breaks(at, format!("may now be {}", kind_label(n)));
                    }
                }
            }
            Direction::Request => {
                // Everything the old schema accepted, the new one accepts.
                for o in &old_variants {
                    if !self.match_variant(at, o, &new_variants, dir) {
                        self.breaks(at, format!("no longer accepts {}", kind_label(o)));
                    }
                }
            }
        }
    }

    /// Compares `variant` (the new side's for a response, the old side's for a request) with
    /// the alternative of the other side that fits it best: of the candidates of a compatible
    /// type, the one that leaves the fewest breaking differences (`oneOf` may hold several of
    /// one type, such as `429` and `500..=599`). False when no candidate has a compatible type.
    fn match_variant(
        &mut self,
        at: &str,
        variant: &Value,
        candidates: &[Value],
        dir: Direction,
    ) -> bool {
        let mut best: Option<SchemaDiff<'a>> = None;
        for candidate in candidates.iter().filter(|c| compatible(variant, c)) {
            let mut trial = SchemaDiff {
                old_root: self.old_root,
                new_root: self.new_root,
                seen: self.seen.clone(),
                found: Vec::new(),
            };
            let (old, new) = match dir {
                Direction::Response => (candidate, variant),
                Direction::Request => (variant, candidate),
            };
            trial.compare_same_kind(at, old, new, dir);
            if best
                .as_ref()
                .is_none_or(|b| trial.found.len() < b.found.len())
            {
                best = Some(trial);
            }
        }
        match best {
            Some(best) => {
                self.seen = best.seen;
                self.found.extend(best.found);
                true
            }
            None => false,
        }
    }

    /// Compares two alternatives of the same kind (type).
    fn compare_same_kind(&mut self, at: &str, old: &Value, new: &Value, dir: Direction) {
        self.compare_enums(at, old, new, dir);
        self.compare_bounds(at, old, new, dir);
        for key in ["pattern", "format"] {
            match (old.get(key), new.get(key), dir) {
                (Some(o), Some(n), _) if o != n => self.breaks(at, format!("{key} {o} → {n}")),
                (None, Some(n), Direction::Request) => self.breaks(at, format!("new {key} {n}")),
                (Some(o), None, Direction::Response) => {
                    self.breaks(at, format!("{key} {o} no longer promised"))
                }
                _ => {}
            }
        }
        if kind(old) == "object" {
            self.compare_objects(at, old, new, dir);
        }
        if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
            self.compare(&format!("{at}[]"), o, n, dir);
        }
    }

    fn compare_enums(&mut self, at: &str, old: &Value, new: &Value, dir: Direction) {
        let (old_values, new_values) = (allowed_values(old), allowed_values(new));
        match (old_values, new_values, dir) {
            (Some(o), Some(n), Direction::Response) => {
                for value in n.iter().filter(|v| !o.contains(v)) {
                    self.breaks(at, format!("new value {value} (readers do not know it)"));
                }
            }
            (Some(o), Some(n), Direction::Request) => {
                for value in o.iter().filter(|v| !n.contains(v)) {
                    self.breaks(at, format!("value {value} no longer accepted"));
                }
            }
            (Some(o), None, Direction::Response) => {
                self.breaks(at, format!("no longer restricted to {}", Value::Array(o)))
            }
            (None, Some(n), Direction::Request) => {
                self.breaks(at, format!("now restricted to {}", Value::Array(n)))
            }
            _ => {}
        }
    }

    fn compare_bounds(&mut self, at: &str, old: &Value, new: &Value, dir: Direction) {
        for (keys, upper) in [(UPPER, true), (LOWER, false)] {
            for key in keys {
                let o = old.get(*key).and_then(Value::as_f64);
                let n = new.get(*key).and_then(Value::as_f64);
                // Does the new bound accept less than the old one?
                let tighter = match (o, n) {
                    (Some(o), Some(n)) => (upper && n < o) || (!upper && n > o),
                    (None, Some(_)) => true,
                    _ => false,
                };
                let looser = match (o, n) {
                    (Some(o), Some(n)) => (upper && n > o) || (!upper && n < o),
                    (Some(_), None) => true,
                    _ => false,
                };
                let show = |v: Option<f64>| v.map_or("none".to_owned(), |v| v.to_string());
                if (dir == Direction::Request && tighter) || (dir == Direction::Response && looser)
                {
                    self.breaks(at, format!("{key} {} → {}", show(o), show(n)));
                }
            }
        }
    }

    fn compare_objects(&mut self, at: &str, old: &Value, new: &Value, dir: Direction) {
        let empty = Map::new();
        let old_props = old
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let new_props = new
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let (old_required, new_required) = (required(old), required(new));
        for (name, old_schema) in old_props {
            let here = format!("{at}.{name}");
            match new_props.get(name) {
                None => match dir {
                    Direction::Response => self.breaks(&here, "field removed"),
                    Direction::Request => self.breaks(
                        &here,
                        "field removed (callers still send it: refused or silently ignored)",
                    ),
                },
                Some(new_schema) => {
                    let was = old_required.contains(name.as_str());
                    let is = new_required.contains(name.as_str());
                    if dir == Direction::Response && was && !is {
                        self.breaks(&here, "may now be absent (was required)");
                    }
                    if dir == Direction::Request && !was && is {
                        self.breaks(&here, "now required");
                    }
                    self.compare(&here, old_schema, new_schema, dir);
                }
            }
        }
        if dir == Direction::Request {
            for name in new_props.keys().filter(|n| !old_props.contains_key(*n)) {
                if new_required.contains(name.as_str()) {
                    self.breaks(&format!("{at}.{name}"), "new required field");
                }
            }
        }
        let old_extra = old.get("additionalProperties");
        let new_extra = new.get("additionalProperties");
        let closed = |extra: Option<&Value>| extra == Some(&Value::Bool(false));
        match dir {
            Direction::Request if closed(new_extra) && !closed(old_extra) => {
                self.breaks(at, "unknown fields now refused")
            }
            Direction::Response if closed(old_extra) && !closed(new_extra) => {
                self.breaks(at, "may now hold fields beyond those listed")
            }
            _ => {}
        }
        if let (Some(o @ Value::Object(_)), Some(n @ Value::Object(_))) = (old_extra, new_extra) {
            self.compare(&format!("{at}.*"), o, n, dir);
        }
    }
}

/// Follows `schema`'s `$ref`s within `root`; returns the schema and the first reference taken.
/// An unresolvable reference stays as it is (and so matches only the same reference).
pub fn resolve(root: &Value, schema: &Value) -> (Value, Option<String>) {
    let mut current = schema;
    let mut first = None;
    for _ in 0..MAX_REF_HOPS {
        let Some(target) = current.get("$ref").and_then(Value::as_str) else {
            break;
        };
        first.get_or_insert_with(|| target.to_owned());
        match target
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
        {
            Some(next) => current = next,
            None => break,
        }
    }
    (current.clone(), first)
}

/// The alternatives a schema allows: the branches of `oneOf`/`anyOf` (flattened), each
/// type of a `type` list as an alternative of its own, `allOf` merged into one.
fn variants(root: &Value, schema: &Value) -> Vec<Value> {
    let schema = merge_all_of(root, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return branches
                .iter()
                .flat_map(|branch| variants(root, &resolve(root, branch).0))
                .collect();
        }
    }
    match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| {
                let mut one = schema.clone();
                one["type"] = t.clone();
                one
            })
            .collect(),
        _ => vec![schema],
    }
}

/// `allOf` folded into one schema: properties and `required` united, other keys kept.
fn merge_all_of(root: &Value, schema: &Value) -> Value {
    let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
        return schema.clone();
    };
    let mut merged = schema.clone();
    if let Some(object) = merged.as_object_mut() {
        object.remove("allOf");
    }
    for part in parts {
        let part = merge_all_of(root, &resolve(root, part).0);
        let Some(part) = part.as_object() else {
            continue;
        };
        for (key, value) in part {
            match (key.as_str(), merged.get_mut(key.as_str())) {
                ("properties", Some(Value::Object(props))) => {
                    if let Some(more) = value.as_object() {
                        props.extend(more.clone());
                    }
                }
                ("required", Some(Value::Array(names))) => {
                    if let Some(more) = value.as_array() {
                        names.extend(
                            more.iter()
                                .filter(|n| !names.contains(n))
                                .cloned()
                                .collect::<Vec<_>>(),
                        );
                    }
                }
                (_, None) => {
                    merged[key.as_str()] = value.clone();
                }
                _ => {}
            }
        }
    }
    merged
}

/// The type of one alternative: its `type`, else what its keywords imply, else `any`.
fn kind(schema: &Value) -> &str {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        return t;
    }
    if schema.get("properties").is_some() {
        return "object";
    }
    if schema.get("items").is_some() {
        return "array";
    }
    if let Some(values) = allowed_values(schema)
        && values.iter().all(Value::is_string)
    {
        return "string";
    }
    "any"
}

fn kind_label(schema: &Value) -> String {
    match kind(schema) {
        "null" => "null".to_owned(),
        "any" => "anything (no type declared)".to_owned(),
        other => format!("of type {other}"),
    }
}

/// Whether `candidate` (the other side's alternative) can stand for `variant`: the same type,
/// `number` for `integer` (a response that was `number` may now be the narrower `integer`; a
/// request that was `integer` is accepted by `number`), or an untyped candidate for anything.
fn compatible(variant: &Value, candidate: &Value) -> bool {
    let (k, c) = (kind(variant), kind(candidate));
    k == c || (c == "number" && k == "integer") || c == "any"
}

/// `enum`'s values, or `const` as a one-value enum.
fn allowed_values(schema: &Value) -> Option<Vec<Value>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.clone());
    }
    schema.get("const").map(|value| vec![value.clone()])
}

fn required(schema: &Value) -> HashSet<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
