//! The Klaviyo REST client (JSON:API). Every call carries the merchant's key, the pinned
//! `revision` and a stable `User-Agent`; waits for the in-process rate limiter; honours
//! `Retry-After` on 429; and follows `links.next` for collections.

use super::error::KlaviyoError;
use super::limits::{key_fingerprint, Endpoint, KlaviyoUsage, RateLimiter, RateLimits};
use super::scrub::scrub_personal_data;
use super::types::{
    Account, Audience, AudienceKind, BulkImportJob, ImportError, ImportPolling, ImportStatus,
    OrderMetrics, READ_SCOPES,
};
use crate::domain::KlaviyoApiKey;
use futures::Stream;
use rand::Rng;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

pub const JSON_API: &str = "application/vnd.api+json";
/// Stable, so Cloudflare's bot checks see a consistent client.
pub const CLIENT_USER_AGENT: &str = "SendPersonal/0.1";
/// 429 retries before a call returns `Throttled`.
pub const DEFAULT_THROTTLE_RETRIES: u32 = 4;
/// Retries after 5xx, network errors and Cloudflare challenges.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// The largest id list sent in one `any(id,[…])` filter.
pub const MAX_IDS_PER_FILTER: usize = 100;
/// Klaviyo's cap on a profile PATCH body.
pub const MAX_PATCH_BYTES: usize = 100 * 1024;
/// Bulk import: profiles per job, bytes per request, bytes per profile (NOTES §1.2).
pub const MAX_IMPORT_PROFILES: usize = 10_000;
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_IMPORT_PROFILE_BYTES: usize = 100 * 1024;
/// Get Events' largest `page[size]`.
pub const MAX_EVENTS_PAGE: usize = 1000;
pub const PLACED_ORDER: &str = "Placed Order";
pub const ORDERED_PRODUCT: &str = "Ordered Product";

/// One per container: cheap to clone, the rate limiter is shared between clones.
#[derive(Clone)]
pub struct KlaviyoClient {
    http: reqwest::Client,
    base: Url,
    revision: String,
    limiter: Arc<RateLimiter>,
    throttle_retries: u32,
}

impl std::fmt::Debug for KlaviyoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KlaviyoClient")
            .field("base", &self.base.as_str())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

fn ids_of(body: &Value) -> Vec<String> {
    body.get("data")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn data_items(body: Value) -> Vec<Value> {
    match body {
        Value::Object(mut map) => match map.remove("data") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Ids we interpolate into paths or filters: Klaviyo ids are letters and digits.
fn check_id(id: &str) -> Result<&str, KlaviyoError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(KlaviyoError::Invalid("malformed Klaviyo id".into()))
    }
}

/// `code: title (field)` of the first JSON:API error: enough to debug, no echoed values.
fn error_summary(body: &str) -> (Option<String>, String) {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let Some(first) = parsed.get("errors").and_then(|e| e.get(0)) else {
        return (None, "no error details".into());
    };
    let code = first.get("code").and_then(Value::as_str).map(str::to_owned);
    let title = first.get("title").and_then(Value::as_str).unwrap_or("");
    let source = first
        .get("source")
        .and_then(|s| s.get("pointer").or_else(|| s.get("parameter")))
        .and_then(Value::as_str)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let summary = format!("{}: {title}{source}", code.as_deref().unwrap_or("error"));
    (code, summary)
}

/// The scope a 403 names, if it is one the endpoint needs; else the endpoint's likeliest.
fn missing_scope(body: &str, endpoint: Endpoint) -> &'static str {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let detail = parsed
        .pointer("/errors/0/detail")
        .and_then(Value::as_str)
        .unwrap_or("");
    endpoint
        .scopes()
        .iter()
        .copied()
        .find(|scope| detail.contains(scope))
        .unwrap_or(endpoint.scope())
}

/// How well a metric's integration fits the order metrics: Shopify's first, then other
/// e-commerce integrations, then anything else (API, custom).
fn integration_rank(metric: &Value) -> u8 {
    let integration = metric.pointer("/attributes/integration");
    let field = |name: &str| {
        integration
            .and_then(|i| i.get(name))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    if field("name") == "shopify" || field("key") == "shopify" {
        2
    } else if field("category") == "ecommerce" {
        1
    } else {
        0
    }
}

/// The ids of "Placed Order" and "Ordered Product" among all metrics (see [`integration_rank`];
/// ties keep the first listed).
fn pick_order_metrics(metrics: &[Value]) -> OrderMetrics {
    OrderMetrics {
        placed_order: pick_metric(metrics, PLACED_ORDER),
        ordered_product: pick_metric(metrics, ORDERED_PRODUCT),
    }
}

/// The id of the metric named `wanted`, by [`integration_rank`] (ties keep the first listed).
fn pick_metric(metrics: &[Value], wanted: &str) -> Option<String> {
    let pick = |wanted: &str| {
        let mut best: Option<(u8, &str)> = None;
        for metric in metrics {
            let name = metric
                .pointer("/attributes/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(id) = metric.get("id").and_then(Value::as_str) else {
                continue;
            };
            if name.trim() != wanted {
                continue;
            }
            let rank = integration_rank(metric);
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, id));
            }
        }
        best.map(|(_, id)| id.to_owned())
    };
    pick(wanted)
}

/// An email we are willing to put inside a filter's quotes.
fn filterable_email(email: &str) -> bool {
    email.len() <= 254
        && email.contains('@')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '\''))
}

fn as_count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(0)
}

/// A bulk import job resource (`data` of the create or get response).
fn parse_job(body: &Value) -> Result<BulkImportJob, KlaviyoError> {
    let data = body
        .get("data")
        .ok_or_else(|| KlaviyoError::Invalid("bulk import response without data".into()))?;
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| check_id(id).is_ok())
        .ok_or_else(|| KlaviyoError::Invalid("bulk import job without a usable id".into()))?;
    let attributes = data.get("attributes");
    let field = |name: &str| attributes.and_then(|a| a.get(name));
    Ok(BulkImportJob {
        id: id.to_owned(),
        status: ImportStatus::parse(field("status").and_then(Value::as_str).unwrap_or("")),
        total_count: as_count(field("total_count")),
        completed_count: as_count(field("completed_count")),
        failed_count: as_count(field("failed_count")),
        took: {
            let at = |name: &str| {
                field(name).and_then(Value::as_str).and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
            };
            match (at("created_at"), at("completed_at")) {
                (Some(created), Some(completed)) if completed >= created => {
                    Some((completed - created).unsigned_abs())
                }
                _ => None,
            }
        },
    })
}

/// One `import-error` resource, reduced to code, scrubbed detail and the profile id.
fn parse_import_error(item: &Value) -> ImportError {
    let attributes = item.get("attributes");
    let text = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let profile_id = attributes
        .and_then(|a| a.pointer("/original_payload/id"))
        .and_then(Value::as_str)
        .filter(|id| check_id(id).is_ok())
        .map(str::to_owned);
    let code = text("code");
    ImportError {
        code: if code.is_empty() {
            "unknown".into()
        } else {
            scrub_personal_data(code)
        },
        detail: scrub_personal_data(text("detail")),
        profile_id,
    }
}

/// One bulk import profile: identified by id only; `null` values become `unset`.
fn import_profile(id: &str, properties: &Map<String, Value>) -> Value {
    let set: Map<String, Value> = properties
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let unset: Vec<&String> = properties
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k)
        .collect();
    let mut profile = json!({ "type": "profile", "id": id, "attributes": { "properties": set } });
    if !unset.is_empty() {
        profile["meta"] = json!({ "patch_properties": { "unset": unset } });
    }
    profile
}

fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

impl KlaviyoClient {
    /// With Klaviyo's published rate limits.
    pub fn new(http: reqwest::Client, base_url: String, revision: String) -> Self {
        Self::with_limits(http, base_url, revision, RateLimits::real())
    }

    /// Panics if `base_url` is not an absolute URL (it comes from configuration).
    pub fn with_limits(
        http: reqwest::Client,
        base_url: String,
        revision: String,
        limits: RateLimits,
    ) -> Self {
        let base = Url::parse(base_url.trim_end_matches('/'))
            .expect("KLAVIYO_BASE_URL must be an absolute URL");
        Self {
            http,
            base,
            revision,
            limiter: Arc::new(RateLimiter::new(limits)),
            throttle_retries: DEFAULT_THROTTLE_RETRIES,
        }
    }

    /// Pool the limits with every container of the function that uses the same `store` and
    /// `pool` name: `limits` are then the function's share of each tier, not one container's.
    pub fn pooled(
        mut self,
        store: std::sync::Arc<dyn crate::budget::SlotStore>,
        pool: &str,
    ) -> Self {
        let mode = self.limiter.mode();
        self.limiter = Arc::new(RateLimiter::pooled(mode, store, pool));
        self
    }

    /// How many 429s a call absorbs (honouring `Retry-After`) before returning `Throttled`.
    pub fn with_throttle_retries(mut self, retries: u32) -> Self {
        self.throttle_retries = retries;
        self
    }

    pub fn usage(&self) -> KlaviyoUsage {
        self.limiter.usage()
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter());
        }
        url
    }

    /// `links.next`, only if it points back at Klaviyo (the key must never go elsewhere).
    fn next_link(&self, body: &Value) -> Result<Option<Url>, KlaviyoError> {
        let Some(next) = body
            .pointer("/links/next")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let url =
            Url::parse(next).map_err(|_| KlaviyoError::Invalid("malformed links.next".into()))?;
        if url.origin() != self.base.origin() {
            return Err(KlaviyoError::Invalid(
                "links.next points outside the Klaviyo API".into(),
            ));
        }
        Ok(Some(url))
    }

    /// One request with rate limiting and retries; returns the parsed JSON body (Null if empty).
    async fn send(
        &self,
        key: &KlaviyoApiKey,
        endpoint: Endpoint,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, KlaviyoError> {
        let fingerprint = key_fingerprint(key.expose());
        let mut auth = HeaderValue::from_str(&format!("Klaviyo-API-Key {}", key.expose()))
            .map_err(|_| KlaviyoError::Invalid("the API key is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let payload = body.map(Value::to_string);
        let mut throttled = 0u32;
        let mut transient = 0u32;
        loop {
            self.limiter.acquire(&fingerprint, endpoint).await;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, auth.clone())
                .header("revision", &self.revision)
                .header(ACCEPT, JSON_API)
                .header(USER_AGENT, CLIENT_USER_AGENT);
            if let Some(payload) = &payload {
                request = request.header(CONTENT_TYPE, JSON_API).body(payload.clone());
            }
            // A job creation is not idempotent: once the request may have reached Klaviyo, a
            // failure is reported as `MaybeApplied`, never retried here.
            let once = endpoint == Endpoint::CreateBulkImport;
            let failure = match request.send().await {
                Err(err) if once && !err.is_connect() => {
                    return Err(KlaviyoError::MaybeApplied(err.without_url().to_string()))
                }
                Err(err) => KlaviyoError::network(err),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let is_json = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|ct| ct.contains("json"));
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = response.text().await.map_err(KlaviyoError::network);
                    match (status, text) {
                        (_, Err(err)) => err,
                        (200..=299, Ok(text)) => {
                            if text.trim().is_empty() {
                                return Ok(Value::Null);
                            }
                            return serde_json::from_str(&text).map_err(|_| {
                                KlaviyoError::Transient("unreadable Klaviyo response".into())
                            });
                        }
                        (429, Ok(_)) => {
                            self.limiter.count_throttled();
                            let wait = retry_after.unwrap_or(Duration::from_secs(1)) + jitter(500);
                            if throttled >= self.throttle_retries {
                                return Err(KlaviyoError::Throttled { retry_after: wait });
                            }
                            throttled += 1;
                            tracing::debug!(
                                endpoint = endpoint.name(),
                                wait_ms = wait.as_millis() as u64,
                                "Klaviyo 429"
                            );
                            tokio::time::sleep(wait).await;
                            self.limiter.add_wait(wait);
                            continue;
                        }
                        (401, Ok(_)) => return Err(KlaviyoError::Unauthorized),
                        (403, Ok(text)) if is_json => {
                            let (code, summary) = error_summary(&text);
                            return Err(match code.as_deref() {
                                Some("permission_denied") => KlaviyoError::MissingScope(
                                    missing_scope(&text, endpoint).to_owned(),
                                ),
                                _ => KlaviyoError::Invalid(summary),
                            });
                        }
                        // 403 text/html: a Cloudflare challenge, not a scope problem.
                        (403, Ok(_)) => KlaviyoError::Transient(
                            "Cloudflare challenge (HTTP 403, not JSON)".into(),
                        ),
                        (500..=599, Ok(_)) if once => {
                            return Err(KlaviyoError::MaybeApplied(format!("HTTP {status}")))
                        }
                        (500..=599, Ok(_)) => KlaviyoError::Transient(format!("HTTP {status}")),
                        (404, Ok(text)) => {
                            return Err(KlaviyoError::NotFound(error_summary(&text).1));
                        }
                        (_, Ok(text)) => {
                            let (_, summary) = error_summary(&text);
                            return Err(KlaviyoError::Invalid(format!("HTTP {status}: {summary}")));
                        }
                    }
                }
            };
            if transient >= MAX_TRANSIENT_RETRIES {
                return Err(failure);
            }
            self.limiter.count_transient();
            let backoff = Duration::from_millis(300 * (1 << transient)) + jitter(300);
            tracing::debug!(endpoint = endpoint.name(), error = %failure, "retrying Klaviyo call");
            tokio::time::sleep(backoff).await;
            transient += 1;
        }
    }

    async fn get(
        &self,
        key: &KlaviyoApiKey,
        endpoint: Endpoint,
        url: Url,
    ) -> Result<Value, KlaviyoError> {
        self.send(key, endpoint, Method::GET, url, None).await
    }

    /// Every resource of a collection, following `links.next` until it is absent.
    async fn get_all(
        &self,
        key: &KlaviyoApiKey,
        endpoint: Endpoint,
        first: Url,
    ) -> Result<Vec<Value>, KlaviyoError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next {
            let body = self.get(key, endpoint, url).await?;
            next = self.next_link(&body)?;
            items.extend(data_items(body));
        }
        Ok(items)
    }

    /// The key's account (exactly one). XS tier: call it once, at connect.
    pub async fn get_account(&self, key: &KlaviyoApiKey) -> Result<Account, KlaviyoError> {
        let body = self
            .get(key, Endpoint::Accounts, self.url("/api/accounts", &[]))
            .await?;
        let first = body
            .pointer("/data/0")
            .ok_or_else(|| KlaviyoError::Invalid("the key has no account".into()))?;
        let id = first
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| KlaviyoError::Invalid("account without id".into()))?;
        let contact = first.pointer("/attributes/contact_information");
        let name = contact
            .and_then(|c| c.get("organization_name"))
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                contact
                    .and_then(|c| c.get("default_sender_name"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("");
        Ok(Account {
            id: id.to_owned(),
            name: name.trim().to_owned(),
        })
    }

    /// Which of [`READ_SCOPES`] the key lacks, by one minimal GET each (a JSON 403
    /// `permission_denied` means missing). Any other failure is returned as is.
    pub async fn probe_read_scopes(
        &self,
        key: &KlaviyoApiKey,
    ) -> Result<Vec<&'static str>, KlaviyoError> {
        let one = [("page[size]", "1")];
        let probes: [(&'static str, Endpoint, Url); 5] = [
            ("lists:read", Endpoint::Lists, self.url("/api/lists", &one)),
            (
                "segments:read",
                Endpoint::Segments,
                self.url("/api/segments", &one),
            ),
            (
                "profiles:read",
                Endpoint::Profiles,
                self.url("/api/profiles", &one),
            ),
            (
                "events:read",
                Endpoint::Events,
                self.url("/api/events", &one),
            ),
            // Get Metrics has no page[size].
            (
                "metrics:read",
                Endpoint::Metrics,
                self.url("/api/metrics", &[]),
            ),
        ];
        debug_assert!(probes.iter().map(|p| p.0).eq(READ_SCOPES));
        let mut missing = Vec::new();
        for (scope, endpoint, url) in probes {
            match self.get(key, endpoint, url).await {
                Ok(_) => {}
                Err(KlaviyoError::MissingScope(_)) => missing.push(scope),
                Err(other) => return Err(other),
            }
        }
        Ok(missing)
    }

    async fn audiences(
        &self,
        key: &KlaviyoApiKey,
        kind: AudienceKind,
    ) -> Result<Vec<Audience>, KlaviyoError> {
        let (endpoint, fields) = match kind {
            AudienceKind::List => (Endpoint::Lists, "fields[list]"),
            AudienceKind::Segment => (Endpoint::Segments, "fields[segment]"),
        };
        let url = self.url(&format!("/api/{}", kind.path()), &[(fields, "name")]);
        let items = self.get_all(key, endpoint, url).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let id = item.get("id")?.as_str()?.to_owned();
                let name = item
                    .pointer("/attributes/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                Some(Audience { id, name, kind })
            })
            .collect())
    }

    /// All lists (every page).
    pub async fn lists(&self, key: &KlaviyoApiKey) -> Result<Vec<Audience>, KlaviyoError> {
        self.audiences(key, AudienceKind::List).await
    }

    /// All segments (every page).
    pub async fn segments(&self, key: &KlaviyoApiKey) -> Result<Vec<Audience>, KlaviyoError> {
        self.audiences(key, AudienceKind::Segment).await
    }

    /// Member profile ids of a list or segment, one batch (≤ 100) per page, following
    /// `links.next` lazily: the fan-out can enqueue a batch before the next page is read.
    pub fn audience_profile_ids<'a>(
        &'a self,
        key: &'a KlaviyoApiKey,
        kind: AudienceKind,
        id: &str,
    ) -> impl Stream<Item = Result<Vec<String>, KlaviyoError>> + Send + 'a {
        let endpoint = match kind {
            AudienceKind::List => Endpoint::ListProfiles,
            AudienceKind::Segment => Endpoint::SegmentProfiles,
        };
        let first = check_id(id).map(|id| {
            self.url(
                &format!("/api/{}/{id}/relationships/profiles", kind.path()),
                &[("page[size]", "100")],
            )
        });
        futures::stream::try_unfold(Some(first), move |state| async move {
            let Some(url) = state else {
                return Ok(None);
            };
            let body = self.get(key, endpoint, url?).await?;
            let next = self.next_link(&body)?;
            Ok(Some((ids_of(&body), next.map(Ok))))
        })
    }

    /// One page (≤ 100) of an audience's member ids and the cursor of the next page (Klaviyo's
    /// `links.next`), so a fan-out can checkpoint and continue in another invocation.
    pub async fn audience_page(
        &self,
        key: &KlaviyoApiKey,
        kind: AudienceKind,
        id: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), KlaviyoError> {
        let endpoint = match kind {
            AudienceKind::List => Endpoint::ListProfiles,
            AudienceKind::Segment => Endpoint::SegmentProfiles,
        };
        let url = match cursor {
            // A cursor is a `links.next` we stored: it must still point at Klaviyo.
            Some(next) => self
                .next_link(&json!({ "links": { "next": next } }))?
                .ok_or_else(|| KlaviyoError::Invalid("empty cursor".into()))?,
            None => {
                let id = check_id(id)?;
                self.url(
                    &format!("/api/{}/{id}/relationships/profiles", kind.path()),
                    &[("page[size]", "100")],
                )
            }
        };
        let body = self.get(key, endpoint, url).await?;
        let next = self.next_link(&body)?.map(|u| u.to_string());
        Ok((ids_of(&body), next))
    }

    /// Profiles by id (any number; sent 100 per request), as raw JSON:API resources.
    pub async fn get_profiles(
        &self,
        key: &KlaviyoApiKey,
        ids: &[String],
    ) -> Result<Vec<Value>, KlaviyoError> {
        self.profiles_by_id(key, ids, false).await
    }

    /// As [`Self::get_profiles`], with `predictive_analytics` (a slower rate-limit tier).
    pub async fn get_profiles_with_predictive(
        &self,
        key: &KlaviyoApiKey,
        ids: &[String],
    ) -> Result<Vec<Value>, KlaviyoError> {
        self.profiles_by_id(key, ids, true).await
    }

    async fn profiles_by_id(
        &self,
        key: &KlaviyoApiKey,
        ids: &[String],
        predictive: bool,
    ) -> Result<Vec<Value>, KlaviyoError> {
        let mut profiles = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_IDS_PER_FILTER) {
            let quoted: Vec<String> = chunk
                .iter()
                .map(|id| check_id(id).map(|id| format!("\"{id}\"")))
                .collect::<Result<_, _>>()?;
            let filter = format!("any(id,[{}])", quoted.join(","));
            let mut query = vec![("filter", filter.as_str()), ("page[size]", "100")];
            let endpoint = if predictive {
                query.push(("additional-fields[profile]", "predictive_analytics"));
                Endpoint::ProfilesPredictive
            } else {
                Endpoint::Profiles
            };
            let url = self.url("/api/profiles", &query);
            profiles.extend(self.get_all(key, endpoint, url).await?);
        }
        Ok(profiles)
    }

    /// Set (or, with `null` values, clear) custom properties on one profile; other keys are kept.
    pub async fn patch_profile_properties(
        &self,
        key: &KlaviyoApiKey,
        id: &str,
        properties: Map<String, Value>,
    ) -> Result<(), KlaviyoError> {
        let id = check_id(id)?;
        let body = json!({
            "data": { "type": "profile", "id": id, "attributes": { "properties": properties } }
        });
        if body.to_string().len() > MAX_PATCH_BYTES {
            return Err(KlaviyoError::Invalid(
                "profile update exceeds Klaviyo's 100 KB limit".into(),
            ));
        }
        let url = self.url(&format!("/api/profiles/{id}"), &[]);
        self.send(
            key,
            Endpoint::UpdateProfile,
            Method::PATCH,
            url,
            Some(&body),
        )
        .await?;
        Ok(())
    }
}

impl KlaviyoClient {
    /// The ids of the "Placed Order" and "Ordered Product" metrics. Get Metrics has no name
    /// filter, so this pages all metrics and matches `attributes.name`, preferring the Shopify
    /// integration's metric when several share a name. M tier: cache the result per merchant.
    pub async fn order_metrics(&self, key: &KlaviyoApiKey) -> Result<OrderMetrics, KlaviyoError> {
        let url = self.url("/api/metrics", &[("fields[metric]", "name,integration")]);
        let metrics = self.get_all(key, Endpoint::Metrics, url).await?;
        Ok(pick_order_metrics(&metrics))
    }

    /// The id of the first of `names` that the account has a metric for (Shopify's
    /// integration preferred on collisions); `None` when none exists. M tier: cache it.
    pub async fn metric_named(
        &self,
        key: &KlaviyoApiKey,
        names: &[&str],
    ) -> Result<Option<String>, KlaviyoError> {
        Ok(self.metrics_named(key, names).await?.into_iter().next())
    }

    /// The id of each of `names` the account has a metric for, in the order of `names`.
    pub async fn metrics_named(
        &self,
        key: &KlaviyoApiKey,
        names: &[&str],
    ) -> Result<Vec<String>, KlaviyoError> {
        Ok(self.metrics_and_orders(key, names).await?.0)
    }

    /// [`Self::metrics_named`] and [`Self::order_metrics`] from one read of the metrics (the M
    /// tier is narrow).
    pub async fn metrics_and_orders(
        &self,
        key: &KlaviyoApiKey,
        names: &[&str],
    ) -> Result<(Vec<String>, OrderMetrics), KlaviyoError> {
        let url = self.url("/api/metrics", &[("fields[metric]", "name,integration")]);
        let metrics = self.get_all(key, Endpoint::Metrics, url).await?;
        Ok((
            names
                .iter()
                .filter_map(|name| pick_metric(&metrics, name))
                .collect(),
            pick_order_metrics(&metrics),
        ))
    }

    /// A profile's events of one metric, newest first, at most `max` (and none before
    /// `since_unix` when given), as raw JSON:API event resources with only `datetime`,
    /// `event_properties` and `timestamp` attributes. Pages of up to 1000 via `links.next`.
    pub async fn profile_events(
        &self,
        key: &KlaviyoApiKey,
        profile_id: &str,
        metric_id: &str,
        since_unix: Option<i64>,
        max: usize,
    ) -> Result<Vec<Value>, KlaviyoError> {
        let profile_id = check_id(profile_id)?;
        let metric_id = check_id(metric_id)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut filter =
            format!("equals(profile_id,\"{profile_id}\"),equals(metric_id,\"{metric_id}\")");
        if let Some(since) = since_unix {
            let at = OffsetDateTime::from_unix_timestamp(since)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .ok_or_else(|| KlaviyoError::Invalid("event start time out of range".into()))?;
            filter.push_str(&format!(",greater-or-equal(datetime,{at})"));
        }
        let size = max.min(MAX_EVENTS_PAGE).to_string();
        let url = self.url(
            "/api/events",
            &[
                ("filter", filter.as_str()),
                ("sort", "-datetime"),
                ("fields[event]", "datetime,event_properties,timestamp"),
                ("page[size]", size.as_str()),
            ],
        );
        let mut events = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next {
            if events.len() >= max {
                break;
            }
            let body = self.get(key, Endpoint::Events, url).await?;
            next = self.next_link(&body)?;
            events.extend(data_items(body));
        }
        events.truncate(max);
        Ok(events)
    }

    /// Profiles by email address (for previews), 100 addresses per `any(email,[…])` request.
    /// Addresses are trimmed; an address that cannot be quoted in a filter is `Invalid` (and
    /// never echoed). Unknown addresses are simply absent from the result.
    pub async fn find_profiles_by_email(
        &self,
        key: &KlaviyoApiKey,
        emails: &[String],
    ) -> Result<Vec<Value>, KlaviyoError> {
        let mut wanted: Vec<&str> = Vec::with_capacity(emails.len());
        for email in emails.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if !filterable_email(email) {
                return Err(KlaviyoError::Invalid("malformed email address".into()));
            }
            if !wanted.iter().any(|w| w.eq_ignore_ascii_case(email)) {
                wanted.push(email);
            }
        }
        let mut profiles = Vec::new();
        for chunk in wanted.chunks(MAX_IDS_PER_FILTER) {
            let quoted: Vec<String> = chunk.iter().map(|e| format!("\"{e}\"")).collect();
            let filter = format!("any(email,[{}])", quoted.join(","));
            let url = self.url(
                "/api/profiles",
                &[("filter", filter.as_str()), ("page[size]", "100")],
            );
            profiles.extend(self.get_all(key, Endpoint::Profiles, url).await?);
        }
        Ok(profiles)
    }

    /// Starts a bulk import that sets `properties` on profiles identified by Klaviyo id (a
    /// `null` value removes the key, via `meta.patch_properties.unset`; other keys are kept).
    /// Enforces Klaviyo's limits before sending (`Invalid`): 1 to 10,000 profiles, 100 KB per
    /// profile, 5 MB per request. Returns the job id (the response is 202; poll the job).
    pub async fn start_bulk_import(
        &self,
        key: &KlaviyoApiKey,
        profiles: &[(String, Map<String, Value>)],
    ) -> Result<String, KlaviyoError> {
        if profiles.is_empty() {
            return Err(KlaviyoError::Invalid(
                "a bulk import needs at least one profile".into(),
            ));
        }
        if profiles.len() > MAX_IMPORT_PROFILES {
            return Err(KlaviyoError::Invalid(format!(
                "a bulk import takes at most {MAX_IMPORT_PROFILES} profiles ({} given)",
                profiles.len()
            )));
        }
        let mut data = Vec::with_capacity(profiles.len());
        for (index, (id, properties)) in profiles.iter().enumerate() {
            let profile = import_profile(check_id(id)?, properties);
            if profile.to_string().len() > MAX_IMPORT_PROFILE_BYTES {
                return Err(KlaviyoError::Invalid(format!(
                    "profile #{index} of the bulk import exceeds Klaviyo's 100 KB per-profile limit"
                )));
            }
            data.push(profile);
        }
        let body = json!({
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": { "profiles": { "data": data } },
            }
        });
        if body.to_string().len() > MAX_IMPORT_BYTES {
            return Err(KlaviyoError::Invalid(
                "the bulk import exceeds Klaviyo's 5 MB request limit".into(),
            ));
        }
        let url = self.url("/api/profile-bulk-import-jobs", &[]);
        let response = self
            .send(
                key,
                Endpoint::CreateBulkImport,
                Method::POST,
                url,
                Some(&body),
            )
            .await?;
        Ok(parse_job(&response)?.id)
    }

    /// Whether any bulk import job of the account created at or after `since` (unix seconds)
    /// is still queued or processing: until none is, a write that may have been applied cannot
    /// be told from one that was not by reading the profiles.
    pub async fn import_jobs_unfinished_since(
        &self,
        key: &KlaviyoApiKey,
        since: i64,
    ) -> Result<bool, KlaviyoError> {
        let url = self.url(
            "/api/profile-bulk-import-jobs",
            &[
                ("filter", "any(status,[\"queued\",\"processing\"])"),
                ("sort", "-created_at"),
                ("page[size]", "100"),
            ],
        );
        // The same M tier as polling one job.
        let body = self.get(key, Endpoint::GetBulkImport, url).await?;
        let created = |job: &Value| {
            job.pointer("/attributes/created_at")
                .and_then(Value::as_str)
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map(|t| t.unix_timestamp())
        };
        Ok(body
            .get("data")
            .and_then(Value::as_array)
            .is_some_and(|jobs| {
                jobs.iter()
                    .any(|job| created(job).is_none_or(|at| at >= since))
            }))
    }

    /// One poll of a bulk import job.
    pub async fn bulk_import_job(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
    ) -> Result<BulkImportJob, KlaviyoError> {
        let url = self.url(
            &format!("/api/profile-bulk-import-jobs/{}", check_id(job_id)?),
            &[],
        );
        let body = self.get(key, Endpoint::GetBulkImport, url).await?;
        parse_job(&body)
    }

    /// Polls a job until it is complete, cancelled or failed: waits `first_wait`, then doubles
    /// the wait up to `max_wait`. Past `deadline` (measured from this call) it gives up with a
    /// `Transient` error; the job itself keeps running at Klaviyo.
    pub async fn wait_bulk_import(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
        polling: &ImportPolling,
    ) -> Result<BulkImportJob, KlaviyoError> {
        check_id(job_id)?;
        let started = Instant::now();
        let mut wait = polling.first_wait;
        loop {
            tokio::time::sleep(wait.min(polling.deadline.saturating_sub(started.elapsed()))).await;
            let job = self.bulk_import_job(key, job_id).await?;
            if job.status.is_final() {
                return Ok(job);
            }
            if started.elapsed() >= polling.deadline {
                return Err(KlaviyoError::Transient(format!(
                    "bulk import job still {:?} after {} s",
                    job.status,
                    polling.deadline.as_secs()
                )));
            }
            wait = (wait * 2)
                .max(Duration::from_millis(50))
                .min(polling.max_wait);
        }
    }

    /// Every import error of a job (all pages), without personal data.
    pub async fn bulk_import_errors(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
    ) -> Result<Vec<ImportError>, KlaviyoError> {
        let path = format!(
            "/api/profile-bulk-import-jobs/{}/import-errors",
            check_id(job_id)?
        );
        let url = self.url(&path, &[("page[size]", "100")]);
        let items = self.get_all(key, Endpoint::BulkImportErrors, url).await?;
        Ok(items.iter().map(parse_import_error).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> KlaviyoClient {
        KlaviyoClient::new(
            reqwest::Client::new(),
            "https://a.klaviyo.com/".into(),
            "2026-07-15".into(),
        )
    }

    #[test]
    fn urls_join_the_base_and_encode_the_query() {
        let url = client().url("/api/lists", &[("page[size]", "1")]);
        assert_eq!(
            url.as_str(),
            "https://a.klaviyo.com/api/lists?page%5Bsize%5D=1"
        );
    }

    #[test]
    fn next_links_to_another_host_are_refused() {
        let c = client();
        let ok = json!({"links": {"next": "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=x"}});
        assert!(c.next_link(&ok).unwrap().is_some());
        let evil = json!({"links": {"next": "https://evil.example/api/lists"}});
        assert!(c.next_link(&evil).is_err());
        assert!(c
            .next_link(&json!({"links": {"self": "x"}}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn ids_with_quotes_never_reach_a_filter() {
        assert!(check_id("01HXYZ0000000000000000000A").is_ok());
        assert!(check_id("x\"]),equals(email").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn error_summary_keeps_code_title_and_field_only() {
        let body = r#"{"errors":[{"code":"invalid","title":"Invalid input.","detail":"bob@example.com is bad","source":{"pointer":"/data/attributes/email"}}]}"#;
        let (code, summary) = error_summary(body);
        assert_eq!(code.as_deref(), Some("invalid"));
        assert_eq!(summary, "invalid: Invalid input. (/data/attributes/email)");
        assert!(!summary.contains("bob@"));
    }
    #[test]
    fn order_metrics_prefer_shopify_on_name_collisions() {
        let metric = |id: &str, name: &str, integration: &str, category: &str| {
            json!({"type": "metric", "id": id, "attributes": {"name": name,
                "integration": {"name": integration, "category": category}}})
        };
        let metrics = vec![
            metric("api1", "Placed Order", "API", "API"),
            metric("shop1", "Placed Order", "Shopify", "eCommerce"),
            metric("woo1", "Placed Order", "WooCommerce", "eCommerce"),
            metric("api2", "Ordered Product", "API", "API"),
            metric("other", "Viewed Product", "Shopify", "eCommerce"),
        ];
        let picked = pick_order_metrics(&metrics);
        assert_eq!(picked.placed_order.as_deref(), Some("shop1"));
        assert_eq!(picked.ordered_product.as_deref(), Some("api2"));
        assert_eq!(pick_order_metrics(&[]), OrderMetrics::default());
    }

    #[test]
    fn import_profiles_unset_null_properties() {
        let mut props = Map::new();
        props.insert("sp_subject".into(), json!("Hi"));
        props.insert("sp_old".into(), Value::Null);
        let p = import_profile("01HXYZ0000000000000000000A", &props);
        assert_eq!(p["attributes"]["properties"], json!({"sp_subject": "Hi"}));
        assert_eq!(p["meta"]["patch_properties"]["unset"], json!(["sp_old"]));
        let plain = import_profile("01HXYZ0000000000000000000A", &Map::new());
        assert!(plain.get("meta").is_none());
    }

    #[test]
    fn job_status_parses_leniently() {
        assert_eq!(ImportStatus::parse("complete"), ImportStatus::Complete);
        assert_eq!(ImportStatus::parse("failed"), ImportStatus::Failed);
        assert_eq!(ImportStatus::parse("exploding"), ImportStatus::Processing);
        let job = parse_job(
            &json!({"data": {"id": "job1", "attributes": {"status": "queued",
            "total_count": 3, "completed_count": null}}}),
        )
        .unwrap();
        assert_eq!(
            (
                job.status,
                job.total_count,
                job.completed_count,
                job.failed_count
            ),
            (ImportStatus::Queued, 3, 0, 0)
        );
    }

    #[test]
    fn import_errors_keep_code_and_profile_id_but_no_personal_data() {
        let item = json!({"type": "import-error", "id": "e1", "attributes": {"code": "invalid",
            "title": "Invalid input.", "detail": "Invalid email jane@localhost for +1 555 123 4567",
            "source": {"pointer": "/data/attributes/profiles/data/0"},
            "original_payload": {"type": "profile", "id": "01HXYZ0000000000000000000A",
                "attributes": {"email": "jane@localhost"}}}});
        let err = parse_import_error(&item);
        assert_eq!(err.code, "invalid");
        assert_eq!(
            err.profile_id.as_deref(),
            Some("01HXYZ0000000000000000000A")
        );
        assert!(
            !err.detail.contains("jane") && !err.detail.contains("555"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn only_quotable_emails_reach_a_filter() {
        assert!(filterable_email("jane@example.com"));
        assert!(!filterable_email("jane\"])@example.com"));
        assert!(!filterable_email("no-at-sign"));
    }
}
