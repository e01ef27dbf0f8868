//! flow-worker: one job per flow webhook delivery (ids only, from the flow queue). Reads the
//! profile and, for checkout and browse triggers, the triggering event's line items (with a
//! short backoff while Klaviyo has not made the event readable yet), generates through the same
//! engine and grounding gate as runs (candidates complement the cart, never the cart's own
//! items), and writes the trigger's property set with Update Profile. Every job ends counted in
//! the trigger's day counters: written, skipped or failed by reason, or too late; written jobs
//! add their webhook-to-written latency to the day's histogram.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use personalize_worker::engine::{Engine, EngineError, Job};
use serde_json::Value;
use shared::aws::flows::{outcome_counter, FlowStore};
use shared::aws::runs::RunStore;
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, KlaviyoApiKey, MerchantId, Vendor};
use shared::edge::{function::parse_event, sqs, Function, FunctionError};
use shared::flows::{counter, latency_bucket, FlowJob, FlowTrigger, TriggerStatus, TtlCache};
use shared::klaviyo::{retry_read_until, KlaviyoError};
use shared::personalize::orders::PurchasedItem;
use shared::personalize::{Outcome, Settings};
use shared::Config;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Jobs processed at once per container (each is a few vendor calls and one model call).
const JOBS_IN_FLIGHT: usize = 10;
/// The longest the worker waits for the triggering event to become readable.
const MAX_EVENT_WAIT: Duration = Duration::from_secs(90);
/// Events read per look (the profile's newest of the trigger's metric).
const EVENTS_PER_LOOK: usize = 20;

/// A merchant and the first metric name of a trigger kind.
type MetricKey = (MerchantId, &'static str);

pub struct Handler {
    config: Config,
    engine: Engine,
    flows: FlowStore,
    runs: RunStore,
    secrets: SecretStore,
    /// Metric id of each merchant's trigger metric (Get Metrics is on the M tier).
    metrics: Mutex<HashMap<MetricKey, (std::time::Instant, Vec<String>)>>,
    /// Read per job otherwise; kept a few seconds (a pause or a new key reaches jobs within it).
    triggers: TtlCache<String, Option<FlowTrigger>>,
    keys: TtlCache<MerchantId, Option<KlaviyoApiKey>>,
    settings: TtlCache<MerchantId, Settings>,
}

const HOT_CACHE_TTL: Duration = Duration::from_secs(5);
/// Time kept for the Update Profile call itself when its budget wait is bounded by the deadline.
const WRITE_MARGIN: Duration = Duration::from_millis(1500);
/// Before the first look for the triggering event.
const FIRST_LOOK_AFTER: Duration = Duration::from_secs(2);
/// How often a look that missed the event may read the account's metrics again.
const METRICS_REFRESH: Duration = Duration::from_secs(60);

/// How one job ended: the counter to add, and the latency when written.
struct Ending {
    counter: String,
    latency_ms: Option<u64>,
    event_unread: bool,
}

impl Ending {
    fn of(counter: impl Into<String>) -> Self {
        Self {
            counter: counter.into(),
            latency_ms: None,
            event_unread: false,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn failed(reason: &str) -> Ending {
    Ending::of(format!("{}{reason}", counter::FAILED))
}
fn skipped(reason: &str) -> Ending {
    Ending::of(format!("{}{reason}", counter::SKIPPED))
}

fn klaviyo_failure(e: &KlaviyoError) -> Ending {
    match e {
        KlaviyoError::Throttled { .. } => failed("throttled"),
        _ => failed("klaviyo"),
    }
}

/// The items of a Checkout Started / Viewed Product event: `$extra.line_items` (Shopify's
/// shape: product_id, title, variant, quantity, line_price), else the event's own product.
pub fn cart_items(properties: &Value) -> Vec<PurchasedItem> {
    let text = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let item = |v: &Value| PurchasedItem {
        product_id: text(v, "product_id").or_else(|| text(v, "ProductID")),
        handle: text(v, "handle").or_else(|| text(v, "product_handle")),
        title: text(v, "title")
            .or_else(|| text(v, "product_title"))
            .or_else(|| text(v, "ProductName")),
        quantity: v.get("quantity").and_then(Value::as_u64).unwrap_or(1) as u32,
        price: v
            .get("line_price")
            .or_else(|| v.get("price"))
            .and_then(|p| {
                p.as_f64()
                    .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
            }),
        ..Default::default()
    };
    let lines = properties
        .pointer("/$extra/line_items")
        .or_else(|| properties.get("line_items"))
        .and_then(Value::as_array);
    match lines {
        Some(lines) => lines
            .iter()
            .map(item)
            .filter(|i| i.product_id.is_some() || i.handle.is_some())
            .collect(),
        None => {
            let single = item(properties);
            if single.product_id.is_some() || single.handle.is_some() {
                vec![single]
            } else {
                Vec::new()
            }
        }
    }
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        Ok(Self {
            engine: Engine::from_config(&aws, &config),
            flows: FlowStore::from_sdk(&aws, &config.app_table),
            runs: RunStore::from_sdk(&aws, &config.app_table),
            secrets: SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone()),
            metrics: Mutex::new(HashMap::new()),
            triggers: TtlCache::new(HOT_CACHE_TTL),
            keys: TtlCache::new(HOT_CACHE_TTL),
            settings: TtlCache::new(HOT_CACHE_TTL),
            config,
        })
    }

    /// The ids of the account's metrics the trigger's event may come as (Shopify's "Checkout
    /// Started", a custom "Started Checkout"...). Cached per container; `fresh` reads again (a
    /// metric appears when its first event is tracked).
    async fn trigger_metrics(
        &self,
        merchant: &MerchantId,
        key: &KlaviyoApiKey,
        trigger: &FlowTrigger,
        fresh: bool,
    ) -> Result<Vec<String>, KlaviyoError> {
        let names = trigger.kind.metric_names();
        let Some(&first) = names.first() else {
            return Ok(Vec::new());
        };
        let cache_key = (merchant.clone(), first);
        if let Some((at, m)) = self.metrics.lock().expect("metrics lock").get(&cache_key) {
            // Get Metrics is on the M tier: read again only when a name was missing, at most
            // once a minute.
            if !fresh || m.len() == names.len() || at.elapsed() < METRICS_REFRESH {
                return Ok(m.clone());
            }
        }
        let (ids, orders) = self.engine.klaviyo.metrics_and_orders(key, names).await?;
        self.engine.know_order_metrics(merchant, orders);
        self.metrics
            .lock()
            .expect("metrics lock")
            .insert(cache_key, (std::time::Instant::now(), ids.clone()));
        Ok(ids)
    }

    /// The triggering event's items, looking again with a growing pause while Klaviyo has not
    /// made the event readable; `None` when it did not become readable in time.
    async fn cart(
        &self,
        merchant: &MerchantId,
        key: &KlaviyoApiKey,
        trigger: &FlowTrigger,
        job: &FlowJob,
        until: tokio::time::Instant,
    ) -> Result<Option<Vec<PurchasedItem>>, KlaviyoError> {
        let Some(event_id) = &job.event_id else {
            return Ok(None);
        };
        let mut metrics = self.trigger_metrics(merchant, key, trigger, false).await?;
        let since = job.received_at_ms / 1000 - 2 * 86_400;
        // Klaviyo makes a tracked event readable some time after it arrives: the first look
        // waits a little, then the pauses double (each look is one or two XL-tier reads).
        tokio::time::sleep(
            FIRST_LOOK_AFTER.min(until.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
        let mut pause = Duration::from_secs(1);
        let mut refreshed = false;
        loop {
            for metric in &metrics {
                let events = retry_read_until(until, || {
                    self.engine.klaviyo.profile_events(
                        key,
                        &job.profile_id,
                        metric,
                        Some(since),
                        EVENTS_PER_LOOK,
                    )
                })
                .await?;
                let found = events.iter().find_map(|e| {
                    let props = e.pointer("/attributes/event_properties")?;
                    let id = match props.get("$event_id")? {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    (id == *event_id).then(|| cart_items(props))
                });
                if found.is_some() {
                    return Ok(found);
                }
            }
            if tokio::time::Instant::now() + pause > until {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
            if !refreshed {
                // Not there on the first look: the metric may be newer than our cache.
                metrics = self.trigger_metrics(merchant, key, trigger, true).await?;
                refreshed = true;
            }
        }
    }

    async fn settings(
        &self,
        merchant: &MerchantId,
        trigger: &FlowTrigger,
    ) -> Result<Settings, FunctionError> {
        if let Some(s) = &trigger.settings {
            return Ok(s.clone());
        }
        if let Some(s) = self.settings.get(merchant) {
            return Ok(s);
        }
        let s = self.runs.settings(merchant).await?.unwrap_or_default();
        self.settings.keep(merchant.clone(), s.clone());
        Ok(s)
    }

    /// One job, start to counted end.
    async fn klaviyo_key(
        &self,
        merchant: &MerchantId,
    ) -> Result<Option<KlaviyoApiKey>, FunctionError> {
        if let Some(k) = self.keys.get(merchant) {
            return Ok(k);
        }
        let k = self
            .secrets
            .klaviyo_key(&self.config.secret_name(merchant, Vendor::Klaviyo))
            .await?;
        self.keys.keep(merchant.clone(), k.clone());
        Ok(k)
    }

    /// The profiles of a batch's jobs, one Get Profiles call per merchant (`any(id,[…])`):
    /// `Some(None)` for an id Klaviyo did not return; absent when the read did not happen.
    /// The L tier (shared with Update Profile) is what binds flows, so ten jobs share a read.
    async fn prefetch(&self, jobs: &[FlowJob]) -> HashMap<String, Option<Value>> {
        let mut by_merchant: HashMap<&str, Vec<String>> = HashMap::new();
        for j in jobs {
            let ids = by_merchant.entry(j.merchant_id.as_str()).or_default();
            if !ids.contains(&j.profile_id) {
                ids.push(j.profile_id.clone());
            }
        }
        let mut found = HashMap::new();
        for (merchant, ids) in by_merchant {
            let Ok(merchant) = MerchantId::parse(merchant) else {
                continue;
            };
            let Ok(Some(key)) = self.klaviyo_key(&merchant).await else {
                continue;
            };
            match self.engine.klaviyo.get_profiles(&key, &ids).await {
                Ok(profiles) => {
                    for id in &ids {
                        found.insert(id.clone(), None);
                    }
                    for p in profiles {
                        if let Some(id) = p.get("id").and_then(Value::as_str).map(str::to_owned) {
                            found.insert(id, Some(p));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "batch profile read failed; jobs read their own");
                }
            }
        }
        found
    }

    pub async fn process(&self, job: &FlowJob) -> Result<(), FunctionError> {
        self.process_with(job, None).await
    }

    async fn process_with(
        &self,
        job: &FlowJob,
        prefetched: Option<&Option<Value>>,
    ) -> Result<(), FunctionError> {
        let trigger = match self.triggers.get(&job.trigger_id) {
            Some(t) => t,
            None => {
                let t = self.flows.get(&job.trigger_id).await?;
                self.triggers.keep(job.trigger_id.clone(), t.clone());
                t
            }
        };
        let Some(trigger) = trigger.filter(|t| t.merchant_id == job.merchant_id) else {
            tracing::info!(trigger_id = %job.trigger_id, "flow trigger deleted; job dropped");
            return Ok(());
        };
        // A replayed delivery (the same trigger, profile and event within the window) is
        // counted and makes no second generation.
        let event_key = job.event_id.as_deref().unwrap_or("-");
        if !self
            .flows
            .mark_seen(
                &trigger.trigger_id,
                &job.profile_id,
                event_key,
                job.received_at_ms,
                now_unix(),
            )
            .await?
        {
            self.flows
                .count(
                    &trigger.trigger_id,
                    now_unix(),
                    &[(counter::DUPLICATES.to_owned(), 1)],
                )
                .await?;
            return Ok(());
        }
        let ending = self.generate_and_write(&trigger, job, prefetched).await?;
        let mut adds = vec![
            (counter::RECEIVED.to_owned(), 1),
            (ending.counter.clone(), 1),
        ];
        if let Some(ms) = ending.latency_ms {
            adds.push((format!("{}{}", counter::LATENCY, latency_bucket(ms)), 1));
        }
        if ending.event_unread {
            adds.push((counter::EVENT_UNREAD.to_owned(), 1));
        }
        if !self
            .flows
            .count_once(
                &trigger.trigger_id,
                (&job.profile_id, event_key),
                now_unix(),
                &adds,
            )
            .await?
        {
            tracing::info!(trigger_id = %trigger.trigger_id, "flow job redelivered after it was counted");
            return Ok(());
        }
        tracing::info!(trigger_id = %trigger.trigger_id, outcome = %ending.counter, latency_ms = ?ending.latency_ms, "flow job done");
        Ok(())
    }

    async fn generate_and_write(
        &self,
        trigger: &FlowTrigger,
        job: &FlowJob,
        prefetched: Option<&Option<Value>>,
    ) -> Result<Ending, FunctionError> {
        let deadline_ms = job.received_at_ms + i64::from(trigger.deadline_seconds) * 1000;
        let remaining = |now: i64| Duration::from_millis((deadline_ms - now).max(0) as u64);
        if now_ms() >= deadline_ms {
            return Ok(Ending::of(counter::TOO_LATE));
        }
        match trigger.status {
            TriggerStatus::Active => {}
            TriggerStatus::Paused => return Ok(skipped("trigger_paused")),
            TriggerStatus::Revoked => return Ok(skipped("trigger_revoked")),
        }
        let merchant = MerchantId::parse(&trigger.merchant_id)?;
        let Some(key) = self.klaviyo_key(&merchant).await? else {
            return Ok(failed("not_connected"));
        };
        let settings = self.settings(&merchant, trigger).await?;
        let start = tokio::time::Instant::now();
        // Reads may be retried while throttled until half the time left; the event look gets
        // at most half of it too, and never more than MAX_EVENT_WAIT.
        let read_until = start + remaining(now_ms()) / 2;
        let profiles = match prefetched {
            // Read with the rest of its SQS batch (one L-tier call for up to ten jobs).
            Some(found) => found.iter().cloned().collect(),
            None => match retry_read_until(read_until, || {
                self.engine
                    .klaviyo
                    .get_profiles(&key, std::slice::from_ref(&job.profile_id))
            })
            .await
            {
                Ok(p) => p,
                Err(e) => return Ok(klaviyo_failure(&e)),
            },
        };
        if profiles.is_empty() {
            return Ok(skipped("profile_not_found"));
        }
        let mut event_unread = false;
        let mut carts = HashMap::new();
        if trigger.kind.uses_cart() {
            let until = start + (remaining(now_ms()) / 2).min(MAX_EVENT_WAIT);
            match self.cart(&merchant, &key, trigger, job, until).await {
                Ok(Some(items)) => {
                    carts.insert(job.profile_id.clone(), items);
                }
                Ok(None) => event_unread = job.event_id.is_some(),
                Err(e) => return Ok(klaviyo_failure(&e)),
            }
        }
        let engine_job = Job {
            merchant: &merchant,
            key: &key,
            settings: &settings,
            brief: &trigger.brief,
            offer: &trigger.offer,
            run: None,
            read_deadline: Some(read_until),
            carts: Some(&carts),
        };
        let generation = match self.engine.generate(&engine_job, profiles).await {
            Ok(g) => g,
            Err(EngineError::NoCatalog) => return Ok(skipped("no_catalog")),
            Err(EngineError::Klaviyo(e)) => return Ok(klaviyo_failure(&e)),
            Err(EngineError::Store(e)) => return Err(e.into()),
        };
        let Some(result) = generation
            .results
            .into_iter()
            .find(|r| r.profile_id == job.profile_id)
        else {
            return Ok(skipped("profile_not_found"));
        };
        if now_ms() >= deadline_ms {
            return Ok(Ending::of(counter::TOO_LATE));
        }
        let set = &trigger.property_set;
        // The event's id marks whose copy this is (`sp_<set>_run_id`), so a template can check
        // it against the email's own event.
        let mark = job.event_id.as_deref().unwrap_or(&trigger.trigger_id);
        let generated_at = now_unix();
        let properties = match (&result.outcome, &result.copy) {
            (Outcome::Written, Some(copy)) => set.copy_properties(copy, mark, generated_at),
            (other, _) => set.cleared_properties(mark, generated_at, other),
        };
        // The write waits for the pooled L-tier budget: past the deadline it is not made (the
        // email may be out), so the wait is bounded by what is left, less a margin for the call.
        let left = remaining(now_ms()).saturating_sub(WRITE_MARGIN);
        match tokio::time::timeout(
            left,
            self.engine
                .klaviyo
                .patch_profile_properties(&key, &job.profile_id, properties),
        )
        .await
        {
            Err(_) => return Ok(Ending::of(counter::TOO_LATE)),
            Ok(Err(e)) => return Ok(klaviyo_failure(&e)),
            Ok(Ok(())) => {}
        }
        let mut ending = Ending::of(outcome_counter(&result.outcome));
        if result.outcome == Outcome::Written {
            ending.latency_ms = Some((now_ms() - job.received_at_ms).max(0) as u64);
        }
        ending.event_unread = event_unread;
        Ok(ending)
    }

    async fn handle_record(
        &self,
        record: SqsMessage,
        prefetched: &HashMap<String, Option<Value>>,
    ) -> Result<(), FunctionError> {
        let job = parse_job(&record)?;
        self.process_with(&job, prefetched.get(&job.profile_id))
            .await
    }
}

fn parse_job(record: &SqsMessage) -> Result<FlowJob, FunctionError> {
    let body = record.body.as_deref().unwrap_or_default();
    Ok(serde_json::from_str(body).map_err(|e| format!("not a flow job message: {e}"))?)
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let event: SqsEvent = parse_event(event, "SQS")?;
        let jobs: Vec<FlowJob> = event
            .records
            .iter()
            .filter_map(|r| parse_job(r).ok())
            .collect();
        let prefetched = self.prefetch(&jobs).await;
        let response = sqs::for_each_record(event, JOBS_IN_FLIGHT, |r| {
            self.handle_record(r, &prefetched)
        })
        .await;
        Ok(serde_json::to_value(response)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shopify_line_items_become_cart_items() {
        let props = json!({"$event_id": "c1", "$extra": {"line_items": [
            {"product_id": 7001, "title": "Cast Iron Skillet", "quantity": 2, "line_price": 90.0},
            {"title": "no id: cannot be joined"}
        ]}});
        let items = cart_items(&props);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].product_id.as_deref(), Some("7001"));
        assert_eq!(items[0].quantity, 2);
    }
}
