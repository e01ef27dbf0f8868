//! Flow triggers in the app table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | trigger (with its secret hashes) | `FLOWTRIGGER#{id}` | `TRIGGER` |
//! | the merchant's list of triggers | `MERCHANT#{m}` | `FLOWTRIGGER#{id}` |
//! | property-set lock | `MERCHANT#{m}` | `PROPSET#{set}` (`trigger_id`) |
//! | day counters (ADD) | `FLOWTRIGGER#{id}` | `DAY#{yyyy-mm-dd}` (TTL 40 days) |
//! | replay marker | `FLOWTRIGGER#{id}` | `SEEN#{profile}#{event}` (TTL 26 h) |

use super::dynamo::{from_item, get_item, merchant_pk, to_item, Item, EXPIRES_AT};
use super::{describe, written, AwsError};
use crate::domain::MerchantId;
use crate::flows::{counter, day_of, FlowTrigger, SecretHash, TriggerStatus};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct FlowStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn trigger_pk(id: &str) -> String {
    format!("FLOWTRIGGER#{id}")
}
const TRIGGER_SK: &str = "TRIGGER";

/// Creating a trigger can be refused because its property set is taken.
pub enum Created {
    Ok,
    SetInUse,
}

impl FlowStore {
    pub fn from_sdk(aws: &super::Aws, table: impl Into<String>) -> Self {
        Self {
            client: aws.dynamodb(),
            table: table.into(),
        }
    }

    /// The trigger, the merchant's index entry and the property-set lock, in one transaction.
    /// A set that any run or trigger of the merchant ever took is refused.
    pub async fn create(&self, trigger: &FlowTrigger) -> Result<Created, AwsError> {
        let merchant = MerchantId::parse(&trigger.merchant_id)
            .map_err(|e| AwsError::new("encode trigger", e))?;
        let mpk = merchant_pk(&merchant);
        let mut item = to_item(trigger)?;
        item.insert("pk".into(), s(trigger_pk(&trigger.trigger_id)));
        item.insert("sk".into(), s(TRIGGER_SK));
        let index: Item = [
            ("pk".to_owned(), s(&mpk)),
            (
                "sk".to_owned(),
                s(format!("FLOWTRIGGER#{}", trigger.trigger_id)),
            ),
            ("trigger_id".to_owned(), s(&trigger.trigger_id)),
        ]
        .into();
        let lock: Item = [
            ("pk".to_owned(), s(&mpk)),
            (
                "sk".to_owned(),
                s(format!("PROPSET#{}", trigger.property_set.as_str())),
            ),
            ("trigger_id".to_owned(), s(&trigger.trigger_id)),
        ]
        .into();
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))
        };
        let items = vec![put(item)?, put(index)?, put(lock)?];
        Ok(if super::dynamo::transact(&self.client, items).await? {
            Created::Ok
        } else {
            Created::SetInUse
        })
    }

    pub async fn get(&self, trigger_id: &str) -> Result<Option<FlowTrigger>, AwsError> {
        get_item(
            &self.client,
            &self.table,
            trigger_pk(trigger_id),
            TRIGGER_SK,
        )
        .await?
        .map(|mut i| {
            i.remove("pk");
            i.remove("sk");
            from_item(i)
        })
        .transpose()
    }

    /// The merchant's trigger `id` (`None` when it is another merchant's or absent).
    pub async fn get_for(
        &self,
        merchant: &MerchantId,
        trigger_id: &str,
    ) -> Result<Option<FlowTrigger>, AwsError> {
        Ok(self
            .get(trigger_id)
            .await?
            .filter(|t| t.merchant_id == merchant.as_str()))
    }

    pub async fn list(&self, merchant: &MerchantId) -> Result<Vec<FlowTrigger>, AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk and begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(merchant_pk(merchant)))
            .expression_attribute_values(":p", s("FLOWTRIGGER#"))
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", describe(&e)))?;
        let mut triggers = Vec::new();
        for item in out.items() {
            if let Some(id) = item.get("trigger_id").and_then(|v| v.as_s().ok()) {
                if let Some(t) = self.get_for(merchant, id).await? {
                    triggers.push(t);
                }
            }
        }
        triggers.sort_by_key(|t| t.created_at);
        Ok(triggers)
    }

    /// Replace status and secret hashes (pause, resume, rotate, revoke).
    pub async fn update_state(
        &self,
        trigger_id: &str,
        status: TriggerStatus,
        hashes: &[SecretHash],
    ) -> Result<(), AwsError> {
        let hashes = to_item(&serde_json::json!({ "h": hashes }))?
            .remove("h")
            .unwrap_or(AttributeValue::L(vec![]));
        let status = serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(trigger_pk(trigger_id)))
            .key("sk", s(TRIGGER_SK))
            .update_expression("SET #st = :st, secret_hashes = :h")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":h", hashes)
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:UpdateItem", describe(&e)))?;
        Ok(())
    }

    /// Delete the trigger's whole partition (the trigger, its counters, its replay marks),
    /// then its index entry and its property-set lock.
    pub async fn remove_trigger(&self, trigger: &FlowTrigger) -> Result<(), AwsError> {
        let merchant = MerchantId::parse(&trigger.merchant_id)
            .map_err(|e| AwsError::new("decode trigger", e))?;
        let mpk = merchant_pk(&merchant);
        let tpk = trigger_pk(&trigger.trigger_id);
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&tpk))
                .projection_expression("sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Query", describe(&e)))?;
            for item in out.items() {
                if let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) {
                    if sk != TRIGGER_SK {
                        keys.push((tpk.clone(), sk.clone()));
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // The trigger item last: a retry after a failure finds it and finishes.
        keys.push((mpk.clone(), format!("FLOWTRIGGER#{}", trigger.trigger_id)));
        keys.push((mpk, format!("PROPSET#{}", trigger.property_set.as_str())));
        keys.push((tpk, TRIGGER_SK.to_owned()));
        for (pk, sk) in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:DeleteItem", describe(&e)))?;
        }
        Ok(())
    }

    /// Marks (trigger, profile, event) seen by the job accepted at `job_ms`: `false` when
    /// another job (a replayed delivery) marked it within the window. The same job, delivered
    /// again by SQS after a failure, finds its own mark and goes on.
    pub async fn mark_seen(
        &self,
        trigger_id: &str,
        profile_id: &str,
        event_id: &str,
        job_ms: i64,
        now: i64,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(trigger_pk(trigger_id)))
            .item("sk", s(format!("SEEN#{profile_id}#{event_id}")))
            .item("job_ms", n(job_ms))
            .item(EXPIRES_AT, n(now + crate::flows::REPLAY_WINDOW_SECS))
            .condition_expression("attribute_not_exists(pk) or #e < :now or job_ms = :job")
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":job", n(job_ms))
            .send()
            .await;
        written(result, "dynamodb:PutItem")
    }

    /// Counts a job's end once: the replay mark of (trigger, profile, event) is flagged
    /// `counted` in the same transaction as the day counters' ADD, so a job SQS delivers again
    /// after a lost answer is not counted twice. `false` when it was counted already.
    pub async fn count_once(
        &self,
        trigger_id: &str,
        seen: (&str, &str),
        now: i64,
        adds: &[(String, u64)],
    ) -> Result<bool, AwsError> {
        let (profile_id, event_id) = seen;
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s(trigger_pk(trigger_id)))
            .key("sk", s(format!("SEEN#{profile_id}#{event_id}")))
            .update_expression("SET counted = :t")
            .condition_expression("attribute_exists(pk) and attribute_not_exists(counted)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .build()
            .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
        let mut expr = Vec::new();
        let mut day = Update::builder()
            .table_name(&self.table)
            .key("pk", s(trigger_pk(trigger_id)))
            .key("sk", s(format!("DAY#{}", day_of(now))));
        for (i, (name, v)) in adds.iter().enumerate() {
            expr.push(format!("#c{i} :c{i}"));
            day = day
                .expression_attribute_names(format!("#c{i}"), format!("c_{name}"))
                .expression_attribute_values(format!(":c{i}"), n(v));
        }
        let day = day
            .update_expression(format!("ADD {} SET #e = :e", expr.join(", ")))
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":e", n(now + 40 * 86400))
            .build()
            .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
        let items = vec![
            TransactWriteItem::builder().update(mark).build(),
            TransactWriteItem::builder().update(day).build(),
        ];
        super::dynamo::transact(&self.client, items).await
    }

    /// Adds to the day's counters (one UpdateItem), e.g. `[("received", 1), ("written", 1),
    /// ("lat__57", 1)]`.
    pub async fn count(
        &self,
        trigger_id: &str,
        now: i64,
        adds: &[(String, u64)],
    ) -> Result<(), AwsError> {
        if adds.is_empty() {
            return Ok(());
        }
        let mut expr = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(trigger_pk(trigger_id)))
            .key("sk", s(format!("DAY#{}", day_of(now))));
        for (i, (name, v)) in adds.iter().enumerate() {
            expr.push(format!("#c{i} :c{i}"));
            req = req
                .expression_attribute_names(format!("#c{i}"), format!("c_{name}"))
                .expression_attribute_values(format!(":c{i}"), n(v));
        }
        req.update_expression(format!("ADD {} SET #e = :e", expr.join(", ")))
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":e", n(now + 40 * 86400))
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:UpdateItem", describe(&e)))?;
        Ok(())
    }

    /// Day counters from `since_day` on: `(day, name → count)`.
    pub async fn days(
        &self,
        trigger_id: &str,
        since_day: &str,
    ) -> Result<Vec<(String, BTreeMap<String, u64>)>, AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk and sk between :a and :b")
            .expression_attribute_values(":pk", s(trigger_pk(trigger_id)))
            .expression_attribute_values(":a", s(format!("DAY#{since_day}")))
            .expression_attribute_values(":b", s("DAY#9999"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", describe(&e)))?;
        Ok(out
            .items()
            .iter()
            .map(|item| {
                let day = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .map(|d| d.trim_start_matches("DAY#").to_owned())
                    .unwrap_or_default();
                let counts = item
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.strip_prefix("c_")?;
                        let v = v.as_n().ok()?.parse::<u64>().ok()?;
                        Some((name.to_owned(), v))
                    })
                    .collect();
                (day, counts)
            })
            .collect())
    }
}

/// Counter names for a job's end.
pub fn outcome_counter(outcome: &crate::personalize::Outcome) -> String {
    use crate::personalize::Outcome;
    match outcome {
        Outcome::Written => counter::WRITTEN.to_owned(),
        Outcome::Holdout => format!("{}holdout", counter::SKIPPED),
        Outcome::Skipped(r) => format!("{}{}", counter::SKIPPED, r.as_str()),
        Outcome::Failed(r) => format!("{}{}", counter::FAILED, r.as_str()),
    }
}
