//! Product webhooks between scheduled syncs: each is a signal, so the product is re-read from
//! Shopify and upserted into the live generation (the one the connection record names), or
//! tombstoned there when it is deleted or no longer active and published. Every write is
//! conditional on being newer than what is stored, so an old update arriving late never brings
//! a deleted product back. A full sync replaces the generation, tombstones included.
//!
//! The connection's `catalog_size` follows each write that adds or removes a live product. The
//! two writes are not one transaction: a crash between them leaves the count one off (the retry
//! finds its product write already done) until the next full sync counts afresh.

use super::{is_permanent, Handler};
use shared::aws::catalog_store::ProductWrite;
use shared::domain::{now_unix, ConnectionStatus, ProductSignal, ProductSignalKind};
use shared::edge::FunctionError;
use shared::shopify::fetch_product;

/// What one product signal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductOutcome {
    Upserted,
    Removed,
    /// Something newer is already stored.
    Stale,
    /// No connected shop or no catalog yet: the next full sync reads it anyway.
    NotConnected,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Handler {
    pub async fn apply_product_signal(
        &self,
        signal: &ProductSignal,
    ) -> Result<ProductOutcome, FunctionError> {
        let merchant = &signal.merchant_id;
        let connection = match self.store.shopify(merchant).await? {
            Some(c) if c.status == ConnectionStatus::Connected => c,
            _ => return Ok(ProductOutcome::NotConnected),
        };
        let Some(generation) = connection.catalog_generation.clone() else {
            return Ok(ProductOutcome::NotConnected);
        };
        let written = match signal.kind {
            ProductSignalKind::ProductDeleted => {
                // A deletion is final (Shopify never reuses a product id), so it outranks every
                // read made before now, whatever the clocks say about the trigger time.
                let at = now_ms().max(signal.triggered_at_ms);
                (
                    self.catalog
                        .tombstone_product(merchant, &generation, &signal.product_gid, at)
                        .await?,
                    ProductOutcome::Removed,
                )
            }
            ProductSignalKind::ProductChanged => {
                // Taken before the read: whatever we read is at least this recent.
                let read_at = now_ms().max(signal.triggered_at_ms);
                let admin = self.admin_for(merchant, &connection.shop);
                match fetch_product(&admin, &signal.product_gid).await? {
                    Some(product) => (
                        self.catalog
                            .upsert_product(merchant, &generation, &product, read_at)
                            .await?,
                        ProductOutcome::Upserted,
                    ),
                    None => (
                        self.catalog
                            .tombstone_product(merchant, &generation, &signal.product_gid, read_at)
                            .await?,
                        ProductOutcome::Removed,
                    ),
                }
            }
        };
        let outcome = match written.0 {
            ProductWrite::Stale => ProductOutcome::Stale,
            ProductWrite::Written { live_delta } => {
                if live_delta != 0 {
                    self.store
                        .adjust_catalog_size(merchant, &generation, live_delta)
                        .await?;
                }
                written.1
            }
        };
        tracing::info!(merchant = merchant.as_str(), outcome = ?outcome, at = now_unix(), "product webhook applied");
        Ok(outcome)
    }

    pub(crate) async fn handle_product_signal(
        &self,
        signal: &ProductSignal,
    ) -> Result<(), FunctionError> {
        match self.apply_product_signal(signal).await {
            Ok(_) => Ok(()),
            // A revoked grant will not come back by retrying; the purge or the next sync settles it.
            Err(err) if is_permanent(err.as_ref()) => Ok(()),
            Err(err) => Err(err),
        }
    }
}
