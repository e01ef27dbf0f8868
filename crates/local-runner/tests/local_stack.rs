//! The local stack against moto and the sandbox. Needs moto: run via `make test`, or start
//! `moto_server -H 127.0.0.1 -p 5055` and set AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_REGION=us-east-1
//! AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing.
//!
//! One test binary on purpose: each links every Lambda crate and the AWS SDKs.

use async_trait::async_trait;
use local_runner::{Function, LocalStack, StackOptions};
use serde_json::{json, Value};
use shared::edge::FunctionError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// helpers

async fn start(options: StackOptions, overrides: HashMap<String, Arc<dyn Function>>) -> LocalStack {
    match LocalStack::start_with(options, overrides).await {
        Ok(stack) => stack,
        Err(e) => panic!("\n\nthe local stack did not start: {e}\n\n"),
    }
}

fn quiet() -> StackOptions {
    StackOptions {
        run_queues: false,
        ..StackOptions::default()
    }
}

type Respond = Box<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

/// A stand-in function that records every event and answers with `respond`.
struct Probe {
    events: Mutex<Vec<Value>>,
    respond: Respond,
}

impl Probe {
    fn new(respond: impl Fn(&Value) -> Result<Value, String> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        })
    }
    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait]
impl Function for Probe {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        self.events.lock().unwrap().push(event.clone());
        (self.respond)(&event).map_err(Into::into)
    }
}

fn ok_probe() -> Arc<Probe> {
    Probe::new(|_| {
        Ok(
            json!({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{\"probe\":true}"}),
        )
    })
}

fn overrides(pairs: &[(&str, Arc<Probe>)]) -> HashMap<String, Arc<dyn Function>> {
    pairs
        .iter()
        .map(|(id, p)| (id.to_string(), p.clone() as Arc<dyn Function>))
        .collect()
}

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "status {status} should carry a problem document"
    );
    (status, resp.json().await.unwrap())
}

async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn queue_depth(stack: &LocalStack, queue: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = stack.aws.sqs();
    let out = sqs
        .get_queue_attributes()
        .queue_url(stack.resources.queue_url(queue).unwrap())
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    out.attributes()
        .into_iter()
        .flatten()
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum()
}

fn template_yaml() -> serde_yaml::Value {
    let path = StackOptions::default().template_path;
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// provisioning: everything comes from template.yaml

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_exactly_the_templates_tables_and_queues() {
    let stack = start(quiet(), HashMap::new()).await;
    let raw = template_yaml();
    let resources = raw["Resources"].as_mapping().unwrap();
    let of_type = |t: &str| -> Vec<(String, serde_yaml::Value)> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(t))
            .map(|(k, r)| (k.as_str().unwrap().to_owned(), r["Properties"].clone()))
            .collect()
    };

    // Tables: exactly the template's, with its key schema and TTL.
    let ddb = stack.aws.dynamodb();
    let tables = of_type("AWS::DynamoDB::Table");
    assert!(!tables.is_empty());
    // Every page: moto holds the tables of every test that ran against it.
    let mut all_tables = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = ddb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .unwrap();
        all_tables.extend(page.table_names().iter().cloned());
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    let ours: Vec<&String> = all_tables
        .iter()
        .filter(|n| n.starts_with(&stack.prefix))
        .collect();
    assert_eq!(ours.len(), tables.len(), "tables in moto: {ours:?}");
    for (id, props) in &tables {
        let name = stack
            .resources
            .table_name(id)
            .unwrap_or_else(|| panic!("{id} not provisioned"));
        let described = ddb.describe_table().table_name(name).send().await.unwrap();
        let table = described.table().unwrap();
        let actual: Vec<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = props["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(actual, expected, "key schema of {id}");
        if let Some(attr) = props["TimeToLiveSpecification"]["AttributeName"].as_str() {
            let ttl = ddb
                .describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .unwrap();
            let ttl = ttl.time_to_live_description().unwrap();
            assert_eq!(ttl.attribute_name(), Some(attr), "TTL attribute of {id}");
        }
    }

    // Queues: exactly the template's, with visibility timeout and redrive to the right DLQ.
    let sqs = stack.aws.sqs();
    let queues = of_type("AWS::SQS::Queue");
    let listed = sqs
        .list_queues()
        .queue_name_prefix(&stack.prefix)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.queue_urls().len(),
        queues.len(),
        "queues in moto: {:?}",
        listed.queue_urls()
    );
    for (id, props) in &queues {
        let url = stack
            .resources
            .queue_url(id)
            .unwrap_or_else(|| panic!("{id} not provisioned"));
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attrs: HashMap<String, String> = attrs
            .attributes()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        if let Some(vt) = props["VisibilityTimeout"].as_u64() {
            assert_eq!(
                attrs["VisibilityTimeout"],
                vt.to_string(),
                "VisibilityTimeout of {id}"
            );
        }
        match props.get("RedrivePolicy") {
            Some(redrive) => {
                let policy: Value = serde_json::from_str(&attrs["RedrivePolicy"]).unwrap();
                let target = redrive["deadLetterTargetArn"].clone();
                let serde_yaml::Value::Tagged(tagged) = target else {
                    panic!("{id}: expected !GetAtt")
                };
                let dlq = tagged
                    .value
                    .as_str()
                    .unwrap()
                    .trim_end_matches(".Arn")
                    .to_owned();
                assert_eq!(
                    policy["deadLetterTargetArn"],
                    stack.resources.arn(&dlq).unwrap(),
                    "DLQ of {id}"
                );
                assert_eq!(
                    policy["maxReceiveCount"].as_u64(),
                    redrive["maxReceiveCount"].as_u64(),
                    "maxReceiveCount of {id}"
                );
            }
            None => assert!(
                !attrs.contains_key("RedrivePolicy"),
                "{id} should have no redrive"
            ),
        }
    }

    // Every function's environment makes a Config pointing at the local resources.
    for id in stack.template.functions.keys() {
        let config = shared::Config::from_map(stack.function_env(id))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            config.app_table,
            stack.resources.table_name("AppTable").unwrap()
        );
        assert_eq!(
            config.catalog_table,
            stack.resources.table_name("CatalogTable").unwrap()
        );
        assert_eq!(
            config.sync_queue_url,
            stack.resources.queue_url("SyncQueue").unwrap()
        );
        assert_eq!(
            config.work_queue_url,
            stack.resources.queue_url("WorkQueue").unwrap()
        );
        assert_eq!(config.klaviyo_base_url, stack.sandbox.klaviyo_base_url());
        assert_eq!(
            config.shopify_redirect_uri,
            format!("{}/connections/shopify/callback", stack.api_url)
        );
        assert!(config.secret_prefix.starts_with(&stack.prefix));
        assert!(config.secrets_kms_key_id.is_none());
    }

    // The Shopify app secret is where the functions look for it.
    let config = stack.config("ConnectShopifyFunction");
    assert!(config.shopify_client_secret_id.starts_with(&stack.prefix));
    let sm = stack.aws.secrets();
    let secret = sm
        .get_secret_value()
        .secret_id(&config.shopify_client_secret_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret.secret_string(),
        Some(stack.sandbox.config().shopify_client_secret.as_str())
    );
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// API Gateway

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_a_404_problem() {
    let stack = start(quiet(), HashMap::new()).await;
    let resp = reqwest::get(format!("{}/no/such/route", stack.api_url))
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["type"],
        "https://sendpersonal.app/problems/route-not-found"
    );
    // A known path with a method the template does not route is not found either.
    let resp = reqwest::Client::new()
        .delete(format!("{}/openapi.json", stack.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await.0, 404);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_refuses_missing_expired_and_foreign_tokens_without_invoking() {
    let probe = ok_probe();
    let stack = start(
        quiet(),
        overrides(&[("ConnectKlaviyoFunction", probe.clone())]),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/connections", stack.api_url);

    let expired = stack.token_expiring_in("merchant-1", -120).await.unwrap();
    let foreign = foreign_token(&stack, &stack.token("merchant-1").await);
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing"),
        ("garbage", Some("Bearer not-a-jwt".into()), "not a JWT"),
        (
            "expired token",
            Some(format!("Bearer {expired}")),
            "expired",
        ),
        (
            "token signed by another key",
            Some(format!("Bearer {foreign}")),
            "signature",
        ),
    ];
    for (case, header, reason) in cases {
        let mut req = http.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let (status, body) = problem(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(
            body["type"], "https://sendpersonal.app/problems/unauthenticated",
            "{case}"
        );
        assert_eq!(body["title"], "Unauthenticated", "{case}");
        assert_eq!(body["status"], 401, "{case}");
        assert!(
            body["detail"].as_str().unwrap().contains(reason),
            "{case}: {body}"
        );
    }
    assert!(
        probe.events().is_empty(),
        "the function must not run for refused requests"
    );
    stack.shutdown().await;
}

/// A token with the sandbox's claims and kid, signed by a key the issuer never published.
fn foreign_token(_stack: &LocalStack, genuine: &str) -> String {
    let header = jsonwebtoken::decode_header(genuine).unwrap();
    let payload = genuine.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    // A key nobody trusts, made for this test (no private key is kept in the repository).
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let foreign = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = foreign.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_reaches_the_function_as_a_v2_event_with_claims() {
    let probe = ok_probe();
    let stack = start(
        quiet(),
        overrides(&[("ConnectKlaviyoFunction", probe.clone())]),
    )
    .await;
    let token = stack.token("merchant-42").await;
    let http = reqwest::Client::new();

    let resp = http
        .put(format!(
            "{}/connections/klaviyo?a=1&a=2&b=x%20y",
            stack.api_url
        ))
        .bearer_auth(&token)
        .header("cookie", "c1=v1; c2=v2")
        .body(r#"{"api_key":"pk_x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), r#"{"probe":true}"#);
    // API Gateway also takes the raw token without "Bearer".
    let resp = http
        .get(format!("{}/connections", stack.api_url))
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let events = probe.events();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "PUT /connections/klaviyo");
    assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
    assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["body"], r#"{"api_key":"pk_x"}"#);
    assert_eq!(e["requestContext"]["stage"], "$default");
    assert_eq!(e["requestContext"]["http"]["method"], "PUT");
    let claims = &e["requestContext"]["authorizer"]["jwt"]["claims"];
    assert_eq!(claims["sub"], "merchant-42");
    assert_eq!(claims["client_id"], local_runner::APP_CLIENT_ID);
    assert!(
        claims["exp"].is_string(),
        "claims are strings, as API Gateway passes them"
    );
    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(e.clone()).unwrap();
    assert_eq!(
        shared::edge::http::merchant(&typed).unwrap().as_str(),
        "merchant-42"
    );
    assert_eq!(events[1]["routeKey"], "GET /connections");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_route_is_dispatched_without_a_token() {
    let probe = ok_probe();
    let stack = start(
        quiet(),
        overrides(&[("ConnectShopifyFunction", probe.clone())]),
    )
    .await;
    let resp = reqwest::get(format!(
        "{}/connections/shopify/callback?shop=a.myshopify.com&hmac=x",
        stack.api_url
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let events = probe.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["routeKey"], "GET /connections/shopify/callback");
    assert!(events[0]["requestContext"].get("authorizer").is_none());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_public_and_served_by_connect_klaviyo() {
    let stack = start(quiet(), HashMap::new()).await;
    let resp = reqwest::get(format!("{}/openapi.json", stack.api_url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{doc}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_refused_with_413() {
    let probe = ok_probe();
    let stack = start(
        quiet(),
        overrides(&[("ConnectKlaviyoFunction", probe.clone())]),
    )
    .await;
    let token = stack.token("merchant-1").await;
    let resp = reqwest::Client::new()
        .put(format!("{}/connections/klaviyo", stack.api_url))
        .bearer_auth(token)
        .body(vec![b'x'; local_runner::api::MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    let (status, body) = problem(resp).await;
    assert_eq!(status, 413);
    assert_eq!(
        body["type"],
        "https://sendpersonal.app/problems/payload-too-large"
    );
    assert!(probe.events().is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_for_the_app_origin() {
    let stack = start(
        quiet(),
        overrides(&[("ConnectKlaviyoFunction", ok_probe())]),
    )
    .await;
    let origin = stack.parameters["AppBaseUrl"].clone();
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/connections", stack.api_url),
        )
        .header("origin", &origin)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        origin.as_str()
    );
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// SQS event source mappings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batch_failure_retries_only_the_failed_message_until_the_dlq() {
    // catalog-sync's mapping reports batch item failures; fail the "poison" record every time.
    let probe = Probe::new(|event| {
        let failures: Vec<Value> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["body"] == "poison")
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        Ok(json!({ "batchItemFailures": failures }))
    });
    let stack = start(
        StackOptions::default(),
        overrides(&[("CatalogSyncFunction", probe.clone())]),
    )
    .await;
    let sqs = stack.aws.sqs();
    let queue = stack.resources.queue_url("SyncQueue").unwrap().to_owned();
    for body in ["good-1", "poison", "good-2"] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    until(
        "the poison message in the DLQ",
        Duration::from_secs(30),
        || async { queue_depth(&stack, "SyncDeadLetterQueue").await == 1 },
    )
    .await;
    stack.drain(Duration::from_secs(20)).await.unwrap();

    let deliveries = |body: &str| -> Vec<Value> {
        probe
            .events()
            .iter()
            .flat_map(|e| e["Records"].as_array().unwrap().clone())
            .filter(|r| r["body"] == body)
            .collect()
    };
    assert_eq!(
        deliveries("good-1").len(),
        1,
        "a successful record is deleted, not retried"
    );
    assert_eq!(
        deliveries("good-2").len(),
        1,
        "a successful record is deleted, not retried"
    );
    let poison = deliveries("poison");
    assert_eq!(
        poison.len(),
        3,
        "delivered maxReceiveCount times, then redriven"
    );
    let counts: Vec<&str> = poison
        .iter()
        .map(|r| r["attributes"]["ApproximateReceiveCount"].as_str().unwrap())
        .collect();
    assert_eq!(counts, vec!["1", "2", "3"]);
    let record = &poison[0];
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(
        record["eventSourceARN"],
        stack.resources.arn("SyncQueue").unwrap()
    );
    assert!(record["attributes"]["SentTimestamp"].is_string());
    let typed: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_value(probe.events()[0].clone()).unwrap();
    assert!(!typed.records.is_empty());

    let dlq = sqs
        .receive_message()
        .queue_url(stack.resources.queue_url("SyncDeadLetterQueue").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(dlq.messages()[0].body(), Some("poison"));
    assert_eq!(queue_depth(&stack, "SyncQueue").await, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_error_fails_the_whole_batch_until_the_dlq() {
    // The worker also consumes its dead-letter queue (to count dead batches), so the probe
    // fails deliveries from the work queue and accepts the one from the DLQ.
    let probe = Probe::new(|event| {
        let from_dlq = event["Records"][0]["eventSourceARN"]
            .as_str()
            .is_some_and(|arn| arn.contains("DeadLetter"));
        if from_dlq {
            Ok(json!({ "batchItemFailures": [] }))
        } else {
            Err("boom".into())
        }
    });
    let stack = start(
        StackOptions::default(),
        overrides(&[("PersonalizeWorkerFunction", probe.clone())]),
    )
    .await;
    let sqs = stack.aws.sqs();
    sqs.send_message()
        .queue_url(stack.resources.queue_url("WorkQueue").unwrap())
        .message_body(r#"{"run":"r1","batch":0}"#)
        .send()
        .await
        .unwrap();
    until(
        "the failing batch delivered from the DLQ",
        Duration::from_secs(30),
        || async { probe.events().len() == 4 },
    )
    .await;
    stack.drain(Duration::from_secs(20)).await.unwrap();
    let events = probe.events();
    let sources: Vec<&str> = events
        .iter()
        .map(|e| e["Records"][0]["eventSourceARN"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        sources.iter().filter(|s| !s.contains("DeadLetter")).count(),
        3,
        "three receives from the work queue: {sources:?}"
    );
    assert!(
        sources[3].contains("DeadLetter"),
        "then the dead-letter queue: {sources:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_queued_work_to_be_handled() {
    let probe = Probe::new(|_| Ok(json!({"batchItemFailures": []})));
    let stack = start(
        StackOptions::default(),
        overrides(&[("PersonalizeWorkerFunction", probe.clone())]),
    )
    .await;
    let sqs = stack.aws.sqs();
    for i in 0..6 {
        sqs.send_message()
            .queue_url(stack.resources.queue_url("WorkQueue").unwrap())
            .message_body(format!("{{\"batch\":{i}}}"))
            .send()
            .await
            .unwrap();
    }
    stack.drain(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        probe.events().len(),
        6,
        "batch size 1: one invocation per message"
    );
    assert_eq!(queue_depth(&stack, "WorkQueue").await, 0);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// schedules and direct invocation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_schedule_sends_an_eventbridge_scheduled_event() {
    let probe = Probe::new(|_| Ok(json!({"queued": 0})));
    let stack = start(
        quiet(),
        overrides(&[("CatalogSyncFunction", probe.clone())]),
    )
    .await;
    let out = stack.fire_schedule("CatalogSyncFunction").await.unwrap();
    assert_eq!(out, json!({"queued": 0}));
    let event = probe.events()[0].clone();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    let rule = event["resources"][0].as_str().unwrap();
    assert!(
        rule.starts_with("arn:aws:events:") && rule.contains(":rule/"),
        "{rule}"
    );
    let typed: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_value(event).unwrap();
    assert_eq!(typed.detail_type, "Scheduled Event");

    assert!(matches!(
        stack.fire_schedule("ConnectKlaviyoFunction").await,
        Err(local_runner::StackError::NoSchedule(_))
    ));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_invoke_reaches_the_handler_and_reports_errors() {
    let failing = Probe::new(|_| Err("nope".into()));
    let stack = start(quiet(), overrides(&[("DisconnectPurgeFunction", failing)])).await;
    let err = stack
        .invoke("DisconnectPurgeFunction", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(matches!(
        stack.invoke("NoSuchFunction", json!({})).await,
        Err(local_runner::StackError::UnknownFunction(_))
    ));
    stack.shutdown().await;
}

/// Counts how many invocations run at once.
struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Function for Gauge {
    async fn invoke(&self, _event: Value) -> Result<Value, FunctionError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.now.fetch_sub(1, SeqCst);
        Ok(json!({}))
    }
}

#[tokio::test]
async fn a_function_with_reserved_concurrency_never_runs_more_containers_than_reserved() {
    let template = local_runner::Template::load(&StackOptions::default().template_path).unwrap();
    let reserved = template.functions["PersonalizeWorkerFunction"]
        .reserved_concurrency
        .expect("the worker bounds its containers") as usize;
    let gauge = Arc::new(Gauge {
        now: Default::default(),
        peak: Default::default(),
    });
    let stack = start(
        quiet(),
        [(
            "PersonalizeWorkerFunction".to_owned(),
            gauge.clone() as Arc<dyn Function>,
        )]
        .into_iter()
        .collect(),
    )
    .await;
    let calls = (0..reserved * 3).map(|_| stack.invoke("PersonalizeWorkerFunction", json!({})));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let peak = gauge.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(peak, reserved, "events wait for a free container");
    stack.shutdown().await;
}

#[tokio::test]
async fn worker_containers_pool_their_share_and_fanout_containers_pace_to_theirs() {
    let stack = start(quiet(), HashMap::new()).await;
    let worker = stack.config("PersonalizeWorkerFunction");
    let fanout = stack.config("PersonalizeFanoutFunction");
    let xl = |c: &shared::Config| {
        c.klaviyo_limits()
            .factor(shared::klaviyo::Tier::XL)
            .unwrap()
    };
    let l = |c: &shared::Config| c.klaviyo_limits().factor(shared::klaviyo::Tier::L).unwrap();
    // The worker's containers together hold 0.8 of the 80% of each tier we may use, pooled
    // (the flow worker's pool holds 0.1, and half of the L tier); a fan-out container holds its
    // own share (previews and review samples are interactive).
    assert_eq!(
        worker.vendor_budget_pool.as_deref(),
        Some("PersonalizeWorker")
    );
    assert!((xl(&worker) - 0.8 * 0.8).abs() < 1e-9, "{}", xl(&worker));
    assert!((l(&worker) - 0.1 * 0.8).abs() < 1e-9);
    assert!(fanout.vendor_budget_pool.is_none());
    assert!((l(&fanout) - 0.1 * 0.8).abs() < 1e-9);
    let flows = stack.config("FlowWorkerFunction");
    assert_eq!(flows.vendor_budget_pool.as_deref(), Some("FlowWorker"));
    assert!((l(&flows) - 0.5 * 0.8).abs() < 1e-9);
    assert!((xl(&flows) - 0.1 * 0.8).abs() < 1e-9);
    assert_eq!(worker.bedrock_output_burndown, 5.0);
    // The account's Bedrock quota is the sandbox's, which the containers share.
    let (rpm, tpm) = worker.bedrock_quota.expect("the worker paces to a quota");
    assert_eq!(rpm, f64::from(stack.sandbox.config().bedrock_rpm));
    assert_eq!(tpm, stack.sandbox.config().bedrock_tpm as f64);
    stack.shutdown().await;
}

/// Units admitted per slot of `bucket`, read back from the app table.
async fn slots_in_table(stack: &LocalStack, table: &str, bucket: &str) -> Vec<(u64, u64, Value)> {
    let out = stack
        .aws
        .dynamodb()
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("BUDGET#{bucket}")),
        )
        .send()
        .await
        .unwrap();
    let mut slots: Vec<(u64, u64, Value)> = out
        .items()
        .iter()
        .map(|item| {
            let num = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let tenants: Vec<String> = item
                .iter()
                .filter(|(k, _)| k.starts_with("t_"))
                .map(|(k, v)| format!("{k}={}", v.as_n().map(String::as_str).unwrap_or("?")))
                .collect();
            (
                item["sk"].as_s().unwrap().parse().unwrap(),
                num("used"),
                json!(tenants),
            )
        })
        .collect();
    slots.sort_by_key(|s| s.0);
    slots
}

#[tokio::test]
async fn pooled_containers_never_exceed_a_slot_in_dynamodb_and_share_it_between_merchants() {
    use shared::budget::{PoolLimits, PooledBudget, SlotStore};
    let stack = start(quiet(), HashMap::new()).await;
    let table = stack.config("PersonalizeWorkerFunction").app_table;
    let store: Arc<dyn SlotStore> = Arc::new(shared::aws::budget_store::DynamoSlots::new(
        stack.aws.dynamodb(),
        &table,
    ));
    let plan = PoolLimits {
        per_second: 12,
        per_minute: 10_000,
    };
    let bucket = format!("test#{:x}", rand::random::<u64>());
    // Four containers, each with several callers, one merchant: 60 units at 12 a slot.
    let containers: Vec<Arc<PooledBudget>> = (0..4)
        .map(|_| Arc::new(PooledBudget::new(store.clone(), &bucket, plan)))
        .collect();
    let mut tasks = Vec::new();
    for c in &containers {
        for _ in 0..3 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    c.acquire("", 1).await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let slots = slots_in_table(&stack, &table, &bucket).await;
    assert!(slots.iter().all(|(_, used, _)| *used <= 12), "{slots:?}");
    assert!(slots.iter().map(|s| s.1).sum::<u64>() >= 60, "{slots:?}");

    // Two merchants on one pooled Bedrock-like budget: one takes all it can, the other then
    // gets half of each slot, so its 12 units do not wait behind the first merchant's.
    let tenants_bucket = format!("test#{:x}", rand::random::<u64>());
    let big = Arc::new(PooledBudget::new(store.clone(), &tenants_bucket, plan).per_tenant());
    let small = PooledBudget::new(store.clone(), &tenants_bucket, plan).per_tenant();
    let hog = {
        let big = big.clone();
        tokio::spawn(async move {
            loop {
                big.acquire("merchantA", 1).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = std::time::Instant::now();
    for _ in 0..12 {
        small.acquire("merchantB", 1).await;
    }
    let waited = started.elapsed();
    hog.abort();
    let slots = slots_in_table(&stack, &table, &tenants_bucket).await;
    assert!(slots.iter().all(|(_, used, _)| *used <= 12), "{slots:?}");
    // Half of 12 a slot once B is seen waiting: two slots after the one it found full.
    assert!(waited < Duration::from_millis(4300), "{waited:?} {slots:?}");
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// the local AWS itself

/// DynamoDB applies each write atomically, and a transaction whose condition fails changes
/// nothing, whatever else is being written meanwhile. Plain moto breaks this under load (a failed
/// transaction puts back a copy of the whole table taken when it began, undoing other clients'
/// writes), which lost run counters in the e2e tests; infra/moto_server.py serialises it.
#[tokio::test]
async fn concurrent_writes_and_failed_transactions_lose_no_update_in_the_local_dynamodb() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType,
        PutRequest, ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
    };
    let client = shared::aws::Aws::load().await.dynamodb();
    let table = format!("{}atomicity", local_runner::random_prefix());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    // A table of some size, as a long test's app table: the copy a transaction takes is slow.
    for chunk in 0..40 {
        let puts = (0..25)
            .map(|i| {
                let item = PutRequest::builder()
                    .item("pk", Av::S(format!("filler{chunk}-{i}")))
                    .item("v", Av::S("x".repeat(200)))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(item).build()
            })
            .collect();
        client
            .batch_write_item()
            .request_items(&table, puts)
            .send()
            .await
            .expect("fill");
    }
    client
        .put_item()
        .table_name(&table)
        .item("pk", Av::S("done".into()))
        .send()
        .await
        .expect("put");

    const ADDERS: usize = 3;
    const ADDS: usize = 120;
    let mut tasks = Vec::new();
    for _ in 0..ADDERS {
        let (client, table) = (client.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ADDS {
                client
                    .update_item()
                    .table_name(&table)
                    .key("pk", Av::S("run".into()))
                    .update_expression("ADD n :one")
                    .expression_attribute_values(":one", Av::N("1".into()))
                    .send()
                    .await
                    .expect("add");
            }
        }));
    }
    for _ in 0..2 {
        let (client, table) = (client.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ADDS / 3 {
                let update = Update::builder()
                    .table_name(&table)
                    .key("pk", Av::S("done".into()))
                    .update_expression("SET x = :one")
                    .condition_expression("attribute_not_exists(pk)")
                    .expression_attribute_values(":one", Av::N("1".into()))
                    .build()
                    .unwrap();
                let refused = client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(update).build())
                    .send()
                    .await;
                assert!(refused.is_err(), "the condition fails: the item exists");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", Av::S("run".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .unwrap_or_default();
    let counted: usize = item
        .get("n")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let _ = client.delete_table().table_name(&table).send().await;
    assert_eq!(counted, ADDERS * ADDS, "every ADD is kept");
}
