//! Shopify webhook topics we subscribe to, and the ids-only queue messages they turn into.

use super::{ConnectionStatus, MerchantId, ShopDomain, SyncRequest};
use serde::{Deserialize, Serialize};

/// The topics of our subscriptions (template.yaml lists them). Anything else is acknowledged and
/// ignored: Shopify only sends what the app subscribed to, and a non-2xx would be retried for 4 h.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookTopic {
    #[serde(rename = "products/create")]
    ProductsCreate,
    #[serde(rename = "products/update")]
    ProductsUpdate,
    #[serde(rename = "products/delete")]
    ProductsDelete,
    #[serde(rename = "app/uninstalled")]
    AppUninstalled,
    #[serde(rename = "customers/data_request")]
    CustomersDataRequest,
    #[serde(rename = "customers/redact")]
    CustomersRedact,
    #[serde(rename = "shop/redact")]
    ShopRedact,
}

impl WebhookTopic {
    pub const ALL: [WebhookTopic; 7] = [
        Self::ProductsCreate,
        Self::ProductsUpdate,
        Self::ProductsDelete,
        Self::AppUninstalled,
        Self::CustomersDataRequest,
        Self::CustomersRedact,
        Self::ShopRedact,
    ];

    /// The `X-Shopify-Topic` value (case-insensitive, as HTTP headers go).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProductsCreate => "products/create",
            Self::ProductsUpdate => "products/update",
            Self::ProductsDelete => "products/delete",
            Self::AppUninstalled => "app/uninstalled",
            Self::CustomersDataRequest => "customers/data_request",
            Self::CustomersRedact => "customers/redact",
            Self::ShopRedact => "shop/redact",
        }
    }

    /// The mandatory compliance topics about one customer: we hold no customer data, so they
    /// are acknowledged and nothing else happens.
    pub fn is_customer_compliance(self) -> bool {
        matches!(self, Self::CustomersDataRequest | Self::CustomersRedact)
    }
}

/// A product webhook as a sync-queue message: which product of which merchant changed, and when
/// Shopify says it happened. The product itself is re-read from Shopify (webhooks are signals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductSignal {
    pub kind: ProductSignalKind,
    pub merchant_id: MerchantId,
    /// `gid://shopify/Product/{id}`.
    pub product_gid: String,
    /// `X-Shopify-Triggered-At`, milliseconds since the epoch.
    pub triggered_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductSignalKind {
    ProductChanged,
    ProductDeleted,
}

/// Every body the sync queue carries. A product signal has a `kind`; a whole-catalog sync request
/// (the original shape, still parsed as before) has a `reason`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyncMessage {
    Product(ProductSignal),
    Full(SyncRequest),
}

/// `gid://shopify/Product/{n}` from a REST webhook payload's numeric `id`.
pub fn product_gid(id: u64) -> String {
    format!("gid://shopify/Product/{id}")
}

/// A purge asked for by Shopify: the shop (the tenant key of webhooks) and why. No merchant id:
/// the consumer resolves it, and an already purged shop simply finds nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurgeRequest {
    pub shop: ShopDomain,
    pub reason: PurgeReason,
    pub requested_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeReason {
    /// The merchant uninstalled the app; the token is already revoked.
    AppUninstalled,
    /// Shopify's compliance request ~48 h after uninstall: erase anything left for the shop.
    ShopRedact,
}

/// Run states that are over; disconnecting Klaviyo cancels every other run.
pub const TERMINAL_RUN_STATES: [&str; 3] = ["completed", "cancelled", "failed"];

/// True when a purge is under way on this connection (a retry finishes it).
pub fn is_disconnecting(status: ConnectionStatus) -> bool {
    status == ConnectionStatus::Disconnecting
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SyncReason;

    #[test]
    fn topics_round_trip_their_header_values() {
        for topic in WebhookTopic::ALL {
            assert_eq!(WebhookTopic::parse(topic.as_str()), Some(topic));
        }
        assert_eq!(
            WebhookTopic::parse("Products/Update"),
            Some(WebhookTopic::ProductsUpdate)
        );
        assert_eq!(WebhookTopic::parse("orders/create"), None);
    }

    #[test]
    fn old_sync_request_bodies_still_parse() {
        let old = r#"{"merchant_id":"m-1","reason":"scheduled"}"#;
        let parsed: SyncMessage = serde_json::from_str(old).unwrap();
        assert!(matches!(
            parsed,
            SyncMessage::Full(SyncRequest {
                reason: SyncReason::Scheduled,
                ..
            })
        ));
    }

    #[test]
    fn product_signals_are_told_apart_by_kind() {
        let body = r#"{"kind":"product_deleted","merchant_id":"m-1","product_gid":"gid://shopify/Product/7","triggered_at_ms":1}"#;
        let parsed: SyncMessage = serde_json::from_str(body).unwrap();
        assert!(matches!(
            parsed,
            SyncMessage::Product(ProductSignal {
                kind: ProductSignalKind::ProductDeleted,
                ..
            })
        ));
    }
}
