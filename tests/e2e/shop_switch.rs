//! A merchant has one shop at a time. Connecting another shop gives the old one up at once (our
//! grant on it revoked at Shopify, its mapping, lock and cached catalog deleted), and a purge
//! Shopify triggers for a shop (app/uninstalled, shop/redact) acts only on a merchant whose
//! connection is that shop: the old shop's webhooks can never reach the new shop's data.

mod trace;

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::aws::dynamo::AppStore;
use shared::domain::{MerchantId, ShopDomain, Vendor};
use trace::Delivery;

const SECOND_SHOP: &str = "second-store.myshopify.com";

async fn start() -> World {
    trace::logs();
    let world = World::start().await;
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": SECOND_SHOP, "products": 20, "seed": 11 }),
        )
        .await;
    world
}

fn store(world: &World) -> AppStore {
    AppStore::from_sdk(&world.stack.aws, world.config().app_table)
}

async fn owner(world: &World, shop: &str) -> Option<String> {
    store(world)
        .shop_owner(&ShopDomain::parse(shop).unwrap())
        .await
        .unwrap()
        .map(|m| m.as_str().to_owned())
}

/// The Shopify token pair stored for the merchant, as JSON.
async fn stored_tokens(world: &World, sub: &str) -> Value {
    let name = world
        .config()
        .secret_name(&MerchantId::parse(sub).unwrap(), Vendor::Shopify);
    let text = world.secret(&name).await.expect("a stored token pair");
    serde_json::from_str(&text).unwrap()
}

/// What Shopify answers a GraphQL call on `shop` made with `access_token`.
async fn shopify_answers(world: &World, shop: &str, access_token: &str) -> StatusCode {
    world
        .http
        .post(format!(
            "{}/shopify/{shop}/admin/api/2026-10/graphql.json",
            world.stack.sandbox.base_url
        ))
        .header("X-Shopify-Access-Token", access_token)
        .json(&json!({ "query": "{ shop { id } }" }))
        .send()
        .await
        .unwrap()
        .status()
}

/// Shopify delivers `topic` for `shop`; returns the API's answer (the queue drains after).
async fn deliver(world: &World, shop: &str, topic: &str) -> Response {
    let resp = Delivery::from_sandbox(world, shop, json!({ "topic": topic }))
        .await
        .send(world)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{topic}: {:?}", resp.body);
    world.settle().await;
    resp
}

/// The new shop is whole: connected, its token works at Shopify, its catalog (`products`
/// cached) is there and it is mapped to the merchant.
async fn assert_second_shop_intact(
    world: &World,
    merchant: &Merchant<'_>,
    products: usize,
    step: &str,
) {
    let view = merchant.connections().await;
    assert_eq!(view["shopify"]["shop"], SECOND_SHOP, "{step}: {view}");
    assert_eq!(view["shopify"]["status"], "connected", "{step}: {view}");
    let tokens = stored_tokens(world, &merchant.sub).await;
    assert_eq!(
        shopify_answers(world, SECOND_SHOP, tokens["access_token"].as_str().unwrap()).await,
        StatusCode::OK,
        "{step}: the new shop's token still works"
    );
    assert_eq!(
        world.cached_catalog(&merchant.sub).await.len(),
        products,
        "{step}: the new shop's catalog is cached"
    );
    assert_eq!(
        owner(world, SECOND_SHOP).await.as_deref(),
        Some(merchant.sub.as_str()),
        "{step}: the new shop is still mapped to the merchant"
    );
}

#[tokio::test]
async fn connecting_another_shop_revokes_the_old_grant_and_releases_the_old_shop() {
    let world = start().await;
    let merchant = world.merchant("switching-merchant").await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let old_tokens = stored_tokens(&world, &merchant.sub).await;
    let old_access = old_tokens["access_token"].as_str().unwrap().to_owned();
    let old_generation = world.generation(&merchant.sub).await.unwrap();
    assert!(world.generation_items(&merchant.sub, &old_generation).await > 0);
    assert_eq!(
        shopify_answers(&world, DEMO_SHOP, &old_access).await,
        StatusCode::OK
    );

    let resp = merchant.connect_shopify(SECOND_SHOP).await;
    assert_eq!(resp.install_outcome(), "connected");
    let products = world.cached_catalog(&merchant.sub).await.len();
    assert!(products > 0);

    assert_eq!(
        shopify_answers(&world, DEMO_SHOP, &old_access).await,
        StatusCode::UNAUTHORIZED,
        "our grant on the old shop was revoked at Shopify"
    );
    assert_eq!(
        owner(&world, DEMO_SHOP).await,
        None,
        "the old mapping is gone"
    );
    assert_eq!(
        world.generation_items(&merchant.sub, &old_generation).await,
        0,
        "the old shop's cached catalog is gone"
    );
    assert!(
        !world.app_table_dump().await.contains(DEMO_SHOP),
        "nothing in the app table names the old shop"
    );
    assert_second_shop_intact(&world, &merchant, products, "after the switch").await;

    // Shopify confirms the uninstall of the old shop, and erases it 48 h later: neither reaches
    // the merchant, who is on the new shop.
    let uninstalled = deliver(&world, DEMO_SHOP, "app/uninstalled").await;
    assert_eq!(
        uninstalled.body["status"], "ignored",
        "{:?}",
        uninstalled.body
    );
    deliver(&world, DEMO_SHOP, "shop/redact").await;
    assert_second_shop_intact(&world, &merchant, products, "after the old shop's webhooks").await;

    // The old shop is free for whoever installs on it next.
    let next = world.merchant("next-owner").await;
    assert_eq!(
        next.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected",
        "the released shop can be connected by another merchant"
    );
    assert_second_shop_intact(
        &world,
        &merchant,
        products,
        "after another merchant took the old shop",
    )
    .await;
}

/// A mapping left behind (by the code before shop switches released it, or a release that
/// failed) still names the merchant: the old shop's uninstall and redaction delete that mapping
/// and nothing of the shop the merchant is on now.
#[tokio::test]
async fn a_purge_for_a_shop_the_merchant_has_left_deletes_only_that_shops_mapping() {
    let world = start().await;
    let merchant = world.merchant("left-a-mapping").await;
    assert_eq!(
        merchant
            .connect_shopify(SECOND_SHOP)
            .await
            .install_outcome(),
        "connected"
    );
    let products = world.cached_catalog(&merchant.sub).await.len();
    assert!(products > 0);
    let id = MerchantId::parse(&merchant.sub).unwrap();
    assert!(store(&world)
        .claim_shop(&ShopDomain::parse(DEMO_SHOP).unwrap(), &id)
        .await
        .unwrap());
    assert_eq!(
        owner(&world, DEMO_SHOP).await.as_deref(),
        Some(merchant.sub.as_str())
    );

    let uninstalled = deliver(&world, DEMO_SHOP, "app/uninstalled").await;
    assert_eq!(
        uninstalled.body["status"], "queued",
        "{:?}",
        uninstalled.body
    );
    assert_eq!(
        owner(&world, DEMO_SHOP).await,
        None,
        "the stale mapping is deleted"
    );
    assert_second_shop_intact(
        &world,
        &merchant,
        products,
        "after the old shop's uninstall",
    )
    .await;

    // The same for a redaction that finds the stale mapping.
    assert!(store(&world)
        .claim_shop(&ShopDomain::parse(DEMO_SHOP).unwrap(), &id)
        .await
        .unwrap());
    let redact = deliver(&world, DEMO_SHOP, "shop/redact").await;
    assert_eq!(redact.body["status"], "queued", "{:?}", redact.body);
    assert_eq!(owner(&world, DEMO_SHOP).await, None);
    assert_second_shop_intact(
        &world,
        &merchant,
        products,
        "after the old shop's redaction",
    )
    .await;

    // The shop the merchant is on is still purged by its own uninstall.
    let own = deliver(&world, SECOND_SHOP, "app/uninstalled").await;
    assert_eq!(own.body["status"], "queued", "{:?}", own.body);
    assert!(merchant.connections().await["shopify"].is_null());
    assert_eq!(owner(&world, SECOND_SHOP).await, None);
    assert!(world.cached_catalog(&merchant.sub).await.is_empty());
}
