//! Flow triggers: a merchant's Klaviyo flow (Trigger → Webhook → Time delay → Email) calls our
//! public hook for one profile, and a worker writes that profile's copy with Update Profile
//! before the email step renders it. Plain types and rules here; the store is
//! `aws::flows`, the edges are the `flow-hooks` and `flow-worker` crates.

use crate::personalize::{Offer, PropertySet, Settings};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The largest hook body we read (ours is ~150 bytes; a merchant's additions fit easily).
pub const MAX_HOOK_BODY_BYTES: usize = 4096;
/// A delivery for the same (trigger, profile, event) within this window is a replay. Klaviyo
/// retries for 24 h; the window outlasts that.
pub const REPLAY_WINDOW_SECS: i64 = 26 * 3600;
/// Default: a job older than this (from the webhook) is not written: the email has gone.
pub const DEFAULT_DEADLINE_SECS: u32 = 240;
/// Days of counters kept (a listing shows today and the last 30 days).
pub const COUNTER_DAYS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    CheckoutAbandoned,
    PostPurchase,
    BrowseAbandoned,
    Welcome,
    WinBack,
    Custom,
}

impl TriggerKind {
    /// The kinds whose event carries items the customer left behind: candidates complement
    /// them (never the items themselves).
    pub fn uses_cart(self) -> bool {
        matches!(self, Self::CheckoutAbandoned | Self::BrowseAbandoned)
    }

    /// Klaviyo metric names of the triggering event (Shopify's first, then the custom one).
    pub fn metric_names(self) -> &'static [&'static str] {
        match self {
            Self::CheckoutAbandoned => &["Checkout Started", "Started Checkout"],
            Self::BrowseAbandoned => &["Viewed Product"],
            Self::PostPurchase => &["Placed Order"],
            _ => &[],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckoutAbandoned => "checkout_abandoned",
            Self::PostPurchase => "post_purchase",
            Self::BrowseAbandoned => "browse_abandoned",
            Self::Welcome => "welcome",
            Self::WinBack => "win_back",
            Self::Custom => "custom",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerStatus {
    Active,
    Paused,
    /// The secret is gone; deliveries get 404 until the trigger is deleted.
    Revoked,
}

/// `POST /flows/triggers`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    pub kind: TriggerKind,
    /// What the copy is about; grants nothing (the offer does).
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub brief: String,
    #[serde(default)]
    pub offer: Offer,
    /// Slot settings and voice; absent: the merchant's settings at generation time.
    #[serde(default)]
    pub settings: Option<Settings>,
    /// The properties this trigger writes (`sp_<set>_…`): its own, never a campaign's or another
    /// trigger's.
    #[schema(value_type = String, pattern = "^[a-z](?:[a-z0-9_]{0,22}[a-z0-9])?$")]
    pub property_set: PropertySet,
    /// A job older than this (seconds from the webhook) is counted `too_late` and not written;
    /// set it below the flow's time delay. Default 240.
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 30, maximum = 3600)]
    pub deadline_seconds: Option<u32>,
}

impl TriggerRequest {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            errors.push("name must have 1 to 100 characters".to_owned());
        }
        if self.brief.trim().is_empty() || self.brief.chars().count() > 2000 {
            errors.push("brief must have 1 to 2000 characters".to_owned());
        }
        if let Err(e) = self.offer.validate() {
            errors.extend(e);
        }
        if let Some(s) = &self.settings {
            if let Err(e) = s.validate() {
                errors.extend(e);
            }
        }
        if let Some(d) = self.deadline_seconds {
            if !(30..=3600).contains(&d) {
                errors.push("deadline_seconds must be from 30 to 3600".to_owned());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One accepted hook secret, as its keyed hash (never the secret); `valid_until` is set on the
/// previous one during a rotation's overlap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHash {
    pub hash: String,
    #[serde(default)]
    pub valid_until: Option<i64>,
}

/// The stored trigger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlowTrigger {
    pub trigger_id: String,
    pub merchant_id: String,
    pub name: String,
    pub kind: TriggerKind,
    pub brief: String,
    #[serde(default)]
    pub offer: Offer,
    #[serde(default)]
    pub settings: Option<Settings>,
    pub property_set: PropertySet,
    pub status: TriggerStatus,
    pub deadline_seconds: u32,
    pub created_at: i64,
    #[serde(default)]
    pub secret_hashes: Vec<SecretHash>,
}

impl FlowTrigger {
    /// The hashes a delivery may match at `now`.
    pub fn accepted_hashes(&self, now: i64) -> impl Iterator<Item = &str> {
        self.secret_hashes
            .iter()
            .filter(move |h| h.valid_until.is_none_or(|t| now < t))
            .map(|h| h.hash.as_str())
    }
}

/// The queue message: ids only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowJob {
    pub trigger_id: String,
    pub merchant_id: String,
    pub profile_id: String,
    #[serde(default)]
    pub event_id: Option<String>,
    /// Unix milliseconds when the hook accepted the delivery.
    pub received_at_ms: i64,
}

/// What the hook's body must carry (anything else in it is ignored, never logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookBody {
    pub profile_id: String,
    pub event_id: Option<String>,
}

impl HookBody {
    /// Parses the raw body: JSON with a Klaviyo profile id (a 26-character ULID) and, for
    /// metric-triggered flows, the event's `$event_id`. The error names the rule, never a value.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.len() > MAX_HOOK_BODY_BYTES {
            return Err(format!(
                "the body may have at most {MAX_HOOK_BODY_BYTES} bytes"
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(raw).map_err(|_| "the body is not JSON".to_owned())?;
        let pid = v
            .get("profile_id")
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .ok_or("profile_id is required (paste the body we gave you)")?;
        if !is_profile_id(pid) {
            return Err(
                "profile_id is not a Klaviyo profile id: use {{ person.KlaviyoID }}".to_owned(),
            );
        }
        let event_id = match v.get("event_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(e)) if e.trim().is_empty() => None,
            Some(serde_json::Value::String(e))
                if e.len() <= 128 && !e.contains(char::is_control) =>
            {
                Some(e.trim().to_owned())
            }
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err("event_id must be a string of at most 128 characters".to_owned()),
        };
        Ok(Self {
            profile_id: pid.to_owned(),
            event_id,
        })
    }
}

/// A Klaviyo profile id: 26 characters of Crockford base32 (a ULID).
pub fn is_profile_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// A trigger id: `ft` + 20 lower-case alphanumerics.
pub fn is_trigger_id(id: &str) -> bool {
    id.len() == 22
        && id.starts_with("ft")
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The keyed hash of a hook secret: hex HMAC-SHA256 with the server-side key.
pub fn secret_hash(key: &str, secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `authorization` (the header's value) carries a secret whose keyed hash is one of
/// `hashes`. Every candidate is compared in constant time, and all are compared.
pub fn authorized<'a>(
    key: &str,
    authorization: &str,
    hashes: impl Iterator<Item = &'a str>,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some(secret) = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
    else {
        return false;
    };
    let presented = secret_hash(key, secret.trim());
    let mut ok = subtle::Choice::from(0u8);
    for h in hashes {
        ok |= presented.as_bytes().ct_eq(h.as_bytes());
    }
    bool::from(ok)
}

/// The body to paste into Klaviyo's Webhook action: ids only (Klaviyo renders `{{ event }}` as
/// a Python dict, not JSON, so we read the rest from the API).
pub fn webhook_body_template(kind: TriggerKind) -> String {
    if kind.metric_names().is_empty() {
        "{\"profile_id\": \"{{ person.KlaviyoID }}\"}".to_owned()
    } else {
        "{\"profile_id\": \"{{ person.KlaviyoID }}\", \"event_id\": \"{{ event|lookup:'$event_id' }}\"}"
            .to_owned()
    }
}

/// What the merchant pastes into Klaviyo. The secret is shown here once and never again.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookSetup {
    pub url: String,
    pub header_name: String,
    /// `Bearer <secret>`: shown once; we keep only its keyed hash.
    pub header_value: String,
    /// The JSON body, as a Klaviyo template.
    pub body: String,
    /// What the email should contain to show the copy (or your fallback).
    pub email_snippet: String,
}

/// A day's (or a period's) counts of one trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlowCounts {
    /// Jobs the worker took (accepted deliveries, replays excluded).
    pub received: u64,
    pub written: u64,
    pub skipped: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
    /// Replayed deliveries answered 202 without a second generation.
    pub duplicates: u64,
    /// Jobs older than the deadline: not written.
    pub too_late: u64,
    /// Deliveries refused while the trigger was paused.
    pub paused: u64,
    /// Jobs whose triggering event was not readable in time (copy written without the cart).
    pub event_unread: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatencyView {
    /// Webhook accepted → profile written, milliseconds (histogram buckets of ±6 %).
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub samples: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerView {
    pub trigger_id: String,
    pub name: String,
    pub kind: TriggerKind,
    pub brief: String,
    pub offer: Offer,
    pub settings: Option<Settings>,
    pub property_set: String,
    pub status: TriggerStatus,
    pub deadline_seconds: u32,
    pub created_at: String,
    pub webhook_url: String,
    pub webhook_body: String,
    pub today: FlowCounts,
    pub last_30_days: FlowCounts,
    pub latency_today: LatencyView,
    pub latency_30_days: LatencyView,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerCreated {
    pub trigger: TriggerView,
    pub webhook: WebhookSetup,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerView>,
}

/// `POST /flows/triggers/{id}/rotate-secret`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretRotated {
    pub webhook: WebhookSetup,
    /// Until then (RFC 3339) the previous secret keeps working.
    pub previous_secret_valid_until: String,
}

/// A small per-container cache of values by key, each kept for `ttl` (triggers, connections,
/// keys read on every delivery: the hot path reads AWS only when they are older).
pub struct TtlCache<K, V> {
    ttl: std::time::Duration,
    map: std::sync::Mutex<std::collections::HashMap<K, (std::time::Instant, V)>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn keep(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(key, (std::time::Instant::now(), value));
    }

    pub fn forget(&self, key: &K) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Counter attribute names of a day item.
pub mod counter {
    pub const RECEIVED: &str = "received";
    pub const WRITTEN: &str = "written";
    pub const DUPLICATES: &str = "duplicates";
    pub const TOO_LATE: &str = "too_late";
    pub const PAUSED: &str = "paused";
    pub const EVENT_UNREAD: &str = "event_unread";
    pub const SKIPPED: &str = "skipped__";
    pub const FAILED: &str = "failed__";
    pub const LATENCY: &str = "lat__";
}

/// Latency histogram: bucket `b` holds values in [1.125^b, 1.125^(b+1)) ms.
pub fn latency_bucket(ms: u64) -> u32 {
    if ms <= 1 {
        0
    } else {
        ((ms as f64).ln() / 1.125f64.ln()).floor() as u32
    }
}

/// The bucket's middle, in ms.
pub fn bucket_value(b: u32) -> u64 {
    (1.125f64.powf(b as f64 + 0.5)).round() as u64
}

/// Adds a day item's attributes (`name → count`) into counts and a latency histogram.
pub fn add_day(
    counts: &mut FlowCounts,
    hist: &mut BTreeMap<u32, u64>,
    attrs: &BTreeMap<String, u64>,
) {
    for (k, &v) in attrs {
        match k.as_str() {
            counter::RECEIVED => counts.received += v,
            counter::WRITTEN => counts.written += v,
            counter::DUPLICATES => counts.duplicates += v,
            counter::TOO_LATE => counts.too_late += v,
            counter::PAUSED => counts.paused += v,
            counter::EVENT_UNREAD => counts.event_unread += v,
            other => {
                if let Some(r) = other.strip_prefix(counter::SKIPPED) {
                    *counts.skipped.entry(r.to_owned()).or_default() += v;
                } else if let Some(r) = other.strip_prefix(counter::FAILED) {
                    *counts.failed.entry(r.to_owned()).or_default() += v;
                } else if let Some(b) = other
                    .strip_prefix(counter::LATENCY)
                    .and_then(|b| b.parse::<u32>().ok())
                {
                    *hist.entry(b).or_default() += v;
                }
            }
        }
    }
}

pub fn percentiles(hist: &BTreeMap<u32, u64>) -> LatencyView {
    let total: u64 = hist.values().sum();
    let at = |q: f64| {
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&b, &n) in hist {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(b));
            }
        }
        None
    };
    LatencyView {
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        samples: total,
    }
}

/// `YYYY-MM-DD` (UTC) of a unix time.
pub fn day_of(unix: i64) -> String {
    crate::domain::rfc3339(unix)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ulid_profile_id_is_accepted_and_anything_else_refused() {
        assert!(
            HookBody::parse(br#"{"profile_id":"01HZX3J6Q8R2V4N7K9M1P3S5T7","event_id":"c1"}"#)
                .is_ok()
        );
        assert!(HookBody::parse(br#"{"profile_id":"{{ person.KlaviyoID }}"}"#).is_err());
        assert!(HookBody::parse(br#"{"profile_id":"abc"}"#).is_err());
        assert!(HookBody::parse(b"not json").is_err());
        assert!(HookBody::parse(&vec![b' '; MAX_HOOK_BODY_BYTES + 1]).is_err());
    }

    #[test]
    fn only_the_secret_whose_hash_is_stored_is_authorized() {
        let h = secret_hash("k", "s3cret");
        assert!(authorized("k", "Bearer s3cret", [h.as_str()].into_iter()));
        assert!(!authorized("k", "Bearer s3cre", [h.as_str()].into_iter()));
        assert!(!authorized(
            "other",
            "Bearer s3cret",
            [h.as_str()].into_iter()
        ));
        assert!(!authorized("k", "s3cret", [h.as_str()].into_iter()));
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut hist = BTreeMap::new();
        for ms in 1..=100u64 {
            *hist.entry(latency_bucket(ms * 10)).or_default() += 1;
        }
        let v = percentiles(&hist);
        let p50 = v.p50_ms.unwrap() as f64;
        assert!((p50 - 500.0).abs() / 500.0 < 0.1, "{p50}");
        assert_eq!(v.samples, 100);
    }
}
