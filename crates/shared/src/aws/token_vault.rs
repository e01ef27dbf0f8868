//! The AWS token vault: a shop connection's token pair in Secrets Manager (one value, so the
//! rotated pair is replaced atomically) and its refresh lock in the app table.

use super::dynamo::AppStore;
use super::secrets::SecretStore;
use crate::shopify::{ShopifyTokens, TokenVault, VaultError};
use async_trait::async_trait;
use std::time::Duration;

pub struct AwsTokenVault {
    secrets: SecretStore,
    store: AppStore,
    secret_name: String,
    lock_name: String,
}

impl AwsTokenVault {
    pub fn new(
        secrets: SecretStore,
        store: AppStore,
        secret_name: String,
        shop: &crate::domain::ShopDomain,
    ) -> Self {
        Self {
            secrets,
            store,
            secret_name,
            lock_name: format!("shopify-refresh#{}", shop.as_str()),
        }
    }
}

fn vault_error(e: impl std::fmt::Display) -> VaultError {
    VaultError(e.to_string())
}

#[async_trait]
impl TokenVault for AwsTokenVault {
    async fn load(&self) -> Result<Option<ShopifyTokens>, VaultError> {
        match self
            .secrets
            .get(&self.secret_name)
            .await
            .map_err(vault_error)?
        {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|_| VaultError("stored token pair is unreadable".into())),
            None => Ok(None),
        }
    }

    async fn store(&self, tokens: &ShopifyTokens) -> Result<(), VaultError> {
        let text = serde_json::to_string(tokens).map_err(vault_error)?;
        self.secrets
            .put(&self.secret_name, &text)
            .await
            .map_err(vault_error)
    }

    async fn try_lock(&self, owner: &str, ttl: Duration) -> Result<bool, VaultError> {
        self.store
            .try_lock(&self.lock_name, owner, ttl.as_secs().max(1) as i64)
            .await
            .map_err(vault_error)
    }

    async fn unlock(&self, owner: &str) -> Result<(), VaultError> {
        self.store
            .unlock(&self.lock_name, owner)
            .await
            .map_err(vault_error)
    }
}
