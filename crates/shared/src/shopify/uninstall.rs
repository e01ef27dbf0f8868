//! Revoking our grant on a shop: `appUninstall` (Admin GraphQL 2026-10), sent with the shop's
//! still-valid token when the merchant disconnects in SendPersonal. Shopify then deletes our
//! webhook subscriptions and sends `app/uninstalled`, which finds nothing left to purge.

use super::{ShopifyAdmin, ShopifyError};
use serde::Deserialize;
use serde_json::json;

const APP_UNINSTALL: &str = include_str!("queries/app_uninstall.graphql");

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "appUninstall")]
    app_uninstall: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "userErrors", default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct UserError {
    code: Option<String>,
    message: String,
}

/// Uninstall the app from the admin's shop. Already uninstalled counts as done.
pub async fn uninstall_app(admin: &ShopifyAdmin) -> Result<(), ShopifyError> {
    let data: Data = admin.query(APP_UNINSTALL, json!({})).await?;
    let errors = data
        .app_uninstall
        .map(|p| p.user_errors)
        .unwrap_or_default();
    match errors
        .iter()
        .find(|e| e.code.as_deref() != Some("APP_NOT_INSTALLED"))
    {
        None => Ok(()),
        Some(e) => Err(ShopifyError::GraphQl(format!(
            "appUninstall: {}",
            e.message
        ))),
    }
}
