//! The app-table side of leaving no trace: finding and deleting everything a merchant or a shop
//! left behind, cancelling live runs, and the webhook dedupe markers. Every operation is
//! idempotent: deleting what is already gone counts 0 and succeeds.

use super::dynamo::{deleted_account_key, from_item, AppStore, Item, EXPIRES_AT};
use super::{describe, is_condition_failure, written, AwsError};
use crate::domain::{now_unix, MerchantId, ShopDomain, Vendor, TERMINAL_RUN_STATES};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::stream::{self, StreamExt, TryStreamExt};

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub use super::dynamo::{connection_sk, merchant_pk};

/// The key of a shop's token-refresh lock (`AwsTokenVault`'s lock, taken through
/// [`AppStore::try_lock`]): it expires by itself, but a purge or a shop switch need not leave it.
pub fn refresh_lock_key(shop: &ShopDomain) -> (String, String) {
    (
        format!("LOCK#shopify-refresh#{}", shop.as_str()),
        "LOCK".into(),
    )
}

/// The key of an item, for deleting it.
pub fn key_of(item: &Item) -> Option<(String, String)> {
    let pk = item.get("pk")?.as_s().ok()?.clone();
    let sk = item.get("sk")?.as_s().ok()?.clone();
    Some((pk, sk))
}

impl AppStore {
    /// Mark a connection as being disconnected (syncs and swaps check for `connected`) and
    /// return when the purge started (kept across retries). None when there is no record.
    pub async fn mark_disconnecting(
        &self,
        merchant: &MerchantId,
        vendor: Vendor,
    ) -> Result<Option<i64>, AwsError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(connection_sk(vendor)))
            .update_expression("SET #status = :d, purging_at = if_not_exists(purging_at, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":d", s("disconnecting"))
            .expression_attribute_values(":now", AttributeValue::N(now_unix().to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.and_then(|a| {
                a.get("purging_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
            })),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(AwsError::new("dynamodb:UpdateItem", describe(&e))),
        }
    }

    /// Delete one item; true when it existed.
    pub async fn delete_key(&self, pk: &str, sk: &str) -> Result<bool, AwsError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", s(pk))
            .key("sk", s(sk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:DeleteItem", describe(&e)))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Delete many items (a few at a time); returns how many existed.
    pub async fn delete_keys(&self, keys: Vec<(String, String)>) -> Result<u64, AwsError> {
        let deleted: Vec<bool> = stream::iter(keys)
            .map(|(pk, sk)| async move { self.delete_key(&pk, &sk).await })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(deleted.into_iter().filter(|d| *d).count() as u64)
    }

    /// Release `shop` if (and only if) `merchant` owns it; true when a mapping was deleted.
    pub async fn release_shop(
        &self,
        shop: &ShopDomain,
        merchant: &MerchantId,
    ) -> Result<bool, AwsError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .key("pk", s(format!("SHOP#{}", shop.as_str())))
            .key("sk", s("OWNER"))
            .condition_expression("merchant_id = :m")
            .expression_attribute_values(":m", s(merchant.as_str()))
            .send()
            .await;
        written(result, "dynamodb:DeleteItem")
    }

    /// Every item of one partition (a merchant's `MERCHANT#…`, a run's `RUNBATCH#…`).
    pub async fn partition_items(&self, pk: &str) -> Result<Vec<Item>, AwsError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Query", describe(&e)))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Keys of items matching a filter over the whole table (rare purges only: OAuth states are
    /// keyed by their nonce, a purged shop's connection by its merchant).
    pub async fn scan_keys(
        &self,
        filter: &str,
        values: Vec<(&str, String)>,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client()
                .scan()
                .table_name(self.table())
                .filter_expression(filter)
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                request = request.expression_attribute_values(*name, s(value.clone()));
            }
            let out = request
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Scan", describe(&e)))?;
            keys.extend(out.items.unwrap_or_default().iter().filter_map(key_of));
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(keys),
            }
        }
    }

    /// Pending OAuth states a merchant started (they expire in minutes, but a purge does not wait).
    pub async fn oauth_state_keys(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<(String, String)>, AwsError> {
        self.scan_keys(
            "begins_with(pk, :o) AND merchant_id = :m",
            vec![(":o", "OAUTH#".into()), (":m", merchant.as_str().into())],
        )
        .await
    }

    /// Leave the tombstone of a deleted account (no merchant id in it: the key is a digest, see
    /// [`deleted_account_key`]) so that its still-valid tokens are refused until they expire.
    /// The first deletion's tombstone stands: a retry neither renews nor rewrites it. Returns
    /// whether this call wrote it.
    pub async fn mark_account_deleted(
        &self,
        merchant: &MerchantId,
        ttl_secs: i64,
    ) -> Result<bool, AwsError> {
        let (pk, sk) = deleted_account_key(merchant);
        let now = now_unix();
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item(EXPIRES_AT, AttributeValue::N((now + ttl_secs).to_string()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        written(result, "dynamodb:PutItem")
    }

    /// Take back a tombstone this deletion wrote for an account that turned out not to exist.
    pub async fn unmark_account_deleted(&self, merchant: &MerchantId) -> Result<bool, AwsError> {
        let (pk, sk) = deleted_account_key(merchant);
        self.delete_key(&pk, &sk).await
    }

    /// Merchants whose Shopify connection record names `shop` (for shop/redact after the
    /// shop → merchant mapping is already gone).
    pub async fn merchants_naming_shop(
        &self,
        shop: &ShopDomain,
    ) -> Result<Vec<MerchantId>, AwsError> {
        let keys = self
            .scan_keys(
                "sk = :sk AND shop = :shop",
                vec![
                    (":sk", connection_sk(Vendor::Shopify)),
                    (":shop", shop.as_str().into()),
                ],
            )
            .await?;
        Ok(keys
            .into_iter()
            .filter_map(|(pk, _)| {
                pk.strip_prefix("MERCHANT#")
                    .and_then(|m| MerchantId::parse(m).ok())
            })
            .collect())
    }

    /// Cancel every run of the merchant that is not over, saying why. Conditional on the state
    /// read, so a run that completes meanwhile keeps its real ending. Returns how many.
    pub async fn cancel_live_runs(
        &self,
        merchant: &MerchantId,
        reason: &str,
    ) -> Result<u64, AwsError> {
        let mut cancelled = 0;
        for item in self.partition_items(&merchant_pk(merchant)).await? {
            let Some((pk, sk)) = key_of(&item) else {
                continue;
            };
            let Some(state) = item.get("state").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if !sk.starts_with("RUN#") || TERMINAL_RUN_STATES.contains(&state.as_str()) {
                continue;
            }
            let result = self
                .client()
                .update_item()
                .table_name(self.table())
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression(
                    "SET #state = :cancelled, state_reason = :reason, cancelled_at = :now",
                )
                .condition_expression("#state = :seen")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":cancelled", s("cancelled"))
                .expression_attribute_values(":reason", s(reason))
                .expression_attribute_values(":seen", s(state.clone()))
                .expression_attribute_values(":now", AttributeValue::N(now_unix().to_string()))
                .send()
                .await;
            match result {
                Ok(_) => cancelled += 1,
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(AwsError::new("dynamodb:UpdateItem", describe(&e))),
            }
        }
        Ok(cancelled)
    }

    /// Every item under the merchant's partition as plain JSON (the export).
    pub async fn merchant_records(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<serde_json::Value>, AwsError> {
        self.partition_items(&merchant_pk(merchant))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Remember a webhook delivery by Shopify's event id (nothing else: no shop, no merchant).
    /// False when it was already seen, i.e. this is a retry or a duplicate.
    pub async fn mark_webhook_seen(&self, event_id: &str, ttl_secs: i64) -> Result<bool, AwsError> {
        let now = now_unix();
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", s(format!("WEBHOOK#{event_id}")))
            .item("sk", s("EVENT"))
            .item(EXPIRES_AT, AttributeValue::N((now + ttl_secs).to_string()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        written(result, "dynamodb:PutItem")
    }

    /// Forget a delivery whose work could not be queued, so Shopify's retry is processed.
    pub async fn forget_webhook(&self, event_id: &str) -> Result<(), AwsError> {
        self.delete_key(&format!("WEBHOOK#{event_id}"), "EVENT")
            .await
            .map(|_| ())
    }
}
