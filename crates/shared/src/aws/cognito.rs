//! The merchants' Cognito user pool: only what account deletion needs.

use super::{describe, AwsError};
use aws_sdk_cognitoidentityprovider::Client;

#[derive(Clone)]
pub struct UserDirectory {
    client: Client,
    pool_id: String,
}

impl UserDirectory {
    pub fn from_sdk(aws: &super::Aws, pool_id: impl Into<String>) -> Self {
        Self {
            client: aws.cognito(),
            pool_id: pool_id.into(),
        }
    }

    /// AdminDeleteUser. `username` is the token's `username` claim (the sub in an
    /// email-as-username pool). True when a user was deleted, false when already gone.
    pub async fn delete_user(&self, username: &str) -> Result<bool, AwsError> {
        match self
            .client
            .admin_delete_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if describe(&e).contains("UserNotFound") => Ok(false),
            Err(e) => Err(AwsError::new("cognito-idp:AdminDeleteUser", describe(&e))),
        }
    }
}
