//! `make demo`: start the whole local stack (moto for AWS, the sandbox for Klaviyo, Shopify and
//! the token issuer, the local API Gateway) and walk a merchant's first journey over real HTTP:
//! sign in, connect Klaviyo, install on Shopify, watch the catalog sync, read the result.

use local_runner::{LocalStack, StackOptions};
use reqwest::{redirect, Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

const MERCHANT: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const SHOP: &str = "demo-store.myshopify.com";

struct Demo {
    stack: LocalStack,
    http: reqwest::Client,
    token: String,
    step: usize,
}

impl Demo {
    fn step(&mut self, what: &str) {
        self.step += 1;
        println!("\n\x1b[1m{}. {what}\x1b[0m", self.step);
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.stack.api_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the local API answers");
        let status = resp.status();
        let body = resp.json().await.unwrap_or(Value::Null);
        println!("   {method} {path} → {status}");
        (status, body)
    }
}

fn show(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines() {
        println!("   │ {line}");
    }
}

#[tokio::main]
async fn main() -> Result<(), shared::edge::FunctionError> {
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_target(false)
        .init();
    println!(
        "SendPersonal demo: a merchant connects Klaviyo and Shopify and gets a cached catalog."
    );
    println!(
        "AWS is moto at {}; Klaviyo, Shopify and Cognito are the project's sandbox.",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );

    let started = Instant::now();
    let stack = LocalStack::start(StackOptions {
        prefix: local_runner::random_prefix(),
        ..StackOptions::default()
    })
    .await?;
    println!(
        "Local API Gateway at {} (routes and JWT authorizer read from template.yaml)",
        stack.api_url
    );
    println!("Sandbox vendors at {}", stack.sandbox.base_url);
    let token = stack.token(MERCHANT).await;
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let mut demo = Demo {
        stack,
        http,
        token,
        step: 0,
    };

    demo.step("The merchant signs in (a Cognito-shaped RS256 JWT) and has no connections yet");
    let (_, body) = demo.call(Method::GET, "/connections", None).await;
    show(&body);

    demo.step("Without a token, the API refuses with a problem document");
    let resp = demo
        .http
        .get(format!("{}/connections", demo.stack.api_url))
        .send()
        .await?;
    println!("   GET /connections (no token) → {}", resp.status());
    show(&resp.json::<Value>().await.unwrap_or_default());

    demo.step("Connect Klaviyo: a malformed key is refused before anything is stored");
    let (_, body) = demo
        .call(
            Method::PUT,
            "/connections/klaviyo",
            Some(json!({ "api_key": "pk_oops" })),
        )
        .await;
    show(&body);

    demo.step("Connect Klaviyo with a private key: validated against Klaviyo, scopes probed, kept only in Secrets Manager");
    let key = demo.stack.sandbox.full_access_klaviyo_key();
    let (status, body) = demo
        .call(
            Method::PUT,
            "/connections/klaviyo",
            Some(json!({ "api_key": key })),
        )
        .await;
    show(&body);
    assert_eq!(status, StatusCode::OK, "Klaviyo connects");

    demo.step("Install on Shopify: the API returns the authorize URL (scope read_products, one-time state)");
    let (status, body) = demo
        .call(
            Method::POST,
            "/connections/shopify",
            Some(json!({ "shop": SHOP })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let authorize_url = body["authorize_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("   authorize URL: {authorize_url}");

    demo.step(
        "The merchant approves in Shopify, which redirects to our callback with a signed query",
    );
    let approve = demo.http.get(&authorize_url).send().await?;
    let callback = approve
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    println!(
        "   Shopify → 302 {}",
        callback.split('?').next().unwrap_or_default()
    );
    let forged = callback.replace("hmac=", "hmac=00");
    let resp = demo.http.get(&forged).send().await?;
    println!(
        "   a forged copy of that callback → {} {}",
        resp.status(),
        resp.json::<Value>().await.unwrap_or_default()["type"]
    );
    let resp = demo.http.get(&callback).send().await?;
    println!("   GET /connections/shopify/callback → {}", resp.status());
    show(&resp.json::<Value>().await.unwrap_or_default());

    demo.step("The first catalog sync runs from the sync queue (paged GraphQL, cost-throttled)");
    let sync_started = Instant::now();
    loop {
        let resp = demo
            .http
            .get(format!("{}/connections", demo.stack.api_url))
            .bearer_auth(&demo.token)
            .send()
            .await?;
        let view: Value = resp.json().await?;
        let shopify = &view["shopify"];
        let read = shopify["sync_in_progress"]["products_read"].as_u64();
        if let Some(read) = read {
            const SPIN: [char; 4] = ['|', '/', '-', '\\'];
            let frame = SPIN[(sync_started.elapsed().as_millis() / 200) as usize % SPIN.len()];
            print!(
                "\r   {frame} {read} products read, {:.1} s",
                sync_started.elapsed().as_secs_f64()
            );
            std::io::stdout().flush().ok();
        }
        if shopify["last_sync_at"].is_string() || shopify["last_sync_error"].is_string() {
            println!(
                "\r   sync finished in {:.1} s: {} products cached{}",
                sync_started.elapsed().as_secs_f64(),
                shopify["catalog_size"],
                " ".repeat(30)
            );
            break;
        }
        if sync_started.elapsed() > Duration::from_secs(300) {
            return Err("the sync did not finish in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    demo.step("What the catalog cache holds (active, published products only; what a recommendation needs)");
    let config = demo.stack.config("CatalogSyncFunction");
    let merchant = shared::domain::MerchantId::parse(MERCHANT)?;
    let store = shared::aws::dynamo::AppStore::from_sdk(&demo.stack.aws, &config.app_table);
    let catalog =
        shared::aws::catalog_store::CatalogStore::from_sdk(&demo.stack.aws, &config.catalog_table);
    let generation = store
        .shopify(&merchant)
        .await?
        .and_then(|c| c.catalog_generation)
        .unwrap_or_default();
    let products = catalog.read_generation(&merchant, &generation).await?;
    for p in products.iter().take(3) {
        println!(
            "   • {} — {} {} — {} — {}",
            p.title,
            p.price_min.amount,
            p.price_min.currency,
            if p.available { "in stock" } else { "sold out" },
            p.url
        );
    }
    println!(
        "   … {} products in generation {generation}",
        products.len()
    );

    demo.step("The merchant's connections now (no key, no token, ever)");
    let (_, body) = demo.call(Method::GET, "/connections", None).await;
    show(&body);

    demo.step("A re-sync on demand replaces the cache whole");
    let (status, body) = demo.call(Method::POST, "/catalog/sync", None).await;
    show(&body);
    assert_eq!(status, StatusCode::ACCEPTED);
    demo.stack.drain(Duration::from_secs(300)).await?;
    let new_generation = store
        .shopify(&merchant)
        .await?
        .and_then(|c| c.catalog_generation)
        .unwrap_or_default();
    println!("   generation {generation} → {new_generation}; the old one is deleted");

    println!(
        "\nDemo finished in {:.1} s. Run `make test` for the test suite.",
        started.elapsed().as_secs_f64()
    );
    demo.stack.shutdown().await;
    Ok(())
}
