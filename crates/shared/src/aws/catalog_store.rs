//! The cached catalog: one item per product under `{merchant}#{generation}`. A sync writes a
//! whole new generation, then the connection record is switched to it in one conditional
//! update, so readers see either the old catalog or the new one, never a mix.

use super::{describe, is_condition_failure, AwsError};
use crate::domain::{CatalogProduct, MerchantId};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// DynamoDB's BatchWriteItem limit.
const BATCH: usize = 25;
/// Batches in flight at once: enough to hide latency, few enough for on-demand capacity.
const CONCURRENCY: usize = 8;

/// What a webhook's conditional product write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductWrite {
    /// Something at least as recent is stored; nothing changed.
    Stale,
    /// Written; how the number of live products moved (-1, 0 or +1), for the connection's
    /// `catalog_size`.
    Written { live_delta: i64 },
}

#[derive(Clone)]
pub struct CatalogStore {
    client: Client,
    table: String,
    requests: Arc<AtomicU64>,
}

fn partition(merchant: &MerchantId, generation: &str) -> String {
    format!("{}#{}", merchant.as_str(), generation)
}

impl CatalogStore {
    pub fn from_sdk(aws: &super::Aws, table: impl Into<String>) -> Self {
        Self::new(aws.dynamodb(), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            requests: Arc::default(),
        }
    }

    /// DynamoDB requests made so far (the benchmark reports requests per product).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub async fn write_generation(
        &self,
        merchant: &MerchantId,
        generation: &str,
        products: &[CatalogProduct],
    ) -> Result<(), AwsError> {
        let pk = partition(merchant, generation);
        let mut writes = Vec::with_capacity(products.len());
        for product in products {
            let doc =
                serde_json::to_string(product).map_err(|e| AwsError::new("encode product", e))?;
            let put = PutRequest::builder()
                .item("pk", AttributeValue::S(pk.clone()))
                .item("sk", AttributeValue::S(product.id.clone()))
                .item("doc", AttributeValue::S(doc))
                .build()
                .map_err(|e| AwsError::new("encode product", e))?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(writes).await
    }

    pub async fn read_generation(
        &self,
        merchant: &MerchantId,
        generation: &str,
    ) -> Result<Vec<CatalogProduct>, AwsError> {
        let items = self
            .query_partition(&partition(merchant, generation), "sk, doc")
            .await?;
        items
            .into_iter()
            .filter_map(|item| item.get("doc").and_then(|d| d.as_s().ok()).cloned())
            .map(|doc| serde_json::from_str(&doc).map_err(|e| AwsError::new("decode product", e)))
            .collect()
    }

    /// Up to `limit` live products of a generation that `keep` accepts, in product-id order,
    /// starting after the id `after` (any string: it is only a position), and whether more
    /// follow. Tombstones are skipped, so a page may take more than one query.
    pub async fn page(
        &self,
        merchant: &MerchantId,
        generation: &str,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&CatalogProduct) -> bool,
    ) -> Result<(Vec<CatalogProduct>, bool), AwsError> {
        let pk = partition(merchant, generation);
        let mut products = Vec::with_capacity(limit + 1);
        let mut after = after.filter(|a| !a.is_empty()).map(str::to_owned);
        // One more than asked for says whether another page exists.
        while products.len() <= limit {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .projection_expression("sk, doc")
                .limit((limit + 1 - products.len()) as i32);
            query = match &after {
                Some(a) => query
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", AttributeValue::S(a.clone())),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Query", describe(&e)))?;
            let items = out.items.unwrap_or_default();
            let Some(last) = items
                .last()
                .and_then(|i| i.get("sk"))
                .and_then(|v| v.as_s().ok())
            else {
                break;
            };
            after = Some(last.clone());
            for item in &items {
                if let Some(doc) = item.get("doc").and_then(|d| d.as_s().ok()) {
                    let product: CatalogProduct = serde_json::from_str(doc)
                        .map_err(|e| AwsError::new("decode product", e))?;
                    if keep(&product) {
                        products.push(product);
                    }
                }
            }
            if out.last_evaluated_key.is_none_or(|k| k.is_empty()) {
                break;
            }
        }
        let more = products.len() > limit;
        products.truncate(limit);
        Ok((products, more))
    }

    /// Delete every product of a generation (an old one after a swap, or a failed sync's partial one).
    pub async fn delete_generation(
        &self,
        merchant: &MerchantId,
        generation: &str,
    ) -> Result<u64, AwsError> {
        let pk = partition(merchant, generation);
        let keys = self.query_partition(&pk, "pk, sk").await?;
        let count = keys.len() as u64;
        let writes = keys
            .into_iter()
            .filter_map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .ok()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect();
        self.batch_write(writes).await?;
        Ok(count)
    }

    /// Webhook upsert into a live generation, unless something at least as recent is there
    /// (a later update, or a tombstone from a delete). `event_at_ms` is when the product was read
    /// from Shopify.
    pub async fn upsert_product(
        &self,
        merchant: &MerchantId,
        generation: &str,
        product: &CatalogProduct,
        event_at_ms: i64,
    ) -> Result<ProductWrite, AwsError> {
        let doc = serde_json::to_string(product).map_err(|e| AwsError::new("encode product", e))?;
        self.put_if_newer(merchant, generation, &product.id, Some(doc), event_at_ms)
            .await
    }

    /// Remove a product from a live generation, leaving a tombstone (no `doc`, so readers skip
    /// it) that stops an older create/update from bringing it back. A full sync replaces it.
    pub async fn tombstone_product(
        &self,
        merchant: &MerchantId,
        generation: &str,
        product_gid: &str,
        event_at_ms: i64,
    ) -> Result<ProductWrite, AwsError> {
        self.put_if_newer(merchant, generation, product_gid, None, event_at_ms)
            .await
    }

    async fn put_if_newer(
        &self,
        merchant: &MerchantId,
        generation: &str,
        product_gid: &str,
        doc: Option<String>,
        event_at_ms: i64,
    ) -> Result<ProductWrite, AwsError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let live_after = i64::from(doc.is_some());
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(partition(merchant, generation)))
            .item("sk", AttributeValue::S(product_gid.to_owned()))
            .item("event_at", AttributeValue::N(event_at_ms.to_string()))
            .condition_expression("attribute_not_exists(event_at) OR event_at < :t")
            .expression_attribute_values(":t", AttributeValue::N(event_at_ms.to_string()))
            // The replaced item says whether the product was live before (a `doc`, no tombstone).
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        request = match doc {
            Some(doc) => request.item("doc", AttributeValue::S(doc)),
            None => request.item("deleted", AttributeValue::Bool(true)),
        };
        match request.send().await {
            Ok(out) => {
                let live_before =
                    i64::from(out.attributes().is_some_and(|old| old.contains_key("doc")));
                Ok(ProductWrite::Written {
                    live_delta: live_after - live_before,
                })
            }
            Err(e) if is_condition_failure(&e) => Ok(ProductWrite::Stale),
            Err(e) => Err(AwsError::new("dynamodb:PutItem", describe(&e))),
        }
    }

    /// Every generation partition of a merchant, live or orphaned (a crashed sync's leftovers):
    /// a filtered scan, since the generation is part of the hash key. Purges only.
    pub async fn merchant_generations(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<String>, AwsError> {
        let prefix = format!("{}#", merchant.as_str());
        let mut generations = std::collections::BTreeSet::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .projection_expression("pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Scan", describe(&e)))?;
            for item in out.items.unwrap_or_default() {
                if let Some(generation) = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix(&prefix))
                {
                    generations.insert(generation.to_owned());
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(generations.into_iter().collect()),
            }
        }
    }

    async fn query_partition(
        &self,
        pk: &str,
        projection: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .projection_expression(projection)
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

    async fn batch_write(&self, writes: Vec<WriteRequest>) -> Result<(), AwsError> {
        let chunks: Vec<Vec<WriteRequest>> =
            writes.chunks(BATCH).map(<[WriteRequest]>::to_vec).collect();
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// One BatchWriteItem, resending unprocessed items with jittered backoff (DynamoDB returns
    /// them when a partition is throttled).
    async fn write_chunk(&self, mut chunk: Vec<WriteRequest>) -> Result<(), AwsError> {
        for attempt in 0..8u32 {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, chunk)
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:BatchWriteItem", describe(&e)))?;
            chunk = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if chunk.is_empty() {
                return Ok(());
            }
            let base = 50u64 << attempt.min(6);
            tokio::time::sleep(Duration::from_millis(base + rand::random::<u64>() % base)).await;
        }
        Err(AwsError::new(
            "dynamodb:BatchWriteItem",
            "items still unprocessed after retries",
        ))
    }
}
