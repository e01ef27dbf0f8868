//! `make bench`: figures, not pass/fail. Catalog sync of a 10,000-product store against the
//! sandbox's Shopify cost throttle (Plus plan: 20,000-point bucket, 1,000 points/s) and moto's
//! DynamoDB, once through paged GraphQL and once through a bulk operation (what production uses
//! for a store this size). The last line is one JSON object for the production path.
//! Then the run benchmarks (`runs.rs`): a 20,000-profile run against vendors that take real
//! time, two merchants side by side, and a 200,000-profile fan-out. Then the grounding gate on
//! the labelled corpus and a run in the sandbox model's writer mode (`grounding.rs`).

mod console;
mod flows;
mod grounding;
mod runs;

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
pub(crate) fn peak_rss_mb() -> f64 {
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
    if part("catalog") {
        catalog_sync_parts().await?;
    }

    println!();
    if part("runs") {
        runs::personalization_run().await?;
        println!();
    }
    if part("fanout") {
        runs::fanout_at_scale().await?;
        println!();
    }
    if part("flows") {
        flows::flow_burst().await?;
    }
    if part("grounding") {
        println!();
        grounding::grounding().await?;
    }
    if part("console") {
        println!();
        console::first_load().await?;
    }
    Ok(())
}

/// A 10,000-product store synced by paged reads, then by a bulk operation.
async fn catalog_sync_parts() -> Result<(), shared::edge::FunctionError> {
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
    stack.connect_merchant(&http, &token, None, SHOP).await?;

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
    Ok(())
}

/// `BENCH_PARTS=catalog,runs,fanout,flows` (default: all) picks the parts to run.
fn part(name: &str) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |parts| parts.split(',').any(|p| p.trim() == name))
}
