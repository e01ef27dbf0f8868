//! Catalog sync through real events: replacement is whole and atomic, a failed sync keeps the
//! old catalog and shows the error, the schedule covers every connected shop, large stores go
//! through a bulk operation, and concurrent token refreshes spend the refresh token once.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const A: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const B: &str = "7a1c9e2b-3d4f-4a5b-9c8d-1e2f3a4b5c6d";

#[tokio::test]
async fn a_resync_replaces_the_catalog_whole() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.status,
        StatusCode::OK
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
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.status,
        StatusCode::OK
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
    assert_eq!(
        merchant.post("/catalog/sync", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    world.settle().await;

    let view = merchant.connections().await;
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
    assert_eq!(
        merchant.post("/catalog/sync", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    world.settle().await;
    let view = merchant.connections().await;
    assert!(view["shopify"]["last_sync_error"].is_null(), "{view}");
    assert_ne!(world.generation(A).await, generation);
}

#[tokio::test]
async fn the_schedule_queues_a_sync_for_every_connected_shop() {
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
    assert_eq!(a.connect_shopify(DEMO_SHOP).await.status, StatusCode::OK);
    assert_eq!(
        b.connect_shopify("second-shop.myshopify.com").await.status,
        StatusCode::OK
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
            .status,
        StatusCode::OK
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
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.status,
        StatusCode::OK
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
