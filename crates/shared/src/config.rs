//! One configuration struct, read once per container from the environment. The names match the
//! `Environment.Variables` of template.yaml, so the deployed stack and the local runner agree.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {0} is missing or empty")]
pub struct ConfigError(pub &'static str);

#[derive(Clone, Debug)]
pub struct Config {
    pub app_table: String,
    pub catalog_table: String,
    pub sync_queue_url: String,
    pub work_queue_url: String,
    /// Every merchant secret is named `{secret_prefix}/{merchant}/{vendor}`.
    pub secret_prefix: String,
    pub secrets_kms_key_id: Option<String>,
    pub klaviyo_base_url: String,
    pub klaviyo_revision: String,
    /// `https://{shop}` in production; `{shop}` is replaced by the shop domain.
    pub shopify_base_url_template: String,
    pub shopify_api_version: String,
    pub shopify_client_id: String,
    /// Name of the Secrets Manager secret holding the Shopify app's client secret.
    pub shopify_client_secret_id: String,
    pub shopify_redirect_uri: String,
    pub bedrock_model_id: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError(name));
        let or = |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        Ok(Self {
            app_table: required("APP_TABLE")?,
            catalog_table: required("CATALOG_TABLE")?,
            sync_queue_url: required("SYNC_QUEUE_URL")?,
            work_queue_url: or("WORK_QUEUE_URL", ""),
            secret_prefix: or("SECRET_PREFIX", "sendpersonal"),
            secrets_kms_key_id: get("SECRETS_KMS_KEY_ID"),
            klaviyo_base_url: or("KLAVIYO_BASE_URL", "https://a.klaviyo.com"),
            klaviyo_revision: or("KLAVIYO_REVISION", "2026-07-15"),
            shopify_base_url_template: or("SHOPIFY_BASE_URL_TEMPLATE", "https://{shop}"),
            shopify_api_version: or("SHOPIFY_API_VERSION", "2026-10"),
            shopify_client_id: required("SHOPIFY_CLIENT_ID")?,
            shopify_client_secret_id: or(
                "SHOPIFY_CLIENT_SECRET_ID",
                "sendpersonal/app/shopify-client-secret",
            ),
            shopify_redirect_uri: required("SHOPIFY_REDIRECT_URI")?,
            bedrock_model_id: or(
                "BEDROCK_MODEL_ID",
                "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            ),
        })
    }

    /// The base URL of one shop's Admin endpoints (`https://{shop}` in production).
    pub fn shopify_base_url(&self, shop: &crate::domain::ShopDomain) -> String {
        self.shopify_base_url_template
            .replace("{shop}", shop.as_str())
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn secret_name(&self, merchant: &crate::domain::MerchantId, vendor: crate::domain::Vendor) -> String {
        format!("{}/{}/{}", self.secret_prefix, merchant.as_str(), vendor.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> HashMap<String, String> {
        [
            ("APP_TABLE", "app"),
            ("CATALOG_TABLE", "catalog"),
            ("SYNC_QUEUE_URL", "http://q/sync"),
            ("SHOPIFY_CLIENT_ID", "cid"),
            ("SHOPIFY_REDIRECT_URI", "https://api/cb"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn defaults_point_at_the_real_vendors() {
        let config = Config::from_map(&minimal()).unwrap();
        assert_eq!(config.klaviyo_base_url, "https://a.klaviyo.com");
        let shop = crate::domain::ShopDomain::parse("a-shop.myshopify.com").unwrap();
        assert_eq!(config.shopify_base_url(&shop), "https://a-shop.myshopify.com");
    }

    #[test]
    fn missing_table_is_named_in_the_error() {
        let mut vars = minimal();
        vars.remove("APP_TABLE");
        assert_eq!(Config::from_map(&vars).unwrap_err().0, "APP_TABLE");
    }
}
