//! Klaviyo's side of a flow with a Webhook action: Trigger → Webhook → Time delay → Email.
//!
//! Controls (authenticated with the account's private key, `Authorization: Klaviyo-API-Key …`):
//! - `POST /_sandbox/klaviyo/flows` saves a flow (templates are parsed then, as Klaviyo
//!   validates them when a flow is saved);
//! - `POST /_sandbox/klaviyo/flows/{id}/fire` tracks the triggering event for each profile and
//!   runs the flow for it;
//! - `GET /_sandbox/klaviyo/flows/{id}/deliveries[?wait_secs=N]` reports every webhook attempt
//!   and the email as rendered at send time.
//!
//! Vendor behaviour modelled (NOTES §1.7):
//! - The webhook is an unsigned JSON POST carrying the merchant's pasted headers plus
//!   `Content-Type: application/json` and `X-Klaviyo-Flow-ID`; the URL must be HTTPS (plain HTTP
//!   is accepted for loopback hosts only, so tests can listen locally); redirects are not followed.
//! - Any 2xx succeeds. Only 429, 500, 502 and 503 are retried, with exponential backoff: 17 tries
//!   in all over 24 h (first retry after 10 s, doubling, capped so the 17th try lands at 24 h; the
//!   exact schedule is unpublished and `Retry-After` is not honoured). Every other status, 3xx,
//!   4xx and 504 included, and a network error or timeout, drops the webhook after that one try.
//!   The response body is ignored.
//! - The profile does not wait for the webhook: the time delay starts when the webhook step runs,
//!   so a slow or failing receiver does not hold the email back. The email is rendered when it is
//!   sent, from the profile's properties as stored then.
//! - The triggering event is readable through Get Events only `event_readable_after_seconds`
//!   after it was tracked (default 180: "a few minutes"); a repeated `$event_id` for the same
//!   profile and metric is deduplicated and does not trigger the flow again.
//!
//! Durations are vendor time × the flow's `time_scale` (default: the sandbox's
//! `vendor_time_scale`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::data::{Event, EventKind, KlaviyoStore, Metric, Profile};
use super::django::{Mode, Template};
use crate::controls::{error, parse_body};
use crate::state::AppState;
use crate::util::{alnum_id, klaviyo_time, now_unix, query_get, query_pairs, uuid_like};

/// Tries in all, the first included.
pub const MAX_ATTEMPTS: usize = 17;
/// Statuses Klaviyo retries; every other non-2xx is dropped after one try.
const RETRIED: [u16; 4] = [429, 500, 502, 503];
const FIRST_RETRY_SECS: f64 = 10.0;
/// Caps the doubling so that the 17th try comes 24 h after the first.
const MAX_RETRY_GAP_SECS: f64 = 13_186.0;
const DEFAULT_EVENT_READABLE_AFTER_SECS: f64 = 180.0;
/// Klaviyo's shortest time delay, and its unit.
const DELAY_UNIT_SECS: u64 = 60;
/// Not published by Klaviyo ("answer fast"); real seconds, not scaled.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Metrics a flow may be triggered by that Shopify's integration tracks.
const SHOPIFY_METRICS: &[&str] = &["Checkout Started", "Placed Order", "Ordered Product"];

/// Vendor seconds between try `attempt` (1-based) and the next.
pub fn retry_gap_secs(attempt: usize) -> f64 {
    let doublings = attempt.saturating_sub(1).min(30) as i32;
    (FIRST_RETRY_SECS * 2f64.powi(doublings)).min(MAX_RETRY_GAP_SECS)
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_sandbox/klaviyo/flows", post(create_flow))
        .route("/_sandbox/klaviyo/flows/{id}/fire", post(fire_flow))
        .route("/_sandbox/klaviyo/flows/{id}/deliveries", get(deliveries))
}

pub struct Flow {
    id: String,
    account_id: String,
    name: String,
    /// Index into the store's metrics; `None` for list- or segment-triggered flows.
    metric: Option<usize>,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Template,
    delay_secs: u64,
    email: Option<Template>,
    time_scale: f64,
    event_readable_after_secs: f64,
    deliveries: Vec<Delivery>,
}

struct Delivery {
    profile_id: String,
    event_id: Option<String>,
    fired_at: i64,
    /// The body as rendered when the webhook step ran (every retry sends the same bytes).
    body: String,
    attempts: Vec<Attempt>,
    outcome: Outcome,
    email: EmailState,
}

struct Attempt {
    at: i64,
    elapsed: Duration,
    status: Option<u16>,
    error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Succeeded,
    Dropped,
    RetriesExhausted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Dropped => "dropped",
            Self::RetriesExhausted => "retries_exhausted",
        }
    }
}

enum EmailState {
    /// The flow has no email step.
    None,
    Pending,
    Sent {
        html: String,
        at: i64,
        elapsed: Duration,
    },
}

impl Delivery {
    fn done(&self) -> bool {
        self.outcome != Outcome::Pending && !matches!(self.email, EmailState::Pending)
    }
}

// ---------- controls ----------

/// A refused control request: status and message, turned into the controls' error body once.
struct Reject(StatusCode, String);

fn reject(status: StatusCode, msg: impl Into<String>) -> Reject {
    Reject(status, msg.into())
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The account whose private key is in `Authorization: Klaviyo-API-Key pk_…`.
fn account_for(st: &AppState, headers: &HeaderMap) -> Result<String, Reject> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Klaviyo-API-Key"))
        .map(|(_, key)| key.trim().to_string());
    let Some(key) = key else {
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "send the account's private key as 'Authorization: Klaviyo-API-Key pk_…'",
        ));
    };
    match st.klaviyo().keys.get(&key) {
        Some(k) if !k.revoked => Ok(k.account_id.clone()),
        _ => Err(reject(StatusCode::UNAUTHORIZED, "unknown or revoked key")),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_template(src: Option<&str>, what: &str) -> Result<Template, Reject> {
    let Some(src) = src else {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            format!("'{what}' must be a string"),
        ));
    };
    Template::parse(src).map_err(|e| reject(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
}

/// HTTPS only, as Klaviyo requires; plain HTTP to a loopback host is let through for local tests.
fn parse_webhook_url(raw: Option<&str>) -> Result<String, Reject> {
    let bad = |msg: &str| reject(StatusCode::BAD_REQUEST, format!("webhook.url: {msg}"));
    let url = url::Url::parse(raw.ok_or_else(|| bad("required"))?)
        .map_err(|e| bad(&format!("not a URL ({e})")))?;
    let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
        || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" if loopback => Ok(url.to_string()),
        _ => Err(bad(
            "must start with https:// (plain http is accepted for loopback hosts only)",
        )),
    }
}

fn parse_headers(v: Option<&Value>) -> Result<Vec<(HeaderName, HeaderValue)>, Reject> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Some(map) = v.as_object() else {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "webhook.headers must be an object of strings",
        ));
    };
    map.iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).ok();
            let value = v.as_str().and_then(|v| HeaderValue::from_str(v).ok());
            match (name, value) {
                (Some(n), Some(v)) => Ok((n, v)),
                _ => Err(reject(
                    StatusCode::BAD_REQUEST,
                    format!("webhook.headers: '{k}' is not a valid header"),
                )),
            }
        })
        .collect()
}

/// The metric's index, creating it (as Klaviyo does on the first event) when absent.
fn metric_index(store: &mut KlaviyoStore, name: &str) -> usize {
    if let Some(i) = store.metrics.iter().position(|m| m.name == name) {
        return i;
    }
    let integration = if SHOPIFY_METRICS.contains(&name) {
        json!({"object": "integration", "id": "0eMvjm", "key": "shopify", "name": "Shopify", "category": "eCommerce"})
    } else {
        json!({"object": "integration", "id": "7FtS4J", "key": "api", "name": "API", "category": "API"})
    };
    let id = alnum_id(&mut store.rng, 6);
    store.metrics.push(Metric {
        id,
        name: name.to_string(),
        created: now_unix(),
        integration: Some(integration),
    });
    store.metrics.len() - 1
}

fn non_negative(v: &Value, key: &str) -> Result<Option<f64>, Reject> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_f64() {
            Some(f) if f >= 0.0 && f.is_finite() => Ok(Some(f)),
            _ => Err(reject(
                StatusCode::BAD_REQUEST,
                format!("'{key}' must be a non-negative number"),
            )),
        },
    }
}

/// `POST /_sandbox/klaviyo/flows {"name", "trigger_metric", "webhook": {"url", "headers",
/// "body"}, "delay_seconds", "email": {"template"}, "time_scale", "event_readable_after_seconds"}`.
async fn create_flow(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let account_id = match account_for(&st, &headers) {
        Ok(a) => a,
        Err(reject) => return reject.into_response(),
    };
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match build_flow(&st, &req, account_id) {
        Ok(resp) => resp,
        Err(reject) => reject.into_response(),
    }
}

fn build_flow(st: &AppState, req: &Value, account_id: String) -> Result<Response, Reject> {
    let Some(name) = str_field(req, "name").filter(|n| !n.trim().is_empty()) else {
        return Err(reject(StatusCode::BAD_REQUEST, "'name' is required"));
    };
    let trigger = match req.get("trigger_metric") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if !m.trim().is_empty() => Some(m.clone()),
        Some(_) => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "'trigger_metric' must be a metric name or null",
            ))
        }
    };
    let Some(webhook) = req.get("webhook").filter(|w| w.is_object()) else {
        return Err(reject(StatusCode::BAD_REQUEST, "'webhook' is required"));
    };
    let url = parse_webhook_url(str_field(webhook, "url"))?;
    let wh_headers = parse_headers(webhook.get("headers"))?;
    let body = parse_template(str_field(webhook, "body"), "webhook.body")?;
    let delay_secs =
        match req.get("delay_seconds") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_u64() {
                Some(s) if s >= DELAY_UNIT_SECS && s % DELAY_UNIT_SECS == 0 => s,
                _ => return Err(reject(
                    StatusCode::BAD_REQUEST,
                    "'delay_seconds' must be whole minutes, at least 60 (Klaviyo's shortest delay)",
                )),
            },
        };
    let email = match req.get("email") {
        None | Some(Value::Null) => None,
        Some(e) => Some(parse_template(str_field(e, "template"), "email.template")?),
    };
    let time_scale = non_negative(req, "time_scale")?.unwrap_or(st.config.vendor_time_scale);
    let readable_after = non_negative(req, "event_readable_after_seconds")?
        .unwrap_or(DEFAULT_EVENT_READABLE_AFTER_SECS);

    let mut store = st.klaviyo();
    let metric = trigger.as_deref().map(|m| metric_index(&mut store, m));
    let id = loop {
        let id = alnum_id(&mut store.rng, 6);
        if !store.flows.contains_key(&id) {
            break id;
        }
    };
    let trigger_json = metric.map(|i| {
        let m = &store.metrics[i];
        json!({"id": m.id, "name": m.name})
    });
    store.flows.insert(
        id.clone(),
        Flow {
            id: id.clone(),
            account_id,
            name: name.to_string(),
            metric,
            url,
            headers: wh_headers,
            body,
            delay_secs,
            email,
            time_scale,
            event_readable_after_secs: readable_after,
            deliveries: Vec::new(),
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": name, "trigger_metric": trigger_json, "time_scale": time_scale})),
    )
        .into_response())
}

/// `POST /_sandbox/klaviyo/flows/{id}/fire {"profiles": [{"profile_id", "event": {…}}]}`.
async fn fire_flow(
    State(st): State<Arc<AppState>>,
    Path(flow_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account_id = match account_for(&st, &headers) {
        Ok(a) => a,
        Err(reject) => return reject.into_response(),
    };
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(entries) = req
        .get("profiles")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "'profiles' must be a non-empty array",
        );
    };

    let mut store = st.klaviyo();
    let Some(flow) = store
        .flows
        .get(&flow_id)
        .filter(|f| f.account_id == account_id)
    else {
        return error(StatusCode::NOT_FOUND, "unknown flow");
    };
    let metric = flow.metric;
    let readable_after = flow.event_readable_after_secs * flow.time_scale;
    // Validate every entry before anything happens.
    let mut planned = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Some(pid) = str_field(entry, "profile_id") else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("profiles[{i}].profile_id is required"),
            );
        };
        let Some(&pidx) = store.profile_index.get(pid) else {
            return error(
                StatusCode::NOT_FOUND,
                format!("profiles[{i}]: no profile {pid}"),
            );
        };
        let event = match (metric, entry.get("event")) {
            (Some(_), Some(e)) if e.is_object() => Some(e.clone()),
            (Some(_), _) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("profiles[{i}].event must be an object: this flow is metric-triggered"),
                )
            }
            (None, None | Some(Value::Null)) => None,
            (None, Some(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("profiles[{i}].event: this flow has no trigger metric"),
                )
            }
        };
        planned.push((pidx, event));
    }

    let now = now_unix();
    let fired = Instant::now();
    let mut report = Vec::with_capacity(planned.len());
    let mut runs = Vec::new();
    for (pidx, event) in planned {
        let profile_id = store.profiles[pidx].id.clone();
        let event_id = match (metric, &event) {
            (Some(m), Some(props)) => {
                match track_event(&mut store, m, pidx, props.clone(), now, readable_after) {
                    Some(id) => Some(id),
                    None => {
                        report.push(json!({"profile_id": profile_id, "event_id": null, "deduplicated": true}));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let context = template_context(&store.profiles[pidx], event.as_ref());
        let flow = store
            .flows
            .get_mut(&flow_id)
            .expect("flow checked above under the same lock");
        let body = flow.body.render(&context, Mode::WebhookBody);
        flow.deliveries.push(Delivery {
            profile_id: profile_id.clone(),
            event_id: event_id.clone(),
            fired_at: now,
            body: body.clone(),
            attempts: Vec::new(),
            outcome: Outcome::Pending,
            email: if flow.email.is_some() {
                EmailState::Pending
            } else {
                EmailState::None
            },
        });
        runs.push(Run {
            flow_id: flow.id.clone(),
            index: flow.deliveries.len() - 1,
            url: flow.url.clone(),
            headers: flow.headers.clone(),
            body,
            scale: flow.time_scale,
            delay: Duration::from_secs(flow.delay_secs),
            has_email: flow.email.is_some(),
            event,
            fired,
        });
        report.push(json!({"profile_id": profile_id, "event_id": event_id, "deduplicated": false}));
    }
    drop(store);
    for run in runs {
        let run = Arc::new(run);
        tokio::spawn(send_webhook(st.clone(), run.clone()));
        if run.has_email {
            tokio::spawn(send_email(st.clone(), run));
        }
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"flow_id": flow_id, "profiles": report})),
    )
        .into_response()
}

/// Records the triggering event; `None` when its `$event_id` was already tracked for this
/// profile and metric (Klaviyo deduplicates it, and the flow does not trigger again).
fn track_event(
    store: &mut KlaviyoStore,
    metric: usize,
    profile: usize,
    properties: Value,
    ts: i64,
    readable_after_secs: f64,
) -> Option<String> {
    if let Some(unique) = properties.get("$event_id").filter(|v| !v.is_null()) {
        let dup = store.events_by_profile[profile].iter().any(|&ei| {
            let e = &store.events[ei];
            e.metric == metric
                && matches!(&e.kind, EventKind::Recorded { properties: p } if p.get("$event_id") == Some(unique))
        });
        if dup {
            return None;
        }
    }
    let id = alnum_id(&mut store.rng, 12);
    let uuid = uuid_like(&mut store.rng);
    store.events.push(Event {
        id: id.clone(),
        uuid,
        metric,
        profile,
        ts,
        kind: EventKind::Recorded { properties },
        readable_at: Some(Instant::now() + Duration::from_secs_f64(readable_after_secs)),
    });
    let ei = store.events.len() - 1;
    store.events_by_profile[profile].push(ei);
    let p = &mut store.profiles[profile];
    p.last_event_date = Some(p.last_event_date.unwrap_or(0).max(ts));
    Some(id)
}

/// `person` as Klaviyo's templates see a profile: `KlaviyoID` (the profile id), `id` (the
/// merchant's external id), the standard fields, and every custom property by its key. Unset
/// fields are absent, so they render empty and take `|default`.
fn person_json(p: &Profile) -> Value {
    let mut person = Map::new();
    for (k, v) in &p.properties {
        person.insert(k.clone(), v.clone());
    }
    let mut set = |k: &str, v: Option<&str>| {
        match v {
            Some(v) => person.insert(k.to_string(), json!(v)),
            None => person.remove(k),
        };
    };
    set("KlaviyoID", Some(&p.id));
    set("id", p.external_id.as_deref());
    set("email", p.email.as_deref());
    set("phone_number", p.phone_number.as_deref());
    set("first_name", p.first_name.as_deref());
    set("last_name", p.last_name.as_deref());
    for key in ["city", "region", "country", "zip", "timezone"] {
        let v = p
            .location
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned);
        set(key, v.as_deref());
    }
    Value::Object(person)
}

fn template_context(p: &Profile, event: Option<&Value>) -> Value {
    let person = person_json(p);
    let mut ctx = Map::new();
    // Klaviyo's shorthands for the commonest profile fields.
    for key in ["first_name", "last_name", "email", "phone_number"] {
        if let Some(v) = person.get(key) {
            ctx.insert(key.to_string(), v.clone());
        }
    }
    ctx.insert("person".into(), person);
    if let Some(e) = event {
        ctx.insert("event".into(), e.clone());
    }
    Value::Object(ctx)
}

// ---------- running a profile through the flow ----------

struct Run {
    flow_id: String,
    index: usize,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    scale: f64,
    delay: Duration,
    has_email: bool,
    event: Option<Value>,
    fired: Instant,
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("the webhook HTTP client builds")
    })
}

fn scaled(secs: f64, scale: f64) -> Duration {
    Duration::from_secs_f64((secs * scale).max(0.0))
}

fn with_delivery(st: &AppState, run: &Run, f: impl FnOnce(&mut Delivery)) {
    if let Some(d) = st
        .klaviyo()
        .flows
        .get_mut(&run.flow_id)
        .and_then(|flow| flow.deliveries.get_mut(run.index))
    {
        f(d);
    }
}

async fn send_webhook(st: Arc<AppState>, run: Arc<Run>) {
    for attempt in 1..=MAX_ATTEMPTS {
        let mut req = http()
            .post(&run.url)
            .header(header::CONTENT_TYPE, "application/json");
        for (k, v) in &run.headers {
            req = req.header(k, v);
        }
        let resp = req
            .header("X-Klaviyo-Flow-ID", run.flow_id.as_str())
            .body(run.body.clone())
            .send()
            .await;
        let (status, err) = match resp {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(describe(&e))),
        };
        let outcome = match status {
            Some(s) if (200..300).contains(&s) => Outcome::Succeeded,
            Some(s) if RETRIED.contains(&s) => {
                if attempt == MAX_ATTEMPTS {
                    Outcome::RetriesExhausted
                } else {
                    Outcome::Pending
                }
            }
            _ => Outcome::Dropped,
        };
        with_delivery(&st, &run, |d| {
            d.attempts.push(Attempt {
                at: now_unix(),
                elapsed: run.fired.elapsed(),
                status,
                error: err,
            });
            d.outcome = outcome;
        });
        if outcome != Outcome::Pending {
            return;
        }
        tokio::time::sleep(scaled(retry_gap_secs(attempt), run.scale)).await;
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

/// After the delay, renders the email from the profile as it is stored at that moment.
async fn send_email(st: Arc<AppState>, run: Arc<Run>) {
    let due = run.fired + scaled(run.delay.as_secs_f64(), run.scale);
    tokio::time::sleep_until(due.into()).await;
    let mut store = st.klaviyo();
    let Some(flow) = store.flows.get(&run.flow_id) else {
        return;
    };
    let Some(template) = flow.email.clone() else {
        return;
    };
    let profile_id = flow.deliveries[run.index].profile_id.clone();
    let html = match store.profile_index.get(&profile_id) {
        Some(&pidx) => template.render(
            &template_context(&store.profiles[pidx], run.event.as_ref()),
            Mode::Email,
        ),
        None => String::new(),
    };
    if let Some(d) = store
        .flows
        .get_mut(&run.flow_id)
        .and_then(|f| f.deliveries.get_mut(run.index))
    {
        d.email = EmailState::Sent {
            html,
            at: now_unix(),
            elapsed: run.fired.elapsed(),
        };
    }
}

// ---------- reporting ----------

fn vendor_secs(elapsed: Duration, scale: f64) -> Value {
    if scale > 0.0 {
        json!((elapsed.as_secs_f64() / scale * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn delivery_json(flow: &Flow, d: &Delivery) -> Value {
    let attempts: Vec<Value> = d
        .attempts
        .iter()
        .map(|a| {
            json!({
                "at": klaviyo_time(a.at),
                "elapsed_ms": a.elapsed.as_millis() as u64,
                "vendor_elapsed_secs": vendor_secs(a.elapsed, flow.time_scale),
                "status": a.status,
                "error": a.error,
            })
        })
        .collect();
    let email = match &d.email {
        EmailState::None => json!({"status": "no_email_step"}),
        EmailState::Pending => json!({"status": "pending"}),
        EmailState::Sent { html, at, elapsed } => json!({
            "status": "sent",
            "html": html,
            "rendered_at": klaviyo_time(*at),
            "elapsed_ms": elapsed.as_millis() as u64,
            "vendor_elapsed_secs": vendor_secs(*elapsed, flow.time_scale),
        }),
    };
    json!({
        "profile_id": d.profile_id,
        "event_id": d.event_id,
        "fired_at": klaviyo_time(d.fired_at),
        "webhook": {
            "body": d.body,
            "attempts": attempts,
            "outcome": d.outcome.as_str(),
        },
        "email": email,
        "done": d.done(),
    })
}

/// `GET /_sandbox/klaviyo/flows/{id}/deliveries[?wait_secs=N]`: with `wait_secs`, answers as
/// soon as every delivery is done (webhook settled and email sent) or after N seconds.
async fn deliveries(
    State(st): State<Arc<AppState>>,
    Path(flow_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account_id = match account_for(&st, &headers) {
        Ok(a) => a,
        Err(reject) => return reject.into_response(),
    };
    let pairs = query_pairs(q.as_deref());
    let wait = match query_get(&pairs, "wait_secs").map(str::parse::<f64>) {
        None => 0.0,
        Some(Ok(w)) if (0.0..=600.0).contains(&w) => w,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "wait_secs must be a number from 0 to 600",
            )
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(wait);
    loop {
        {
            let store = st.klaviyo();
            let Some(flow) = store
                .flows
                .get(&flow_id)
                .filter(|f| f.account_id == account_id)
            else {
                return error(StatusCode::NOT_FOUND, "unknown flow");
            };
            let done = flow.deliveries.iter().all(Delivery::done);
            if done || Instant::now() >= deadline {
                let by_outcome = flow.deliveries.iter().fold(HashMap::new(), |mut m, d| {
                    *m.entry(d.outcome.as_str()).or_insert(0u64) += 1;
                    m
                });
                return Json(json!({
                    "flow_id": flow.id,
                    "name": flow.name,
                    "done": done,
                    "webhook_outcomes": by_outcome,
                    "deliveries": flow.deliveries.iter().map(|d| delivery_json(flow, d)).collect::<Vec<_>>(),
                }))
                .into_response();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_tries_span_twenty_four_hours() {
        let total: f64 = (1..MAX_ATTEMPTS).map(retry_gap_secs).sum();
        assert_eq!(total, 86_400.0);
        assert_eq!(retry_gap_secs(1), 10.0);
        assert_eq!(retry_gap_secs(2), 20.0);
        assert!((1..MAX_ATTEMPTS - 1).all(|a| retry_gap_secs(a + 1) >= retry_gap_secs(a)));
    }
}
