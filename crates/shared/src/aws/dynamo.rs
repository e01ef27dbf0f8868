//! The app table: one DynamoDB table (pk/sk) holding each merchant's connection records, the
//! shop → merchant map, one-time OAuth states, per-shop locks and the tombstones of deleted
//! accounts. No secret and no customer data is ever written here.

use super::{describe, is_condition_failure, written, AwsError};
use crate::domain::{
    now_unix, KlaviyoConnection, MerchantId, ShopDomain, ShopifyConnection, Vendor,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// The TTL attribute (template.yaml's TimeToLiveSpecification). DynamoDB deletes lazily, so
/// readers also compare it with the clock.
pub const EXPIRES_AT: &str = "expires_at";

#[derive(Clone)]
pub struct AppStore {
    client: Client,
    table: String,
}

/// A one-time OAuth state: which merchant started the install of which shop, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthState {
    pub merchant: MerchantId,
    pub shop: ShopDomain,
    pub expires_at: i64,
}

/// A connection record's sort key.
pub fn connection_sk(vendor: Vendor) -> String {
    format!("CONNECTION#{}", vendor.as_str())
}

/// The partition of everything a merchant owns in the app table.
pub fn merchant_pk(merchant: &MerchantId) -> String {
    format!("MERCHANT#{}", merchant.as_str())
}
fn shop_pk(shop: &ShopDomain) -> String {
    format!("SHOP#{}", shop.as_str())
}

/// How long a deleted account's tombstone refuses its tokens: Cognito's longest access or ID
/// token lifetime (24 h; the template sets 1 h) and an hour for clocks, so every token signed
/// before the deletion has expired when the tombstone goes.
pub const DELETED_ACCOUNT_TTL_SECS: i64 = 25 * 3600;

/// The key of a deleted account's tombstone: a SHA-256 digest of the merchant id, never the id.
/// Merchant ids are Cognito subs (random UUIDs), so the digest cannot be walked back to one;
/// someone who already knows an id can at most learn that it was deleted within the last day.
pub fn deleted_account_key(merchant: &MerchantId) -> (String, String) {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "sendpersonal:deleted-account:{}",
        merchant.as_str()
    ));
    (format!("DELETED#{}", hex::encode(digest)), "ACCOUNT".into())
}
fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}
fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl AppStore {
    pub fn from_sdk(aws: &super::Aws, table: impl Into<String>) -> Self {
        Self::new(aws.dynamodb(), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, AwsError> {
        get_item(&self.client, &self.table, pk, sk).await
    }

    async fn put<T: Serialize>(&self, pk: String, sk: &str, record: &T) -> Result<(), AwsError> {
        let mut item = to_item(record)?;
        item.insert("pk".into(), s(pk));
        item.insert("sk".into(), s(sk));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:PutItem", describe(&e)))?;
        Ok(())
    }

    pub async fn klaviyo(
        &self,
        merchant: &MerchantId,
    ) -> Result<Option<KlaviyoConnection>, AwsError> {
        self.get(merchant_pk(merchant), &connection_sk(Vendor::Klaviyo))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn put_klaviyo(
        &self,
        merchant: &MerchantId,
        conn: &KlaviyoConnection,
    ) -> Result<(), AwsError> {
        self.put(merchant_pk(merchant), &connection_sk(Vendor::Klaviyo), conn)
            .await
    }

    pub async fn shopify(
        &self,
        merchant: &MerchantId,
    ) -> Result<Option<ShopifyConnection>, AwsError> {
        self.get(merchant_pk(merchant), &connection_sk(Vendor::Shopify))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn put_shopify(
        &self,
        merchant: &MerchantId,
        conn: &ShopifyConnection,
    ) -> Result<(), AwsError> {
        self.put(merchant_pk(merchant), &connection_sk(Vendor::Shopify), conn)
            .await
    }

    /// Record `merchant` as the owner of `shop` unless another merchant already owns it.
    /// Returns false when the shop belongs to someone else.
    pub async fn claim_shop(
        &self,
        shop: &ShopDomain,
        merchant: &MerchantId,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(shop_pk(shop)))
            .item("sk", s("OWNER"))
            .item("merchant_id", s(merchant.as_str()))
            .condition_expression("attribute_not_exists(pk) OR merchant_id = :m")
            .expression_attribute_values(":m", s(merchant.as_str()))
            .send()
            .await;
        written(result, "dynamodb:PutItem")
    }

    /// True when the merchant's account was deleted less than [`DELETED_ACCOUNT_TTL_SECS`] ago
    /// (its tombstone is there and unexpired): a token of theirs must then be refused.
    pub async fn account_deleted(&self, merchant: &MerchantId) -> Result<bool, AwsError> {
        let (pk, sk) = deleted_account_key(merchant);
        let expires_at = self.get(pk, &sk).await?.and_then(|item| {
            item.get(EXPIRES_AT)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        });
        Ok(expires_at.is_some_and(|at| at > now_unix()))
    }

    pub async fn shop_owner(&self, shop: &ShopDomain) -> Result<Option<MerchantId>, AwsError> {
        let item = self.get(shop_pk(shop), "OWNER").await?;
        Ok(item
            .and_then(|i| i.get("merchant_id").and_then(|v| v.as_s().ok()).cloned())
            .and_then(|m| MerchantId::parse(&m).ok()))
    }

    pub async fn put_oauth_state(&self, nonce: &str, state: &OAuthState) -> Result<(), AwsError> {
        self.put_oauth(nonce, "STATE", state).await
    }

    /// A one-time ticket for the install's top-level navigation (`GET /connections/shopify/begin`),
    /// kept apart from states: a ticket is never accepted as a state, nor the reverse.
    pub async fn put_oauth_ticket(&self, ticket: &str, state: &OAuthState) -> Result<(), AwsError> {
        self.put_oauth(ticket, "TICKET", state).await
    }

    pub async fn take_oauth_ticket(&self, ticket: &str) -> Result<Option<OAuthState>, AwsError> {
        self.take_oauth(ticket, "TICKET").await
    }

    async fn put_oauth(&self, key: &str, sk: &str, state: &OAuthState) -> Result<(), AwsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("OAUTH#{key}")))
            .item("sk", s(sk))
            .item("merchant_id", s(state.merchant.as_str()))
            .item("shop", s(state.shop.as_str()))
            .item(EXPIRES_AT, n(state.expires_at))
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:PutItem", describe(&e)))?;
        Ok(())
    }

    /// Consume a state: the conditional delete makes it usable exactly once. An expired state is
    /// consumed too, and reported as absent.
    pub async fn take_oauth_state(&self, nonce: &str) -> Result<Option<OAuthState>, AwsError> {
        self.take_oauth(nonce, "STATE").await
    }

    async fn take_oauth(&self, key: &str, sk: &str) -> Result<Option<OAuthState>, AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("OAUTH#{key}")))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if is_condition_failure(&e) => return Ok(None),
            Err(e) => return Err(AwsError::new("dynamodb:DeleteItem", describe(&e))),
        };
        let text = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let expires_at = item
            .get(EXPIRES_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (Ok(merchant), Ok(shop)) = (
            MerchantId::parse(&text("merchant_id")),
            ShopDomain::parse(&text("shop")),
        ) else {
            return Ok(None);
        };
        if expires_at <= now_unix() {
            return Ok(None);
        }
        Ok(Some(OAuthState {
            merchant,
            shop,
            expires_at,
        }))
    }

    /// An UpdateItem on the merchant's Shopify connection item (its key filled in).
    fn update_shopify_connection(
        &self,
        merchant: &MerchantId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(connection_sk(Vendor::Shopify)))
    }

    /// Make `new_generation` the catalog readers see, only if the connection still shows
    /// `old_generation` (so two overlapping syncs cannot both win). Clears the last error.
    pub async fn swap_catalog_generation(
        &self,
        merchant: &MerchantId,
        old_generation: Option<&str>,
        new_generation: &str,
        size: u64,
        synced_at: i64,
    ) -> Result<bool, AwsError> {
        let mut request = self
            .update_shopify_connection(merchant)
            .update_expression(
                "SET catalog_generation = :new, catalog_size = :size, last_sync_at = :at \
                 REMOVE last_sync_error, sync_started_at, sync_products_read",
            )
            .expression_attribute_values(":new", s(new_generation))
            .expression_attribute_values(":size", n(size))
            .expression_attribute_values(":at", n(synced_at))
            .expression_attribute_values(":connected", s("connected"))
            .expression_attribute_names("#status", "status");
        request = match old_generation {
            Some(old) => request
                .condition_expression("#status = :connected AND catalog_generation = :old")
                .expression_attribute_values(":old", s(old)),
            None => request.condition_expression(
                "#status = :connected AND attribute_not_exists(catalog_generation)",
            ),
        };
        written(request.send().await, "dynamodb:UpdateItem")
    }

    /// A webhook added (+1) or removed (-1) a live product of `generation`: move the connection's
    /// `catalog_size` with it, unless a full sync has swapped in another generation meanwhile
    /// (it counted its own) or the count would go below zero. Returns whether it moved.
    pub async fn adjust_catalog_size(
        &self,
        merchant: &MerchantId,
        generation: &str,
        delta: i64,
    ) -> Result<bool, AwsError> {
        let result = self
            .update_shopify_connection(merchant)
            .update_expression("ADD catalog_size :delta")
            .condition_expression("catalog_generation = :generation AND catalog_size >= :floor")
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":generation", s(generation))
            .expression_attribute_values(":floor", n((-delta).max(0)))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem")
    }

    /// Show a failed sync on the connection; the catalog generation is left as it was.
    pub async fn record_sync_error(
        &self,
        merchant: &MerchantId,
        message: &str,
        at: i64,
    ) -> Result<(), AwsError> {
        let result = self
            .update_shopify_connection(merchant)
            .update_expression("SET last_sync_error = :err, last_sync_attempt_at = :at REMOVE sync_started_at, sync_products_read")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":err", s(message))
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()), // disconnected meanwhile: nothing to show
            Err(e) => Err(AwsError::new("dynamodb:UpdateItem", describe(&e))),
        }
    }

    /// Show a running sync's progress on the connection (`GET /connections`).
    pub async fn record_sync_progress(
        &self,
        merchant: &MerchantId,
        started_at: i64,
        products_read: u64,
    ) -> Result<(), AwsError> {
        let result = self
            .update_shopify_connection(merchant)
            .update_expression("SET sync_started_at = :start, sync_products_read = :read")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":start", n(started_at))
            .expression_attribute_values(":read", n(products_read))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(AwsError::new("dynamodb:UpdateItem", describe(&e))),
        }
    }

    /// Every merchant with a connected shop (for the scheduled re-sync).
    pub async fn merchants_with_connected_shop(&self) -> Result<Vec<MerchantId>, AwsError> {
        let mut merchants = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk AND #status = :connected")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":sk", s(connection_sk(Vendor::Shopify)))
                .expression_attribute_values(":connected", s("connected"))
                .projection_expression("pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Scan", describe(&e)))?;
            for item in out.items.unwrap_or_default() {
                if let Some(id) = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("MERCHANT#"))
                    .and_then(|m| MerchantId::parse(m).ok())
                {
                    merchants.push(id);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(merchants),
            }
        }
    }

    /// Take a named lock (e.g. a shop's token refresh) unless an unexpired one is held by another.
    pub async fn try_lock(&self, name: &str, owner: &str, ttl_secs: i64) -> Result<bool, AwsError> {
        let now = now_unix();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("LOCK#{name}")))
            .item("sk", s("LOCK"))
            .item("owner", s(owner))
            .item(EXPIRES_AT, n(now + ttl_secs))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        written(result, "dynamodb:PutItem")
    }

    pub async fn unlock(&self, name: &str, owner: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("LOCK#{name}")))
            .key("sk", s("LOCK"))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()), // expired and taken over: not ours to delete
            Err(e) => Err(AwsError::new("dynamodb:DeleteItem", describe(&e))),
        }
    }
}

/// One item of a pk/sk table, read consistently (callers act on what they read).
/// One transaction: `false` when a condition refused it (nothing was written).
pub(crate) async fn transact(
    client: &Client,
    items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> Result<bool, AwsError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if refused_by_condition(&e) => Ok(false),
        Err(e) => Err(AwsError::new("dynamodb:TransactWriteItems", describe(&e))),
    }
}

/// Whether a transaction was cancelled by its conditions alone. DynamoDB also cancels one for a
/// conflict with a concurrent write to the same item, throttling or a validation error; those
/// wrote nothing either, but the caller must retry them, not read them as "already done" (a
/// batch's count taken for a duplicate would be lost).
fn refused_by_condition(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> bool {
    err.as_service_error()
        .and_then(cancelled_by_conditions_only)
        // No reasons given: only the message tells.
        .unwrap_or_else(|| is_condition_failure(err))
}

/// `Some(true)` when every reason of a cancelled transaction is a failed condition (or none),
/// `Some(false)` when any other reason cancelled it, `None` when it names no reasons.
fn cancelled_by_conditions_only(
    err: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Option<bool> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    let E::TransactionCanceledException(cancelled) = err else {
        return Some(false);
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    if codes.is_empty() {
        return None;
    }
    Some(
        codes.contains(&"ConditionalCheckFailed")
            && codes
                .iter()
                .all(|c| matches!(*c, "None" | "ConditionalCheckFailed")),
    )
}

pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    pk: String,
    sk: &str,
) -> Result<Option<Item>, AwsError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AwsError::new("dynamodb:GetItem", describe(&e)))?;
    Ok(out.item)
}

/// A record as DynamoDB attributes, through its serde form (so the record types stay plain).
pub fn to_item<T: Serialize>(record: &T) -> Result<Item, AwsError> {
    match serde_json::to_value(record).map_err(|e| AwsError::new("encode item", e))? {
        // Absent rather than NULL, so `attribute_not_exists` conditions mean "not set".
        serde_json::Value::Object(map) => Ok(map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, to_attr(v)))
            .collect()),
        _ => Err(AwsError::new("encode item", "record is not an object")),
    }
}

pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, AwsError> {
    let map = item.into_iter().map(|(k, v)| (k, from_attr(v))).collect();
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| AwsError::new("decode item", e))
}

fn to_attr(value: serde_json::Value) -> AttributeValue {
    use serde_json::Value;
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(num) => AttributeValue::N(num.to_string()),
        Value::String(text) => AttributeValue::S(text),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(to_attr).collect()),
        Value::Object(map) => {
            AttributeValue::M(map.into_iter().map(|(k, v)| (k, to_attr(v))).collect())
        }
    }
}

fn from_attr(value: AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::N(num) => num
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| num.parse::<f64>().map(Value::from))
            .unwrap_or(Value::Null),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::L(items) => Value::Array(items.into_iter().map(from_attr).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, from_attr(v))).collect())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cancellation_by_conditions_alone_reads_as_refused() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
        use aws_sdk_dynamodb::types::{error::TransactionCanceledException, CancellationReason};
        let cancelled = |codes: &[&str]| {
            let mut e = TransactionCanceledException::builder();
            for code in codes {
                e = e.cancellation_reasons(CancellationReason::builder().code(*code).build());
            }
            E::TransactionCanceledException(e.build())
        };
        let refused = |codes: &[&str]| cancelled_by_conditions_only(&cancelled(codes));
        assert_eq!(refused(&["None", "ConditionalCheckFailed"]), Some(true));
        assert_eq!(refused(&["ConditionalCheckFailed"]), Some(true));
        // Retryable: nothing was written, and nothing was decided either.
        assert_eq!(refused(&["None", "TransactionConflict"]), Some(false));
        assert_eq!(
            refused(&["ConditionalCheckFailed", "ThrottlingError"]),
            Some(false)
        );
        assert_eq!(refused(&["ValidationError", "None"]), Some(false));
        assert_eq!(refused(&[]), None, "no reasons: the message decides");
    }

    #[test]
    fn a_deleted_accounts_tombstone_key_does_not_contain_the_merchant_id() {
        let merchant = MerchantId::parse("0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21").unwrap();
        let (pk, sk) = deleted_account_key(&merchant);
        assert!(!pk.contains(merchant.as_str()) && !sk.contains(merchant.as_str()));
        assert!(!pk.contains("0f6e2a3c"), "not even a part of it: {pk}");
        assert_eq!((pk.clone(), sk), deleted_account_key(&merchant), "stable");
        let other = MerchantId::parse("7a1c9e2b-3d4f-4a5b-9c8d-1e2f3a4b5c6d").unwrap();
        assert_ne!(pk, deleted_account_key(&other).0, "one per merchant");
    }
}
