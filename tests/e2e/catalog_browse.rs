//! `GET /catalog`: the cached catalog as a recommendation sees it, paged through real HTTP.
//! Every cached product appears once, in order, with the same eligibility the candidate rules
//! apply; a merchant without a shop or without a synced catalog gets a problem, not an empty list.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;

const A: &str = "3c1f7a52-8e4b-4d6a-9b2c-5e7f1a3d9c80";
const B: &str = "9d2e4f61-7a3b-4c5d-8e9f-0a1b2c3d4e5f";

#[tokio::test]
async fn every_cached_product_is_listed_once_with_the_candidate_rules_verdict() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let cached: BTreeMap<String, shared::domain::CatalogProduct> = world
        .cached_catalog(A)
        .await
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    assert!(cached.len() > 200, "the demo shop is cached");

    let mut listed: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/catalog?limit=37&cursor={c}"),
            None => "/catalog?limit=37".to_owned(),
        };
        let page = merchant.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        pages += 1;
        let products = page.body["products"].as_array().unwrap();
        assert!(products.len() <= 37);
        assert_eq!(page.body["catalog_size"], cached.len() as u64);
        assert!(page.body["last_sync_at"].is_string());
        listed.extend(products.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 50, "paging ends");
    }
    assert_eq!(
        pages,
        cached.len().div_ceil(37),
        "no empty or short middle pages"
    );
    let ids: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = cached.keys().map(String::as_str).collect();
    assert_eq!(
        ids, expected,
        "each cached product once, in product-id order"
    );

    let mut reasons_seen = BTreeMap::<String, usize>::new();
    for item in &listed {
        let product = &cached[item["id"].as_str().unwrap()];
        let eligible = shared::personalize::is_eligible(product);
        assert_eq!(item["eligible"], eligible, "{item}");
        let reasons: Vec<String> = item["ineligible_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(reasons.is_empty(), eligible, "{item}");
        assert_eq!(
            reasons.contains(&"out_of_stock".to_owned()),
            !product.available
        );
        assert_eq!(
            reasons.contains(&"no_image".to_owned()),
            product.image_url.is_none()
        );
        for r in reasons {
            *reasons_seen.entry(r).or_default() += 1;
        }
        assert_eq!(item["title"], product.title.as_str());
        assert_eq!(item["handle"], product.handle.as_str());
        assert_eq!(item["price"]["amount"], product.price_min.amount.as_str());
        assert_eq!(
            item["price"]["currency"],
            product.price_min.currency.as_str()
        );
        assert_eq!(item["product_type"], product.product_type.as_str());
        let excerpt = item["description_excerpt"].as_str().unwrap();
        assert!(excerpt.chars().count() <= 200, "{excerpt}");
        let start: String = excerpt.chars().take(20).collect();
        assert!(product
            .description
            .trim()
            .starts_with(start.trim_end_matches('…')));
    }
    assert!(
        reasons_seen.contains_key("out_of_stock") && reasons_seen.contains_key("no_image"),
        "the demo shop has sold-out and imageless products: {reasons_seen:?}"
    );

    // Only what a recommendation may pick, and only what it may not: the two add up.
    let mut split = [0usize; 2];
    for (i, flag) in ["true", "false"].iter().enumerate() {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/catalog?limit=100&eligible={flag}&cursor={c}"),
                None => format!("/catalog?limit=100&eligible={flag}"),
            };
            let page = merchant.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            items.extend(page.body["products"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert!(items.iter().all(|p| p["eligible"] == (*flag == "true")));
        split[i] = items.len();
    }
    let eligible = cached
        .values()
        .filter(|p| shared::personalize::is_eligible(p))
        .count();
    assert_eq!(split, [eligible, cached.len() - eligible]);

    // Another merchant sees nothing of A's: they have no shop.
    let other = world.merchant(B).await;
    let resp = other.get("/catalog").await;
    assert_eq!(resp.status, StatusCode::CONFLICT);
    assert!(resp.problem_type().ends_with("/not-connected"));
}

#[tokio::test]
async fn malformed_paging_and_missing_tokens_are_refused_as_documented() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=a",
        "cursor=abcde",
        "eligible=yes",
    ] {
        let resp = merchant.get(&format!("/catalog?{query}")).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(resp.problem_type().ends_with("/invalid-request"), "{query}");
    }
    let resp = world.call(Method::GET, "/catalog", None, None).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(resp.problem_type().ends_with("/unauthenticated"));
}

#[tokio::test]
async fn a_shop_whose_first_sync_has_not_run_has_no_catalog_yet() {
    let world = World::start_with(|o| o.run_queues = false).await;
    let merchant = world.merchant(A).await;
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    assert_eq!(
        world.get_url(&callback).await.install_outcome(),
        "connected"
    );
    let resp = merchant.get("/catalog").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{:?}", resp.body);
    assert!(resp.problem_type().ends_with("/catalog-not-synced"));
}
