//! connect-klaviyo: shows a merchant's connections and connects Klaviyo with a private API key.
//!
//! Routes: `GET /connections`, `PUT /connections/klaviyo`, `GET /openapi.json`. A deleted
//! account's still-valid token is refused (`account-deleted`) before anything is read or written.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::Value;
use shared::api::{ConnectionsView, KlaviyoConnectionView, PutKlaviyoKey};
use shared::aws::{dynamo::AppStore, secrets::SecretStore, AwsError};
use shared::domain::{
    now_unix, ConnectionStatus, KlaviyoApiKey, KlaviyoConnection, MerchantId, Vendor,
};
use shared::edge::{function::parse_event, http, Function, FunctionError};
use shared::error::ApiError;
use shared::klaviyo::KlaviyoClient;
use shared::Config;

pub struct Handler {
    config: Config,
    store: AppStore,
    secrets: SecretStore,
    klaviyo: KlaviyoClient,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        Ok(Self {
            store: AppStore::from_sdk(&aws, &config.app_table),
            secrets: SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone()),
            klaviyo: KlaviyoClient::new(
                shared::http_client(),
                config.klaviyo_base_url.clone(),
                config.klaviyo_revision.clone(),
            ),
            config,
        })
    }

    pub async fn handle(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        match http::route_key(req) {
            "GET /openapi.json" => Ok(http::json(200, &shared::api::openapi())),
            "GET /connections" => {
                let merchant = http::live_merchant(req, &self.store).await?;
                Ok(http::json(200, &self.connections(&merchant).await?))
            }
            "PUT /connections/klaviyo" => {
                let merchant = http::live_merchant(req, &self.store).await?;
                let body: PutKlaviyoKey = http::json_body(req)?;
                let key = KlaviyoApiKey::parse(&body.api_key)
                    .map_err(|e| ApiError::InvalidKlaviyoKey(e.0))?;
                Ok(http::json(200, &self.connect(&merchant, &key).await?))
            }
            other => Err(ApiError::RouteNotFound(other.to_owned())),
        }
    }

    async fn connections(&self, merchant: &MerchantId) -> Result<ConnectionsView, ApiError> {
        let (klaviyo, shopify) =
            tokio::try_join!(self.store.klaviyo(merchant), self.store.shopify(merchant))
                .map_err(internal)?;
        Ok(ConnectionsView {
            klaviyo: klaviyo.as_ref().map(Into::into),
            shopify: shopify.as_ref().map(Into::into),
        })
    }

    /// Validate the key once against Klaviyo (account, then a read probe per scope) before
    /// anything is stored; the key goes only to Secrets Manager.
    async fn connect(
        &self,
        merchant: &MerchantId,
        key: &KlaviyoApiKey,
    ) -> Result<KlaviyoConnectionView, ApiError> {
        let account = self
            .klaviyo
            .get_account(key)
            .await
            .map_err(ApiError::from)?;
        let missing = self
            .klaviyo
            .probe_read_scopes(key)
            .await
            .map_err(ApiError::from)?;
        if !missing.is_empty() {
            return Err(ApiError::KlaviyoMissingScopes(
                missing.into_iter().map(str::to_owned).collect(),
            ));
        }
        // Validation took several vendor calls: look again, so an account deleted meanwhile
        // gets no key stored.
        http::refuse_deleted(&self.store, merchant).await?;
        let secret = serde_json::json!({ "api_key": key.expose() }).to_string();
        self.secrets
            .put(&self.config.secret_name(merchant, Vendor::Klaviyo), &secret)
            .await
            .map_err(internal)?;
        let connection = KlaviyoConnection {
            status: ConnectionStatus::Connected,
            connected_at: now_unix(),
            account_id: account.id,
            account_name: account.name,
        };
        self.store
            .put_klaviyo(merchant, &connection)
            .await
            .map_err(internal)?;
        tracing::info!(merchant = merchant.as_str(), "klaviyo connected");
        Ok((&connection).into())
    }
}

fn internal(err: AwsError) -> ApiError {
    ApiError::Internal(err.to_string())
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let req: ApiGatewayV2httpRequest = parse_event(event, "API Gateway HTTP API")?;
        let resp = http::respond(self.handle(&req).await);
        Ok(serde_json::to_value(resp)?)
    }
}
