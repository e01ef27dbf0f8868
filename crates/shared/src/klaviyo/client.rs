//! The Klaviyo REST client (JSON:API). Every call carries the merchant's key, the pinned
//! `revision` and a stable `User-Agent`; waits for the in-process rate limiter; honours
//! `Retry-After` on 429; and follows `links.next` for collections.

use super::error::KlaviyoError;
use super::limits::{key_fingerprint, Endpoint, KlaviyoUsage, RateLimiter, RateLimits};
use super::types::{Account, Audience, AudienceKind, READ_SCOPES};
use crate::domain::KlaviyoApiKey;
use futures::Stream;
use rand::Rng;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
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
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
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

fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

impl KlaviyoClient {
    /// With Klaviyo's published rate limits.
    pub fn new(http: reqwest::Client, base_url: String, revision: String) -> Self {
        Self::with_limits(http, base_url, revision, RateLimits::real())
    }

    /// Panics if `base_url` is not an absolute URL (it comes from configuration).
    pub fn with_limits(http: reqwest::Client, base_url: String, revision: String, limits: RateLimits) -> Self {
        let base = Url::parse(base_url.trim_end_matches('/')).expect("KLAVIYO_BASE_URL must be an absolute URL");
        Self { http, base, revision, limiter: Arc::new(RateLimiter::new(limits)), throttle_retries: DEFAULT_THROTTLE_RETRIES }
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
        let Some(next) = body.pointer("/links/next").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(next).map_err(|_| KlaviyoError::Invalid("malformed links.next".into()))?;
        if url.origin() != self.base.origin() {
            return Err(KlaviyoError::Invalid("links.next points outside the Klaviyo API".into()));
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
            let failure = match request.send().await {
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
                            return serde_json::from_str(&text)
                                .map_err(|_| KlaviyoError::Transient("unreadable Klaviyo response".into()));
                        }
                        (429, Ok(_)) => {
                            self.limiter.count_throttled();
                            let wait = retry_after.unwrap_or(Duration::from_secs(1)) + jitter(500);
                            if throttled >= self.throttle_retries {
                                return Err(KlaviyoError::Throttled { retry_after: wait });
                            }
                            throttled += 1;
                            tracing::debug!(endpoint = endpoint.name(), wait_ms = wait.as_millis() as u64, "Klaviyo 429");
                            tokio::time::sleep(wait).await;
                            self.limiter.add_wait(wait);
                            continue;
                        }
                        (401, Ok(_)) => return Err(KlaviyoError::Unauthorized),
                        (403, Ok(text)) if is_json => {
                            let (code, summary) = error_summary(&text);
                            return Err(match code.as_deref() {
                                Some("permission_denied") => KlaviyoError::MissingScope(endpoint.scope().to_owned()),
                                _ => KlaviyoError::Invalid(summary),
                            });
                        }
                        // 403 text/html: a Cloudflare challenge, not a scope problem.
                        (403, Ok(_)) => KlaviyoError::Transient("Cloudflare challenge (HTTP 403, not JSON)".into()),
                        (500..=599, Ok(_)) => KlaviyoError::Transient(format!("HTTP {status}")),
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

    async fn get(&self, key: &KlaviyoApiKey, endpoint: Endpoint, url: Url) -> Result<Value, KlaviyoError> {
        self.send(key, endpoint, Method::GET, url, None).await
    }

    /// Every resource of a collection, following `links.next` until it is absent.
    async fn get_all(&self, key: &KlaviyoApiKey, endpoint: Endpoint, first: Url) -> Result<Vec<Value>, KlaviyoError> {
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
        let body = self.get(key, Endpoint::Accounts, self.url("/api/accounts", &[])).await?;
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
            .or_else(|| contact.and_then(|c| c.get("default_sender_name")).and_then(Value::as_str))
            .unwrap_or("");
        Ok(Account { id: id.to_owned(), name: name.trim().to_owned() })
    }

    /// Which of [`READ_SCOPES`] the key lacks, by one minimal GET each (a JSON 403
    /// `permission_denied` means missing). Any other failure is returned as is.
    pub async fn probe_read_scopes(&self, key: &KlaviyoApiKey) -> Result<Vec<&'static str>, KlaviyoError> {
        let one = [("page[size]", "1")];
        let probes: [(&'static str, Endpoint, Url); 5] = [
            ("lists:read", Endpoint::Lists, self.url("/api/lists", &one)),
            ("segments:read", Endpoint::Segments, self.url("/api/segments", &one)),
            ("profiles:read", Endpoint::Profiles, self.url("/api/profiles", &one)),
            ("events:read", Endpoint::Events, self.url("/api/events", &one)),
            // Get Metrics has no page[size].
            ("metrics:read", Endpoint::Metrics, self.url("/api/metrics", &[])),
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

    async fn audiences(&self, key: &KlaviyoApiKey, kind: AudienceKind) -> Result<Vec<Audience>, KlaviyoError> {
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
                let name = item.pointer("/attributes/name").and_then(Value::as_str).unwrap_or("").to_owned();
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
            self.url(&format!("/api/{}/{id}/relationships/profiles", kind.path()), &[("page[size]", "100")])
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

    /// Profiles by id (any number; sent 100 per request), as raw JSON:API resources.
    pub async fn get_profiles(&self, key: &KlaviyoApiKey, ids: &[String]) -> Result<Vec<Value>, KlaviyoError> {
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

    async fn profiles_by_id(&self, key: &KlaviyoApiKey, ids: &[String], predictive: bool) -> Result<Vec<Value>, KlaviyoError> {
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
            return Err(KlaviyoError::Invalid("profile update exceeds Klaviyo's 100 KB limit".into()));
        }
        let url = self.url(&format!("/api/profiles/{id}"), &[]);
        self.send(key, Endpoint::UpdateProfile, Method::PATCH, url, Some(&body)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> KlaviyoClient {
        KlaviyoClient::new(reqwest::Client::new(), "https://a.klaviyo.com/".into(), "2026-07-15".into())
    }

    #[test]
    fn urls_join_the_base_and_encode_the_query() {
        let url = client().url("/api/lists", &[("page[size]", "1")]);
        assert_eq!(url.as_str(), "https://a.klaviyo.com/api/lists?page%5Bsize%5D=1");
    }

    #[test]
    fn next_links_to_another_host_are_refused() {
        let c = client();
        let ok = json!({"links": {"next": "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=x"}});
        assert!(c.next_link(&ok).unwrap().is_some());
        let evil = json!({"links": {"next": "https://evil.example/api/lists"}});
        assert!(c.next_link(&evil).is_err());
        assert!(c.next_link(&json!({"links": {"self": "x"}})).unwrap().is_none());
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
}
