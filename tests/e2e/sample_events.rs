//! The sample events in events/ (what `cargo lambda invoke --data-file` sends) are real events:
//! they parse as the AWS event types and the functions answer them as documented.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use e2e::*;
use serde_json::Value;
use std::path::PathBuf;

fn events_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

fn event(function: &str, case: &str) -> Value {
    let path = events_dir().join(function).join(format!("{case}.json"));
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} exists", path.display())),
    )
    .unwrap()
}

#[test]
fn every_sample_event_parses_as_its_aws_type() {
    let mut checked = 0;
    for dir in std::fs::read_dir(events_dir())
        .unwrap()
        .flatten()
        .filter(|d| d.path().is_dir())
    {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(file.path()).unwrap();
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.path().display()));
            let parsed = if value.get("Records").is_some() {
                serde_json::from_value::<SqsEvent>(value).map(|_| ())
            } else if value.get("detail-type").is_some() {
                serde_json::from_value::<EventBridgeEvent<Value>>(value).map(|_| ())
            } else if value.get("requestContext").is_some() {
                serde_json::from_value::<ApiGatewayV2httpRequest>(value).map(|_| ())
            } else {
                // Direct invocations (e.g. the fan-out's run request) are plain JSON objects.
                assert!(value.is_object(), "{}", file.path().display());
                Ok(())
            };
            parsed.unwrap_or_else(|e| {
                panic!("{} is not a valid AWS event: {e}", file.path().display())
            });
            checked += 1;
        }
    }
    assert!(
        checked >= 8,
        "sample events exist for every function ({checked})"
    );
}

#[tokio::test]
async fn the_functions_answer_their_sample_events() {
    let world = World::start().await;
    let status = |v: &Value| v["statusCode"].as_i64().unwrap_or_default();

    let openapi = world
        .stack
        .invoke(
            "ConnectKlaviyoFunction",
            event("connect-klaviyo", "get-openapi"),
        )
        .await
        .unwrap();
    assert_eq!(status(&openapi), 200);
    let connections = world
        .stack
        .invoke(
            "ConnectKlaviyoFunction",
            event("connect-klaviyo", "get-connections"),
        )
        .await
        .unwrap();
    assert_eq!(status(&connections), 200, "{connections}");
    let malformed = world
        .stack
        .invoke(
            "ConnectKlaviyoFunction",
            event("connect-klaviyo", "put-klaviyo-key-malformed"),
        )
        .await
        .unwrap();
    assert_eq!(status(&malformed), 400, "{malformed}");
    assert!(malformed["body"]
        .as_str()
        .unwrap()
        .contains("invalid-klaviyo-key"));

    let hook = world
        .stack
        .invoke(
            "FlowHooksFunction",
            event("flow-hooks", "hook-unknown-trigger"),
        )
        .await
        .unwrap();
    assert_eq!(status(&hook), 404, "{hook}");
    let job = world
        .stack
        .invoke("FlowWorkerFunction", event("flow-worker", "sqs-job"))
        .await
        .unwrap();
    assert_eq!(
        job["batchItemFailures"].as_array().map(Vec::len),
        Some(0),
        "a job of a deleted trigger is acknowledged: {job}"
    );

    let schedule = world
        .stack
        .invoke("CatalogSyncFunction", event("catalog-sync", "schedule"))
        .await
        .unwrap();
    assert_eq!(
        schedule["queued"], 0,
        "no shop is connected yet: {schedule}"
    );
    let watchdog = world
        .stack
        .invoke(
            "PersonalizeFanoutFunction",
            event("personalize-fanout", "run-watchdog"),
        )
        .await
        .unwrap();
    assert_eq!(watchdog["looked"], 0, "no run is live yet: {watchdog}");
    let sync = world
        .stack
        .invoke(
            "CatalogSyncFunction",
            event("catalog-sync", "sqs-sync-request"),
        )
        .await
        .unwrap();
    assert_eq!(
        sync["batchItemFailures"],
        serde_json::json!([]),
        "a sync for an unconnected merchant is a no-op: {sync}"
    );
}
