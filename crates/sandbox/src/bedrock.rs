//! Bedrock Runtime's Converse API for Claude: `POST /bedrock/model/{modelId}/converse`.
//!
//! The real `aws-sdk-bedrockruntime` client reaches it with its endpoint set to
//! `{base_url}/bedrock`; SigV4 is not checked. Wire format, error codes (`x-amzn-ErrorType`
//! header and `__type` in the body), stop reasons and usage follow the real service:
//! - a forced tool (`toolChoice.tool`) is answered with `stopReason: "tool_use"` and one
//!   `toolUse` whose input fits the tool's schema, written from the customers in the request
//!   (see [`generate`]);
//! - tokens are ≈ characters / 4; a `cachePoint` after a prefix of at least the model's minimum
//!   (4,096 tokens for Haiku 4.5, else 1,024) writes the cache on first sight and reads it for
//!   5 minutes after, and `inputTokens` excludes the cached part, as Bedrock reports it;
//! - per-model requests- and tokens-per-minute quotas over a sliding 60 s window answer
//!   `ThrottlingException` when exceeded;
//! - `/_sandbox/bedrock/faults` makes the next calls misbehave (see [`FaultMode`]);
//! - `/_sandbox/bedrock/writer` switches to a model that writes varied copy in the requested
//!   language and makes labelled mistakes at set rates (see [`writer`]);
//! - `/_sandbox/bedrock/script` queues exact tool inputs for the next calls;
//! - `ApplyGuardrail` at `/bedrock/guardrail/{id}/version/{v}/apply` (see [`guardrail`]).

mod generate;
pub mod guardrail;
pub mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use self::generate::{Distortion, Prompt};
use self::writer::{DefectKind, Injected, WriterConfig};
use crate::state::AppState;
use crate::util::{query_get, query_pairs};

/// Mistakes kept for `GET /_sandbox/bedrock/injected` (the oldest go first).
const INJECTED_LOG_CAPACITY: usize = 100_000;
/// Requests kept for `GET /_sandbox/bedrock/requests`.
const REQUEST_LOG_CAPACITY: usize = 50;
const CACHE_TTL: Duration = Duration::from_secs(300);
const QUOTA_WINDOW: Duration = Duration::from_secs(60);
/// Largest `maxTokens` Claude Haiku 4.5 and Sonnet 4.5 accept.
const MODEL_MAX_OUTPUT_TOKENS: u64 = 64_000;
/// Used when the request sets no `maxTokens`.
const DEFAULT_MAX_TOKENS: u64 = 4_096;
const MAX_CACHE_POINTS: usize = 4;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/bedrock/model/{model_id}/converse", post(converse))
        .route(
            "/bedrock/guardrail/{guardrail_id}/version/{guardrail_version}/apply",
            post(guardrail::apply),
        )
}

/// How the next converse calls misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Names product `P9` (not a candidate) and a made-up title in the body.
    InventProduct,
    /// Adds "Use code SAVE20 for 20% off." to the body.
    InventDiscount,
    /// Mentions the first product at 80% of its listed price.
    WrongPrice,
    /// Body three times its `maxLength` (at least 600 characters).
    Overlong,
    /// The first entry lacks its body and `products` is a string.
    Malformed,
    /// `ThrottlingException` (429).
    Throttle,
    /// `InternalServerException` (500).
    Fail,
    /// `ModelTimeoutException` (408).
    Timeout,
    /// `ServiceUnavailableException` (503).
    Unavailable,
    /// Puts `jane.doe@example.com` and a last name in the body.
    LeakPii,
    /// `stopReason: "max_tokens"` with the tool input cut short.
    MaxTokens,
}

impl FaultMode {
    pub const ALL: [FaultMode; 11] = [
        Self::InventProduct,
        Self::InventDiscount,
        Self::WrongPrice,
        Self::Overlong,
        Self::Malformed,
        Self::Throttle,
        Self::Fail,
        Self::Timeout,
        Self::Unavailable,
        Self::LeakPii,
        Self::MaxTokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InventProduct => "invent_product",
            Self::InventDiscount => "invent_discount",
            Self::WrongPrice => "wrong_price",
            Self::Overlong => "overlong",
            Self::Malformed => "malformed",
            Self::Throttle => "throttle",
            Self::Fail => "fail",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::LeakPii => "leak_pii",
            Self::MaxTokens => "max_tokens",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    fn distortion(self) -> Distortion {
        match self {
            Self::InventProduct => Distortion::InventProduct,
            Self::InventDiscount => Distortion::InventDiscount,
            Self::WrongPrice => Distortion::WrongPrice,
            Self::Overlong => Distortion::Overlong,
            Self::Malformed => Distortion::Malformed,
            Self::LeakPii => Distortion::LeakPii,
            _ => Distortion::None,
        }
    }
}

#[derive(Debug)]
struct Fault {
    mode: FaultMode,
    /// Calls left; negative means until cleared.
    remaining: i64,
}

#[derive(Debug, Default)]
struct Quota {
    /// (when it started, requests, tokens, id): a call in flight holds its reservation
    /// (input + cache + maxTokens); a finished one what it settled to.
    entries: VecDeque<(Instant, u64, u64, u64)>,
    next_id: u64,
    in_flight: u64,
}

impl Quota {
    fn prune(&mut self, now: Instant) {
        while let Some((t, _, _, _)) = self.entries.front() {
            if now.duration_since(*t) >= QUOTA_WINDOW {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.entries
            .iter()
            .fold((0, 0), |(r, t), (_, dr, dt, _)| (r + dr, t + dt))
    }

    /// Replace call `id`'s reservation with `tokens` (or drop it: `None`, a failed call).
    fn settle(&mut self, id: u64, tokens: Option<u64>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(pos) = self.entries.iter().position(|e| e.3 == id) {
            match tokens {
                Some(t) => self.entries[pos].2 = t,
                None => {
                    self.entries.remove(pos);
                }
            }
        }
    }
}

/// How fast a model answers: time to first token, then input and output tokens per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSpeed {
    pub time_to_first_token_ms: f64,
    pub output_tokens_per_s: f64,
    pub input_tokens_per_s: f64,
    /// Each call's latency is multiplied by a random factor in [1 - jitter, 1 + jitter].
    pub jitter: f64,
}

impl ModelSpeed {
    /// Published third-party figures (NOTES §3.1): Haiku-class models about 0.6–0.8 s to the
    /// first token and 150–180 output tokens/s; Sonnet-class slower (about 1.3 s, 70 tokens/s).
    pub fn for_model(model_id: &str) -> Self {
        let haiku = model_id.to_ascii_lowercase().contains("haiku");
        Self {
            time_to_first_token_ms: if haiku { 700.0 } else { 1_300.0 },
            output_tokens_per_s: if haiku { 165.0 } else { 70.0 },
            input_tokens_per_s: 20_000.0,
            jitter: 0.25,
        }
    }

    fn latency(&self, input_tokens: u64, output_tokens: u64, unit: f64) -> Duration {
        let ms = self.time_to_first_token_ms
            + input_tokens as f64 / self.input_tokens_per_s * 1000.0
            + output_tokens as f64 / self.output_tokens_per_s * 1000.0;
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((ms * factor).max(0.0) / 1000.0)
    }
}

#[derive(Debug, Default)]
struct BedrockStats {
    requests: u64,
    succeeded: u64,
    throttled: u64,
    errors: BTreeMap<String, u64>,
    faults_applied: BTreeMap<String, u64>,
    by_model: BTreeMap<String, u64>,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_write_input_tokens: u64,
    throttled_requests: u64,
    throttled_tokens: u64,
    quota_tokens: u64,
    peak_in_flight: u64,
    /// Latency of every successful call, in ms.
    latencies_ms: Vec<u32>,
}

/// One queued answer from `/_sandbox/bedrock/script`.
#[derive(Debug)]
struct Scripted {
    input: Value,
    max_tokens: bool,
    /// Only for a call whose user message contains this text (so tests for several merchants
    /// can script at once); `None`: the next call.
    when_prompt_contains: Option<String>,
}

/// Everything the Bedrock emulation remembers: faults, quotas, the prompt cache, recent
/// requests and counters.
#[derive(Debug, Default)]
pub struct BedrockState {
    fault: Option<Fault>,
    writer: Option<WriterConfig>,
    injected: Vec<Injected>,
    script: VecDeque<Scripted>,
    pub guardrails: guardrail::GuardrailState,
    quotas: HashMap<String, Quota>,
    /// Prefix key → expiry.
    cache: HashMap<u64, Instant>,
    log: VecDeque<Value>,
    stats: BedrockStats,
}

impl BedrockState {
    /// The `bedrock` section of `/_sandbox/stats`.
    pub fn stats_json(&self) -> Value {
        let s = &self.stats;
        json!({
            "requests": s.requests,
            "succeeded": s.succeeded,
            "throttled": s.throttled,
            "errors": s.errors,
            "faults_applied": s.faults_applied,
            "requests_by_model": s.by_model,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cache_read_input_tokens": s.cache_read_input_tokens,
            "cache_write_input_tokens": s.cache_write_input_tokens,
            "throttled_by": { "requests": s.throttled_requests, "tokens": s.throttled_tokens },
            "quota_tokens": s.quota_tokens,
            "peak_in_flight": s.peak_in_flight,
            "latency_ms": latency_summary(&s.latencies_ms),
            "guardrails": self.guardrails.stats_json(),
        })
    }

    fn take_fault(&mut self) -> Option<FaultMode> {
        let fault = self.fault.as_mut()?;
        let mode = fault.mode;
        if fault.remaining > 0 {
            fault.remaining -= 1;
            if fault.remaining == 0 {
                self.fault = None;
            }
        }
        *self
            .stats
            .faults_applied
            .entry(mode.as_str().to_owned())
            .or_default() += 1;
        Some(mode)
    }

    fn error(&mut self, kind: &str) {
        *self.stats.errors.entry(kind.to_owned()).or_default() += 1;
        if kind == "ThrottlingException" {
            self.stats.throttled += 1;
        }
    }
}

fn latency_summary(samples: &[u32]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    json!({ "count": v.len(), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99),
            "max": v[v.len() - 1], "mean": mean.round() })
}

// ---------------------------------------------------------------------------------------------
// Controls (routed from controls.rs)

/// `POST /_sandbox/bedrock/faults {"mode": "...", "count": N}`; count -1 lasts until mode "none".
pub async fn set_faults(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return control_error(format!("body must be JSON: {e}")),
        }
    };
    let Some(mode) = req.get("mode").and_then(Value::as_str) else {
        return control_error("'mode' is required");
    };
    let count = req.get("count").and_then(Value::as_i64).unwrap_or(1);
    let mut b = st.bedrock();
    if mode == "none" || count == 0 {
        b.fault = None;
        return Json(json!({ "mode": "none", "count": 0 })).into_response();
    }
    let Some(parsed) = FaultMode::parse(mode) else {
        let modes: Vec<&str> = FaultMode::ALL.iter().map(|m| m.as_str()).collect();
        return control_error(format!(
            "'mode' must be none or one of {}",
            modes.join(", ")
        ));
    };
    b.fault = Some(Fault {
        mode: parsed,
        remaining: if count < 0 { -1 } else { count },
    });
    Json(json!({ "mode": mode, "count": count })).into_response()
}

/// `GET /_sandbox/bedrock/faults`: the fault in force, if any.
pub async fn get_faults(State(st): State<Arc<AppState>>) -> Json<Value> {
    let b = st.bedrock();
    Json(match &b.fault {
        Some(f) => json!({ "mode": f.mode.as_str(), "count": f.remaining }),
        None => json!({ "mode": "none", "count": 0 }),
    })
}

/// `GET /_sandbox/bedrock/requests?last=N`: `{"requests": [{model_id, body}]}`, oldest first.
pub async fn recent_requests(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Json<Value> {
    let pairs = query_pairs(q.as_deref());
    let last = query_get(&pairs, "last")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(REQUEST_LOG_CAPACITY);
    let b = st.bedrock();
    let skip = b.log.len().saturating_sub(last);
    let requests: Vec<Value> = b.log.iter().skip(skip).cloned().collect();
    Json(json!({ "requests": requests }))
}

/// `POST /_sandbox/bedrock/writer {"enabled": true, "seed": 7, "defect_rates": {"invented_offer":
/// 0.02, ...}}`: writer mode on or off. Without `defect_rates` the defaults apply (about 20% of
/// entries in all); with it, exactly the rates given (others 0). Rates are per customer entry,
/// each in 0..=1, summing to at most 1. `"reset": true` also clears the injected log.
pub async fn set_writer(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match crate::controls::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return control_error(e),
    };
    let enabled = req.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let seed = req
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(st.config.seed);
    let mut cfg = WriterConfig::new(enabled, seed);
    if let Some(rates) = req.get("defect_rates") {
        let Some(map) = rates.as_object() else {
            return control_error("'defect_rates' must be an object of kind: rate");
        };
        cfg.rates.clear();
        for (k, v) in map {
            let Some(kind) = DefectKind::parse(k) else {
                let kinds: Vec<&str> = DefectKind::ALL.iter().map(|k| k.as_str()).collect();
                return control_error(format!(
                    "unknown defect kind '{k}'; kinds: {}",
                    kinds.join(", ")
                ));
            };
            match v.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => {
                    cfg.rates.insert(kind, r);
                }
                _ => return control_error(format!("rate of '{k}' must be between 0 and 1")),
            }
        }
        if cfg.rates.values().sum::<f64>() > 1.0 + 1e-9 {
            return control_error("defect rates must sum to at most 1 (one mistake per entry)");
        }
    }
    let out = cfg.to_json();
    let mut b = st.bedrock();
    if req.get("reset").and_then(Value::as_bool) == Some(true) {
        b.injected.clear();
    }
    b.writer = Some(cfg);
    Json(out).into_response()
}

/// `GET /_sandbox/bedrock/writer`: the writer settings (`enabled: false` when off).
pub async fn get_writer(State(st): State<Arc<AppState>>) -> Json<Value> {
    let b = st.bedrock();
    Json(match &b.writer {
        Some(w) => w.to_json(),
        None => WriterConfig::new(false, st.config.seed).to_json(),
    })
}

/// `GET /_sandbox/bedrock/injected`: `{"injected": [{call, profile_ref, kind, slot, fragment}]}`.
pub async fn get_injected(State(st): State<Arc<AppState>>) -> Json<Value> {
    let b = st.bedrock();
    Json(json!({ "injected": b.injected.iter().map(Injected::to_json).collect::<Vec<_>>() }))
}

/// `DELETE /_sandbox/bedrock/injected`: clears the log.
pub async fn clear_injected(State(st): State<Arc<AppState>>) -> Json<Value> {
    let mut b = st.bedrock();
    let n = b.injected.len();
    b.injected.clear();
    Json(json!({ "cleared": n }))
}

/// `POST /_sandbox/bedrock/script {"outputs": [{"input": {...}, "stop_reason": "tool_use" |
/// "max_tokens", "when_prompt_contains"?: "text"}]}`: appended to the queue; each Converse call
/// takes the oldest whose condition its user message meets.
pub async fn push_script(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req = match crate::controls::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return control_error(e),
    };
    let Some(outputs) = req.get("outputs").and_then(Value::as_array) else {
        return control_error("'outputs' must be a list of {input, stop_reason}");
    };
    let mut parsed = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        let Some(input) = o.get("input").filter(|v| v.is_object()) else {
            return control_error(format!("outputs[{i}].input must be a JSON object"));
        };
        let max_tokens = match o.get("stop_reason").and_then(Value::as_str) {
            None | Some("tool_use") => false,
            Some("max_tokens") => true,
            Some(other) => {
                return control_error(format!(
                    "outputs[{i}].stop_reason must be tool_use or max_tokens, not '{other}'"
                ))
            }
        };
        let when_prompt_contains = o
            .get("when_prompt_contains")
            .and_then(Value::as_str)
            .map(str::to_owned);
        parsed.push(Scripted {
            input: input.clone(),
            max_tokens,
            when_prompt_contains,
        });
    }
    let mut b = st.bedrock();
    b.script.extend(parsed);
    Json(json!({ "queued": b.script.len() })).into_response()
}

/// `GET /_sandbox/bedrock/script`: `{"queued": n}`.
pub async fn get_script(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "queued": st.bedrock().script.len() }))
}

/// `DELETE /_sandbox/bedrock/script[?when_prompt_contains=text]`: empties the queue, or drops
/// the outputs queued with exactly that condition.
pub async fn clear_script(
    State(st): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Json<Value> {
    let only: Option<String> = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "when_prompt_contains")
            .map(|(_, v)| v.into_owned())
    });
    let mut b = st.bedrock();
    let before = b.script.len();
    match &only {
        Some(text) => b
            .script
            .retain(|s| s.when_prompt_contains.as_deref() != Some(text.as_str())),
        None => b.script.clear(),
    }
    let queued = b.script.len();
    Json(json!({ "cleared": before - queued, "queued": queued }))
}

pub(crate) fn control_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Errors as the service sends them

fn aws_error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Json(json!({ "__type": kind, "message": message }))).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(kind) {
        headers.insert(HeaderName::from_static("x-amzn-errortype"), v);
    }
    headers.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_str(&request_id(message.len() as u64 ^ status.as_u16() as u64))
            .unwrap_or(HeaderValue::from_static("0")),
    );
    resp
}

fn validation(message: &str) -> Response {
    aws_error(400, "ValidationException", message)
}

fn request_id(seed: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let h = generate::hash_bytes(&(seed ^ nanos).to_le_bytes());
    let h2 = generate::hash_bytes(&h.to_le_bytes());
    let hex = format!("{h:016x}{h2:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// The request

/// Whether the id names a Claude model the way Bedrock accepts it on demand: through an
/// inference profile (`us.`, `eu.`, `apac.`, `global.` + base id) or an inference-profile ARN.
fn check_model(model_id: &str) -> Result<(), String> {
    let id = model_id.to_ascii_lowercase();
    let base = id
        .strip_prefix("us.")
        .or_else(|| id.strip_prefix("eu."))
        .or_else(|| id.strip_prefix("apac."))
        .or_else(|| id.strip_prefix("global."));
    let is_arn = id.starts_with("arn:aws:bedrock:") && id.contains("inference-profile/");
    if !id.contains("anthropic.claude-") {
        return Err("The provided model identifier is invalid.".into());
    }
    if base.is_none() && !is_arn {
        return Err(format!(
            "Invocation of model ID {model_id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
        ));
    }
    Ok(())
}

fn min_cache_tokens(model_id: &str) -> u64 {
    if model_id.to_ascii_lowercase().contains("haiku") {
        4_096
    } else {
        1_024
    }
}

/// Quarter-tokens of one character: ASCII about 4 characters a token, other Latin-script
/// letters (accents, ł, ß) about 2, CJK and kana about 0.75 tokens each.
fn char_units(c: char) -> u64 {
    if c.is_ascii() {
        1
    } else if ('\u{3000}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c) {
        3
    } else {
        2
    }
}

/// Quarter-token units of `text` (see [`char_units`]); `tokens_for` turns them into tokens.
fn text_units(text: &str) -> u64 {
    text.chars().map(char_units).sum()
}

/// How many characters of `text` fit in `tokens` output tokens.
fn chars_within(model_id: &str, text: &str, tokens: u64) -> usize {
    let mut units = 0;
    for (i, c) in text.chars().enumerate() {
        units += char_units(c);
        if tokens_for(model_id, units) > tokens {
            return i;
        }
    }
    text.chars().count()
}

/// Tokens of `chars` quarter-token units (≈ characters for ASCII text): ≈ 4 a token for Claude
/// 4.x; Claude 5.x's tokenizer counts the same text as about 30% more tokens.
fn tokens_for(model_id: &str, chars: u64) -> u64 {
    let id = model_id.to_ascii_lowercase();
    let claude_5 = ["haiku-5", "sonnet-5", "opus-5"]
        .iter()
        .any(|m| id.contains(m));
    if claude_5 {
        (chars * 13).div_ceil(40)
    } else {
        chars.div_ceil(4)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ToolChoice {
    Auto,
    Any,
    Tool,
}

struct Request {
    system: Vec<String>,
    user_text: String,
    /// (name, input schema)
    tools: Vec<(String, Value)>,
    choice: Option<(ToolChoice, Option<String>)>,
    max_tokens: u64,
    total_chars: u64,
    /// For each cache point: (prefix key, prefix chars).
    cache_points: Vec<(u64, u64)>,
}

/// Running prefix over tools → system → messages, the order the model reads them in.
struct Prefix {
    hash: u64,
    chars: u64,
    points: Vec<(u64, u64)>,
}

impl Prefix {
    fn add(&mut self, text: &str) {
        let mut bytes = self.hash.to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        self.hash = generate::hash_bytes(&bytes);
        self.chars += text_units(text);
    }

    fn cache_point(&mut self) {
        self.points.push((self.hash, self.chars));
    }
}

fn parse_request(model_id: &str, v: &Value) -> Result<Request, String> {
    let obj = v
        .as_object()
        .ok_or("Malformed input request, please reformat your input and try again.")?;
    let mut prefix = Prefix {
        hash: generate::hash_str(model_id),
        chars: 0,
        points: Vec::new(),
    };

    // Tools
    let mut tools = Vec::new();
    let mut choice = None;
    if let Some(cfg) = obj.get("toolConfig") {
        let list = cfg
            .get("tools")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or("toolConfig.tools must contain at least one tool.")?;
        for tool in list {
            if tool.get("cachePoint").is_some() {
                prefix.cache_point();
                continue;
            }
            let spec = tool
                .get("toolSpec")
                .ok_or("Each tool must be a toolSpec or a cachePoint.")?;
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or("toolSpec.name is required.")?;
            let schema = spec
                .get("inputSchema")
                .and_then(|s| s.get("json"))
                .cloned()
                .ok_or("toolSpec.inputSchema.json is required.")?;
            prefix.add(&serde_json::to_string(spec).unwrap_or_default());
            tools.push((name.to_owned(), schema));
        }
        if tools.is_empty() {
            return Err("toolConfig.tools must contain at least one toolSpec.".into());
        }
        if let Some(tc) = cfg.get("toolChoice") {
            choice = Some(if let Some(t) = tc.get("tool") {
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("toolChoice.tool.name is required.")?;
                if !tools.iter().any(|(n, _)| n == name) {
                    return Err(format!(
                        "The tool {name} named in toolChoice is not defined in toolConfig.tools."
                    ));
                }
                (ToolChoice::Tool, Some(name.to_owned()))
            } else if tc.get("any").is_some() {
                (ToolChoice::Any, None)
            } else if tc.get("auto").is_some() {
                (ToolChoice::Auto, None)
            } else {
                return Err("toolChoice must be one of auto, any or tool.".into());
            });
        }
    }

    // System
    let mut system = Vec::new();
    if let Some(blocks) = obj.get("system") {
        let blocks = blocks.as_array().ok_or("system must be a list.")?;
        for b in blocks {
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                prefix.add(t);
                system.push(t.to_owned());
            } else if b.get("cachePoint").is_some() {
                prefix.cache_point();
            }
        }
    }

    // Messages
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("A conversation must start with a user message. Try again with a conversation that starts with a user message.")?;
    let mut user_text = String::new();
    let mut last_role = "";
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!("messages.{i}.role must be user or assistant."));
        }
        if i == 0 && role != "user" {
            return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
        }
        if role == last_role {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
        }
        last_role = role;
        let content = m
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("messages.{i}.content must not be empty."))?;
        for block in content {
            if let Some(t) = block.get("text").and_then(Value::as_str) {
                prefix.add(t);
                if role == "user" {
                    user_text.push_str(t);
                    user_text.push('\n');
                }
            } else if block.get("cachePoint").is_some() {
                prefix.cache_point();
            } else if let Some(other) = block.get("toolUse").or_else(|| block.get("toolResult")) {
                let text = serde_json::to_string(other).unwrap_or_default();
                prefix.add(&text);
                if role == "user" {
                    user_text.push_str(&text);
                    user_text.push('\n');
                }
            } else {
                prefix.add(&serde_json::to_string(block).unwrap_or_default());
            }
        }
    }
    if last_role != "user" {
        return Err("The final message must be a user message.".into());
    }
    if prefix.points.len() > MAX_CACHE_POINTS {
        return Err(format!(
            "The number of cache points ({}) exceeds the maximum of {MAX_CACHE_POINTS}.",
            prefix.points.len()
        ));
    }

    // Inference configuration
    let inference = obj.get("inferenceConfig");
    let max_tokens = match inference.and_then(|c| c.get("maxTokens")) {
        None => DEFAULT_MAX_TOKENS,
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or("inferenceConfig.maxTokens must be at least 1.")?,
    };
    if max_tokens > MODEL_MAX_OUTPUT_TOKENS {
        return Err(format!(
            "The maximum tokens you requested exceeds the model limit of {MODEL_MAX_OUTPUT_TOKENS}. Try again with a maximum tokens value that is lower than {MODEL_MAX_OUTPUT_TOKENS}."
        ));
    }
    for (field, lo, hi) in [("temperature", 0.0, 1.0), ("topP", 0.0, 1.0)] {
        if let Some(x) = inference.and_then(|c| c.get(field)) {
            match x.as_f64() {
                Some(f) if (lo..=hi).contains(&f) => {}
                _ => {
                    return Err(format!(
                        "inferenceConfig.{field} must be between {lo} and {hi}."
                    ))
                }
            }
        }
    }

    Ok(Request {
        system,
        user_text,
        tools,
        choice,
        max_tokens,
        total_chars: prefix.chars,
        cache_points: prefix.points,
    })
}

// ---------------------------------------------------------------------------------------------
// The call

async fn converse(
    State(st): State<Arc<AppState>>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let call_no;
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    {
        let mut b = st.bedrock();
        b.stats.requests += 1;
        call_no = b.stats.requests;
        *b.stats.by_model.entry(model_id.clone()).or_default() += 1;
        let logged = match &parsed {
            Ok(v) => v.clone(),
            Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
        if b.log.len() == REQUEST_LOG_CAPACITY {
            b.log.pop_front();
        }
        b.log
            .push_back(json!({ "model_id": model_id, "body": logged }));
    }

    if let Err(msg) = check_model(&model_id) {
        st.bedrock().error("ValidationException");
        return validation(&msg);
    }
    let request = match parsed
        .map_err(|_| {
            "Malformed input request, please reformat your input and try again.".to_owned()
        })
        .and_then(|v| parse_request(&model_id, &v))
    {
        Ok(r) => r,
        Err(msg) => {
            st.bedrock().error("ValidationException");
            return validation(&msg);
        }
    };

    let total_input = tokens_for(&model_id, request.total_chars);
    let now = Instant::now();
    // Quota first (a throttled call does not use up a fault), then the fault. As Bedrock does,
    // a call reserves input + cache + maxTokens when it starts and holds it while in flight.
    let reservation = total_input + request.max_tokens;
    let (fault, call_id, scripted, writer_cfg) = {
        let mut b = st.bedrock();
        let quota = b.quotas.entry(model_id.clone()).or_default();
        quota.prune(now);
        let (reqs, toks) = quota.totals();
        let too_many_requests = reqs >= u64::from(st.config.bedrock_rpm);
        let too_many_tokens = toks + reservation > st.config.bedrock_tpm;
        if too_many_requests || too_many_tokens {
            b.error("ThrottlingException");
            if too_many_requests {
                b.stats.throttled_requests += 1;
            } else {
                b.stats.throttled_tokens += 1;
            }
            return aws_error(
                429,
                "ThrottlingException",
                if too_many_requests {
                    "Too many requests, please wait before trying again."
                } else {
                    "Too many tokens, please wait before trying again."
                },
            );
        }
        quota.next_id += 1;
        let call_id = quota.next_id;
        quota.entries.push_back((now, 1, reservation, call_id));
        quota.in_flight += 1;
        let in_flight = quota.in_flight;
        b.stats.peak_in_flight = b.stats.peak_in_flight.max(in_flight);
        let fault = b.take_fault();
        let error = match fault {
            Some(FaultMode::Throttle) => Some((
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            )),
            Some(FaultMode::Fail) => Some((
                500,
                "InternalServerException",
                "The server encountered an internal error while processing the request.",
            )),
            Some(FaultMode::Timeout) => Some((
                408,
                "ModelTimeoutException",
                "Model has timed out in processing the request. Try your request again.",
            )),
            Some(FaultMode::Unavailable) => Some((
                503,
                "ServiceUnavailableException",
                "Bedrock is unable to process your request.",
            )),
            _ => None,
        };
        if let Some((status, kind, message)) = error {
            b.error(kind);
            if let Some(q) = b.quotas.get_mut(&model_id) {
                q.settle(call_id, None);
            }
            return aws_error(status, kind, message);
        }
        // A scripted answer comes first; writer mode applies unless a content fault is set.
        let scripted = b
            .script
            .iter()
            .position(|s| {
                s.when_prompt_contains
                    .as_deref()
                    .is_none_or(|t| request.user_text.contains(t))
            })
            .and_then(|i| b.script.remove(i));
        let writer_cfg = b.writer.clone().filter(|w| w.enabled);
        (fault, call_id, scripted, writer_cfg)
    };

    // The model's answer.
    let seed = generate::hash_bytes(&body);
    let prompt = Prompt {
        system: &request.system,
        user: &request.user_text,
        seed,
    };
    let tool = match &request.choice {
        Some((ToolChoice::Tool, Some(name))) => request.tools.iter().find(|(n, _)| n == name),
        Some((ToolChoice::Any, _)) | Some((ToolChoice::Auto, _)) | None => request.tools.first(),
        _ => None,
    };
    let distortion = fault.map(FaultMode::distortion).unwrap_or(Distortion::None);
    let content_fault = distortion != Distortion::None || fault == Some(FaultMode::MaxTokens);
    // Where the writer or the script cut the answer (characters of its JSON kept); writer and
    // scripted answers are cut the way a tool call cut off by maxTokens arrives.
    let mut cut_at: Option<usize> = None;
    let mut precise_cut = false;
    let tool_use_id = format!("tooluse_{}", &request_id(seed).replace('-', "")[..22]);
    let (mut content, output_text) = if let Some(s) = scripted {
        let text = writer::model_json(&s.input);
        precise_cut = true;
        if s.max_tokens {
            cut_at = Some(text.chars().count() * 2 / 3);
        }
        match tool {
            Some((name, _)) => (
                json!({ "toolUse": { "toolUseId": tool_use_id, "name": name, "input": s.input } }),
                text,
            ),
            None => (json!({ "text": text.clone() }), text),
        }
    } else if let (Some(cfg), Some((name, schema)), false) = (&writer_cfg, tool, content_fault) {
        let written = writer::write(&prompt, schema, cfg, call_no);
        precise_cut = true;
        cut_at = written.cut_at;
        {
            let mut b = st.bedrock();
            b.injected.extend(written.injected);
            let over = b.injected.len().saturating_sub(INJECTED_LOG_CAPACITY);
            b.injected.drain(..over);
        }
        let text = writer::model_json(&written.input);
        (
            json!({ "toolUse": { "toolUseId": tool_use_id, "name": name, "input": written.input } }),
            text,
        )
    } else {
        match tool {
            Some((name, schema)) => {
                let input = generate::tool_input(&prompt, schema, distortion);
                let text = serde_json::to_string(&input).unwrap_or_default();
                (
                    json!({ "toolUse": { "toolUseId": tool_use_id, "name": name, "input": input } }),
                    text,
                )
            }
            None => {
                let text = generate::text_reply(&prompt);
                (json!({ "text": text.clone() }), text)
            }
        }
    };
    let mut output_tokens = tokens_for(&model_id, text_units(&output_text)).max(1);
    let mut stop_reason = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if precise_cut {
        // Cut where the budget ran out, or where the writer or the script says.
        let budget_cut = (output_tokens > request.max_tokens)
            .then(|| chars_within(&model_id, &output_text, request.max_tokens));
        let cut = match (cut_at, budget_cut) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(cut) = cut {
            if budget_cut.is_some() && cut_at.is_none() && writer_cfg.is_some() {
                let tail: String = {
                    let kept: Vec<char> = output_text.chars().take(cut).collect();
                    kept[kept.len().saturating_sub(24)..].iter().collect()
                };
                st.bedrock().injected.push(Injected {
                    call: call_no,
                    profile_ref: String::new(),
                    kind: DefectKind::Truncated,
                    slot: "max_tokens".into(),
                    fragment: tail,
                });
            }
            stop_reason = "max_tokens";
            output_tokens = request.max_tokens;
            let partial = writer::cut_json(&output_text, cut);
            if let Some(tool_use) = content.get_mut("toolUse") {
                tool_use["input"] = partial;
            } else if let Some(Value::String(t)) = content.get_mut("text") {
                *t = output_text.chars().take(cut).collect();
            }
        }
    } else if fault == Some(FaultMode::MaxTokens) || output_tokens > request.max_tokens {
        // The model stopped because it used up its whole output budget.
        stop_reason = "max_tokens";
        output_tokens = request.max_tokens;
        if let Some(tool_use) = content.get_mut("toolUse") {
            tool_use["input"] = generate::truncate_input(&tool_use["input"]);
        } else if let Some(Value::String(t)) = content.get_mut("text") {
            *t = t.chars().take(t.chars().count() / 2).collect();
        }
    }

    // Prompt cache and accounting.
    let (cache_read, cache_write) = {
        let mut b = st.bedrock();
        let min = min_cache_tokens(&model_id);
        b.cache.retain(|_, expiry| *expiry > now);
        let eligible: Vec<(u64, u64)> = request
            .cache_points
            .iter()
            .map(|(key, chars)| (*key, tokens_for(&model_id, *chars)))
            .filter(|(_, t)| *t >= min)
            .collect();
        let read = eligible
            .iter()
            .filter(|(key, _)| b.cache.contains_key(key))
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(0);
        let longest = eligible.iter().map(|(_, t)| *t).max().unwrap_or(0);
        let write = longest.saturating_sub(read);
        for (key, _) in &eligible {
            b.cache.insert(*key, now + CACHE_TTL);
        }
        let input = total_input.saturating_sub(read + write);
        let s = &mut b.stats;
        s.succeeded += 1;
        s.input_tokens += input;
        s.output_tokens += output_tokens;
        s.cache_read_input_tokens += read;
        s.cache_write_input_tokens += write;
        (read, write)
    };
    let input_tokens = total_input.saturating_sub(cache_read + cache_write);

    // The model takes its time: first token, reading the input, writing the output.
    let unit: f64 = rand::random();
    let speed = st
        .config
        .bedrock_speed
        .unwrap_or_else(|| ModelSpeed::for_model(&model_id));
    let latency = speed
        .latency(input_tokens + cache_write, output_tokens, unit)
        .mul_f64(st.config.vendor_time_scale.max(0.0))
        + Duration::from_millis(st.config.bedrock_latency_ms);
    tokio::time::sleep(latency).await;
    {
        // Settled to what counts against the quota: input and cache writes, output × burndown
        // (cache reads are released).
        let settled = input_tokens
            + cache_write
            + (output_tokens as f64 * st.config.bedrock_output_burndown.max(1.0)).round() as u64;
        let mut b = st.bedrock();
        if let Some(q) = b.quotas.get_mut(&model_id) {
            q.settle(call_id, Some(settled));
        }
        b.stats.quota_tokens += settled;
        let ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        b.stats.latencies_ms.push(ms);
    }
    let latency_ms = started.elapsed().as_millis() as u64;
    let mut resp = Json(json!({
        "output": { "message": { "role": "assistant", "content": [content] } },
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens + cache_read + cache_write,
            "cacheReadInputTokens": cache_read,
            "cacheWriteInputTokens": cache_write,
        },
        "metrics": { "latencyMs": latency_ms },
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id(seed)) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_profile_ids_are_accepted_and_bare_ids_are_not() {
        assert!(check_model("us.anthropic.claude-haiku-4-5-20251001-v1:0").is_ok());
        assert!(check_model("global.anthropic.claude-sonnet-4-5-20250929-v1:0").is_ok());
        assert!(check_model("anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap_err()
            .contains("on-demand throughput"));
        assert!(check_model("us.meta.llama3").is_err());
    }

    #[test]
    fn cache_minimum_depends_on_the_model() {
        assert_eq!(
            min_cache_tokens("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            4096
        );
        assert_eq!(min_cache_tokens("us.anthropic.claude-haiku-5-5"), 4096);
        assert_eq!(min_cache_tokens("us.anthropic.claude-sonnet-4-6"), 1024);
    }

    #[test]
    fn claude_5_counts_about_thirty_percent_more_tokens() {
        assert_eq!(
            tokens_for("us.anthropic.claude-haiku-4-5-20251001-v1:0", 4000),
            1000
        );
        assert_eq!(tokens_for("us.anthropic.claude-haiku-5-5", 4000), 1300);
    }

    #[test]
    fn latency_is_first_token_plus_reading_plus_writing() {
        let speed = ModelSpeed {
            time_to_first_token_ms: 700.0,
            output_tokens_per_s: 100.0,
            input_tokens_per_s: 20_000.0,
            jitter: 0.25,
        };
        // unit 0.5 → no jitter: 0.7 s + 2000/20000 s + 500/100 s.
        let d = speed.latency(2_000, 500, 0.5);
        assert!((d.as_secs_f64() - 5.8).abs() < 1e-9, "{d:?}");
        assert!(speed.latency(2_000, 500, 0.0) < speed.latency(2_000, 500, 1.0));
        assert!(speed.latency(2_000, 100, 0.5) < d);
    }

    #[test]
    fn fault_modes_round_trip_their_names() {
        for m in FaultMode::ALL {
            assert_eq!(FaultMode::parse(m.as_str()), Some(m));
        }
    }
}
