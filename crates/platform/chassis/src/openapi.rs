//! A service's OpenAPI documents as clients and tools read them: one public document (exactly
//! what the gateway serves, at `/openapi.json`) and one internal document (the operations other
//! services call, at `/openapi.internal.json`, never through the gateway).
//!
//! The handlers' `#[utoipa::path]` annotations describe what each operation does; this module
//! adds what the chassis does to every operation, so that no annotation has to repeat it and
//! none can forget it: the problem+json body of every error, the 400/413/415/422 a malformed
//! request or body gets from the chassis extractors, the 401/403 of an operation that needs a
//! token, a description on every response (the OpenAPI schema requires one), the bearer
//! security scheme, the probes, and `servers` pointing at the gateway prefix. It works on the
//! document as JSON, the form in which the gateway and validators read it.

use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;
use utoipa::openapi::schema::ComponentsBuilder;

use crate::problem::{FieldError, Problem};

/// The tag that keeps an operation out of the public document (and so off the gateway).
pub const INTERNAL_TAG: &str = "internal";

/// The name of the bearer JWT security scheme in every document.
pub const BEARER: &str = "bearerAuth";

/// The scope an operation lists under [`BEARER`] when only an admin may call it.
pub const ADMIN_SCOPE: &str = "admin";

/// Where the internal document is served (service to service, never through the gateway).
pub const INTERNAL_PATH: &str = "/openapi.internal.json";

/// The HTTP methods an OpenAPI path item may hold, lower-case as in the document.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// Unicode `White_Space` (what `str::trim` removes), as the body of a regex character class
/// spelled the same in every engine that reads the documents (Rust, Python, ECMAScript).
pub const WHITE_SPACE: &str =
    "\\x09-\\x0d\\x20\\x85\\xa0\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";
/// What `char::is_control` matches (the `Cc` category), as a character class body.
pub const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";

/// The JSON Schema of a text field the server trims and then wants 1 to `max` characters long
/// with no control character: the exact rule as a pattern (whitespace around it is allowed and
/// not counted), so a client can check what the server will accept.
pub fn trimmed_text(max: usize, description: &str) -> utoipa::openapi::Object {
    let inner = max.saturating_sub(2);
    let pattern = format!(
        "^[{WHITE_SPACE}]*[^{WHITE_SPACE}{CONTROL}]([^{CONTROL}]{{0,{inner}}}[^{WHITE_SPACE}{CONTROL}])?[{WHITE_SPACE}]*$"
    );
    text_schema(&pattern, description)
}

/// The JSON Schema of a text field whose trimmed value must match `core` (a regex without
/// anchors): surrounding whitespace is allowed, as the server trims it.
pub fn trimmed_pattern(core: &str, description: &str) -> utoipa::openapi::Object {
    text_schema(
        &format!("^[{WHITE_SPACE}]*(?:{core})[{WHITE_SPACE}]*$"),
        description,
    )
}

/// The JSON Schema of an untrimmed text field (an id, say) of 1 to `max` characters with no
/// control character.
pub fn plain_text(max: usize, description: &str) -> utoipa::openapi::Object {
    let mut schema = text_schema(&format!("^[^{CONTROL}]*$"), description);
    schema.min_length = Some(1);
    schema.max_length = Some(max);
    schema
}

/// A string schema with `pattern`.
fn text_schema(pattern: &str, description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// A service's two documents.
#[derive(Debug, Clone)]
pub struct Documents {
    /// What the gateway serves: every operation not tagged `internal`, plus the probes.
    pub public: Value,
    /// The operations tagged `internal`, for the services that call them.
    pub internal: Value,
}

/// The finished documents of service `name` from the routes' own description `api`.
pub fn publish(name: &str, api: OpenApi) -> Documents {
    publish_json(
        name,
        serde_json::to_value(api).unwrap_or_else(|_| json!({"paths": {}})),
    )
}

/// [`publish`] for a description already in JSON form.
fn publish_json(name: &str, mut doc: Value) -> Documents {
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": format!("flotilla {name}"),
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "The {name} service. Through the gateway its public operations are under /api/{name}; \
             errors are RFC 9457 problem+json."
        ),
    });
    add_components(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for op in operations_mut(item) {
                complete(op);
            }
        }
    }
    let mut public = keep_operations(&doc, |op| !is_internal(op));
    add_probes(&mut public, name);
    public["servers"] = json!([{
        "url": format!("/api/{name}"),
        "description": "the gateway",
    }]);
    let mut internal = keep_operations(&doc, is_internal);
    internal["info"]["title"] = json!(format!("flotilla {name} (internal)"));
    internal["info"]["description"] = json!(format!(
        "Operations of {name} that only other Flotilla services call (with a service \
         credential); the gateway does not serve them."
    ));
    internal["servers"] = json!([{"url": "/", "description": "the service itself"}]);
    Documents { public, internal }
}

/// True when `operation` carries the `internal` tag.
pub fn is_internal(operation: &Value) -> bool {
    operation
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(INTERNAL_TAG)))
}

/// The operations of a path item, mutably.
fn operations_mut(item: &mut Value) -> impl Iterator<Item = &mut Value> {
    item.as_object_mut()
        .into_iter()
        .flat_map(|item| item.iter_mut())
        .filter(|(method, _)| METHODS.contains(&method.as_str()))
        .map(|(_, op)| op)
}

/// `doc` with only the operations `keep` accepts (path items left empty are dropped).
fn keep_operations(doc: &Value, keep: impl Fn(&Value) -> bool) -> Value {
    let mut out = doc.clone();
    let mut paths = Map::new();
    if let Some(all) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in all {
            let Some(item) = item.as_object() else {
                continue;
            };
            let kept: Map<String, Value> = item
                .iter()
                .filter(|(key, op)| !METHODS.contains(&key.as_str()) || keep(op))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if kept.keys().any(|k| METHODS.contains(&k.as_str())) {
                paths.insert(path.clone(), Value::Object(kept));
            }
        }
    }
    out["paths"] = Value::Object(paths);
    out
}

/// The problem schemas and the bearer scheme, shared by every operation.
fn add_components(doc: &mut Value) {
    let chassis = ComponentsBuilder::new()
        .schema_from::<Problem>()
        .schema_from::<FieldError>()
        .build();
    let chassis = serde_json::to_value(chassis).unwrap_or_default();
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    let Some(components) = components.and_then(Value::as_object_mut) else {
        return;
    };
    let schemas = components
        .entry("schemas")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let (Some(schemas), Some(ours)) = (schemas, chassis["schemas"].as_object()) {
        for (name, schema) in ours {
            schemas
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
    }
    components.insert(
        "securitySchemes".into(),
        json!({ BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from identity's POST /login (or /signup). \
                            Operations whose security lists the `admin` role need an admin's token.",
        }}),
    );
}

/// Adds to one operation what the chassis does to every request.
fn complete(op: &mut Value) {
    let has_body = op.get("requestBody").is_some();
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let scopes: Option<Vec<String>> = op.get("security").and_then(Value::as_array).map(|reqs| {
        reqs.iter()
            .filter_map(|r| r.get(BEARER).and_then(Value::as_array))
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    });
    let needs_token = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|reqs| !reqs.is_empty() && reqs.iter().all(|r| r.get(BEARER).is_some()));
    let Some(responses) = op
        .as_object_mut()
        .map(|o| o.entry("responses").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut add = |code: &str, description: &str| {
        responses
            .entry(code.to_owned())
            .or_insert_with(|| json!({"description": description}));
    };
    if has_body {
        add("400", "The body is not well-formed JSON");
        add("413", "The body is larger than the service accepts");
        add(
            "415",
            "The body is not sent as `Content-Type: application/json`",
        );
        add("422", "The body does not have the documented shape");
    }
    if has_params {
        add(
            "400",
            "A path or query parameter is malformed or out of range",
        );
    }
    if needs_token {
        add("401", "No token, or an invalid or expired one");
    }
    let admin = scopes.is_some_and(|s| s.iter().any(|s| s == ADMIN_SCOPE));
    if admin {
        add("403", "The token is not an admin's");
    }
    add(
        "429",
        "Too many requests from this address or user (the gateway's rate limits); \
         retry after `Retry-After` seconds",
    );
    describe(responses);
    if admin {
        // Tagged too, so that tools can select the operations an admin's token is for.
        let tags = op
            .as_object_mut()
            .map(|o| o.entry("tags").or_insert_with(|| json!([])));
        if let Some(tags) = tags.and_then(Value::as_array_mut)
            && !tags.iter().any(|t| t == ADMIN_SCOPE)
        {
            tags.push(json!(ADMIN_SCOPE));
        }
    }
}

/// A description on every response, and a problem+json body on every error.
fn describe(responses: &mut Map<String, Value>) {
    for (code, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let described = response
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty());
        if !described {
            response.insert("description".into(), json!(reason(code)));
        }
        if code.starts_with('4') || code.starts_with('5') {
            let content = response.entry("content").or_insert_with(|| json!({}));
            if let Some(content) = content.as_object_mut() {
                // Every error is problem+json, whatever an annotation said.
                content.remove("application/json");
                content.insert(
                    "application/problem+json".into(),
                    json!({"schema": {"$ref": "#/components/schemas/Problem"}}),
                );
            }
        }
    }
}

/// A response description for `code` when the annotation gave none.
fn reason(code: &str) -> String {
    code.parse::<u16>()
        .ok()
        .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
        .and_then(|s| s.canonical_reason())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Status {code}"))
}

/// Documents `/healthz`, `/readyz` and `/openapi.json`, which the gateway serves for every
/// service without a token.
fn add_probes(doc: &mut Value, name: &str) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let status = json!({"type": "object", "properties": {
        "status": {"type": "string"}, "service": {"type": "string"}},
        "required": ["status", "service"]});
    let ready = json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "service": {"type": "string"},
        "checks": {"type": "object", "properties": {"database": {"type": "string"}}}},
        "required": ["status", "service", "checks"]});
    let probe = |id: &str, summary: &str, responses: Value| {
        json!({"get": {"tags": ["probes"], "summary": summary,
            "operationId": format!("{name}_{id}"), "responses": responses}})
    };
    paths.insert(
        "/healthz".into(),
        probe(
            "healthz",
            "Liveness: the process answers",
            json!({"200": {"description": "Alive",
                "content": {"application/json": {"schema": status}}}}),
        ),
    );
    paths.insert(
        "/readyz".into(),
        probe(
            "readyz",
            "Readiness: the service can do useful work (its database answers)",
            json!({
                "200": {"description": "Ready", "content": {"application/json": {"schema": ready}}},
                "503": {"description": "Not ready (the database does not answer)",
                    "content": {"application/json": {"schema": ready}}},
            }),
        ),
    );
    paths.insert(
        "/openapi.json".into(),
        probe(
            "openapi",
            "Contract: this document",
            json!({"200": {"description": "This OpenAPI document",
                "content": {"application/json": {"schema": {"type": "object"}}}}}),
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/things": {
                    "get": {"tags": ["things"], "parameters": [{"name": "page", "in": "query",
                        "schema": {"type": "integer"}}],
                        "responses": {"200": {"description": "ok"}}},
                    "post": {"tags": ["internal"], "requestBody": {"content": {"application/json":
                        {"schema": {"type": "object"}}}}, "responses": {"201": {"description": "made"}}},
                },
                "/admin/x": {"post": {"tags": ["admin"], "security": [{"bearerAuth": ["admin"]}],
                    "responses": {"200": {"description": ""}, "404": {"description": ""}}}},
            }
        })
    }

    #[test]
    fn public_and_internal_operations_are_split() {
        let docs = publish_json("svc", sample());
        assert!(docs.public["paths"]["/things"]["get"].is_object());
        assert!(docs.public["paths"]["/things"].get("post").is_none());
        assert!(docs.internal["paths"]["/things"]["post"].is_object());
        assert!(docs.internal["paths"].get("/admin/x").is_none());
        assert!(docs.public["paths"]["/healthz"]["get"].is_object());
        assert_eq!(docs.public["servers"][0]["url"], "/api/svc");
    }

    #[test]
    fn every_response_is_described_and_errors_are_problems() {
        let docs = publish_json("svc", sample());
        let admin = &docs.public["paths"]["/admin/x"]["post"]["responses"];
        for code in ["200", "401", "403", "404"] {
            assert!(
                admin[code]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{code}"
            );
        }
        assert!(admin["404"]["content"]["application/problem+json"].is_object());
        let post = &docs.internal["paths"]["/things"]["post"]["responses"];
        for code in ["400", "413", "415", "422"] {
            assert!(post[code].is_object(), "{code}");
        }
        assert_eq!(
            docs.public["paths"]["/things"]["get"]["responses"]["400"]["content"]["application/problem+json"]
                ["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        assert_eq!(
            docs.public["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert!(docs.public["components"]["schemas"]["Problem"].is_object());
    }
}
