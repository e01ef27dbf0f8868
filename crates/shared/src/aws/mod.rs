//! AWS adapters. Each is gated by a cargo feature so a Lambda links only the SDKs it calls.
//! One [`Aws`] per container holds the `SdkConfig` and one client per service; locally
//! `AWS_ENDPOINT_URL` points every client at moto and nothing else changes.

#[cfg(feature = "dynamodb")]
pub mod audit;
#[cfg(feature = "dynamodb")]
pub mod budget_store;
#[cfg(feature = "dynamodb")]
pub mod catalog_store;
#[cfg(feature = "cognito")]
pub mod cognito;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
#[cfg(feature = "dynamodb")]
pub mod flows;
#[cfg(feature = "dynamodb")]
pub mod purge;
#[cfg(feature = "sqs")]
pub mod queue;
#[cfg(feature = "dynamodb")]
pub mod runs;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(all(feature = "dynamodb", feature = "secrets"))]
pub mod token_vault;

pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::Arc;

/// The AWS side of one container: its `SdkConfig` and at most one client per service, made on
/// the first adapter that asks and shared by the rest (a client is a cheap handle). Building a
/// client validates its configuration, which builds a TLS connector and parses the service's
/// endpoint partitions: once per service rather than once per adapter halves the AWS share of a
/// cold start in the functions with several stores on one table.
#[derive(Clone)]
pub struct Aws {
    config: SdkConfig,
    clients: Arc<Clients>,
}

#[derive(Default)]
struct Clients {
    #[cfg(feature = "dynamodb")]
    dynamodb: std::sync::OnceLock<aws_sdk_dynamodb::Client>,
    #[cfg(feature = "secrets")]
    secrets: std::sync::OnceLock<aws_sdk_secretsmanager::Client>,
    #[cfg(feature = "sqs")]
    sqs: std::sync::OnceLock<aws_sdk_sqs::Client>,
    #[cfg(feature = "cognito")]
    cognito: std::sync::OnceLock<aws_sdk_cognitoidentityprovider::Client>,
}

impl Aws {
    /// The container's configuration from the environment ([`sdk_config`]).
    pub async fn load() -> Self {
        Self::new(sdk_config().await)
    }

    pub fn new(config: SdkConfig) -> Self {
        Self {
            config,
            clients: Arc::default(),
        }
    }

    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    #[cfg(feature = "dynamodb")]
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let make = || aws_sdk_dynamodb::Client::new(&self.config);
        self.clients.dynamodb.get_or_init(make).clone()
    }

    #[cfg(feature = "secrets")]
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        let make = || aws_sdk_secretsmanager::Client::new(&self.config);
        self.clients.secrets.get_or_init(make).clone()
    }

    #[cfg(feature = "sqs")]
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let make = || aws_sdk_sqs::Client::new(&self.config);
        self.clients.sqs.get_or_init(make).clone()
    }

    #[cfg(feature = "cognito")]
    pub fn cognito(&self) -> aws_sdk_cognitoidentityprovider::Client {
        let make = || aws_sdk_cognitoidentityprovider::Client::new(&self.config);
        self.clients.cognito.get_or_init(make).clone()
    }
}

/// The roots that sign every AWS service endpoint (Amazon Trust Services, as AWS publishes
/// them; fingerprints beside each). The AWS clients trust these and nothing else: fewer roots to
/// trust, and no parsing of the ~150-certificate system bundle at init, which was four fifths of
/// a cold start's instructions. Vendors (Klaviyo, Shopify) go through reqwest and its compiled-in
/// Mozilla roots instead.
const AWS_ROOTS_PEM: &[u8] = include_bytes!("certs/amazon-trust-services.pem");

/// The TLS settings of the AWS clients: the Amazon Trust Services roots only.
fn aws_tls_context() -> aws_smithy_http_client::tls::TlsContext {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(AWS_ROOTS_PEM))
        .build()
        .expect("the bundled Amazon Trust Services roots are valid PEM")
}

/// The SDK's hyper client, less its construction-time check: that check builds a TLS connector
/// for every SDK client made and throws it away (its purpose is loading the system roots early,
/// which we do not use), so each client parsed the roots twice, once for nothing. The connector
/// is built, and kept, by the first request, as it was before.
#[derive(Debug)]
struct ConnectorOnFirstRequest(SharedHttpClient);

impl HttpClient for ConnectorOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The SDK configuration every client is built from: rustls with the ring provider (a lean
/// binary; see NOTES) trusting the AWS roots, region and credentials from the environment,
/// endpoint override honoured.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    use aws_smithy_http_client::{tls, Builder};
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(aws_tls_context())
        .build_https();
    let http_client = SharedHttpClient::new(ConnectorOnFirstRequest(http_client));
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client);
    // Lambda hands every function its role's credentials and its region as environment
    // variables, the first link of the default chains. Naming that link skips building the rest
    // (web identity's STS client, IMDS, SSO), a fifth of a cold start's instructions; without
    // the variables (an operator's machine) the default chains apply unchanged.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if std::env::var_os("AWS_REGION").is_some() {
        loader = loader.region(EnvironmentVariableRegionProvider::new());
    }
    loader.load().await
}

/// An AWS call failed; the text names the operation, never the data.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Self {
            operation,
            message: err.to_string(),
        }
    }
}

/// A conditional write's outcome: `Ok(true)` when written, `Ok(false)` when its condition did not
/// hold (expected for idempotent writes and claims), otherwise the error, named by `operation`.
pub(crate) fn written<T, E>(result: Result<T, E>, operation: &'static str) -> Result<bool, AwsError>
where
    E: std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(AwsError::new(operation, describe(&e))),
    }
}

/// A conditional write or transaction whose condition did not hold (an expected outcome, not
/// a failure, for idempotent writes and claims).
pub(crate) fn is_condition_failure(err: &dyn std::error::Error) -> bool {
    describe(err).contains("ConditionalCheckFailed")
}

/// SDK errors print as "service error" unless their sources are walked; this keeps code and message.
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    /// The SHA-256 fingerprints Amazon Trust Services publishes for the roots AWS endpoints
    /// chain to (Amazon Root CA 1–4 and the Starfield Services G2 cross-signing root).
    const PUBLISHED: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ];

    fn bundled_certificates() -> Vec<Vec<u8>> {
        let text = std::str::from_utf8(AWS_ROOTS_PEM).unwrap();
        text.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body = block.split("-----END CERTIFICATE-----").next().unwrap();
                let b64: String = body.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_aws_trust_store_is_exactly_the_published_amazon_roots() {
        let fingerprints: Vec<String> = bundled_certificates()
            .iter()
            .map(|der| hex::encode(Sha256::digest(der)))
            .collect();
        assert_eq!(fingerprints, PUBLISHED);
    }

    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn the_first_request_builds_the_tls_connector_from_the_bundle() {
        use aws_sdk_dynamodb::config::{retry::RetryConfig, Builder, Credentials, Region};
        // Nothing listens on port 1: the request fails after its connector was built, which
        // parses every bundled root; a damaged bundle panics here, not at a Lambda's first call.
        let config = Builder::from(&sdk_config().await)
            .endpoint_url("http://127.0.0.1:1")
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let err = client.list_tables().send().await.unwrap_err();
        assert!(
            describe(&err).contains("connect"),
            "a connection failure, not {}",
            describe(&err)
        );
    }
}
