//! The purge audit log: one record per purge saying what kinds of data were deleted, how many,
//! when and why. Its key is HMAC-SHA256(pepper, merchant id): the record holds no merchant id,
//! no shop domain, no secret and no personal data, yet with the pepper (a stack secret) an
//! operator can still answer "was merchant X's data deleted, and when?".

use super::{describe, is_condition_failure, AwsError};
use crate::domain::{rfc3339, AppSecret, MerchantId};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// Audit records are kept three years, then DynamoDB's TTL removes them.
pub const AUDIT_RETENTION_SECS: i64 = 3 * 365 * 24 * 3600;

#[derive(Clone)]
pub struct AuditLog {
    client: Client,
    table: String,
    pepper: AppSecret,
}

/// One purge: `action` (e.g. `disconnect_shopify`), what triggered it (`api`, `webhook`), and
/// the number of items of each kind deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub action: &'static str,
    pub trigger: &'static str,
    pub deleted: BTreeMap<&'static str, u64>,
    pub at: i64,
}

/// The audit key of a subject (`merchant:{id}` or `shop:{domain}`): hex HMAC-SHA256 with the pepper.
pub fn subject_key(pepper: &str, subject: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.as_bytes())
        .expect("HMAC takes keys of any size");
    mac.update(subject.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn merchant_subject(merchant: &MerchantId) -> String {
    format!("merchant:{}", merchant.as_str())
}

impl AuditLog {
    pub fn new(client: Client, table: impl Into<String>, pepper: AppSecret) -> Self {
        Self {
            client,
            table: table.into(),
            pepper,
        }
    }

    /// Have the pepper in hand (read on first use). A purge asks before it deletes anything, so
    /// an unreadable pepper fails the purge whole instead of after the deletions, which would
    /// leave them without their record (the retry finds nothing to delete and records nothing).
    pub async fn ready(&self) -> Result<(), AwsError> {
        self.pepper().await.map(|_| ())
    }

    async fn pepper(&self) -> Result<&crate::domain::Secret, AwsError> {
        self.pepper
            .get()
            .await
            .map_err(|e| AwsError::new("secretsmanager:GetSecretValue", e))
    }

    /// Write one entry. The sort key is the purge's start time and action, so a retried purge
    /// that already wrote its record does not write a second one.
    pub async fn record(&self, subject: &str, entry: &AuditEntry) -> Result<(), AwsError> {
        let pepper = self.pepper().await?;
        let deleted = entry
            .deleted
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::N(v.to_string())))
            .collect();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                AttributeValue::S(subject_key(pepper.expose(), subject)),
            )
            .item(
                "sk",
                AttributeValue::S(format!("{}#{}", rfc3339(entry.at), entry.action)),
            )
            .item("action", AttributeValue::S(entry.action.to_owned()))
            .item("trigger", AttributeValue::S(entry.trigger.to_owned()))
            .item("deleted", AttributeValue::M(deleted))
            .item("at", AttributeValue::N(entry.at.to_string()))
            .item(
                "expires_at",
                AttributeValue::N((entry.at + AUDIT_RETENTION_SECS).to_string()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(AwsError::new("dynamodb:PutItem", describe(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_the_pepper_and_hides_the_id() {
        let a = subject_key("pepper-a", "merchant:m-123");
        assert_ne!(a, subject_key("pepper-b", "merchant:m-123"));
        assert_eq!(a, subject_key("pepper-a", "merchant:m-123"));
        assert!(!a.contains("m-123"));
        assert_eq!(a.len(), 64);
    }
}
