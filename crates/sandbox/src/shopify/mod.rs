//! Shopify Admin emulation under `/shopify/{shop}/admin/...`: OAuth (authorization code with
//! expiring offline tokens), GraphQL with cost-based throttling, and bulk operations whose
//! results are streamed from a storage endpoint of their own ([`storage`]).

pub mod bulk;
pub mod catalog_data;
pub mod graphql;
pub mod model;
pub mod oauth;
pub mod schema;
pub mod search;
pub mod storage;
pub mod throttle;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::{json, Value};

use self::bulk::BulkOp;
use self::catalog_data::{custom_catalog, generate_catalog, CatalogEntry, Product};
use self::throttle::Bucket;
use crate::controls::{error, parse_body};
use crate::state::AppState;
use crate::SandboxConfig;

pub struct Shop {
    pub domain: String,
    pub id: u64,
    pub name: String,
    /// Sorted by id ascending.
    pub products: Vec<Product>,
    pub bucket: Bucket,
    /// Remaining GraphQL requests to fail with HTTP 500 (fault injection).
    pub faults: u32,
    /// Extra bytes of prose appended to every product description when it is read (a shop of
    /// long descriptions, for large bulk exports); generated on each read, never stored.
    pub description_padding: usize,
    /// How long this shop's next bulk queries run before completing (`None`: in proportion
    /// to their size, 1.5 s at most).
    pub bulk_run_secs: Option<f64>,
    /// Remaining `bulkOperation(id:)` reads to fail with HTTP 500 (fault injection).
    pub bulk_status_faults: u32,
    /// ISO 4217 code of the shop's currency (`shop.currencyCode`, every `MoneyV2`).
    pub currency: String,
}

impl Shop {
    pub fn new(domain: &str, products: Vec<Product>, config: &SandboxConfig) -> Self {
        let stem = domain.strip_suffix(".myshopify.com").unwrap_or(domain);
        let name = stem
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            domain: domain.to_string(),
            id: 60_000_000_000
                + u64::from(
                    domain
                        .bytes()
                        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b.into()))
                        % 1_000_000,
                ),
            name,
            products,
            bucket: Bucket::new(config.shopify_bucket_size, config.shopify_restore_rate),
            faults: 0,
            description_padding: 0,
            bulk_run_secs: None,
            bulk_status_faults: 0,
            currency: "USD".to_string(),
        }
    }

    pub fn product_index(&self, id: u64) -> Option<usize> {
        self.products.binary_search_by_key(&id, |p| p.id).ok()
    }
}

pub struct AuthCode {
    pub shop: String,
    pub scope: String,
    pub issued: Instant,
    pub used: bool,
}

pub struct AccessToken {
    pub shop: String,
    pub scope: String,
    /// None for non-expiring offline tokens.
    pub expires_at: Option<Instant>,
}

pub struct RefreshToken {
    pub shop: String,
    pub scope: String,
    pub expires_at: Instant,
    pub revoked: bool,
    /// The token this one replaced; it stays valid until this one is first used.
    pub predecessor: Option<String>,
}

pub struct ShopifyStore {
    pub shops: HashMap<String, Shop>,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub bulk_ops: HashMap<u64, BulkOp>,
    pub next_bulk_id: u64,
    /// Base URL of the storage endpoint serving bulk results, once started.
    pub storage_base: Option<String>,
    pub rng: StdRng,
}

impl ShopifyStore {
    pub fn new(config: &SandboxConfig, default_catalog: Vec<Product>) -> Self {
        let mut shops = HashMap::new();
        shops.insert(
            config.default_shop.clone(),
            Shop::new(&config.default_shop, default_catalog, config),
        );
        Self {
            shops,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            bulk_ops: HashMap::new(),
            next_bulk_id: 4_400_000_000,
            storage_base: None,
            rng: StdRng::seed_from_u64(config.seed ^ 0x0a07_4e11),
        }
    }

    /// Creates or replaces a shop with a freshly generated catalog.
    pub fn put_shop(&mut self, domain: &str, products: usize, seed: u64, config: &SandboxConfig) {
        let catalog = generate_catalog(seed, products);
        self.shops
            .insert(domain.to_string(), Shop::new(domain, catalog, config));
    }

    /// Creates or replaces a shop holding exactly `entries` ([`custom_catalog`]), priced in
    /// `currency`; returns the shop as stored.
    pub fn put_shop_with_catalog(
        &mut self,
        domain: &str,
        entries: &[CatalogEntry],
        currency: &str,
        config: &SandboxConfig,
    ) -> Result<&Shop, String> {
        let mut shop = Shop::new(domain, Vec::new(), config);
        shop.products = custom_catalog(shop.id, &shop.name, entries)?;
        shop.currency = currency.to_string();
        self.shops.insert(domain.to_string(), shop);
        Ok(&self.shops[domain])
    }
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/shopify/{shop}/admin/oauth/authorize",
            get(oauth::authorize),
        )
        .route(
            "/shopify/{shop}/admin/oauth/access_token",
            post(oauth::access_token),
        )
        .route(
            "/shopify/{shop}/admin/api/{version}/graphql.json",
            post(graphql::handle),
        )
        .route(
            "/_sandbox/shopify/{shop}/long-descriptions",
            post(long_descriptions),
        )
        .route(
            "/_sandbox/shopify/{shop}/bulk-settings",
            post(bulk_settings),
        )
        .route(
            "/_sandbox/shopify/{shop}/bulk-operations",
            get(bulk_operations),
        )
        .merge(webhooks::router())
}

/// `POST /_sandbox/shopify/{shop}/long-descriptions {"extra_bytes": n}`: every product read from
/// now on (pages, `product(id:)`, bulk exports) has `n` more bytes of description.
async fn long_descriptions(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(extra) = req.get("extra_bytes").and_then(Value::as_u64) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'extra_bytes' (a count) is required",
        );
    };
    match st.shopify().shops.get_mut(&shop) {
        Some(s) => {
            s.description_padding = extra as usize;
            Json(json!({ "shop": shop, "extra_bytes": extra })).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown shop"),
    }
}

/// `POST /_sandbox/shopify/{shop}/bulk-settings {"run_secs": s | null, "status_errors": n}`:
/// how long the shop's next bulk queries run (null: in proportion to size), and how many of the
/// next `bulkOperation(id:)` reads fail with HTTP 500. Omitted keys keep their value.
async fn bulk_settings(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let mut store = st.shopify();
    let Some(s) = store.shops.get_mut(&shop) else {
        return error(StatusCode::NOT_FOUND, "unknown shop");
    };
    if let Some(run) = req.get("run_secs") {
        s.bulk_run_secs = run.as_f64().filter(|v| v.is_finite() && *v >= 0.0);
    }
    if let Some(n) = req.get("status_errors").and_then(Value::as_u64) {
        s.bulk_status_faults = n as u32;
    }
    Json(json!({
        "shop": shop,
        "run_secs": s.bulk_run_secs,
        "status_errors": s.bulk_status_faults,
    }))
    .into_response()
}

/// `GET /_sandbox/shopify/{shop}/bulk-operations`: every bulk operation of the shop, oldest
/// first (`id`, `status`, `query`, `file_size`), to see what a client left behind.
async fn bulk_operations(State(st): State<Arc<AppState>>, Path(shop): Path<String>) -> Response {
    let store = st.shopify();
    if !store.shops.contains_key(&shop) {
        return error(StatusCode::NOT_FOUND, "unknown shop");
    }
    let mut ops: Vec<&BulkOp> = store
        .bulk_ops
        .values()
        .filter(|op| op.shop == shop)
        .collect();
    ops.sort_by_key(|op| op.id);
    let list: Vec<Value> = ops
        .iter()
        .map(|op| {
            json!({
                "id": op.gid(),
                "status": op.status,
                "query": op.query,
                "file_size": op.file_size,
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}
