//! AWS adapters. Each is gated by a cargo feature so a Lambda links only the SDKs it calls.
//! Clients are built once per container from one `SdkConfig`; locally `AWS_ENDPOINT_URL`
//! points every client at moto and nothing else changes.

#[cfg(feature = "dynamodb")]
pub mod audit;
#[cfg(feature = "dynamodb")]
pub mod catalog_store;
#[cfg(feature = "cognito")]
pub mod cognito;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
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

/// The SDK configuration every client is built from: rustls with the ring provider (a lean
/// binary; see NOTES), region and credentials from the environment, endpoint override honoured.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::{tls, Builder};
    let http_client = Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client)
        .load()
        .await
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
