//! `BENCH_PARTS=grounding`: the grounding gate's confusion table on the labelled corpus (through
//! the preview API, the sandbox model scripted), then a campaign run with the sandbox model in
//! writer mode at its default defect rates: how much it skips, why, and whether any injected
//! defect was written. Vendor timings are scaled down here: these are counts, not speeds.

use local_runner::grounding_corpus::{stack_options, Runner};
use local_runner::{LocalStack, StackOptions};
use serde_json::{json, Value};
use shared::edge::FunctionError;
use std::time::Duration;

pub async fn grounding() -> Result<(), FunctionError> {
    let mut options = StackOptions::default();
    options.sandbox.vendor_time_scale = 0.02;
    options.sandbox.default_shop_products = 300;
    options.sandbox.klaviyo_limits = sandbox::RateLimits::Relaxed;
    stack_options(&mut options);
    let stack = LocalStack::start(options).await?;
    let started = std::time::Instant::now();
    let confusion = Runner::new(&stack).run().await;
    let corpus_seconds = started.elapsed().as_secs_f64();
    println!(
        "Grounding gate on the labelled corpus ({} cases, through the preview API):",
        confusion.results.len()
    );
    for r in confusion.wrong() {
        println!(
            "  wrong: {} [{} {}] {}",
            r.id,
            if r.defect {
                "defect passed"
            } else {
                "clean rejected"
            },
            r.kind,
            r.findings.join(" | ")
        );
    }
    println!(
        "  recall {:.3} (prices and personal data {:.3}), clean copy rejected {:.3}",
        confusion.recall(),
        confusion.recall_of(&[
            "wrong_price",
            "personal_data",
            "surname",
            "other_customer_name",
            "name_when_unknown"
        ]),
        confusion.false_rejections()
    );

    let writer = writer_run(&stack).await?;
    let mut line = json!({
        "bench": "grounding",
        "cases": confusion.results.len(),
        "recall": (confusion.recall() * 1000.0).round() / 1000.0,
        "recall_prices_and_personal_data": confusion.recall_of(&["wrong_price", "personal_data", "surname", "other_customer_name", "name_when_unknown"]),
        "clean_rejected": (confusion.false_rejections() * 1000.0).round() / 1000.0,
        "corpus_seconds": corpus_seconds.round(),
        "writer_mode_run": writer,
    });
    line["confusion"] = confusion.table();
    println!("{line}");
    Ok(())
}

/// A 300-profile run with the model writing like a model; its skips and the injected defects
/// found in what was written (read back from Klaviyo).
async fn writer_run(stack: &LocalStack) -> Result<Value, FunctionError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let sandbox = &stack.sandbox.base_url;
    let post = |path: String, body: Value| http.post(path).json(&body).send();
    post(
        format!("{sandbox}/_sandbox/bedrock/writer"),
        json!({ "enabled": true, "reset": true }),
    )
    .await?
    .error_for_status()?;
    let merchant = "b3b1a7c2-5d6e-4f70-8a91-0000000000a1";
    let token = stack.token(merchant).await;
    let key = stack.sandbox.full_access_klaviyo_key();
    let api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{}{path}", stack.api_url))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    stack
        .connect_merchant(&http, &token, Some(&key), "demo-store.myshopify.com")
        .await?;
    stack.drain(Duration::from_secs(300)).await?;
    let audiences: Value = api(reqwest::Method::GET, "/audiences", None)
        .await?
        .json()
        .await?;
    let vip = audiences["audiences"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "VIP + Engaged"))
        .cloned()
        .ok_or("no VIP segment")?;
    let offer =
        json!({ "kind": "percent_off", "percent": 20, "code": "SNOW20", "ends_on": "2026-12-24" });
    let created: Value = api(
        reqwest::Method::POST,
        "/runs",
        Some(json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": "Warm layers for the first cold weekends", "offer": offer, "profile_cap": 300 })),
    )
    .await?
    .json()
    .await?;
    stack.drain(Duration::from_secs(900)).await?;
    let id = created["run"]["run_id"].as_str().ok_or("no run id")?;
    let run: Value = api(reqwest::Method::GET, &format!("/runs/{id}"), None)
        .await?
        .json()
        .await?;
    let injected: Value = http
        .get(format!("{sandbox}/_sandbox/bedrock/injected"))
        .send()
        .await?
        .json()
        .await?;
    let injected = injected["injected"].as_array().cloned().unwrap_or_default();
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    for i in &injected {
        *by_kind
            .entry(i["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let counts = &run["counts"];
    let total = counts["total"].as_f64().unwrap_or(0.0).max(1.0);
    // `skipped` is by reason.
    let skipped: f64 = counts["skipped"]
        .as_object()
        .map_or(0.0, |by| by.values().filter_map(Value::as_f64).sum());
    println!(
        "Writer-mode run: {} profiles, {} written, {} skipped ({:.1}%), {} injected defects {:?}",
        counts["total"],
        counts["written"],
        counts["skipped"],
        100.0 * skipped / total,
        injected.len(),
        by_kind
    );
    Ok(json!({
        "profiles": counts["total"],
        "written": counts["written"],
        "skip_rate": (skipped / total * 1000.0).round() / 1000.0,
        "counts": counts,
        "injected": injected.len(),
        "injected_by_kind": by_kind,
    }))
}
