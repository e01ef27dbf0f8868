//! Shopify webhooks through the real HTTP API: signed by the sandbox with the app's secret,
//! verified before anything else, deduplicated, and turned into queued work.

mod trace;

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trace::{snapshot, Delivery};

async fn start() -> World {
    trace::logs();
    World::start().await
}

/// The product count the merchant's connection view shows.
async fn catalog_size(merchant: &Merchant<'_>) -> usize {
    let view = merchant.connections().await;
    view["shopify"]["catalog_size"]
        .as_u64()
        .expect("a catalog_size") as usize
}

/// Shopify delivers `topic` for product `id` of the demo shop; the API queues it and the queue
/// drains. The delivery is returned for replays.
async fn deliver_product(world: &World, topic: &str, id: u64) -> Delivery {
    let delivery = Delivery::from_sandbox(
        world,
        DEMO_SHOP,
        json!({ "topic": topic, "product_id": id }),
    )
    .await;
    let resp = delivery.send(world).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    world.settle().await;
    delivery
}

fn numeric(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

/// A merchant connected to the demo shop, its first product's numeric id, and a signed
/// `products/update` delivery for it from the sandbox.
async fn connected_with_update<'w>(world: &'w World, sub: &str) -> (Merchant<'w>, u64, Delivery) {
    let merchant = world.merchant(sub).await;
    merchant.connect_shopify(DEMO_SHOP).await;
    let id = numeric(&world.cached_catalog(&merchant.sub).await[0].id);
    let delivery = Delivery::from_sandbox(
        world,
        DEMO_SHOP,
        json!({ "topic": "products/update", "product_id": id }),
    )
    .await;
    (merchant, id, delivery)
}

#[tokio::test]
async fn product_webhooks_keep_the_live_catalog_current_and_never_resurrect_a_deleted_product() {
    let world = start().await;
    let merchant = world.merchant("wh-products").await;
    merchant.connect_shopify(DEMO_SHOP).await;
    let before = world.cached_catalog(&merchant.sub).await;
    let (first, second) = (before[0].clone(), before[1].clone());

    // products/update: the product is re-read from Shopify into the live generation.
    let id = numeric(&first.id);
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{id}/update"),
            json!({ "title": "Renamed Between Syncs" }),
        )
        .await;
    let update = deliver_product(&world, "products/update", id).await;
    let after = world.cached_catalog(&merchant.sub).await;
    assert_eq!(
        after.iter().find(|p| p.id == first.id).unwrap().title,
        "Renamed Between Syncs"
    );
    assert_eq!(after.len(), before.len());

    // products/create of a product already cached is an upsert, not a duplicate.
    deliver_product(&world, "products/create", numeric(&second.id)).await;
    assert_eq!(
        world.cached_catalog(&merchant.sub).await.len(),
        before.len()
    );
    assert_eq!(catalog_size(&merchant).await, before.len());

    // Unpublished between syncs (set to draft): it leaves the catalog and the connection's count;
    // active again: it comes back, and so does the count.
    let second_id = numeric(&second.id);
    for (status, expected) in [("DRAFT", before.len() - 1), ("ACTIVE", before.len())] {
        world
            .sandbox(
                Method::POST,
                &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{second_id}/status"),
                json!({ "status": status }),
            )
            .await;
        deliver_product(&world, "products/update", second_id).await;
        assert_eq!(
            world.cached_catalog(&merchant.sub).await.len(),
            expected,
            "{status}"
        );
        assert_eq!(catalog_size(&merchant).await, expected, "{status}");
    }

    // products/delete removes it from the live generation.
    world
        .sandbox(
            Method::DELETE,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{id}"),
            json!({}),
        )
        .await;
    deliver_product(&world, "products/delete", id).await;
    let after_delete = world.cached_catalog(&merchant.sub).await;
    assert!(
        after_delete.iter().all(|p| p.id != first.id),
        "the deleted product is gone"
    );
    assert_eq!(after_delete.len(), before.len() - 1);
    assert_eq!(catalog_size(&merchant).await, before.len() - 1);

    // A late update (Shopify retries for hours, unordered) does not bring it back.
    let mut late = update;
    late.set_header("X-Shopify-Event-Id", &trace::event_id());
    assert_eq!(late.send(&world).await.body["status"], "queued");
    world.settle().await;
    assert!(world
        .cached_catalog(&merchant.sub)
        .await
        .iter()
        .all(|p| p.id != first.id));
    assert_eq!(catalog_size(&merchant).await, before.len() - 1);

    // And at the store: a write older than the tombstone is refused.
    let config = world.config();
    let catalog =
        shared::aws::catalog_store::CatalogStore::from_sdk(&world.stack.aws, &config.catalog_table);
    let generation = world.generation(&merchant.sub).await.unwrap();
    let m = shared::domain::MerchantId::parse(&merchant.sub).unwrap();
    assert_eq!(
        catalog
            .upsert_product(&m, &generation, &first, 1)
            .await
            .unwrap(),
        shared::aws::catalog_store::ProductWrite::Stale,
        "an older upsert loses to the tombstone"
    );
    assert!(world
        .cached_catalog(&merchant.sub)
        .await
        .iter()
        .all(|p| p.id != first.id));
}

#[tokio::test]
async fn a_replayed_delivery_is_acknowledged_and_changes_nothing() {
    let world = start().await;
    let (_, _, delivery) = connected_with_update(&world, "wh-replay").await;
    assert_eq!(delivery.send(&world).await.body["status"], "queued");
    world.settle().await;

    let before = snapshot(&world).await;
    let replay = delivery.send(&world).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body["status"], "duplicate");
    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "a duplicate event id changes nothing"
    );
}

#[tokio::test]
async fn forged_broken_unknown_and_foreign_deliveries_get_a_clear_answer_and_change_nothing() {
    let world = start().await;
    let (_, _, good) = connected_with_update(&world, "wh-bad-input").await;
    world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/shops",
            json!({ "shop": "not-connected.myshopify.com", "products": 3 }),
        )
        .await;
    let before = snapshot(&world).await;

    let expect = |what: &str, resp: &Response, status: u16, problem: Option<&str>| {
        assert_eq!(resp.status.as_u16(), status, "{what}: {:?}", resp.body);
        if let Some(slug) = problem {
            assert_eq!(
                resp.problem_type(),
                format!("https://sendpersonal.app/problems/{slug}"),
                "{what}"
            );
        }
    };

    let mut forged = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    forged.set_header(
        "X-Shopify-Hmac-Sha256",
        &sandbox::shopify_webhook_hmac("not-the-app-secret", &good.body),
    );
    expect(
        "forged",
        &forged.send(&world).await,
        401,
        Some("invalid-webhook-signature"),
    );

    let mut unsigned = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    unsigned
        .headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("X-Shopify-Hmac-Sha256"));
    expect(
        "unsigned",
        &unsigned.send(&world).await,
        401,
        Some("invalid-webhook-signature"),
    );

    let mut tampered = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    tampered.body = String::from_utf8(good.body.clone())
        .unwrap()
        .replace("Renamed", "Hacked")
        .replace("\"id\":", "\"id\": ")
        .into_bytes();
    expect(
        "tampered",
        &tampered.send(&world).await,
        401,
        Some("invalid-webhook-signature"),
    );

    let mut truncated = Delivery {
        body: Vec::new(),
        headers: good.headers.clone(),
    };
    truncated.resign(good.body[..good.body.len() / 2].to_vec());
    expect(
        "truncated",
        &truncated.send(&world).await,
        400,
        Some("invalid-webhook-body"),
    );

    // Latin-1 bytes (not UTF-8): API Gateway hands these over base64-encoded.
    let mut latin1 = Delivery {
        body: Vec::new(),
        headers: good.headers.clone(),
    };
    latin1.resign(b"{\"id\": 1, \"title\": \"Caf\xe9 \xfcber\"}".to_vec());
    expect(
        "wrongly encoded",
        &latin1.send(&world).await,
        400,
        Some("invalid-webhook-body"),
    );

    let mut no_event_id = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    no_event_id.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("X-Shopify-Event-Id")
            && !k.eq_ignore_ascii_case("X-Shopify-Webhook-Id")
    });
    expect(
        "no event id",
        &no_event_id.send(&world).await,
        400,
        Some("invalid-webhook-body"),
    );

    let mut bad_shop = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    bad_shop.set_header("X-Shopify-Shop-Domain", "demo-store.myshopify.com.evil.com");
    expect(
        "foreign shop domain",
        &bad_shop.send(&world).await,
        400,
        Some("invalid-webhook-body"),
    );

    let mut unknown = Delivery {
        body: good.body.clone(),
        headers: good.headers.clone(),
    };
    unknown.set_header("X-Shopify-Topic", "orders/create");
    let resp = unknown.send(&world).await;
    expect("unknown topic", &resp, 200, None);
    assert_eq!(resp.body["status"], "ignored");

    for topic in ["app/uninstalled", "products/delete"] {
        let foreign = Delivery::from_sandbox(
            &world,
            "not-connected.myshopify.com",
            json!({ "topic": topic, "product_id": 1 }),
        )
        .await;
        let resp = foreign.send(&world).await;
        expect("shop not connected", &resp, 200, None);
        assert_eq!(resp.body["status"], "ignored", "{topic}");
    }

    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "no bad delivery changed anything"
    );
}

#[tokio::test]
async fn customer_compliance_topics_are_acknowledged_and_nothing_of_the_customer_is_kept() {
    let world = start().await;
    let merchant = world.merchant("wh-compliance").await;
    merchant.connect_shopify(DEMO_SHOP).await;
    let before = snapshot(&world).await;
    let customer = json!({ "id": 7100000042u64, "email": "ottilie.vanterpool@example.net", "phone": "+44 7700 900123",
                           "first_name": "Ottilie", "last_name": "Vanterpool" });
    for topic in ["customers/data_request", "customers/redact"] {
        let delivery = Delivery::from_sandbox(
            &world,
            DEMO_SHOP,
            json!({ "topic": topic, "customer": customer }),
        )
        .await;
        let resp = delivery.send(&world).await;
        assert_eq!(resp.status, StatusCode::OK, "{topic}: {:?}", resp.body);
        assert_eq!(resp.body["status"], "acknowledged");
        assert!(resp.body["detail"]
            .as_str()
            .unwrap()
            .contains("stores no customer data"));
    }
    world.settle().await;
    let after = snapshot(&world).await;
    assert_eq!(
        after, before,
        "a compliance request about a customer changes nothing"
    );
    trace::assert_no_leaks(
        "customer compliance webhooks",
        &after,
        &trace::log_text(),
        &["Ottilie", "Vanterpool", "7700 900123"],
    );
}

#[tokio::test]
async fn the_sample_webhook_events_verify_against_the_sandbox_secret() {
    let world = start().await;
    let events = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/connect-shopify"
    ));
    let mut checked = 0;
    for topic in shared::domain::WebhookTopic::ALL {
        let path = events.join(format!("webhook-{}.json", topic.as_str().replace('/', "-")));
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let out = world
            .stack
            .invoke("ConnectShopifyFunction", event)
            .await
            .unwrap();
        // demo-store is not connected in this stack: every topic is verified, then acknowledged.
        assert_eq!(out["statusCode"], 200, "{}: {out}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[tokio::test]
async fn purging_a_merchant_that_does_not_exist_answers_nothing_to_delete_and_changes_nothing() {
    let world = start().await;
    let bystander = world.merchant("wh-bystander").await;
    bystander.connect_shopify(DEMO_SHOP).await;
    let before = snapshot(&world).await;

    let ghost = world.merchant("ghost-merchant").await;
    for path in ["/connections/klaviyo", "/connections/shopify", "/account"] {
        let resp = world
            .call(Method::DELETE, path, Some(&ghost.token), None)
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{path}: {:?}", resp.body);
        assert_eq!(resp.body["status"], "nothing_to_delete", "{path}");
        assert_eq!(resp.body["deleted"], json!({}), "{path}");
    }
    let export = ghost.get("/account/export").await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.body["records"], json!([]));
    assert_eq!(export.body["secrets"], json!([]));

    let purge = json!({ "Records": [{ "messageId": "m-1", "body": json!({ "shop": "nobody-here.myshopify.com", "reason": "shop_redact", "requested_at": 1 }).to_string(),
                                      "eventSource": "aws:sqs" }] });
    let out = world
        .stack
        .invoke("DisconnectPurgeFunction", purge)
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]));

    let unauthenticated = world.call(Method::DELETE, "/account", None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "purging nothing changes nothing (no audit record either)"
    );
}

/// `connect_shopify::MAX_WEBHOOK_BODY_BYTES`: the largest body whose API Gateway event fits a
/// Lambda invocation (6 MiB) even base64-encoded.
const BODY_LIMIT: usize = 4_669_440;

/// A products/update body of exactly `len` bytes for product `id`: a long description (plain
/// letters, which JSON does not escape, so the event stays the body's size).
fn product_body_of_len(id: u64, len: usize) -> Vec<u8> {
    let shape = |html: &str| {
        json!({ "id": id, "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
                "title": "Long Description", "body_html": html })
        .to_string()
    };
    let padding = len - shape("").len();
    let body = shape(&"x".repeat(padding)).into_bytes();
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn a_product_at_shopifys_variant_limit_is_accepted_and_updates_the_catalog() {
    let world = start().await;
    let merchant = world.merchant("wh-many-variants").await;
    merchant.connect_shopify(DEMO_SHOP).await;
    let product = world.cached_catalog(&merchant.sub).await[0].clone();
    let id = numeric(&product.id);

    // The merchant gives the product every size, colour and style: 2,048 variants.
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{id}/update"),
            json!({ "title": "Every Size, Colour and Style", "variants": 2048 }),
        )
        .await;
    let delivery = Delivery::from_sandbox(
        &world,
        DEMO_SHOP,
        json!({ "topic": "products/update", "product_id": id }),
    )
    .await;
    let payload: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(payload["variants"].as_array().unwrap().len(), 2048);
    assert!(
        delivery.body.len() > 1024 * 1024,
        "a product at the variant limit is over a megabyte ({} bytes): over the old 256 KB \
         limit and the local gateway's old 1 MiB",
        delivery.body.len()
    );

    let resp = delivery.send(&world).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    world.settle().await;
    let after = world.cached_catalog(&merchant.sub).await;
    assert_eq!(
        after.iter().find(|p| p.id == product.id).unwrap().title,
        "Every Size, Colour and Style"
    );
}

#[tokio::test]
async fn a_signed_body_over_the_limit_gets_413_and_changes_nothing_and_one_at_the_limit_is_taken() {
    let world = start().await;
    let (_, id, template) = connected_with_update(&world, "wh-body-limit").await;
    let delivery = |body: Vec<u8>| {
        let mut d = Delivery {
            body: Vec::new(),
            headers: template.headers.clone(),
        };
        d.set_header("X-Shopify-Event-Id", &trace::event_id());
        d.resign(body);
        d
    };
    let before = snapshot(&world).await;

    // One byte over: Shopify signed it, it reached the function, and the function says why it
    // will not take it.
    let over = delivery(product_body_of_len(id, BODY_LIMIT + 1));
    let resp = over.send(&world).await;
    assert_eq!(
        resp.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        resp.body
    );
    assert_eq!(
        resp.problem_type(),
        "https://sendpersonal.app/problems/payload-too-large"
    );
    let detail = resp.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("webhook body") && detail.contains(&BODY_LIMIT.to_string()),
        "the function's own answer, naming the limit: {detail}"
    );

    // The signature still comes first: a forged body of that size is a 401.
    let mut forged = delivery(product_body_of_len(id, BODY_LIMIT + 1));
    forged.set_header(
        "X-Shopify-Hmac-Sha256",
        &sandbox::shopify_webhook_hmac("not-the-app-secret", &forged.body),
    );
    let resp = forged.send(&world).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{:?}", resp.body);
    assert!(resp.problem_type().ends_with("/invalid-webhook-signature"));

    // Too big for a Lambda invocation at all: the gateway answers 413, no function runs.
    let huge = delivery(product_body_of_len(id, 7 * 1024 * 1024));
    let resp = huge.send(&world).await;
    assert_eq!(
        resp.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        resp.body
    );
    assert_eq!(
        resp.problem_type(),
        "https://sendpersonal.app/problems/payload-too-large"
    );

    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "no refused delivery changed anything"
    );

    // At the limit exactly: taken and queued like any product update.
    let at = delivery(product_body_of_len(id, BODY_LIMIT));
    let resp = at.send(&world).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    world.settle().await;
}

/// A client secret the app had before the sandbox's current one.
const PREVIOUS_SECRET: &str = "the-previous-shopify-client-secret";

/// The operator's step of a rotation: the app secret becomes `{current, previous, rotated_at}`
/// (the current one is the sandbox's, which signs its deliveries and callbacks). Done before
/// anything has read the secret.
async fn store_rotation(world: &World, rotated_secs_ago: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let doc = json!({ "current": SANDBOX_CLIENT_SECRET, "previous": PREVIOUS_SECRET,
                      "rotated_at": now - rotated_secs_ago });
    world
        .stack
        .aws
        .secrets()
        .put_secret_value()
        .secret_id(world.config().shopify_client_secret_id)
        .secret_string(doc.to_string())
        .send()
        .await
        .expect("store the rotated secret");
}

/// The install, with the callback as Shopify would have signed it with `secret`.
async fn callback_signed_with(merchant: &Merchant<'_>, secret: &str) -> Response {
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    let query = query_of(&callback);
    merchant
        .world
        .get_url(&with_query(&callback, &resign(&query, secret)))
        .await
}

/// A products/update delivery built by the sandbox, signed with `secret`.
async fn product_update_signed_with(world: &World, id: u64, secret: &str) -> Delivery {
    let mut delivery = Delivery::from_sandbox(
        world,
        DEMO_SHOP,
        json!({ "topic": "products/update", "product_id": id }),
    )
    .await;
    let signature = sandbox::shopify_webhook_hmac(secret, &delivery.body);
    delivery.set_header("X-Shopify-Hmac-Sha256", &signature);
    delivery
}

#[tokio::test]
async fn within_a_rotations_grace_the_previous_secret_still_verifies_deliveries_and_callbacks() {
    let world = start().await;
    store_rotation(&world, 3600).await;
    let merchant = world.merchant("wh-rotation-grace").await;

    // A callback signed with the previous secret connects (the code is exchanged with the
    // current one: the sandbox's Shopify accepts no other).
    let connected = callback_signed_with(&merchant, PREVIOUS_SECRET).await;
    assert_eq!(connected.install_outcome(), "connected");
    world.settle().await;
    let product = world.cached_catalog(&merchant.sub).await[0].clone();
    let id = numeric(&product.id);

    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{id}/update"),
            json!({ "title": "Signed Before The Rotation" }),
        )
        .await;
    let old = product_update_signed_with(&world, id, PREVIOUS_SECRET).await;
    let resp = old.send(&world).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    world.settle().await;
    assert_eq!(
        world
            .cached_catalog(&merchant.sub)
            .await
            .iter()
            .find(|p| p.id == product.id)
            .unwrap()
            .title,
        "Signed Before The Rotation"
    );

    let new = product_update_signed_with(&world, id, SANDBOX_CLIENT_SECRET).await;
    assert_eq!(new.send(&world).await.body["status"], "queued");
    world.settle().await;

    let before = snapshot(&world).await;
    let forged = product_update_signed_with(&world, id, "some-other-secret").await;
    let resp = forged.send(&world).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{:?}", resp.body);
    assert!(resp.problem_type().ends_with("/invalid-webhook-signature"));
    world.settle().await;
    assert_eq!(snapshot(&world).await, before);
}

#[tokio::test]
async fn after_a_rotations_grace_the_previous_secret_is_refused_and_the_current_one_accepted() {
    let world = start().await;
    // Rotated a day and ten minutes ago: the default grace (24 h) is over.
    store_rotation(&world, 24 * 3600 + 600).await;
    let merchant = world.merchant("wh-rotation-over").await;

    let refused = callback_signed_with(&merchant, PREVIOUS_SECRET).await;
    assert_eq!(refused.install_outcome(), "invalid-oauth-signature");
    assert!(merchant.connections().await["shopify"].is_null());

    let connected = callback_signed_with(&merchant, SANDBOX_CLIENT_SECRET).await;
    assert_eq!(connected.install_outcome(), "connected");
    world.settle().await;
    let id = numeric(&world.cached_catalog(&merchant.sub).await[0].id);

    let before = snapshot(&world).await;
    let old = product_update_signed_with(&world, id, PREVIOUS_SECRET).await;
    let resp = old.send(&world).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{:?}", resp.body);
    assert!(resp.problem_type().ends_with("/invalid-webhook-signature"));
    world.settle().await;
    assert_eq!(
        snapshot(&world).await,
        before,
        "a delivery signed with the retired secret changes nothing"
    );

    let new = product_update_signed_with(&world, id, SANDBOX_CLIENT_SECRET).await;
    let resp = new.send(&world).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "queued");
    world.settle().await;
}
