use super::*;
use serde_json::json;

/// A small document in the shape utoipa writes: one operation with a query parameter, a JSON
/// body, a 200 with a referenced schema and a 404.
fn doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "paths": {
            "/orders/{id}": {
                "post": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "verbose", "in": "query", "required": false,
                         "schema": {"type": "boolean"}}
                    ],
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Req"}}}
                    },
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json":
                            {"schema": {"$ref": "#/components/schemas/Order"}}},
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                        "404": {"description": "none"}
                    },
                    "security": [{"bearerAuth": []}]
                }
            },
            "/health": {"get": {"responses": {"200": {"description": "ok"}}}}
        },
        "components": {"schemas": {
            "Req": {"type": "object", "required": ["card"], "properties": {
                "card": {"type": "string", "maxLength": 19},
                "note": {"type": ["string", "null"]},
                "speed": {"type": "string", "enum": ["slow", "fast"]}
            }},
            "Order": {"type": "object", "required": ["id", "status", "total", "lines"], "properties": {
                "id": {"type": "string"},
                "status": {"$ref": "#/components/schemas/Status"},
                "total": {"type": "integer"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                "tracking": {"oneOf": [{"type": "null"}, {"type": "string"}]}
            }},
            "Line": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}},
            "Status": {"type": "string", "enum": ["PENDING", "CONFIRMED"]}
        }}
    })
}

fn event_schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id", "total"],
        "properties": {
            "order_id": {"type": "string"},
            "total": {"$ref": "#/$defs/Money"}
        },
        "$defs": {"Money": {"type": "object", "required": ["minor"],
            "properties": {"minor": {"type": "integer"}}}}
    })
}

fn contract(version: u32, public: Value, event: Value) -> Contract {
    let mut events = Map::new();
    events.insert(
        "order.confirmed".into(),
        json!({"version": 1, "schema": event}),
    );
    Contract {
        version,
        public,
        internal: json!({"openapi": "3.1.0", "paths": {}}),
        events,
    }
}

fn released() -> BTreeMap<String, Contract> {
    BTreeMap::from([("orders".to_owned(), contract(1, doc(), event_schema()))])
}

/// The verdict on `released()` against a copy changed by `change`, under `version`.
fn verdict(version: u32, change: impl FnOnce(&mut Value, &mut Value)) -> Verdict {
    let (mut public, mut event) = (doc(), event_schema());
    change(&mut public, &mut event);
    let current = BTreeMap::from([("orders".to_owned(), contract(version, public, event))]);
    check(&released(), &current)
        .remove("orders")
        .expect("a verdict for orders")
}

/// Asserts that `change` is refused under the same version with a line containing `said`.
#[track_caller]
fn refused(said: &str, change: impl FnOnce(&mut Value, &mut Value)) {
    let verdict = verdict(1, change);
    assert!(
        verdict.refused.iter().any(|line| line.contains(said)),
        "expected a refusal saying {said:?}, got {:#?}",
        verdict.refused
    );
}

#[track_caller]
fn passes(change: impl FnOnce(&mut Value, &mut Value)) {
    let verdict = verdict(1, change);
    assert_eq!(verdict, Verdict::default());
}

fn schemas(doc: &mut Value) -> &mut Value {
    &mut doc["components"]["schemas"]
}

fn remove(value: &mut Value, key: &str) {
    value.as_object_mut().expect("an object").remove(key);
}

#[test]
fn an_unchanged_contract_passes() {
    passes(|_, _| {});
}

#[test]
fn a_removed_operation_is_breaking() {
    refused("public GET /health: operation removed", |doc, _| {
        remove(&mut doc["paths"], "/health")
    });
    refused("public POST /orders/{id}: operation removed", |doc, _| {
        let item = doc["paths"]["/orders/{id}"].take();
        doc["paths"]["/orders/{id}"] = json!({"put": item["post"]});
    });
}

#[test]
fn a_renamed_path_parameter_is_not_a_change() {
    passes(|doc, _| {
        let item = doc["paths"]["/orders/{id}"].take();
        remove(&mut doc["paths"], "/orders/{id}");
        doc["paths"]["/orders/{order_id}"] = item;
        doc["paths"]["/orders/{order_id}"]["post"]["parameters"][0]["name"] = json!("order_id");
    });
}

#[test]
fn a_removed_response_field_is_breaking() {
    refused(
        "response 200 (application/json).total: field removed",
        |doc, _| remove(&mut schemas(doc)["Order"]["properties"], "total"),
    );
}

#[test]
fn a_response_field_that_may_now_be_missing_or_null_is_breaking() {
    refused(".id: may now be absent", |doc, _| {
        schemas(doc)["Order"]["required"] = json!(["status", "total", "lines"])
    });
    refused(".id: may now be null", |doc, _| {
        schemas(doc)["Order"]["properties"]["id"] = json!({"type": ["string", "null"]})
    });
}

#[test]
fn a_changed_type_is_breaking_in_either_direction() {
    refused(".total: may now be of type string", |doc, _| {
        schemas(doc)["Order"]["properties"]["total"] = json!({"type": "string"})
    });
    refused(".card: no longer accepts of type string", |doc, _| {
        schemas(doc)["Req"]["properties"]["card"] = json!({"type": "integer"})
    });
    // Array items are followed.
    refused(".lines[].sku: may now be of type integer", |doc, _| {
        schemas(doc)["Line"]["properties"]["sku"] = json!({"type": "integer"})
    });
}

#[test]
fn a_new_response_enum_value_is_breaking_for_readers() {
    refused("new value \"REFUNDED\"", |doc, _| {
        schemas(doc)["Status"]["enum"] = json!(["PENDING", "CONFIRMED", "REFUNDED"])
    });
}

#[test]
fn a_response_enum_losing_a_value_is_additive() {
    passes(|doc, _| schemas(doc)["Status"]["enum"] = json!(["PENDING"]));
}

#[test]
fn a_request_enum_losing_a_value_or_a_new_restriction_is_breaking() {
    refused("value \"slow\" no longer accepted", |doc, _| {
        schemas(doc)["Req"]["properties"]["speed"]["enum"] = json!(["fast"])
    });
    refused(".card: now restricted to", |doc, _| {
        schemas(doc)["Req"]["properties"]["card"]["enum"] = json!(["4242"])
    });
}

#[test]
fn a_request_enum_gaining_a_value_is_additive() {
    passes(|doc, _| {
        schemas(doc)["Req"]["properties"]["speed"]["enum"] = json!(["slow", "fast", "warp"])
    });
}

#[test]
fn tighter_request_bounds_and_new_patterns_are_breaking() {
    refused(".card: maxLength 19 → 16", |doc, _| {
        schemas(doc)["Req"]["properties"]["card"]["maxLength"] = json!(16)
    });
    refused(".card: new pattern", |doc, _| {
        schemas(doc)["Req"]["properties"]["card"]["pattern"] = json!("^[0-9]+$")
    });
}

#[test]
fn looser_request_bounds_are_additive() {
    passes(|doc, _| schemas(doc)["Req"]["properties"]["card"]["maxLength"] = json!(32));
}

#[test]
fn a_new_required_request_field_is_breaking_and_a_new_optional_one_is_not() {
    refused(".cvc: new required field", |doc, _| {
        let req = &mut schemas(doc)["Req"];
        req["properties"]["cvc"] = json!({"type": "string"});
        req["required"] = json!(["card", "cvc"]);
    });
    refused(".note: now required", |doc, _| {
        schemas(doc)["Req"]["required"] = json!(["card", "note"])
    });
    passes(|doc, _| schemas(doc)["Req"]["properties"]["cvc"] = json!({"type": "string"}));
}

#[test]
fn a_removed_optional_request_field_is_breaking() {
    refused(".note: field removed (callers still send it", |doc, _| {
        remove(&mut schemas(doc)["Req"]["properties"], "note")
    });
}

#[test]
fn a_request_field_that_no_longer_takes_null_is_breaking() {
    refused(".note: no longer accepts null", |doc, _| {
        schemas(doc)["Req"]["properties"]["note"] = json!({"type": "string"})
    });
}

#[test]
fn widening_a_request_type_is_additive() {
    passes(|doc, _| {
        schemas(doc)["Req"]["properties"]["card"] =
            json!({"type": ["string", "integer"], "maxLength": 19})
    });
}

#[test]
fn new_required_parameters_and_parameters_that_became_required_are_breaking() {
    refused("parameter query page: new required parameter", |doc, _| {
        let params = doc["paths"]["/orders/{id}"]["post"]["parameters"]
            .as_array_mut()
            .expect("parameters");
        params.push(json!({"name": "page", "in": "query", "required": true,
            "schema": {"type": "integer"}}));
    });
    refused("parameter query verbose: now required", |doc, _| {
        doc["paths"]["/orders/{id}"]["post"]["parameters"][1]["required"] = json!(true)
    });
    refused("parameter query verbose: removed", |doc, _| {
        let params = doc["paths"]["/orders/{id}"]["post"]["parameters"]
            .as_array_mut()
            .expect("parameters");
        params.pop();
    });
}

#[test]
fn a_new_optional_parameter_is_additive() {
    passes(|doc, _| {
        let params = doc["paths"]["/orders/{id}"]["post"]["parameters"]
            .as_array_mut()
            .expect("parameters");
        params.push(json!({"name": "page", "in": "query", "schema": {"type": "integer"}}));
    });
}

#[test]
fn a_removed_documented_status_is_breaking_and_a_new_one_is_not() {
    refused("response 404: no longer documented", |doc, _| {
        remove(
            &mut doc["paths"]["/orders/{id}"]["post"]["responses"],
            "404",
        )
    });
    // 200 → 201 changes what the status means to a caller: one removed, one added.
    refused("response 200: no longer documented", |doc, _| {
        let responses = &mut doc["paths"]["/orders/{id}"]["post"]["responses"];
        let ok = responses["200"].take();
        remove(responses, "200");
        responses["201"] = ok;
    });
    passes(|doc, _| {
        doc["paths"]["/orders/{id}"]["post"]["responses"]["409"] =
            json!({"description": "conflict"})
    });
}

#[test]
fn a_new_operation_and_a_new_response_field_are_additive() {
    passes(|doc, _| {
        doc["paths"]["/orders"] = json!({"get": {"responses": {"200": {"description": "ok"}}}});
        schemas(doc)["Order"]["properties"]["placed_at"] = json!({"type": "string"});
    });
}

#[test]
fn an_operation_that_now_needs_credentials_is_breaking() {
    refused("public GET /health: now requires credentials", |doc, _| {
        doc["paths"]["/health"]["get"]["security"] = json!([{"bearerAuth": []}])
    });
    refused("now requires scope bearerAuth:admin", |doc, _| {
        doc["paths"]["/orders/{id}"]["post"]["security"] = json!([{"bearerAuth": ["admin"]}])
    });
}

#[test]
fn event_changes_are_judged_as_the_consumers_read_them() {
    refused(
        "event order.confirmed payload.order_id: field removed",
        |_, event| remove(&mut event["properties"], "order_id"),
    );
    refused(
        "event order.confirmed payload.total.minor: may now be of type string",
        |_, event| event["$defs"]["Money"]["properties"]["minor"] = json!({"type": "string"}),
    );
    passes(|_, event| event["properties"]["channel"] = json!({"type": "string"}));
}

#[test]
fn a_removed_event_or_a_changed_payload_version_is_breaking() {
    let current = BTreeMap::from([(
        "orders".to_owned(),
        Contract {
            events: Map::new(),
            ..contract(1, doc(), event_schema())
        },
    )]);
    let verdict = &check(&released(), &current)["orders"];
    assert_eq!(
        verdict.refused,
        ["event order.confirmed: no longer published"]
    );

    let mut bumped = contract(1, doc(), event_schema());
    bumped.events["order.confirmed"]["version"] = json!(2);
    let current = BTreeMap::from([("orders".to_owned(), bumped)]);
    let verdict = &check(&released(), &current)["orders"];
    assert!(
        verdict.refused[0].contains("payload version 1 → 2"),
        "{verdict:?}"
    );
}

#[test]
fn a_raised_contract_version_lets_breaking_changes_through_and_lists_them() {
    let verdict = verdict(2, |doc, _| remove(&mut doc["paths"], "/health"));
    assert!(verdict.refused.is_empty(), "{verdict:?}");
    assert_eq!(verdict.allowed, ["public GET /health: operation removed"]);
}

#[test]
fn a_contract_version_that_goes_back_is_refused() {
    let current = BTreeMap::from([("orders".to_owned(), contract(0, doc(), event_schema()))]);
    let verdict = &check(&released(), &current)["orders"];
    assert_eq!(verdict.refused, ["CONTRACT_VERSION went back from 1 to 0"]);
}

#[test]
fn a_service_that_disappears_is_breaking() {
    let verdict = &check(&released(), &BTreeMap::new())["orders"];
    assert_eq!(
        verdict.refused,
        ["the service no longer publishes a contract"]
    );
}

#[test]
fn recursive_schemas_terminate() {
    let mut doc = doc();
    schemas(&mut doc)["Line"]["properties"]["children"] =
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Line"}});
    let released = BTreeMap::from([(
        "orders".to_owned(),
        contract(1, doc.clone(), event_schema()),
    )]);
    let current = BTreeMap::from([("orders".to_owned(), contract(1, doc, event_schema()))]);
    assert_eq!(check(&released, &current)["orders"], Verdict::default());
}

#[test]
fn every_service_the_host_runs_declares_a_contract_but_the_storefront() {
    let mut declared: Vec<&str> = DECLARED.iter().map(|d| d.name).collect();
    let mut hosted: Vec<&str> = crate::host::SERVICES
        .iter()
        .map(|spec| spec.name)
        .filter(|name| *name != flotilla_storefront::NAME)
        .collect();
    declared.sort_unstable();
    hosted.sort_unstable();
    assert_eq!(declared, hosted);
}

/// The committed snapshots are what the code publishes now: a change to a contract (even an
/// additive one) comes with `flotilla contracts snapshot` in the same commit, so the next
/// change is compared with what was really released.
#[tokio::test(flavor = "multi_thread")]
async fn the_committed_snapshots_are_what_the_code_publishes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    let committed = read(&dir).expect("the snapshots read");
    let current = generate().await.expect("the contracts generate");
    let names =
        |contracts: &BTreeMap<String, Contract>| contracts.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&current),
        "run `flotilla contracts snapshot`"
    );
    for (service, contract) in &current {
        for (name, text) in files(contract).expect("serialises") {
            let path = dir.join(service).join(name);
            let committed_text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                text == committed_text,
                "{} differs from what the code publishes: run \
                 `cargo run -p flotilla --all-features -- contracts snapshot` and commit it",
                path.display()
            );
        }
    }
}

#[test]
fn a_payload_break_under_the_same_event_version_is_refused_even_with_a_raised_contract_version() {
    // The reviewer's plant: CONTRACT_VERSION raised, a field the consumers need gone, the
    // event still at version 1 — an old consumer would read the new payload as version 1.
    let verdict = verdict(2, |_, event| remove(&mut event["properties"], "order_id"));
    assert!(
        verdict
            .refused
            .iter()
            .any(|line| line.contains("payload.order_id: field removed")
                && line.contains("same event version 1")),
        "{verdict:?}"
    );
    // With the event's own version raised too, the service's raised version lets it through.
    let mut bumped = contract(2, doc(), event_schema());
    remove(
        &mut bumped.events["order.confirmed"]["schema"]["properties"],
        "order_id",
    );
    bumped.events["order.confirmed"]["version"] = json!(2);
    let current = BTreeMap::from([("orders".to_owned(), bumped)]);
    let verdict = &check(&released(), &current)["orders"];
    assert!(verdict.refused.is_empty(), "{verdict:?}");
    assert!(
        verdict
            .allowed
            .iter()
            .any(|line| line.contains("payload.order_id: field removed")),
        "{verdict:?}"
    );
}

#[test]
fn a_response_header_no_longer_sent_is_breaking() {
    refused(
        "public POST /orders/{id}: response 200: header Location no longer sent",
        |doc, _| {
            remove(
                &mut doc["paths"]["/orders/{id}"]["post"]["responses"]["200"],
                "headers",
            )
        },
    );
    refused("header Location", |doc, _| {
        doc["paths"]["/orders/{id}"]["post"]["responses"]["200"]["headers"]["Location"]["schema"] =
            json!({"type": "integer"})
    });
    // Another spelling of the same name, or a new header, changes nothing for readers.
    passes(|doc, _| {
        doc["paths"]["/orders/{id}"]["post"]["responses"]["200"]["headers"] = json!({
            "location": {"schema": {"type": "string"}},
            "Retry-After": {"schema": {"type": "integer"}}
        })
    });
}
