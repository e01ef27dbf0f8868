//! SendPersonal's shared library: the domain (plain Rust over plain types), the vendor clients
//! (Klaviyo, Shopify, Bedrock) and the AWS adapters, plus the edge helpers that turn Lambda
//! events into domain calls. Lambda binaries stay thin: parse, call into here, map the result.

pub mod api;
pub mod budget;
pub mod config;
pub mod domain;
pub mod edge;
pub mod error;
pub mod faults;
pub mod flows;
pub mod klaviyo;
pub mod metrics;
pub mod personalize;
pub mod shopify;
pub mod telemetry;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "bedrock")]
pub mod bedrock;

pub use config::Config;

/// The one HTTP client of a container (connection pool, rustls), shared by the vendor clients.
/// Timeouts bound every vendor call so a hung vendor cannot eat the Lambda's whole budget.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("SendPersonal/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("the TLS backend initialises")
}
