//! The personalization engine: for a set of Klaviyo profiles, read each customer's order
//! history, choose real products from the cached catalog, ask Claude for copy, and keep only copy
//! the grounding validator passes (one repair attempt each). Shared by the worker (which then
//! writes the copy back) and the preview (which returns it). Customer data lives only in memory.

use futures::stream::{self, StreamExt};
use serde_json::Value;
use shared::aws::catalog_store::CatalogStore;
use shared::aws::dynamo::AppStore;
use shared::bedrock::{
    BedrockClient, BedrockError, GuardrailCheck, GuardrailRef, ToolRequest, Usage,
};
use shared::domain::{now_unix, CatalogProduct, KlaviyoApiKey, MerchantId};
use shared::klaviyo::{retry_read_until, KlaviyoClient, KlaviyoError, OrderMetrics};
use shared::personalize::copy::ValidCopy;
use shared::personalize::prompt::{max_output_tokens, profile_ref, TOOL_DESCRIPTION};
use shared::personalize::{
    holdout_group, parse_tool_output, repair_message, validate, CatalogIndex, Cost, FailReason,
    Finding, Group, HistoryBounds, Offer, Outcome, PersonalData, ProfilePrompt, PromptParts,
    PurchaseHistory, PurchasedItem, Settings, SkipReason, TitleIndex, ValidationContext, TOOL_NAME,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Customers per Converse request: the static prefix is paid once per request, so a few
/// customers share it; more would make one bad answer cost a larger repair.
pub const PROFILES_PER_REQUEST: usize = 8;
/// History reads in flight per batch (Klaviyo's events tier is the widest: 350/s burst).
const EVENT_READS_IN_FLIGHT: usize = 16;
/// Converse requests in flight per batch: every chunk of a 100-profile batch at once. The
/// client's quota pacer, not this number, decides how many really go: the concurrency Bedrock
/// allows is quota ÷ (tokens per call) × latency, far above what a fixed small number gives
/// when the model takes seconds per call.
const CONVERSE_IN_FLIGHT: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the merchant has no cached catalog yet; connect Shopify and sync first")]
    NoCatalog,
    #[error("reading the catalog failed: {0}")]
    Store(String),
    #[error("Klaviyo: {0}")]
    Klaviyo(#[from] KlaviyoError),
}

/// What a run (or a preview) asks for.
pub struct Job<'a> {
    pub merchant: &'a MerchantId,
    pub key: &'a KlaviyoApiKey,
    pub settings: &'a Settings,
    pub brief: &'a str,
    /// The only offer the copy may state.
    pub offer: &'a Offer,
    /// `(run id, holdout percent)`; a preview has no run and no holdout.
    pub run: Option<(&'a str, u8)>,
    /// Throttled history reads are retried in place until then (a batch's share of its time
    /// budget); `None`: no retries beyond the client's own.
    pub read_deadline: Option<tokio::time::Instant>,
    /// Items each profile left behind (flow triggers of the checkout and browse kinds): its
    /// candidates complement them and never include them.
    pub carts: Option<&'a HashMap<String, Vec<PurchasedItem>>>,
}

/// One profile's result. `copy` is set only for copy that passed the validator.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    pub profile_id: String,
    pub outcome: Outcome,
    pub copy: Option<ValidCopy>,
    pub candidates: Vec<CatalogProduct>,
    /// The validator's findings on the last attempt (empty when it passed first time).
    pub findings: Vec<Finding>,
    pub repaired: bool,
    pub first_name: Option<String>,
    pub history_summary: String,
}

#[derive(Debug, Default)]
pub struct Generation {
    pub results: Vec<ProfileResult>,
    pub tokens: Cost,
    /// Requests made, by `vendor_endpoint`.
    pub requests: BTreeMap<String, u64>,
}

struct CachedCatalog {
    merchant: MerchantId,
    generation: String,
    index: Arc<CatalogIndex>,
    titles: Arc<TitleIndex>,
}

/// A customer ready for the model.
#[derive(Clone)]
struct Prepared {
    /// Where the profile came in the request: a chunk names its customers C1, C2… in this
    /// order, whatever order their histories arrived in.
    order: usize,
    profile_id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    history: PurchaseHistory,
    candidates: Vec<CatalogProduct>,
}

pub struct Engine {
    pub klaviyo: KlaviyoClient,
    pub bedrock: BedrockClient,
    store: AppStore,
    catalog: CatalogStore,
    catalog_cache: Mutex<Option<Arc<CachedCatalog>>>,
    metrics_cache: Mutex<HashMap<MerchantId, OrderMetrics>>,
    bounds: HistoryBounds,
    /// Every copy passes this Bedrock guardrail before it may be written, when set.
    guardrail: Option<GuardrailRef>,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn usage_cost(usage: &Usage) -> Cost {
    Cost {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.cache_read_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        ..Cost::default()
    }
}

fn klaviyo_failure(err: &KlaviyoError) -> Outcome {
    match err {
        KlaviyoError::Throttled { .. } => Outcome::Failed(FailReason::Throttled),
        _ => Outcome::Failed(FailReason::Klaviyo),
    }
}

fn bedrock_failure(err: &BedrockError) -> Outcome {
    match err {
        BedrockError::Throttled => Outcome::Failed(FailReason::Throttled),
        BedrockError::Truncated { .. } | BedrockError::NoToolUse { .. } => {
            Outcome::Skipped(SkipReason::MalformedOutput)
        }
        _ => Outcome::Failed(FailReason::Bedrock),
    }
}

impl Engine {
    pub fn new(
        klaviyo: KlaviyoClient,
        bedrock: BedrockClient,
        store: AppStore,
        catalog: CatalogStore,
    ) -> Self {
        Self {
            klaviyo,
            bedrock,
            store,
            catalog,
            catalog_cache: Mutex::new(None),
            metrics_cache: Mutex::new(HashMap::new()),
            bounds: HistoryBounds::default(),
            guardrail: None,
        }
    }

    /// The container's engine as configuration says: each vendor's share of the budgets, pooled
    /// with the function's other containers through the app table when `VENDOR_BUDGET_POOL` is
    /// set.
    pub fn from_config(aws: &shared::aws::Aws, config: &shared::Config) -> Self {
        let pool: Option<Arc<dyn shared::budget::SlotStore>> =
            config.vendor_budget_pool.as_ref().map(|_| {
                Arc::new(shared::aws::budget_store::DynamoSlots::from_sdk(
                    aws,
                    &config.app_table,
                )) as Arc<dyn shared::budget::SlotStore>
            });
        let mut klaviyo = KlaviyoClient::with_limits(
            shared::http_client(),
            config.klaviyo_base_url.clone(),
            config.klaviyo_revision.clone(),
            config.klaviyo_limits(),
        );
        if let (Some(store), Some(name)) = (&pool, &config.vendor_budget_pool) {
            klaviyo = klaviyo.pooled(store.clone(), name);
        }
        let bedrock = shared::bedrock::from_config(aws.config(), config, pool);
        let mut engine = Self::new(
            klaviyo,
            bedrock,
            AppStore::from_sdk(aws, &config.app_table),
            CatalogStore::from_sdk(aws, &config.catalog_table),
        );
        engine.guardrail = config
            .bedrock_guardrail
            .clone()
            .map(|(id, version)| GuardrailRef { id, version });
        engine
    }

    /// The merchant's live catalog generation, indexed; cached per container until a sync
    /// swaps in a new generation.
    async fn catalog_for(&self, merchant: &MerchantId) -> Result<Arc<CachedCatalog>, EngineError> {
        let connection = self
            .store
            .shopify(merchant)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        let generation = connection
            .and_then(|c| c.catalog_generation)
            .ok_or(EngineError::NoCatalog)?;
        if let Some(cached) = self
            .catalog_cache
            .lock()
            .expect("catalog cache lock")
            .as_ref()
        {
            if &cached.merchant == merchant && cached.generation == generation {
                return Ok(cached.clone());
            }
        }
        let products = self
            .catalog
            .read_generation(merchant, &generation)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        if products.is_empty() {
            return Err(EngineError::NoCatalog);
        }
        let titles = Arc::new(TitleIndex::new(&products));
        let cached = Arc::new(CachedCatalog {
            merchant: merchant.clone(),
            generation,
            index: Arc::new(CatalogIndex::new(products)),
            titles,
        });
        *self.catalog_cache.lock().expect("catalog cache lock") = Some(cached.clone());
        Ok(cached)
    }

    /// Remember the merchant's order metric ids read by the caller (one Get Metrics serves both).
    pub fn know_order_metrics(&self, merchant: &MerchantId, metrics: OrderMetrics) {
        self.metrics_cache
            .lock()
            .expect("metrics cache lock")
            .insert(merchant.clone(), metrics);
    }

    /// The account's order metric ids (Get Metrics is on the M tier: once per container).
    async fn order_metrics(
        &self,
        job: &Job<'_>,
        requests: &mut BTreeMap<String, u64>,
    ) -> Result<OrderMetrics, KlaviyoError> {
        if let Some(m) = self
            .metrics_cache
            .lock()
            .expect("metrics cache lock")
            .get(job.merchant)
        {
            return Ok(m.clone());
        }
        *requests.entry("klaviyo_metrics".into()).or_default() += 1;
        let metrics = self.klaviyo.order_metrics(job.key).await?;
        self.metrics_cache
            .lock()
            .expect("metrics cache lock")
            .insert(job.merchant.clone(), metrics.clone());
        Ok(metrics)
    }

    /// Personalize `profiles` (Klaviyo profile resources). Every profile comes back with an
    /// outcome; `Written` means "valid copy ready to write".
    pub async fn generate(
        &self,
        job: &Job<'_>,
        profiles: Vec<Value>,
    ) -> Result<Generation, EngineError> {
        let mut gen = Generation::default();
        let catalog = self.catalog_for(job.merchant).await?;
        let metrics = self.order_metrics(job, &mut gen.requests).await?;
        let products_wanted = usize::from(job.settings.slots.products.clamp(1, 3));
        // One more candidate than slots, so the model can pick what fits the brief; each extra
        // candidate costs ~40 input tokens per customer.
        let k = (products_wanted + 1).min(4);

        let mut to_read = Vec::new();
        for (order, profile) in profiles.into_iter().enumerate() {
            let Some(id) = profile.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let group = job.run.map_or(Group::Personalized, |(run_id, pct)| {
                holdout_group(run_id, &id, pct)
            });
            if group == Group::Holdout {
                gen.results.push(simple_result(id, Outcome::Holdout));
            } else {
                to_read.push((order, id, profile));
            }
        }

        // Order history, one Get Events call per customer (profile_id filters take one id),
        // streamed into Converse chunks as they arrive: a chunk is asked for as soon as its
        // customers are read, so reading the rest overlaps the model's seconds per call (and the
        // pooled events budget flows to whichever batch is still reading).
        let since = self.bounds.since(now_unix());
        let placed = metrics.placed_order.clone();
        let settled: Mutex<Vec<ProfileResult>> = Mutex::new(Vec::new());
        let events_read = std::sync::atomic::AtomicU64::new(0);
        let answers: Vec<(Vec<ProfileResult>, Cost, u64)> = stream::iter(to_read)
            .map(|(order, id, profile)| {
                let placed = placed.clone();
                async move {
                    let events = match placed {
                        Some(metric) => {
                            let read = || {
                                self.klaviyo.profile_events(
                                    job.key,
                                    &id,
                                    &metric,
                                    Some(since),
                                    self.bounds.max_events,
                                )
                            };
                            match job.read_deadline {
                                Some(deadline) => retry_read_until(deadline, read).await,
                                None => read().await,
                            }
                        }
                        None => Ok(Vec::new()), // no store integration: everyone gets the fallback
                    };
                    (order, id, profile, events)
                }
            })
            .buffer_unordered(EVENT_READS_IN_FLIGHT)
            .filter_map(|(order, id, profile, events)| {
                if placed.is_some() {
                    events_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let cart = job.carts.and_then(|c| c.get(&id)).map(Vec::as_slice);
                let prepared = prepare(
                    &catalog,
                    self.bounds,
                    k,
                    (order, id),
                    &profile,
                    events,
                    cart,
                );
                futures::future::ready(match prepared {
                    Ok(p) => Some(p),
                    Err((id, outcome)) => {
                        settled
                            .lock()
                            .expect("results lock")
                            .push(simple_result(id, outcome));
                        None
                    }
                })
            })
            .chunks(PROFILES_PER_REQUEST)
            .map(|chunk| self.write_chunk(job, &catalog, chunk))
            .buffer_unordered(CONVERSE_IN_FLIGHT)
            .collect()
            .await;
        gen.results
            .extend(settled.into_inner().expect("results lock"));
        let read = events_read.into_inner();
        if read > 0 {
            *gen.requests.entry("klaviyo_events".into()).or_default() += read;
        }
        for (results, cost, calls) in answers {
            gen.results.extend(results);
            gen.tokens.add(&cost);
            *gen.requests.entry("bedrock_converse".into()).or_default() += calls;
        }
        Ok(gen)
    }

    /// One Converse request for up to `PROFILES_PER_REQUEST` customers, then one repair request
    /// for those whose copy failed the gate or was missing. An answer cut off at `max_tokens`
    /// is not asked again as it was: its customers are split in two requests.
    fn write_chunk<'s>(
        &'s self,
        job: &'s Job<'s>,
        catalog: &'s CachedCatalog,
        chunk: Vec<Prepared>,
    ) -> futures::future::BoxFuture<'s, (Vec<ProfileResult>, Cost, u64)> {
        Box::pin(self.write_chunk_inner(job, catalog, chunk))
    }

    async fn write_chunk_inner(
        &self,
        job: &Job<'_>,
        catalog: &CachedCatalog,
        mut chunk: Vec<Prepared>,
    ) -> (Vec<ProfileResult>, Cost, u64) {
        chunk.sort_by_key(|p| p.order);
        let mut cost = Cost::default();
        let mut calls = 0u64;
        let prompts: Vec<ProfilePrompt> = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| {
                ProfilePrompt::new(
                    profile_ref(i),
                    p.first_name.as_deref(),
                    &p.history,
                    &p.candidates,
                )
            })
            .collect();
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut results: Vec<Option<ProfileResult>> = vec![None; chunk.len()];
        let mut last_findings: HashMap<usize, Vec<Finding>> = HashMap::new();
        let mut repair_note = String::new();

        let currency = chunk
            .iter()
            .find_map(|p| p.candidates.first())
            .map(|c| c.price_min.currency.clone());
        for attempt in 0..2 {
            let parts = PromptParts::new(
                job.settings,
                job.brief,
                job.offer,
                currency.as_deref(),
                pending.iter().map(|&i| prompts[i].clone()).collect(),
            );
            let mut user_message = parts.user_message();
            if attempt > 0 {
                user_message.push_str("\n\nYour previous answer broke these rules; fix them:\n");
                user_message.push_str(&repair_note);
            }
            let request = ToolRequest {
                system_static: parts.system_blocks().join("\n\n"),
                cache_system: true,
                user_message,
                tool_name: TOOL_NAME.to_owned(),
                tool_description: TOOL_DESCRIPTION.to_owned(),
                tool_schema: parts.tool_schema.clone(),
                max_tokens: max_output_tokens(job.settings, pending.len()),
                temperature: 0.7,
                tenant: job.merchant.as_str().to_owned(),
            };
            calls += 1;
            let response = match self.bedrock.converse_tool(&request).await {
                Ok(r) => r,
                Err(err) => {
                    if let Some(usage) = err.usage() {
                        cost.add(&usage_cost(&usage));
                    }
                    tracing::warn!(
                        error = err.kind(),
                        profiles = pending.len(),
                        "Converse call failed"
                    );
                    if matches!(err, BedrockError::Truncated { .. }) && pending.len() > 1 {
                        let (left, right) = pending.split_at(pending.len() / 2);
                        let halves = [left, right]
                            .map(|half| half.iter().map(|&i| chunk[i].clone()).collect::<Vec<_>>());
                        let [a, b] = halves;
                        let (ra, rb) = futures::join!(
                            self.write_chunk(job, catalog, a),
                            self.write_chunk(job, catalog, b)
                        );
                        for (found, c, n) in [ra, rb] {
                            cost.add(&c);
                            calls += n;
                            for r in found {
                                let i = chunk
                                    .iter()
                                    .position(|p| p.profile_id == r.profile_id)
                                    .expect("a split answers for its own customers");
                                results[i] = Some(r);
                            }
                        }
                        pending.clear();
                        break;
                    }
                    let outcome = bedrock_failure(&err);
                    let malformed = outcome == Outcome::Skipped(SkipReason::MalformedOutput);
                    if malformed && attempt == 0 {
                        repair_note = "- your answer was cut short or had no emit_copy call; answer with one emit_copy call, keeping every slot within its limit\n".into();
                        continue;
                    }
                    for &i in &pending {
                        results[i] = Some(finish(
                            &chunk[i],
                            outcome,
                            None,
                            last_findings.remove(&i).unwrap_or_default(),
                            attempt > 0,
                        ));
                    }
                    pending.clear();
                    break;
                }
            };
            cost.add(&usage_cost(&response.usage));
            let expected = parts.expected_refs();
            let copies = match parse_tool_output(&response.input, &expected) {
                Ok(copies) => copies,
                Err(err) => {
                    tracing::warn!(error = %err, "tool input did not parse");
                    repair_note = format!("- {err}\n");
                    if attempt == 0 {
                        continue;
                    }
                    for &i in &pending {
                        results[i] = Some(finish(
                            &chunk[i],
                            Outcome::Skipped(SkipReason::MalformedOutput),
                            None,
                            vec![],
                            true,
                        ));
                    }
                    pending.clear();
                    break;
                }
            };
            let by_ref: HashMap<String, _> = copies.into_iter().collect();
            let mut still_pending = Vec::new();
            repair_note.clear();
            for &i in &pending {
                let p = &chunk[i];
                let reference = &prompts[i].profile_ref;
                let person = PersonalData {
                    first_name: p.first_name.as_deref(),
                    last_name: p.last_name.as_deref(),
                    email: p.email.as_deref(),
                    phone_number: p.phone.as_deref(),
                };
                let others = pending
                    .iter()
                    .filter(|&&o| o != i)
                    .filter_map(|&o| chunk[o].first_name.clone());
                let ctx = ValidationContext::new(
                    &p.candidates,
                    job.brief,
                    job.offer,
                    job.settings,
                    person,
                )
                .with_catalog_titles(&catalog.titles)
                .with_purchases(&p.history)
                .with_others(others);
                match by_ref.get(reference).map(|copy| validate(copy, &ctx)) {
                    Some(Ok(valid)) => {
                        results[i] = Some(finish(
                            p,
                            Outcome::Written,
                            Some(valid),
                            vec![],
                            attempt > 0,
                        ));
                    }
                    Some(Err(findings)) => {
                        repair_note.push_str(&format!(
                            "- customer {reference}: {}\n",
                            repair_message(&findings)
                        ));
                        last_findings.insert(i, findings);
                        still_pending.push(i);
                    }
                    None => {
                        repair_note.push_str(&format!(
                            "- customer {reference}: you gave no entry; write one\n"
                        ));
                        still_pending.push(i);
                    }
                }
            }
            pending = still_pending;
            if pending.is_empty() {
                break;
            }
        }
        // Whatever failed its one repair is skipped: nothing unvalidated is ever written.
        for i in pending {
            let findings = last_findings.remove(&i).unwrap_or_default();
            let reason = if findings.is_empty() {
                SkipReason::MalformedOutput
            } else {
                SkipReason::ValidationFailed
            };
            results[i] = Some(finish(
                &chunk[i],
                Outcome::Skipped(reason),
                None,
                findings,
                true,
            ));
        }
        let mut results: Vec<ProfileResult> = results.into_iter().flatten().collect();
        if let Some(guardrail) = &self.guardrail {
            let checked = futures::future::join_all(results.iter_mut().map(|r| {
                let prepared = chunk.iter().find(|p| p.profile_id == r.profile_id);
                self.moderate(job, guardrail, prepared, r)
            }))
            .await;
            for c in checked {
                cost.add(&c);
            }
        }
        (results, cost, calls)
    }
}

impl Engine {
    /// Puts copy that passed our gate through the merchant-independent Bedrock guardrail:
    /// content filters on the copy, contextual grounding against the brief, the offer and the
    /// products' facts. An intervention skips the customer; a guardrail that cannot answer
    /// fails them (unmoderated copy is never written). Returns the units billed.
    async fn moderate(
        &self,
        job: &Job<'_>,
        guardrail: &GuardrailRef,
        prepared: Option<&Prepared>,
        result: &mut ProfileResult,
    ) -> Cost {
        let (Some(copy), Some(p)) = (&result.copy, prepared) else {
            return Cost::default();
        };
        let text: Vec<&str> = [copy.subject(), copy.preheader(), copy.body()]
            .into_iter()
            .flatten()
            .collect();
        let mut source = format!("{}\n{}\n", job.brief, job.offer.prompt_line(None));
        for c in &p.candidates {
            source.push_str(&format!("{}: {}\n", c.title, c.description));
        }
        for item in &p.history.items {
            if let Some(t) = &item.title {
                source.push_str(&format!("{t}\n"));
            }
        }
        let check = GuardrailCheck {
            copy: &text.join("\n"),
            grounding_source: &source,
            query: job.brief,
        };
        match self.bedrock.apply_guardrail(guardrail, &check).await {
            Ok(verdict) => {
                if verdict.intervened {
                    result.outcome = Outcome::Skipped(SkipReason::GuardrailIntervened);
                    result.copy = None;
                }
                Cost {
                    guardrail_content_units: verdict.content_units,
                    guardrail_grounding_units: verdict.grounding_units,
                    ..Cost::default()
                }
            }
            Err(err) => {
                tracing::warn!(error = err.kind(), "guardrail check failed");
                result.outcome = bedrock_failure(&err);
                if result.outcome == Outcome::Skipped(SkipReason::MalformedOutput) {
                    result.outcome = Outcome::Failed(FailReason::Bedrock);
                }
                result.copy = None;
                Cost::default()
            }
        }
    }
}

/// A customer whose history was read, ready for the model; or their outcome when they cannot
/// go (the read failed, nothing to recommend).
fn prepare(
    catalog: &CachedCatalog,
    bounds: HistoryBounds,
    k: usize,
    (order, id): (usize, String),
    profile: &Value,
    events: Result<Vec<Value>, KlaviyoError>,
    cart: Option<&[PurchasedItem]>,
) -> Result<Prepared, (String, Outcome)> {
    let events = match events {
        Ok(events) => events,
        Err(err) => return Err((id, klaviyo_failure(&err))),
    };
    let history = PurchaseHistory::from_placed_orders(&events, bounds, now_unix());
    let candidates = match cart {
        // The cart counts as bought for the choice: its items are excluded, and what they are
        // (type, tags, vendor) draws the complements.
        Some(items) if !items.is_empty() => {
            let mut with_cart = history.clone();
            with_cart.items.extend(items.iter().cloned());
            catalog.index.choose(&with_cart, k, &id)
        }
        _ => catalog.index.choose(&history, k, &id),
    };
    if candidates.is_empty() {
        return Err((id, Outcome::Skipped(SkipReason::NoCandidates)));
    }
    Ok(Prepared {
        order,
        first_name: text(profile, "/attributes/first_name"),
        last_name: text(profile, "/attributes/last_name"),
        email: text(profile, "/attributes/email"),
        phone: text(profile, "/attributes/phone_number"),
        profile_id: id,
        history,
        candidates: candidates.products,
    })
}

fn simple_result(profile_id: String, outcome: Outcome) -> ProfileResult {
    ProfileResult {
        profile_id,
        outcome,
        copy: None,
        candidates: Vec::new(),
        findings: Vec::new(),
        repaired: false,
        first_name: None,
        history_summary: String::new(),
    }
}

fn finish(
    p: &Prepared,
    outcome: Outcome,
    copy: Option<ValidCopy>,
    findings: Vec<Finding>,
    repaired: bool,
) -> ProfileResult {
    ProfileResult {
        profile_id: p.profile_id.clone(),
        outcome,
        copy,
        candidates: p.candidates.clone(),
        findings,
        repaired,
        first_name: p.first_name.clone(),
        history_summary: shared::personalize::prompt::history_summary(&p.history),
    }
}
