//! The OpenAPI document is generated from the code and must describe exactly the routes that
//! template.yaml gives API Gateway.

use e2e::*;
use reqwest::{Method, StatusCode};
use std::collections::BTreeSet;

fn template_routes() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut routes = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            if event["Type"].as_str() == Some("HttpApi") {
                let props = &event["Properties"];
                routes.insert((
                    props["Method"].as_str().unwrap().to_uppercase(),
                    props["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    routes
}

#[test]
fn every_template_route_is_documented_and_nothing_else() {
    let documented: BTreeSet<(String, String)> =
        shared::api::documented_routes().into_iter().collect();
    assert_eq!(documented, template_routes());
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_and_public() {
    let world = World::start().await;
    let resp = world.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.body["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3.1"));
    let served: BTreeSet<String> = resp.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = template_routes().into_iter().map(|(_, p)| p).collect();
    assert_eq!(served, expected);
    assert!(resp.body["components"]["schemas"]["Problem"].is_object());
}

/// The answers the generated document must give every operation of a kind: what API Gateway's
/// authorizer and the body checks answer, as problem documents.
#[test]
fn every_bearer_route_declares_401_and_every_body_route_400_and_413() {
    let doc = serde_json::to_value(shared::api::openapi()).unwrap();
    let mut bearer_routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let mut must = Vec::new();
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                bearer_routes += 1;
                must.push("401");
            }
            if op.get("requestBody").is_some() {
                must.extend(["400", "413"]);
            }
            for status in &must {
                assert!(
                    responses.contains_key(*status),
                    "{method} {path} does not declare {status}"
                );
            }
            assert!(
                responses["429"]["content"]["application/json"].is_object(),
                "{method} {path}: the stage throttle"
            );
            for status in ["401", "413"] {
                if responses.contains_key(status) && must.contains(&status) {
                    assert_eq!(
                        responses[status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/GatewayMessage",
                        "{method} {path} {status}: API Gateway's own answer"
                    );
                }
            }
            for (status, response) in responses {
                if status != "429" && (status.starts_with('4') || status.starts_with('5')) {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status} is a problem document"
                    );
                }
            }
        }
    }
    assert!(bearer_routes > 20, "{bearer_routes}");
}

/// Bodies the server parses with `deny_unknown_fields` say so, and the constraints the server
/// checks are in the schema (a schema-valid body is never refused for its shape: api_fuzz.rs).
#[test]
fn request_schemas_carry_the_servers_constraints() {
    let doc = serde_json::to_value(shared::api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "PutKlaviyoKey",
        "StartShopify",
        "PreviewRequest",
        "RunRequest",
        "TriggerRequest",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    let run = &schemas["RunRequest"]["properties"];
    assert_eq!(run["holdout_percent"]["maximum"], 50);
    assert_eq!(run["profile_cap"]["minimum"], 1);
    assert_eq!(run["brief"]["maxLength"], 500);
    let slots = &schemas["Slots"]["properties"];
    assert_eq!(slots["subject"]["properties"]["max_chars"]["minimum"], 20);
    assert_eq!(slots["body"]["properties"]["max_chars"]["maximum"], 1200);
    assert_eq!(slots["products"]["maximum"], 3);
    let offer = schemas["Offer"]["oneOf"].as_array().unwrap();
    assert_eq!(offer.len(), 4, "one branch per offer kind");
    assert!(offer.iter().all(|b| b["additionalProperties"] == false));
    let catalog = &doc["paths"]["/catalog"]["get"]["parameters"];
    let limit = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 100);
}
