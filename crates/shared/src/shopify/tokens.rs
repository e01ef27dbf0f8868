//! Expiring offline tokens: the access token lives an hour and every refresh rotates the refresh
//! token. The pair is persisted atomically (one secret value) and refreshes are serialised per
//! shop through a lock, so two containers never spend the same refresh token.

use crate::domain::Secret;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The token pair as Secrets Manager stores it (one JSON value, replaced whole).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShopifyTokens {
    pub access_token: Secret,
    /// Unix seconds.
    pub access_expires_at: i64,
    pub refresh_token: Secret,
    pub refresh_expires_at: i64,
    pub scope: String,
}

impl ShopifyTokens {
    /// True when the access token expires within `margin` of `now` (unix seconds).
    pub fn access_expires_within(&self, now: i64, margin: Duration) -> bool {
        self.access_expires_at - now <= margin.as_secs() as i64
    }
}

#[derive(Debug, thiserror::Error)]
#[error("token vault: {0}")]
pub struct VaultError(pub String);

/// Where one shop connection's token pair lives, and its refresh lock. The AWS implementation
/// keeps the pair in Secrets Manager and the lock in DynamoDB (conditional write with expiry).
#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn load(&self) -> Result<Option<ShopifyTokens>, VaultError>;
    async fn store(&self, tokens: &ShopifyTokens) -> Result<(), VaultError>;
    /// Take the refresh lock for `ttl` unless someone else holds an unexpired one.
    async fn try_lock(&self, owner: &str, ttl: Duration) -> Result<bool, VaultError>;
    async fn unlock(&self, owner: &str) -> Result<(), VaultError>;
}

/// A token pair held in memory only: for a session on a grant we are about to give up (the old
/// shop of a merchant who switched shops), whose pair is no longer in, or about to leave, the
/// vault. A refresh the session needs stays in memory, and no lock is taken: nothing else uses
/// this pair any more.
pub struct HeldTokens(tokio::sync::Mutex<ShopifyTokens>);

impl HeldTokens {
    pub fn new(tokens: ShopifyTokens) -> Self {
        Self(tokio::sync::Mutex::new(tokens))
    }
}

#[async_trait]
impl TokenVault for HeldTokens {
    async fn load(&self) -> Result<Option<ShopifyTokens>, VaultError> {
        Ok(Some(self.0.lock().await.clone()))
    }

    async fn store(&self, tokens: &ShopifyTokens) -> Result<(), VaultError> {
        *self.0.lock().await = tokens.clone();
        Ok(())
    }

    async fn try_lock(&self, _owner: &str, _ttl: Duration) -> Result<bool, VaultError> {
        Ok(true)
    }

    async fn unlock(&self, _owner: &str) -> Result<(), VaultError> {
        Ok(())
    }
}
