//! SQS batches with partial failures: each record is handled on its own, concurrently, and only
//! the ids of failed records go back, so SQS redelivers those alone (then the DLQ takes them).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use std::fmt::Display;
use std::future::Future;
use tracing::Instrument;

pub async fn for_each_record<F, Fut, E>(
    event: SqsEvent,
    concurrency: usize,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let handle = &handle;
    let failures: Vec<BatchItemFailure> = stream::iter(event.records)
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            // Instrumented, not entered: records run concurrently on one task, and an entered
            // guard held across an await would put this record's id on another's lines.
            let span = tracing::info_span!("sqs_record", message_id = %id);
            match handle(record).instrument(span).await {
                Ok(()) => None,
                Err(err) => {
                    tracing::warn!(message_id = %id, error = %err, "record failed; SQS will redeliver it");
                    Some(id)
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failed| async move { failed })
        .map(|item_identifier| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = item_identifier;
            failure
        })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    #[tokio::test]
    async fn reports_only_failed_message_ids() {
        let mut event = SqsEvent::default();
        event.records = vec![record("a", "ok"), record("b", "boom"), record("c", "ok")];
        let response = for_each_record(event, 4, |m| async move {
            if m.body.as_deref() == Some("ok") {
                Ok(())
            } else {
                Err("bad body")
            }
        })
        .await;
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, vec!["b"]);
    }
}
