//! SQS event source mappings, locally: pollers receive up to `BatchSize` messages, invoke the
//! function with an `SqsEvent` shaped like Lambda's, delete what succeeded and hand back what
//! failed. With `ReportBatchItemFailures` only the ids in `batchItemFailures` fail; an invocation
//! error (or a malformed response) fails the whole batch, as Lambda does.
//!
//! One deliberate difference: Lambda leaves a failed message invisible until its
//! `VisibilityTimeout` runs out; locally its visibility is cut to 1 s so retries (and moto's
//! redrive to the DLQ after `maxReceiveCount` receives) happen in seconds, not minutes.

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::error::aws_message;
use crate::invoker::Invoker;

/// Seconds a failed message stays invisible before the next local retry.
pub const RETRY_VISIBILITY_SECS: i32 = 1;
/// Pollers per mapping when `ScalingConfig.MaximumConcurrency` is not set.
pub const DEFAULT_POLLERS: u32 = 2;

#[derive(Clone, Debug)]
pub struct Mapping {
    pub function: String,
    pub queue_logical_id: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    pub pollers: u32,
}

pub(crate) fn spawn_pollers(
    mappings: &[Mapping],
    sqs: aws_sdk_sqs::Client,
    invoker: Arc<Invoker>,
    region: String,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for mapping in mappings {
        let mapping = Arc::new(mapping.clone());
        for _ in 0..mapping.pollers.max(1) {
            let poller = Poller {
                mapping: mapping.clone(),
                sqs: sqs.clone(),
                invoker: invoker.clone(),
                region: region.clone(),
            };
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    tokio::select! {
                        _ = poller.once() => {}
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
    }
    tasks
}

struct Poller {
    mapping: Arc<Mapping>,
    sqs: aws_sdk_sqs::Client,
    invoker: Arc<Invoker>,
    region: String,
}

impl Poller {
    async fn once(&self) {
        let m = &self.mapping;
        let received = self
            .sqs
            .receive_message()
            .queue_url(&m.queue_url)
            .max_number_of_messages(m.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = %m.queue_logical_id, error = %aws_message(&e), "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        };
        if messages.is_empty() {
            return;
        }
        let _slot = self.invoker.begin();
        let event = sqs_event(&messages, &m.queue_arn, &self.region);
        let all: HashSet<String> = messages
            .iter()
            .filter_map(|msg| msg.message_id.clone())
            .collect();
        let failed = match self.invoker.invoke(&m.function, event).await {
            Ok(output) if m.report_batch_item_failures => failed_ids(&output, &all).unwrap_or_else(|why| {
                tracing::warn!(function = %m.function, %why, "invalid partial batch response; the whole batch fails");
                all.clone()
            }),
            Ok(_) => HashSet::new(),
            Err(e) => {
                tracing::warn!(function = %m.function, error = %e, "invocation failed; the whole batch will be retried");
                all.clone()
            }
        };
        self.settle(&messages, &failed).await;
    }

    async fn settle(&self, messages: &[Message], failed: &HashSet<String>) {
        let m = &self.mapping;
        let (retry, done): (Vec<&Message>, Vec<&Message>) = messages.iter().partition(|msg| {
            msg.message_id
                .as_ref()
                .is_some_and(|id| failed.contains(id))
        });
        if !done.is_empty() {
            let entries = done
                .iter()
                .enumerate()
                .filter_map(|(i, msg)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(msg.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .sqs
                .delete_message_batch()
                .queue_url(&m.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(queue = %m.queue_logical_id, error = %aws_message(&e), "DeleteMessageBatch failed");
            }
        }
        if !retry.is_empty() {
            let entries = retry
                .iter()
                .enumerate()
                .filter_map(|(i, msg)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(msg.receipt_handle.clone().unwrap_or_default())
                        .visibility_timeout(RETRY_VISIBILITY_SECS)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&m.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(queue = %m.queue_logical_id, error = %aws_message(&e), "ChangeMessageVisibilityBatch failed");
            }
        }
    }
}

/// The ids a partial batch response names. `null`, `{}` or an empty list mean all succeeded;
/// an empty or unknown identifier makes the response invalid (Lambda then fails the batch).
pub fn failed_ids(output: &Value, batch: &HashSet<String>) -> Result<HashSet<String>, String> {
    let failures = match output {
        Value::Null => return Ok(HashSet::new()),
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(HashSet::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err("batchItemFailures is not a list".into()),
        },
        _ => return Err("the response is not an object".into()),
    };
    failures
        .iter()
        .map(|f| {
            let id = f
                .get("itemIdentifier")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty());
            match id {
                Some(id) if batch.contains(id) => Ok(id.to_owned()),
                Some(id) => Err(format!("itemIdentifier {id:?} is not in the batch")),
                None => Err("a batch item failure has no itemIdentifier".into()),
            }
        })
        .collect()
}

/// The `SqsEvent` Lambda delivers for these messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|msg| {
            let attributes: Map<String, Value> = msg
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect();
            let b64 = |blob: &aws_sdk_sqs::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(blob.as_ref());
            let message_attributes: Map<String, Value> = msg
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, a)| {
                    let mut v = json!({
                        "stringListValues": a.string_list_values(),
                        "binaryListValues": a.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
                        "dataType": a.data_type(),
                    });
                    if let Some(s) = a.string_value() {
                        v["stringValue"] = json!(s);
                    }
                    if let Some(b) = a.binary_value() {
                        v["binaryValue"] = json!(b64(b));
                    }
                    (name.clone(), v)
                })
                .collect();
            let mut record = json!({
                "messageId": msg.message_id(),
                "receiptHandle": msg.receipt_handle(),
                "body": msg.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": msg.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            });
            if let Some(md5) = msg.md5_of_message_attributes() {
                record["md5OfMessageAttributes"] = json!(md5);
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsEvent;
    use aws_sdk_sqs::types::MessageAttributeValue;

    fn batch(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn partial_batch_response_names_only_the_failed_ids() {
        let out = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(
            failed_ids(&out, &batch(&["a", "b"])).unwrap(),
            batch(&["b"])
        );
        assert!(
            failed_ids(&json!({"batchItemFailures": []}), &batch(&["a"]))
                .unwrap()
                .is_empty()
        );
        assert!(failed_ids(&Value::Null, &batch(&["a"])).unwrap().is_empty());
    }

    #[test]
    fn unknown_or_empty_identifiers_invalidate_the_response() {
        let unknown = json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]});
        assert!(failed_ids(&unknown, &batch(&["a"])).is_err());
        let empty = json!({"batchItemFailures": [{"itemIdentifier": ""}]});
        assert!(failed_ids(&empty, &batch(&["a"])).is_err());
    }

    #[test]
    fn event_deserializes_as_the_lambda_sqs_event() {
        let msg = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("{\"run\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("batch")
                    .build()
                    .unwrap(),
            )
            .build();
        let event = sqs_event(&[msg], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1");
        let typed: SqsEvent = serde_json::from_value(event.clone()).unwrap();
        let r = &typed.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m-1"));
        assert_eq!(r.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            r.message_attributes["kind"].string_value.as_deref(),
            Some("batch")
        );
        assert_eq!(
            r.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:q")
        );
        assert_eq!(event["Records"][0]["eventSource"], "aws:sqs");
    }
}
