use super::tokens::VaultError;
use std::time::Duration;

/// What can go wrong talking to one shop. Messages never carry a token, a secret or a customer's
/// personal data (we only read products).
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    /// The access token was rejected even after one refresh, or the shop has no stored tokens:
    /// the connection is broken (app uninstalled or tokens revoked).
    #[error("Shopify rejected the access token (the app may be uninstalled)")]
    Unauthorized,
    /// The merchant did not grant `read_products`, or a field needs a scope we do not hold.
    #[error("Shopify did not grant the read_products scope")]
    ScopeNotGranted,
    /// The authorization code or refresh token is invalid, used or expired.
    #[error("Shopify rejected the authorization code or refresh token")]
    InvalidGrant,
    #[error("Shopify is throttling us; retry after {} ms", retry_after.as_millis())]
    Throttled { retry_after: Duration },
    /// GraphQL errors or user errors (product data only, no personal data).
    #[error("Shopify GraphQL error: {0}")]
    GraphQl(String),
    /// 5xx, network failures, timeouts: worth retrying later.
    #[error("Shopify is unavailable: {0}")]
    Transient(String),
    #[error("Shopify bulk operation failed: {0}")]
    Bulk(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The app's own client secret could not be read (needed to refresh a token).
    #[error("the Shopify app client secret is unavailable: {0}")]
    AppSecret(#[from] crate::domain::SecretUnavailable),
}

impl ShopifyError {
    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ShopifyError::Throttled { .. }
                | ShopifyError::Transient(_)
                | ShopifyError::Vault(_)
                | ShopifyError::AppSecret(_)
        )
    }

    pub(crate) fn network(err: reqwest::Error) -> Self {
        // reqwest's Display includes the URL (shop domain, never a token); drop it anyway.
        ShopifyError::Transient(err.without_url().to_string())
    }
}
