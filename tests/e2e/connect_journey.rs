//! The first user journey through the real HTTP API: a signed-in merchant connects Klaviyo and
//! Shopify and ends up with a cached catalog. Bad input gets problem+json and changes nothing.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const A: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const B: &str = "7a1c9e2b-3d4f-4a5b-9c8d-1e2f3a4b5c6d";

#[tokio::test]
async fn a_new_merchant_has_no_connections() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let view = merchant.connections().await;
    assert!(
        view["klaviyo"].is_null() && view["shopify"].is_null(),
        "{view}"
    );
}

#[tokio::test]
async fn connecting_klaviyo_keeps_the_key_only_in_secrets_manager() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let key = world.stack.sandbox.full_access_klaviyo_key();

    let resp = merchant.connect_klaviyo(&key).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "connected");
    assert!(!resp.body["account_name"]
        .as_str()
        .unwrap_or_default()
        .is_empty());

    let view = merchant.connections().await;
    assert_eq!(view["klaviyo"]["status"], "connected");
    assert!(
        !view.to_string().contains(&key),
        "GET /connections must never show the key"
    );
    assert!(
        !world.app_table_dump().await.contains(&key),
        "the connection record must hold no secret"
    );
    let config = world.config();
    let secret = world
        .secret(&format!("{}/{A}/klaviyo", config.secret_prefix))
        .await
        .expect("the secret exists");
    assert!(secret.contains(&key));
}

#[tokio::test]
async fn a_malformed_klaviyo_key_is_rejected_and_changes_nothing() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    for bad in [
        json!({ "api_key": "not-a-key" }),
        json!({ "api_key": "pk_short" }),
        json!({ "key": "x" }),
    ] {
        let resp = merchant.put("/connections/klaviyo", bad.clone()).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            resp.problem_type().ends_with("/invalid-klaviyo-key")
                || resp.problem_type().ends_with("/invalid-request")
        );
    }
    assert!(merchant.connections().await["klaviyo"].is_null());
    let config = world.config();
    assert!(world
        .secret(&format!("{}/{A}/klaviyo", config.secret_prefix))
        .await
        .is_none());
}

#[tokio::test]
async fn a_revoked_klaviyo_key_is_rejected() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let key = world
        .sandbox(
            Method::POST,
            "/_sandbox/klaviyo/keys",
            json!({ "scopes": all_scopes() }),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .sandbox(
            Method::DELETE,
            &format!("/_sandbox/klaviyo/keys/{key}"),
            json!({}),
        )
        .await;

    let resp = merchant.connect_klaviyo(&key).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.problem_type().ends_with("/klaviyo-key-rejected"));
    assert!(merchant.connections().await["klaviyo"].is_null());
}

#[tokio::test]
async fn a_key_missing_a_read_scope_is_rejected_naming_the_scope() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let scopes: Vec<&str> = all_scopes()
        .into_iter()
        .filter(|s| *s != "events:read")
        .collect();
    let key = world
        .sandbox(
            Method::POST,
            "/_sandbox/klaviyo/keys",
            json!({ "scopes": scopes }),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = merchant.connect_klaviyo(&key).await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        resp.body
    );
    assert!(resp.problem_type().ends_with("/klaviyo-missing-scopes"));
    assert_eq!(resp.body["missing_scopes"], json!(["events:read"]));
}

#[tokio::test]
async fn shopify_install_connects_the_shop_and_caches_its_catalog() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;

    let resp = merchant.connect_shopify(DEMO_SHOP).await;
    assert_eq!(resp.install_outcome(), "connected");

    let view = merchant.connections().await;
    let shopify = &view["shopify"];
    assert_eq!(shopify["status"], "connected", "{view}");
    assert_eq!(shopify["shop"], DEMO_SHOP);
    assert!(
        shopify["last_sync_at"].is_string(),
        "the first sync ran: {view}"
    );
    assert!(shopify["last_sync_error"].is_null());
    let catalog = world.cached_catalog(A).await;
    assert_eq!(shopify["catalog_size"].as_u64(), Some(catalog.len() as u64));
    assert!(
        catalog.len() > 100 && catalog.len() < 300,
        "drafts, archived and unpublished are left out"
    );
    assert!(catalog
        .iter()
        .all(|p| p.url.starts_with("http") && !p.title.is_empty()));
    assert!(!view.to_string().contains("shpat_"), "no token in the view");
    assert!(
        !world.app_table_dump().await.contains("shpat_"),
        "no token in DynamoDB"
    );
}

#[tokio::test]
async fn a_forged_callback_is_refused_and_changes_nothing() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    let mut query = query_of(&callback);
    for (k, v) in query.iter_mut() {
        if k == "code" {
            v.push('x');
        }
    }
    let forged = with_query(
        &callback,
        &url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish(),
    );

    let resp = world.get_url(&forged).await;
    assert_eq!(resp.install_outcome(), "invalid-oauth-signature");
    assert!(merchant.connections().await["shopify"].is_null());
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    assert_eq!(
        world.get_url(&callback).await.install_outcome(),
        "connected"
    );

    // The browser's state cookie was spent by the first visit; even with a copy of it the
    // state itself is single-use.
    let replay = world.get_url(&callback).await;
    assert_eq!(replay.install_outcome(), "oauth-browser-mismatch");
    world.browser_cookies.lock().unwrap().clear();
    let cookie = {
        let start = merchant
            .post("/connections/shopify", json!({ "shop": DEMO_SHOP }))
            .await;
        let begin = world
            .get_url(start.body["authorize_url"].as_str().unwrap())
            .await;
        begin.set_cookies[0].split(';').next().unwrap().to_owned()
    };
    // A correctly signed cookie for another state does not pass either.
    let replay = world
        .http
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let location = replay.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.ends_with("shopify=error&type=oauth-browser-mismatch"),
        "{location}"
    );
}

#[tokio::test]
async fn a_callback_for_another_shop_than_the_state_names_is_refused() {
    let world = World::start().await;
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": "other-shop.myshopify.com", "products": 20, "seed": 7 }),
        )
        .await;
    let merchant = world.merchant(A).await;
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    let query: Vec<(String, String)> = query_of(&callback)
        .into_iter()
        .map(|(k, v)| {
            if k == "shop" {
                (k, "other-shop.myshopify.com".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    // Correctly signed, so only the state binding can stop it.
    let resp = world
        .get_url(&with_query(
            &callback,
            &resign(&query, SANDBOX_CLIENT_SECRET),
        ))
        .await;
    assert_eq!(resp.install_outcome(), "invalid-oauth-state");
    assert!(merchant.connections().await["shopify"].is_null());
}

#[tokio::test]
async fn a_shop_outside_myshopify_is_refused() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    for shop in [
        "evil.com",
        "demo.myshopify.com.evil.com",
        "https://demo.myshopify.com/admin",
    ] {
        let resp = merchant
            .post("/connections/shopify", json!({ "shop": shop }))
            .await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{shop}");
        assert!(resp.problem_type().ends_with("/invalid-shop-domain"));
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_unknown_routes_404() {
    let world = World::start().await;
    let none = world.call(Method::GET, "/connections", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.problem_type().ends_with("/unauthenticated"));

    let garbage = world
        .call(Method::GET, "/connections", Some("not.a.jwt"), None)
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);

    let merchant = world.merchant(A).await;
    let unknown = merchant.get("/no/such/route").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.problem_type().ends_with("/route-not-found"));
}

#[tokio::test]
async fn merchant_b_can_never_see_or_change_merchant_a() {
    let world = World::start().await;
    let a = world.merchant(A).await;
    let b = world.merchant(B).await;
    a.connect_demo_accounts().await;

    let b_view = b.connections().await;
    assert!(
        b_view["klaviyo"].is_null() && b_view["shopify"].is_null(),
        "B sees nothing of A: {b_view}"
    );

    // B cannot take A's shop, cannot sync A's catalog, and cannot name A in a body.
    let take = b
        .post("/connections/shopify", json!({ "shop": DEMO_SHOP }))
        .await;
    assert_eq!(take.status, StatusCode::CONFLICT);
    assert!(take.problem_type().ends_with("/shop-already-connected"));
    let sync = b.post("/catalog/sync", json!({})).await;
    assert_eq!(sync.status, StatusCode::CONFLICT);
    let smuggle = b
        .put(
            "/connections/klaviyo",
            json!({ "api_key": world.stack.sandbox.full_access_klaviyo_key(), "merchant_id": A }),
        )
        .await;
    assert_eq!(
        smuggle.status,
        StatusCode::BAD_REQUEST,
        "unknown fields, tenancy included, are refused"
    );

    let a_view = a.connections().await;
    assert_eq!(a_view["klaviyo"]["status"], "connected");
    assert_eq!(a_view["shopify"]["shop"], DEMO_SHOP);
}

fn all_scopes() -> Vec<&'static str> {
    shared::klaviyo::limits::SCOPES.to_vec()
}

/// The app's Shopify secret is read when a request first needs it, not at start: while it is
/// unreadable the install can still be asked for, its begin navigation (which signs the
/// browser's state cookie) goes back to the console with an internal error naming no secret,
/// and once the secret is back the install completes.
#[tokio::test]
async fn an_unreadable_app_secret_fails_only_the_requests_that_need_it() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let id = world.config().shopify_client_secret_id;
    let value = world.take_secret(&id).await;

    // Starting the install needs the secret too (it signs the browser's state cookie).
    let start = merchant
        .post("/connections/shopify", json!({ "shop": DEMO_SHOP }))
        .await;
    let begin = world
        .get_url(start.body["authorize_url"].as_str().unwrap())
        .await;
    assert_eq!(begin.install_outcome(), "internal");
    assert!(
        !begin.location.clone().unwrap_or_default().contains(&id),
        "the redirect names no secret: {:?}",
        begin.location
    );
    assert!(merchant.connections().await["shopify"].is_null());

    world.restore_secret(&id, &value).await;
    let resp = merchant.connect_shopify(DEMO_SHOP).await;
    assert_eq!(resp.install_outcome(), "connected");
    world.settle().await;
    assert_eq!(
        merchant.connections().await["shopify"]["status"],
        "connected"
    );
}
