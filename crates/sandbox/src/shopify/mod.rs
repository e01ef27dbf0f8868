//! Shopify Admin emulation under `/shopify/{shop}/admin/...`: OAuth (authorization code with
//! expiring offline tokens), GraphQL with cost-based throttling, and bulk operations.

pub mod bulk;
pub mod catalog_data;
pub mod graphql;
pub mod model;
pub mod oauth;
pub mod schema;
pub mod search;
pub mod throttle;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::{get, post};
use axum::Router;
use rand::{rngs::StdRng, SeedableRng};

use self::bulk::BulkOp;
use self::catalog_data::{generate_catalog, Product};
use self::throttle::Bucket;
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
            rng: StdRng::seed_from_u64(config.seed ^ 0x0a07_4e11),
        }
    }

    /// Creates or replaces a shop with a freshly generated catalog.
    pub fn put_shop(&mut self, domain: &str, products: usize, seed: u64, config: &SandboxConfig) {
        let catalog = generate_catalog(seed, products);
        self.shops
            .insert(domain.to_string(), Shop::new(domain, catalog, config));
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
        .merge(webhooks::router())
}
