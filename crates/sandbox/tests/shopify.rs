mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use sandbox::SandboxConfig;
use serde_json::{json, Value};
use sha2::Sha256;

/// Independent implementation of NOTES §2.2 step 5, to check the sandbox's signature.
fn expected_hmac(secret: &str, pairs: &[(String, String)]) -> String {
    let mut kept: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| {
            let k = k
                .replace('%', "%25")
                .replace('&', "%26")
                .replace('=', "%3D");
            let v = v.replace('%', "%25").replace('&', "%26");
            format!("{k}={v}")
        })
        .collect();
    kept.sort();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(kept.join("&").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn oauth_redirect_carries_a_valid_query_hmac_and_fresh_timestamp() {
    let sb = start(small_config()).await;
    let resp = client()
        .get(format!("{}/oauth/authorize", shop_admin(&sb, SHOP)))
        .query(&[
            ("client_id", "sandbox-client-id"),
            ("scope", "read_products"),
            ("redirect_uri", "https://app.example/auth/callback"),
            ("state", "a1b2c3-_."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("app.example"));
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("shop"), SHOP);
    assert_eq!(get("state"), "a1b2c3-_.");
    assert!(!get("host").is_empty());
    assert_eq!(
        get("hmac"),
        expected_hmac("sandbox-shopify-client-secret", &pairs)
    );
    let ts: i64 = get("timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 10);
}

#[tokio::test]
async fn oauth_rejects_wrong_client_id_and_reused_codes() {
    let sb = start(small_config()).await;
    let resp = client()
        .get(format!("{}/oauth/authorize", shop_admin(&sb, SHOP)))
        .query(&[
            ("client_id", "nope"),
            ("scope", "read_products"),
            ("redirect_uri", "https://a.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = client()
        .get(format!("{}/oauth/authorize", shop_admin(&sb, SHOP)))
        .query(&[
            ("client_id", "sandbox-client-id"),
            ("scope", "read_products"),
            ("redirect_uri", "https://a.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let exchange = |secret: &'static str| {
        let code = code.clone();
        let url = format!("{}/oauth/access_token", shop_admin(&sb, SHOP));
        async move {
            client()
                .post(url)
                .form(&[
                    ("client_id", "sandbox-client-id"),
                    ("client_secret", secret),
                    ("code", &code),
                    ("expiring", "1"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(exchange("wrong-secret").await.status(), 401);
    let ok = exchange("sandbox-shopify-client-secret").await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["scope"], "read_products");
    assert!(body["access_token"].as_str().unwrap().starts_with("shpat_"));
    assert_eq!(body["expires_in"], 3600);
    let again = exchange("sandbox-shopify-client-secret").await;
    assert_eq!(again.status(), 400);
    let err: Value = again.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
}

async fn refresh(sb: &sandbox::Sandbox, token: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/oauth/access_token", shop_admin(sb, SHOP)))
        .json(&json!({
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-shopify-client-secret",
            "grant_type": "refresh_token",
            "refresh_token": token,
        }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn refresh_rotates_tokens_and_old_refresh_token_dies_once_new_one_is_used() {
    let sb = start(small_config()).await;
    let first = install(&sb, SHOP).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_string();

    let (status, second) = refresh(&sb, &r1).await;
    assert_eq!(status, 200);
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(second["refresh_token_expires_in"], 7_776_000);

    // The new access token works.
    let (status, _) = graphql(
        &sb,
        SHOP,
        second["access_token"].as_str().unwrap(),
        "{ shop { name } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200);

    // Until r2 is used, r1 stays valid (NOTES §2.3); retrying with r1 is allowed.
    let (status, third) = refresh(&sb, &r1).await;
    assert_eq!(status, 200);
    let r3 = third["refresh_token"].as_str().unwrap().to_string();

    // Using r3 retires r1; r1 then fails with invalid_grant.
    let (status, _) = refresh(&sb, &r3).await;
    assert_eq!(status, 200);
    let (status, err) = refresh(&sb, &r1).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");

    let stats: Value = client()
        .get(format!("{}/_sandbox/stats", sb.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["shopify"]["token_refreshes"][SHOP], 3);
}

#[tokio::test]
async fn expired_or_unknown_tokens_get_shopify_401_body() {
    let sb = start(small_config()).await;
    let tok = install(&sb, SHOP).await;
    let access = tok["access_token"].as_str().unwrap();
    let (status, body) = graphql(&sb, SHOP, "shpat_bogus", "{ shop { name } }", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["errors"],
        "[API] Invalid API key or access token (unrecognized login or wrong password)"
    );

    client()
        .post(format!(
            "{}/_sandbox/shopify/{SHOP}/expire-access-tokens",
            sb.base_url
        ))
        .send()
        .await
        .unwrap();
    let (status, _) = graphql(&sb, SHOP, access, "{ shop { name } }", json!({})).await;
    assert_eq!(status, 401);
}

const PAGE_QUERY: &str = r#"query($after: String) {
  products(first: 50, after: $after, query: "status:active", sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes { id status handle onlineStoreUrl variants(first: 5) { nodes { id price availableForSale } } }
  }
}"#;

#[tokio::test]
async fn graphql_paging_returns_every_active_product_exactly_once() {
    let sb = start(small_config()).await;
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, count) = graphql(
        &sb,
        SHOP,
        &token,
        r#"{ productsCount(query: "status:active") { count } }"#,
        json!({}),
    )
    .await;
    let expected = count["data"]["productsCount"]["count"].as_u64().unwrap() as usize;
    assert!(expected > 200 && expected < 300);

    let mut seen = HashSet::new();
    let mut after = Value::Null;
    loop {
        let (status, body) =
            graphql(&sb, SHOP, &token, PAGE_QUERY, json!({ "after": after })).await;
        assert_eq!(status, 200);
        assert!(body.get("errors").is_none(), "{body}");
        let products = &body["data"]["products"];
        for p in products["nodes"].as_array().unwrap() {
            assert_eq!(p["status"], "ACTIVE");
            assert!(p["id"]
                .as_str()
                .unwrap()
                .starts_with("gid://shopify/Product/"));
            assert!(
                seen.insert(p["id"].as_str().unwrap().to_string()),
                "duplicate {}",
                p["id"]
            );
        }
        let cost = &body["extensions"]["cost"];
        assert!(cost["actualQueryCost"].as_u64() <= cost["requestedQueryCost"].as_u64());
        if !products["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = products["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), expected);
}

#[tokio::test]
async fn graphql_reports_unknown_fields_and_max_cost() {
    let sb = start(small_config()).await;
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = graphql(
        &sb,
        SHOP,
        &token,
        "{ products(first: 1) { nodes { id bogus } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["message"],
        "Field 'bogus' doesn't exist on type 'Product'"
    );

    let big = "{ products(first: 250) { nodes { id variants(first: 100) { nodes { id } } } } }";
    let (_, body) = graphql(&sb, SHOP, &token, big, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");

    // Aliases, inline fragments, __typename and edges all project.
    let q = r#"{ a: product(id: "gid://shopify/Product/8100000000001") { __typename t: title
        featuredMedia { ... on MediaImage { image { url } } } }
      products(first: 2, reverse: true) { edges { cursor node { id } } pageInfo { hasPreviousPage } } }"#;
    let (_, body) = graphql(&sb, SHOP, &token, q, json!({})).await;
    assert_eq!(body["data"]["a"]["__typename"], "Product");
    assert!(body["data"]["a"]["t"].is_string());
    assert_eq!(
        body["data"]["products"]["edges"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn graphql_throttles_with_shopify_shape_when_bucket_is_drained() {
    let sb = start(SandboxConfig {
        shopify_bucket_size: 120.0,
        shopify_restore_rate: 1.0,
        ..small_config()
    })
    .await;
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let q = "{ products(first: 50) { nodes { id } } }"; // requested 52
    let (_, first) = graphql(&sb, SHOP, &token, q, json!({})).await;
    assert_eq!(first["extensions"]["cost"]["requestedQueryCost"], 52);
    let (_, _second) = graphql(&sb, SHOP, &token, q, json!({})).await;
    let (status, third) = graphql(&sb, SHOP, &token, q, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(third["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(third["errors"][0]["message"], "Throttled");
    let ts = &third["extensions"]["cost"]["throttleStatus"];
    assert!(ts["currentlyAvailable"].as_u64().unwrap() < 52);
    assert_eq!(ts["maximumAvailable"], 120.0);
    assert_eq!(ts["restoreRate"], 1.0);
}

#[tokio::test]
async fn fault_injection_fails_next_requests_with_500() {
    let sb = start(small_config()).await;
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    client()
        .post(format!("{}/_sandbox/shopify/{SHOP}/faults", sb.base_url))
        .json(&json!({ "graphql_errors": 2 }))
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, _) = graphql(&sb, SHOP, &token, "{ shop { name } }", json!({})).await;
        assert_eq!(status, 500);
    }
    let (status, body) = graphql(
        &sb,
        SHOP,
        &token,
        "{ shop { name currencyCode myshopifyDomain } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["shop"]["myshopifyDomain"], SHOP);
}

#[tokio::test]
async fn status_control_archives_a_product() {
    let sb = start(small_config()).await;
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, body) = graphql(
        &sb,
        SHOP,
        &token,
        r#"{ products(first: 1, query: "status:active") { nodes { id } } }"#,
        json!({}),
    )
    .await;
    let gid = body["data"]["products"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let n = gid.rsplit('/').next().unwrap();
    let resp = client()
        .post(format!(
            "{}/_sandbox/shopify/{SHOP}/products/{n}/status",
            sb.base_url
        ))
        .json(&json!({ "status": "ARCHIVED" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, body) = graphql(
        &sb,
        SHOP,
        &token,
        "query($id: ID!) { product(id: $id) { status onlineStoreUrl } }",
        json!({ "id": gid }),
    )
    .await;
    assert_eq!(body["data"]["product"]["status"], "ARCHIVED");
    assert!(body["data"]["product"]["onlineStoreUrl"].is_null());
}

#[tokio::test]
async fn bulk_operation_completes_with_jsonl_children_carrying_parent_ids() {
    let sb = start(small_config()).await;
    // A fresh, small shop created through the controls.
    client()
        .post(format!("{}/_sandbox/shopify/shops", sb.base_url))
        .json(&json!({ "shop": "tiny.myshopify.com", "products": 40, "seed": 9 }))
        .send()
        .await
        .unwrap();
    let token = install(&sb, "tiny.myshopify.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let inner = r#"{ products(query: "status:active") { edges { node { id title featuredMedia { ... on MediaImage { image { url } } } variants { edges { node { id sku price } } } } } } }"#;
    let (_, started) = graphql(
        &sb,
        "tiny.myshopify.com",
        &token,
        "mutation($q: String!) { bulkOperationRunQuery(query: $q, groupObjects: false) { bulkOperation { id status } userErrors { field message code } } }",
        json!({ "q": inner }),
    )
    .await;
    let run = &started["data"]["bulkOperationRunQuery"];
    assert_eq!(run["userErrors"], json!([]));
    assert_eq!(run["bulkOperation"]["status"], "CREATED");
    let id = run["bulkOperation"]["id"].as_str().unwrap().to_string();

    let mut op = Value::Null;
    for _ in 0..50 {
        let (_, body) = graphql(
            &sb,
            "tiny.myshopify.com",
            &token,
            "query($id: ID!) { bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl createdAt completedAt } }",
            json!({ "id": id }),
        )
        .await;
        op = body["data"]["bulkOperation"].clone();
        if op["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(op["status"], "COMPLETED");
    let text = client()
        .get(op["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(op["objectCount"], lines.len().to_string());
    let mut parents = HashSet::new();
    for line in &lines {
        let id = line["id"].as_str().unwrap();
        if id.starts_with("gid://shopify/Product/") {
            assert!(line.get("__parentId").is_none());
            assert!(
                line.get("variants").is_none(),
                "connections must not be inlined"
            );
            parents.insert(id.to_string());
        } else {
            assert!(id.starts_with("gid://shopify/ProductVariant/"));
            assert!(
                parents.contains(line["__parentId"].as_str().unwrap()),
                "child before parent"
            );
        }
    }
    assert!(!parents.is_empty());

    // Invalid bulk query: nested connection without the parent's id.
    let (_, bad) = graphql(
        &sb,
        "tiny.myshopify.com",
        &token,
        "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id } userErrors { code message } } }",
        json!({ "q": "{ products { edges { node { title variants { edges { node { id } } } } } } }" }),
    )
    .await;
    assert_eq!(
        bad["data"]["bulkOperationRunQuery"]["userErrors"][0]["code"],
        "INVALID"
    );
}

// ---------- bulk operations: cancel, list, streamed results ----------

const BULK_RUN: &str = "mutation($q: String!) { bulkOperationRunQuery(query: $q, groupObjects: false) { bulkOperation { id status } userErrors { field message code } } }";
const BULK_CANCEL: &str = "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } } }";
const BULK_STATUS: &str =
    "query($id: ID!) { bulkOperation(id: $id) { id status objectCount fileSize url } }";
const INNER: &str = r#"{ products(query: "status:active") { edges { node { id title description variants { edges { node { id availableForSale } } } } } } }"#;

/// A fresh shop with `products` products, installed; returns its access token.
async fn bulk_shop(sb: &sandbox::Sandbox, shop: &str, products: u64) -> String {
    let resp = client()
        .post(format!("{}/_sandbox/shopify/shops", sb.base_url))
        .json(&json!({ "shop": shop, "products": products, "seed": 11 }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    install(sb, shop).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn control(sb: &sandbox::Sandbox, path: &str, body: Value) -> Value {
    let resp = client()
        .post(format!("{}{path}", sb.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn start_bulk(sb: &sandbox::Sandbox, shop: &str, token: &str) -> Value {
    let (status, body) = graphql(sb, shop, token, BULK_RUN, json!({ "q": INNER })).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["bulkOperationRunQuery"].clone()
}

async fn bulk_status(sb: &sandbox::Sandbox, shop: &str, token: &str, id: &str) -> Value {
    let (status, body) = graphql(sb, shop, token, BULK_STATUS, json!({ "id": id })).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["bulkOperation"].clone()
}

async fn wait_for_status(
    sb: &sandbox::Sandbox,
    shop: &str,
    token: &str,
    id: &str,
    wanted: &str,
) -> Value {
    let mut op = Value::Null;
    for _ in 0..100 {
        op = bulk_status(sb, shop, token, id).await;
        if op["status"] == wanted {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("operation never became {wanted}: {op}");
}

#[tokio::test]
async fn bulk_cancel_ends_a_running_operation_and_frees_its_slot() {
    let sb = start(small_config()).await;
    let shop = "slots.myshopify.com";
    let token = bulk_shop(&sb, shop, 30).await;
    // Exports of this shop run for a minute: long enough to still run when canceled.
    control(
        &sb,
        &format!("/_sandbox/shopify/{shop}/bulk-settings"),
        json!({ "run_secs": 60 }),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let run = start_bulk(&sb, shop, &token).await;
        assert_eq!(run["userErrors"], json!([]), "{run}");
        ids.push(run["bulkOperation"]["id"].as_str().unwrap().to_owned());
    }
    let sixth = start_bulk(&sb, shop, &token).await;
    assert_eq!(sixth["userErrors"][0]["code"], "LIMIT_REACHED", "{sixth}");
    wait_for_status(&sb, shop, &token, &ids[0], "RUNNING").await;

    let (_, body) = graphql(&sb, shop, &token, BULK_CANCEL, json!({ "id": ids[0] })).await;
    let payload = &body["data"]["bulkOperationCancel"];
    assert_eq!(payload["userErrors"], json!([]), "{body}");
    assert_eq!(payload["bulkOperation"]["id"], ids[0].as_str());
    assert_eq!(payload["bulkOperation"]["status"], "CANCELING");

    let canceled = wait_for_status(&sb, shop, &token, &ids[0], "CANCELED").await;
    assert!(
        canceled["url"].is_null(),
        "a canceled export has no result: {canceled}"
    );
    let again = start_bulk(&sb, shop, &token).await;
    assert_eq!(
        again["userErrors"],
        json!([]),
        "the canceled slot is free: {again}"
    );
}

#[tokio::test]
async fn bulk_cancel_answers_unknown_and_finished_operations_with_user_errors() {
    let sb = start(small_config()).await;
    let shop = "finished.myshopify.com";
    let token = bulk_shop(&sb, shop, 10).await;

    let unknown = "gid://shopify/BulkOperation/1";
    let (_, body) = graphql(&sb, shop, &token, BULK_CANCEL, json!({ "id": unknown })).await;
    assert_eq!(
        body["data"]["bulkOperationCancel"],
        json!({
            "bulkOperation": null,
            "userErrors": [{ "field": ["id"], "message": "Bulk operation does not exist" }],
        })
    );

    let run = start_bulk(&sb, shop, &token).await;
    let id = run["bulkOperation"]["id"].as_str().unwrap().to_owned();
    wait_for_status(&sb, shop, &token, &id, "COMPLETED").await;
    let (_, body) = graphql(&sb, shop, &token, BULK_CANCEL, json!({ "id": id })).await;
    let payload = &body["data"]["bulkOperationCancel"];
    assert_eq!(payload["bulkOperation"]["status"], "COMPLETED");
    assert_eq!(
        payload["userErrors"],
        json!([{ "field": null, "message": "A bulk operation cannot be canceled when it is completed" }])
    );
    // The finished operation is untouched.
    assert_eq!(
        bulk_status(&sb, shop, &token, &id).await["status"],
        "COMPLETED"
    );
}

#[tokio::test]
async fn bulk_operations_lists_running_queries_newest_first() {
    let sb = start(small_config()).await;
    let shop = "listing.myshopify.com";
    let token = bulk_shop(&sb, shop, 10).await;
    let done = start_bulk(&sb, shop, &token).await["bulkOperation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_status(&sb, shop, &token, &done, "COMPLETED").await;
    control(
        &sb,
        &format!("/_sandbox/shopify/{shop}/bulk-settings"),
        json!({ "run_secs": 60 }),
    )
    .await;
    let older = start_bulk(&sb, shop, &token).await["bulkOperation"]["id"].clone();
    let newer = start_bulk(&sb, shop, &token).await["bulkOperation"]["id"].clone();
    wait_for_status(&sb, shop, &token, newer.as_str().unwrap(), "RUNNING").await;
    wait_for_status(&sb, shop, &token, older.as_str().unwrap(), "RUNNING").await;

    let list = "query { bulkOperations(first: 10, query: \"status:running operation_type:query\") { nodes { id status query } pageInfo { hasNextPage } } }";
    let (_, body) = graphql(&sb, shop, &token, list, json!({})).await;
    let nodes = &body["data"]["bulkOperations"]["nodes"];
    assert_eq!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].clone())
            .collect::<Vec<_>>(),
        vec![newer, older],
        "{body}"
    );
    assert_eq!(nodes[0]["query"], INNER);
    assert_eq!(
        body["data"]["bulkOperations"]["pageInfo"]["hasNextPage"],
        false
    );

    let (_, body) = graphql(
        &sb,
        shop,
        &token,
        "query { bulkOperations { nodes { id } } }",
        json!({}),
    )
    .await;
    assert!(
        body["errors"].is_array(),
        "first or last is required: {body}"
    );
}

#[tokio::test]
async fn a_bulk_result_is_streamed_with_its_file_size_and_long_descriptions() {
    let sb = start(small_config()).await;
    let shop = "long-text.myshopify.com";
    let token = bulk_shop(&sb, shop, 40).await;
    control(
        &sb,
        &format!("/_sandbox/shopify/{shop}/long-descriptions"),
        json!({ "extra_bytes": 5000 }),
    )
    .await;
    let id = start_bulk(&sb, shop, &token).await["bulkOperation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = wait_for_status(&sb, shop, &token, &id, "COMPLETED").await;
    let url = op["url"].as_str().unwrap();
    assert!(!url.contains(&token), "a result URL carries no token");
    let body = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(op["fileSize"], body.len().to_string());
    assert_eq!(op["objectCount"], body.lines().count().to_string());
    let products: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l.get("__parentId").is_none())
        .collect();
    assert!(!products.is_empty());
    for p in &products {
        assert!(p["description"].as_str().unwrap().len() > 5000, "{p}");
    }
    // Pages read the same long description.
    let (_, page) = graphql(
        &sb,
        shop,
        &token,
        "query($id: ID!) { product(id: $id) { description } }",
        json!({ "id": products[0]["id"] }),
    )
    .await;
    assert_eq!(
        page["data"]["product"]["description"],
        products[0]["description"]
    );
    // A second download is the same file; an unknown object is a 404.
    let again = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(again, body);
    let missing = client()
        .get(format!("{}x", url.trim_end_matches(".jsonl")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
