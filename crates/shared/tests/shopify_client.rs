//! The Shopify client against the in-process sandbox, over real HTTP. Production code only sees a
//! different base URL template.

use async_trait::async_trait;
use sandbox::shopify::catalog_data::{generate_catalog, money, ProductStatus};
use serde_json::{json, Value};
use shared::domain::{AppSecret, CatalogProduct, Secret, ShopDomain};
use shared::shopify::admin::{ShopifyAdmin, ShopifyApp};
use shared::shopify::catalog::{self, CatalogOptions, PRODUCTS_COUNT};
use shared::shopify::oauth;
use shared::shopify::{ShopifyError, ShopifyTokens, TokenVault, VaultError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "sandbox-client-id";
const CLIENT_SECRET: &str = "sandbox-shopify-client-secret";
const API_VERSION: &str = "2026-10";
const REDIRECT_URI: &str = "https://app.example/shopify/callback";

// ---------- an in-memory TokenVault: one pair plus a lock with expiry ----------

#[derive(Default)]
struct MemoryVault {
    tokens: Mutex<Option<ShopifyTokens>>,
    lock: Mutex<Option<(String, Instant)>>,
    stores: AtomicUsize,
}

impl MemoryVault {
    fn with(tokens: ShopifyTokens) -> Arc<Self> {
        let vault = Self::default();
        *vault.tokens.lock().unwrap() = Some(tokens);
        Arc::new(vault)
    }
    fn current(&self) -> Option<ShopifyTokens> {
        self.tokens.lock().unwrap().clone()
    }
}

#[async_trait]
impl TokenVault for MemoryVault {
    async fn load(&self) -> Result<Option<ShopifyTokens>, VaultError> {
        Ok(self.current())
    }
    async fn store(&self, tokens: &ShopifyTokens) -> Result<(), VaultError> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        *self.tokens.lock().unwrap() = Some(tokens.clone());
        Ok(())
    }
    async fn try_lock(&self, owner: &str, ttl: Duration) -> Result<bool, VaultError> {
        let mut lock = self.lock.lock().unwrap();
        match &*lock {
            Some((holder, until)) if holder != owner && *until > Instant::now() => Ok(false),
            _ => {
                *lock = Some((owner.to_owned(), Instant::now() + ttl));
                Ok(true)
            }
        }
    }
    async fn unlock(&self, owner: &str) -> Result<(), VaultError> {
        let mut lock = self.lock.lock().unwrap();
        if lock.as_ref().is_some_and(|(holder, _)| holder == owner) {
            *lock = None;
        }
        Ok(())
    }
}

// ---------- harness ----------

struct Harness {
    sandbox: sandbox::Sandbox,
    http: reqwest::Client,
}

impl Harness {
    async fn start(config: sandbox::SandboxConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = sandbox::serve(listener, config).await;
        Self {
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    async fn default() -> Self {
        Self::start(sandbox::SandboxConfig::default()).await
    }

    fn root(&self) -> String {
        self.sandbox
            .shopify_base_url_template()
            .replace("/shopify/{shop}", "")
    }

    fn app(&self) -> ShopifyApp {
        ShopifyApp {
            client_id: CLIENT_ID.into(),
            client_secret: AppSecret::known(Secret::new(CLIENT_SECRET)),
            api_version: API_VERSION.into(),
            base_url_template: self.sandbox.shopify_base_url_template(),
        }
    }

    fn base_url(&self, shop: &ShopDomain) -> String {
        self.app().base_url(shop)
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.root()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "control {path} failed: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create_shop(&self, name: &str, products: usize, seed: u64) -> ShopDomain {
        self.control(
            "/_sandbox/shopify/shops",
            json!({ "shop": name, "products": products, "seed": seed }),
        )
        .await;
        ShopDomain::parse(name).unwrap()
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sandbox/stats", self.root()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn refreshes(&self, shop: &ShopDomain) -> u64 {
        self.stats().await["shopify"]["token_refreshes"][shop.as_str()]
            .as_u64()
            .unwrap_or(0)
    }

    async fn bulk_ops(&self, shop: &ShopDomain) -> u64 {
        self.stats().await["shopify"]["bulk_operations_started"][shop.as_str()]
            .as_u64()
            .unwrap_or(0)
    }

    /// Authorize URL → the sandbox's 302 → the callback query as decoded pairs.
    async fn authorize(&self, shop: &ShopDomain, state: &str) -> Vec<(String, String)> {
        let url = oauth::authorize_url(
            &self.base_url(shop),
            CLIENT_ID,
            "read_products",
            REDIRECT_URI,
            state,
        );
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = no_redirects.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "authorize must redirect");
        let location = response.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    /// The whole install: authorize, verify the callback, exchange the code.
    async fn install(&self, shop: &ShopDomain) -> ShopifyTokens {
        let pairs = self.authorize(shop, "state-1").await;
        assert!(oauth::verify_query_hmac(CLIENT_SECRET, &pairs));
        let code = &pairs.iter().find(|(k, _)| k == "code").unwrap().1;
        oauth::exchange_code(
            &self.http,
            &self.base_url(shop),
            CLIENT_ID,
            CLIENT_SECRET,
            code,
        )
        .await
        .unwrap()
    }

    fn admin(&self, shop: &ShopDomain, vault: Arc<dyn TokenVault>) -> ShopifyAdmin {
        ShopifyAdmin::new(self.http.clone(), self.app(), shop.clone(), vault)
    }
}

/// What the catalog should hold: the sandbox's generator, filtered the way the contract says.
fn expected_catalog(
    shop: &ShopDomain,
    count: usize,
    seed: u64,
) -> BTreeMap<String, (String, bool, String, String)> {
    generate_catalog(seed, count)
        .into_iter()
        .filter(|p| {
            p.status == ProductStatus::Active && p.online_store_url(shop.as_str()).is_some()
        })
        .map(|p| {
            let available = p.variants.iter().any(|v| v.available);
            (
                p.gid(),
                (
                    p.title.clone(),
                    available,
                    money(p.min_price_cents()),
                    money(p.max_price_cents()),
                ),
            )
        })
        .collect()
}

fn summarise(products: &[CatalogProduct]) -> BTreeMap<String, (String, bool, String, String)> {
    products
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                (
                    p.title.clone(),
                    p.available,
                    p.price_min.amount.clone(),
                    p.price_max.amount.clone(),
                ),
            )
        })
        .collect()
}

fn by_id(mut products: Vec<CatalogProduct>) -> Vec<CatalogProduct> {
    products.sort_by(|a, b| a.id.cmp(&b.id));
    products
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountData {
    products_count: CountNode,
}
#[derive(serde::Deserialize)]
struct CountNode {
    count: u64,
}

// ---------- OAuth ----------

#[tokio::test]
async fn oauth_dance_yields_a_verified_callback_and_expiring_offline_tokens() {
    let h = Harness::default().await;
    let shop = ShopDomain::parse("demo-store.myshopify.com").unwrap();
    let pairs = h.authorize(&shop, "nonce-abc123").await;

    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    for key in ["code", "hmac", "host", "shop", "state", "timestamp"] {
        assert!(get(key).is_some(), "callback lacks {key}");
    }
    assert_eq!(get("state").as_deref(), Some("nonce-abc123"));
    assert_eq!(get("shop").as_deref(), Some(shop.as_str()));
    assert!(oauth::verify_query_hmac(CLIENT_SECRET, &pairs));
    assert!(oauth::timestamp_is_fresh(
        get("timestamp").unwrap().parse().unwrap(),
        shared::domain::now_unix()
    ));

    let mut tampered = pairs.clone();
    tampered.iter_mut().find(|(k, _)| k == "shop").unwrap().1 = "evil-store.myshopify.com".into();
    assert!(!oauth::verify_query_hmac(CLIENT_SECRET, &tampered));
    assert!(!oauth::verify_query_hmac("another-secret", &pairs));

    let tokens = oauth::exchange_code(
        &h.http,
        &h.base_url(&shop),
        CLIENT_ID,
        CLIENT_SECRET,
        &get("code").unwrap(),
    )
    .await
    .unwrap();
    let now = shared::domain::now_unix();
    assert!(
        tokens.access_expires_at > now + 3000,
        "access token lives about an hour"
    );
    assert!(tokens.refresh_expires_at > tokens.access_expires_at);
    assert!(
        oauth::scope_covers_read_products(&tokens.scope),
        "{}",
        tokens.scope
    );
    assert!(!tokens.access_token.expose().is_empty() && !tokens.refresh_token.expose().is_empty());

    // The code is single-use.
    let again = oauth::exchange_code(
        &h.http,
        &h.base_url(&shop),
        CLIENT_ID,
        CLIENT_SECRET,
        &get("code").unwrap(),
    )
    .await;
    assert!(
        matches!(again, Err(ShopifyError::InvalidGrant)),
        "{again:?}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_the_new_token_works() {
    let h = Harness::default().await;
    let shop = h.create_shop("rotate-store.myshopify.com", 5, 7).await;
    let first = h.install(&shop).await;
    let second = oauth::refresh_tokens(
        &h.http,
        &h.base_url(&shop),
        CLIENT_ID,
        CLIENT_SECRET,
        first.refresh_token.expose(),
    )
    .await
    .unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    let admin = h.admin(&shop, MemoryVault::with(second));
    let data: CountData = admin.query(PRODUCTS_COUNT, json!({})).await.unwrap();
    assert!(data.products_count.count <= 5);

    let bogus = oauth::refresh_tokens(
        &h.http,
        &h.base_url(&shop),
        CLIENT_ID,
        CLIENT_SECRET,
        "not-a-token",
    )
    .await;
    assert!(
        matches!(bogus, Err(ShopifyError::InvalidGrant)),
        "{bogus:?}"
    );
}

// ---------- token refresh under concurrency ----------

async fn eight_sessions_query(
    h: &Harness,
    shop: &ShopDomain,
    vault: Arc<MemoryVault>,
) -> Vec<Result<u64, ShopifyError>> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let admin = h.admin(shop, vault.clone());
        tasks.push(tokio::spawn(async move {
            let data: CountData = admin.query(PRODUCTS_COUNT, json!({})).await?;
            Ok(data.products_count.count)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn eight_sessions_with_a_revoked_access_token_refresh_exactly_once() {
    let h = Harness::default().await;
    let shop = h.create_shop("refresh-401.myshopify.com", 12, 11).await;
    let tokens = h.install(&shop).await;
    let vault = MemoryVault::with(tokens.clone());
    // Shopify-side expiry: the vault still believes the token is good, the API answers 401.
    h.control(
        &format!("/_sandbox/shopify/{}/expire-access-tokens", shop.as_str()),
        json!({}),
    )
    .await;
    let before = h.refreshes(&shop).await;

    let results = eight_sessions_query(&h, &shop, vault.clone()).await;

    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(
        h.refreshes(&shop).await - before,
        1,
        "exactly one refresh for eight sessions"
    );
    assert_eq!(vault.stores.load(Ordering::SeqCst), 1);
    let stored = vault.current().unwrap();
    assert_ne!(stored.access_token, tokens.access_token);
    assert_ne!(stored.refresh_token, tokens.refresh_token);
}

#[tokio::test]
async fn eight_sessions_with_an_expiring_token_refresh_exactly_once_before_calling() {
    let h = Harness::default().await;
    let shop = h.create_shop("refresh-early.myshopify.com", 12, 12).await;
    let mut tokens = h.install(&shop).await;
    // Five minutes left: inside the ten-minute refresh margin.
    tokens.access_expires_at = shared::domain::now_unix() + 300;
    let vault = MemoryVault::with(tokens.clone());
    let before = h.refreshes(&shop).await;

    let results = eight_sessions_query(&h, &shop, vault.clone()).await;

    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(h.refreshes(&shop).await - before, 1);
    let stored = vault.current().unwrap();
    assert!(stored.access_expires_at > shared::domain::now_unix() + 3000);
}

#[tokio::test]
async fn a_revoked_refresh_token_surfaces_as_an_error_not_a_hang() {
    let h = Harness::default().await;
    let shop = h.create_shop("refresh-dead.myshopify.com", 3, 13).await;
    let mut tokens = h.install(&shop).await;
    tokens.access_expires_at = shared::domain::now_unix() - 10;
    tokens.refresh_token = Secret::new("revoked-or-unknown");
    let admin = h.admin(&shop, MemoryVault::with(tokens));
    let started = Instant::now();
    let result: Result<CountData, _> = admin.query(PRODUCTS_COUNT, json!({})).await;
    assert!(
        matches!(result, Err(ShopifyError::InvalidGrant)),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_shop_without_stored_tokens_is_unauthorized() {
    let h = Harness::default().await;
    let shop = ShopDomain::parse("demo-store.myshopify.com").unwrap();
    let admin = h.admin(&shop, Arc::new(MemoryVault::default()));
    let result: Result<CountData, _> = admin.query(PRODUCTS_COUNT, json!({})).await;
    assert!(
        matches!(result, Err(ShopifyError::Unauthorized)),
        "{:?}",
        result.err()
    );
}

// ---------- catalog ----------

#[tokio::test]
async fn paged_catalog_is_exactly_the_active_published_products() {
    let h = Harness::default().await;
    let (count, seed) = (130, 21);
    let shop = h
        .create_shop("paged-store.myshopify.com", count, seed)
        .await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let seen = seen.clone();
        move |n: usize| seen.lock().unwrap().push(n)
    };

    let products = catalog::fetch_catalog(&admin, &progress).await.unwrap();

    let expected = expected_catalog(&shop, count, seed);
    assert!(
        !expected.is_empty() && expected.len() < count,
        "the seed should mix statuses"
    );
    assert_eq!(summarise(&products), expected);
    assert_eq!(h.bulk_ops(&shop).await, 0, "a small shop is paged");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "progress per page: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    for p in &products {
        assert!(p.url.contains(&p.handle), "{} {}", p.url, p.handle);
        assert!(p.description.chars().count() <= catalog::DESCRIPTION_MAX_CHARS);
        assert_eq!(p.price_min.currency, "USD");
    }
    let usage = admin.usage();
    assert!(usage.requests >= 4 && usage.cost_points > 0, "{usage:?}");
}

#[tokio::test]
async fn bulk_and_paged_reads_map_products_identically() {
    let h = Harness::default().await;
    let (count, seed) = (60, 22);
    let shop = h
        .create_shop("same-mapping.myshopify.com", count, seed)
        .await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));
    let quick_poll = shared::shopify::bulk::BulkPolling {
        first_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let bulk_options = CatalogOptions {
        bulk_threshold: 0,
        bulk_polling: quick_poll,
        ..Default::default()
    };

    let via_bulk = catalog::fetch_catalog_with(&admin, &bulk_options, &|_| {})
        .await
        .unwrap();
    assert_eq!(h.bulk_ops(&shop).await, 1);
    let paged = catalog::fetch_catalog(&admin, &|_| {}).await.unwrap();
    assert_eq!(
        h.bulk_ops(&shop).await,
        1,
        "the paged read starts no bulk operation"
    );

    assert_eq!(by_id(via_bulk.clone()), by_id(paged));
    assert_eq!(summarise(&via_bulk), expected_catalog(&shop, count, seed));
}

#[tokio::test]
async fn a_shop_above_the_threshold_is_read_with_one_bulk_operation() {
    let h = Harness::default().await;
    let seed = 23;
    // Enough products that the *active* ones exceed the threshold (the count query filters).
    let active = |n: usize| {
        generate_catalog(seed, n)
            .iter()
            .filter(|p| p.status == ProductStatus::Active)
            .count()
    };
    let count = (1..)
        .map(|k| catalog::BULK_THRESHOLD as usize + 250 * k)
        .find(|n| active(*n) > catalog::BULK_THRESHOLD as usize)
        .unwrap();
    let shop = h.create_shop("big-store.myshopify.com", count, seed).await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));
    let last = Arc::new(AtomicUsize::new(0));
    let progress = {
        let last = last.clone();
        move |n: usize| last.store(n, Ordering::SeqCst)
    };

    let products = catalog::fetch_catalog(&admin, &progress).await.unwrap();

    assert_eq!(h.bulk_ops(&shop).await, 1);
    assert_eq!(summarise(&products), expected_catalog(&shop, count, seed));
    assert!(last.load(Ordering::SeqCst) > catalog::BULK_THRESHOLD as usize);
}

#[tokio::test]
async fn fetch_product_returns_an_active_published_product_and_none_otherwise() {
    let h = Harness::default().await;
    let (count, seed) = (40, 24);
    let shop = h
        .create_shop("single-product.myshopify.com", count, seed)
        .await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));
    let all = generate_catalog(seed, count);
    let live = all
        .iter()
        .find(|p| p.status == ProductStatus::Active && p.online_store_url(shop.as_str()).is_some())
        .unwrap();
    let draft = all
        .iter()
        .find(|p| p.status != ProductStatus::Active)
        .unwrap();

    let product = catalog::fetch_product(&admin, &live.gid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(product.id, live.gid());
    assert_eq!(product.title, live.title);
    assert!(catalog::fetch_product(&admin, &draft.gid())
        .await
        .unwrap()
        .is_none());
    assert!(catalog::fetch_product(&admin, "gid://shopify/Product/1")
        .await
        .unwrap()
        .is_none());
}

// ---------- throttling and faults ----------

#[tokio::test]
async fn a_slow_restoring_bucket_makes_the_client_wait_instead_of_failing() {
    let config = sandbox::SandboxConfig {
        shopify_restore_rate: 150.0,
        ..Default::default()
    };
    let h = Harness::start(config).await;
    let (count, seed) = (200, 31);
    let shop = h
        .create_shop("slow-bucket.myshopify.com", count, seed)
        .await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));

    let products = catalog::fetch_catalog(&admin, &|_| {}).await.unwrap();

    assert_eq!(summarise(&products), expected_catalog(&shop, count, seed));
    let usage = admin.usage();
    assert_eq!(
        usage.throttled, 0,
        "paced before sending, never throttled: {usage:?}"
    );
    assert!(
        usage.waited > Duration::from_millis(500),
        "the client paced itself: {usage:?}"
    );
}

#[tokio::test]
async fn graphql_500s_are_retried_then_reported_as_transient() {
    let h = Harness::default().await;
    let shop = h.create_shop("faulty-store.myshopify.com", 5, 41).await;
    let admin = h.admin(&shop, MemoryVault::with(h.install(&shop).await));
    let faults = format!("/_sandbox/shopify/{}/faults", shop.as_str());

    // A couple of 500s are absorbed by retries.
    h.control(&faults, json!({ "graphql_errors": 2 })).await;
    let data: CountData = admin.query(PRODUCTS_COUNT, json!({})).await.unwrap();
    assert!(data.products_count.count <= 5);
    assert_eq!(admin.usage().transient_retries, 2);

    // A persistent failure ends as Transient after a bounded number of attempts.
    h.control(&faults, json!({ "graphql_errors": 50 })).await;
    let before = admin.usage().requests;
    let result: Result<CountData, _> = admin.query(PRODUCTS_COUNT, json!({})).await;
    assert!(
        matches!(result, Err(ShopifyError::Transient(_))),
        "{:?}",
        result.err()
    );
    assert_eq!(
        admin.usage().requests - before,
        4,
        "one attempt plus three retries"
    );
}

#[tokio::test]
async fn sessions_sharing_a_bucket_retry_throttled_replies_and_finish() {
    let config = sandbox::SandboxConfig {
        shopify_restore_rate: 150.0,
        shopify_bucket_size: 1000.0,
        ..Default::default()
    };
    let h = Harness::start(config).await;
    let (count, seed) = (160, 32);
    let shop = h
        .create_shop("shared-bucket.myshopify.com", count, seed)
        .await;
    let vault = MemoryVault::with(h.install(&shop).await);
    // Two sessions: neither sees what the other spends, so the server has to throttle one.
    let (a, b) = (h.admin(&shop, vault.clone()), h.admin(&shop, vault.clone()));

    let (left, right) = tokio::join!(
        catalog::fetch_catalog(&a, &|_| {}),
        catalog::fetch_catalog(&b, &|_| {})
    );

    let expected = expected_catalog(&shop, count, seed);
    assert_eq!(summarise(&left.unwrap()), expected);
    assert_eq!(summarise(&right.unwrap()), expected);
    let throttled = a.usage().throttled + b.usage().throttled;
    assert!(
        throttled >= 1,
        "THROTTLED replies were received and retried"
    );
    let stats = h.stats().await;
    assert_eq!(
        stats["shopify"]["throttled_total"].as_u64(),
        Some(throttled)
    );
}
