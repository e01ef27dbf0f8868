//! A per-shop Admin API session. It owns the shop's GraphQL endpoint and keeps the expiring
//! access token fresh through the [`TokenVault`]: refresh ~50 minutes into the hour, serialise
//! refreshes across containers with the vault's lock, persist the new pair before using it, and
//! on a 401 refresh once and retry.

use super::error::ShopifyError;
use super::graphql::Pacer;
use super::oauth;
use super::tokens::{ShopifyTokens, TokenVault};
use crate::config::Config;
use crate::domain::{now_unix, AppSecret, Secret, ShopDomain};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh when the access token expires within this margin (tokens live 3600 s, so ~50 min in).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(10 * 60);
/// How long a refresh lock is held at most (a crashed holder releases by expiry).
pub const REFRESH_LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a session waits for another holder's refresh to land in the vault.
pub const REFRESH_WAIT: Duration = Duration::from_secs(20);

/// The app's Shopify credentials and endpoints (the same for every shop).
#[derive(Clone, Debug)]
pub struct ShopifyApp {
    pub client_id: String,
    pub client_secret: AppSecret,
    pub api_version: String,
    /// `https://{shop}` in production; `{shop}` is replaced by the shop domain.
    pub base_url_template: String,
}

impl ShopifyApp {
    pub fn from_config(config: &Config, client_secret: AppSecret) -> Self {
        Self {
            client_id: config.shopify_client_id.clone(),
            client_secret,
            api_version: config.shopify_api_version.clone(),
            base_url_template: config.shopify_base_url_template.clone(),
        }
    }

    /// The base URL of one shop's Admin endpoints, without a trailing slash.
    pub fn base_url(&self, shop: &ShopDomain) -> String {
        self.base_url_template
            .replace("{shop}", shop.as_str())
            .trim_end_matches('/')
            .to_owned()
    }
}

/// One shop's Admin API session. Cheap to create per invocation; the token is cached for the
/// session's life, the vault is the source of truth across containers.
pub struct ShopifyAdmin {
    pub(crate) http: reqwest::Client,
    app: ShopifyApp,
    shop: ShopDomain,
    base_url: String,
    pub(crate) graphql_url: String,
    vault: Arc<dyn TokenVault>,
    cached: tokio::sync::Mutex<Option<ShopifyTokens>>,
    pub(crate) pacer: Pacer,
}

impl std::fmt::Debug for ShopifyAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyAdmin")
            .field("shop", &self.shop)
            .finish_non_exhaustive()
    }
}

fn usable(tokens: &ShopifyTokens, rejected: Option<&Secret>) -> bool {
    !tokens.access_expires_within(now_unix(), REFRESH_MARGIN)
        && rejected != Some(&tokens.access_token)
}

impl ShopifyAdmin {
    pub fn new(
        http: reqwest::Client,
        app: ShopifyApp,
        shop: ShopDomain,
        vault: Arc<dyn TokenVault>,
    ) -> Self {
        let base_url = app.base_url(&shop);
        let graphql_url = format!("{base_url}/admin/api/{}/graphql.json", app.api_version);
        Self {
            http,
            app,
            shop,
            base_url,
            graphql_url,
            vault,
            cached: tokio::sync::Mutex::new(None),
            pacer: Pacer::default(),
        }
    }

    pub fn shop(&self) -> &ShopDomain {
        &self.shop
    }

    /// The HTTP client, for downloads that must not carry the token (bulk result URLs).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A fresh access token: from the session cache, else the vault, else a serialised refresh.
    pub(crate) async fn access_token(&self) -> Result<Secret, ShopifyError> {
        self.token(None).await
    }

    /// The API rejected `rejected`: get a different, fresh token (refreshing if nobody has yet).
    pub(crate) async fn refresh_rejected(&self, rejected: &Secret) -> Result<Secret, ShopifyError> {
        self.token(Some(rejected)).await
    }

    async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, ShopifyError> {
        let mut cached = self.cached.lock().await;
        if let Some(tokens) = cached.as_ref().filter(|t| usable(t, rejected)) {
            return Ok(tokens.access_token.clone());
        }
        let stored = self.vault.load().await?.ok_or(ShopifyError::Unauthorized)?;
        let tokens = if usable(&stored, rejected) {
            stored
        } else {
            self.refresh_serialised(rejected).await?
        };
        let access = tokens.access_token.clone();
        *cached = Some(tokens);
        Ok(access)
    }

    /// Take the shop's refresh lock and refresh, or wait for whoever holds it to store a new pair.
    async fn refresh_serialised(
        &self,
        rejected: Option<&Secret>,
    ) -> Result<ShopifyTokens, ShopifyError> {
        let owner = hex::encode(rand::thread_rng().gen::<[u8; 12]>());
        let deadline = Instant::now() + REFRESH_WAIT;
        let mut attempt: u32 = 0;
        loop {
            if self.vault.try_lock(&owner, REFRESH_LOCK_TTL).await? {
                let result = self.refresh_locked(rejected).await;
                if let Err(err) = self.vault.unlock(&owner).await {
                    // The lock expires by itself; the refreshed pair is already stored.
                    tracing::warn!(shop = self.shop.as_str(), error = %err, "could not release the refresh lock");
                }
                return result;
            }
            let base = 50u64.saturating_mul(1 << attempt.min(5)).min(1000);
            let pause = Duration::from_millis(base + rand::thread_rng().gen_range(0..=base));
            tokio::time::sleep(pause).await;
            attempt += 1;
            if let Some(stored) = self.vault.load().await? {
                if usable(&stored, rejected) {
                    return Ok(stored);
                }
            }
            if Instant::now() >= deadline {
                return Err(ShopifyError::Transient(
                    "timed out waiting for a concurrent token refresh".into(),
                ));
            }
        }
    }

    /// Holding the lock: re-load (someone may have refreshed meanwhile), refresh if still needed,
    /// and persist the new pair before anyone uses it.
    async fn refresh_locked(
        &self,
        rejected: Option<&Secret>,
    ) -> Result<ShopifyTokens, ShopifyError> {
        let stored = self.vault.load().await?.ok_or(ShopifyError::Unauthorized)?;
        if usable(&stored, rejected) {
            return Ok(stored);
        }
        if stored.refresh_expires_at <= now_unix() {
            return Err(ShopifyError::Unauthorized);
        }
        let client_secret = self.app.client_secret.get().await?;
        let fresh = oauth::refresh_tokens(
            &self.http,
            &self.base_url,
            &self.app.client_id,
            client_secret.expose(),
            stored.refresh_token.expose(),
        )
        .await?;
        self.vault.store(&fresh).await?;
        self.pacer.count_refresh();
        tracing::info!(
            shop = self.shop.as_str(),
            "refreshed the Shopify access token"
        );
        Ok(fresh)
    }
}
