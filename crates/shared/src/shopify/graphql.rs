//! The Admin GraphQL call: one POST per query, paced by Shopify's cost throttle (a leaky bucket
//! per app and shop). Every response reports `extensions.cost`; we remember the last
//! `throttleStatus` and each document's requested cost, sleep *before* sending when the bucket
//! cannot cover the next request, and on THROTTLED sleep `(requested − available) / restoreRate`.

use super::admin::ShopifyAdmin;
use super::error::ShopifyError;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Retries after THROTTLED (HTTP 200 with the THROTTLED code, or 429) before giving up. Several
/// containers may share one shop's bucket, so losing a few races in a row is normal; waiting is
/// always right for a sync, only a bucket that never refills should end it.
const MAX_THROTTLE_RETRIES: u32 = 40;
/// Retries after a 5xx or a network failure before giving up with `Transient`.
const MAX_TRANSIENT_RETRIES: u32 = 3;
/// Never sleep longer than this for one throttle wait (a misreported restore rate must not hang us).
const MAX_SINGLE_WAIT: Duration = Duration::from_secs(60);
/// Added to a proactive wait so the bucket has surely restored enough when we arrive.
const PACING_SLACK: Duration = Duration::from_millis(50);

/// What one session has spent so far; the benchmark reports cost points per product.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShopifyUsage {
    /// GraphQL POSTs sent (including retries).
    pub requests: u64,
    /// Sum of `actualQueryCost`: the points the bucket really paid.
    pub cost_points: u64,
    /// Sum of `requestedQueryCost`.
    pub requested_points: u64,
    /// THROTTLED replies and 429s received.
    pub throttled: u64,
    /// Retries after 5xx or network errors.
    pub transient_retries: u64,
    /// Time spent sleeping for the throttle, proactively or after THROTTLED.
    pub waited: Duration,
    /// Token refreshes this session performed itself.
    pub token_refreshes: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryCost {
    requested_query_cost: Option<f64>,
    actual_query_cost: Option<f64>,
    throttle_status: Option<ThrottleStatus>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    errors: Option<Vec<GraphQlError>>,
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    #[serde(default)]
    cost: Option<QueryCost>,
}

#[derive(Deserialize)]
struct GraphQlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<ErrorExtensions>,
}

#[derive(Deserialize)]
struct ErrorExtensions {
    #[serde(default)]
    code: Option<String>,
}

/// The session's view of the shop's bucket, plus counters.
#[derive(Default)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Default)]
struct PacerState {
    /// The last reported bucket and when we saw it; adjusted locally as we spend.
    bucket: Option<(ThrottleStatus, Instant)>,
    /// Last requested cost per document, the best guess for its next call.
    expected: HashMap<u64, f64>,
    usage: ShopifyUsage,
}

impl Pacer {
    pub(crate) fn usage(&self) -> ShopifyUsage {
        self.state.lock().unwrap().usage.clone()
    }

    pub(crate) fn count_refresh(&self) {
        self.state.lock().unwrap().usage.token_refreshes += 1;
    }

    fn count_waited(&self, waited: Duration) {
        self.state.lock().unwrap().usage.waited += waited;
    }

    /// How long to wait before sending `doc`, given the bucket as last seen and restored since.
    /// Reserves the expected cost so concurrent callers in the same session queue up.
    fn reserve(&self, doc: u64) -> Duration {
        let mut state = self.state.lock().unwrap();
        let Some(expected) = state.expected.get(&doc).copied() else {
            return Duration::ZERO;
        };
        let Some((bucket, seen)) = state.bucket else {
            return Duration::ZERO;
        };
        if bucket.restore_rate <= 0.0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        // `seen` lies in the future when an earlier caller reserved points it is waiting for.
        let (base, available) = if seen > now {
            (seen, bucket.currently_available)
        } else {
            let restored = now.duration_since(seen).as_secs_f64() * bucket.restore_rate;
            (
                now,
                (bucket.currently_available + restored).min(bucket.maximum_available),
            )
        };
        // A query larger than the whole bucket can never be covered; let Shopify decide.
        let needed = expected.min(bucket.maximum_available);
        let extra = if needed > available {
            Duration::from_secs_f64((needed - available) / bucket.restore_rate)
        } else {
            Duration::ZERO
        };
        // A little slack when we must wait: the server floors `currentlyAvailable` and our clock
        // is not its clock; arriving a hair early would earn a THROTTLED round trip.
        let slack = if extra.is_zero() {
            Duration::ZERO
        } else {
            PACING_SLACK
        };
        let ready_at = base + extra + slack;
        let wait = ready_at.saturating_duration_since(now).min(MAX_SINGLE_WAIT);
        let left = available + extra.as_secs_f64() * bucket.restore_rate - needed;
        state.bucket = Some((
            ThrottleStatus {
                currently_available: left,
                ..bucket
            },
            ready_at,
        ));
        wait
    }

    fn record(&self, doc: u64, cost: &QueryCost) {
        let mut state = self.state.lock().unwrap();
        if let Some(requested) = cost.requested_query_cost {
            state.expected.insert(doc, requested);
            state.usage.requested_points += requested.max(0.0) as u64;
        }
        if let Some(actual) = cost.actual_query_cost {
            state.usage.cost_points += actual.max(0.0) as u64;
        }
        if let Some(status) = cost.throttle_status {
            state.bucket = Some((status, Instant::now()));
        }
    }

    fn count_request(&self) {
        self.state.lock().unwrap().usage.requests += 1;
    }
    fn count_throttled(&self) {
        self.state.lock().unwrap().usage.throttled += 1;
    }
    fn count_transient(&self) {
        self.state.lock().unwrap().usage.transient_retries += 1;
    }
}

fn doc_key(document: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    document.hash(&mut hasher);
    hasher.finish()
}

fn jitter(max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_ms))
}

/// Exponential backoff with full jitter for 5xx/network retries: ~200 ms, 400 ms, 800 ms …
pub(crate) fn transient_backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(base / 2) + jitter(base / 2)
}

/// `Retry-After` as whole (or fractional) seconds; HTTP dates are not used by either vendor.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = raw.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The wait after THROTTLED: enough for the bucket to hold the requested cost again.
fn throttle_wait(cost: Option<&QueryCost>) -> Duration {
    let wait = cost
        .and_then(|c| {
            let status = c.throttle_status?;
            let requested = c.requested_query_cost?;
            (status.restore_rate > 0.0).then(|| {
                let missing =
                    (requested.min(status.maximum_available) - status.currently_available).max(0.0);
                Duration::from_secs_f64(missing / status.restore_rate)
            })
        })
        .unwrap_or(Duration::from_secs(1));
    // Jitter in proportion to the wait, so clients sharing a bucket stop arriving together.
    let wait = wait.min(MAX_SINGLE_WAIT);
    wait + jitter(100 + wait.as_millis() as u64 / 2)
}

impl ShopifyAdmin {
    /// Run one GraphQL document (always one of the checked-in `queries/*.graphql`) and decode
    /// its `data`. Paces by the cost throttle, retries THROTTLED and 5xx, refreshes the token
    /// once on a 401.
    pub async fn query<T: DeserializeOwned>(
        &self,
        document: &str,
        variables: Value,
    ) -> Result<T, ShopifyError> {
        let data = self.query_data(document, variables).await?;
        serde_json::from_value(data)
            .map_err(|e| ShopifyError::GraphQl(format!("unexpected response shape: {e}")))
    }

    /// Counters for this session.
    pub fn usage(&self) -> ShopifyUsage {
        self.pacer.usage()
    }

    async fn query_data(&self, document: &str, variables: Value) -> Result<Value, ShopifyError> {
        let doc = doc_key(document);
        let body = serde_json::json!({ "query": document, "variables": variables });
        let mut throttled = 0u32;
        let mut transient = 0u32;
        let mut refreshed = false;
        loop {
            let wait = self.pacer.reserve(doc);
            if !wait.is_zero() {
                tracing::debug!(wait_ms = wait.as_millis() as u64, "pacing Shopify request");
                tokio::time::sleep(wait).await;
                self.pacer.count_waited(wait);
            }
            let token = self.access_token().await?;
            self.pacer.count_request();
            let sent = self
                .http
                .post(&self.graphql_url)
                .header("X-Shopify-Access-Token", token.expose())
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(err) => {
                    if transient >= MAX_TRANSIENT_RETRIES {
                        return Err(ShopifyError::network(err));
                    }
                    self.pacer.count_transient();
                    tokio::time::sleep(transient_backoff(transient)).await;
                    transient += 1;
                    continue;
                }
            };
            let status = response.status().as_u16();
            match status {
                200..=299 => {}
                401 => {
                    if refreshed {
                        return Err(ShopifyError::Unauthorized);
                    }
                    refreshed = true;
                    self.refresh_rejected(&token).await?;
                    continue;
                }
                429 | 503
                    if status == 429
                        || response
                            .headers()
                            .contains_key(reqwest::header::RETRY_AFTER) =>
                {
                    self.pacer.count_throttled();
                    let wait = retry_after(response.headers())
                        .unwrap_or(Duration::from_secs(1))
                        .min(MAX_SINGLE_WAIT)
                        + jitter(250);
                    if throttled >= MAX_THROTTLE_RETRIES {
                        return Err(ShopifyError::Throttled { retry_after: wait });
                    }
                    throttled += 1;
                    tokio::time::sleep(wait).await;
                    self.pacer.count_waited(wait);
                    continue;
                }
                500..=599 => {
                    if transient >= MAX_TRANSIENT_RETRIES {
                        return Err(ShopifyError::Transient(format!(
                            "Admin API returned HTTP {status}"
                        )));
                    }
                    self.pacer.count_transient();
                    tokio::time::sleep(transient_backoff(transient)).await;
                    transient += 1;
                    continue;
                }
                403 => return Err(ShopifyError::ScopeNotGranted),
                // 402 (shop frozen), 404 (shop gone), 423 (shop locked) and other refusals.
                _ => {
                    return Err(ShopifyError::GraphQl(format!(
                        "Admin API returned HTTP {status}"
                    )))
                }
            }
            let envelope: Envelope = match response.json().await {
                Ok(envelope) => envelope,
                Err(_) => {
                    if transient >= MAX_TRANSIENT_RETRIES {
                        return Err(ShopifyError::Transient(
                            "unreadable Admin API response".into(),
                        ));
                    }
                    self.pacer.count_transient();
                    tokio::time::sleep(transient_backoff(transient)).await;
                    transient += 1;
                    continue;
                }
            };
            let cost = envelope.extensions.as_ref().and_then(|e| e.cost);
            if let Some(cost) = &cost {
                self.pacer.record(doc, cost);
            }
            let errors = envelope.errors.unwrap_or_default();
            if errors.is_empty() {
                return Ok(envelope.data.unwrap_or(Value::Null));
            }
            let code_is = |wanted: &str| {
                errors
                    .iter()
                    .any(|e| e.extensions.as_ref().and_then(|x| x.code.as_deref()) == Some(wanted))
            };
            if code_is("THROTTLED") {
                self.pacer.count_throttled();
                let wait = throttle_wait(cost.as_ref());
                if throttled >= MAX_THROTTLE_RETRIES {
                    return Err(ShopifyError::Throttled { retry_after: wait });
                }
                throttled += 1;
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "Shopify THROTTLED; waiting"
                );
                tokio::time::sleep(wait).await;
                self.pacer.count_waited(wait);
                continue;
            }
            if code_is("ACCESS_DENIED") {
                return Err(ShopifyError::ScopeNotGranted);
            }
            if code_is("INTERNAL_SERVER_ERROR") && transient < MAX_TRANSIENT_RETRIES {
                self.pacer.count_transient();
                tokio::time::sleep(transient_backoff(transient)).await;
                transient += 1;
                continue;
            }
            let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
            return Err(ShopifyError::GraphQl(messages.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(requested: f64, available: f64, restore: f64) -> QueryCost {
        QueryCost {
            requested_query_cost: Some(requested),
            actual_query_cost: Some(requested / 2.0),
            throttle_status: Some(ThrottleStatus {
                maximum_available: 1000.0,
                currently_available: available,
                restore_rate: restore,
            }),
        }
    }

    #[test]
    fn throttled_wait_is_missing_points_over_restore_rate() {
        let wait = throttle_wait(Some(&cost(500.0, 100.0, 50.0)));
        // 8 s, plus jitter of up to 100 ms + half the wait.
        assert!(
            wait >= Duration::from_secs(8) && wait <= Duration::from_millis(12_100),
            "{wait:?}"
        );
    }

    #[test]
    fn pacer_waits_before_a_request_the_bucket_cannot_cover() {
        let pacer = Pacer::default();
        assert_eq!(
            pacer.reserve(1),
            Duration::ZERO,
            "nothing known yet: no wait"
        );
        pacer.record(1, &cost(300.0, 100.0, 100.0));
        let wait = pacer.reserve(1);
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2) + PACING_SLACK,
            "{wait:?}"
        );
        // The reservation is remembered: a second caller queues behind the first.
        let second = pacer.reserve(1);
        assert!(second > Duration::from_millis(4900), "{second:?}");
    }

    #[test]
    fn pacer_does_not_wait_when_the_bucket_has_room() {
        let pacer = Pacer::default();
        pacer.record(7, &cost(100.0, 900.0, 50.0));
        assert_eq!(pacer.reserve(7), Duration::ZERO);
        let usage = pacer.usage();
        assert_eq!(usage.requested_points, 100);
        assert_eq!(usage.cost_points, 50);
    }

    #[test]
    fn retry_after_reads_integer_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
