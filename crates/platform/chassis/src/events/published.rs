//! What a service declares about the events it publishes, so that their payloads are part of its
//! versioned contract like its HTTP API: each type with the payload version it writes and the
//! JSON Schema of that payload, derived from the same `ToSchema` type the publisher serialises.
//! The `flotilla contracts` command snapshots these schemas and diffs them on every change, as
//! consumers in other deployments read the payloads with the schema they were built against.

use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// One event type a service publishes.
#[derive(Debug, Clone, Copy)]
pub struct PublishedEvent {
    /// The event's `type`, e.g. `order.confirmed`.
    pub event_type: &'static str,
    /// The payload version the service writes (consumers refuse any other).
    pub version: u32,
    /// The payload's JSON Schema, usually [`payload_schema::<T>`](payload_schema).
    pub schema: fn() -> Value,
}

/// The JSON Schema (2020-12) of payload type `T`: its own schema, with every type it refers to
/// under `$defs` and references pointing there, so the document stands alone.
pub fn payload_schema<T: ToSchema>() -> Value {
    let mut named = Vec::new();
    T::schemas(&mut named);
    let mut defs = Map::new();
    for (name, schema) in named {
        defs.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    let mut root = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    if let Value::Object(object) = &mut root {
        object.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        object.insert("title".into(), json!(T::name()));
        if !defs.is_empty() {
            object.insert("$defs".into(), Value::Object(defs));
        }
    }
    point_refs_at_defs(&mut root);
    root
}

/// Rewrites utoipa's `#/components/schemas/X` references into `#/$defs/X`.
fn point_refs_at_defs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                match inner {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/components/schemas/") {
                            *target = format!("#/$defs/{name}");
                        }
                    }
                    _ => point_refs_at_defs(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(point_refs_at_defs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Money;

    #[derive(serde::Serialize, ToSchema)]
    #[allow(dead_code)]
    struct Paid {
        order_id: String,
        total: Money,
    }

    #[test]
    fn a_payload_schema_stands_alone_with_its_referenced_types_under_defs() {
        let schema = payload_schema::<Paid>();
        assert_eq!(schema["title"], "Paid");
        assert_eq!(schema["type"], "object");
        let total = schema["properties"]["total"]["$ref"]
            .as_str()
            .expect("total is a reference");
        assert_eq!(total, "#/$defs/Money");
        assert!(schema["$defs"]["Money"].is_object(), "{schema:#}");
    }
}
