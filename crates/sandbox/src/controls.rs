//! Test and demo controls under `/_sandbox/...` (not part of any vendor contract).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::klaviyo::data::{ApiKey, DEFAULT_ACCOUNT_ID};
use crate::shopify::catalog_data::{json_price_cents, CatalogEntry, ProductStatus};
use crate::state::AppState;
use crate::util::{now_unix, random_hex};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/_sandbox/health",
            get(|| async { Json(json!({"ok": true})) }),
        )
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/routes", get(routes))
        .route("/_sandbox/klaviyo/default-key", get(default_key))
        .route("/_sandbox/klaviyo/keys", post(create_key))
        .route("/_sandbox/klaviyo/accounts", post(create_account))
        .route(
            "/_sandbox/klaviyo/accounts/{account_id}/profiles",
            post(crate::klaviyo::seeding::create_profiles),
        )
        .route("/_sandbox/klaviyo/keys/{key}", delete(revoke_key))
        .route("/_sandbox/klaviyo/faults", post(klaviyo_faults))
        .route("/_sandbox/klaviyo/profile-writes", get(profile_writes))
        .route("/_sandbox/shopify/shops", post(put_shop))
        .route("/_sandbox/shopify/launch", post(launch_app))
        .route("/_sandbox/shopify/{shop}/faults", post(faults))
        .route(
            "/_sandbox/shopify/{shop}/products/{id}/status",
            post(product_status),
        )
        .route(
            "/_sandbox/shopify/{shop}/expire-access-tokens",
            post(expire_tokens),
        )
        .route(
            "/_sandbox/bedrock/faults",
            post(crate::bedrock::set_faults).get(crate::bedrock::get_faults),
        )
        .route(
            "/_sandbox/bedrock/requests",
            get(crate::bedrock::recent_requests),
        )
        .merge(crate::klaviyo::flows::router())
        .route(
            "/_sandbox/bedrock/writer",
            post(crate::bedrock::set_writer).get(crate::bedrock::get_writer),
        )
        .route(
            "/_sandbox/bedrock/injected",
            get(crate::bedrock::get_injected).delete(crate::bedrock::clear_injected),
        )
        .route(
            "/_sandbox/bedrock/script",
            post(crate::bedrock::push_script)
                .get(crate::bedrock::get_script)
                .delete(crate::bedrock::clear_script),
        )
        .route(
            "/_sandbox/bedrock/guardrails",
            post(crate::bedrock::guardrail::put_guardrail)
                .get(crate::bedrock::guardrail::list_guardrails),
        )
        .route(
            "/_sandbox/bedrock/guardrail-quotas",
            post(crate::bedrock::guardrail::set_quotas),
        )
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The JSON body (empty means `{}`), or a message for a 400.
pub(crate) fn parse_body(body: &Bytes) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| format!("body must be JSON: {e}"))
}

async fn stats(State(st): State<Arc<AppState>>) -> Json<Value> {
    let mut stats = st.stats().to_json();
    stats["bedrock"] = st.bedrock().stats_json();
    Json(stats)
}

/// `POST /_sandbox/klaviyo/faults {"lose_import_responses": n, "vanish_import_profiles": m}`:
/// the next n bulk-import job creations are accepted (the job runs) but answered 502, as when
/// the 202 is lost on the way; the next m profiles sent to an import are refused as gone (merged
/// or deleted since they were read). Either count may be left out.
async fn klaviyo_faults(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let count = |k: &str| body.get(k).and_then(Value::as_u64).map(|n| n as u32);
    let (lose, vanish) = (
        count("lose_import_responses"),
        count("vanish_import_profiles"),
    );
    if lose.is_none() && vanish.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "lose_import_responses or vanish_import_profiles (a count) is required",
        );
    }
    let mut store = st.klaviyo();
    if let Some(n) = lose {
        store.lose_import_responses = n;
    }
    if let Some(n) = vanish {
        store.vanish_import_profiles = n;
    }
    Json(json!({
        "lose_import_responses": store.lose_import_responses,
        "vanish_import_profiles": store.vanish_import_profiles,
    }))
    .into_response()
}

/// `GET /_sandbox/klaviyo/profile-writes`: import jobs applied to each profile id.
async fn profile_writes(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!(st.klaviyo().imports_by_profile))
}

async fn routes() -> Json<Value> {
    Json(Value::Array(
        crate::klaviyo::ROUTES
            .iter()
            .map(|r| json!({ "method": r.method, "path": r.path }))
            .collect(),
    ))
}

async fn default_key(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "key": st.klaviyo().default_key, "account_id": DEFAULT_ACCOUNT_ID }))
}

/// `POST /_sandbox/klaviyo/accounts {"id", "name"}`: another Klaviyo account, with its own
/// keys (`/_sandbox/klaviyo/keys` with `"account"`), rate limits and import-job slots. Every
/// account sees the one seeded profile store (a sandbox simplification: data is not per account).
async fn create_account(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(id) = req.get("id").and_then(Value::as_str).filter(|id| {
        !id.is_empty() && id.len() <= 16 && id.chars().all(|c| c.is_ascii_alphanumeric())
    }) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'id' must be 1 to 16 letters or digits",
        );
    };
    let name = req.get("name").and_then(Value::as_str).unwrap_or(id);
    let mut store = st.klaviyo();
    if store.accounts.iter().any(|a| a.id == id) {
        return error(StatusCode::CONFLICT, format!("account '{id}' exists"));
    }
    store.accounts.push(crate::klaviyo::data::Account {
        id: id.to_owned(),
        name: name.to_owned(),
        public_api_key: id.to_owned(),
    });
    (StatusCode::CREATED, Json(json!({ "id": id, "name": name }))).into_response()
}

async fn create_key(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(scopes) = req.get("scopes").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'scopes' must be an array of strings",
        );
    };
    let account = match req.get("account").and_then(Value::as_str) {
        None | Some("default") => DEFAULT_ACCOUNT_ID.to_string(),
        Some(other) => other.to_string(),
    };
    let mut store = st.klaviyo();
    if !store.accounts.iter().any(|a| a.id == account) {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown account '{account}'"),
        );
    }
    let key = format!("pk_{}", random_hex(&mut store.rng, 17));
    store.keys.insert(
        key.clone(),
        ApiKey {
            account_id: account,
            scopes: scopes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            revoked: false,
        },
    );
    (StatusCode::CREATED, Json(json!({ "key": key }))).into_response()
}

async fn revoke_key(State(st): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    match st.klaviyo().keys.get_mut(&key) {
        Some(k) => {
            k.revoked = true;
            Json(json!({ "revoked": key })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown key"),
    }
}

/// What Shopify's admin opens when a merchant launches (or installs) our app on `shop`: the
/// app URL with `host`, `shop` and `timestamp` (now), signed as Shopify signs it (hex HMAC of the
/// sorted query under the app's client secret). `{shop, app_url}` → `{url}`.
async fn launch_app(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let (Some(shop), Some(app_url)) = (
        req.get("shop").and_then(Value::as_str),
        req.get("app_url").and_then(Value::as_str),
    ) else {
        return error(StatusCode::BAD_REQUEST, "'shop' and 'app_url' are required");
    };
    if !st.shopify().shops.contains_key(shop) {
        return error(StatusCode::NOT_FOUND, "no such shop in the sandbox");
    }
    let Ok(mut url) = url::Url::parse(app_url) else {
        return error(StatusCode::BAD_REQUEST, "'app_url' must be an absolute URL");
    };
    // Shopify's `host`: base64 of the shop's admin path.
    let store = shop.trim_end_matches(".myshopify.com");
    let host = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(format!("admin.shopify.com/store/{store}"))
    };
    let params = vec![
        ("host".to_owned(), host),
        ("shop".to_owned(), shop.to_owned()),
        ("timestamp".to_owned(), now_unix().to_string()),
    ];
    let hmac = crate::shopify_query_hmac(&st.config.shopify_client_secret, &params);
    url.query_pairs_mut()
        .extend_pairs(&params)
        .append_pair("hmac", &hmac);
    Json(json!({ "url": url.as_str() })).into_response()
}

/// `POST /_sandbox/shopify/shops {"shop", "products"?, "seed"?, "catalog"?, "currency"?}`:
/// creates or replaces a shop. Without `catalog`, `products` generated products (default 50)
/// from `seed`; with it, exactly those products ([`parse_catalog`]). `currency` (ISO 4217,
/// default USD) is the shop's `currencyCode` and that of every money field.
async fn put_shop(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(shop) = req.get("shop").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "'shop' is required");
    };
    if !crate::is_valid_shop_domain(shop) {
        return error(
            StatusCode::BAD_REQUEST,
            "'shop' must look like name.myshopify.com",
        );
    }
    let currency = match req.get("currency") {
        None | Some(Value::Null) => "USD",
        Some(v) => match v
            .as_str()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            Some(c) => c,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "'currency' must be an ISO 4217 code such as \"EUR\"",
                )
            }
        },
    };
    let seed = req
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(st.config.seed);
    if let Some(catalog) = req.get("catalog").filter(|c| !c.is_null()) {
        let entries = match parse_catalog(catalog) {
            Ok(e) => e,
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        };
        let mut store = st.shopify();
        let created = match store.put_shop_with_catalog(shop, &entries, currency, &st.config) {
            Ok(s) => s,
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        };
        let listed: Vec<Value> = created
            .products
            .iter()
            .map(|p| json!({ "id": p.gid(), "handle": p.handle, "title": p.title }))
            .collect();
        return (
            StatusCode::CREATED,
            Json(json!({
                "shop": shop,
                "products": listed.len(),
                "seed": seed,
                "currency": currency,
                "catalog": listed,
            })),
        )
            .into_response();
    }
    let products = req.get("products").and_then(Value::as_u64).unwrap_or(50) as usize;
    let mut store = st.shopify();
    store.put_shop(shop, products, seed, &st.config);
    if let Some(s) = store.shops.get_mut(shop) {
        s.currency = currency.to_string();
    }
    (
        StatusCode::CREATED,
        Json(json!({ "shop": shop, "products": products, "seed": seed, "currency": currency })),
    )
        .into_response()
}

/// `catalog: [{"title", "description", "price": "68.00", "product_type", "vendor"?, "handle"?,
/// "tags"?: []}]`: title and price are required (a price may also be a JSON number), the rest
/// default to empty (the vendor to the shop's name, the handle to one made from the title).
fn parse_catalog(catalog: &Value) -> Result<Vec<CatalogEntry>, String> {
    let items = catalog
        .as_array()
        .ok_or("'catalog' must be an array of products")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = |key: &str| -> Result<Option<String>, String> {
                match item.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!("catalog[{i}].{key} must be a string")),
                }
            };
            let title = text("title")?
                .filter(|t| !t.trim().is_empty())
                .ok_or(format!("catalog[{i}].title is required"))?;
            let price = json_price_cents(item.get("price")).ok_or(format!(
                "catalog[{i}].price must be a decimal string such as \"68.00\""
            ))?;
            let handle = text("handle")?;
            if handle
                .as_deref()
                .is_some_and(|h| h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '/'))
            {
                return Err(format!(
                    "catalog[{i}].handle must be non-empty, without spaces or slashes"
                ));
            }
            let tags = match item.get("tags") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(_) => return Err(format!("catalog[{i}].tags must be an array of strings")),
            };
            Ok(CatalogEntry {
                title,
                description: text("description")?.unwrap_or_default(),
                price_cents: price,
                product_type: text("product_type")?.unwrap_or_default(),
                vendor: text("vendor")?.filter(|v| !v.is_empty()),
                handle,
                tags,
            })
        })
        .collect()
}

async fn faults(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let n = req
        .get("graphql_errors")
        .and_then(Value::as_u64)
        .unwrap_or(1) as u32;
    match st.shopify().shops.get_mut(&shop) {
        Some(s) => {
            s.faults = n;
            Json(json!({ "shop": shop, "graphql_errors": n })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown shop"),
    }
}

async fn product_status(
    State(st): State<Arc<AppState>>,
    Path((shop, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(status) = req
        .get("status")
        .and_then(Value::as_str)
        .and_then(ProductStatus::parse)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "'status' must be ACTIVE, DRAFT, ARCHIVED or UNLISTED",
        );
    };
    let Some(id) = crate::shopify::model::gid_number(&id) else {
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
    p.status = status;
    p.updated_at = now_unix();
    Json(json!({ "id": p.gid(), "status": status.as_str(), "updatedAt": p.updated_at_str() }))
        .into_response()
}

async fn expire_tokens(State(st): State<Arc<AppState>>, Path(shop): Path<String>) -> Response {
    let n = crate::shopify::oauth::expire_access_tokens(&mut st.shopify(), &shop);
    Json(json!({ "shop": shop, "expired": n })).into_response()
}
