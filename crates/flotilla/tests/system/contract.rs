//! The published contracts against the running shop: each service's public document is
//! complete where the OpenAPI schema and tools need it, lists exactly what the gateway serves,
//! and its internal operations are in the internal document and nowhere the public can reach.
//! (scripts/contract-check.sh runs the external validator and schemathesis; this is the part
//! cheap enough for every test run.)

use crate::support::client;
use flotilla::cli::Common;
use flotilla::host::{Host, Mode};
use serde_json::Value;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// (method, path template, operation) of every operation in `doc`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// `template` with every `{param}` filled in.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(base: &str, service: &str, method: &str, path: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let res = client()
        .request(method, format!("{base}/api/{service}{path}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn public_documents_are_complete_and_match_what_the_gateway_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let common = Common {
        port: Some(0),
        data_dir: Some(dir.path().to_path_buf()),
        ..Common::default()
    };
    let config = figment::Figment::from(figment::providers::Serialized::defaults(
        serde_json::json!({
            "catalog": {"seed_products": 5},
            // It sends every operation from one address, faster than the write bucket allows.
            "gateway": {"rate_limit": {"enabled": false}},
        }),
    ));
    let (config, settings) = flotilla::settings(config, &common).expect("settings");
    let host = Host::build(config, settings, Mode::Run)
        .await
        .expect("host builds");
    let base = format!("http://{}", host.gateway_addr().expect("gateway"));
    let documents = host.openapi.clone();
    let shutdown = host.shutdown_token();
    tokio::spawn(host.run());

    let mut internal_seen = Vec::new();
    for (service, docs) in documents.iter().filter(|(s, _)| **s != "storefront") {
        let served: Value = client()
            .get(format!("{base}/api/{service}/openapi.json"))
            .send()
            .await
            .expect("document")
            .json()
            .await
            .expect("json");
        assert_eq!(
            served, docs.public,
            "{service}: the gateway serves the document"
        );
        assert_eq!(docs.public["servers"][0]["url"], format!("/api/{service}"));
        assert_eq!(
            docs.public["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"],
            "JWT"
        );
        for (method, path, op) in operations(&docs.public) {
            let name = format!("{service} {method} {path}");
            let responses = op["responses"].as_object().expect("responses");
            for (code, response) in responses {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{name} {code} has a description"
                );
                // The probes answer their own JSON (a monitor reads it), errors or not.
                let probe = path == "/readyz";
                if (code.starts_with('4') || code.starts_with('5')) && !probe {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{name} {code} is problem+json"
                    );
                }
            }
            if let Some(security) = op["security"].as_array() {
                assert!(responses.contains_key("401"), "{name} documents its 401");
                if security[0]["bearerAuth"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s == "admin"))
                {
                    assert!(responses.contains_key("403"), "{name} documents its 403");
                }
            }
            let (status, body) = send(&base, service, &method, &concrete(&path)).await;
            assert!(
                !body.contains("no public route") && status != 405,
                "{name} is served by the gateway: {status} {body}"
            );
        }
        for (method, path, op) in operations(&docs.internal) {
            let name = format!("{service} {method} {path}");
            assert!(
                op["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"internal".into())),
                "{name}"
            );
            assert!(
                docs.public["paths"][path.as_str()]
                    .get(method.as_str())
                    .is_none(),
                "{name} is not in the public document"
            );
            let (status, _) = send(&base, service, &method, &concrete(&path)).await;
            // The admin surface answers before the exposure check: 401 without a token.
            let refused = if path.split('/').any(|s| s == "admin") {
                status == 401
            } else {
                status == 404 || status == 405
            };
            assert!(refused, "{name} is not served by the gateway: {status}");
            internal_seen.push(format!("{service} {method} {path}"));
        }
        let (status, _) = send(&base, service, "get", "/openapi.internal.json").await;
        assert_eq!(status, 404, "{service}: the internal document stays inside");
    }
    for expected in [
        "inventory post /reservations",
        "inventory post /admin/expire",
        "payments post /payments",
        "shipping post /shipments",
    ] {
        assert!(
            internal_seen.iter().any(|s| s == expected),
            "{expected} is documented as internal"
        );
    }

    // An unknown method on a public path is a 405 naming the methods the path has.
    let res = client()
        .request(
            reqwest::Method::from_bytes(b"TRACE").expect("TRACE"),
            format!("{base}/api/catalog/products"),
        )
        .send()
        .await
        .expect("trace");
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET");
    shutdown.cancel();
}
