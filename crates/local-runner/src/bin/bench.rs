//! `make bench`: figures, not pass/fail. Catalog sync of a 10,000-product store against the
//! sandbox's Shopify cost throttle (Plus plan: 20,000-point bucket, 1,000 points/s) and moto's
//! DynamoDB, once through paged GraphQL and once through a bulk operation (what production uses
//! for a store this size). The last line is one JSON object for the production path.

use catalog_sync::{SyncOutcome, SyncReport};
use local_runner::{LocalStack, StackOptions};
use reqwest::redirect;
use serde_json::json;
use shared::domain::MerchantId;
use shared::shopify::CatalogOptions;
use std::time::Duration;

const MERCHANT: &str = "b3b1a7c2-5d6e-4f70-8a91-b2c3d4e5f601";
const SHOP: &str = "bench-store.myshopify.com";
const PRODUCTS: usize = 10_000;

/// Peak resident set of this process (sandbox included: it runs in-process), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn print_report(name: &str, report: &SyncReport, bucket: f64, restore_rate: f64) {
    let products = match &report.outcome {
        SyncOutcome::Replaced { products, .. } => *products,
        other => panic!("the benchmark sync did not replace the catalog: {other:?}"),
    };
    let seconds = report.elapsed.as_secs_f64();
    // The throttle lets the first `bucket` points through at once, then `restore_rate` per second.
    let min_seconds = ((report.shopify.cost_points as f64 - bucket).max(0.0)) / restore_rate;
    let ratio = if min_seconds > 0.0 {
        seconds / min_seconds
    } else {
        f64::NAN
    };
    println!("{name}:");
    println!("  products cached          {products} (of {PRODUCTS} in the store; drafts, archived, unpublished left out)");
    println!(
        "  seconds                  {seconds:.2}  ({:.0} products/s)",
        products as f64 / seconds
    );
    println!(
        "  Shopify                  {} requests, {} cost points ({:.3}/product), {} throttled, {:.2} s waiting",
        report.shopify.requests,
        report.shopify.cost_points,
        report.shopify.cost_points as f64 / products as f64,
        report.shopify.throttled,
        report.shopify.waited.as_secs_f64()
    );
    println!(
        "  DynamoDB                 {} requests ({:.3}/product)",
        report.ddb_requests,
        report.ddb_requests as f64 / products as f64
    );
    if min_seconds > 0.0 {
        println!("  throttle minimum         {min_seconds:.2} s → ratio {ratio:.2} (1.0 = at the ceiling)");
    } else {
        println!("  throttle minimum         0 s (the cost fits the bucket): ratio not meaningful");
    }
    println!(
        "  peak RSS                 {:.1} MB (whole process, sandbox included)",
        peak_rss_mb()
    );
    let line = json!({
        "bench": name,
        "products": products,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "cost_points_per_product": report.shopify.cost_points as f64 / products as f64,
        "ddb_requests_per_product": report.ddb_requests as f64 / products as f64,
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        "ceiling_ratio": if ratio.is_finite() { json!((ratio * 100.0).round() / 100.0) } else { json!(null) },
    });
    println!("{line}");
}

#[tokio::main]
async fn main() -> Result<(), shared::edge::FunctionError> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let mut options = StackOptions {
        run_queues: false,
        ..StackOptions::default()
    };
    // Shopify Plus's bucket (20,000 points, 1,000/s): the paged read of 10,000 products costs
    // ~100,000 points, which the standard plan (100/s) would stretch to a quarter of an hour.
    options.sandbox.shopify_bucket_size = 20_000.0;
    options.sandbox.shopify_restore_rate = 1_000.0;
    let (bucket, restore_rate) = (
        options.sandbox.shopify_bucket_size,
        options.sandbox.shopify_restore_rate,
    );
    let stack = LocalStack::start(options).await?;
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let sandbox = &stack.sandbox.base_url;
    http.post(format!("{sandbox}/_sandbox/shopify/shops"))
        .json(&json!({ "shop": SHOP, "products": PRODUCTS, "seed": 10 }))
        .send()
        .await?
        .error_for_status()?;

    // Connect the shop through the real OAuth flow.
    let token = stack.token(MERCHANT).await;
    let start: serde_json::Value = http
        .post(format!("{}/connections/shopify", stack.api_url))
        .bearer_auth(&token)
        .json(&json!({ "shop": SHOP }))
        .send()
        .await?
        .json()
        .await?;
    let approve = http
        .get(start["authorize_url"].as_str().unwrap_or_default())
        .send()
        .await?;
    let callback = approve.headers()["location"].to_str()?.to_owned();
    http.get(callback).send().await?.error_for_status()?;

    let sync = catalog_sync::Handler::init(stack.config("CatalogSyncFunction")).await?;
    let merchant = MerchantId::parse(MERCHANT)?;
    println!("Catalog sync of a {PRODUCTS}-product store (sandbox throttle: {bucket} points, {restore_rate}/s)\n");

    let paged = CatalogOptions {
        bulk_threshold: u64::MAX,
        ..CatalogOptions::default()
    };
    let report = sync.sync_with(&merchant, &paged).await?;
    print_report("catalog_sync_paged", &report, bucket, restore_rate);
    // Let the bucket refill so the second run starts where a scheduled sync would.
    tokio::time::sleep(Duration::from_secs_f64(bucket / restore_rate)).await;
    println!();
    let report = sync.sync(&merchant).await?;
    print_report("catalog_sync", &report, bucket, restore_rate);
    stack.shutdown().await;

    println!();
    personalization_bench().await
}

const RUN_PROFILES: u64 = 5_000;

/// The least time `n` requests can take under a limit of `per_second` in any second and
/// `per_minute` in any minute (Klaviyo's two windows; Bedrock's per-minute quota).
fn window_floor(n: u64, per_second: f64, per_minute: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let full_minutes = ((n - 1) as f64 / per_minute).floor();
    let rest = (n - 1) as f64 - full_minutes * per_minute;
    full_minutes * 60.0 + rest / per_second
}

/// Klaviyo's tier of a sandbox route (NOTES §1.2), as (per second, per minute).
fn klaviyo_tier(route: &str) -> (f64, f64) {
    match route {
        r if r.contains("/api/events") => (350.0, 3500.0),
        r if r.contains("profile-bulk-import-jobs") || r.contains("/api/metrics") => (10.0, 150.0),
        r if r.contains("/api/accounts") => (1.0, 15.0),
        _ => (75.0, 750.0),
    }
}

/// A 5,000-profile run against the sandbox's real Klaviyo tiers and Bedrock quota.
async fn personalization_bench() -> Result<(), shared::edge::FunctionError> {
    let mut options = StackOptions::default();
    options.sandbox.klaviyo_profiles = 6_000;
    options.sandbox.klaviyo_limits = sandbox::RateLimits::Real;
    let (rpm, tpm) = (
        options.sandbox.bedrock_rpm as f64,
        options.sandbox.bedrock_tpm as f64,
    );
    let model = shared::Config::from_env()
        .map(|c| c.bedrock_model_id)
        .unwrap_or_default();
    let stack = LocalStack::start(options).await?;
    let model = if model.is_empty() {
        stack.config("PersonalizeWorkerFunction").bedrock_model_id
    } else {
        model
    };
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let token = stack.token(MERCHANT).await;
    let api = |path: &str| format!("{}{path}", stack.api_url);

    http.put(api("/connections/klaviyo"))
        .bearer_auth(&token)
        .json(&json!({ "api_key": stack.sandbox.full_access_klaviyo_key() }))
        .send()
        .await?
        .error_for_status()?;
    let start: serde_json::Value = http
        .post(api("/connections/shopify"))
        .bearer_auth(&token)
        .json(&json!({ "shop": "demo-store.myshopify.com" }))
        .send()
        .await?
        .json()
        .await?;
    let approve = http
        .get(start["authorize_url"].as_str().unwrap_or_default())
        .send()
        .await?;
    http.get(approve.headers()["location"].to_str()?)
        .send()
        .await?
        .error_for_status()?;
    stack.drain(Duration::from_secs(600)).await?;
    let audiences: serde_json::Value = http
        .get(api("/audiences"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let segment = audiences["audiences"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == "VIP + Engaged"))
        .cloned()
        .ok_or("the sandbox account has a VIP + Engaged segment")?;
    let stats_before: serde_json::Value = http
        .get(format!("{}/_sandbox/stats", stack.sandbox.base_url))
        .send()
        .await?
        .json()
        .await?;

    println!("Personalization run of {RUN_PROFILES} profiles (sandbox: Klaviyo's real tiers, Bedrock {rpm} requests and {tpm} tokens per minute)");
    let started = std::time::Instant::now();
    let created: serde_json::Value = http
        .post(api("/runs"))
        .bearer_auth(&token)
        .json(&json!({ "audience": { "kind": segment["kind"], "id": segment["id"] }, "brief": "Winter sale, free shipping over $50",
                        "holdout_percent": 0, "profile_cap": RUN_PROFILES, "review": false }))
        .send()
        .await?
        .json()
        .await?;
    let run_id = created["run"]["run_id"]
        .as_str()
        .ok_or("run created")?
        .to_owned();
    let run = loop {
        let run: serde_json::Value = http
            .get(api(&format!("/runs/{run_id}")))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if matches!(
            run["state"].as_str(),
            Some("completed" | "cancelled" | "failed")
        ) {
            break run;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err("the benchmark run did not finish in 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let stats: serde_json::Value = http
        .get(format!("{}/_sandbox/stats", stack.sandbox.base_url))
        .send()
        .await?
        .json()
        .await?;

    let c = &run["counts"];
    let sum = |m: &serde_json::Value| {
        m.as_object()
            .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum::<u64>())
    };
    let total = c["total"].as_u64().unwrap_or(0);
    let accounted = c["written"].as_u64().unwrap_or(0)
        + c["holdout"].as_u64().unwrap_or(0)
        + sum(&c["skipped"])
        + sum(&c["failed"]);
    let lost = RUN_PROFILES.saturating_sub(accounted) + total.saturating_sub(accounted);
    let profiles = total.max(1) as f64;

    // Klaviyo requests the sandbox served during the run, by route.
    let before = &stats_before["klaviyo"]["requests"];
    let mut by_route: Vec<(String, u64)> = stats["klaviyo"]["requests"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    by_route.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let klaviyo_total: u64 = by_route.iter().map(|(_, n)| n).sum();

    // The binding ceiling: the least time these requests need under each limit.
    let mut floors: Vec<(String, f64)> = by_route
        .iter()
        .map(|(route, n)| {
            let (per_s, per_min) = klaviyo_tier(route);
            (format!("Klaviyo {route}"), window_floor(*n, per_s, per_min))
        })
        .collect();
    let tokens = &run["tokens"];
    let token_total = [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    ]
    .iter()
    .map(|k| tokens[*k].as_u64().unwrap_or(0))
    .sum::<u64>();
    let converse = run["requests"]["bedrock_converse"].as_u64().unwrap_or(0);
    floors.push((
        "Bedrock requests/min".into(),
        window_floor(converse, rpm, rpm),
    ));
    // Tokens have no per-second limit: the first minute's quota is there at once.
    floors.push((
        "Bedrock tokens/min".into(),
        window_floor(token_total, f64::INFINITY, tpm),
    ));
    floors.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (binding, floor) = floors.first().cloned().unwrap_or_default();
    let ceiling = if floor > 0.0 {
        profiles / floor
    } else {
        f64::INFINITY
    };
    let rate = profiles / seconds;
    let prices = shared::personalize::ModelPrices::for_model(&model);
    let cost: shared::personalize::Cost =
        serde_json::from_value(tokens.clone()).unwrap_or_default();
    let usd_per_1000 = cost.usd(&prices) / profiles * 1000.0;

    println!(
        "  state                    {} ({} written, {} holdout, skipped {}, failed {})",
        run["state"], c["written"], c["holdout"], c["skipped"], c["failed"]
    );
    println!("  seconds                  {seconds:.1}  ({rate:.1} profiles/s)");
    println!("  binding ceiling          {ceiling:.1} profiles/s from {binding} ({floor:.1} s minimum) → ratio {:.2}", rate / ceiling);
    println!(
        "  Klaviyo requests         {klaviyo_total} ({:.3}/profile)",
        klaviyo_total as f64 / profiles
    );
    for (route, n) in &by_route {
        println!(
            "    {route:<58} {n:>6}  {:.3}/profile",
            *n as f64 / profiles
        );
    }
    println!(
        "  Bedrock calls            {converse} ({:.2} profiles/call)",
        profiles / converse.max(1) as f64
    );
    println!(
        "  tokens per profile       {:.0} in, {:.0} out, {:.0} cache read, {:.0} cache write",
        tokens["input_tokens"].as_u64().unwrap_or(0) as f64 / profiles,
        tokens["output_tokens"].as_u64().unwrap_or(0) as f64 / profiles,
        tokens["cache_read_tokens"].as_u64().unwrap_or(0) as f64 / profiles,
        tokens["cache_write_tokens"].as_u64().unwrap_or(0) as f64 / profiles
    );
    println!(
        "  cost                     ${usd_per_1000:.3} per 1,000 profiles at {model} list prices{}",
        if prices.known {
            ""
        } else {
            " (unknown model: Sonnet prices assumed)"
        }
    );
    println!(
        "  peak RSS                 {:.1} MB (whole process: local runner, sandbox and worker)",
        peak_rss_mb()
    );
    println!("  lost profiles            {lost}");
    let line = json!({
        "bench": "personalization_run",
        "profiles": total,
        "profiles_per_s": (rate * 10.0).round() / 10.0,
        "ceiling_profiles_per_s": (ceiling * 10.0).round() / 10.0,
        "ceiling_ratio": ((rate / ceiling) * 100.0).round() / 100.0,
        "klaviyo_requests_per_profile": ((klaviyo_total as f64 / profiles) * 1000.0).round() / 1000.0,
        "input_tokens_per_profile": (tokens["input_tokens"].as_u64().unwrap_or(0) as f64 / profiles).round(),
        "output_tokens_per_profile": (tokens["output_tokens"].as_u64().unwrap_or(0) as f64 / profiles).round(),
        "usd_per_1000_profiles": (usd_per_1000 * 1000.0).round() / 1000.0,
        "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        "lost": lost,
    });
    println!("{line}");
    stack.shutdown().await;
    Ok(())
}
