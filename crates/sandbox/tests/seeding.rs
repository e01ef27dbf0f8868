//! Seeding controls for small, exact worlds: a shop holding exactly the products a test lists,
//! priced in its currency, and Klaviyo customers whose orders name those products.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The app's own documents (crates/shared), so the sandbox is checked against what it sends.
const PRODUCTS_PAGE: &str = include_str!("../../shared/src/shopify/queries/products_page.graphql");
const PRODUCT_BY_ID: &str = include_str!("../../shared/src/shopify/queries/product_by_id.graphql");
const BULK_PRODUCTS: &str = include_str!("../../shared/src/shopify/queries/bulk_products.graphql");
const BULK_RUN: &str = include_str!("../../shared/src/shopify/queries/bulk_run.graphql");
const BULK_STATUS: &str = include_str!("../../shared/src/shopify/queries/bulk_status.graphql");

const WORLD: &str = "corpus-de.myshopify.com";

fn world_catalog() -> Value {
    json!([
        {"title": "Merino-Wanderjacke", "description": "Leichte Jacke aus Merinowolle.",
         "price": "129.00", "product_type": "Jacken", "vendor": "Bergwerk", "tags": ["wolle", "neu"]},
        {"title": "Größe & Stil: Läufer-Socken", "description": "Socken für lange Läufe.",
         "price": "18.5", "product_type": "Socken"},
        {"title": "ウールの帽子", "description": "暖かいウールの帽子。", "price": "68.00",
         "product_type": "帽子", "handle": "wool-hat"},
        {"title": "Faltbare Trinkflasche", "description": "Passt in jede Tasche.",
         "price": "24.00", "product_type": "Zubehör"}
    ])
}

async fn post(sb: &sandbox::Sandbox, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", sb.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn put_world(sb: &sandbox::Sandbox) -> Value {
    let (status, body) = post(
        sb,
        "/_sandbox/shopify/shops",
        json!({"shop": WORLD, "catalog": world_catalog(), "currency": "EUR"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Every key path of a JSON value (array items merged), to compare shapes.
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}/{k}");
                out.insert(p.clone());
                shape(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(v, "", &mut out);
    out
}

#[tokio::test]
async fn a_shop_with_its_own_catalog_serves_exactly_it_in_its_currency() {
    let sb = start(small_config()).await;
    let created = put_world(&sb).await;
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["products"], 4);
    let listed = created["catalog"].as_array().unwrap();
    let handles: Vec<&str> = listed
        .iter()
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert_eq!(
        handles,
        [
            "merino-wanderjacke",
            "grosse-stil-laufer-socken",
            "wool-hat",
            "faltbare-trinkflasche"
        ]
    );
    assert_eq!(listed[2]["title"], "ウールの帽子");
    let ids: Vec<String> = listed
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids
        .iter()
        .all(|id| id.starts_with("gid://shopify/Product/")));

    let token = install(&sb, WORLD).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The paged path, with the app's own query.
    let (status, page) = graphql(
        &sb,
        WORLD,
        &token,
        PRODUCTS_PAGE,
        json!({"first": 50, "variantsFirst": 10}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let nodes = page["data"]["products"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "exactly the listed products: {page}");
    assert_eq!(page["data"]["products"]["pageInfo"]["hasNextPage"], false);
    let prices: Vec<&str> = nodes
        .iter()
        .map(|n| {
            n["priceRangeV2"]["minVariantPrice"]["amount"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(prices, ["129.00", "18.50", "68.00", "24.00"]);
    for (n, id) in nodes.iter().zip(&ids) {
        assert_eq!(&n["id"], id);
        assert_eq!(n["status"], "ACTIVE");
        for end in ["minVariantPrice", "maxVariantPrice"] {
            assert_eq!(n["priceRangeV2"][end]["currencyCode"], "EUR");
        }
        assert!(n["onlineStoreUrl"].as_str().unwrap().contains("/products/"));
        assert!(n["featuredMedia"]["image"]["url"].as_str().is_some());
        assert_eq!(n["variants"]["nodes"], json!([{"availableForSale": true}]));
    }
    assert_eq!(nodes[0]["vendor"], "Bergwerk");
    assert_eq!(nodes[0]["tags"], json!(["wolle", "neu"]));
    assert_eq!(nodes[0]["productType"], "Jacken");
    assert_eq!(nodes[0]["description"], "Leichte Jacke aus Merinowolle.");
    assert_eq!(
        nodes[1]["vendor"], "Corpus De",
        "the shop's name by default"
    );
    assert_eq!(nodes[2]["title"], "ウールの帽子");

    // A non-ASCII handle stays the handle; its URLs are percent-encoded.
    let (_, again) = post(
        &sb,
        "/_sandbox/shopify/shops",
        json!({"shop": "corpus-ja.myshopify.com", "currency": "JPY",
               "catalog": [{"title": "ウールの靴下", "price": "1200", "product_type": "靴下"}]}),
    )
    .await;
    assert_eq!(again["catalog"][0]["handle"], "ウールの靴下");
    assert_ne!(
        again["catalog"][0]["id"], listed[0]["id"],
        "ids differ per shop"
    );
    let ja_token = install(&sb, "corpus-ja.myshopify.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, ja) = graphql(
        &sb,
        "corpus-ja.myshopify.com",
        &ja_token,
        PRODUCT_BY_ID,
        json!({"id": again["catalog"][0]["id"], "variantsFirst": 10}),
    )
    .await;
    let product = &ja["data"]["product"];
    assert_eq!(product["handle"], "ウールの靴下");
    assert_eq!(
        product["onlineStoreUrl"],
        "https://corpus-ja.example/products/%E3%82%A6%E3%83%BC%E3%83%AB%E3%81%AE%E9%9D%B4%E4%B8%8B"
    );
    assert_eq!(
        product["priceRangeV2"]["maxVariantPrice"]["currencyCode"],
        "JPY"
    );
    assert_eq!(
        product["priceRangeV2"]["maxVariantPrice"]["amount"],
        "1200.00"
    );

    // The shop's own currency.
    let (_, shop) = graphql(&sb, WORLD, &token, "{ shop { currencyCode } }", json!({})).await;
    assert_eq!(shop["data"]["shop"]["currencyCode"], "EUR");

    // The bulk path, with the app's own documents.
    let (_, started) = graphql(
        &sb,
        WORLD,
        &token,
        BULK_RUN,
        json!({"query": BULK_PRODUCTS}),
    )
    .await;
    let run = &started["data"]["bulkOperationRunQuery"];
    assert_eq!(run["userErrors"], json!([]), "{started}");
    let op_id = run["bulkOperation"]["id"].as_str().unwrap().to_string();
    let mut op = Value::Null;
    for _ in 0..100 {
        let (_, body) = graphql(&sb, WORLD, &token, BULK_STATUS, json!({"id": op_id})).await;
        op = body["data"]["bulkOperation"].clone();
        if op["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(op["status"], "COMPLETED", "{op}");
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
    let products: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("__parentId").is_none())
        .collect();
    assert_eq!(products.len(), 4);
    assert_eq!(lines.len(), 8, "one variant line per product");
    for p in products {
        assert_eq!(p["priceRangeV2"]["minVariantPrice"]["currencyCode"], "EUR");
    }

    // Without a catalog the shop is generated as before, priced in USD unless told otherwise.
    let (_, generated) = post(
        &sb,
        "/_sandbox/shopify/shops",
        json!({"shop": "gen.myshopify.com", "products": 5, "seed": 3}),
    )
    .await;
    assert_eq!(generated["currency"], "USD");
    assert!(generated.get("catalog").is_none());
}

#[tokio::test]
async fn a_catalog_is_checked_before_the_shop_changes() {
    let sb = start(small_config()).await;
    for (body, needle) in [
        (
            json!({"shop": WORLD, "catalog": [{"title": "X", "price": "1.999"}]}),
            "price",
        ),
        (
            json!({"shop": WORLD, "catalog": [{"price": "1.00"}]}),
            "title",
        ),
        (
            json!({"shop": WORLD, "catalog": [], "currency": "euro"}),
            "currency",
        ),
        (
            json!({"shop": WORLD, "catalog": [
                {"title": "A", "price": "1", "handle": "same"},
                {"title": "B", "price": "1", "handle": "same"}]}),
            "handle",
        ),
        (json!({"shop": WORLD, "catalog": {"title": "A"}}), "catalog"),
    ] {
        let (status, err) = post(&sb, "/_sandbox/shopify/shops", body).await;
        assert_eq!(status, 400, "{err}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{err}");
    }
}

#[tokio::test]
async fn customers_with_orders_read_like_seeded_shopify_orders() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let world = put_world(&sb).await;
    let catalog = world["catalog"].as_array().unwrap();
    let gid = |i: usize| catalog[i]["id"].as_str().unwrap().to_string();
    let numeric = |i: usize| gid(i).rsplit('/').next().unwrap().to_string();

    let (status, made) = post(
        &sb,
        "/_sandbox/klaviyo/accounts/default/profiles",
        json!({
            "list_name": "Corpus de",
            "profiles": [
                {"first_name": "Jonas", "last_name": "Wolf", "email": "jonas@corpus.example",
                 "orders": [{"product_id": gid(0), "title": "Merino-Wanderjacke",
                             "price": "129.00", "product_type": "Jacken", "days_ago": 12}]},
                {"first_name": null, "last_name": null, "email": "anon@corpus.example",
                 "orders": [{"product_id": numeric(2), "title": "ウールの帽子",
                             "price": "68.00", "days_ago": 40}]},
                {"first_name": "Lena", "email": "lena@corpus.example",
                 "orders": [{"product_id": "gid://shopify/Product/999", "title": "Unbekannt",
                             "price": "5.00", "days_ago": 3}]},
            ],
        }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["currency"], "EUR", "the shop's currency by default");
    let profiles = made["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3);
    assert_eq!(profiles[0]["email"], "jonas@corpus.example");
    let pid = |i: usize| profiles[i]["id"].as_str().unwrap().to_string();

    // Get Profile / Get Profiles.
    let jonas = klaviyo_json(&sb, &key, &format!("/api/profiles/{}", pid(0))).await;
    assert_eq!(jonas["data"]["attributes"]["first_name"], "Jonas");
    assert_eq!(jonas["data"]["attributes"]["last_name"], "Wolf");
    let anon = klaviyo_json(
        &sb,
        &key,
        "/api/profiles?filter=equals(email,\"anon@corpus.example\")",
    )
    .await;
    assert_eq!(anon["data"][0]["id"], pid(1));
    assert!(anon["data"][0]["attributes"]["first_name"].is_null());
    assert!(anon["data"][0]["attributes"]["last_name"].is_null());

    // The Shopify integration's Placed Order metric.
    let metrics = klaviyo_json(&sb, &key, "/api/metrics").await;
    let metric = |name: &str| {
        metrics["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                m["attributes"]["name"] == name
                    && m["attributes"]["integration"]["key"] == "shopify"
            })
            .map(|m| m["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let placed = metric("Placed Order");
    let ordered = metric("Ordered Product");
    let events = |profile: String, metric: String| {
        let sb = &sb;
        let key = key.clone();
        async move {
            klaviyo_json(
                sb,
                &key,
                &format!(
                    "/api/events?filter=equals(profile_id,\"{profile}\"),equals(metric_id,\"{metric}\")"
                ),
            )
            .await["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };

    let jonas_orders = events(pid(0), placed.clone()).await;
    assert_eq!(jonas_orders.len(), 1);
    assert_eq!(
        jonas_orders[0]["id"], profiles[0]["placed_order_event_ids"][0],
        "the event id the control reported"
    );
    let attrs = &jonas_orders[0]["attributes"];
    let now = sandbox_now();
    let ts = attrs["timestamp"].as_i64().unwrap();
    assert!(
        (now - 12 * 86_400 - ts).abs() < 120,
        "12 days ago: {ts} vs {now}"
    );
    let props = &attrs["event_properties"];
    let line = &props["$extra"]["line_items"][0];
    // What the app's order parser reads: product id (product.id, else product_id), title.
    assert_eq!(line["product"]["id"].to_string(), numeric(0));
    assert_eq!(line["product_id"].to_string(), numeric(0));
    assert_eq!(line["title"], "Merino-Wanderjacke");
    assert_eq!(line["price"], "129.00");
    assert_eq!(
        line["product"]["handle"], "merino-wanderjacke",
        "the shop's handle"
    );
    assert_eq!(line["product"]["product_type"], "Jacken");
    assert_eq!(line["vendor"], "Bergwerk", "the shop's vendor");
    assert_eq!(props["Items"], json!(["Merino-Wanderjacke"]));
    assert_eq!(props["$value"], 129.0);
    assert_eq!(props["$currency_code"], "EUR");
    assert_eq!(props["$extra"]["currency"], "EUR");
    let ordered_lines = events(pid(0), ordered.clone()).await;
    assert_eq!(ordered_lines.len(), 1);
    assert_eq!(
        ordered_lines[0]["attributes"]["event_properties"]["OrderId"].to_string(),
        props["$event_id"].as_str().unwrap(),
        "the line belongs to the order"
    );

    // Exactly the shape of a seeded Shopify-integration Placed Order.
    let seeded = klaviyo_json(
        &sb,
        &key,
        &format!("/api/events?filter=equals(metric_id,\"{placed}\")&page[size]=200"),
    )
    .await;
    let seeded_shopify = seeded["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            let p = &e["attributes"]["event_properties"];
            p["$extra"]["line_items"]
                .as_array()
                .is_some_and(|l| l.len() == 1)
                && p["$extra"]["line_items"][0]["product"]["images"][0]["src"].is_string()
        })
        .expect("a seeded one-line Shopify order of a product with an image");
    assert_eq!(
        shape_of(&seeded_shopify["attributes"]),
        shape_of(attrs),
        "same keys as a seeded Shopify Placed Order"
    );

    // An id no shop knows: handle from the title, vendor the account's name.
    let lena = events(pid(2), placed.clone()).await;
    let lena_line = &lena[0]["attributes"]["event_properties"]["$extra"]["line_items"][0];
    assert_eq!(lena_line["product"]["id"], 999);
    assert_eq!(lena_line["product"]["handle"], "unbekannt");
    assert_eq!(lena_line["title"], "Unbekannt");

    // The list and its members.
    let list_id = made["list_id"].as_str().unwrap().to_string();
    let lists = klaviyo_json(&sb, &key, "/api/lists?filter=equals(name,\"Corpus de\")").await;
    assert_eq!(lists["data"][0]["id"], list_id);
    let members = klaviyo_json(
        &sb,
        &key,
        &format!("/api/lists/{list_id}/relationships/profiles"),
    )
    .await;
    let member_ids: BTreeSet<String> = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(member_ids, (0..3).map(pid).collect::<BTreeSet<_>>());

    // Events stay in time order overall (the new ones are dated in the past).
    let all = klaviyo_json(&sb, &key, "/api/events?page[size]=1000").await;
    let times: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attributes"]["timestamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn profiles_go_to_the_named_account_and_bad_requests_store_nothing() {
    let sb = start(small_config()).await;
    let (status, _) = post(
        &sb,
        "/_sandbox/klaviyo/accounts",
        json!({"id": "corpusfr", "name": "Maison Corpus"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, key) = post(
        &sb,
        "/_sandbox/klaviyo/keys",
        json!({"account": "corpusfr", "scopes": ["profiles:read", "events:read", "metrics:read"]}),
    )
    .await;
    let key = key["key"].as_str().unwrap().to_string();

    let one = |email: &str| {
        json!({"profiles": [{"first_name": "Camille", "last_name": null, "email": email,
            "orders": [{"product_id": "4242", "title": "Écharpe en laine", "price": "49.90",
                        "days_ago": 5}]}],
            "currency": "EUR"})
    };
    let (status, made) = post(
        &sb,
        "/_sandbox/klaviyo/accounts/corpusfr/profiles",
        one("camille@corpus.example"),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["account_id"], "corpusfr");
    assert!(made.get("list_id").is_none());
    let id = made["profiles"][0]["id"].as_str().unwrap();
    let profile = klaviyo_json(&sb, &key, &format!("/api/profiles/{id}")).await;
    assert_eq!(profile["data"]["attributes"]["first_name"], "Camille");
    let events = klaviyo_json(
        &sb,
        &key,
        &format!("/api/events?filter=equals(profile_id,\"{id}\")"),
    )
    .await;
    let line = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["attributes"]["event_properties"]["$extra"]["line_items"].get(0))
        .cloned()
        .unwrap();
    assert_eq!(line["product"]["handle"], "echarpe-en-laine");
    assert_eq!(line["product"]["vendor"], "Maison Corpus");
    assert_eq!(line["price"], "49.90");

    for (path, body, status) in [
        (
            "/_sandbox/klaviyo/accounts/nobody/profiles",
            one("x@corpus.example"),
            404,
        ),
        (
            "/_sandbox/klaviyo/accounts/corpusfr/profiles",
            one("camille@corpus.example"),
            409,
        ),
        (
            "/_sandbox/klaviyo/accounts/corpusfr/profiles",
            json!({"profiles": [
                {"email": "ok@corpus.example"},
                {"email": "bad@corpus.example", "orders": [{"product_id": "x", "title": "T", "price": "1"}]}]}),
            400,
        ),
        (
            "/_sandbox/klaviyo/accounts/corpusfr/profiles",
            json!({"profiles": []}),
            400,
        ),
        (
            "/_sandbox/klaviyo/accounts/corpusfr/profiles",
            json!({"profiles": [{"email": "not-an-email"}]}),
            400,
        ),
    ] {
        let (got, err) = post(&sb, path, body).await;
        assert_eq!(got, status, "{path}: {err}");
        assert!(err["error"].is_string());
    }
    // Nothing of a refused request is stored.
    for email in ["ok@corpus.example", "x@corpus.example"] {
        let found = klaviyo_json(
            &sb,
            &key,
            &format!("/api/profiles?filter=equals(email,\"{email}\")"),
        )
        .await;
        assert_eq!(found["data"], json!([]), "{email}");
    }
}

fn sandbox_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
