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
