//! SQS producer. Message bodies carry ids only, never anything a person could be recognised by.

use super::{describe, AwsError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use serde::Serialize;

#[derive(Clone)]
pub struct Queue {
    client: Client,
    url: String,
}

impl Queue {
    pub fn from_sdk(aws: &super::Aws, url: impl Into<String>) -> Self {
        Self::new(aws.sqs(), url)
    }

    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub async fn send<T: Serialize>(&self, message: &T) -> Result<(), AwsError> {
        self.send_with(message, None, 0).await
    }

    /// Send with a fair-queue tenant (`MessageGroupId` on a standard queue: SQS keeps one noisy
    /// tenant's backlog from delaying the others) and/or a delay of up to 900 s.
    pub async fn send_with<T: Serialize>(
        &self,
        message: &T,
        tenant: Option<&str>,
        delay_secs: u32,
    ) -> Result<(), AwsError> {
        let body =
            serde_json::to_string(message).map_err(|e| AwsError::new("encode message", e))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_group_id(tenant.map(str::to_owned))
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(|e| AwsError::new("sqs:SendMessage", describe(&e)))?;
        Ok(())
    }

    /// Send many messages, ten per request (SQS's batch limit); fails if any entry failed.
    pub async fn send_all<T: Serialize>(&self, messages: &[T]) -> Result<(), AwsError> {
        for chunk in messages.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, message) in chunk.iter().enumerate() {
                let body = serde_json::to_string(message)
                    .map_err(|e| AwsError::new("encode message", e))?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| AwsError::new("encode message", e))?;
                entries.push(entry);
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::new("sqs:SendMessageBatch", describe(&e)))?;
            if !out.failed.is_empty() {
                return Err(AwsError::new(
                    "sqs:SendMessageBatch",
                    format!("{} entries failed", out.failed.len()),
                ));
            }
        }
        Ok(())
    }
}

/// The queues a run's batches go on: the shared work queue, and the express queue that small
/// runs take (`WorkBatch::express`) so they never wait for a container behind a big run.
#[derive(Clone)]
pub struct WorkQueues {
    work: Queue,
    express: Option<Queue>,
}

impl WorkQueues {
    pub fn from_config(aws: &super::Aws, config: &crate::Config) -> Self {
        Self {
            work: Queue::from_sdk(aws, &config.work_queue_url),
            express: config
                .express_work_queue_url
                .as_ref()
                .map(|url| Queue::from_sdk(aws, url)),
        }
    }

    /// Send `batch` to its queue, with its merchant as the fair-queue tenant (SQS serves a quiet
    /// merchant's batches without waiting behind a busy merchant's backlog).
    pub async fn send(
        &self,
        batch: &crate::personalize::run::WorkBatch,
        delay_secs: u32,
    ) -> Result<(), AwsError> {
        let tenant = Some(batch.merchant_id.as_str());
        match (&self.express, batch.express) {
            (Some(express), true) => express.send_with(batch, tenant, delay_secs).await,
            _ => self.work.send_with(batch, tenant, delay_secs).await,
        }
    }
}
