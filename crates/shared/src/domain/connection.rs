use super::{MerchantId, ShopDomain};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// OAuth started, not yet completed.
    Pending,
    Connected,
    /// The vendor rejected our credentials (revoked key, uninstalled app); reconnect to fix.
    Broken,
    /// A disconnect or purge is under way (a retry finishes it); nothing syncs meanwhile.
    Disconnecting,
}

/// What we keep about a merchant's Klaviyo connection: no key (that lives in Secrets Manager).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KlaviyoConnection {
    pub status: ConnectionStatus,
    pub connected_at: i64,
    pub account_id: String,
    pub account_name: String,
}

/// What we keep about a merchant's Shopify connection: no token (Secrets Manager holds it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShopifyConnection {
    pub status: ConnectionStatus,
    pub shop: ShopDomain,
    pub connected_at: i64,
    /// The catalog generation readers see; a sync writes a new one and swaps this atomically.
    pub catalog_generation: Option<String>,
    pub catalog_size: u64,
    pub last_sync_at: Option<i64>,
    pub last_sync_error: Option<String>,
    /// Set while a sync runs: when it started and how many products it has read so far.
    #[serde(default)]
    pub sync_started_at: Option<i64>,
    #[serde(default)]
    pub sync_products_read: Option<u64>,
}

/// The body of a sync-queue message: ids only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub merchant_id: MerchantId,
    pub reason: SyncReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncReason {
    Connected,
    Requested,
    Scheduled,
}
