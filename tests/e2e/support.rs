//! Test support: a whole local stack per test (sandbox vendors, tables and queues in moto named
//! with a fresh prefix, the local API Gateway), and a merchant who talks to it over real HTTP.

use local_runner::{LocalStack, StackOptions};
use reqwest::{redirect, Method, StatusCode};
use serde_json::{json, Value};
use shared::domain::KlaviyoApiKey;
use shared::klaviyo::KlaviyoClient;
use std::time::Duration;

/// The sandbox's default shop and app secret (see crates/sandbox).
pub const DEMO_SHOP: &str = "demo-store.myshopify.com";
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-shopify-client-secret";

pub struct World {
    pub stack: LocalStack,
    pub http: reqwest::Client,
    /// The merchant's browser's cookies for the API (name, value, path), kept by [`World::get_url`]
    /// as a browser would: set by `Set-Cookie`, removed by `Max-Age=0`, sent under their path.
    pub browser_cookies: std::sync::Mutex<Vec<(String, String, String)>>,
}

pub struct Response {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
}

impl Response {
    /// The stable `type` of a problem+json answer (asserts that it is one).
    pub fn problem_type(&self) -> &str {
        assert_eq!(
            self.content_type, "application/problem+json",
            "expected a problem document, got {:?}",
            self.body
        );
        self.body["type"].as_str().unwrap_or_default()
    }

    /// How an install's callback ended, as the console reads it from the redirect:
    /// `"connected"`, or the problem type's slug (`"invalid-oauth-state"`, ...).
    pub fn install_outcome(&self) -> String {
        assert_eq!(
            self.status,
            StatusCode::FOUND,
            "the callback redirects to the console"
        );
        let location = self.location.clone().unwrap_or_default();
        let url = url::Url::parse(&location).expect("an absolute console URL");
        assert_eq!(url.path(), "/connections", "{location}");
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match get("shopify").as_deref() {
            Some("connected") => "connected".into(),
            Some("error") => get("type").expect("an error names its problem type"),
            other => panic!("unexpected outcome {other:?} in {location}"),
        }
    }
}

impl World {
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customise: impl FnOnce(&mut StackOptions)) -> World {
        // RUST_LOG=info shows the functions' logs under the failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let mut options = StackOptions::default();
        options.sandbox.default_shop_products = 300;
        options.sandbox.klaviyo_limits = sandbox::RateLimits::Relaxed;
        // Shopify Plus's throttle keeps syncs quick; the standard plan's pacing has its own tests.
        options.sandbox.shopify_restore_rate = 1000.0;
        options.sandbox.shopify_bucket_size = 20_000.0;
        customise(&mut options);
        let stack = LocalStack::start(options)
            .await
            .expect("the local stack starts (is moto running? use `make test`)");
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        World {
            stack,
            http,
            browser_cookies: Default::default(),
        }
    }

    pub async fn merchant(&self, sub: &str) -> Merchant<'_> {
        Merchant {
            world: self,
            token: self.stack.token(sub).await,
            sub: sub.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.stack.api_url, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("the local API answers")).await
    }

    /// A top-level GET by the merchant's browser: its cookies for the URL's path go along, and
    /// the cookies the answer sets or clears are kept.
    pub async fn get_url(&self, url: &str) -> Response {
        let path = url::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let cookie = {
            let jar = self.browser_cookies.lock().unwrap();
            jar.iter()
                .filter(|(_, _, p)| path.starts_with(p.as_str()))
                .map(|(n, v, _)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut req = self.http.get(url);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let resp = read(req.send().await.expect("the URL answers")).await;
        let mut jar = self.browser_cookies.lock().unwrap();
        for set in &resp.set_cookies {
            let mut parts = set.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let attrs: Vec<&str> = parts.collect();
            let path = attrs
                .iter()
                .find_map(|a| a.strip_prefix("Path="))
                .unwrap_or("/")
                .to_owned();
            jar.retain(|(n, _, p)| !(n == name && *p == path));
            if !attrs.contains(&"Max-Age=0") {
                jar.push((name.to_owned(), value.to_owned(), path));
            }
        }
        resp
    }

    /// A control of the sandbox (`/_sandbox/...`).
    pub async fn sandbox(&self, method: Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{}", self.stack.sandbox.base_url, path))
            .json(&body)
            .send()
            .await
            .expect("the sandbox answers");
        assert!(
            resp.status().is_success(),
            "sandbox control {path} failed: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn sandbox_stats(&self) -> Value {
        self.http
            .get(format!("{}/_sandbox/stats", self.stack.sandbox.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Wait until every queue is empty and no function is running.
    pub async fn settle(&self) {
        self.stack
            .drain(Duration::from_secs(120))
            .await
            .expect("queues drain");
    }

    pub fn config(&self) -> shared::Config {
        self.stack.config("ConnectKlaviyoFunction")
    }

    /// Every item of the app table, as text: what a leak scan looks at.
    pub async fn app_table_dump(&self) -> String {
        let client = self.stack.aws.dynamodb();
        let out = client
            .scan()
            .table_name(self.config().app_table)
            .send()
            .await
            .expect("scan");
        format!("{:?}", out.items.unwrap_or_default())
    }

    pub async fn secret(&self, name: &str) -> Option<String> {
        let client = self.stack.aws.secrets();
        client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }

    /// Delete a secret outright (an outage of an app secret, say) and return its value.
    pub async fn take_secret(&self, name: &str) -> String {
        let value = self.secret(name).await.expect("the secret exists");
        self.stack
            .aws
            .secrets()
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .expect("delete the secret");
        value
    }

    /// Put back a secret [`Self::take_secret`] took.
    pub async fn restore_secret(&self, name: &str, value: &str) {
        self.stack
            .aws
            .secrets()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("restore the secret");
    }

    /// The products of the catalog generation the merchant's connection points at.
    pub async fn cached_catalog(&self, merchant: &str) -> Vec<shared::domain::CatalogProduct> {
        let config = self.config();
        let merchant = shared::domain::MerchantId::parse(merchant).unwrap();
        let store = shared::aws::dynamo::AppStore::from_sdk(&self.stack.aws, &config.app_table);
        let catalog = shared::aws::catalog_store::CatalogStore::from_sdk(
            &self.stack.aws,
            &config.catalog_table,
        );
        let Some(generation) = store
            .shopify(&merchant)
            .await
            .unwrap()
            .and_then(|c| c.catalog_generation)
        else {
            return Vec::new();
        };
        catalog
            .read_generation(&merchant, &generation)
            .await
            .unwrap()
    }

    pub async fn generation(&self, merchant: &str) -> Option<String> {
        let config = self.config();
        let merchant = shared::domain::MerchantId::parse(merchant).unwrap();
        let store = shared::aws::dynamo::AppStore::from_sdk(&self.stack.aws, &config.app_table);
        store
            .shopify(&merchant)
            .await
            .unwrap()
            .and_then(|c| c.catalog_generation)
    }

    pub async fn generation_items(&self, merchant: &str, generation: &str) -> usize {
        let config = self.config();
        let merchant = shared::domain::MerchantId::parse(merchant).unwrap();
        let catalog = shared::aws::catalog_store::CatalogStore::from_sdk(
            &self.stack.aws,
            &config.catalog_table,
        );
        catalog
            .read_generation(&merchant, generation)
            .await
            .unwrap()
            .len()
    }
}

async fn read(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let set_cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Response {
        status,
        content_type,
        body,
        location,
        set_cookies,
    }
}

pub struct Merchant<'w> {
    pub world: &'w World,
    pub token: String,
    pub sub: String,
}

impl Merchant<'_> {
    pub async fn get(&self, path: &str) -> Response {
        self.world
            .call(Method::GET, path, Some(&self.token), None)
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.world
            .call(Method::PUT, path, Some(&self.token), Some(body))
            .await
    }
    pub async fn call_delete(&self, path: &str) -> Response {
        self.world
            .call(Method::DELETE, path, Some(&self.token), None)
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.world
            .call(Method::POST, path, Some(&self.token), Some(body))
            .await
    }

    pub async fn connections(&self) -> Value {
        let resp = self.get("/connections").await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
        resp.body
    }

    pub async fn connect_klaviyo(&self, key: &str) -> Response {
        self.put("/connections/klaviyo", json!({ "api_key": key }))
            .await
    }

    /// Start the install in the merchant's browser (the begin navigation sets its state cookie)
    /// and follow the sandbox's "merchant approves" redirect; returns the callback URL Shopify
    /// would send the browser to (not yet visited).
    pub async fn authorize_shopify(&self, shop: &str) -> String {
        let start = self
            .post("/connections/shopify", json!({ "shop": shop }))
            .await;
        assert_eq!(start.status, StatusCode::OK, "{:?}", start.body);
        let begin_url = start.body["authorize_url"].as_str().unwrap().to_owned();
        let begin = self.world.get_url(&begin_url).await;
        assert_eq!(begin.status, StatusCode::FOUND, "{:?}", begin.body);
        let authorize_url = begin.location.expect("begin redirects to Shopify");
        let approve = self.world.http.get(&authorize_url).send().await.unwrap();
        assert_eq!(
            approve.status(),
            StatusCode::FOUND,
            "the sandbox approves the install"
        );
        approve.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Connects the sandbox's full-access Klaviyo key and installs on the demo shop.
    pub async fn connect_demo_accounts(&self) {
        let key = self.world.stack.sandbox.full_access_klaviyo_key();
        assert_eq!(self.connect_klaviyo(&key).await.status, StatusCode::OK);
        assert_eq!(
            self.connect_shopify(DEMO_SHOP).await.install_outcome(),
            "connected"
        );
    }

    /// The whole install: authorize, visit the callback, wait for the first sync.
    pub async fn connect_shopify(&self, shop: &str) -> Response {
        let callback = self.authorize_shopify(shop).await;
        let resp = self.world.get_url(&callback).await;
        self.world.settle().await;
        resp
    }
}

/// Re-sign a callback query with the sandbox's app secret after changing it, as an attacker who
/// knew the secret could; used to show the state and shop checks hold on their own.
pub fn resign(query: &[(String, String)], secret: &str) -> String {
    use hmac_sha256::sign;
    let mut pairs: Vec<(String, String)> =
        query.iter().filter(|(k, _)| k != "hmac").cloned().collect();
    pairs.sort();
    let message = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    out.append_pair("hmac", &sign(secret, &message));
    out.finish()
}

mod hmac_sha256 {
    /// Independent of the production verifier on purpose: the test must not trust the code under test.
    pub fn sign(secret: &str, message: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

pub fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn with_query(url: &str, query: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_query(Some(query));
    parsed.to_string()
}

/// An SQS event of one record, shaped as Lambda delivers it, for invoking a function directly.
pub fn sqs_event(
    message_id: &str,
    body: &serde_json::Value,
    source_arn: &str,
) -> serde_json::Value {
    json!({ "Records": [{
        "messageId": message_id, "receiptHandle": "r", "body": body.to_string(),
        "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": source_arn, "awsRegion": "us-east-1"
    }]})
}

/// A sync-queue ARN for events that do not depend on the real queue.
pub const SYNC_QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:sync";

// Personalization runs: audiences, Klaviyo read-back, waiting for a run, its accounting.

pub async fn audience(merchant: &Merchant<'_>, name: &str) -> Value {
    let resp = merchant.get("/audiences").await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    resp.body["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .expect("audience exists")
}

pub fn klaviyo(world: &World) -> (KlaviyoClient, KlaviyoApiKey) {
    let client = KlaviyoClient::new(
        reqwest::Client::new(),
        world.stack.sandbox.klaviyo_base_url(),
        "2026-07-15".into(),
    );
    (
        client,
        KlaviyoApiKey::parse(&world.stack.sandbox.full_access_klaviyo_key()).unwrap(),
    )
}

/// The first `n` member ids of a segment (a run capped at `n` personalizes exactly these).
pub async fn first_members(world: &World, segment: &Value, n: usize) -> Vec<String> {
    let (client, key) = klaviyo(world);
    let mut ids = first_page(&client, &key, segment).await;
    ids.truncate(n);
    ids
}

/// Deliver one message of a work queue (by logical id) to the worker, as its event source
/// mapping would; returns the partial-batch response.
pub async fn deliver_work(world: &World, queue: &str, message_id: &str, body: &Value) -> Value {
    let arn = world
        .stack
        .resources
        .arn(queue)
        .unwrap_or_default()
        .to_owned();
    world
        .stack
        .invoke(
            "PersonalizeWorkerFunction",
            sqs_event(message_id, body, &arn),
        )
        .await
        .unwrap()
}

/// The first page (up to 100) of a segment's member ids, read from Klaviyo directly.
pub async fn first_page(
    client: &KlaviyoClient,
    key: &KlaviyoApiKey,
    segment: &Value,
) -> Vec<String> {
    let id = segment["id"].as_str().unwrap();
    client
        .audience_page(key, shared::klaviyo::AudienceKind::Segment, id, None)
        .await
        .unwrap()
        .0
}

pub async fn run_and_wait(world: &World, merchant: &Merchant<'_>, body: Value) -> Value {
    let created = merchant.post("/runs", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    world.settle().await;
    let id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    merchant.get(&format!("/runs/{id}")).await.body
}

pub fn assert_adds_up(run: &Value) {
    let c = &run["counts"];
    let sum = |m: &Value| {
        m.as_object()
            .map(|o| o.values().map(|v| v.as_u64().unwrap()).sum::<u64>())
            .unwrap_or(0)
    };
    let accounted = c["written"].as_u64().unwrap()
        + c["holdout"].as_u64().unwrap()
        + sum(&c["skipped"])
        + sum(&c["failed"]);
    assert_eq!(
        accounted,
        c["total"].as_u64().unwrap(),
        "total = written + holdout + skipped + failed: {run}"
    );
}

pub async fn bedrock_fault(world: &World, mode: &str, count: i64) {
    world
        .sandbox(
            Method::POST,
            "/_sandbox/bedrock/faults",
            json!({ "mode": mode, "count": count }),
        )
        .await;
}

/// The next message on the work queue (queues are not delivered in these tests), deleted.
/// A follow-up whose job is not done yet is sent on again, so the last one wins.
pub async fn next_work_message(world: &World) -> Value {
    for _ in 0..6 {
        if let Some(m) = take_messages(world, "WorkQueue", 10, 1).await.pop() {
            return m;
        }
    }
    panic!("no message reached the work queue in a minute");
}

/// Receive and delete up to `max` messages of a queue (by logical id), waiting up to `wait_secs`
/// for the first: what a lost message looks like, or a message to deliver by hand.
pub async fn take_messages(world: &World, queue: &str, wait_secs: i32, max: usize) -> Vec<Value> {
    let sqs = world.stack.aws.sqs();
    let url = world
        .stack
        .resources
        .queue_url(queue)
        .unwrap_or_else(|| panic!("no queue {queue}"))
        .to_owned();
    let mut taken = Vec::new();
    while taken.len() < max {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(if taken.is_empty() { wait_secs } else { 0 })
            .max_number_of_messages((max - taken.len()).min(10) as i32)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            taken.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
    taken
}

/// Connect both sides when queues are not delivered: run the first sync by hand.
pub async fn connected_without_queues<'w>(world: &'w World, sub: &str) -> Merchant<'w> {
    let merchant = world.merchant(sub).await;
    assert_eq!(
        merchant
            .connect_klaviyo(&world.stack.sandbox.full_access_klaviyo_key())
            .await
            .status,
        StatusCode::OK
    );
    let callback = merchant.authorize_shopify(DEMO_SHOP).await;
    assert_eq!(
        world.get_url(&callback).await.install_outcome(),
        "connected"
    );
    let sync = sqs_event(
        "s1",
        &json!({"merchant_id": sub, "reason": "connected"}),
        SYNC_QUEUE_ARN,
    );
    world
        .stack
        .invoke("CatalogSyncFunction", sync)
        .await
        .unwrap();
    merchant
}

/// A user in the stack's Cognito pool (moto), and a token for them from the sandbox issuer with
/// the same `sub` and `username`, as Cognito's access tokens carry; with the Cognito username.
pub async fn cognito_merchant<'w>(world: &'w World, email: &str) -> (Merchant<'w>, String) {
    let pool = world
        .stack
        .resources
        .get("UserPool")
        .expect("the template's user pool exists locally")
        .name
        .clone();
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(world.stack.aws.config());
    let created = cognito
        .admin_create_user()
        .user_pool_id(&pool)
        .username(email)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email")
                .value(email)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("AdminCreateUser");
    let user = created.user().unwrap();
    let username = user.username().unwrap().to_owned();
    let sub = user
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap()
        .to_owned();
    let token: Value = world
        .http
        .post(format!("{}/token", world.stack.sandbox.cognito_issuer()))
        .json(&json!({ "sub": sub, "username": username, "email": email }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let merchant = Merchant {
        world,
        token: token["access_token"].as_str().unwrap().to_owned(),
        sub: sub.clone(),
    };
    (merchant, username)
}
