//! The one mapping from failures to HTTP problems (RFC 9457 `application/problem+json`).
//! Every `type` is stable: clients may switch on it. Details never echo secrets or personal data.

use serde::Serialize;

pub const PROBLEM_BASE: &str = "https://sendpersonal.app/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// The token is still valid, but the account it names was deleted (`DELETE /account`):
    /// nothing is read or written for it any more.
    #[error("this account was deleted and its sessions were signed out; sign up again to use SendPersonal")]
    AccountDeleted,
    #[error("no route matches {0}")]
    RouteNotFound(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidKlaviyoKey(&'static str),
    #[error("Klaviyo rejected the API key (it is invalid or revoked)")]
    KlaviyoKeyRejected,
    #[error("the Klaviyo API key lacks required scopes: {}", .0.join(", "))]
    KlaviyoMissingScopes(Vec<String>),
    #[error("{0}")]
    InvalidShopDomain(&'static str),
    #[error("the Shopify callback signature is invalid")]
    InvalidOAuthSignature,
    #[error("the OAuth state is unknown, used or expired; start the connection again")]
    InvalidOAuthState,
    /// The callback came to a browser that did not start this install (no, a forged or another
    /// install's state cookie): someone else's install link was followed.
    #[error("this install was not started in this browser; start it again from SendPersonal")]
    OAuthBrowserMismatch,
    /// Shopify's launch of our app URL is not signed by Shopify, or too old to trust.
    #[error("the Shopify app launch signature is missing, invalid or expired")]
    InvalidShopifyLaunch,
    #[error("the shop is already connected to another SendPersonal account")]
    ShopTaken,
    #[error("Shopify did not grant the read_products scope")]
    ScopeNotGranted,
    #[error("{0} is not connected")]
    NotConnected(&'static str),
    #[error("{vendor} is rate limiting us; retry after {retry_after_secs} s")]
    VendorThrottled {
        vendor: &'static str,
        retry_after_secs: u64,
    },
    #[error("{0} is unavailable right now; retry later")]
    VendorUnavailable(&'static str),
    #[error("the Shopify webhook signature (X-Shopify-Hmac-Sha256) is missing or invalid")]
    InvalidWebhookSignature,
    #[error("{0}")]
    InvalidWebhookBody(String),
    #[error("no catalog has been synced yet; the first sync runs after connecting Shopify (POST /catalog/sync starts one)")]
    CatalogNotSynced,
    #[error("Klaviyo has no such list, segment or profile ({0})")]
    KlaviyoNotFound(String),
    #[error("no run {0} for this account")]
    RunNotFound(String),
    #[error("{0}")]
    RunStateConflict(String),
    #[error("a webhook body may have at most {limit} bytes (what a Lambda invocation holds); this one has {bytes}, so it was not processed. A product change reaches the catalog with the next scheduled sync (every 6 hours)")]
    PayloadTooLarge { limit: usize, bytes: usize },
    #[error("a request body may have at most {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the samples were not ready in time; retry after {retry_after_secs} s")]
    SamplesNotReady { retry_after_secs: u64 },
    #[error("run {0} is still writing this property set; wait for it to finish, cancel it, or choose another property_set")]
    PropertySetInUse(String),
    #[error("invalid settings: {}", .0.join("; "))]
    InvalidSettings(Vec<String>),
    #[error("the Authorization header does not carry this trigger's secret")]
    FlowHookUnauthorized,
    #[error("no active flow trigger {0}")]
    FlowTriggerNotFound(String),
    #[error("{0}")]
    FlowHookBody(String),
    #[error("this flow trigger is paused; resume it to write copy again")]
    FlowTriggerPaused,
    #[error("the merchant's Klaviyo account is not connected")]
    FlowMerchantNotConnected,
    #[error("the property set {0} is already used by a campaign or another flow trigger; choose another")]
    FlowPropertySetTaken(String),
    #[error("we could not take the delivery right now; retry")]
    FlowHookUnavailable,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// When a retry may succeed, after how long (the `Retry-After` header).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::VendorThrottled {
                retry_after_secs, ..
            }
            | ApiError::SamplesNotReady { retry_after_secs } => Some(*retry_after_secs),
            ApiError::FlowHookUnavailable => Some(10),
            _ => None,
        }
    }

    /// The stable slug that ends the problem `type` URI.
    pub fn slug(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::AccountDeleted => "account-deleted",
            ApiError::RouteNotFound(_) => "route-not-found",
            ApiError::InvalidRequest(_) => "invalid-request",
            ApiError::InvalidKlaviyoKey(_) => "invalid-klaviyo-key",
            ApiError::KlaviyoKeyRejected => "klaviyo-key-rejected",
            ApiError::KlaviyoMissingScopes(_) => "klaviyo-missing-scopes",
            ApiError::InvalidShopDomain(_) => "invalid-shop-domain",
            ApiError::InvalidOAuthSignature => "invalid-oauth-signature",
            ApiError::InvalidOAuthState => "invalid-oauth-state",
            ApiError::OAuthBrowserMismatch => "oauth-browser-mismatch",
            ApiError::InvalidShopifyLaunch => "invalid-shopify-launch",
            ApiError::ShopTaken => "shop-already-connected",
            ApiError::ScopeNotGranted => "scope-not-granted",
            ApiError::NotConnected(_) => "not-connected",
            ApiError::VendorThrottled { .. } => "vendor-throttled",
            ApiError::VendorUnavailable(_) => "vendor-unavailable",
            ApiError::InvalidWebhookSignature => "invalid-webhook-signature",
            ApiError::InvalidWebhookBody(_) => "invalid-webhook-body",
            ApiError::CatalogNotSynced => "catalog-not-synced",
            ApiError::KlaviyoNotFound(_) => "klaviyo-not-found",
            ApiError::RunNotFound(_) => "run-not-found",
            ApiError::RunStateConflict(_) => "run-state-conflict",
            ApiError::SamplesNotReady { .. } => "samples-not-ready",
            ApiError::PayloadTooLarge { .. } | ApiError::BodyTooLarge { .. } => "payload-too-large",
            ApiError::PropertySetInUse(_) => "property-set-in-use",
            ApiError::InvalidSettings(_) => "invalid-settings",
            ApiError::FlowHookUnauthorized => "flow-hook-unauthorized",
            ApiError::FlowTriggerNotFound(_) => "flow-trigger-not-found",
            ApiError::FlowHookBody(_) => "invalid-flow-hook-body",
            ApiError::FlowTriggerPaused => "flow-trigger-paused",
            ApiError::FlowMerchantNotConnected => "flow-merchant-not-connected",
            ApiError::FlowPropertySetTaken(_) => "property-set-in-use",
            ApiError::FlowHookUnavailable => "flow-hook-unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthenticated
            | ApiError::AccountDeleted
            | ApiError::InvalidOAuthSignature
            | ApiError::InvalidShopifyLaunch
            | ApiError::InvalidWebhookSignature => 401,
            ApiError::InvalidWebhookBody(_) => 400,
            ApiError::RouteNotFound(_) => 404,
            ApiError::InvalidRequest(_)
            | ApiError::InvalidKlaviyoKey(_)
            | ApiError::InvalidShopDomain(_)
            | ApiError::InvalidOAuthState
            | ApiError::OAuthBrowserMismatch => 400,
            ApiError::ShopTaken | ApiError::NotConnected(_) => 409,
            ApiError::KlaviyoKeyRejected
            | ApiError::KlaviyoMissingScopes(_)
            | ApiError::ScopeNotGranted => 422,
            ApiError::VendorThrottled { .. } | ApiError::SamplesNotReady { .. } => 503,
            ApiError::PayloadTooLarge { .. } | ApiError::BodyTooLarge { .. } => 413,
            ApiError::VendorUnavailable(_) => 502,
            ApiError::RunNotFound(_)
            | ApiError::CatalogNotSynced
            | ApiError::KlaviyoNotFound(_) => 404,
            ApiError::RunStateConflict(_) | ApiError::PropertySetInUse(_) => 409,
            ApiError::InvalidSettings(_) => 400,
            ApiError::FlowHookUnauthorized => 401,
            ApiError::FlowTriggerNotFound(_) => 404,
            ApiError::FlowHookBody(_)
            | ApiError::FlowTriggerPaused
            | ApiError::FlowMerchantNotConnected => 422,
            ApiError::FlowPropertySetTaken(_) => 409,
            ApiError::FlowHookUnavailable => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "Unauthenticated",
            ApiError::AccountDeleted => "Account deleted",
            ApiError::RouteNotFound(_) => "Not found",
            ApiError::InvalidRequest(_) => "Invalid request",
            ApiError::InvalidKlaviyoKey(_) => "Malformed Klaviyo API key",
            ApiError::KlaviyoKeyRejected => "Klaviyo API key rejected",
            ApiError::KlaviyoMissingScopes(_) => "Klaviyo API key is missing scopes",
            ApiError::InvalidShopDomain(_) => "Invalid shop domain",
            ApiError::InvalidOAuthSignature => "Invalid Shopify signature",
            ApiError::InvalidOAuthState => "Invalid OAuth state",
            ApiError::OAuthBrowserMismatch => "Install started in another browser",
            ApiError::InvalidShopifyLaunch => "Invalid Shopify app launch",
            ApiError::ShopTaken => "Shop already connected",
            ApiError::ScopeNotGranted => "Scope not granted",
            ApiError::NotConnected(_) => "Not connected",
            ApiError::VendorThrottled { .. } => "Vendor rate limit",
            ApiError::VendorUnavailable(_) => "Vendor unavailable",
            ApiError::InvalidWebhookSignature => "Invalid webhook signature",
            ApiError::InvalidWebhookBody(_) => "Invalid webhook body",
            ApiError::CatalogNotSynced => "Catalog not synced",
            ApiError::KlaviyoNotFound(_) => "Not found in Klaviyo",
            ApiError::RunNotFound(_) => "Run not found",
            ApiError::RunStateConflict(_) => "Run state conflict",
            ApiError::SamplesNotReady { .. } => "Samples not ready",
            ApiError::PayloadTooLarge { .. } | ApiError::BodyTooLarge { .. } => "Payload too large",
            ApiError::PropertySetInUse(_) => "Property set in use",
            ApiError::InvalidSettings(_) => "Invalid settings",
            ApiError::FlowHookUnauthorized => "Invalid flow webhook secret",
            ApiError::FlowTriggerNotFound(_) => "Flow trigger not found",
            ApiError::FlowHookBody(_) => "Invalid flow webhook body",
            ApiError::FlowTriggerPaused => "Flow trigger paused",
            ApiError::FlowMerchantNotConnected => "Not connected",
            ApiError::FlowPropertySetTaken(_) => "Property set in use",
            ApiError::FlowHookUnavailable => "Try again",
            ApiError::Internal(_) => "Internal error",
        }
    }

    pub fn problem(&self) -> Problem {
        let detail = match self {
            // The cause of an internal error goes to the log, not to the client.
            ApiError::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        Problem {
            r#type: format!("{PROBLEM_BASE}{}", self.slug()),
            title: self.title().to_owned(),
            status: self.status(),
            detail,
            missing_scopes: match self {
                ApiError::KlaviyoMissingScopes(scopes) => Some(scopes.clone()),
                _ => None,
            },
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    pub r#type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_scopes: Option<Vec<String>>,
}

/// An app secret we could not read is our fault, not the caller's: a logged 500 (the next request
/// reads again).
impl From<crate::domain::SecretUnavailable> for ApiError {
    fn from(err: crate::domain::SecretUnavailable) -> Self {
        ApiError::Internal(err.0)
    }
}

/// How a Klaviyo failure reaches the merchant. One mapping for every route that calls Klaviyo.
impl From<crate::klaviyo::KlaviyoError> for ApiError {
    fn from(err: crate::klaviyo::KlaviyoError) -> Self {
        use crate::klaviyo::KlaviyoError;
        match err {
            KlaviyoError::Unauthorized => ApiError::KlaviyoKeyRejected,
            KlaviyoError::MissingScope(scope) => ApiError::KlaviyoMissingScopes(vec![scope]),
            KlaviyoError::Throttled { retry_after } => ApiError::VendorThrottled {
                vendor: "Klaviyo",
                retry_after_secs: retry_after.as_secs().max(1),
            },
            // Klaviyo's summary names the code and field, never a value or the key.
            KlaviyoError::NotFound(summary) => ApiError::KlaviyoNotFound(summary),
            KlaviyoError::Invalid(summary) => {
                ApiError::InvalidRequest(format!("Klaviyo rejected the request ({summary})"))
            }
            KlaviyoError::Transient(_) | KlaviyoError::MaybeApplied(_) => {
                ApiError::VendorUnavailable("Klaviyo")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let problem = ApiError::Internal("dynamodb said: table xyz".into()).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("xyz"));
        assert_eq!(problem.r#type, "https://sendpersonal.app/problems/internal");
    }

    #[test]
    fn missing_scopes_are_listed() {
        let problem = ApiError::KlaviyoMissingScopes(vec!["events:read".into()]).problem();
        assert_eq!(
            problem.missing_scopes.as_deref(),
            Some(&["events:read".to_owned()][..])
        );
        assert_eq!(problem.status, 422);
    }
}
