//! Which of a service's operations the public may call: exactly the operations in its OpenAPI
//! document that are not tagged `internal`. Anything else — a route a service forgot to
//! document, an internal route like `POST /reservations` — is a 404 at the gateway: new routes
//! are denied by default, and the served public surface is the published contract.
//!
//! A known path asked with a method it does not have (TRACE, say) is a 405 that lists the
//! methods it has, as RFC 9110 §15.5.6 asks and as the document says.
//!
//! Built from the document as JSON, so it works the same for a service in this process (its
//! document serialised) and for a remote one (its `/openapi.json` fetched).

use axum::http::Method;
use flotilla_chassis::openapi::{INTERNAL_PATH, is_internal};
use serde_json::Value;

pub use flotilla_chassis::openapi::INTERNAL_TAG;

const METHODS: &[(&str, Method)] = &[
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("patch", Method::PATCH),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
];

/// Paths that every service serves to anyone (monitors need no token, clients read the contract).
const ALWAYS: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// A service's public operations, matched by method and path template.
pub struct Exposure {
    router: matchit::Router<Vec<Method>>,
}

/// What the gateway does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A public operation: forward it.
    Allowed,
    /// A public path without this method: 405, with these methods in `Allow`.
    MethodNotAllowed(Vec<Method>),
    /// No public operation on this path: 404.
    NotFound,
}

/// Why a document could not be turned into an exposure.
#[derive(Debug, thiserror::Error)]
#[error("invalid OpenAPI document: {0}")]
pub struct InvalidDocument(String);

impl Exposure {
    /// The public operations of the document `doc`.
    pub fn from_openapi(doc: &Value) -> Result<Self, InvalidDocument> {
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| InvalidDocument("no paths".into()))?;
        let mut router = matchit::Router::new();
        for (path, item) in paths {
            let methods: Vec<Method> = METHODS
                .iter()
                .filter(|(name, _)| item.get(*name).is_some_and(|op| !is_internal(op)))
                .map(|(_, method)| method.clone())
                .collect();
            if methods.is_empty() {
                continue;
            }
            router
                .insert(path.clone(), methods)
                .map_err(|e| InvalidDocument(format!("{path}: {e}")))?;
        }
        Ok(Self { router })
    }

    /// True when `method path` is a public operation (HEAD is allowed where GET is).
    pub fn allows(&self, method: &Method, path: &str) -> bool {
        self.access(method, path) == Access::Allowed
    }

    /// What to do with `method path`.
    pub fn access(&self, method: &Method, path: &str) -> Access {
        if path == INTERNAL_PATH {
            // Not a public operation even where a template such as orders' `/{id}` matches it.
            return Access::NotFound;
        }
        if ALWAYS.contains(&path) && (*method == Method::GET || *method == Method::HEAD) {
            return Access::Allowed;
        }
        let Ok(found) = self.router.at(path) else {
            return if ALWAYS.contains(&path) {
                Access::MethodNotAllowed(vec![Method::GET])
            } else {
                Access::NotFound
            };
        };
        let methods = found.value;
        if methods
            .iter()
            .any(|m| m == method || (*method == Method::HEAD && *m == Method::GET))
        {
            Access::Allowed
        } else {
            Access::MethodNotAllowed(methods.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_documented_public_operations_pass() {
        let doc = json!({"paths": {
            "/stock/{product_id}": {"get": {"tags": ["inventory"]}, "put": {}},
            "/reservations": {"post": {"tags": ["internal"]}},
            "/": {"get": {}, "post": {}},
        }});
        let e = Exposure::from_openapi(&doc).expect("valid");
        assert!(e.allows(&Method::GET, "/stock/p0000001"));
        assert!(e.allows(&Method::HEAD, "/stock/p0000001"));
        assert!(e.allows(&Method::PUT, "/stock/p0000001"));
        assert!(!e.allows(&Method::DELETE, "/stock/p0000001"));
        assert!(!e.allows(&Method::POST, "/reservations"), "internal");
        assert!(!e.allows(&Method::GET, "/undocumented"));
        assert!(e.allows(&Method::POST, "/"));
        let ids = Exposure::from_openapi(&json!({"paths": {"/{id}": {"get": {}}}})).expect("valid");
        assert!(ids.allows(&Method::GET, "/ord_1"));
        assert!(
            !ids.allows(&Method::GET, "/openapi.internal.json"),
            "never public, whatever template matches it"
        );
        assert!(e.allows(&Method::GET, "/healthz"));
        assert!(!e.allows(&Method::GET, "/stock/a/b"));
        assert_eq!(
            e.access(&Method::TRACE, "/stock/p0000001"),
            Access::MethodNotAllowed(vec![Method::GET, Method::PUT])
        );
        assert_eq!(
            e.access(&Method::POST, "/reservations"),
            Access::NotFound,
            "an internal-only path is not known to the public"
        );
    }
}
