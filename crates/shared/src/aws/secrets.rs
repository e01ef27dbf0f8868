//! Secrets Manager: the only place a Klaviyo key or a Shopify token pair is kept, one secret per
//! merchant and vendor, encrypted with the stack's KMS key.

use super::{describe, AwsError};
use aws_sdk_secretsmanager::Client;

#[derive(Clone)]
pub struct SecretStore {
    client: Client,
    kms_key_id: Option<String>,
}

impl SecretStore {
    pub fn from_sdk(aws: &super::Aws, kms_key_id: Option<String>) -> Self {
        Self::new(aws.secrets(), kms_key_id)
    }

    pub fn new(client: Client, kms_key_id: Option<String>) -> Self {
        Self { client, kms_key_id }
    }

    /// Create the secret, or store a new version when it exists (the old version is superseded).
    pub async fn put(&self, name: &str, value: &str) -> Result<(), AwsError> {
        let created = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .set_kms_key_id(self.kms_key_id.clone())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if describe(&e).contains("ResourceExists") => self
                .client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::new("secretsmanager:PutSecretValue", describe(&e))),
            Err(e) => Err(AwsError::new("secretsmanager:CreateSecret", describe(&e))),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(out.secret_string),
            Err(e) if describe(&e).contains("ResourceNotFound") => Ok(None),
            Err(e) => Err(AwsError::new("secretsmanager:GetSecretValue", describe(&e))),
        }
    }

    /// When the secret's value was last stored (unix seconds), or None when there is no secret.
    /// Never reads the value (the export says a secret exists, not what it is).
    pub async fn stored_at(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(Some(
                out.last_changed_date()
                    .or(out.created_date())
                    .map_or(0, |d| d.secs()),
            )),
            Err(e) if describe(&e).contains("ResourceNotFound") => Ok(None),
            Err(e) => Err(AwsError::new("secretsmanager:DescribeSecret", describe(&e))),
        }
    }

    /// An app secret (`id`), read on first use and kept for the container's life.
    pub fn app_secret(&self, id: &str) -> crate::domain::AppSecret {
        use crate::domain::{AppSecret, Secret, SecretUnavailable};
        let store = self.clone();
        let id = id.to_owned();
        AppSecret::lazy(move || {
            let (store, id) = (store.clone(), id.clone());
            async move {
                match store.get(&id).await {
                    Ok(Some(value)) => Ok(Secret::new(value)),
                    Ok(None) => Err(SecretUnavailable(format!(
                        "the app secret {id} is not in Secrets Manager"
                    ))),
                    Err(e) => Err(SecretUnavailable(e.to_string())),
                }
            }
        })
    }

    /// The Shopify app's client secret (`SHOPIFY_CLIENT_SECRET_ID`): OAuth callbacks, webhooks
    /// and token refreshes need it.
    pub fn shopify_client_secret(&self, config: &crate::Config) -> crate::domain::AppSecret {
        self.app_secret(&config.shopify_client_secret_id)
    }

    /// The merchant's Klaviyo key, as connect-klaviyo stored it (`{"api_key": "pk_…"}`).
    pub async fn klaviyo_key(
        &self,
        name: &str,
    ) -> Result<Option<crate::domain::KlaviyoApiKey>, AwsError> {
        let Some(text) = self.get(name).await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            AwsError::new(
                "secretsmanager:GetSecretValue",
                "stored Klaviyo secret is unreadable",
            )
        })?;
        let key = value
            .get("api_key")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        crate::domain::KlaviyoApiKey::parse(key)
            .map(Some)
            .map_err(|_| {
                AwsError::new(
                    "secretsmanager:GetSecretValue",
                    "stored Klaviyo key is malformed",
                )
            })
    }

    /// Delete at once, without a recovery window: a disconnected merchant's secret must not linger.
    pub async fn delete(&self, name: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if describe(&e).contains("ResourceNotFound") => Ok(()),
            Err(e) => Err(AwsError::new("secretsmanager:DeleteSecret", describe(&e))),
        }
    }
}
