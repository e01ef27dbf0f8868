//! Webhook delivery as Shopify does it, plus the admin actions that cause webhooks.
//!
//! `POST /_sandbox/shopify/{shop}/webhooks` with `{topic, product_id?, event_id?, customer?}`
//! builds the REST-shaped payload Shopify sends for the topic and the real headers
//! (`X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 of the exact body with the app's client secret,
//! `X-Shopify-Topic`, `-Shop-Domain`, `-Webhook-Id`, `-Event-Id`, `-Triggered-At`,
//! `-API-Version`). The answer holds the exact `body` and `headers`; the caller delivers them
//! (and may replay, truncate or re-encode them).
//!
//! Admin actions: `POST .../products/{id}/update` (title change), `DELETE .../products/{id}`,
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

use super::catalog_data::{money, Product};
use super::model::gid_number;
use super::{Shop, ShopifyStore};
use crate::state::AppState;
use crate::util::{now_unix, shopify_time, uuid_like};

pub const API_VERSION: &str = "2026-10";

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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
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

/// The REST product resource as product webhooks carry it (`tags` a comma string, string money,
/// no storefront URL).
pub fn rest_product(p: &Product) -> Value {
    let variants: Vec<Value> = p
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "id": v.id, "product_id": p.id, "title": v.title, "sku": v.sku,
                "price": money(v.price_cents), "compare_at_price": v.compare_at_cents.map(money),
                "position": i + 1, "inventory_quantity": v.inventory,
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", v.id),
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
        "created_at": shopify_time(p.created_at),
        "updated_at": shopify_time(p.updated_at),
        "published_at": p.published.then(|| shopify_time(p.created_at)),
        "variants": variants,
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
        "phone": "+1-555-0100", "country_code": "US", "currency": "USD",
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
    let p = &mut s.products[i];
    if let Some(title) = req.get("title").and_then(Value::as_str) {
        p.title = title.to_owned();
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
