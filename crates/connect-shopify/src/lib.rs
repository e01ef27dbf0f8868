//! connect-shopify: the OAuth install of our app on a merchant's shop, and on-demand syncs.
//!
//! Routes: `POST /connections/shopify` (returns the begin URL), the public
//! `GET /connections/shopify/begin` (a top-level navigation: sets the install's signed state
//! cookie in the browser, then goes to Shopify), the public `GET /connections/shopify/callback`
//! (verified by Shopify's HMAC, bound to the merchant by the one-time state and to the browser by
//! the cookie; ends on the console), the public `GET /shopify/app` (Shopify's app URL),
//! `POST /catalog/sync`, and the public `POST /webhooks/shopify` (see [`webhooks`]).
//!
//! Why a begin navigation: the console runs on another site than the API, so a cookie the API
//! set in answer to the console's `fetch` would be a third-party cookie, which browsers block or
//! partition; it would not come back on Shopify's redirect to the callback. A cookie set on a
//! top-level navigation to the API is first-party to the API, and SameSite=Lax sends it on the
//! top-level GET redirect back from Shopify.
//!
//! A merchant has one shop at a time. Connecting a different shop than the one they had retires
//! the old one once the new one is in place: our grant on it is revoked at Shopify
//! (`appUninstall`), its shop → merchant mapping, refresh lock and cached catalog are deleted, so
//! a later `app/uninstalled` or `shop/redact` of the old shop can never reach the new shop's data.
//! A deleted account's still-valid token is refused on every route (`account-deleted`).

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::Value;
use shared::api::{ShopifyAuthorize, ShopifyConnected, StartShopify, SyncQueued};
use shared::aws::catalog_store::CatalogStore;
use shared::aws::dynamo::{AppStore, OAuthState};
use shared::aws::purge::refresh_lock_key;
use shared::aws::{queue::Queue, secrets::SecretStore, AwsError};
use shared::domain::{
    now_unix, rfc3339, AppSecret, ConnectionStatus, MerchantId, ShopDomain, ShopifyConnection,
    SyncReason, SyncRequest, Vendor,
};
use shared::edge::{function::parse_event, http, Function, FunctionError};
use shared::error::ApiError;
use shared::shopify::{
    oauth, uninstall::uninstall_app, HeldTokens, ShopifyAdmin, ShopifyApp, ShopifyError,
    ShopifyTokens,
};
use shared::Config;
use std::sync::Arc;

mod webhooks;
pub use webhooks::{DEDUPE_TTL_SECS, MAX_WEBHOOK_BODY_BYTES};

/// The only scope we ask for: products, their variants, media and inventory counts.
pub const SCOPE: &str = "read_products";
/// How long a merchant has to approve the install.
const STATE_TTL_SECS: i64 = 600;
/// How long the console has to open the begin URL it was given.
const TICKET_TTL_SECS: i64 = 120;
/// The install's state cookie, scoped to the callback.
const STATE_COOKIE: &str = "sp_shopify_oauth";

pub struct Handler {
    config: Config,
    store: AppStore,
    catalog: CatalogStore,
    secrets: SecretStore,
    sync_queue: Queue,
    purge_queue: Option<Queue>,
    http: reqwest::Client,
    client_secret: AppSecret,
    app: ShopifyApp,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        let secrets = SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone());
        let client_secret = secrets.shopify_client_secret(&config);
        Ok(Self {
            store: AppStore::from_sdk(&aws, &config.app_table),
            catalog: CatalogStore::from_sdk(&aws, &config.catalog_table),
            app: ShopifyApp::from_config(&config, client_secret.clone()),
            sync_queue: Queue::from_sdk(&aws, &config.sync_queue_url),
            purge_queue: config
                .purge_queue_url
                .as_ref()
                .map(|url| Queue::from_sdk(&aws, url)),
            secrets,
            http: shared::http_client(),
            client_secret,
            config,
        })
    }

    pub async fn handle(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        match http::route_key(req) {
            "POST /connections/shopify" => {
                let merchant = http::live_merchant(req, &self.store).await?;
                let body: StartShopify = http::json_body(req)?;
                let shop =
                    ShopDomain::parse(&body.shop).map_err(|e| ApiError::InvalidShopDomain(e.0))?;
                Ok(http::json(200, &self.start(&merchant, shop).await?))
            }
            "GET /connections/shopify/begin" => {
                // A browser navigation: a refusal goes back to the console too.
                let query = http::query_pairs(req);
                Ok(match self.begin(&query).await {
                    Ok(resp) => resp,
                    Err(err) => self.install_outcome(Err(err)),
                })
            }
            "GET /connections/shopify/callback" => {
                let query = http::query_pairs(req);
                let cookie = request_cookie(req, STATE_COOKIE);
                // Every outcome goes back to the console, which shows it; the cookie is spent.
                let outcome = self.callback(&query, cookie.as_deref()).await.map(|_| ());
                let mut resp = self.install_outcome(outcome);
                resp.cookies = vec![self.state_cookie("", 0)];
                Ok(resp)
            }
            "GET /shopify/app" => {
                let query = http::query_pairs(req);
                self.app_launch(&query).await
            }
            "POST /webhooks/shopify" => self.webhook(req).await,
            "POST /catalog/sync" => {
                let merchant = http::live_merchant(req, &self.store).await?;
                Ok(http::json(202, &self.request_sync(&merchant).await?))
            }
            other => Err(ApiError::RouteNotFound(other.to_owned())),
        }
    }

    async fn start(
        &self,
        merchant: &MerchantId,
        shop: ShopDomain,
    ) -> Result<ShopifyAuthorize, ApiError> {
        if let Some(owner) = self.store.shop_owner(&shop).await.map_err(internal)? {
            if &owner != merchant {
                return Err(ApiError::ShopTaken);
            }
        }
        let ticket = random_nonce();
        let expires_at = now_unix() + TICKET_TTL_SECS;
        let state = OAuthState {
            merchant: merchant.clone(),
            shop: shop.clone(),
            expires_at,
        };
        self.store
            .put_oauth_ticket(&ticket, &state)
            .await
            .map_err(internal)?;
        let begin = self.config.shopify_redirect_uri.replace(
            "/connections/shopify/callback",
            "/connections/shopify/begin",
        );
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("ticket", &ticket)
            .finish();
        Ok(ShopifyAuthorize {
            authorize_url: format!("{begin}?{query}"),
            expires_at: rfc3339(expires_at),
        })
    }

    /// The browser that opens a ticket is the one the install is bound to: the one-time state
    /// is created now and its signed copy set as an HttpOnly, SameSite=Lax cookie of the API's
    /// own site (this is a top-level navigation), then the browser goes on to Shopify.
    async fn begin(
        &self,
        query: &[(String, String)],
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let ticket = query_param(query, "ticket").unwrap_or_default();
        if ticket.is_empty() || ticket.len() > 128 {
            return Err(ApiError::InvalidOAuthState);
        }
        let started = self
            .store
            .take_oauth_ticket(ticket)
            .await
            .map_err(internal)?
            .ok_or(ApiError::InvalidOAuthState)?;
        http::refuse_deleted(&self.store, &started.merchant).await?;
        let nonce = random_nonce();
        let state = OAuthState {
            merchant: started.merchant,
            shop: started.shop.clone(),
            expires_at: now_unix() + STATE_TTL_SECS,
        };
        self.store
            .put_oauth_state(&nonce, &state)
            .await
            .map_err(internal)?;
        let secret = self.client_secret.get().await?;
        let authorize_url = oauth::authorize_url(
            &self.config.shopify_base_url(&started.shop),
            &self.config.shopify_client_id,
            SCOPE,
            &self.config.shopify_redirect_uri,
            &nonce,
        );
        let mut resp = http::redirect(&authorize_url);
        resp.cookies = vec![self.state_cookie(
            &oauth::state_cookie_value(secret.expose(), &nonce),
            STATE_TTL_SECS,
        )];
        Ok(resp)
    }

    /// The browser back on the console with an install's outcome: `?shopify=connected`, or
    /// `?shopify=error&type=<problem slug>`, which the console explains.
    fn install_outcome(&self, outcome: Result<(), ApiError>) -> ApiGatewayV2httpResponse {
        let base = &self.config.app_base_url;
        let location = match outcome {
            Ok(()) => format!("{base}/connections?shopify=connected"),
            Err(err) => {
                if let ApiError::Internal(cause) = &err {
                    tracing::error!(error = %cause, "shopify install failed");
                }
                tracing::info!(problem = err.slug(), "shopify install refused");
                format!("{base}/connections?shopify=error&type={}", err.slug())
            }
        };
        http::redirect(&location)
    }

    /// `Secure` everywhere but a plain-http local API (browsers drop Secure cookies on http).
    fn state_cookie(&self, value: &str, max_age: i64) -> String {
        let secure = if self.config.shopify_redirect_uri.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{STATE_COOKIE}={value}; Path=/connections/shopify/callback; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        )
    }

    /// Shopify's app URL (`?shop&timestamp&hmac&host`), opened from the admin or the App Store:
    /// verified like a callback (signature first, then freshness and the shop's form), then the
    /// console takes over (it signs the merchant in if needed and starts the install).
    async fn app_launch(
        &self,
        query: &[(String, String)],
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let accepted = self
            .client_secret
            .accepted_at(now_unix(), self.config.shopify_secret_grace_secs)
            .await?;
        let secrets: Vec<&str> = accepted.iter().map(|s| s.expose()).collect();
        let shop = signed_shop(
            &secrets,
            query,
            ApiError::InvalidShopifyLaunch,
            ApiError::InvalidShopifyLaunch,
        )?;
        let base = &self.config.app_base_url;
        let installed = match self.store.shop_owner(&shop).await.map_err(internal)? {
            Some(owner) => self
                .store
                .shopify(&owner)
                .await
                .map_err(internal)?
                .is_some_and(|c| c.shop == shop && c.status == ConnectionStatus::Connected),
            None => false,
        };
        if installed {
            return Ok(http::redirect(&format!("{base}/connections")));
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("shop", shop.as_str())
            .finish();
        Ok(http::redirect(&format!("{base}/install?{query}")))
    }

    /// Shopify's redirect back. Checked in order: signature (nothing else is trusted before it;
    /// the client secret, or the one it replaced while that rotation's grace lasts), freshness,
    /// shop format, the browser's state cookie (signed by us, naming this state), then the
    /// one-time state, which must name the same shop.
    async fn callback(
        &self,
        query: &[(String, String)],
        cookie: Option<&str>,
    ) -> Result<ShopifyConnected, ApiError> {
        let accepted = self
            .client_secret
            .accepted_at(now_unix(), self.config.shopify_secret_grace_secs)
            .await?;
        let secrets: Vec<&str> = accepted.iter().map(|s| s.expose()).collect();
        let shop = signed_shop(
            &secrets,
            query,
            ApiError::InvalidOAuthSignature,
            ApiError::InvalidOAuthState,
        )?;
        let cookie_nonce =
            cookie.and_then(|c| oauth::verify_state_cookie(secrets.iter().copied(), c));
        // The code is exchanged with the current secret only.
        let client_secret = self.client_secret.get().await?;
        let param = |name: &str| query_param(query, name);
        let (Some(nonce), Some(code)) = (param("state"), param("code")) else {
            return Err(ApiError::InvalidRequest(
                "code and state are required".into(),
            ));
        };
        // Checked before the state is consumed: another browser's visit cannot burn the
        // rightful browser's install.
        if cookie_nonce.as_deref() != Some(nonce) {
            return Err(ApiError::OAuthBrowserMismatch);
        }
        let state = self
            .store
            .take_oauth_state(nonce)
            .await
            .map_err(internal)?
            .ok_or(ApiError::InvalidOAuthState)?;
        if state.shop != shop {
            return Err(ApiError::InvalidOAuthState);
        }
        let merchant = state.merchant;
        // The install may have been started before the account was deleted: no grant is taken
        // and nothing is written for a deleted account.
        http::refuse_deleted(&self.store, &merchant).await?;
        let base = self.config.shopify_base_url(&shop);
        let tokens = oauth::exchange_code(
            &self.http,
            &base,
            &self.config.shopify_client_id,
            client_secret.expose(),
            code,
        )
        .await
        .map_err(shopify_error)?;
        // A different shop than the merchant's: its token pair is read now, before the new pair
        // replaces it in the merchant's one Shopify secret, to revoke its grant afterwards.
        let previous = self.store.shopify(&merchant).await.map_err(internal)?;
        let retiring = match previous.as_ref().filter(|p| p.shop != shop) {
            Some(old) => Some((old.clone(), self.stored_tokens(&merchant).await)),
            None => None,
        };
        // Claimed only after Shopify accepted the code, so a failed install blocks nobody.
        if !self
            .store
            .claim_shop(&shop, &merchant)
            .await
            .map_err(internal)?
        {
            return Err(ApiError::ShopTaken);
        }
        let secret =
            serde_json::to_string(&tokens).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.secrets
            .put(
                &self.config.secret_name(&merchant, Vendor::Shopify),
                &secret,
            )
            .await
            .map_err(internal)?;

        // A reconnect keeps the cached catalog until the new sync replaces it.
        let connection = ShopifyConnection {
            status: ConnectionStatus::Connected,
            shop: shop.clone(),
            connected_at: now_unix(),
            catalog_generation: previous
                .as_ref()
                .filter(|p| p.shop == shop)
                .and_then(|p| p.catalog_generation.clone()),
            catalog_size: previous
                .as_ref()
                .filter(|p| p.shop == shop)
                .map_or(0, |p| p.catalog_size),
            last_sync_at: previous
                .as_ref()
                .filter(|p| p.shop == shop)
                .and_then(|p| p.last_sync_at),
            last_sync_error: None,
            sync_started_at: None,
            sync_products_read: None,
        };
        self.store
            .put_shopify(&merchant, &connection)
            .await
            .map_err(internal)?;
        self.sync_queue
            .send(&SyncRequest {
                merchant_id: merchant.clone(),
                reason: SyncReason::Connected,
            })
            .await
            .map_err(internal)?;
        tracing::info!(
            merchant = merchant.as_str(),
            shop = shop.as_str(),
            "shopify connected; first sync queued"
        );
        // Only now that the connection names the new shop: a purge for the old shop (its
        // app/uninstalled follows the revocation) then finds a merchant on another shop and
        // deletes only what names the old one.
        if let Some((old, tokens)) = retiring {
            self.retire_shop(&merchant, &old, tokens).await;
        }
        Ok(ShopifyConnected {
            shop: shop.as_str().to_owned(),
            status: ConnectionStatus::Connected,
            catalog_sync: "queued".into(),
        })
    }

    /// The merchant's stored token pair, if it can be read (best effort: a retired shop whose
    /// pair is gone or unreadable is still released, only its grant cannot be revoked).
    async fn stored_tokens(&self, merchant: &MerchantId) -> Option<ShopifyTokens> {
        let name = self.config.secret_name(merchant, Vendor::Shopify);
        match self.secrets.get(&name).await {
            Ok(Some(text)) => serde_json::from_str(&text).ok(),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the token pair of the shop being replaced");
                None
            }
        }
    }

    /// Give up the shop a merchant had before the one just connected: revoke our grant on it
    /// (with its own token pair, held in memory), then delete its shop → merchant mapping (only
    /// if it is still this merchant's), its refresh lock and its cached catalog. Each step is
    /// best effort and logged: the new shop is connected already, and a mapping left behind
    /// harms nothing (a purge for the old shop leaves a merchant on another shop alone, and
    /// deletes that mapping when the old shop's app/uninstalled arrives).
    async fn retire_shop(
        &self,
        merchant: &MerchantId,
        old: &ShopifyConnection,
        tokens: Option<ShopifyTokens>,
    ) {
        let shop = &old.shop;
        let revoked = match tokens {
            Some(tokens) => {
                let admin = ShopifyAdmin::new(
                    self.http.clone(),
                    self.app.clone(),
                    shop.clone(),
                    Arc::new(HeldTokens::new(tokens)),
                );
                match uninstall_app(&admin).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(shop = shop.as_str(), error = %err, "could not revoke the grant on the replaced shop");
                        false
                    }
                }
            }
            None => false,
        };
        let released = self
            .store
            .release_shop(shop, merchant)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(shop = shop.as_str(), error = %err, "could not release the replaced shop's mapping");
                false
            });
        let (lock_pk, lock_sk) = refresh_lock_key(shop);
        if let Err(err) = self.store.delete_key(&lock_pk, &lock_sk).await {
            tracing::warn!(shop = shop.as_str(), error = %err, "could not delete the replaced shop's refresh lock");
        }
        let mut catalog_items = 0;
        if let Some(generation) = &old.catalog_generation {
            match self.catalog.delete_generation(merchant, generation).await {
                Ok(n) => catalog_items = n,
                Err(err) => {
                    tracing::warn!(error = %err, "could not delete the replaced shop's catalog")
                }
            }
        }
        tracing::info!(
            merchant = merchant.as_str(),
            shop = shop.as_str(),
            grant_revoked = revoked,
            mapping_released = released,
            catalog_items,
            "replaced shop retired"
        );
    }

    async fn request_sync(&self, merchant: &MerchantId) -> Result<SyncQueued, ApiError> {
        match self.store.shopify(merchant).await.map_err(internal)? {
            Some(c) if c.status == ConnectionStatus::Connected => {}
            _ => return Err(ApiError::NotConnected("Shopify")),
        }
        self.sync_queue
            .send(&SyncRequest {
                merchant_id: merchant.clone(),
                reason: SyncReason::Requested,
            })
            .await
            .map_err(internal)?;
        Ok(SyncQueued {
            status: "queued".into(),
        })
    }
}

/// A cookie of the request (payload 2.0 puts them in `cookies`, one `name=value` each).
fn request_cookie(req: &ApiGatewayV2httpRequest, name: &str) -> Option<String> {
    req.cookies
        .iter()
        .flatten()
        .flat_map(|c| c.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// 32 random bytes, hex: URL-safe as Shopify requires, unguessable.
fn random_nonce() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn internal(err: AwsError) -> ApiError {
    ApiError::Internal(err.to_string())
}

fn shopify_error(err: ShopifyError) -> ApiError {
    match err {
        ShopifyError::ScopeNotGranted => ApiError::ScopeNotGranted,
        ShopifyError::InvalidGrant | ShopifyError::Unauthorized => ApiError::InvalidOAuthState,
        ShopifyError::Throttled { retry_after } => ApiError::VendorThrottled {
            vendor: "Shopify",
            retry_after_secs: retry_after.as_secs().max(1),
        },
        other => {
            tracing::warn!(error = %other, "shopify token exchange failed");
            ApiError::VendorUnavailable("Shopify")
        }
    }
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let req: ApiGatewayV2httpRequest = parse_event(event, "API Gateway HTTP API")?;
        let resp = http::respond(self.handle(&req).await);
        Ok(serde_json::to_value(resp)?)
    }
}

/// A query's parameter, first occurrence.
fn query_param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The shop of a query Shopify signed, checked in order: the signature with any accepted secret
/// (nothing else is trusted before it), its freshness, the shop's form.
fn signed_shop(
    secrets: &[&str],
    query: &[(String, String)],
    bad_signature: ApiError,
    stale: ApiError,
) -> Result<ShopDomain, ApiError> {
    if oauth::verify_query_hmac_any(secrets.iter().copied(), query).is_none() {
        return Err(bad_signature);
    }
    let timestamp = query_param(query, "timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0);
    if !oauth::timestamp_is_fresh(timestamp, now_unix()) {
        return Err(stale);
    }
    ShopDomain::parse(query_param(query, "shop").unwrap_or_default())
        .map_err(|e| ApiError::InvalidShopDomain(e.0))
}
