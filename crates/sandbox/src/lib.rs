//! SendPersonal's local stand-in for Klaviyo, Shopify and a Cognito-like JWT issuer.
//!
//! One axum server speaks the real wire contracts, so production code differs only by base URL:
//! - Klaviyo at the root (`/api/...`),
//! - Shopify Admin at `/shopify/{shop}/admin/...`,
//! - the token issuer at `/cognito/...`,
//! - Bedrock Runtime's Converse API at `/bedrock/model/{modelId}/converse`,
//! - test/demo controls at `/_sandbox/...`.

pub mod bedrock;
mod cognito;
mod controls;
mod hosted_ui;
pub mod klaviyo;
pub mod shopify;
mod state;
mod util;

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::klaviyo::data::KlaviyoStore;
use crate::shopify::catalog_data::generate_catalog;
use crate::shopify::ShopifyStore;
use crate::state::{AppState, Stats};

pub use crate::bedrock::ModelSpeed;
pub use crate::cognito::APP_CLIENT_ID as COGNITO_APP_CLIENT_ID;

/// Klaviyo rate-limit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimits {
    /// The published tiers (XS 1/s … XL 350/s).
    Real,
    /// Every tier ×100, for fast tests.
    Relaxed,
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seed for every generated record (same seed → same data).
    pub seed: u64,
    pub shopify_client_id: String,
    pub shopify_client_secret: String,
    pub default_shop: String,
    pub default_shop_products: usize,
    pub klaviyo_profiles: usize,
    pub klaviyo_limits: RateLimits,
    pub shopify_access_token_ttl_secs: u64,
    /// Cost points restored per second (standard plan: 100).
    pub shopify_restore_rate: f64,
    /// Leaky bucket size (standard plan: 2000).
    pub shopify_bucket_size: f64,
    /// Bedrock requests per minute per model (sliding 60 s window).
    pub bedrock_rpm: u32,
    /// Bedrock tokens per minute per model (input + cache writes + output).
    pub bedrock_tpm: u64,
    /// Added to every successful Bedrock call on top of the modelled latency.
    pub bedrock_latency_ms: u64,
    /// How many times an output token counts against the tokens-per-minute quota when a call
    /// settles (AWS: 5 for recent Claude models).
    pub bedrock_output_burndown: f64,
    /// Model speed for every model; `None`: per model family ([`ModelSpeed::for_model`]).
    pub bedrock_speed: Option<ModelSpeed>,
    /// Multiplies every modelled vendor duration (model latency, import jobs); quota and rate
    /// windows stay real. 1.0 = the vendors' time; tests use a small factor to run fast.
    pub vendor_time_scale: f64,
    pub klaviyo_import: ImportTiming,
}

/// How long a Klaviyo bulk import job takes: at least `queued_secs` queued (longer while the
/// account already has `concurrent_jobs_per_account` jobs processing), then
/// `base_secs + profiles / profiles_per_s` processing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportTiming {
    pub queued_secs: f64,
    pub base_secs: f64,
    pub profiles_per_s: f64,
    pub concurrent_jobs_per_account: usize,
}

impl Default for ImportTiming {
    fn default() -> Self {
        Self {
            queued_secs: 2.0,
            base_secs: 2.0,
            profiles_per_s: 40.0,
            concurrent_jobs_per_account: 4,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            shopify_client_id: "sandbox-client-id".into(),
            shopify_client_secret: "sandbox-shopify-client-secret".into(),
            default_shop: "demo-store.myshopify.com".into(),
            default_shop_products: 1200,
            klaviyo_profiles: 2500,
            klaviyo_limits: RateLimits::Real,
            shopify_access_token_ttl_secs: 3600,
            shopify_restore_rate: 100.0,
            shopify_bucket_size: 2000.0,
            bedrock_rpm: 2000,
            bedrock_tpm: 2_000_000,
            bedrock_latency_ms: 0,
            bedrock_output_burndown: 5.0,
            bedrock_speed: None,
            // `make test` sets SANDBOX_VENDOR_TIME_SCALE (tests assert behaviour, not speed);
            // the demo and the benchmarks run at the vendors' own time.
            vendor_time_scale: std::env::var("SANDBOX_VENDOR_TIME_SCALE")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v >= 0.0)
                .unwrap_or(1.0),
            klaviyo_import: ImportTiming::default(),
        }
    }
}

/// A running sandbox. The server task keeps running after this handle is dropped; call
/// [`Sandbox::shutdown`] to stop it.
pub struct Sandbox {
    pub base_url: String,
    state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl Sandbox {
    pub fn klaviyo_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// `{base}/shopify/{shop}`: replace `{shop}` with the shop domain, then append `/admin/...`.
    pub fn shopify_base_url_template(&self) -> String {
        format!("{}/shopify/{{shop}}", self.base_url)
    }

    pub fn cognito_issuer(&self) -> String {
        format!("{}/cognito", self.base_url)
    }

    /// Endpoint URL for the Bedrock Runtime client (`endpoint_url` or
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
    pub fn bedrock_endpoint(&self) -> String {
        format!("{}/bedrock", self.base_url)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.cognito_issuer())
    }

    /// Private key of the seeded Klaviyo account, with every read and write scope.
    pub fn full_access_klaviyo_key(&self) -> String {
        self.state.klaviyo().default_key.clone()
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.state.config
    }

    /// Stops the server task.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Seeds the data, spawns the server on `listener` and returns at once.
pub async fn serve(listener: TcpListener, config: SandboxConfig) -> Sandbox {
    let base_url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(_) => "http://127.0.0.1".to_string(),
    };
    // Warm the RSA signing key in the background; the issuer awaits it if still pending.
    tokio::task::spawn_blocking(|| {
        cognito::signer();
    });

    let catalog = generate_catalog(config.seed, config.default_shop_products);
    let klaviyo = KlaviyoStore::seed(
        config.seed,
        config.klaviyo_profiles,
        Arc::new(catalog.clone()),
        &config.default_shop,
        config.klaviyo_limits,
    );
    let shopify = ShopifyStore::new(&config, catalog);
    let state = Arc::new(AppState {
        base_url: base_url.clone(),
        config,
        klaviyo: Mutex::new(klaviyo),
        shopify: Mutex::new(shopify),
        stats: Mutex::new(Stats::default()),
        bedrock: Mutex::new(bedrock::BedrockState::default()),
        hosted_ui: Mutex::new(hosted_ui::HostedUi::default()),
    });

    let app = klaviyo::router()
        .merge(shopify::router())
        .merge(cognito::router())
        .merge(bedrock::router())
        .merge(controls::router())
        .with_state(state.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Sandbox {
        base_url,
        state,
        task,
    }
}

/// `base64(HMAC-SHA256(secret, raw body))`: the `X-Shopify-Hmac-Sha256` webhook header.
pub fn shopify_webhook_hmac(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, body))
}

/// Hex HMAC of an OAuth query per Shopify's rules: drop `hmac`/`signature`, escape `%`/`&`
/// (and `=` in keys), sort by key, join `k=v` with `&`.
pub fn shopify_query_hmac(secret: &str, params: &[(String, String)]) -> String {
    let escape = |s: &str, key: bool| {
        let s = s.replace('%', "%25").replace('&', "%26");
        if key {
            s.replace('=', "%3D")
        } else {
            s
        }
    };
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| (escape(k, true), escape(v, false)))
        .collect();
    pairs.sort();
    let message = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(hmac_sha256(secret, message.as_bytes()))
}

fn hmac_sha256(secret: &str, message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any size");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Shopify's anchored shop-domain rule (NOTES §2.2 step 4).
pub fn is_valid_shop_domain(shop: &str) -> bool {
    let shop = shop.to_ascii_lowercase();
    let Some(name) = shop.strip_suffix(".myshopify.com") else {
        return false;
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn query_hmac_matches_notes_vectors() {
        let q1 = "timestamp=1337178173&state=0.6784241404160823&shop=some-shop.myshopify.com&code=0907a61c0c8d55e99db179b68161bc00&hmac=ignored";
        assert_eq!(
            shopify_query_hmac("hush", &pairs(q1)),
            "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
        );
        let q3 = "shop=some-shop.myshopify.com&code=a94a110d86d2452eb3e2af4cfb8a3828&timestamp=1337178173";
        assert_eq!(
            shopify_query_hmac("hush", &pairs(q3)),
            "2cb1a277650a659f1b11e92a4a64275b128e037f2c3390e3c8fd2d8721dac9e2"
        );
    }

    #[test]
    fn webhook_hmac_matches_notes_vector() {
        assert_eq!(
            shopify_webhook_hmac("test_secret_key", br#"{"foo": "bar"}"#),
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
        );
    }

    #[test]
    fn shop_domain_rule_is_anchored() {
        assert!(is_valid_shop_domain("demo-store.myshopify.com"));
        assert!(!is_valid_shop_domain("-bad.myshopify.com"));
        assert!(!is_valid_shop_domain("evil.com/x.myshopify.com"));
        assert!(!is_valid_shop_domain("demo.myshopify.com.evil.com"));
    }
}
