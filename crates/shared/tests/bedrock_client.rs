//! The real `aws-sdk-bedrockruntime` client, wrapped by `BedrockClient`, against the sandbox's
//! Converse API over HTTP: grounded tool input, prompt-cache usage, retries and error kinds.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::config::Credentials;
use sandbox::{serve, Sandbox, SandboxConfig};
use serde_json::{json, Value};
use shared::bedrock::{BedrockClient, BedrockError, RetryPolicy, ToolRequest};
use shared::domain::{CatalogProduct, Money};
use shared::personalize::{
    parse_tool_output, validate, Offer, OfferKind, PersonalData, ProfilePrompt, PromptParts,
    PurchaseHistory, PurchasedItem, Settings, ValidationContext, TOOL_NAME,
};

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

async fn start(config: SandboxConfig) -> Sandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    serve(listener, config).await
}

fn small_sandbox() -> SandboxConfig {
    SandboxConfig {
        default_shop_products: 20,
        klaviyo_profiles: 20,
        ..SandboxConfig::default()
    }
}

/// The SDK client as tests build it: fixed region and credentials, endpoint set on the service
/// config (which wins over any `AWS_ENDPOINT_URL` in the environment, e.g. moto's).
async fn sdk_client(sb: &Sandbox) -> aws_sdk_bedrockruntime::Client {
    use aws_smithy_http_client::{tls, Builder};
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let conf = aws_sdk_bedrockruntime::config::Builder::from(&sdk)
        .endpoint_url(sb.bedrock_endpoint())
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(conf)
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

async fn client(sb: &Sandbox, model: &str) -> BedrockClient {
    BedrockClient::new(sdk_client(sb).await, model).with_retry_policy(fast_retries(6))
}

async fn set_fault(sb: &Sandbox, mode: &str, count: i64) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/bedrock/faults", sb.base_url))
        .json(&json!({ "mode": mode, "count": count }))
        .send()
        .await
        .expect("faults control");
    assert!(resp.status().is_success());
}

async fn bedrock_stats(sb: &Sandbox) -> Value {
    let stats: Value = reqwest::get(format!("{}/_sandbox/stats", sb.base_url))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    stats["bedrock"].clone()
}

fn product(id: u64, title: &str, price: &str) -> CatalogProduct {
    CatalogProduct {
        id: format!("gid://shopify/Product/{id}"),
        title: title.into(),
        description: format!("{title}, made to last."),
        handle: format!("p-{id}"),
        url: format!("https://shop.example/products/p-{id}"),
        tags: vec![],
        product_type: "Outdoor".into(),
        vendor: "Northwind".into(),
        price_min: Money {
            amount: price.into(),
            currency: "USD".into(),
        },
        price_max: Money {
            amount: price.into(),
            currency: "USD".into(),
        },
        image_url: Some(format!("https://cdn.example/{id}.jpg")),
        available: true,
        updated_at: String::new(),
    }
}

struct Customer {
    first_name: Option<&'static str>,
    history: PurchaseHistory,
    candidates: Vec<CatalogProduct>,
}

fn customers() -> Vec<Customer> {
    let bought = |title: &str| PurchaseHistory {
        items: vec![PurchasedItem {
            title: Some(title.into()),
            categories: vec!["Footwear".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    vec![
        Customer {
            first_name: Some("Ana"),
            history: bought("Trail Runner 2"),
            candidates: vec![
                product(1, "Storm Shell Jacket", "129.00"),
                product(2, "Merino Trail Socks", "19.00"),
                product(3, "Summit Daypack 22L", "89.50"),
            ],
        },
        Customer {
            first_name: None,
            history: PurchaseHistory::default(),
            candidates: vec![
                product(4, "Enamel Camp Mug", "14.00"),
                product(5, "Folding Camp Stool", "39.00"),
            ],
        },
    ]
}

const BRIEF: &str = "Winter is here: free shipping over $50 this week.";

fn offer() -> Offer {
    Offer {
        kind: OfferKind::FreeShipping,
        min_spend: Some("50.00".into()),
        ..Offer::default()
    }
}

fn settings() -> Settings {
    Settings {
        sign_off: "The Northwind team".into(),
        ..Settings::default()
    }
}

/// The request the worker builds: the personalize prompt, two customers in one batch.
fn personalize_request(customers: &[Customer], settings: &Settings) -> (ToolRequest, PromptParts) {
    let profiles = customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            ProfilePrompt::new(
                format!("C{}", i + 1),
                c.first_name,
                &c.history,
                &c.candidates,
            )
        })
        .collect();
    let parts = PromptParts::new(settings, BRIEF, &offer(), Some("USD"), profiles);
    let request = ToolRequest {
        system_static: parts.system_blocks().join("\n\n"),
        cache_system: true,
        user_message: parts.user_message(),
        tool_name: TOOL_NAME.into(),
        tool_description: "Return the email copy for every customer.".into(),
        tool_schema: parts.tool_schema.clone(),
        max_tokens: 2000,
        temperature: 0.4,
        ..Default::default()
    };
    (request, parts)
}

fn simple_request(system_static: String) -> ToolRequest {
    ToolRequest {
        system_static,
        cache_system: true,
        user_message: "Write copy.\n```json\n{\"profiles\":[{\"profile_ref\":\"C1\",\"first_name\":\"Ana\",\"history\":[\"Trail Runner 2\"],\"products\":[{\"ref\":\"P1\",\"title\":\"Storm Shell Jacket\",\"price\":\"129.00 USD\",\"description\":\"A jacket.\"}]}]}\n```".into(),
        tool_name: "emit_copy".into(),
        tool_description: "Return the copy.".into(),
        tool_schema: json!({
            "type": "object",
            "properties": {"profiles": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "profile_ref": {"type": "string"},
                    "subject": {"type": "string", "maxLength": 60},
                    "preheader": {"type": "string", "maxLength": 100},
                    "body": {"type": "string", "maxLength": 500},
                    "products": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                        "type": "object",
                        "properties": {"product_ref": {"type": "string"}},
                        "required": ["product_ref"]}}
                },
                "required": ["profile_ref", "subject", "preheader", "body", "products"]}}},
            "required": ["profiles"]
        }),
        max_tokens: 1000,
        temperature: 0.5,
        ..Default::default()
    }
}

/// Findings of the project's grounding validator for each customer's copy in `input`.
fn findings(
    input: &Value,
    parts: &PromptParts,
    customers: &[Customer],
    settings: &Settings,
) -> Vec<Vec<&'static str>> {
    let copies = parse_tool_output(input, &parts.expected_refs()).expect("tool output parses");
    customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let profile_ref = format!("C{}", i + 1);
            let copy = &copies
                .iter()
                .find(|(r, _)| *r == profile_ref)
                .expect("an entry per customer")
                .1;
            let offer = offer();
            let ctx = ValidationContext::new(
                &c.candidates,
                BRIEF,
                &offer,
                settings,
                PersonalData {
                    first_name: c.first_name,
                    last_name: Some("Doe"),
                    email: Some("jane.doe@example.com"),
                    phone_number: None,
                },
            )
            .with_purchases(&c.history);
            match validate(copy, &ctx) {
                Ok(_) => vec![],
                Err(fs) => fs.iter().map(|f| f.rule()).collect(),
            }
        })
        .collect()
}

#[tokio::test]
async fn tool_input_is_grounded_in_the_provided_products() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    let (customers, settings) = (customers(), settings());
    let (request, parts) = personalize_request(&customers, &settings);

    let resp = bedrock.converse_tool(&request).await.expect("converse");

    assert_eq!(resp.stop_reason, "tool_use");
    let copies = resp.input["copies"].as_array().expect("copies array");
    assert_eq!(copies.len(), 2);
    let ana = &copies[0];
    assert_eq!(ana["profile_ref"], "C1");
    let body = ana["body"].as_str().unwrap();
    assert!(body.contains("Ana"), "{body}");
    assert!(body.contains("Trail Runner 2"), "history context: {body}");
    assert!(body.contains("Winter is here"), "brief theme: {body}");
    assert!(body.ends_with("The Northwind team"), "sign-off: {body}");
    let refs: Vec<&str> = ana["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_str()
                .expect("products are bare refs, as the schema says")
        })
        .collect();
    assert!(!refs.is_empty() && refs.len() <= 3);
    for r in &refs {
        let i: usize = r[1..].parse().unwrap();
        let title = &customers[0].candidates[i - 1].title;
        assert!(body.contains(title.as_str()), "{title} in {body}");
    }
    assert!(!copies[1]["body"].as_str().unwrap().contains("Ana"));
    // The project's validator accepts the sandbox's well-behaved copy for every customer.
    assert_eq!(
        findings(&resp.input, &parts, &customers, &settings),
        vec![Vec::<&str>::new(), vec![]]
    );
    assert!(resp.usage.input_tokens > 0 && resp.usage.output_tokens > 0);
    let totals = bedrock.usage_totals();
    assert_eq!((totals.calls, totals.requests, totals.succeeded), (1, 1, 1));
}

#[tokio::test]
async fn content_faults_are_caught_by_the_grounding_validator() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, SONNET).await;
    let (customers, settings) = (customers(), settings());
    let (request, parts) = personalize_request(&customers, &settings);
    for (mode, rule) in [
        ("invent_product", "unknown_product"),
        ("invent_discount", "ungrounded_code"),
        ("wrong_price", "ungrounded_price"),
        ("overlong", "slot_too_long"),
        ("leak_pii", "personal_data"),
    ] {
        set_fault(&sb, mode, 1).await;
        let resp = bedrock.converse_tool(&request).await.expect(mode);
        let found = findings(&resp.input, &parts, &customers, &settings);
        assert!(found[0].contains(&rule), "{mode}: {found:?}");
        assert!(
            found[1].is_empty(),
            "{mode} touches the first customer only: {found:?}"
        );
    }
    // The next call behaves again.
    let resp = bedrock.converse_tool(&request).await.unwrap();
    assert_eq!(
        findings(&resp.input, &parts, &customers, &settings),
        vec![Vec::<&str>::new(), vec![]]
    );
}

#[tokio::test]
async fn malformed_tool_input_reaches_the_caller_for_validation() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    set_fault(&sb, "malformed", 1).await;
    let resp = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .unwrap();
    let entry = &resp.input["profiles"][0];
    assert!(entry.get("body").is_none());
    assert!(entry["products"].is_string());
}

#[tokio::test]
async fn long_static_prefix_is_written_to_the_cache_then_read() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    // ≈ 5,000 tokens: above Haiku 4.5's 4,096-token minimum.
    let system = "Write warm, specific, plain-text copy for outdoor gear customers. ".repeat(310);
    let request = simple_request(system);

    let first = bedrock.converse_tool(&request).await.unwrap();
    let second = bedrock.converse_tool(&request).await.unwrap();

    assert!(first.usage.cache_write_tokens >= 4096, "{:?}", first.usage);
    assert_eq!(first.usage.cache_read_tokens, 0);
    assert_eq!(
        second.usage.cache_read_tokens,
        first.usage.cache_write_tokens
    );
    assert_eq!(second.usage.cache_write_tokens, 0);
    assert_eq!(second.usage.input_tokens, first.usage.input_tokens);
    assert!(
        second.usage.input_tokens < 1000,
        "cached part excluded: {:?}",
        second.usage
    );
    let totals = bedrock.usage_totals();
    assert_eq!(totals.cache_write_tokens, first.usage.cache_write_tokens);
    assert_eq!(totals.cache_read_tokens, first.usage.cache_write_tokens);
}

#[tokio::test]
async fn prefix_below_the_model_minimum_is_not_cached() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    // ≈ 2,000 tokens: cacheable on Sonnet (1,024), not on Haiku 4.5 (4,096).
    let request = simple_request("Write warm, plain-text copy for customers. ".repeat(190));
    for _ in 0..2 {
        let r = bedrock.converse_tool(&request).await.unwrap();
        assert_eq!(
            (r.usage.cache_read_tokens, r.usage.cache_write_tokens),
            (0, 0)
        );
    }
    let sonnet = client(&sb, SONNET).await;
    let first = sonnet.converse_tool(&request).await.unwrap();
    assert!(first.usage.cache_write_tokens > 1024);
}

#[tokio::test]
async fn throttling_is_retried_until_it_clears() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    set_fault(&sb, "throttle", 3).await;

    let resp = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .expect("succeeds on the fourth attempt");

    assert_eq!(resp.stop_reason, "tool_use");
    let totals = bedrock.usage_totals();
    assert_eq!(
        (
            totals.calls,
            totals.requests,
            totals.throttled,
            totals.retries
        ),
        (1, 4, 3, 3)
    );
    let stats = bedrock_stats(&sb).await;
    assert_eq!(stats["requests"], 4, "the SDK adds no retries of its own");
    assert_eq!(stats["throttled"], 3);
}

#[tokio::test]
async fn persistent_throttling_surfaces_as_throttled() {
    let sb = start(small_sandbox()).await;
    let bedrock =
        BedrockClient::new(sdk_client(&sb).await, HAIKU).with_retry_policy(fast_retries(3));
    set_fault(&sb, "throttle", -1).await;

    let err = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .unwrap_err();

    assert!(matches!(err, BedrockError::Throttled), "{err:?}");
    assert_eq!(bedrock_stats(&sb).await["requests"], 3);
    let totals = bedrock.usage_totals();
    assert_eq!((totals.requests, totals.retries, totals.failed), (3, 2, 1));
}

#[tokio::test]
async fn requests_over_the_rpm_quota_are_throttled() {
    let sb = start(SandboxConfig {
        bedrock_rpm: 2,
        ..small_sandbox()
    })
    .await;
    let bedrock =
        BedrockClient::new(sdk_client(&sb).await, HAIKU).with_retry_policy(fast_retries(2));
    let request = simple_request("Write copy.".into());
    bedrock.converse_tool(&request).await.unwrap();
    bedrock.converse_tool(&request).await.unwrap();
    let err = bedrock.converse_tool(&request).await.unwrap_err();
    assert!(matches!(err, BedrockError::Throttled), "{err:?}");
}

#[tokio::test]
async fn internal_errors_are_retried_then_reported_transient() {
    let sb = start(small_sandbox()).await;
    let bedrock =
        BedrockClient::new(sdk_client(&sb).await, HAIKU).with_retry_policy(fast_retries(3));
    let request = simple_request("Write copy.".into());

    set_fault(&sb, "fail", 1).await;
    bedrock
        .converse_tool(&request)
        .await
        .expect("one failure is retried");

    set_fault(&sb, "fail", -1).await;
    let err = bedrock.converse_tool(&request).await.unwrap_err();
    assert!(
        matches!(&err, BedrockError::Transient(m) if m.contains("InternalServerException")),
        "{err:?}"
    );

    for mode in ["timeout", "unavailable"] {
        set_fault(&sb, mode, -1).await;
        let err = bedrock.converse_tool(&request).await.unwrap_err();
        assert!(matches!(err, BedrockError::Transient(_)), "{mode}: {err:?}");
    }
    assert_eq!(bedrock_stats(&sb).await["requests"], 2 + 3 * 3);
}

#[tokio::test]
async fn max_tokens_stop_is_reported_truncated() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    set_fault(&sb, "max_tokens", 1).await;
    let err = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .unwrap_err();
    let BedrockError::Truncated { usage } = err else {
        panic!("expected Truncated, got {err:?}");
    };
    assert_eq!(usage.output_tokens, 1000);
    assert_eq!(
        bedrock.usage_totals().output_tokens,
        1000,
        "billed tokens still counted"
    );

    // A maxTokens too small for the answer truncates it the same way.
    let mut small = simple_request("Write copy.".into());
    small.max_tokens = 10;
    assert!(matches!(
        bedrock.converse_tool(&small).await,
        Err(BedrockError::Truncated { .. })
    ));
}

#[tokio::test]
async fn unknown_model_is_invalid_and_not_retried() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, "us.example.not-a-model-v1:0").await;
    let err = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BedrockError::Invalid(m) if m.contains("model identifier")),
        "{err:?}"
    );
    assert_eq!(bedrock_stats(&sb).await["requests"], 1);
    assert_eq!(bedrock.usage_totals().retries, 0);

    // A bare base model id needs an inference profile, as on the real service.
    let bare = client(&sb, "anthropic.claude-haiku-4-5-20251001-v1:0").await;
    let err = bare
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BedrockError::Invalid(m) if m.contains("inference profile")),
        "{err:?}"
    );
}

#[tokio::test]
async fn max_tokens_above_the_model_limit_is_invalid() {
    let sb = start(small_sandbox()).await;
    let bedrock = client(&sb, HAIKU).await;
    let mut request = simple_request("Write copy.".into());
    request.max_tokens = 200_000;
    let err = bedrock.converse_tool(&request).await.unwrap_err();
    assert!(matches!(err, BedrockError::Invalid(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_caps_calls_in_flight() {
    let sb = start(SandboxConfig {
        bedrock_latency_ms: 100,
        ..small_sandbox()
    })
    .await;
    let bedrock = client(&sb, HAIKU).await.with_max_concurrency(1);
    let request = simple_request("Write copy.".into());
    let started = Instant::now();
    let calls = (0..4).map(|_| bedrock.converse_tool(&request));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

/// The production path (`sdk_config()` + `from_sdk`) in a child process, whose environment
/// points every AWS client at a dead "moto" but Bedrock at the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_endpoint_env_wins_over_aws_endpoint_url() {
    let sb = start(small_sandbox()).await;
    let endpoint = sb.bedrock_endpoint();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_calls_bedrock_through_env_endpoint",
                "--nocapture",
            ])
            .env("SP_BEDROCK_CHILD", "1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_eq!(bedrock_stats(&sb).await["requests"], 1);
}

#[tokio::test]
#[ignore = "run by bedrock_endpoint_env_wins_over_aws_endpoint_url in a child process"]
async fn child_calls_bedrock_through_env_endpoint() {
    if std::env::var("SP_BEDROCK_CHILD").is_err() {
        return;
    }
    let sdk = shared::aws::sdk_config().await;
    let bedrock = BedrockClient::from_sdk(&sdk, HAIKU).with_retry_policy(fast_retries(1));
    let resp = bedrock
        .converse_tool(&simple_request("Write copy.".into()))
        .await
        .expect("reaches the sandbox");
    assert_eq!(resp.input["profiles"][0]["profile_ref"], "C1");
}
