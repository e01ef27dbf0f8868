//! The merchant-facing HTTP contract: request and response bodies, and the OpenAPI 3.1 document
//! generated from them (served at `GET /openapi.json`). A test compares it with template.yaml's
//! routes, so the document cannot drift from what API Gateway serves.

use crate::domain::{rfc3339, ConnectionStatus, KlaviyoConnection, ShopifyConnection};
use crate::error::Problem;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

mod account;
mod flows;
mod personalize;
pub use account::{AccountExport, CatalogSummary, PurgeReport, SecretPresence, WebhookAck};
pub use personalize::{
    AudiencesPage, Grounding, PreviewProfile, PreviewRequest, PreviewResponse, RunCreated, RunList,
    RunSamples, RunView, MAX_PREVIEW_PROFILES,
};

/// `GET /connections`: the signed-in merchant's connections. Never a key or token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionsView {
    pub klaviyo: Option<KlaviyoConnectionView>,
    pub shopify: Option<ShopifyConnectionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KlaviyoConnectionView {
    pub status: ConnectionStatus,
    /// RFC 3339.
    pub connected_at: String,
    pub account_id: String,
    pub account_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShopifyConnectionView {
    pub status: ConnectionStatus,
    pub shop: String,
    pub connected_at: String,
    pub catalog_size: u64,
    pub last_sync_at: Option<String>,
    pub last_sync_error: Option<String>,
    /// Present while a catalog sync runs.
    pub sync_in_progress: Option<SyncProgressView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncProgressView {
    pub started_at: String,
    pub products_read: u64,
}

impl From<&KlaviyoConnection> for KlaviyoConnectionView {
    fn from(c: &KlaviyoConnection) -> Self {
        Self {
            status: c.status,
            connected_at: rfc3339(c.connected_at),
            account_id: c.account_id.clone(),
            account_name: c.account_name.clone(),
        }
    }
}

impl From<&ShopifyConnection> for ShopifyConnectionView {
    fn from(c: &ShopifyConnection) -> Self {
        Self {
            status: c.status,
            shop: c.shop.as_str().to_owned(),
            connected_at: rfc3339(c.connected_at),
            catalog_size: c.catalog_size,
            last_sync_at: c.last_sync_at.map(rfc3339),
            last_sync_error: c.last_sync_error.clone(),
            sync_in_progress: c.sync_started_at.map(|started| SyncProgressView {
                started_at: rfc3339(started),
                products_read: c.sync_products_read.unwrap_or(0),
            }),
        }
    }
}

/// `PUT /connections/klaviyo`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutKlaviyoKey {
    /// A Klaviyo private API key (`pk_…`) with the read scopes accounts, lists, segments,
    /// profiles, events and metrics, and profiles:write + lists:write.
    pub api_key: String,
}

/// `POST /connections/shopify`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartShopify {
    /// The shop's `*.myshopify.com` domain.
    pub shop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShopifyAuthorize {
    /// Open as a top-level navigation (not a fetch): `GET /connections/shopify/begin?ticket=`
    /// sets the install's state cookie in this browser and goes on to Shopify, which returns
    /// the browser to the callback. The ticket is single-use and lives two minutes.
    pub authorize_url: String,
    /// RFC 3339; the one-time ticket stops working then.
    pub expires_at: String,
}

/// The callback's answer once the shop is connected and the first sync is queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShopifyConnected {
    pub shop: String,
    pub status: ConnectionStatus,
    pub catalog_sync: String,
}

/// `POST /catalog/sync`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncQueued {
    pub status: String,
}

#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, body = ConnectionsView), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_connections() {}

#[utoipa::path(put, path = "/connections/klaviyo", tag = "connections", request_body = PutKlaviyoKey,
    responses(
        (status = 200, body = KlaviyoConnectionView),
        (status = 400, description = "malformed key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "key rejected by Klaviyo or missing scopes", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Klaviyo rate limit", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn put_klaviyo() {}

#[utoipa::path(post, path = "/connections/shopify", tag = "connections", request_body = StartShopify,
    responses(
        (status = 200, body = ShopifyAuthorize),
        (status = 400, description = "invalid shop domain", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "shop connected to another account", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn start_shopify() {}

#[utoipa::path(get, path = "/connections/shopify/begin", tag = "connections",
    params(("ticket" = String, Query, description = "the one-time ticket of an `authorize_url`")),
    responses(
        (status = 302, description = "to Shopify's authorize page, with the install's signed state cookie (HttpOnly, SameSite=Lax) set in this browser",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "unknown, used or expired ticket", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn shopify_begin() {}

#[utoipa::path(get, path = "/connections/shopify/callback", tag = "connections",
    params(("code" = String, Query), ("hmac" = String, Query), ("shop" = String, Query),
           ("state" = String, Query), ("timestamp" = String, Query), ("host" = Option<String>, Query)),
    responses(
        (status = 302, description = "to the console: `{AppBaseUrl}/connections?shopify=connected`, or `?shopify=error&type=<problem type slug>` (invalid-oauth-signature, invalid-oauth-state, oauth-browser-mismatch, invalid-shop-domain, shop-already-connected, ...); the state cookie is cleared",
            headers(("Location" = String), ("Set-Cookie" = String)))))]
#[allow(dead_code)]
fn shopify_callback() {}

#[utoipa::path(get, path = "/shopify/app", tag = "connections",
    params(("shop" = String, Query), ("timestamp" = String, Query), ("hmac" = String, Query),
           ("host" = Option<String>, Query), ("embedded" = Option<String>, Query)),
    responses(
        (status = 302, description = "Shopify's app URL, verified: to `{AppBaseUrl}/install?shop=<shop>`, or `{AppBaseUrl}/connections` when the shop is installed already",
            headers(("Location" = String))),
        (status = 400, description = "invalid shop domain", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "forged, missing or stale signature", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn shopify_app() {}

#[utoipa::path(post, path = "/catalog/sync", tag = "catalog",
    responses((status = 202, body = SyncQueued), (status = 409, description = "Shopify not connected", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn sync_catalog() {}

#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "this document")))]
#[allow(dead_code)]
fn openapi_json() {}

struct BearerAuth;
impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "SendPersonal API", description = "Connect Klaviyo and Shopify, cache the catalog, personalize emails."),
    paths(get_connections, put_klaviyo, start_shopify, shopify_begin, shopify_callback, shopify_app, sync_catalog, openapi_json),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the HTTP API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(account::AccountDoc::openapi());
    doc.merge(personalize::PersonalizeDoc::openapi());
    doc.merge(flows::FlowsDoc::openapi());
    doc
}

/// `(METHOD, path)` of every documented operation, e.g. `("GET", "/connections")`.
pub fn documented_routes() -> Vec<(String, String)> {
    let doc = openapi();
    let mut routes = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let json = serde_json::to_value(item).unwrap_or_default();
        for method in ["get", "put", "post", "delete", "patch"] {
            if json.get(method).is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}
