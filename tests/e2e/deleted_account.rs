//! After `DELETE /account` the merchant's Cognito sessions are signed out, and a token they still
//! hold (API Gateway checks only its signature and expiry) gets a 401 `account-deleted` problem
//! on every route, with nothing read or written for them. What refuses it, the deleted
//! account's tombstone, names no merchant.

mod trace;

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trace::snapshot;

const ACCOUNT_DELETED: &str = "https://sendpersonal.app/problems/account-deleted";

async fn delete_account(world: &World, merchant: &Merchant<'_>) -> Response {
    world
        .call(Method::DELETE, "/account", Some(&merchant.token), None)
        .await
}

/// Every call answers 401 `account-deleted` as problem+json.
async fn assert_refused(
    world: &World,
    merchant: &Merchant<'_>,
    calls: &[(Method, &str, Option<Value>)],
) {
    let mut wrong = Vec::new();
    for (method, path, body) in calls {
        let resp = world
            .call(method.clone(), path, Some(&merchant.token), body.clone())
            .await;
        let refused = resp.status == StatusCode::UNAUTHORIZED
            && resp.content_type == "application/problem+json"
            && resp.body["type"] == ACCOUNT_DELETED
            && resp.body["status"] == 401;
        if !refused {
            wrong.push(format!("{method} {path}: {} {:?}", resp.status, resp.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "a deleted account's token was not refused:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn after_account_deletion_every_route_refuses_the_token_and_nothing_is_written() {
    trace::logs();
    let world = World::start().await;
    let (merchant, _) = cognito_merchant(&world, "deleted.merchant@example.org").await;
    let bystander = world.merchant("still-here").await;
    let key = world.stack.sandbox.full_access_klaviyo_key();
    merchant.connect_demo_accounts().await;

    let resp = delete_account(&world, &merchant).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "deleted");
    assert_eq!(
        resp.body["deleted"]["session"], 1,
        "the user's Cognito sessions were signed out: {:?}",
        resp.body
    );
    assert_eq!(resp.body["deleted"]["user"], 1, "{:?}", resp.body);
    world.settle().await;
    let before = snapshot(&world).await;

    // The tombstone: one item keyed by a digest, no merchant id anywhere, expiring a little
    // after the longest token Cognito can issue (24 h).
    trace::assert_nothing_left("account deletion", &before, &[&merchant.sub]);
    let tombstones: Vec<&str> = before
        .table("AppTable")
        .into_iter()
        .filter(|i| i.contains("DELETED#"))
        .collect();
    assert_eq!(tombstones.len(), 1, "{tombstones:?}");
    let expires_at: i64 = tombstones[0]
        .split("expires_at")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the tombstone expires: {}", tombstones[0]));
    let left = expires_at - shared::domain::now_unix();
    assert!(
        (24 * 3600 + 1..=26 * 3600).contains(&left),
        "the tombstone outlives any token signed before the deletion, by a little: {left} s"
    );

    assert_refused(
        &world,
        &merchant,
        &[
            (Method::GET, "/connections", None),
            (
                Method::PUT,
                "/connections/klaviyo",
                Some(json!({ "api_key": key })),
            ),
            (
                Method::POST,
                "/connections/shopify",
                Some(json!({ "shop": DEMO_SHOP })),
            ),
            (Method::POST, "/catalog/sync", None),
            (Method::DELETE, "/connections/klaviyo", None),
            (Method::DELETE, "/connections/shopify", None),
            (Method::GET, "/account/export", None),
        ],
    )
    .await;

    // Deleting the account stays open (an interrupted deletion can be retried) and, done,
    // changes nothing.
    let again = delete_account(&world, &merchant).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(
        again.body["status"], "nothing_to_delete",
        "{:?}",
        again.body
    );

    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "nothing was written for the deleted account"
    );
    assert_eq!(
        bystander.get("/connections").await.status,
        StatusCode::OK,
        "another merchant's token is not affected"
    );
}

/// The runs API (personalize-fanout) refuses a deleted account's token like every other route.
#[tokio::test]
async fn the_runs_api_refuses_a_deleted_accounts_token() {
    trace::logs();
    let world = World::start().await;
    let (merchant, _) = cognito_merchant(&world, "deleted.runs@example.org").await;
    let settings = merchant.get("/settings").await;
    assert_eq!(settings.status, StatusCode::OK, "{:?}", settings.body);
    let mut changed = settings.body.clone();
    changed["sign_off"] = json!("The Northwind team");

    let resp = delete_account(&world, &merchant).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["deleted"]["user"], 1, "{:?}", resp.body);
    world.settle().await;
    let before = snapshot(&world).await;

    let run = json!({ "audience": { "kind": "segment", "id": "AbC123" }, "brief": "Winter sale",
                      "holdout_percent": 10, "profile_cap": 12, "review": false });
    assert_refused(
        &world,
        &merchant,
        &[
            (Method::GET, "/audiences", None),
            (Method::GET, "/settings", None),
            (Method::PUT, "/settings", Some(changed)),
            (Method::POST, "/runs", Some(run)),
            (Method::GET, "/runs", None),
            (Method::GET, "/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ", None),
            (
                Method::POST,
                "/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/approve",
                Some(json!({})),
            ),
            (
                Method::POST,
                "/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/cancel",
                Some(json!({})),
            ),
            (
                Method::POST,
                "/preview",
                Some(json!({ "brief": "Winter sale", "profiles": ["01HPROFILE"] })),
            ),
        ],
    )
    .await;
    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "nothing was written for the deleted account"
    );
}

/// An install started before the deletion whose one-time state survived it (written just after
/// the purge looked for states) cannot finish: Shopify's signed callback is refused and no
/// grant, mapping, token or connection is taken for the deleted account.
#[tokio::test]
async fn an_install_begun_before_the_account_was_deleted_cannot_finish() {
    trace::logs();
    let world = World::start().await;
    let (merchant, _) = cognito_merchant(&world, "deleted.mid.install@example.org").await;
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    let table = world.config().app_table;
    let ddb = world.stack.aws.dynamodb();
    let states = ddb
        .scan()
        .table_name(&table)
        .filter_expression("begins_with(pk, :o)")
        .expression_attribute_values(
            ":o",
            aws_sdk_dynamodb::types::AttributeValue::S("OAUTH#".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(states.len(), 1, "the install's one-time state");

    let resp = delete_account(&world, &merchant).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["deleted"]["oauth_state"], 1, "{:?}", resp.body);
    // The state as a concurrent start would have left it, after the purge's scan.
    ddb.put_item()
        .table_name(&table)
        .set_item(Some(states[0].clone()))
        .send()
        .await
        .unwrap();
    world.settle().await;
    let before = snapshot(&world).await;
    let exchanges = || async {
        world.sandbox_stats().await["shopify"]["requests"]["POST oauth/access_token"].clone()
    };
    let exchanges_before = exchanges().await;

    let resp = world.get_url(&callback).await;
    assert_eq!(
        resp.install_outcome(),
        ACCOUNT_DELETED.rsplit('/').next().unwrap()
    );

    world.settle().await;
    let mut after = snapshot(&world).await;
    // The one-time state was spent by the attempt; nothing else changed.
    after.items.push(
        before
            .items
            .iter()
            .find(|(_, i)| i.contains("OAUTH#"))
            .unwrap()
            .clone(),
    );
    after.items.sort();
    assert_eq!(after, before, "nothing was taken for the deleted account");
    assert_eq!(
        exchanges().await,
        exchanges_before,
        "the code was never exchanged, so Shopify granted nothing"
    );
}
