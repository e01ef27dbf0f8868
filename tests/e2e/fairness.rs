//! Fairness between merchants on the shared work queue and worker containers: a big run never
//! has more than its window of profiles queued ahead of everyone else, so another merchant's
//! small run started after it finishes long before it.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const A: &str = "6a1f3b2c-4d5e-4f60-8a71-92b3c4d5e6f7";
const B: &str = "7b2a4c3d-5e6f-4071-9b82-a3c4d5e6f708";
const SHOP_B: &str = "fair-second-store.myshopify.com";
const WINDOW: u64 = 300;
const PAGE: u64 = 100;

fn accounted(run: &Value) -> u64 {
    let c = &run["counts"];
    let sum = |m: &Value| {
        m.as_object()
            .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>())
    };
    c["written"].as_u64().unwrap_or(0)
        + c["holdout"].as_u64().unwrap_or(0)
        + sum(&c["skipped"])
        + sum(&c["failed"])
}

fn finished(run: &Value) -> bool {
    matches!(
        run["state"].as_str(),
        Some("completed" | "cancelled" | "failed")
    )
}

#[tokio::test]
async fn a_big_run_keeps_to_its_window_and_another_merchants_small_run_finishes_first() {
    let world = World::start_with(|o| {
        o.env_overrides
            .insert("FANOUT_WINDOW_PROFILES".into(), WINDOW.to_string());
    })
    .await;
    let a = world.merchant(A).await;
    a.connect_demo_accounts().await;
    // Merchant B: a Klaviyo account and a shop of its own.
    world
        .sandbox(
            Method::POST,
            "/_sandbox/klaviyo/accounts",
            json!({"id": "fairb", "name": "B"}),
        )
        .await;
    let key_b = world
        .sandbox(
            Method::POST,
            "/_sandbox/klaviyo/keys",
            json!({"account": "fairb", "scopes": shared::klaviyo::limits::SCOPES}),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({"shop": SHOP_B, "products": 200, "seed": 3}),
        )
        .await;
    let b = world.merchant(B).await;
    assert_eq!(b.connect_klaviyo(&key_b).await.status, StatusCode::OK);
    assert_eq!(
        b.connect_shopify(SHOP_B).await.install_outcome(),
        "connected"
    );

    let audiences = a.get("/audiences").await.body;
    let vip = audiences["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "VIP + Engaged")
        .cloned()
        .unwrap();
    let run = |cap: u64| {
        json!({ "audience": { "kind": "segment", "id": vip["id"] },
        "brief": "New arrivals for winter", "profile_cap": cap })
    };
    let big = a.post("/runs", run(1_500)).await;
    assert_eq!(big.status, StatusCode::CREATED, "{:?}", big.body);
    let big_id = big.body["run"]["run_id"].as_str().unwrap().to_owned();

    // Until it has reached its window, then B starts; watch both.
    let mut most_queued = 0;
    let mut small_id = None;
    let mut big_when_small_finished = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let big_run = a.get(&format!("/runs/{big_id}")).await.body;
        let queued = big_run["counts"]["total"].as_u64().unwrap_or(0) - accounted(&big_run);
        most_queued = most_queued.max(queued);
        if small_id.is_none() && big_run["counts"]["total"].as_u64().unwrap_or(0) >= WINDOW {
            let small = b.post("/runs", run(100)).await;
            assert_eq!(small.status, StatusCode::CREATED, "{:?}", small.body);
            small_id = Some(small.body["run"]["run_id"].as_str().unwrap().to_owned());
        }
        if let (Some(id), None) = (&small_id, &big_when_small_finished) {
            let small_run = b.get(&format!("/runs/{id}")).await.body;
            if finished(&small_run) {
                assert_eq!(small_run["state"], "completed", "{small_run}");
                assert_eq!(accounted(&small_run), 100, "{small_run}");
                big_when_small_finished = Some(big_run.clone());
            }
        }
        if finished(&big_run) {
            assert_eq!(big_run["state"], "completed", "{big_run}");
            assert_eq!(accounted(&big_run), 1_500, "{big_run}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the runs finish");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // One page can be enqueued after the last look at the window.
    assert!(
        most_queued < WINDOW + PAGE,
        "the big run had {most_queued} profiles queued at once (window {WINDOW})"
    );
    let big_then = big_when_small_finished.expect("the small run finished before the big one");
    assert!(
        accounted(&big_then) < 1_500,
        "the small run did not wait for the big one: {big_then}"
    );
}
