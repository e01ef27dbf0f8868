//! Shared helpers for the sandbox's HTTP tests.
#![allow(dead_code)]

use sandbox::{serve, RateLimits, Sandbox, SandboxConfig};
use serde_json::{json, Value};

pub const SHOP: &str = "demo-store.myshopify.com";
pub const REVISION: &str = "2026-07-15";

pub async fn start(config: SandboxConfig) -> Sandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    serve(listener, config).await
}

/// A small, fast sandbox with relaxed Klaviyo limits.
pub fn small_config() -> SandboxConfig {
    SandboxConfig {
        default_shop_products: 300,
        klaviyo_limits: RateLimits::Relaxed,
        ..SandboxConfig::default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

pub fn shop_admin(sb: &Sandbox, shop: &str) -> String {
    format!(
        "{}/admin",
        sb.shopify_base_url_template().replace("{shop}", shop)
    )
}

/// Runs the OAuth install for `shop` and returns the token response.
pub async fn install(sb: &Sandbox, shop: &str) -> Value {
    let http = client();
    let resp = http
        .get(format!("{}/oauth/authorize", shop_admin(sb, shop)))
        .query(&[
            ("client_id", "sandbox-client-id"),
            ("scope", "read_products"),
            ("redirect_uri", "https://app.example/auth/callback"),
            ("state", "nonce-123"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&location).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    http.post(format!("{}/oauth/access_token", shop_admin(sb, shop)))
        .json(&json!({
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-shopify-client-secret",
            "code": code,
            "expiring": 1,
        }))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json")
}

pub async fn graphql(
    sb: &Sandbox,
    shop: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/api/2026-10/graphql.json", shop_admin(sb, shop)))
        .header("X-Shopify-Access-Token", token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("graphql request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("graphql json"))
}

pub async fn klaviyo_get(sb: &Sandbox, key: &str, url: &str) -> reqwest::Response {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", sb.klaviyo_base_url())
    };
    client()
        .get(url)
        .header("Authorization", format!("Klaviyo-API-Key {key}"))
        .header("revision", REVISION)
        .header("Accept", "application/vnd.api+json")
        .send()
        .await
        .expect("klaviyo request")
}

pub async fn klaviyo_json(sb: &Sandbox, key: &str, url: &str) -> Value {
    let resp = klaviyo_get(sb, key, url).await;
    assert!(resp.status().is_success(), "GET {url} -> {}", resp.status());
    resp.json().await.expect("klaviyo json")
}
