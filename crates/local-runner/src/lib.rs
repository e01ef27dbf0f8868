//! The local runner plays AWS around SendPersonal's Lambda handlers on one machine:
//!
//! - **API Gateway HTTP API**: every `HttpApi` event of template.yaml becomes a route; the JWT
//!   authorizer checks tokens against the sandbox's Cognito-like issuer; requests become payload
//!   format 2.0 events and responses go back as HTTP ([`api`]).
//! - **SQS event source mappings**: every `SQS` event gets pollers that deliver `SqsEvent`s and
//!   honour partial batch responses; moto redrives to the DLQ ([`queues`]).
//! - **EventBridge schedules**: [`LocalStack::fire_schedule`] on demand, or
//!   [`LocalStack::spawn_schedules`] on each `rate(...)` interval.
//!
//! AWS itself is moto (`AWS_ENDPOINT_URL`); vendors are the sandbox crate, served in-process.
//! Tables, queues, routes and environment all come from template.yaml, so local and deployed
//! cannot drift.

pub mod api;
pub mod auth;
pub mod console;
pub mod console_headers;
pub mod error;
pub mod grounding_corpus;
pub mod handlers;
pub mod intrinsics;
mod invoker;
mod provision;
pub mod queues;
pub mod resources;
pub mod template;

pub use error::StackError;
pub use resources::{Physical, ResourceKind, Resources};
pub use shared::edge::Function;
pub use template::Template;

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::aws_message;
use crate::intrinsics::{Resolver, ACCOUNT_ID};
use crate::invoker::Invoker;

/// Where the console is served locally (the `AppBaseUrl` the local stack runs with): the API's
/// CORS origin and where OAuth returns the browser.
pub const LOCAL_CONSOLE_ORIGIN: &str = "http://localhost:5173";

/// The app client the sandbox issuer mints tokens for: the local JWT authorizer's audience.
pub use sandbox::COGNITO_APP_CLIENT_ID as APP_CLIENT_ID;

pub struct StackOptions {
    pub sandbox: sandbox::SandboxConfig,
    /// Resource name prefix so parallel tests share one moto without colliding; default random like "t3k9x-".
    pub prefix: String,
    /// Poll queues and deliver to functions in the background (default true).
    pub run_queues: bool,
    /// Default: the workspace's template.yaml.
    pub template_path: PathBuf,
    /// Port of the local API Gateway on 127.0.0.1 (0 = any free port).
    pub api_port: u16,
    /// Template parameter values (over the template's defaults and the runner's local values).
    pub parameters: HashMap<String, String>,
    /// Environment variables set on every function after all other resolution.
    pub env_overrides: HashMap<String, String>,
    /// Serve the merchant console (`console/dist` and `/config.json`) on its own port; the
    /// stack's `AppBaseUrl` is then its origin (CORS, the OAuth return). Default: off.
    pub console: Option<console::ConsoleOptions>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            sandbox: sandbox::SandboxConfig::default(),
            prefix: random_prefix(),
            run_queues: true,
            template_path: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../template.yaml"
            )),
            api_port: 0,
            parameters: HashMap::new(),
            env_overrides: HashMap::new(),
            console: None,
        }
    }
}

/// `t3k9x-`: five random lowercase letters and digits.
pub fn random_prefix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let first = (b'a' + rng.gen_range(0..26)) as char;
    let rest: String = (0..4)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect();
    format!("{first}{rest}-")
}

pub struct LocalStack {
    /// `http://127.0.0.1:PORT` of the local API Gateway.
    pub api_url: String,
    /// `http://127.0.0.1:PORT` of the merchant console, when [`StackOptions::console`] asked for it.
    pub console_url: Option<String>,
    pub sandbox: sandbox::Sandbox,
    /// Logical id → physical name / URL / ARN.
    pub resources: Resources,
    pub aws: shared::aws::Aws,
    pub template: Template,
    pub prefix: String,
    pub region: String,
    envs: HashMap<String, HashMap<String, String>>,
    /// The template parameters the stack runs with (defaults, local values, the caller's).
    pub parameters: HashMap<String, String>,
    invoker: Arc<Invoker>,
    mappings: Vec<queues::Mapping>,
    http: reqwest::Client,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<LocalStack, StackError> {
        Self::start_with(options, HashMap::new()).await
    }

    /// Like [`start`](Self::start), with some functions' handlers replaced (by logical id);
    /// replaced functions are not initialised. Useful for fault tests of the runner itself.
    pub async fn start_with(
        options: StackOptions,
        overrides: HashMap<String, Arc<dyn Function>>,
    ) -> Result<LocalStack, StackError> {
        if std::env::var("AWS_ENDPOINT_URL")
            .map(|v| v.trim().is_empty())
            .unwrap_or(true)
        {
            return Err(StackError::NoMoto);
        }
        let template = Template::load(&options.template_path)?;
        for id in overrides.keys() {
            if template.function(id).is_none() {
                return Err(StackError::UnknownFunction(id.clone()));
            }
        }
        let prefix = options.prefix.clone();

        let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sandbox = sandbox::serve(sandbox_listener, options.sandbox).await;

        let aws = shared::aws::sdk_config().await;
        let aws = if aws.region().is_none() {
            aws.to_builder()
                .region(aws_config::Region::from_static("us-east-1"))
                .build()
        } else {
            aws
        };
        let aws = shared::aws::Aws::new(aws);
        let shopify_client_id = sandbox.config().shopify_client_id.clone();
        let shopify_client_secret = sandbox.config().shopify_client_secret.clone();
        let region = aws
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());

        let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", options.api_port)).await?;
        let api_url = format!("http://{}", api_listener.local_addr()?);
        let console_listener = match &options.console {
            Some(c) => Some(tokio::net::TcpListener::bind(("127.0.0.1", c.port)).await?),
            None => None,
        };
        let console_url = match &console_listener {
            Some(l) => Some(format!("http://{}", l.local_addr()?)),
            None => None,
        };

        // Parameters: template defaults, then what the local stack needs, then the caller's.
        let mut parameters: HashMap<String, String> = template
            .parameters
            .iter()
            .filter_map(|(k, p)| p.default.clone().map(|d| (k.clone(), d)))
            .collect();
        let secret_id_default = parameters.get("ShopifyClientSecretId").cloned();
        for (k, v) in [
            // The account's Bedrock quota is the sandbox's; each container paces to its
            // template share of it, as deployed.
            (
                "BedrockRequestsPerMinute",
                sandbox.config().bedrock_rpm.to_string(),
            ),
            (
                "BedrockTokensPerMinute",
                sandbox.config().bedrock_tpm.to_string(),
            ),
            (
                "BedrockOutputBurndown",
                sandbox.config().bedrock_output_burndown.to_string(),
            ),
            ("ShopifyClientId", shopify_client_id.clone()),
            ("ApiPublicUrl", api_url.clone()),
            // The console's origin: the API's only CORS origin and where OAuth returns to. Locally
            // the console is not behind the stack's CloudFront distribution, so it is given (the
            // template derives it from the distribution when empty).
            (
                "AppBaseUrl",
                console_url
                    .clone()
                    .unwrap_or_else(|| LOCAL_CONSOLE_ORIGIN.to_owned()),
            ),
            (
                "ShopifyClientSecretId",
                format!(
                    "{prefix}{}",
                    secret_id_default
                        .as_deref()
                        .unwrap_or("sendpersonal/app/shopify-client-secret")
                ),
            ),
        ] {
            if template.parameters.contains_key(k) {
                parameters.insert(k.to_owned(), v);
            }
        }
        parameters.extend(options.parameters.clone());

        let resources = provision::Provisioner {
            template: &template,
            aws: &aws,
            prefix: &prefix,
            region: &region,
            parameters: &parameters,
        }
        .run()
        .await?;

        // Each function's environment, resolved against the local resources, then localised.
        let resolver = Resolver {
            template: &template,
            parameters: &parameters,
            resources: &resources,
            region: &region,
            stack_name: prefix.trim_end_matches('-'),
        };
        // The headers CloudFront adds to the console, with the local API and Cognito as hosts.
        let console_headers = match &options.console {
            Some(_) => console_headers::console_headers(&resolver, &api_url, &sandbox.base_url)?,
            None => Vec::new(),
        };
        let mut envs = HashMap::new();
        for (id, f) in &template.functions {
            let mut env = HashMap::new();
            for (k, v) in &f.environment {
                if let Some(value) = resolver.resolve(v)? {
                    env.insert(k.clone(), value);
                }
            }
            let secret_prefix = env
                .get("SECRET_PREFIX")
                .cloned()
                .unwrap_or_else(|| "sendpersonal".into());
            env.insert("SECRET_PREFIX".into(), format!("{prefix}{secret_prefix}"));
            env.remove("SECRETS_KMS_KEY_ID");
            env.insert("KLAVIYO_BASE_URL".into(), sandbox.klaviyo_base_url());
            env.insert("BEDROCK_ENDPOINT_URL".into(), sandbox.bedrock_endpoint());
            env.insert(
                "SHOPIFY_BASE_URL_TEMPLATE".into(),
                sandbox.shopify_base_url_template(),
            );
            env.insert("SHOPIFY_CLIENT_ID".into(), shopify_client_id.clone());
            if env.contains_key("API_PUBLIC_URL") {
                env.insert("API_PUBLIC_URL".into(), api_url.clone());
            }
            env.insert(
                "SHOPIFY_REDIRECT_URI".into(),
                format!("{api_url}/connections/shopify/callback"),
            );
            env.insert("AWS_REGION".into(), region.clone());
            env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), format!("{prefix}{id}"));
            env.extend(options.env_overrides.clone());
            envs.insert(id.clone(), env);
        }

        // The Shopify app's client secret, where the functions will look for it.
        let secret_ids: BTreeSet<String> = envs
            .values()
            .filter_map(|e| e.get("SHOPIFY_CLIENT_SECRET_ID").cloned())
            .collect();
        let sm = aws.secrets();
        for id in secret_ids {
            provision::create_secret(&sm, &id, &shopify_client_secret).await?;
        }

        // Handlers: overrides first, every other function through its crate's `init`, once per
        // container when the template bounds its containers (each then has its own clients and
        // rate limiters, paced to its VENDOR_BUDGET_SHARE as a deployed container is).
        let mut functions = HashMap::new();
        let mut inits = Vec::new();
        for (id, f) in &template.functions {
            let timeout = Duration::from_secs(f.timeout_secs.max(1));
            let containers = f.reserved_concurrency.map(|n| n.max(1) as usize);
            if let Some(handler) = overrides.get(id) {
                let pool = match containers {
                    Some(n) => invoker::Containers::exclusive(vec![handler.clone(); n], timeout),
                    None => invoker::Containers::shared(handler.clone(), timeout),
                };
                functions.insert(id.clone(), pool);
                continue;
            }
            let config = shared::Config::from_map(&envs[id]).map_err(|e| StackError::Config {
                function: id.clone(),
                message: e.to_string(),
            })?;
            let binary = f.binary.clone().unwrap_or_default();
            let id = id.clone();
            inits.push(async move {
                let mut instances = Vec::new();
                for _ in 0..containers.unwrap_or(1) {
                    match handlers::init(&binary, config.clone()).await {
                        None => {
                            return Err(StackError::NoHandler {
                                function: id,
                                binary,
                            })
                        }
                        Some(Err(e)) => {
                            return Err(StackError::Init {
                                function: id,
                                message: e.to_string(),
                            })
                        }
                        Some(Ok(handler)) => instances.push(handler),
                    }
                }
                let pool = match containers {
                    Some(_) => invoker::Containers::exclusive(instances, timeout),
                    None => invoker::Containers::shared(instances.remove(0), timeout),
                };
                Ok((id, pool))
            });
        }
        functions.extend(futures::future::try_join_all(inits).await?);
        let invoker = Arc::new(Invoker::new(functions));

        let http = reqwest::Client::new();
        let app_clients =
            register_app_clients(&template, &resources, &resolver, &sandbox, &http).await?;
        let mut audiences = vec![APP_CLIENT_ID.to_owned()];
        audiences.extend(app_clients);
        let authorizer = Arc::new(
            auth::JwtAuthorizer::new(sandbox.cognito_issuer(), sandbox.jwks_url(), audiences)
                .await?,
        );
        let routes = template
            .functions
            .iter()
            .flat_map(|(id, f)| f.http_routes.iter().map(move |r| api::Route::new(id, r)))
            .collect();
        let cors = template
            .http_apis
            .values()
            .find_map(|a| a.properties.get("CorsConfiguration"))
            .map(|c| cors_config(c, &resolver))
            .transpose()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = api::router(Arc::new(api::Api {
            cors,
            routes,
            authorizer,
            invoker: invoker.clone(),
        }));
        let mut stop = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(
                api_listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "local API Gateway stopped");
            }
        });

        let mut mappings = Vec::new();
        for (id, f) in &template.functions {
            for m in f.sqs.iter().filter(|m| m.enabled) {
                let queue = resources
                    .get(&m.queue)
                    .ok_or_else(|| StackError::Template(format!("no queue {}", m.queue)))?;
                mappings.push(queues::Mapping {
                    function: id.clone(),
                    queue_logical_id: m.queue.clone(),
                    queue_url: queue.url.clone().unwrap_or_default(),
                    queue_arn: queue.arn.clone(),
                    batch_size: m.batch_size,
                    report_batch_item_failures: m.report_batch_item_failures,
                    pollers: m.maximum_concurrency.unwrap_or(queues::DEFAULT_POLLERS),
                });
            }
        }
        let mut tasks = vec![server];
        if let (Some(listener), Some(options), Some(origin)) =
            (console_listener, &options.console, &console_url)
        {
            // The app client the sandbox's managed login registered from the template.
            let client_id = resources
                .get("UserPoolClient")
                .map_or(APP_CLIENT_ID, |c| c.name.as_str());
            let config =
                console::ConsoleConfig::new(origin, &api_url, &sandbox.cognito_issuer(), client_id);
            let app = console::router(options.dist_dir.clone(), config, console_headers);
            let mut stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "console server stopped");
                }
            }));
        }
        if options.run_queues {
            tasks.extend(queues::spawn_pollers(
                &mappings,
                aws.sqs(),
                invoker.clone(),
                region.clone(),
                shutdown_rx,
            ));
        }
        tracing::info!(%api_url, sandbox = %sandbox.base_url, %prefix, "local stack ready");
        Ok(LocalStack {
            api_url,
            console_url,
            sandbox,
            resources,
            aws,
            template,
            prefix,
            region,
            envs,
            parameters,
            invoker,
            mappings,
            http,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    /// Connects `token`'s merchant as the console would: the Klaviyo key (when given), then the
    /// Shopify install through the real OAuth flow (the sandbox approves it at once). The first
    /// catalog sync is queued, not awaited.
    pub async fn connect_merchant(
        &self,
        http: &reqwest::Client,
        token: &str,
        klaviyo_key: Option<&str>,
        shop: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(key) = klaviyo_key {
            http.put(format!("{}/connections/klaviyo", self.api_url))
                .bearer_auth(token)
                .json(&serde_json::json!({ "api_key": key }))
                .send()
                .await?
                .error_for_status()?;
        }
        let start: serde_json::Value = http
            .post(format!("{}/connections/shopify", self.api_url))
            .bearer_auth(token)
            .json(&serde_json::json!({ "shop": shop }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let outcome =
            install_in_browser(start["authorize_url"].as_str().unwrap_or_default()).await?;
        if !outcome.ends_with("shopify=connected") {
            return Err(format!("the install did not complete: {outcome}").into());
        }
        Ok(())
    }

    /// The console's Cognito app client id (`!Ref UserPoolClient`, a client of the local pool).
    pub fn cognito_client_id(&self) -> Option<String> {
        self.resources.get("UserPoolClient").map(|p| p.name.clone())
    }

    /// The managed login's base URL (the CognitoDomainUrl output's local counterpart).
    pub fn cognito_domain(&self) -> String {
        self.sandbox.cognito_issuer()
    }

    /// The resolved value of a template parameter (e.g. `AppBaseUrl`).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// A valid access token for `merchant_sub` from the sandbox issuer (valid for an hour).
    pub async fn token(&self, merchant_sub: &str) -> String {
        self.token_expiring_in(merchant_sub, 3600)
            .await
            .unwrap_or_else(|e| panic!("the sandbox issuer refused a token: {e}"))
    }

    /// An access token expiring in `expires_in` seconds (negative: already expired).
    pub async fn token_expiring_in(
        &self,
        merchant_sub: &str,
        expires_in: i64,
    ) -> Result<String, StackError> {
        let url = format!("{}/token", self.sandbox.cognito_issuer());
        let body = json!({ "sub": merchant_sub, "email": format!("{merchant_sub}@example.com"), "expires_in": expires_in });
        let fail = |e: String| StackError::Sandbox(format!("POST {url}: {e}"));
        let resp: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| fail(e.to_string()))?
            .json()
            .await
            .map_err(|e| fail(e.to_string()))?;
        resp["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| fail("no access_token in the answer".into()))
    }

    /// Invokes the function's (first) Schedule event with a realistic EventBridge "Scheduled
    /// Event" (or the event's `Input`, which replaces it, as EventBridge does).
    pub async fn fire_schedule(&self, function_logical_id: &str) -> Result<Value, StackError> {
        let f = self
            .template
            .function(function_logical_id)
            .ok_or_else(|| StackError::UnknownFunction(function_logical_id.to_owned()))?;
        let schedule = f
            .schedules
            .first()
            .ok_or_else(|| StackError::NoSchedule(function_logical_id.to_owned()))?;
        let event = scheduled_event(schedule, &self.rule_arn(function_logical_id, schedule));
        self.invoker.invoke(function_logical_id, event).await
    }

    /// Fires every enabled `rate(...)` schedule on its interval until shutdown (first after one
    /// interval, as EventBridge does). `cron(...)` schedules are only fired on demand.
    pub fn spawn_schedules(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (id, f) in &self.template.functions {
            for s in f.schedules.iter().filter(|s| s.enabled) {
                let Some(every) = template::rate_interval(&s.expression) else {
                    tracing::warn!(function = %id, expression = %s.expression, "only rate() schedules fire on their own; use fire_schedule");
                    continue;
                };
                let rule_arn = self.rule_arn(id, s);
                let (invoker, id, s) = (self.invoker.clone(), id.clone(), s.clone());
                let mut stop = self.shutdown.subscribe();
                tasks.push(tokio::spawn(async move {
                    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    loop {
                        tokio::select! {
                            _ = ticks.tick() => {}
                            _ = stop.wait_for(|s| *s) => break,
                        }
                        match invoker.invoke(&id, scheduled_event(&s, &rule_arn)).await {
                            Ok(out) => tracing::info!(function = %id, output = %out, "schedule fired"),
                            Err(e) => tracing::warn!(function = %id, error = %e, "scheduled invocation failed"),
                        }
                    }
                }));
            }
        }
    }

    /// Direct invocation, like `cargo lambda invoke`.
    pub async fn invoke(
        &self,
        function_logical_id: &str,
        event: Value,
    ) -> Result<Value, StackError> {
        if !self.invoker.contains(function_logical_id) {
            return Err(StackError::UnknownFunction(function_logical_id.to_owned()));
        }
        self.invoker.invoke(function_logical_id, event).await
    }

    /// Waits until every polled queue is empty (visible, in flight and delayed messages all 0)
    /// and no invocation is running.
    pub async fn drain(&self, timeout: Duration) -> Result<(), StackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let sqs = self.aws.sqs();
        let urls: BTreeSet<&str> = self.mappings.iter().map(|m| m.queue_url.as_str()).collect();
        loop {
            let (in_flight, started) = self.invoker.activity();
            if in_flight == 0 && queues_empty(&sqs, &urls).await? {
                let (in_flight_after, started_after) = self.invoker.activity();
                if in_flight_after == 0 && started_after == started {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StackError::DrainTimeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The resolved environment of a function.
    pub fn function_env(&self, function_logical_id: &str) -> &HashMap<String, String> {
        self.envs
            .get(function_logical_id)
            .unwrap_or_else(|| panic!("{function_logical_id} is not a function of the template"))
    }

    /// The function's `Config`, as its `init` received it.
    pub fn config(&self, function_logical_id: &str) -> shared::Config {
        shared::Config::from_map(self.function_env(function_logical_id))
            .unwrap_or_else(|e| panic!("{function_logical_id}: {e}"))
    }

    /// The ARN of the EventBridge rule behind a Schedule event: its resolved `Name`, else
    /// `{prefix}{function}{event}`.
    pub fn rule_arn(&self, function_logical_id: &str, schedule: &template::ScheduleDef) -> String {
        let name = schedule
            .name
            .as_ref()
            .and_then(|n| {
                let resolver = self.resolver();
                resolver.resolve(n).ok().flatten()
            })
            .unwrap_or_else(|| {
                format!(
                    "{}{function_logical_id}{}",
                    self.prefix, schedule.event_name
                )
            });
        format!("arn:aws:events:{}:{ACCOUNT_ID}:rule/{name}", self.region)
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            template: &self.template,
            parameters: &self.parameters,
            resources: &self.resources,
            region: &self.region,
            stack_name: self.prefix.trim_end_matches('-'),
        }
    }

    /// The headers CloudFront adds to the console, for serving it locally: the deployed
    /// policy, with this stack's API and the sandbox's Cognito as the CSP's hosts.
    pub fn console_headers(&self) -> Result<Vec<(String, String)>, StackError> {
        console_headers::console_headers(&self.resolver(), &self.api_url, &self.sandbox.base_url)
    }

    /// The SQS event source mappings being emulated.
    pub fn mappings(&self) -> &[queues::Mapping] {
        &self.mappings
    }

    /// Stops the API server, the pollers, the schedules and the sandbox. A batch being delivered
    /// is abandoned; its messages reappear after their visibility timeout, as with Lambda.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a local-runner task did not stop within 5 s; aborting it");
                abort.abort();
            }
        }
        self.sandbox.shutdown();
    }
}

/// What a merchant's browser does with an install's `authorize_url`: the top-level navigation to
/// the API's begin URL (which sets the state cookie), Shopify's consent (the sandbox approves at
/// once and redirects to the callback), then the callback with the cookie. Returns where the
/// callback sent the browser (the console, with the outcome in the query).
pub async fn install_in_browser(
    authorize_url: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let location =
        |r: &reqwest::Response| -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
            r.headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!("{} answered {} without a redirect", r.url(), r.status()).into()
                })
        };
    let begin = browser.get(authorize_url).send().await?;
    let cookie = begin
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or("the begin navigation set no state cookie")?
        .to_owned();
    let approve = browser.get(location(&begin)?).send().await?;
    let callback = browser
        .get(location(&approve)?)
        .header("cookie", cookie)
        .send()
        .await?;
    location(&callback)
}

/// Registers every `AWS::Cognito::UserPoolClient` of the template with the sandbox's managed
/// login: its id (a moto client of the moto pool), its resolved CallbackURLs and LogoutURLs and
/// its pool's password policy, so the same template drives local sign-in. Returns the ids.
async fn register_app_clients(
    template: &Template,
    resources: &Resources,
    resolver: &Resolver<'_>,
    sandbox: &sandbox::Sandbox,
    http: &reqwest::Client,
) -> Result<Vec<String>, StackError> {
    let mut ids = Vec::new();
    for (id, r) in &template.resources {
        if r.kind != "AWS::Cognito::UserPoolClient" {
            continue;
        }
        let Some(client) = resources.get(id) else {
            continue;
        };
        let pool_id = r
            .properties
            .get("UserPoolId")
            .and_then(intrinsics::ref_target)
            .unwrap_or_default();
        let Some(pool) = resources.get(&pool_id) else {
            continue;
        };
        let urls = |key: &str| -> Result<Vec<String>, StackError> {
            let mut out = Vec::new();
            for v in r
                .properties
                .get(key)
                .and_then(serde_yaml::Value::as_sequence)
                .into_iter()
                .flatten()
            {
                out.extend(resolver.resolve(v)?);
            }
            Ok(out)
        };
        let policy = template
            .resources
            .get(&pool_id)
            .and_then(|p| p.properties.get("Policies"))
            .and_then(|p| p.get("PasswordPolicy"))
            .and_then(|p| serde_json::to_value(p).ok());
        let mut body = json!({
            "client_id": client.name,
            "user_pool_id": pool.name,
            "callback_urls": urls("CallbackURLs")?,
            "logout_urls": urls("LogoutURLs")?,
        });
        if let Some(policy) = policy {
            body["password_policy"] = policy;
        }
        let url = format!("{}/_sandbox/cognito/clients", sandbox.base_url);
        http.post(&url)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| StackError::Sandbox(format!("POST {url}: {e}")))?;
        ids.push(client.name.clone());
    }
    Ok(ids)
}

fn cors_config(c: &serde_yaml::Value, resolver: &Resolver<'_>) -> Result<api::Cors, StackError> {
    let list = |key: &str| -> Result<Vec<String>, StackError> {
        let mut out = Vec::new();
        for v in c
            .get(key)
            .and_then(serde_yaml::Value::as_sequence)
            .into_iter()
            .flatten()
        {
            out.extend(resolver.resolve(v)?);
        }
        Ok(out)
    };
    Ok(api::Cors {
        allow_origins: list("AllowOrigins")?,
        allow_methods: list("AllowMethods")?,
        allow_headers: list("AllowHeaders")?,
        expose_headers: list("ExposeHeaders")?,
        max_age: c.get("MaxAge").and_then(serde_yaml::Value::as_u64),
        allow_credentials: c
            .get("AllowCredentials")
            .and_then(serde_yaml::Value::as_bool)
            .unwrap_or(false),
    })
}

async fn queues_empty(
    sqs: &aws_sdk_sqs::Client,
    urls: &BTreeSet<&str>,
) -> Result<bool, StackError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    for url in urls {
        let out = sqs
            .get_queue_attributes()
            .queue_url(*url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| StackError::Aws(aws_message(&e)))?;
        let busy = out
            .attributes()
            .into_iter()
            .flatten()
            .any(|(_, v)| v.parse::<u64>().map(|n| n > 0).unwrap_or(false));
        if busy {
            return Ok(false);
        }
    }
    Ok(true)
}

/// EventBridge's "Scheduled Event" for a rule, or the schedule's `Input` in its place.
pub fn scheduled_event(schedule: &template::ScheduleDef, rule_arn: &str) -> Value {
    if let Some(input) = &schedule.input {
        return input.clone();
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    json!({
        "version": "0",
        "id": api::uuid_v4(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.format(&fmt).unwrap_or_default(),
        "region": rule_arn.split(':').nth(3).unwrap_or("us-east-1"),
        "resources": [rule_arn],
        "detail": {},
    })
}
