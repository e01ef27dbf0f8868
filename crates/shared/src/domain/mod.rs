//! Validated domain types: raw input is parsed once at the edge into these, and inside the code
//! only valid values exist. Secrets have a redacted `Debug` and no `Display`.

mod catalog;
mod connection;
mod ids;
mod secret;
mod webhook;
pub mod whole;

pub use catalog::{CatalogProduct, Money};
pub use connection::{
    ConnectionStatus, KlaviyoConnection, ShopifyConnection, SyncReason, SyncRequest,
};
pub use ids::{MerchantId, ShopDomain, Vendor};
pub use secret::{AppSecret, KlaviyoApiKey, Secret, SecretUnavailable};
pub use webhook::{
    is_disconnecting, product_gid, ProductSignal, ProductSignalKind, PurgeReason, PurgeRequest,
    SyncMessage, WebhookTopic, TERMINAL_RUN_STATES,
};

/// Input that failed validation; the message says what is wrong without echoing the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// Seconds since the Unix epoch; every stored timestamp is one of these (or RFC 3339 text for display).
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
