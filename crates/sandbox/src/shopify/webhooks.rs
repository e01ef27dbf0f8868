//! Webhook delivery as Shopify does it, plus the admin actions that cause webhooks.
//!
//! `POST /_sandbox/shopify/{shop}/webhooks` with `{topic, product_id?, event_id?, customer?}`
//! builds the REST-shaped payload Shopify sends for the topic and the real headers
//! (`X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the exact body with the app's client secret,
//! `X-Shopify-Topic`, `-Shop-Domain`, `-Webhook-Id`, `-Event-Id`, `-Triggered-At`,
//! `-API-Version`). The answer holds the exact `body` and `headers`; the caller delivers them
//! (and may replay, truncate or re-encode them).
//!
//! Admin actions: `POST .../products/{id}/update` (`{title?, variants?}`: a new title, and/or
//! the product's variants replaced by `variants` generated ones over three options, up to
//! Shopify's limit of 2,048 per product), `DELETE .../products/{id}`,
//! `POST .../uninstall` (the merchant removes the app in the Shopify admin: every token of the
//! app on that shop stops working). The `appUninstall` GraphQL mutation does the same.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::catalog_data::{money, Product, Variant};
use super::model::gid_number;
use super::{Shop, ShopifyStore};
use crate::controls::error;
use crate::state::AppState;
use crate::util::{now_unix, shopify_time, uuid_like};

pub const API_VERSION: &str = "2026-10";
/// Shopify's variant limit per product (raised from 100 on 2025-10-15).
pub const MAX_VARIANTS: usize = 2048;
/// Variants made by the update control get ids of their own, apart from the catalog's
/// (`product id × 100 + n`), below 2^53 like Shopify's.
const MADE_VARIANT_ID_BASE: u64 = 4_000_000_000_000_000;

const SIZES: [&str; 16] = [
    "XXS", "XS", "S", "M", "L", "XL", "2XL", "3XL", "4XL", "5XL", "28", "30", "32", "34", "36",
    "38",
];
const COLOURS: [&str; 16] = [
    "Black", "White", "Navy", "Forest", "Rust", "Sand", "Slate", "Plum", "Ochre", "Teal", "Coral",
    "Olive", "Ivory", "Charcoal", "Mustard", "Sky",
];
const STYLES: [&str; 8] = [
    "Classic",
    "Slim",
    "Relaxed",
    "Cropped",
    "Long",
    "Organic",
    "Recycled",
    "Heavyweight",
];

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/shopify/{shop}/webhooks", post(deliver))
        .route(
            "/_sandbox/shopify/{shop}/products/{id}/update",
            post(update_product),
        )
        .route(
            "/_sandbox/shopify/{shop}/products/{id}",
            delete(delete_product),
        )
        .route(
            "/_sandbox/shopify/{shop}/uninstall",
            post(uninstall_control),
        )
}

/// Revoke every access and refresh token of the app on `shop` (uninstall). Returns how many.
pub fn uninstall(store: &mut ShopifyStore, shop: &str) -> usize {
    let before = store.access_tokens.len();
    store.access_tokens.retain(|_, t| t.shop != shop);
    let mut n = before - store.access_tokens.len();
    for r in store
        .refresh_tokens
        .values_mut()
        .filter(|r| r.shop == shop && !r.revoked)
    {
        r.revoked = true;
        n += 1;
    }
    n
}

/// `n` variants for `p` over three options (size, colour, style), as a merchant makes them in
/// the admin: every combination once, the first variant's price and SKU stem kept.
pub fn made_variants(p: &Product, n: usize) -> Vec<Variant> {
    let first = p.variants.first();
    let price_cents = first.map_or(2_500, |v| v.price_cents);
    let stem = first
        .map(|v| v.sku.split('-').next().unwrap_or("SKU").to_owned())
        .unwrap_or_else(|| "SKU".into());
    (0..n)
        .map(|i| {
            let (size, colour, style) = (
                SIZES[i / (COLOURS.len() * STYLES.len()) % SIZES.len()],
                COLOURS[i / STYLES.len() % COLOURS.len()],
                STYLES[i % STYLES.len()],
            );
            Variant {
                id: MADE_VARIANT_ID_BASE + (p.id % 1_000_000) * 4096 + i as u64,
                title: format!("{size} / {colour} / {style}"),
                option_name: "Size",
                sku: format!("{stem}-{size}-{}-{}", &colour[..3], &style[..3]).to_uppercase(),
                price_cents,
                compare_at_cents: None,
                inventory: (i % 17) as i64,
                available: i % 17 != 0,
            }
        })
        .collect()
}

/// The REST product resource as product webhooks carry it (`tags` a comma string, string money,
/// no storefront URL): variants with their REST fields, options, images, `variant_gids`.
pub fn rest_product(p: &Product) -> Value {
    let updated = shopify_time(p.updated_at);
    let created = shopify_time(p.created_at);
    let image_id = p.has_image.then(|| p.id * 10 + 1);
    let parts: Vec<Vec<&str>> = p
        .variants
        .iter()
        .map(|v| v.title.split(" / ").collect())
        .collect();
    let variants: Vec<Value> = p
        .variants
        .iter()
        .zip(&parts)
        .enumerate()
        .map(|(i, (v, parts))| {
            json!({
                "id": v.id, "product_id": p.id, "title": v.title, "price": money(v.price_cents),
                "position": i + 1, "inventory_policy": "deny",
                "compare_at_price": v.compare_at_cents.map(money),
                "option1": parts.first(), "option2": parts.get(1), "option3": parts.get(2),
                "created_at": created, "updated_at": updated, "taxable": true, "barcode": null,
                "sku": v.sku, "inventory_item_id": v.id + 1_000_000_000_000,
                "inventory_quantity": v.inventory, "old_inventory_quantity": v.inventory,
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", v.id),
                "image_id": null,
            })
        })
        .collect();
    let option_names = [
        p.variants.first().map_or("Title", |v| v.option_name),
        "Colour",
        "Style",
    ];
    let positions = parts.iter().map(Vec::len).max().unwrap_or(1);
    let options: Vec<Value> = (0..positions)
        .map(|o| {
            let mut values: Vec<&str> = Vec::new();
            for value in parts.iter().filter_map(|p| p.get(o)) {
                if !values.contains(value) {
                    values.push(value);
                }
            }
            json!({
                "id": p.id * 10 + 5 + o as u64, "product_id": p.id, "name": option_names[o.min(2)],
                "position": o + 1, "values": values,
            })
        })
        .collect();
    let images: Vec<Value> = match (image_id, p.image_url()) {
        (Some(id), Some(src)) => vec![json!({
            "id": id, "alt": null, "position": 1, "product_id": p.id, "created_at": created,
            "updated_at": updated, "admin_graphql_api_id": format!("gid://shopify/ProductImage/{id}"),
            "width": 2048, "height": 2048, "src": src, "variant_ids": [],
        })],
        _ => Vec::new(),
    };
    let variant_gids: Vec<Value> = p
        .variants
        .iter()
        .map(|v| {
            json!({
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", v.id),
                "updated_at": updated,
            })
        })
        .collect();
    json!({
        "id": p.id,
        "admin_graphql_api_id": p.gid(),
        "title": p.title,
        "body_html": p.description_html,
        "vendor": p.vendor,
        "product_type": p.product_type,
        "handle": p.handle,
        "tags": p.tags.join(", "),
        "status": p.status.as_str().to_ascii_lowercase(),
        "created_at": created,
        "updated_at": updated,
        "published_at": p.published.then(|| shopify_time(p.created_at)),
        "template_suffix": null,
        "published_scope": "global",
        "variants": variants,
        "options": options,
        "images": images.clone(),
        "image": images.first(),
        "variant_gids": variant_gids,
        "has_variants_that_requires_components": false,
        "category": null,
    })
}

/// The REST shop resource `app/uninstalled` carries (it includes the shop's contact email).
pub fn rest_shop(shop: &Shop) -> Value {
    let host = format!(
        "{}.example",
        shop.domain
            .strip_suffix(".myshopify.com")
            .unwrap_or(&shop.domain)
    );
    json!({
        "id": shop.id, "name": shop.name, "email": format!("owner@{host}"),
        "domain": host, "myshopify_domain": shop.domain, "shop_owner": "Sam Owner",
        "phone": "+1-555-0100", "country_code": "US", "currency": shop.currency,
        "plan_name": "basic",
    })
}

/// The body of `topic` for `shop`, or a message saying why it cannot be built.
pub fn payload(shop: &Shop, topic: &str, req: &Value) -> Result<Value, String> {
    let customer = || {
        req.get("customer").cloned().unwrap_or_else(
            || json!({ "id": 7_100_000_001u64, "email": "jane.customer@example.com", "phone": "+1-555-0199" }),
        )
    };
    match topic {
        "products/create" | "products/update" => {
            let id = req
                .get("product_id")
                .and_then(Value::as_u64)
                .ok_or("product_id is required")?;
            let i = shop.product_index(id).ok_or("unknown product")?;
            Ok(rest_product(&shop.products[i]))
        }
        "products/delete" => {
            let id = req
                .get("product_id")
                .and_then(Value::as_u64)
                .ok_or("product_id is required")?;
            Ok(json!({ "id": id }))
        }
        "app/uninstalled" => Ok(rest_shop(shop)),
        "customers/data_request" => Ok(json!({
            "shop_id": shop.id, "shop_domain": shop.domain,
            "orders_requested": [299_938u64, 280_263u64],
            "customer": customer(),
            "data_request": { "id": 9999 },
        })),
        "customers/redact" => Ok(json!({
            "shop_id": shop.id, "shop_domain": shop.domain,
            "customer": customer(),
            "orders_to_redact": [299_938u64],
        })),
        "shop/redact" => Ok(json!({ "shop_id": shop.id, "shop_domain": shop.domain })),
        other => Ok(req
            .get("payload")
            .cloned()
            .unwrap_or_else(|| json!({ "topic": other }))),
    }
}

/// Headers of one delivery of `body`.
pub fn headers(
    secret: &str,
    shop: &str,
    topic: &str,
    body: &[u8],
    event_id: &str,
    webhook_id: &str,
) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("Content-Type".into(), json!("application/json"));
    h.insert(
        "X-Shopify-Hmac-Sha256".into(),
        json!(crate::shopify_webhook_hmac(secret, body)),
    );
    h.insert("X-Shopify-Topic".into(), json!(topic));
    h.insert("X-Shopify-Shop-Domain".into(), json!(shop));
    h.insert("X-Shopify-Webhook-Id".into(), json!(webhook_id));
    h.insert("X-Shopify-Event-Id".into(), json!(event_id));
    h.insert(
        "X-Shopify-Triggered-At".into(),
        json!(shopify_time(now_unix())),
    );
    h.insert("X-Shopify-API-Version".into(), json!(API_VERSION));
    h
}

async fn deliver(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    body: Bytes,
) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body must be JSON: {e}")),
    };
    let Some(topic) = req.get("topic").and_then(Value::as_str).map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "'topic' is required");
    };
    let (payload, event_id, webhook_id) = {
        let mut store = st.shopify();
        let event_id = req
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid_like(&mut store.rng));
        let webhook_id = uuid_like(&mut store.rng);
        let Some(s) = store.shops.get(&shop) else {
            return error(StatusCode::NOT_FOUND, "unknown shop");
        };
        match payload(s, &topic, &req) {
            Ok(p) => (p, event_id, webhook_id),
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        }
    };
    let body = payload.to_string();
    let headers = headers(
        &st.config.shopify_client_secret,
        &shop,
        &topic,
        body.as_bytes(),
        &event_id,
        &webhook_id,
    );
    let answer = json!({ "topic": topic, "event_id": event_id, "webhook_id": webhook_id, "body": body, "headers": headers });
    Json(answer).into_response()
}

async fn update_product(
    State(st): State<Arc<AppState>>,
    Path((shop, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let Some(id) = gid_number(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "product id must be numeric or a GID",
        );
    };
    let mut store = st.shopify();
    let Some(s) = store.shops.get_mut(&shop) else {
        return error(StatusCode::NOT_FOUND, "unknown shop");
    };
    let Some(i) = s.product_index(id) else {
        return error(StatusCode::NOT_FOUND, "unknown product");
    };
    let variants = match req.get("variants").map(Value::as_u64) {
        None => None,
        Some(Some(n)) if (1..=MAX_VARIANTS as u64).contains(&n) => Some(n as usize),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("variants must be 1 to {MAX_VARIANTS} (Shopify's limit per product)"),
            )
        }
    };
    let p = &mut s.products[i];
    if let Some(title) = req.get("title").and_then(Value::as_str) {
        p.title = title.to_owned();
    }
    if let Some(n) = variants {
        p.variants = made_variants(p, n);
    }
    p.updated_at = now_unix().max(p.updated_at + 1);
    Json(rest_product(p)).into_response()
}

async fn delete_product(
    State(st): State<Arc<AppState>>,
    Path((shop, id)): Path<(String, String)>,
) -> Response {
    let Some(id) = gid_number(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "product id must be numeric or a GID",
        );
    };
    let mut store = st.shopify();
    let Some(s) = store.shops.get_mut(&shop) else {
        return error(StatusCode::NOT_FOUND, "unknown shop");
    };
    match s.product_index(id) {
        Some(i) => {
            s.products.remove(i);
            Json(json!({ "id": id, "deleted": true })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown product"),
    }
}

async fn uninstall_control(State(st): State<Arc<AppState>>, Path(shop): Path<String>) -> Response {
    let revoked = uninstall(&mut st.shopify(), &shop);
    Json(json!({ "shop": shop, "tokens_revoked": revoked })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_at_the_variant_limit_has_distinct_variants_and_a_megabyte_body() {
        let mut p = super::super::catalog_data::generate_catalog(7, 1).remove(0);
        p.variants = made_variants(&p, MAX_VARIANTS);
        let titles: std::collections::HashSet<_> = p.variants.iter().map(|v| &v.title).collect();
        let ids: std::collections::HashSet<_> = p.variants.iter().map(|v| v.id).collect();
        assert_eq!((titles.len(), ids.len()), (MAX_VARIANTS, MAX_VARIANTS));
        assert!(ids.iter().all(|id| *id < 1 << 53));
        let body = rest_product(&p);
        assert_eq!(body["variants"].as_array().unwrap().len(), MAX_VARIANTS);
        assert_eq!(body["options"][0]["values"].as_array().unwrap().len(), 16);
        assert_eq!(body["options"][2]["name"], "Style");
        assert_eq!(body["variants"][9]["option3"], "Slim");
        let bytes = body.to_string().len();
        assert!((1_000_000..2_000_000).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn headers_sign_the_exact_body() {
        let h = headers(
            "test_secret_key",
            "a.myshopify.com",
            "shop/redact",
            br#"{"foo": "bar"}"#,
            "e",
            "w",
        );
        assert_eq!(
            h["X-Shopify-Hmac-Sha256"],
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
        );
    }
}
