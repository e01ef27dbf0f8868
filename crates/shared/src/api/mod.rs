//! The merchant-facing HTTP contract: request and response bodies, and the OpenAPI 3.1 document
//! generated from them (served at `GET /openapi.json`). A test compares it with template.yaml's
//! routes, so the document cannot drift from what API Gateway serves.

use crate::domain::{rfc3339, ConnectionStatus, KlaviyoConnection, ShopifyConnection};
use crate::error::Problem;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

mod account;
mod catalog;
mod flows;
mod personalize;
pub(crate) mod schema;
pub use account::{AccountExport, CatalogSummary, PurgeReport, SecretPresence, WebhookAck};
pub use catalog::{
    catalog_cursor, catalog_position, CatalogItem, CatalogPage, CATALOG_PAGE_DEFAULT,
    CATALOG_PAGE_MAX,
};
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
    #[schema(pattern = "^pk_[A-Za-z0-9]{20,80}$")]
    pub api_key: String,
}

/// `POST /connections/shopify`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartShopify {
    /// The shop's `*.myshopify.com` domain.
    #[schema(
        max_length = 255,
        pattern = "^[a-zA-Z0-9][a-zA-Z0-9-]*\\.myshopify\\.com$"
    )]
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

/// What API Gateway itself answers before any function runs (its JWT authorizer's 401, the
/// stage throttle's 429, its payload limit's 413): `{"message": "Unauthorized"}` and the like.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayMessage {
    pub message: String,
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
        (status = 502, description = "Klaviyo is unavailable (`vendor-unavailable`); retry later", body = Problem, content_type = "application/problem+json"),
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
        (status = 302, description = "to Shopify's authorize page, with the install's signed state cookie (HttpOnly, SameSite=Lax) set in this browser; or, for an unknown, used or expired ticket, to the console: `{AppBaseUrl}/connections?shopify=error&type=invalid-oauth-state`",
            headers(("Location" = String), ("Set-Cookie" = String)))))]
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
    components(schemas(GatewayMessage)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the HTTP API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(account::AccountDoc::openapi());
    doc.merge(catalog::CatalogDoc::openapi());
    doc.merge(personalize::PersonalizeDoc::openapi());
    doc.merge(flows::FlowsDoc::openapi());
    declare_common_answers(&mut doc);
    doc
}

/// The answers every operation of a kind can give, declared once instead of per route: API
/// Gateway's authorizer (and the deleted-account check) answers 401 on every bearer route, every
/// route with a body refuses one that is not the expected JSON (400) or is too large (413: over
/// the functions' 64 KiB, or Lambda's invocation payload), and the stage throttle answers 429 on
/// any route. What API Gateway answers itself is `{"message": …}` JSON, not a problem document
/// (the local runner answers problem documents there), so those statuses declare both.
fn declare_common_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let gateway = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("GatewayMessage")))
            .build()
    };
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            let bearer = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = op.request_body.is_some();
            let mut declare = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description).into());
            };
            if bearer {
                declare(
                    "401",
                    "missing, invalid or expired bearer token, or the account was deleted",
                );
            }
            if has_body {
                declare("400", "the body is not the expected JSON");
                declare("413", "the body is larger than the route accepts");
            }
            let responses = &mut op.responses.responses;
            responses.entry("429".to_owned()).or_insert_with(|| {
                ResponseBuilder::new()
                    .description("API Gateway's stage throttle; retry with backoff")
                    .content("application/json", gateway())
                    .build()
                    .into()
            });
            let from_gateway = [("401", bearer), ("413", has_body)];
            for (status, applies) in from_gateway {
                if let (true, Some(RefOr::T(response))) = (applies, responses.get_mut(status)) {
                    response
                        .content
                        .insert("application/json".to_owned(), gateway());
                }
            }
        }
    }
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
