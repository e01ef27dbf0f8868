//! disconnect-purge: every way out of SendPersonal, and what we hold about a merchant.
//!
//! Routes (JWT): `DELETE /connections/klaviyo`, `DELETE /connections/shopify`, `DELETE /account`,
//! `GET /account/export`. Queue: PurgeQueue (`app/uninstalled` and `shop/redact` from the
//! webhook endpoint), with partial batch failures.
//!
//! A deleted account's still-valid token is refused on every route (`account-deleted`, from the
//! tombstone `DELETE /account` leaves) except `DELETE /account` itself, which a merchant may
//! retry after an interrupted deletion and which answers `nothing_to_delete` once it is done.
//!
//! Every purge is idempotent and ordered so that a retry after a crash finishes the job: the
//! connection record is first marked `disconnecting` (syncs stop writing), then secrets, catalog,
//! mappings and states are deleted, the audit record is written, and the connection record —
//! the thing that says "a purge is pending here" — goes last. Deleting what is not there counts 0:
//! a purge that finds nothing answers `nothing_to_delete`, writes no audit record and changes
//! nothing.

mod purge;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use serde_json::Value;
use shared::aws::audit::AuditLog;
use shared::aws::catalog_store::CatalogStore;
use shared::aws::cognito::UserDirectory;
use shared::aws::dynamo::AppStore;
use shared::aws::secrets::SecretStore;
use shared::aws::AwsError;
use shared::domain::{MerchantId, PurgeRequest};
use shared::edge::{function::parse_event, http, sqs, Function, FunctionError};
use shared::error::ApiError;
use shared::shopify::ShopifyApp;
use shared::Config;

pub use purge::{Purge, Trigger};

pub struct Handler {
    config: Config,
    store: AppStore,
    catalog: CatalogStore,
    secrets: SecretStore,
    audit: AuditLog,
    users: Option<UserDirectory>,
    http: reqwest::Client,
    app: ShopifyApp,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        let secrets = SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone());
        let audit_table = config
            .audit_table
            .clone()
            .ok_or("AUDIT_TABLE is not configured")?;
        let pepper_id = config
            .audit_pepper_secret_id
            .clone()
            .ok_or("AUDIT_PEPPER_SECRET_ID is not configured")?;
        // Both app secrets are read on first use (shared::domain::AppSecret): init makes no call.
        let client_secret = secrets.shopify_client_secret(&config);
        let pepper = secrets.app_secret(&pepper_id);
        Ok(Self {
            store: AppStore::from_sdk(&aws, &config.app_table),
            catalog: CatalogStore::from_sdk(&aws, &config.catalog_table),
            audit: AuditLog::new(aws.dynamodb(), audit_table, pepper),
            users: config
                .user_pool_id
                .as_ref()
                .map(|pool| UserDirectory::from_sdk(&aws, pool)),
            http: shared::http_client(),
            app: ShopifyApp::from_config(&config, client_secret),
            secrets,
            config,
        })
    }

    fn purge(&self) -> Purge<'_> {
        Purge { handler: self }
    }

    pub async fn handle(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let route = http::route_key(req);
        let known = matches!(
            route,
            "DELETE /connections/klaviyo"
                | "DELETE /connections/shopify"
                | "DELETE /account"
                | "GET /account/export"
        );
        if !known {
            return Err(ApiError::RouteNotFound(route.to_owned()));
        }
        // Deleting the account only deletes: it stays open to a deleted merchant's token, so an
        // interrupted deletion can be retried (and a finished one answers nothing_to_delete).
        let merchant = if route == "DELETE /account" {
            http::merchant(req)?
        } else {
            http::live_merchant(req, &self.store).await?
        };
        let report = match route {
            "DELETE /connections/klaviyo" => self.purge().klaviyo(&merchant, Trigger::Api).await,
            "DELETE /connections/shopify" => {
                self.purge().shopify(&merchant, true, Trigger::Api).await
            }
            "DELETE /account" => {
                self.purge()
                    .account(&merchant, &cognito_username(req, &merchant))
                    .await
            }
            _ => {
                return Ok(http::json(
                    200,
                    &self.purge().export(&merchant).await.map_err(internal)?,
                ))
            }
        };
        Ok(http::json(200, &report.map_err(internal)?))
    }

    async fn handle_record(&self, record: SqsMessage) -> Result<(), FunctionError> {
        let request: PurgeRequest =
            serde_json::from_str(record.body.as_deref().unwrap_or_default())
                .map_err(|e| format!("purge queue body is not a PurgeRequest: {e}"))?;
        self.purge().shop(&request).await?;
        Ok(())
    }
}

/// The Cognito user to delete: the access token's `username` (the sub in an email-as-username
/// pool), else `cognito:username`, else the sub.
fn cognito_username(req: &ApiGatewayV2httpRequest, merchant: &MerchantId) -> String {
    let claims = req
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims);
    claims
        .and_then(|c| c.get("username").or_else(|| c.get("cognito:username")))
        .filter(|u| !u.is_empty())
        .cloned()
        .unwrap_or_else(|| merchant.as_str().to_owned())
}

pub(crate) fn internal(err: AwsError) -> ApiError {
    ApiError::Internal(err.to_string())
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if event.get("Records").is_some() {
            let event: SqsEvent = parse_event(event, "SQS")?;
            let response =
                sqs::for_each_record(event, 2, |record| self.handle_record(record)).await;
            return Ok(serde_json::to_value(response)?);
        }
        let req: ApiGatewayV2httpRequest = parse_event(event, "API Gateway HTTP API or SQS")?;
        let resp = http::respond(self.handle(&req).await);
        Ok(serde_json::to_value(resp)?)
    }
}
