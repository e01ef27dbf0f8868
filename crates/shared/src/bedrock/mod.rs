//! Claude through Bedrock's Converse API, for structured output via one forced tool.
//!
//! [`BedrockClient::converse_tool`] sends a static system prompt (optionally followed by a
//! `cachePoint`, so Bedrock can cache the tools + system prefix across calls), one user message
//! and one tool whose `inputSchema` is the JSON Schema of the wanted output, forces that tool
//! (`toolChoice: {tool: {name}}`) and returns the tool's input as JSON plus the token usage.
//!
//! Retries are ours alone: the SDK's retry layer is disabled on the service config, because
//! its standard mode would retry throttling too (3 attempts, short backoff) underneath ours,
//! multiplying attempts and hiding them from our counters and from the run's accounting. Here
//! `ThrottlingException` and transient errors (model timeout, service unavailable, internal
//! server error, network) are retried with capped exponential backoff and full jitter; a
//! concurrency limit caps calls in flight per client (per container).
//!
//! Errors say what kind of failure happened, never what was in the prompt.

mod document;
mod guardrail;

pub use guardrail::{GuardrailCheck, GuardrailRef, GuardrailVerdict};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseOutput as Output,
    InferenceConfiguration, Message, SpecificToolChoice, StopReason, SystemContentBlock, Tool,
    ToolChoice, ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use rand::Rng;
use serde::Serialize;
use tokio::sync::Semaphore;

pub use self::document::{document_to_json, json_to_document};

/// Calls in flight per client unless [`BedrockClient::with_max_concurrency`] says otherwise.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Bounds one HTTP attempt; a long batch answer takes tens of seconds, a hung one never ends.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One forced-tool Converse call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolRequest {
    /// The system prompt that is the same across calls (the cacheable prefix).
    pub system_static: String,
    /// Append a `cachePoint` after `system_static`, caching tools + system.
    pub cache_system: bool,
    /// The per-call part: customers, products, the instruction to call the tool.
    pub user_message: String,
    pub tool_name: String,
    pub tool_description: String,
    /// JSON Schema of the tool's input: the structure the answer must have.
    pub tool_schema: serde_json::Value,
    pub max_tokens: i32,
    pub temperature: f32,
    /// Whose call this is (the merchant id): a pooled quota is shared fairly between tenants.
    pub tenant: String,
}

/// Token usage of one call, as Bedrock reports it: `input_tokens` excludes the cached part,
/// which is reported as cache reads and writes and priced separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}

/// The forced tool's input (still to be validated by the caller) and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResponse {
    pub input: serde_json::Value,
    pub stop_reason: String,
    pub usage: Usage,
}

#[derive(Debug, thiserror::Error)]
pub enum BedrockError {
    /// `ThrottlingException` on every attempt of the retry budget.
    #[error("Bedrock throttled the call on every attempt")]
    Throttled,
    /// Model timeout, service unavailable, internal server error or a network failure, on
    /// every attempt of the retry budget.
    #[error("Bedrock is unavailable: {0}")]
    Transient(String),
    /// `ValidationException`: the request itself is wrong (model id, limits, shape). Not retried.
    #[error("Bedrock rejected the request: {0}")]
    Invalid(String),
    /// `AccessDeniedException`: model access not granted or IAM denies `bedrock:InvokeModel`.
    #[error("Bedrock denied access: {0}")]
    AccessDenied(String),
    /// `ResourceNotFoundException`: the model or inference profile does not exist here.
    #[error("Bedrock model not found: {0}")]
    NotFound(String),
    /// `ModelErrorException`: the model failed on this input. Not retried.
    #[error("the model failed to process the request: {0}")]
    ModelError(String),
    /// `stopReason: max_tokens`: the tool input is cut short and unusable.
    #[error("the answer hit max_tokens and is truncated")]
    Truncated { usage: Usage },
    /// The answer holds no call of the forced tool.
    #[error("the answer holds no tool call (stop reason {stop_reason})")]
    NoToolUse { stop_reason: String, usage: Usage },
    /// Anything else (an unparseable response, an unknown error code, a bad request build).
    #[error("unexpected Bedrock failure: {0}")]
    Unexpected(String),
}

impl BedrockError {
    /// Whether another attempt can succeed (throttling and transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled | Self::Transient(_))
    }

    /// Tokens billed although the call failed (truncated or tool-less answers).
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Self::Truncated { usage } | Self::NoToolUse { usage, .. } => Some(*usage),
            _ => None,
        }
    }

    /// A short stable name for counters and skip reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Transient(_) => "transient",
            Self::Invalid(_) => "invalid",
            Self::AccessDenied(_) => "access_denied",
            Self::NotFound(_) => "not_found",
            Self::ModelError(_) => "model_error",
            Self::Truncated { .. } => "truncated",
            Self::NoToolUse { .. } => "no_tool_use",
            Self::Unexpected(_) => "unexpected",
        }
    }
}

/// Retry budget: `max_attempts` in total, sleeping a uniformly random time in
/// `[0, min(max_delay, base_delay × 2^(attempt-1))]` between them ("full jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            // Enough to ride out a spent one-minute quota window (~75 s of backoff expected).
            max_attempts: 10,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the sleep after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn jittered(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
    }
}

/// Counters over the client's life (all clones share them), for run accounting and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// `converse_tool` invocations.
    pub calls: u64,
    /// HTTP attempts sent (calls + retries).
    pub requests: u64,
    /// Calls that returned a tool input.
    pub succeeded: u64,
    /// Calls that ended in an error after their retries.
    pub failed: u64,
    /// `ThrottlingException` answers seen (each attempt counts).
    pub throttled: u64,
    /// Attempts repeated after a retryable error.
    pub retries: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    requests: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cache_read_tokens: AtomicU64,
    cache_write_tokens: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn add_usage(&self, u: &Usage) {
        Self::bump(&self.input_tokens, u.input_tokens);
        Self::bump(&self.output_tokens, u.output_tokens);
        Self::bump(&self.cache_read_tokens, u.cache_read_tokens);
        Self::bump(&self.cache_write_tokens, u.cache_write_tokens);
    }

    fn snapshot(&self) -> UsageTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UsageTotals {
            calls: get(&self.calls),
            requests: get(&self.requests),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            throttled: get(&self.throttled),
            retries: get(&self.retries),
            input_tokens: get(&self.input_tokens),
            output_tokens: get(&self.output_tokens),
            cache_read_tokens: get(&self.cache_read_tokens),
            cache_write_tokens: get(&self.cache_write_tokens),
        }
    }
}

/// A Bedrock Runtime client bound to one model (or inference profile) id. Cheap to clone;
/// clones share the concurrency limit and the counters.
#[derive(Clone, Debug)]
pub struct BedrockClient {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
    limiter: Arc<Semaphore>,
    retry: RetryPolicy,
    counters: Arc<Counters>,
    quota: Option<Arc<QuotaPacer>>,
}

/// The account's Bedrock quota for the model (requests and tokens per minute), or this
/// container's share of it: calls wait for room instead of meeting `ThrottlingException`s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub requests_per_minute: f64,
    pub tokens_per_minute: f64,
}

/// A sliding one-minute log of requests and tokens, kept the way Bedrock keeps its quota: a
/// request reserves `input + cache + maxTokens` when it starts and is settled to
/// `input + cache writes + output × burndown` when it ends (cache reads are released). Admission
/// waits for room for the larger of the reservation and the expected settlement, so the
/// settlements of admitted calls do not push the window over the quota afterwards.
///
/// Pooled (`BedrockClient::pooled`), the quota is the function's share over all its containers,
/// admitted through [`crate::budget`] per merchant: the estimate is taken from the pool and
/// never settled (a slot admits only in its own second, so giving back to it is moot).
struct QuotaPacer {
    quota: Quota,
    burndown: f64,
    log: tokio::sync::Mutex<std::collections::VecDeque<(std::time::Instant, f64)>>,
    learned: std::sync::Mutex<Learned>,
    pool: Option<PooledQuota>,
}

struct PooledQuota {
    requests: crate::budget::PooledBudget,
    tokens: crate::budget::PooledBudget,
}

impl std::fmt::Debug for QuotaPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaPacer")
            .field("quota", &self.quota)
            .field("pooled", &self.pool.is_some())
            .finish()
    }
}

/// What the pacer has learned from the answers so far.
#[derive(Debug, Clone, Copy)]
struct Learned {
    /// Input tokens per character of prompt (tokenizers differ by model family).
    tokens_per_char: f64,
    /// Average output tokens per call (unknown ahead of a call).
    output_tokens: Option<f64>,
}

impl QuotaPacer {
    const WINDOW: Duration = Duration::from_secs(60);

    fn new(quota: Quota, burndown: f64, model_id: &str) -> Self {
        Self {
            quota,
            burndown: burndown.max(1.0),
            log: tokio::sync::Mutex::new(Default::default()),
            learned: std::sync::Mutex::new(Learned {
                tokens_per_char: tokens_per_char_guess(model_id),
                output_tokens: None,
            }),
            pool: None,
        }
    }

    fn pooled(
        mut self,
        store: Arc<dyn crate::budget::SlotStore>,
        name: &str,
        model_id: &str,
    ) -> Self {
        use crate::budget::{PoolLimits, PooledBudget};
        // Bedrock publishes no per-second limit; a tenth of the minute a second keeps a fresh
        // minute from going out as one burst of hundreds of calls.
        let plan = |per_minute: f64| PoolLimits::new(per_minute, per_minute / 10.0);
        self.pool = Some(PooledQuota {
            requests: PooledBudget::new(
                store.clone(),
                format!("bedrock#{name}#{model_id}#requests"),
                plan(self.quota.requests_per_minute),
            )
            .per_tenant(),
            tokens: PooledBudget::new(
                store,
                format!("bedrock#{name}#{model_id}#tokens"),
                plan(self.quota.tokens_per_minute),
            )
            .per_tenant(),
        });
        self
    }

    /// (reservation Bedrock makes at the start, what the call is expected to settle to).
    fn estimate(&self, prompt_chars: usize, max_tokens: i32) -> (f64, f64) {
        let learned = *self.learned.lock().expect("learned lock");
        let input = prompt_chars as f64 * learned.tokens_per_char;
        let max_tokens = f64::from(max_tokens.max(1));
        let output = learned
            .output_tokens
            .unwrap_or(max_tokens / 2.0)
            .min(max_tokens);
        (input + max_tokens, input + output * self.burndown)
    }

    /// Learn from a finished call and return what it settles to against the quota.
    fn learn(&self, prompt_chars: usize, u: &Usage) -> f64 {
        let mut learned = self.learned.lock().expect("learned lock");
        let input_total = (u.input_tokens + u.cache_read_tokens + u.cache_write_tokens) as f64;
        if prompt_chars > 0 && input_total > 0.0 {
            let ratio = input_total / prompt_chars as f64;
            learned.tokens_per_char = 0.7 * learned.tokens_per_char + 0.3 * ratio;
        }
        let out = u.output_tokens as f64;
        learned.output_tokens = Some(match learned.output_tokens {
            None => out,
            Some(avg) => 0.8 * avg + 0.2 * out,
        });
        (u.input_tokens + u.cache_write_tokens) as f64 + out * self.burndown
    }

    /// Wait until one more request of `tokens` fits the window, then record it.
    async fn reserve(&self, tenant: &str, tokens: f64) -> std::time::Instant {
        if let Some(pool) = &self.pool {
            pool.requests.acquire(tenant, 1).await;
            pool.tokens.acquire(tenant, tokens.ceil() as u64).await;
            return std::time::Instant::now();
        }
        loop {
            let wait = {
                let mut log = self.log.lock().await;
                let now = std::time::Instant::now();
                while log
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) >= Self::WINDOW)
                {
                    log.pop_front();
                }
                let used: f64 = log.iter().map(|(_, n)| n).sum();
                let fits_requests = (log.len() as f64) < self.quota.requests_per_minute;
                // A single call larger than the whole quota still goes, alone.
                let fits_tokens = used + tokens <= self.quota.tokens_per_minute || log.is_empty();
                if fits_requests && fits_tokens {
                    log.push_back((now, tokens));
                    return now;
                }
                log.front().map_or(Duration::from_millis(50), |(t, _)| {
                    (*t + Self::WINDOW).saturating_duration_since(now)
                })
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }

    /// Replace a reservation's estimate with what the call really used.
    async fn settle(&self, at: std::time::Instant, estimate: f64, actual: f64) {
        let mut log = self.log.lock().await;
        if let Some(entry) = log
            .iter_mut()
            .find(|(t, n)| *t == at && (*n - estimate).abs() < f64::EPSILON)
        {
            entry.1 = actual;
        }
    }
}

/// Input tokens per character before any answer has been seen: ~4 characters a token for
/// Claude 4.x; Claude 5.x's tokenizer counts the same text as about 30% more tokens.
fn tokens_per_char_guess(model_id: &str) -> f64 {
    if is_claude_5(model_id) {
        0.25 * 1.3
    } else {
        0.25
    }
}

/// Claude 5.x (`…claude-haiku-5-5`, `…claude-sonnet-5-5`): adaptive thinking is on unless
/// switched off, and its tokenizer differs.
fn is_claude_5(model_id: &str) -> bool {
    let id = model_id.to_ascii_lowercase();
    ["claude-haiku-5", "claude-sonnet-5", "claude-opus-5"]
        .iter()
        .any(|m| id.contains(m))
}

impl BedrockClient {
    /// Wraps an SDK client, rebuilt with the SDK's retries disabled (see the module docs).
    pub fn new(client: aws_sdk_bedrockruntime::Client, model_id: impl Into<String>) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            model_id: model_id.into(),
            limiter: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENCY)),
            retry: RetryPolicy::default(),
            counters: Arc::default(),
            quota: None,
        }
    }

    /// Pace calls to `quota` (see [`Quota`]) with output tokens counting `burndown` times;
    /// without it, throttling is met by retries only.
    pub fn with_quota(mut self, quota: Quota, burndown: f64) -> Self {
        self.quota = Some(Arc::new(QuotaPacer::new(quota, burndown, &self.model_id)));
        self
    }

    /// Pace to `quota` pooled with every container that uses the same `store` and `pool` name
    /// (`quota` is then the function's share), each merchant capped by the merchants active.
    pub fn with_pooled_quota(
        mut self,
        quota: Quota,
        burndown: f64,
        store: Arc<dyn crate::budget::SlotStore>,
        pool: &str,
    ) -> Self {
        self.quota = Some(Arc::new(
            QuotaPacer::new(quota, burndown, &self.model_id).pooled(store, pool, &self.model_id),
        ));
        self
    }

    /// From the container's `SdkConfig`. The endpoint follows the SDK's rules:
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` wins over `AWS_ENDPOINT_URL` (so locally Bedrock can
    /// point at the sandbox while every other client points at moto).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, model_id: impl Into<String>) -> Self {
        Self::from_sdk_at(sdk, model_id, None)
    }

    /// As [`Self::from_sdk`], with an explicit endpoint (`Config::bedrock_endpoint_url`) when
    /// one is configured: several local stacks in one process each have their own sandbox.
    pub fn from_sdk_at(
        sdk: &aws_config::SdkConfig,
        model_id: impl Into<String>,
        endpoint: Option<&str>,
    ) -> Self {
        let mut builder = aws_sdk_bedrockruntime::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let config = builder
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self::new(aws_sdk_bedrockruntime::Client::from_conf(config), model_id)
    }

    /// At most `n` (≥ 1) calls in flight across all clones made after this.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.limiter = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = RetryPolicy {
            max_attempts: policy.max_attempts.max(1),
            ..policy
        };
        self
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn usage_totals(&self) -> UsageTotals {
        self.counters.snapshot()
    }

    /// Calls the model with `request`'s tool forced and returns the tool's input.
    pub async fn converse_tool(&self, request: &ToolRequest) -> Result<ToolResponse, BedrockError> {
        Counters::bump(&self.counters.calls, 1);
        let result = self.converse_with_retries(request).await;
        match &result {
            Ok(r) => {
                Counters::bump(&self.counters.succeeded, 1);
                self.counters.add_usage(&r.usage);
            }
            Err(e) => {
                Counters::bump(&self.counters.failed, 1);
                if let Some(u) = e.usage() {
                    self.counters.add_usage(&u);
                }
            }
        }
        result
    }

    async fn converse_with_retries(
        &self,
        request: &ToolRequest,
    ) -> Result<ToolResponse, BedrockError> {
        let parts = Parts::build(request, &self.model_id)?;
        let prompt_chars = request.system_static.len()
            + request.user_message.len()
            + request.tool_schema.to_string().len();
        let mut attempt = 1;
        loop {
            let reservation = match &self.quota {
                Some(pacer) => {
                    let (reserved, settled) = pacer.estimate(prompt_chars, request.max_tokens);
                    let admit = reserved.max(settled);
                    Some((pacer.reserve(&request.tenant, admit).await, admit))
                }
                None => None,
            };
            let outcome = {
                // A closed semaphore is impossible (never closed); treat it as no limit.
                let _permit = self.limiter.acquire().await.ok();
                Counters::bump(&self.counters.requests, 1);
                self.send(&parts).await
            };
            let err = match outcome {
                Ok(out) => {
                    let result = read_output(&out, &request.tool_name);
                    if let (Some(pacer), Some((at, estimate))) = (&self.quota, reservation) {
                        let usage = match &result {
                            Ok(r) => Some(r.usage),
                            Err(e) => e.usage(),
                        };
                        if let Some(u) = usage {
                            let actual = pacer.learn(prompt_chars, &u);
                            pacer.settle(at, estimate, actual).await;
                        }
                    }
                    return result;
                }
                Err(e) => e,
            };
            if matches!(err, BedrockError::Throttled) {
                Counters::bump(&self.counters.throttled, 1);
            }
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                tracing::warn!(
                    model = %self.model_id,
                    attempts = attempt,
                    kind = err.kind(),
                    "bedrock converse failed"
                );
                return Err(err);
            }
            let delay = self.retry.jittered(attempt);
            tracing::debug!(
                attempt,
                kind = err.kind(),
                delay_ms = delay.as_millis() as u64,
                "bedrock retry"
            );
            Counters::bump(&self.counters.retries, 1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send(&self, parts: &Parts) -> Result<ConverseOutput, BedrockError> {
        self.client
            .converse()
            .model_id(&self.model_id)
            .set_system(Some(parts.system.clone()))
            .messages(parts.message.clone())
            .tool_config(parts.tool_config.clone())
            .inference_config(parts.inference.clone())
            .set_additional_model_request_fields(parts.additional.clone())
            .send()
            .await
            .map_err(classify)
    }
}

/// The SDK request pieces, built once per call and cloned per attempt.
struct Parts {
    system: Vec<SystemContentBlock>,
    message: Message,
    tool_config: ToolConfiguration,
    inference: InferenceConfiguration,
    /// `{"thinking": {"type": "disabled"}}` for Claude 5.x: copy needs no thinking (billed as
    /// output), and a forced tool cannot be combined with it.
    additional: Option<aws_smithy_types::Document>,
}

impl Parts {
    fn build(r: &ToolRequest, model_id: &str) -> Result<Self, BedrockError> {
        let bad = |e: aws_smithy_types::error::operation::BuildError| {
            BedrockError::Invalid(format!("request build: {e}"))
        };
        let mut system = vec![SystemContentBlock::Text(r.system_static.clone())];
        if r.cache_system {
            system.push(SystemContentBlock::CachePoint(
                CachePointBlock::builder()
                    .r#type(CachePointType::Default)
                    .build()
                    .map_err(bad)?,
            ));
        }
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(r.user_message.clone()))
            .build()
            .map_err(bad)?;
        let spec = ToolSpecification::builder()
            .name(&r.tool_name)
            .description(&r.tool_description)
            .input_schema(ToolInputSchema::Json(json_to_document(&r.tool_schema)))
            .build()
            .map_err(bad)?;
        let tool_config = ToolConfiguration::builder()
            .tools(Tool::ToolSpec(spec))
            .tool_choice(ToolChoice::Tool(
                SpecificToolChoice::builder()
                    .name(&r.tool_name)
                    .build()
                    .map_err(bad)?,
            ))
            .build()
            .map_err(bad)?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(r.max_tokens)
            .temperature(r.temperature)
            .build();
        let additional = is_claude_5(model_id)
            .then(|| json_to_document(&serde_json::json!({ "thinking": { "type": "disabled" } })));
        Ok(Self {
            system,
            message,
            tool_config,
            inference,
            additional,
        })
    }
}

fn token_count(n: Option<i32>) -> u64 {
    n.map(|n| n.max(0) as u64).unwrap_or(0)
}

fn read_output(out: &ConverseOutput, tool_name: &str) -> Result<ToolResponse, BedrockError> {
    let usage = out
        .usage()
        .map(|u| Usage {
            input_tokens: token_count(Some(u.input_tokens())),
            output_tokens: token_count(Some(u.output_tokens())),
            cache_read_tokens: token_count(u.cache_read_input_tokens()),
            cache_write_tokens: token_count(u.cache_write_input_tokens()),
        })
        .unwrap_or_default();
    let stop_reason = out.stop_reason().as_str().to_owned();
    if *out.stop_reason() == StopReason::MaxTokens {
        return Err(BedrockError::Truncated { usage });
    }
    let tool_use = match out.output() {
        Some(Output::Message(m)) => m.content().iter().find_map(|block| match block {
            ContentBlock::ToolUse(t) if t.name() == tool_name => Some(t),
            _ => None,
        }),
        _ => None,
    };
    match tool_use {
        Some(t) => Ok(ToolResponse {
            input: document_to_json(t.input()),
            stop_reason,
            usage,
        }),
        None => Err(BedrockError::NoToolUse { stop_reason, usage }),
    }
}

/// Maps an SDK failure (of Converse or ApplyGuardrail: they share the error codes) onto what
/// the caller should do about it.
fn classify<E>(err: SdkError<E, HttpResponse>) -> BedrockError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            let message = e.message().unwrap_or("").to_owned();
            let code = e.code().unwrap_or("unknown").to_owned();
            match code.as_str() {
                "ThrottlingException" => BedrockError::Throttled,
                "ModelTimeoutException"
                | "ServiceUnavailableException"
                | "InternalServerException"
                | "ModelNotReadyException" => BedrockError::Transient(format!("{code}: {message}")),
                "ValidationException" => BedrockError::Invalid(message),
                "AccessDeniedException" => BedrockError::AccessDenied(message),
                "ResourceNotFoundException" => BedrockError::NotFound(message),
                "ModelErrorException" => BedrockError::ModelError(message),
                _ if status == 429 => BedrockError::Throttled,
                _ if status == 408 || status >= 500 => {
                    BedrockError::Transient(format!("{code} (HTTP {status}): {message}"))
                }
                _ => BedrockError::Unexpected(format!("{code} (HTTP {status}): {message}")),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            BedrockError::Transient(format!("network: {}", crate::aws::describe(&err)))
        }
        SdkError::ResponseError(ctx) if ctx.raw().status().is_server_error() => {
            BedrockError::Transient(crate::aws::describe(&err))
        }
        _ => BedrockError::Unexpected(crate::aws::describe(&err)),
    }
}

/// The container's client as configuration says: model, endpoint, concurrency and quota share.
/// `pool` is where the function's containers pool the quota when `VENDOR_BUDGET_POOL` is set.
pub fn from_config(
    sdk: &aws_config::SdkConfig,
    config: &crate::Config,
    pool: Option<Arc<dyn crate::budget::SlotStore>>,
) -> BedrockClient {
    let client = BedrockClient::from_sdk_at(
        sdk,
        config.bedrock_model_id.clone(),
        config.bedrock_endpoint_url.as_deref(),
    )
    .with_max_concurrency(config.bedrock_max_concurrency);
    let Some((rpm, tpm)) = config.bedrock_quota else {
        return client;
    };
    let quota = Quota {
        requests_per_minute: rpm * config.vendor_budget_share,
        tokens_per_minute: tpm * config.vendor_budget_share,
    };
    match (pool, &config.vendor_budget_pool) {
        (Some(store), Some(name)) => {
            client.with_pooled_quota(quota, config.bedrock_output_burndown, store, name)
        }
        _ => client.with_quota(quota, config.bedrock_output_burndown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(500));
        assert_eq!(p.ceiling(2), Duration::from_secs(1));
        assert_eq!(p.ceiling(5), Duration::from_secs(8));
        assert_eq!(p.ceiling(7), Duration::from_secs(20));
        assert_eq!(p.ceiling(60), Duration::from_secs(20));
        for attempt in 1..8 {
            assert!(p.jittered(attempt) <= p.ceiling(attempt));
        }
    }

    #[test]
    fn only_throttling_and_transient_errors_are_retried() {
        assert!(BedrockError::Throttled.is_retryable());
        assert!(BedrockError::Transient("x".into()).is_retryable());
        assert!(!BedrockError::Invalid("x".into()).is_retryable());
        assert!(!BedrockError::AccessDenied("x".into()).is_retryable());
        assert!(!BedrockError::Truncated {
            usage: Usage::default()
        }
        .is_retryable());
    }

    #[test]
    fn forced_tool_request_caches_the_system_prompt_when_asked() {
        let parts = Parts::build(
            &ToolRequest {
                system_static: "static".into(),
                cache_system: true,
                user_message: "hi".into(),
                tool_name: "emit_copy".into(),
                tool_description: "d".into(),
                tool_schema: serde_json::json!({"type": "object"}),
                max_tokens: 100,
                temperature: 0.5,
                ..Default::default()
            },
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        )
        .unwrap();
        assert!(parts.additional.is_none());
        assert_eq!(parts.system.len(), 2);
        assert!(parts.system[1].is_cache_point());
        assert!(matches!(
            parts.tool_config.tool_choice(),
            Some(ToolChoice::Tool(t)) if t.name() == "emit_copy"
        ));
    }

    #[test]
    fn claude_5_requests_switch_thinking_off() {
        let request = ToolRequest {
            max_tokens: 100,
            tool_name: "emit_copy".into(),
            tool_schema: serde_json::json!({"type": "object"}),
            ..ToolRequest::default()
        };
        let parts = Parts::build(&request, "us.anthropic.claude-haiku-5-5").unwrap();
        let extra = parts.additional.map(|d| document_to_json(&d));
        assert_eq!(
            extra,
            Some(serde_json::json!({"thinking": {"type": "disabled"}}))
        );
    }

    #[test]
    fn the_pacer_admits_what_a_call_will_settle_to_with_the_burndown() {
        let pacer = QuotaPacer::new(
            Quota {
                requests_per_minute: 100.0,
                tokens_per_minute: 1e6,
            },
            5.0,
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        );
        // Before any answer: 4 characters a token, half of maxTokens expected.
        let (reserved, settled) = pacer.estimate(4_000, 2_000);
        assert_eq!(reserved, 1_000.0 + 2_000.0);
        assert_eq!(settled, 1_000.0 + 1_000.0 * 5.0);
        // An answer of 300 output tokens settles input + cache writes + 5 × output.
        let u = Usage {
            input_tokens: 900,
            output_tokens: 300,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
        };
        assert_eq!(pacer.learn(4_000, &u), 900.0 + 300.0 * 5.0);
        let (_, settled) = pacer.estimate(4_000, 2_000);
        assert_eq!(settled, 1_000.0 + 300.0 * 5.0);
        // Claude 5.x starts from its larger token count.
        assert!(tokens_per_char_guess("us.anthropic.claude-haiku-5-5") > 0.3);
    }
}
