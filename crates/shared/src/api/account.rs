//! The leave-no-trace part of the HTTP contract: disconnecting, deleting the account, exporting
//! what we hold, and Shopify's webhook endpoint. Merged into the one OpenAPI document.

use crate::error::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

/// The answer to every purge (`DELETE /connections/*`, `DELETE /account`). Deleting what does not
/// exist is not an error: the answer is 200 with `status: nothing_to_delete` and nothing changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PurgeReport {
    /// `deleted` or `nothing_to_delete`.
    pub status: String,
    /// Items deleted per kind, e.g. `{"secret": 1, "catalog_item": 300, "connection": 1}`.
    pub deleted: BTreeMap<String, u64>,
    /// Shopify only: whether our grant on the shop was revoked through Shopify's API
    /// (`appUninstall`); false when the token no longer worked (it is deleted either way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_revoked: Option<bool>,
}

/// `GET /account/export`: everything SendPersonal holds about the signed-in merchant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountExport {
    pub merchant_id: String,
    /// RFC 3339.
    pub exported_at: String,
    /// Every record under the merchant: connections, settings, runs (as stored, no secrets).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
    /// The credentials we keep in Secrets Manager: that they exist and since when, never values.
    pub secrets: Vec<SecretPresence>,
    /// The shop this account owns in the shop → merchant map, if any.
    pub shop: Option<String>,
    /// The cached product catalog (the shop's public product data).
    pub catalog: CatalogSummary,
    pub customer_data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretPresence {
    /// `klaviyo` or `shopify`.
    pub vendor: String,
    pub kind: String,
    /// RFC 3339: when the current value was stored.
    pub stored_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CatalogSummary {
    pub generation: Option<String>,
    pub products: u64,
}

/// The 200 answers of `POST /webhooks/shopify` (Shopify reads only the status code).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookAck {
    /// `queued`, `duplicate`, `ignored` or `acknowledged`.
    pub status: String,
    pub detail: String,
}

#[utoipa::path(delete, path = "/connections/klaviyo", tag = "connections",
    responses(
        (status = 200, description = "the key, the connection record and live runs' work are gone (runs show `cancelled`, reason `klaviyo_disconnected`)", body = PurgeReport),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn delete_klaviyo() {}

#[utoipa::path(delete, path = "/connections/shopify", tag = "connections",
    responses(
        (status = 200, description = "grant revoked, token pair, cached catalog, shop mapping and pending OAuth states deleted", body = PurgeReport),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn delete_shopify() {}

#[utoipa::path(delete, path = "/account", tag = "account",
    responses(
        (status = 200, description = "everything held for the merchant is deleted, including the sign-in user", body = PurgeReport),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn delete_account() {}

#[utoipa::path(get, path = "/account/export", tag = "account",
    responses((status = 200, body = AccountExport), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn export_account() {}

#[utoipa::path(post, path = "/webhooks/shopify", tag = "webhooks",
    description = "Shopify webhook deliveries (products/create|update|delete, app/uninstalled, customers/data_request, customers/redact, shop/redact). Authenticated by X-Shopify-Hmac-Sha256 over the raw body.",
    params(("X-Shopify-Hmac-Sha256" = String, Header), ("X-Shopify-Topic" = String, Header),
           ("X-Shopify-Shop-Domain" = String, Header), ("X-Shopify-Event-Id" = String, Header),
           ("X-Shopify-Triggered-At" = Option<String>, Header)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, body = WebhookAck),
        (status = 400, description = "signed, but the body or headers are unusable", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or invalid signature", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "signed, but larger than a Lambda invocation holds", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn shopify_webhooks() {}

#[derive(OpenApi)]
#[openapi(paths(
    delete_klaviyo,
    delete_shopify,
    delete_account,
    export_account,
    shopify_webhooks
))]
pub(super) struct AccountDoc;
