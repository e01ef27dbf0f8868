//! Pooled vendor budgets ([`crate::budget`]) in the app table: one item per bucket and slot,
//! `pk = BUDGET#<bucket>`, `sk = <slot>`, holding the units admitted, each tenant's part and the
//! tenants that waited. Items expire two minutes after their slot. Buckets name a Klaviyo
//! account by its key's fingerprint and tenants by a digest of the merchant id: no secret, no
//! customer data, no merchant id.

use super::{describe, dynamo::EXPIRES_AT, is_condition_failure};
use crate::budget::{SlotStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

pub struct DynamoSlots {
    client: Client,
    table: String,
}

fn pk(bucket: &str) -> AttributeValue {
    AttributeValue::S(format!("BUDGET#{bucket}"))
}
fn sk(slot: u64) -> AttributeValue {
    AttributeValue::S(slot.to_string())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
/// A tenant's part is an attribute of its own, named by a digest of the merchant id: a slot
/// names no merchant, and a deleted account leaves nothing that points back at it.
fn tenant_attr(tenant: &str) -> String {
    format!("t_{}", crate::klaviyo::limits::key_fingerprint(tenant))
}
fn expires(slot_end_hint: u64) -> AttributeValue {
    n(slot_end_hint + 120)
}

impl DynamoSlots {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk(aws: &super::Aws, table: impl Into<String>) -> Self {
        Self::new(aws.dynamodb(), table)
    }
}

#[async_trait]
impl SlotStore for DynamoSlots {
    async fn used(&self, bucket: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        if first > last {
            return Ok(0);
        }
        // Slots are Unix seconds, ten digits for centuries: string order is time order.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", pk(bucket))
            .expression_attribute_values(":first", sk(first))
            .expression_attribute_values(":last", sk(last))
            .projection_expression("used")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| i.get("used")?.as_n().ok()?.parse::<u64>().ok())
            .sum())
    }

    async fn take(
        &self,
        bucket: &str,
        slot: u64,
        tenant: &str,
        units: u64,
        capacity: u64,
        tenant_capacity: u64,
    ) -> Result<bool, StoreError> {
        if units > capacity || units > tenant_capacity {
            return Ok(false);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(bucket))
            .key("sk", sk(slot))
            .update_expression("ADD used :n, #t :n, tenants :tenant SET #exp = :exp")
            .condition_expression(
                "(attribute_not_exists(used) OR used <= :max) AND (attribute_not_exists(#t) OR #t <= :tmax)",
            )
            .expression_attribute_names("#t", tenant_attr(tenant))
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":n", n(units))
            .expression_attribute_values(":max", n(capacity - units))
            .expression_attribute_values(":tmax", n(tenant_capacity - units))
            .expression_attribute_values(":tenant", AttributeValue::Ss(vec![tenant_attr(tenant)]))
            .expression_attribute_values(":exp", expires(crate::domain::now_unix() as u64))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(StoreError(describe(&err))),
        }
    }

    async fn wanted(&self, bucket: &str, slot: u64, tenant: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(bucket))
            .key("sk", sk(slot))
            .update_expression("ADD tenants :tenant SET #exp = :exp")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":tenant", AttributeValue::Ss(vec![tenant_attr(tenant)]))
            .expression_attribute_values(":exp", expires(crate::domain::now_unix() as u64))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(describe(&e)))
    }

    async fn tenants(&self, bucket: &str, slot: u64) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk(bucket))
            .key("sk", sk(slot))
            .projection_expression("tenants")
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(out
            .item()
            .and_then(|i| i.get("tenants"))
            .and_then(|v| v.as_ss().ok())
            .map_or(0, |s| s.len() as u64))
    }
}
