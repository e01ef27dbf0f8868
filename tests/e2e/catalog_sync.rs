//! Catalog sync through real events: replacement is whole and atomic, a failed sync keeps the
//! old catalog and shows the error, the schedule covers every connected shop, large stores go
//! through a bulk operation (a 100 MB export streams through with flat memory; an export the
//! sync gives up on is canceled; one a dead sync left running is adopted), and concurrent token
//! refreshes spend the refresh token once.

use e2e::*;
use reqwest::{Method, StatusCode};
use sandbox::shopify::catalog_data::{generate_catalog, ProductStatus};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const A: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const B: &str = "7a1c9e2b-3d4f-4a5b-9c8d-1e2f3a4b5c6d";

// ---------- heap accounting for the flat-memory test ----------

/// The system allocator, counting live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tests of this file share one process: the memory test runs alone (write), the others
/// alongside each other (read), so its heap peak is its own.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// `POST /catalog/sync` (accepted), the queues drained: the merchant's connections after it.
async fn sync_now(world: &World, merchant: &Merchant<'_>) -> Value {
    assert_eq!(
        merchant.post("/catalog/sync", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    world.settle().await;
    merchant.connections().await
}

#[tokio::test]
async fn a_resync_replaces_the_catalog_whole() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let first = world.generation(A).await.expect("first generation");
    let before = world.cached_catalog(A).await;
    let gone = before[0].clone();
    let number = gone.numeric_id().unwrap().to_owned();
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{number}/status"),
            json!({ "status": "ARCHIVED" }),
        )
        .await;

    let resp = merchant.post("/catalog/sync", json!({})).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{:?}", resp.body);
    world.settle().await;

    let second = world.generation(A).await.expect("second generation");
    assert_ne!(first, second, "a new generation is live");
    let after = world.cached_catalog(A).await;
    assert_eq!(after.len(), before.len() - 1);
    assert!(
        after.iter().all(|p| p.id != gone.id),
        "the archived product left the cache"
    );
    assert_eq!(
        world.generation_items(A, &first).await,
        0,
        "the old generation was deleted"
    );
    assert_eq!(
        merchant.connections().await["shopify"]["catalog_size"].as_u64(),
        Some(after.len() as u64)
    );
}

#[tokio::test]
async fn a_failed_sync_keeps_the_old_catalog_and_shows_the_error() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let generation = world.generation(A).await;
    let size = world.cached_catalog(A).await.len();

    // Enough failures to outlast every retry of every delivery.
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/faults"),
            json!({ "graphql_errors": 1000 }),
        )
        .await;
    let view = sync_now(&world, &merchant).await;
    assert!(
        view["shopify"]["last_sync_error"].is_string(),
        "the error shows: {view}"
    );
    assert_eq!(
        world.generation(A).await,
        generation,
        "the old generation stays live"
    );
    assert_eq!(world.cached_catalog(A).await.len(), size);
    assert_eq!(view["shopify"]["catalog_size"].as_u64(), Some(size as u64));

    // Once Shopify recovers, the next sync clears the error.
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/faults"),
            json!({ "graphql_errors": 0 }),
        )
        .await;
    let view = sync_now(&world, &merchant).await;
    assert!(view["shopify"]["last_sync_error"].is_null(), "{view}");
    assert_ne!(world.generation(A).await, generation);
}

#[tokio::test]
async fn the_schedule_queues_a_sync_for_every_connected_shop() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": "second-shop.myshopify.com", "products": 40, "seed": 2 }),
        )
        .await;
    let a = world.merchant(A).await;
    let b = world.merchant(B).await;
    assert_eq!(
        a.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    assert_eq!(
        b.connect_shopify("second-shop.myshopify.com")
            .await
            .install_outcome(),
        "connected"
    );
    let (ga, gb) = (world.generation(A).await, world.generation(B).await);

    let result = world
        .stack
        .fire_schedule("CatalogSyncFunction")
        .await
        .expect("the schedule runs");
    assert_eq!(result["queued"], 2, "{result}");
    world.settle().await;
    assert_ne!(world.generation(A).await, ga);
    assert_ne!(world.generation(B).await, gb);
}

#[tokio::test]
async fn a_large_store_syncs_through_a_bulk_operation() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": "big-shop.myshopify.com", "products": 2600, "seed": 3 }),
        )
        .await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant
            .connect_shopify("big-shop.myshopify.com")
            .await
            .install_outcome(),
        "connected"
    );

    let view = merchant.connections().await;
    let size = view["shopify"]["catalog_size"].as_u64().unwrap_or(0);
    assert!(size > 1500, "most of a large store is cached: {view}");
    assert_eq!(world.cached_catalog(A).await.len() as u64, size);
    let stats = world.sandbox_stats().await;
    assert!(
        stats.to_string().contains("bulk"),
        "a bulk operation ran: {stats}"
    );
}

#[tokio::test]
async fn concurrent_syncs_with_an_expired_token_refresh_it_once() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let refreshes_before = refreshes(&world.sandbox_stats().await);
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/expire-access-tokens"),
            json!({}),
        )
        .await;

    // Four deliveries at once, as four containers would run them.
    let event = |n: usize| {
        sqs_event(
            &format!("m{n}"),
            &json!({"merchant_id": A, "reason": "requested"}),
            SYNC_QUEUE_ARN,
        )
    };
    let results = futures::future::join_all(
        (0..4).map(|n| world.stack.invoke("CatalogSyncFunction", event(n))),
    )
    .await;
    for result in results {
        let response = result.expect("the invocation succeeds");
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    }
    assert_eq!(
        refreshes(&world.sandbox_stats().await) - refreshes_before,
        1,
        "one refresh for all four"
    );
    let config = world.config();
    let pair: Value = serde_json::from_str(
        &world
            .secret(&format!("{}/{A}/shopify", config.secret_prefix))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        pair["access_expires_at"].as_i64().unwrap() > shared::domain::now_unix() + 600,
        "the rotated pair was stored"
    );
}

/// Total token refreshes the sandbox has served (its stats name them "refresh").
fn refreshes(stats: &Value) -> i64 {
    fn walk(v: &Value, under_refresh: bool) -> i64 {
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| walk(v, under_refresh || k.to_lowercase().contains("refresh")))
                .sum(),
            Value::Number(n) if under_refresh => n.as_i64().unwrap_or(0),
            Value::Array(items) => items.iter().map(|i| walk(i, under_refresh)).sum(),
            _ => 0,
        }
    }
    walk(stats, false)
}

// ---------- bulk exports: size, abandonment, adoption ----------

/// What the store holds that the catalog should: active and published products, and whether
/// any of their variants is for sale (the sandbox's generator, filtered as the contract says).
fn expected_catalog(seed: u64, count: usize) -> BTreeMap<String, bool> {
    generate_catalog(seed, count)
        .into_iter()
        .filter(|p| p.status == ProductStatus::Active && p.published)
        .map(|p| (p.gid(), p.variants.iter().any(|v| v.available)))
        .collect()
}

async fn create_shop(world: &World, shop: &str, products: usize, seed: u64) {
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": shop, "products": products, "seed": seed }),
        )
        .await;
}

async fn bulk_settings(world: &World, shop: &str, settings: Value) {
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{shop}/bulk-settings"),
            settings,
        )
        .await;
}

/// Every bulk operation of the shop (id, status, file size), oldest first, once no
/// cancelation is still under way.
async fn bulk_operations(world: &World, shop: &str) -> Vec<Value> {
    let path = format!("/_sandbox/shopify/{shop}/bulk-operations");
    let mut ops = Value::Null;
    for _ in 0..100 {
        ops = world.sandbox(Method::GET, &path, json!({})).await;
        if ops
            .as_array()
            .unwrap()
            .iter()
            .all(|op| op["status"] != "CANCELING")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ops.as_array().unwrap().clone()
}

fn statuses(ops: &[Value]) -> Vec<String> {
    ops.iter()
        .map(|op| op["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The number of products a seed gives for the bulk path (more active ones than the threshold).
fn bulk_sized(seed: u64) -> usize {
    let count = 700;
    let active = generate_catalog(seed, count)
        .iter()
        .filter(|p| p.status == ProductStatus::Active)
        .count() as u64;
    assert!(
        active > shared::shopify::catalog::BULK_THRESHOLD,
        "the shop must take the bulk path"
    );
    count
}

#[tokio::test]
async fn a_100_mb_export_streams_into_the_catalog_with_flat_memory() {
    let _alone = ALONE.write().await;
    let world = World::start().await;
    let (shop, products, seed) = ("long-descriptions.myshopify.com", 6000, 12);
    create_shop(&world, shop, products, seed).await;
    // ~20 KB of description per product: the export is over 100 MB, the cached catalog keeps
    // 600 characters of each.
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{shop}/long-descriptions"),
            json!({ "extra_bytes": 20_000 }),
        )
        .await;
    let merchant = world.merchant(A).await;

    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    assert_eq!(
        merchant.connect_shopify(shop).await.install_outcome(),
        "connected"
    );
    let peak_growth = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);

    let ops = bulk_operations(&world, shop).await;
    assert_eq!(statuses(&ops), ["COMPLETED"], "{ops:?}");
    let export_bytes = ops[0]["file_size"].as_u64().unwrap();
    assert!(
        export_bytes >= 100_000_000,
        "export of {export_bytes} bytes"
    );
    let view = merchant.connections().await;
    assert!(view["shopify"]["last_sync_error"].is_null(), "{view}");

    let cached = world.cached_catalog(A).await;
    let got: BTreeMap<String, bool> = cached.iter().map(|p| (p.id.clone(), p.available)).collect();
    assert_eq!(got.len(), cached.len(), "each product once");
    assert_eq!(
        got,
        expected_catalog(seed, products),
        "every product, availability included"
    );
    assert!(cached
        .iter()
        .all(|p| p.description.chars().count() <= shared::shopify::catalog::DESCRIPTION_MAX_CHARS));
    // Holding the export (or its products' descriptions) would take over 100 MB; streaming
    // holds a window of products, a chunk being written and a few pieces of the download.
    assert!(
        peak_growth < 48 * 1024 * 1024,
        "the heap grew by {} MB during a sync of a {} MB export",
        peak_growth / (1024 * 1024),
        export_bytes / 1_000_000
    );
}

/// Merchant A connected to a new shop big enough for the bulk path: its product count and
/// the first catalog generation.
async fn connected_to_bulk_sized_shop<'w>(
    world: &'w World,
    shop: &str,
    seed: u64,
) -> (Merchant<'w>, usize, String) {
    let products = bulk_sized(seed);
    create_shop(world, shop, products, seed).await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(shop).await.install_outcome(),
        "connected"
    );
    let generation = world.generation(A).await.expect("first generation");
    (merchant, products, generation)
}

#[tokio::test]
async fn a_sync_that_fails_while_its_export_runs_cancels_it_and_the_next_sync_succeeds() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    let (shop, seed) = ("stalling-export.myshopify.com", 5);
    let (merchant, products, generation) = connected_to_bulk_sized_shop(&world, shop, seed).await;

    // From now on an export runs ten minutes and Shopify answers every status read with a 500:
    // each delivery of the sync gives up while its export runs.
    bulk_settings(
        &world,
        shop,
        json!({ "run_secs": 600, "status_errors": 1000 }),
    )
    .await;
    sync_now(&world, &merchant).await;

    let ops = bulk_operations(&world, shop).await;
    let abandoned = &statuses(&ops)[1..];
    assert!(
        !abandoned.is_empty(),
        "the failed sync started exports: {ops:?}"
    );
    assert!(
        abandoned.iter().all(|s| s == "CANCELED"),
        "every export the failed sync gave up on was canceled: {ops:?}"
    );
    let view = merchant.connections().await;
    assert!(view["shopify"]["last_sync_error"].is_string(), "{view}");
    assert_eq!(
        world.generation(A).await.as_deref(),
        Some(generation.as_str())
    );

    // Shopify recovers: the next sync finds every slot free and replaces the catalog.
    bulk_settings(
        &world,
        shop,
        json!({ "run_secs": null, "status_errors": 0 }),
    )
    .await;
    let view = sync_now(&world, &merchant).await;
    assert!(view["shopify"]["last_sync_error"].is_null(), "{view}");
    assert_ne!(
        world.generation(A).await.as_deref(),
        Some(generation.as_str())
    );
    assert_eq!(
        statuses(&bulk_operations(&world, shop).await)
            .last()
            .map(String::as_str),
        Some("COMPLETED")
    );
    let cached: BTreeMap<String, bool> = world
        .cached_catalog(A)
        .await
        .into_iter()
        .map(|p| (p.id, p.available))
        .collect();
    assert_eq!(cached, expected_catalog(seed, products));
}

#[tokio::test]
async fn a_sync_adopts_the_export_a_dead_sync_left_running() {
    let _shared = ALONE.read().await;
    let world = World::start().await;
    let (shop, seed) = ("left-running.myshopify.com", 6);
    let (merchant, products, generation) = connected_to_bulk_sized_shop(&world, shop, seed).await;

    // A sync that died after starting its export (the Lambda was killed): the very request
    // production sends, with the merchant's token, and nobody waiting for the result.
    bulk_settings(&world, shop, json!({ "run_secs": 2 })).await;
    let config = world.config();
    let pair: Value = serde_json::from_str(
        &world
            .secret(&format!("{}/{A}/shopify", config.secret_prefix))
            .await
            .unwrap(),
    )
    .unwrap();
    let started: Value = world
        .http
        .post(format!(
            "{}/shopify/{shop}/admin/api/{}/graphql.json",
            world.stack.sandbox.base_url, config.shopify_api_version
        ))
        .header(
            "X-Shopify-Access-Token",
            pair["access_token"].as_str().unwrap(),
        )
        .json(&json!({
            "query": shared::shopify::bulk::BULK_RUN,
            "variables": { "query": shared::shopify::catalog::BULK_PRODUCTS },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let left = started["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the export started: {started}"))
        .to_owned();
    for _ in 0..50 {
        if statuses(&bulk_operations(&world, shop).await)
            .last()
            .map(String::as_str)
            == Some("RUNNING")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    sync_now(&world, &merchant).await;

    let ops = bulk_operations(&world, shop).await;
    assert_eq!(
        ops.iter()
            .map(|op| op["id"].as_str().unwrap())
            .collect::<Vec<_>>()
            .last(),
        Some(&left.as_str()),
        "no export started beside the one left running: {ops:?}"
    );
    assert_eq!(statuses(&ops), ["COMPLETED", "COMPLETED"], "{ops:?}");
    let view = merchant.connections().await;
    assert!(view["shopify"]["last_sync_error"].is_null(), "{view}");
    assert_ne!(
        world.generation(A).await.as_deref(),
        Some(generation.as_str())
    );
    assert_eq!(
        world.cached_catalog(A).await.len(),
        expected_catalog(seed, products).len()
    );
}
