//! The sandbox's Bedrock Converse API over raw HTTP: wire format, usage, errors, faults,
//! quotas and the prompt cache.

mod common;

use common::*;
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"profiles": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {
                "profile_ref": {"type": "string"},
                "subject": {"type": "string", "minLength": 1, "maxLength": 60},
                "preheader": {"type": "string", "minLength": 1, "maxLength": 100},
                "body": {"type": "string", "minLength": 1, "maxLength": 400},
                "products": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                    "type": "object",
                    "properties": {"product_ref": {"type": "string", "pattern": "^P[0-9]+$"}},
                    "required": ["product_ref"],
                    "additionalProperties": false}}
            },
            "required": ["profile_ref", "subject", "preheader", "body", "products"],
            "additionalProperties": false}}},
        "required": ["profiles"],
        "additionalProperties": false
    })
}

fn user_message() -> String {
    let doc = json!({
        "brief": "Winter sale: free shipping over $50 this week.",
        "profiles": [
            {"profile_ref": "C1", "first_name": "Ana", "history": ["Trail Runner 2", "Merino Beanie"],
             "products": [
                {"ref": "P1", "title": "Storm Shell Jacket", "price": "129.00 USD", "description": "Waterproof."},
                {"ref": "P2", "title": "Merino Trail Socks", "price": "19.00 USD", "description": "Warm."},
                {"ref": "P3", "title": "Summit Daypack 22L", "price": "89.50 USD", "description": "Light."},
                {"ref": "P4", "title": "Enamel Camp Mug", "price": "14.00 USD", "description": "Tough."}]},
            {"profile_ref": "C2", "first_name": null, "history": [],
             "products": [{"ref": "P1", "title": "Folding Camp Stool", "price": "39.00 USD", "description": "Packs small."}]}
        ]
    });
    format!(
        "Write copy for these customers.\n```json\n{}\n```\nCall emit_copy once.",
        serde_json::to_string_pretty(&doc).unwrap()
    )
}

fn converse_body(system: &str, user: &str) -> Value {
    json!({
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": user}]}],
        "inferenceConfig": {"maxTokens": 2000, "temperature": 0.5},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "emit_copy", "description": "Return the copy.",
                                    "inputSchema": {"json": schema()}}}],
            "toolChoice": {"tool": {"name": "emit_copy"}}
        }
    })
}

/// The URL the SDK calls: the model id percent-encoded (`:` → `%3A`).
fn converse_url(sb: &Sandbox, model: &str) -> String {
    format!(
        "{}/model/{}/converse",
        sb.bedrock_endpoint(),
        model.replace(':', "%3A")
    )
}

async fn converse(
    sb: &Sandbox,
    model: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(converse_url(sb, model))
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")
        .json(body)
        .send()
        .await
        .expect("converse request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.expect("json body"))
}

async fn ok_converse(sb: &Sandbox, model: &str, body: &Value) -> Value {
    let (status, _, v) = converse(sb, model, body).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn set_fault(sb: &Sandbox, mode: &str, count: i64) {
    let resp = client()
        .post(format!("{}/_sandbox/bedrock/faults", sb.base_url))
        .json(&json!({ "mode": mode, "count": count }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{mode}");
}

async fn stats(sb: &Sandbox) -> Value {
    let v: Value = client()
        .get(format!("{}/_sandbox/stats", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["bedrock"].clone()
}

fn tool_input(resp: &Value) -> &Value {
    &resp["output"]["message"]["content"][0]["toolUse"]["input"]
}

fn first_body(resp: &Value) -> &str {
    tool_input(resp)["profiles"][0]["body"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn forced_tool_is_answered_with_grounded_tool_use() {
    let sb = start(small_config()).await;
    let resp = ok_converse(
        &sb,
        HAIKU,
        &converse_body("You write copy.", &user_message()),
    )
    .await;

    assert_eq!(resp["stopReason"], "tool_use");
    let message = &resp["output"]["message"];
    assert_eq!(message["role"], "assistant");
    let tool_use = &message["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], "emit_copy");
    assert!(tool_use["toolUseId"]
        .as_str()
        .unwrap()
        .starts_with("tooluse_"));

    let profiles = tool_use["input"]["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2, "one entry per customer");
    let ana = &profiles[0];
    assert_eq!(ana["profile_ref"], "C1");
    let body = ana["body"].as_str().unwrap();
    assert!(body.chars().count() <= 400);
    assert!(ana["subject"].as_str().unwrap().chars().count() <= 60);
    assert!(
        body.contains("Ana") && body.contains("Trail Runner 2"),
        "{body}"
    );
    assert!(body.contains("Winter sale"), "brief theme: {body}");
    let titles = [
        "Storm Shell Jacket",
        "Merino Trail Socks",
        "Summit Daypack 22L",
        "Enamel Camp Mug",
    ];
    let products = ana["products"].as_array().unwrap();
    assert!((1..=3).contains(&products.len()));
    for p in products {
        let r = p["product_ref"].as_str().unwrap();
        let i: usize = r[1..].parse().unwrap();
        assert!(body.contains(titles[i - 1]), "{r} named in {body}");
    }
    let other = profiles[1]["body"].as_str().unwrap();
    assert!(
        other.contains("Folding Camp Stool") && !other.contains("Ana"),
        "{other}"
    );

    // The model id arrives percent-encoded and is decoded.
    let log: Value = client()
        .get(format!("{}/_sandbox/bedrock/requests?last=1", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["requests"][0]["model_id"], HAIKU);
}

#[tokio::test]
async fn same_request_gets_the_same_answer() {
    let sb = start(small_config()).await;
    let body = converse_body("You write copy.", &user_message());
    let a = ok_converse(&sb, SONNET, &body).await;
    let b = ok_converse(&sb, SONNET, &body).await;
    assert_eq!(tool_input(&a), tool_input(&b));
}

#[tokio::test]
async fn without_a_profiles_document_the_input_still_fits_the_schema() {
    let sb = start(small_config()).await;
    let resp = ok_converse(&sb, HAIKU, &converse_body("You write copy.", "Say hello.")).await;
    let entry = &tool_input(&resp)["profiles"][0];
    for field in ["profile_ref", "subject", "preheader", "body"] {
        assert!(!entry[field].as_str().unwrap().is_empty(), "{field}");
    }
    assert!(entry["products"].is_array());
}

#[tokio::test]
async fn usage_counts_about_four_characters_per_token() {
    let sb = start(small_config()).await;
    let system = "x".repeat(4000);
    let resp = ok_converse(&sb, HAIKU, &converse_body(&system, &user_message())).await;
    let usage = &resp["usage"];
    let chars = system.len() + user_message().len() + schema().to_string().len();
    let input = usage["inputTokens"].as_u64().unwrap() as usize;
    assert!(
        input >= chars / 4 && input <= chars / 4 + 60,
        "{input} for {chars} chars"
    );
    let output = usage["outputTokens"].as_u64().unwrap() as usize;
    let out_chars = tool_input(&resp).to_string().len();
    assert!(
        output.abs_diff(out_chars / 4) <= 2,
        "{output} for {out_chars} chars"
    );
    assert_eq!(
        usage["totalTokens"].as_u64().unwrap() as usize,
        input + output
    );
    assert_eq!(usage["cacheReadInputTokens"], 0);
    assert_eq!(usage["cacheWriteInputTokens"], 0);
    assert!(resp["metrics"]["latencyMs"].is_u64());
}

#[tokio::test]
async fn cache_point_writes_the_prefix_then_reads_it() {
    let sb = start(small_config()).await;
    // ≈ 1,500 tokens: above Sonnet's 1,024-token minimum, below Haiku 4.5's 4,096.
    let system = "Write warm, specific, plain-text copy. ".repeat(155);
    let mut body = converse_body(&system, &user_message());
    body["system"] = json!([{"text": system}, {"cachePoint": {"type": "default"}}]);

    let first = ok_converse(&sb, SONNET, &body).await;
    let write = first["usage"]["cacheWriteInputTokens"].as_u64().unwrap();
    assert!(write >= 1024, "{}", first["usage"]);
    assert_eq!(first["usage"]["cacheReadInputTokens"], 0);

    let mut other_user = body.clone();
    other_user["messages"][0]["content"][0]["text"] = json!(user_message().replace("Ana", "Bea"));
    let second = ok_converse(&sb, SONNET, &other_user).await;
    assert_eq!(second["usage"]["cacheReadInputTokens"], write);
    assert_eq!(second["usage"]["cacheWriteInputTokens"], 0);
    let total_first = first["usage"]["inputTokens"].as_u64().unwrap() + write;
    let input_second = second["usage"]["inputTokens"].as_u64().unwrap();
    assert!(
        input_second + write <= total_first + 5,
        "input excludes the cached prefix"
    );

    // Below Haiku 4.5's minimum nothing is cached.
    for _ in 0..2 {
        let r = ok_converse(&sb, HAIKU, &body).await;
        assert_eq!(r["usage"]["cacheWriteInputTokens"], 0);
        assert_eq!(r["usage"]["cacheReadInputTokens"], 0);
    }
    let s = stats(&sb).await;
    assert_eq!(s["cache_write_input_tokens"], write);
    assert_eq!(s["cache_read_input_tokens"], write);
}

#[tokio::test]
async fn cache_point_in_tools_caches_the_tool_definitions() {
    let sb = start(small_config()).await;
    let mut body = converse_body("Short system.", &user_message());
    let mut big = schema();
    big["description"] = json!("Copy rules. ".repeat(400));
    body["toolConfig"]["tools"] = json!([
        {"toolSpec": {"name": "emit_copy", "description": "Return the copy.", "inputSchema": {"json": big}}},
        {"cachePoint": {"type": "default"}}
    ]);
    let first = ok_converse(&sb, SONNET, &body).await;
    let second = ok_converse(&sb, SONNET, &body).await;
    let write = first["usage"]["cacheWriteInputTokens"].as_u64().unwrap();
    assert!(write >= 1024);
    assert_eq!(second["usage"]["cacheReadInputTokens"], write);
}

#[tokio::test]
async fn errors_carry_the_type_in_header_and_body() {
    let sb = start(small_config()).await;
    let body = converse_body("You write copy.", &user_message());

    let (status, headers, v) = converse(&sb, "us.example.unknown-v1:0", &body).await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-amzn-errortype"], "ValidationException");
    assert_eq!(v["__type"], "ValidationException");
    assert!(v["message"].as_str().unwrap().contains("model identifier"));

    let resp = client()
        .post(converse_url(&sb, HAIKU))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-amzn-errortype"], "ValidationException");

    let mut too_many = body.clone();
    too_many["inferenceConfig"]["maxTokens"] = json!(100_000);
    let (status, headers, _) = converse(&sb, HAIKU, &too_many).await;
    assert_eq!(
        (status, headers["x-amzn-errortype"].to_str().unwrap()),
        (400, "ValidationException")
    );

    let mut unknown_tool = body.clone();
    unknown_tool["toolConfig"]["toolChoice"] = json!({"tool": {"name": "other"}});
    assert_eq!(converse(&sb, HAIKU, &unknown_tool).await.0, 400);

    let mut assistant_first = body.clone();
    assistant_first["messages"][0]["role"] = json!("assistant");
    assert_eq!(converse(&sb, HAIKU, &assistant_first).await.0, 400);

    for (mode, status, kind) in [
        ("throttle", 429, "ThrottlingException"),
        ("fail", 500, "InternalServerException"),
        ("unavailable", 503, "ServiceUnavailableException"),
        ("timeout", 408, "ModelTimeoutException"),
    ] {
        set_fault(&sb, mode, 1).await;
        let (s, h, v) = converse(&sb, HAIKU, &body).await;
        assert_eq!(s, status, "{mode}");
        assert_eq!(h["x-amzn-errortype"], kind);
        assert_eq!(v["__type"], kind);
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let s = stats(&sb).await;
    assert_eq!(s["errors"]["ValidationException"], 5);
    assert_eq!(s["throttled"], 1);
}

#[tokio::test]
async fn faults_apply_to_the_next_n_calls_then_clear() {
    let sb = start(small_config()).await;
    let body = converse_body("You write copy.", &user_message());
    set_fault(&sb, "invent_discount", 2).await;
    for _ in 0..2 {
        let r = ok_converse(&sb, HAIKU, &body).await;
        assert!(first_body(&r).contains("Use code SAVE20 for 20% off"));
    }
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert!(!first_body(&r).contains("SAVE20"));

    set_fault(&sb, "throttle", -1).await;
    for _ in 0..3 {
        assert_eq!(converse(&sb, HAIKU, &body).await.0, 429);
    }
    set_fault(&sb, "none", 0).await;
    assert_eq!(converse(&sb, HAIKU, &body).await.0, 200);

    let bad = client()
        .post(format!("{}/_sandbox/bedrock/faults", sb.base_url))
        .json(&json!({"mode": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn content_faults_bend_only_the_first_customer() {
    let sb = start(small_config()).await;
    let body = converse_body("You write copy.", &user_message());

    set_fault(&sb, "invent_product", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    let refs: Vec<&str> = tool_input(&r)["profiles"][0]["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product_ref"].as_str().unwrap())
        .collect();
    assert!(refs.contains(&"P9"), "{refs:?}");
    assert!(first_body(&r).contains("Aurora Summit Parka"));
    assert!(!tool_input(&r)["profiles"][1].to_string().contains("P9"));

    set_fault(&sb, "wrong_price", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert!(first_body(&r).contains("103.20 USD"), "{}", first_body(&r));

    set_fault(&sb, "overlong", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert!(first_body(&r).chars().count() > 3 * 400);

    set_fault(&sb, "leak_pii", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert!(first_body(&r).contains("jane.doe@example.com") && first_body(&r).contains("Ana Doe"));

    set_fault(&sb, "malformed", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    let entry = &tool_input(&r)["profiles"][0];
    assert!(entry.get("body").is_none());
    assert!(entry["products"].is_string());
    assert_eq!(r["stopReason"], "tool_use");

    set_fault(&sb, "max_tokens", 1).await;
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert_eq!(r["stopReason"], "max_tokens");
    assert_eq!(r["usage"]["outputTokens"], 2000);
    let cut = tool_input(&r)["profiles"].as_array().unwrap();
    assert_eq!(cut.len(), 1);
    assert!(cut[0].get("products").is_none());

    let s = stats(&sb).await;
    for mode in [
        "invent_product",
        "wrong_price",
        "overlong",
        "leak_pii",
        "malformed",
        "max_tokens",
    ] {
        assert_eq!(s["faults_applied"][mode], 1, "{mode}");
    }
}

#[tokio::test]
async fn small_max_tokens_truncates_the_answer() {
    let sb = start(small_config()).await;
    let mut body = converse_body("You write copy.", &user_message());
    body["inferenceConfig"]["maxTokens"] = json!(20);
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert_eq!(r["stopReason"], "max_tokens");
    assert_eq!(r["usage"]["outputTokens"], 20);
}

#[tokio::test]
async fn requests_over_the_rpm_quota_are_throttled() {
    let sb = start(SandboxConfig {
        bedrock_rpm: 3,
        ..small_config()
    })
    .await;
    let body = converse_body("You write copy.", &user_message());
    for _ in 0..3 {
        assert_eq!(converse(&sb, HAIKU, &body).await.0, 200);
    }
    let (status, headers, _) = converse(&sb, HAIKU, &body).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-amzn-errortype"], "ThrottlingException");
    // The quota is per model.
    assert_eq!(converse(&sb, SONNET, &body).await.0, 200);
    let s = stats(&sb).await;
    assert_eq!(
        (s["requests"].as_u64(), s["throttled"].as_u64()),
        (Some(5), Some(1))
    );
}

#[tokio::test]
async fn tokens_over_the_tpm_quota_are_throttled() {
    // The first call reserves ~1,100 input + 2,000 maxTokens and settles to its input plus 5×
    // its output; the second call's reservation no longer fits.
    let sb = start(SandboxConfig {
        bedrock_tpm: 4_000,
        ..small_config()
    })
    .await;
    let body = converse_body(&"x".repeat(3200), &user_message());
    assert_eq!(converse(&sb, HAIKU, &body).await.0, 200);
    assert_eq!(converse(&sb, HAIKU, &body).await.0, 429);
}

#[tokio::test]
async fn requests_log_returns_the_last_bodies() {
    let sb = start(small_config()).await;
    for i in 0..3 {
        let body = converse_body(&format!("system {i}"), &user_message());
        ok_converse(&sb, HAIKU, &body).await;
    }
    let log: Value = client()
        .get(format!("{}/_sandbox/bedrock/requests?last=2", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = log["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["body"]["system"][0]["text"], "system 1");
    assert_eq!(requests[1]["body"]["system"][0]["text"], "system 2");
    assert!(requests[1]["body"]["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Storm Shell Jacket"));
}

#[tokio::test]
async fn stats_count_requests_and_tokens() {
    let sb = start(small_config()).await;
    let body = converse_body("You write copy.", &user_message());
    let r = ok_converse(&sb, HAIKU, &body).await;
    let s = stats(&sb).await;
    assert_eq!(s["requests"], 1);
    assert_eq!(s["succeeded"], 1);
    assert_eq!(s["requests_by_model"][HAIKU], 1);
    assert_eq!(s["input_tokens"], r["usage"]["inputTokens"]);
    assert_eq!(s["output_tokens"], r["usage"]["outputTokens"]);
}

#[tokio::test]
async fn without_tools_the_answer_is_text() {
    let sb = start(small_config()).await;
    let body = json!({
        "messages": [{"role": "user", "content": [{"text": user_message()}]}],
        "inferenceConfig": {"maxTokens": 500}
    });
    let r = ok_converse(&sb, HAIKU, &body).await;
    assert_eq!(r["stopReason"], "end_turn");
    let text = r["output"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("Ana"), "{text}");
}

/// A model that answers in a steady 1.5 s (no jitter), at the vendor's own time.
fn slow_model(tpm: u64) -> SandboxConfig {
    SandboxConfig {
        bedrock_tpm: tpm,
        bedrock_speed: Some(sandbox::ModelSpeed {
            time_to_first_token_ms: 1_500.0,
            output_tokens_per_s: 1_000.0,
            input_tokens_per_s: 1_000_000.0,
            jitter: 0.0,
        }),
        vendor_time_scale: 1.0,
        ..small_config()
    }
}

#[tokio::test]
async fn calls_in_flight_hold_input_plus_max_tokens_until_they_settle() {
    // Each call reserves its input (≤ 1,500 tokens) + maxTokens 20,000 while in flight: three
    // reservations fit in 64,500 tokens, a fourth does not. Settled, a call holds only its input
    // and 5× its output (a few thousand), so a new call fits again.
    let sb = start(slow_model(64_500)).await;
    let mut body = converse_body("You write copy.", &user_message());
    body["inferenceConfig"]["maxTokens"] = json!(20_000);
    let call = || converse(&sb, HAIKU, &body);
    let (a, b, c, d, e) = tokio::join!(call(), call(), call(), call(), call());
    let answers = [a, b, c, d, e];
    let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let throttled: Vec<&Value> = answers
        .iter()
        .filter(|(s, _, _)| *s == 429)
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!((ok, throttled.len()), (3, 2));
    for v in &throttled {
        assert_eq!(
            v["message"],
            "Too many tokens, please wait before trying again."
        );
    }
    let s = stats(&sb).await;
    assert_eq!(s["peak_in_flight"], 3);
    assert_eq!(s["throttled_by"]["tokens"], 2);
    assert_eq!(s["throttled_by"]["requests"], 0);
    // Within the same minute, the settled calls leave room for another reservation.
    assert_eq!(converse(&sb, HAIKU, &body).await.0, 200);
}

#[tokio::test]
async fn output_tokens_count_against_the_quota_times_the_burndown() {
    for burndown in [5.0, 1.0] {
        let sb = start(SandboxConfig {
            bedrock_output_burndown: burndown,
            ..small_config()
        })
        .await;
        let r = ok_converse(
            &sb,
            HAIKU,
            &converse_body("You write copy.", &user_message()),
        )
        .await;
        let usage = &r["usage"];
        let (input, output) = (
            usage["inputTokens"].as_u64().unwrap(),
            usage["outputTokens"].as_u64().unwrap(),
        );
        assert!(output > 100, "copy for two customers: {output} tokens");
        let s = stats(&sb).await;
        assert_eq!(
            s["quota_tokens"].as_u64().unwrap(),
            input + (output as f64 * burndown) as u64,
            "burndown {burndown}"
        );
    }
}

#[tokio::test]
async fn a_call_takes_time_to_first_token_plus_output_at_the_model_speed() {
    let sb = start(SandboxConfig {
        bedrock_speed: Some(sandbox::ModelSpeed {
            time_to_first_token_ms: 300.0,
            output_tokens_per_s: 200.0,
            input_tokens_per_s: 1_000_000.0,
            jitter: 0.0,
        }),
        vendor_time_scale: 1.0,
        ..small_config()
    })
    .await;
    let started = std::time::Instant::now();
    let r = ok_converse(
        &sb,
        HAIKU,
        &converse_body("You write copy.", &user_message()),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let output = r["usage"]["outputTokens"].as_f64().unwrap();
    let modelled = 0.3 + output / 200.0;
    assert!(elapsed >= modelled, "{elapsed:.3} s < {modelled:.3} s");
    let latency = r["metrics"]["latencyMs"].as_f64().unwrap() / 1000.0;
    assert!(latency >= modelled, "metrics.latencyMs {latency:.3} s");
    let s = stats(&sb).await;
    assert!(s["latency_ms"]["max"].as_f64().unwrap() / 1000.0 >= modelled);
}
