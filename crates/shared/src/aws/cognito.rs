//! The merchants' Cognito user pool: only what account deletion needs (sign out, delete).

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

    /// AdminUserGlobalSignOut: revokes every refresh token of the user, so no new access or ID
    /// token can be had; tokens already issued stay valid for API Gateway's JWT authorizer
    /// until they expire, which is why a deleted account also leaves a tombstone. True when
    /// the user was signed out, false when there is no such user.
    pub async fn sign_out(&self, username: &str) -> Result<bool, AwsError> {
        match self
            .client
            .admin_user_global_sign_out()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if describe(&e).contains("UserNotFound") => Ok(false),
            Err(e) => Err(AwsError::new(
                "cognito-idp:AdminUserGlobalSignOut",
                describe(&e),
            )),
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
