//! personalize-fanout: the merchant's runs API (audiences, settings, runs with review, approve,
//! cancel) and the fan-out that pages a Klaviyo list or segment onto the work queue as batches
//! of profile ids — checkpointing its cursor and handing on to a continuation message before
//! its time budget ends, so an audience of millions runs like one of ten.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use personalize_worker::engine::{Engine, Job};
use serde_json::Value;
use shared::api::{
    catalog_cursor, catalog_position, AudiencesPage, CatalogItem, CatalogPage, RunCreated, RunList,
    RunSamples, RunView, CATALOG_PAGE_DEFAULT, CATALOG_PAGE_MAX,
};
use shared::aws::catalog_store::CatalogStore;
use shared::aws::dynamo::AppStore;
use shared::aws::queue::{Queue, WorkQueues};
use shared::aws::runs::RunStore;
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, KlaviyoApiKey, MerchantId, Vendor};
use shared::edge::{function::parse_event, http, sqs, Function, FunctionError};
use shared::error::ApiError;
use shared::klaviyo::Audience;
use shared::personalize::run::{FanoutRequest, Run, RunRequest, Verdict, WorkBatch};
use shared::personalize::{RunState, Settings};
use shared::Config;
use std::time::{Duration, Instant};

/// Sample customers generated for review before a run is approved.
const REVIEW_SAMPLES: usize = 3;
/// How soon a fan-out whose window is full looks again.
const WINDOW_RECHECK_SECS: u32 = 3;
const AUDIENCES_PER_PAGE: usize = 50;
/// The longest a merchant's request waits on Klaviyo or the model (API Gateway gives up at 30 s).
const INTERACTIVE_VENDOR_WAIT: Duration = Duration::from_secs(25);
/// How long a container reuses a merchant's lists and segments: Klaviyo answers 10 a page, so
/// paging through them (or a console refreshing) would otherwise re-read every page each call.
const AUDIENCE_CACHE_TTL: Duration = Duration::from_secs(60);

/// A merchant's audiences as read with one Klaviyo key (a reconnect with another key misses).
struct CachedAudiences {
    read_at: Instant,
    key_fingerprint: String,
    audiences: std::sync::Arc<Vec<Audience>>,
}

pub struct Handler {
    config: Config,
    store: AppStore,
    catalog: CatalogStore,
    runs: RunStore,
    secrets: SecretStore,
    fanout_queue: Queue,
    work_queues: WorkQueues,
    engine: Engine,
    audiences: std::sync::Mutex<std::collections::HashMap<MerchantId, CachedAudiences>>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        Ok(Self {
            engine: Engine::from_config(&aws, &config),
            store: AppStore::from_sdk(&aws, &config.app_table),
            catalog: CatalogStore::from_sdk(&aws, &config.catalog_table),
            runs: RunStore::from_sdk(&aws, &config.app_table),
            secrets: SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone()),
            fanout_queue: Queue::from_sdk(&aws, &config.fanout_queue_url),
            work_queues: WorkQueues::from_config(&aws, &config),
            audiences: Default::default(),
            config,
        })
    }

    async fn key(&self, merchant: &MerchantId) -> Result<KlaviyoApiKey, ApiError> {
        self.secrets
            .klaviyo_key(&self.config.secret_name(merchant, Vendor::Klaviyo))
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotConnected("Klaviyo"))
    }

    /// A vendor read for a waiting merchant, bounded inside API Gateway's 30 s: past it,
    /// waiting on a busy vendor budget answers 503 with Retry-After instead of the gateway
    /// cutting the request off.
    async fn in_time<T>(
        &self,
        vendor: &'static str,
        read: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        tokio::time::timeout(INTERACTIVE_VENDOR_WAIT, read)
            .await
            .unwrap_or(Err(ApiError::VendorThrottled {
                vendor,
                retry_after_secs: 10,
            }))
    }

    fn view(&self, run: &Run) -> RunView {
        RunView::from_run(run, &self.config.bedrock_model_id)
    }

    async fn run(&self, merchant: &MerchantId, run_id: &str) -> Result<Run, ApiError> {
        let valid = !run_id.is_empty()
            && run_id.len() <= 32
            && run_id.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(ApiError::RunNotFound(run_id.chars().take(32).collect()));
        }
        self.runs
            .get(merchant, run_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::RunNotFound(run_id.to_owned()))
    }

    pub async fn handle_http(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        // A deleted account's still-valid token is refused before anything is read or written.
        let merchant = http::live_merchant(req, &self.store).await?;
        let run_id = || req.path_parameters.get("id").cloned().unwrap_or_default();
        match http::route_key(req) {
            "GET /audiences" => {
                let offset = req
                    .query_string_parameters
                    .first("cursor")
                    .and_then(|c| c.parse::<usize>().ok())
                    .unwrap_or(0);
                Ok(http::json(200, &self.audiences(&merchant, offset).await?))
            }
            "GET /catalog" => {
                let query = &req.query_string_parameters;
                let limit = match query.first("limit") {
                    None => CATALOG_PAGE_DEFAULT,
                    Some(l) => l
                        .parse::<usize>()
                        .ok()
                        .filter(|l| (1..=CATALOG_PAGE_MAX).contains(l))
                        .ok_or_else(|| {
                            ApiError::InvalidRequest(format!(
                                "limit must be a whole number from 1 to {CATALOG_PAGE_MAX}"
                            ))
                        })?,
                };
                let eligible = match query.first("eligible") {
                    None => None,
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    Some(_) => {
                        return Err(ApiError::InvalidRequest(
                            "eligible must be true or false".into(),
                        ))
                    }
                };
                let after = match query.first("cursor") {
                    None => None,
                    Some(c) => Some(catalog_position(c).ok_or_else(|| {
                        ApiError::InvalidRequest("cursor is not one this API handed out".into())
                    })?),
                };
                Ok(http::json(
                    200,
                    &self
                        .catalog_page(&merchant, after.as_deref(), limit, eligible)
                        .await?,
                ))
            }
            "POST /preview" => {
                let body: shared::api::PreviewRequest = http::json_body(req)?;
                let previewer = personalize_worker::Previewer {
                    config: &self.config,
                    engine: &self.engine,
                    runs: &self.runs,
                    secrets: &self.secrets,
                };
                // A preview writes nothing: stopping it at the deadline loses nothing.
                let preview = previewer.preview(&merchant, body);
                Ok(http::json(
                    200,
                    &self.in_time("Klaviyo or the model", preview).await?,
                ))
            }
            "GET /settings" => {
                let settings = self
                    .runs
                    .settings(&merchant)
                    .await
                    .map_err(internal)?
                    .unwrap_or_default();
                Ok(http::json(200, &settings))
            }
            "PUT /settings" => {
                let settings: Settings = http::json_body(req)?;
                settings.validate().map_err(ApiError::InvalidSettings)?;
                self.runs
                    .put_settings(&merchant, &settings)
                    .await
                    .map_err(internal)?;
                Ok(http::json(200, &settings))
            }
            "POST /runs" => {
                let body: RunRequest = http::json_body(req)?;
                body.validate()
                    .map_err(|p| ApiError::InvalidRequest(p.join("; ")))?;
                Ok(http::json(201, &self.create_run(&merchant, body).await?))
            }
            "GET /runs" => {
                let runs = self.runs.list(&merchant, 50).await.map_err(internal)?;
                Ok(http::json(
                    200,
                    &RunList {
                        runs: runs.iter().map(|r| self.view(r)).collect(),
                    },
                ))
            }
            "GET /runs/{id}/samples" => {
                Ok(http::json(200, &self.samples(&merchant, &run_id()).await?))
            }
            "GET /runs/{id}" => Ok(http::json(
                200,
                &self.view(&self.run(&merchant, &run_id()).await?),
            )),
            "POST /runs/{id}/approve" => {
                let run = self.run(&merchant, &run_id()).await?;
                let moved = self
                    .runs
                    .transition(
                        &merchant,
                        &run.run_id,
                        &[RunState::AwaitingApproval],
                        RunState::Fanning,
                        None,
                    )
                    .await
                    .map_err(internal)?;
                if !moved {
                    return Err(ApiError::RunStateConflict(format!(
                        "run {} is not awaiting approval",
                        run.run_id
                    )));
                }
                self.start_fanout(&merchant, &run.run_id).await?;
                Ok(http::json(
                    200,
                    &self.view(&self.run(&merchant, &run.run_id).await?),
                ))
            }
            "POST /runs/{id}/retry" => Ok(http::json(
                201,
                &self.retry_run(&merchant, &run_id()).await?,
            )),
            "POST /runs/{id}/cancel" => {
                let run = self.run(&merchant, &run_id()).await?;
                let live = [
                    RunState::Fanning,
                    RunState::AwaitingApproval,
                    RunState::Running,
                ];
                let moved = self
                    .runs
                    .transition(
                        &merchant,
                        &run.run_id,
                        &live,
                        RunState::Cancelled,
                        Some("cancelled_by_merchant"),
                    )
                    .await
                    .map_err(internal)?;
                if !moved {
                    return Err(ApiError::RunStateConflict(format!(
                        "run {} has already finished",
                        run.run_id
                    )));
                }
                Ok(http::json(
                    200,
                    &self.view(&self.run(&merchant, &run.run_id).await?),
                ))
            }
            other => Err(ApiError::RouteNotFound(other.to_owned())),
        }
    }

    /// A page of the live catalog generation, as `GET /catalog` shows it.
    async fn catalog_page(
        &self,
        merchant: &MerchantId,
        after: Option<&str>,
        limit: usize,
        eligible: Option<bool>,
    ) -> Result<CatalogPage, ApiError> {
        let connection = self
            .store
            .shopify(merchant)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotConnected("Shopify"))?;
        let generation = connection
            .catalog_generation
            .as_deref()
            .ok_or(ApiError::CatalogNotSynced)?;
        let (products, more) = self
            .catalog
            .page(merchant, generation, after, limit, |p| {
                eligible.is_none_or(|e| shared::personalize::is_eligible(p) == e)
            })
            .await
            .map_err(internal)?;
        Ok(CatalogPage {
            next_cursor: products
                .last()
                .filter(|_| more)
                .map(|p| catalog_cursor(&p.id)),
            products: products.iter().map(CatalogItem::from).collect(),
            catalog_size: connection.catalog_size,
            last_sync_at: connection.last_sync_at.map(shared::domain::rfc3339),
        })
    }

    async fn audiences(
        &self,
        merchant: &MerchantId,
        offset: usize,
    ) -> Result<AudiencesPage, ApiError> {
        let key = self.key(merchant).await?;
        let all = self
            .in_time("Klaviyo", self.all_audiences(merchant, &key))
            .await?;
        let page: Vec<Audience> = all
            .iter()
            .skip(offset)
            .take(AUDIENCES_PER_PAGE)
            .cloned()
            .collect();
        let next = offset + page.len();
        Ok(AudiencesPage {
            audiences: page,
            next_cursor: (next < all.len()).then(|| next.to_string()),
        })
    }

    /// Every list and segment of the merchant, sorted by name; reused for a minute.
    async fn all_audiences(
        &self,
        merchant: &MerchantId,
        key: &KlaviyoApiKey,
    ) -> Result<std::sync::Arc<Vec<Audience>>, ApiError> {
        let fingerprint = shared::klaviyo::limits::key_fingerprint(key.expose());
        let cache = || self.audiences.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache().get(merchant).filter(|c| {
            c.read_at.elapsed() < AUDIENCE_CACHE_TTL && c.key_fingerprint == fingerprint
        }) {
            return Ok(hit.audiences.clone());
        }
        let (lists, segments) = tokio::try_join!(
            self.engine.klaviyo.lists(key),
            self.engine.klaviyo.segments(key)
        )
        .map_err(ApiError::from)?;
        let mut all: Vec<Audience> = lists.into_iter().chain(segments).collect();
        all.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.id.cmp(&b.id))
        });
        let all = std::sync::Arc::new(all);
        let mut cache = cache();
        cache.retain(|_, c| c.read_at.elapsed() < AUDIENCE_CACHE_TTL);
        cache.insert(
            merchant.clone(),
            CachedAudiences {
                read_at: Instant::now(),
                key_fingerprint: fingerprint,
                audiences: all.clone(),
            },
        );
        Ok(all)
    }

    async fn create_run(
        &self,
        merchant: &MerchantId,
        request: RunRequest,
    ) -> Result<RunCreated, ApiError> {
        let key = self.key(merchant).await?;
        let has_catalog = self
            .store
            .shopify(merchant)
            .await
            .map_err(internal)?
            .is_some_and(|c| c.catalog_generation.is_some());
        if !has_catalog {
            return Err(ApiError::NotConnected("Shopify catalog"));
        }
        // The audience must exist before anything is recorded.
        let audience = async {
            self.engine
                .klaviyo
                .audience_page(&key, request.audience.kind, &request.audience.id, None)
                .await
                .map_err(ApiError::from)
        };
        self.in_time("Klaviyo", audience).await?;
        let state = if request.review {
            RunState::AwaitingApproval
        } else {
            RunState::Fanning
        };
        let run = Run::new(
            state,
            request.audience,
            request.brief.trim().to_owned(),
            request.offer,
            request.holdout_percent,
            request.profile_cap,
            request.property_set.unwrap_or_default(),
        );
        self.record_and_start(merchant, run).await
    }

    /// Record a new run (taking its property set) and, unless it waits for review, start its
    /// fan-out.
    async fn record_and_start(
        &self,
        merchant: &MerchantId,
        run: Run,
    ) -> Result<RunCreated, ApiError> {
        self.runs
            .create(merchant, &run)
            .await
            .map_err(internal)?
            .map_err(ApiError::PropertySetInUse)?;
        if !run.review {
            self.start_fanout(merchant, &run.run_id).await?;
        }
        let stored = self.run(merchant, &run.run_id).await?;
        Ok(RunCreated {
            run: self.view(&stored),
        })
    }

    /// Copy for the first customers of a run awaiting approval, written now and returned once
    /// (never stored). Off `POST /runs`: a slow model costs this call a `503 samples-not-ready`
    /// with `Retry-After`, never the run (which stays approvable) or a gateway timeout.
    async fn samples(&self, merchant: &MerchantId, run_id: &str) -> Result<RunSamples, ApiError> {
        let run = self.run(merchant, run_id).await?;
        if run.state != RunState::AwaitingApproval {
            return Err(ApiError::RunStateConflict(format!(
                "run {run_id} is not awaiting approval"
            )));
        }
        let key = self.key(merchant).await?;
        let budget = Duration::from_millis(self.config.samples_deadline_ms);
        let write = async {
            let (first_page, _) = self
                .engine
                .klaviyo
                .audience_page(&key, run.audience.kind, &run.audience.id, None)
                .await
                .map_err(ApiError::from)?;
            let ids: Vec<String> = first_page.into_iter().take(REVIEW_SAMPLES).collect();
            let profiles = self
                .engine
                .klaviyo
                .get_profiles(&key, &ids)
                .await
                .map_err(ApiError::from)?;
            let settings = self
                .runs
                .settings(merchant)
                .await
                .map_err(internal)?
                .unwrap_or_default();
            let job = Job {
                merchant,
                key: &key,
                settings: &settings,
                brief: &run.brief,
                offer: &run.offer,
                run: None,
                read_deadline: None,
                carts: None,
            };
            let generation = self
                .engine
                .generate(&job, profiles)
                .await
                .map_err(internal)?;
            Ok::<_, ApiError>(RunSamples {
                samples: generation
                    .results
                    .iter()
                    .map(|r| personalize_worker::preview_profile(r.profile_id.clone(), r))
                    .collect(),
            })
        };
        match tokio::time::timeout(budget, write).await {
            Ok(samples) => samples,
            Err(_) => Err(ApiError::SamplesNotReady {
                retry_after_secs: 5,
            }),
        }
    }

    /// `POST /runs/{id}/retry`: a new run over the failed profiles of a finished one, writing
    /// as it (its run id on the profiles, its holdout split), so the original template guard
    /// shows the retried copy.
    async fn retry_run(&self, merchant: &MerchantId, run_id: &str) -> Result<RunCreated, ApiError> {
        let source = self.run(merchant, run_id).await?;
        if !source.state.is_terminal() {
            return Err(ApiError::RunStateConflict(format!(
                "run {run_id} has not finished; retry it once it has"
            )));
        }
        if source.counts.failed.values().sum::<u64>() == 0 {
            return Err(ApiError::RunStateConflict(format!(
                "run {run_id} has no failed profiles to retry"
            )));
        }
        self.key(merchant).await?;
        let run = Run {
            retry_of: Some(source.run_id.clone()),
            written_as: Some(source.written_run_id().to_owned()),
            ..Run::new(
                RunState::Fanning,
                source.audience.clone(),
                source.brief.clone(),
                source.offer.clone(),
                source.holdout_percent,
                None,
                source.property_set.clone(),
            )
        };
        self.record_and_start(merchant, run).await
    }

    async fn start_fanout(&self, merchant: &MerchantId, run_id: &str) -> Result<(), ApiError> {
        let message = FanoutRequest {
            merchant_id: merchant.clone(),
            run_id: run_id.to_owned(),
            cursor: None,
        };
        self.fanout_queue.send(&message).await.map_err(internal)
    }

    /// Page the audience onto the work queue from the run's cursor until done or out of time.
    pub async fn fan_out(&self, request: &FanoutRequest) -> Result<(), FunctionError> {
        let started = Instant::now();
        let budget = Duration::from_millis(self.config.fanout_time_budget_ms);
        let merchant = &request.merchant_id;
        loop {
            let Some(run) = self.runs.get(merchant, &request.run_id).await? else {
                return Ok(());
            };
            if run.fanout_done {
                // A delivery that died after marking the fan-out done may not have moved the
                // run on: finishing again is idempotent.
                return self.after_fanout(merchant, &run.run_id).await;
            }
            if let Some(pending) = run.fanout_pending {
                // A page claimed by a delivery that died before it knew its message was sent:
                // send the kept ids (a duplicate message is deduplicated by batch number).
                self.send_claimed_page(merchant, &run, pending).await?;
                continue;
            }
            if run.state.is_terminal() {
                // Cancelled: stop here; the total is what was enqueued so far.
                self.runs.finish_fanout(merchant, &run.run_id).await?;
                return Ok(());
            }
            let remaining_cap = run
                .profile_cap
                .map(|cap| cap.saturating_sub(run.counts.total));
            if remaining_cap == Some(0) {
                return self.finish(merchant, &run.run_id).await;
            }
            if window_full(&run, self.config.fanout_window_profiles) {
                // Enough of this run is queued or in the workers' hands: look again shortly, so
                // other merchants' batches never queue behind the whole of a big run.
                self.fanout_queue
                    .send_with(request, None, WINDOW_RECHECK_SECS)
                    .await?;
                tracing::debug!(run_id = %run.run_id, outstanding = run.counts.outstanding(), "fan-out window full");
                return Ok(());
            }
            let Some(key) = self
                .secrets
                .klaviyo_key(&self.config.secret_name(merchant, Vendor::Klaviyo))
                .await?
            else {
                self.runs
                    .transition(
                        merchant,
                        &run.run_id,
                        &[RunState::Fanning],
                        RunState::Cancelled,
                        Some("klaviyo_disconnected"),
                    )
                    .await?;
                self.runs.finish_fanout(merchant, &run.run_id).await?;
                return Ok(());
            };
            if run.batches > 0 && run.fanout_cursor.is_none() {
                // The last page is claimed and sent (its claim removed the cursor): a
                // redelivery must not page the audience again from the start.
                return self.finish(merchant, &run.run_id).await;
            }
            let cursor = run.fanout_cursor.clone();
            let (mut ids, next) = match &run.retry_of {
                // A retry pages the failed ids its source run kept, one batch at a time.
                Some(source) => self.runs.failed_page(source, cursor.as_deref()).await?,
                None => {
                    self.engine
                        .klaviyo
                        .audience_page(&key, run.audience.kind, &run.audience.id, cursor.as_deref())
                        .await?
                }
            };
            self.crash_point("fanout.page_read")?;
            let mut next = next;
            if let Some(left) = remaining_cap {
                if ids.len() as u64 >= left {
                    ids.truncate(left as usize);
                    next = None;
                }
            }
            // Claimed (with its ids kept) before it is sent: a crash in between sends the same
            // ids under the same batch number, never a re-read page.
            let claimed = self
                .runs
                .claim_page(
                    merchant,
                    &run.run_id,
                    run.batches,
                    cursor.as_deref(),
                    next.as_deref(),
                    &ids,
                )
                .await?;
            if !claimed {
                tracing::info!(run_id = %run.run_id, "page already claimed by another delivery; stopping");
                return Ok(());
            }
            self.crash_point("fanout.page_claimed")?;
            if !ids.is_empty() {
                self.send_page(merchant, &run, run.batches + 1, ids, next.is_none())
                    .await?;
                self.crash_point("fanout.page_sent")?;
            }
            if next.is_none() {
                return self.finish(merchant, &run.run_id).await;
            }
            if started.elapsed() >= budget {
                // Hand on before the Lambda time limit; the continuation reads the saved cursor.
                self.fanout_queue.send(request).await?;
                tracing::info!(run_id = %run.run_id, batches = run.batches + 1, "fan-out continues in a new invocation");
                return Ok(());
            }
        }
    }

    /// Send the work message of a page claimed earlier, from its kept ids.
    async fn send_claimed_page(
        &self,
        merchant: &MerchantId,
        run: &Run,
        batch_no: u64,
    ) -> Result<(), FunctionError> {
        match self.runs.claimed_page(&run.run_id, batch_no).await? {
            Some(ids) => {
                let last_page = run.fanout_cursor.is_none();
                self.send_page(merchant, run, batch_no, ids, last_page)
                    .await
            }
            None => Ok(self.runs.page_sent(merchant, &run.run_id, batch_no).await?),
        }
    }

    /// Queue a claimed page's ids as work batch `batch_no`, then forget the kept ids.
    async fn send_page(
        &self,
        merchant: &MerchantId,
        run: &Run,
        batch_no: u64,
        ids: Vec<String>,
        last_page: bool,
    ) -> Result<(), FunctionError> {
        let work = WorkBatch {
            merchant_id: merchant.clone(),
            run_id: run.run_id.clone(),
            batch: batch_no,
            profile_ids: ids,
            write_back_check: None,
            express: is_small(run, batch_no, last_page),
        };
        self.work_queues.send(&work, 0).await?;
        self.crash_point("fanout.batch_sent")?;
        self.runs.page_sent(merchant, &run.run_id, batch_no).await?;
        Ok(())
    }

    fn crash_point(&self, name: &str) -> Result<(), FunctionError> {
        Ok(shared::faults::point(
            self.config.fault_scope.as_deref(),
            name,
        )?)
    }

    async fn finish(&self, merchant: &MerchantId, run_id: &str) -> Result<(), FunctionError> {
        self.runs.finish_fanout(merchant, run_id).await?;
        self.crash_point("fanout.finished")?;
        self.after_fanout(merchant, run_id).await
    }

    /// The fan-out is done: the run is running, and completed if every batch is counted.
    async fn after_fanout(&self, merchant: &MerchantId, run_id: &str) -> Result<(), FunctionError> {
        self.runs
            .transition(
                merchant,
                run_id,
                &[RunState::Fanning],
                RunState::Running,
                None,
            )
            .await?;
        if let Some(run) = self.runs.get(merchant, run_id).await? {
            self.runs.complete_if_accounted(merchant, &run).await?;
            tracing::info!(
                run_id,
                total = run.counts.total,
                batches = run.batches,
                "fan-out done"
            );
        }
        Ok(())
    }

    /// The run watchdog (EventBridge schedule): every live run ends. A fan-out that stopped is
    /// re-driven from its saved cursor, then failed; a run whose batches stopped is finished
    /// with what is outstanding counted as `failed: stalled`.
    pub async fn watchdog(&self) -> Result<WatchdogReport, FunctionError> {
        let limits = self.config.stall_limits();
        let mut report = WatchdogReport::default();
        for (merchant, run_id) in self.runs.live_runs().await? {
            report.looked += 1;
            let Some(run) = self.runs.get(&merchant, &run_id).await? else {
                self.runs.forget_live(&merchant, &run_id).await?;
                continue;
            };
            match run.watchdog_verdict(now_unix(), &limits) {
                Verdict::Leave => {}
                Verdict::Forget => self.runs.forget_live(&merchant, &run_id).await?,
                Verdict::Complete => {
                    if self.runs.complete_if_accounted(&merchant, &run).await? {
                        report.completed += 1;
                    }
                }
                Verdict::RedriveFanout => {
                    // Counted first, so two watchdogs never both re-drive; a re-drive that
                    // overlaps a live fan-out is harmless (pages are claimed conditionally).
                    if self
                        .runs
                        .note_fanout_redrive(&merchant, &run_id, run.fanout_redrives)
                        .await?
                    {
                        tracing::warn!(%run_id, redrives = run.fanout_redrives + 1, "fan-out stalled; re-driving it");
                        self.start_fanout(&merchant, &run_id)
                            .await
                            .map_err(|e| e.to_string())?;
                        report.redriven += 1;
                    }
                }
                verdict @ (Verdict::Fail(reason) | Verdict::FinishStalled(reason)) => {
                    let (to, counter) = match verdict {
                        Verdict::Fail(_) => (RunState::Failed, &mut report.failed),
                        _ => (RunState::Completed, &mut report.finished),
                    };
                    if self
                        .runs
                        .finish_stalled(&merchant, &run, to, reason)
                        .await?
                    {
                        tracing::warn!(%run_id, reason, ?to, outstanding = run.counts.outstanding(), "run ended by the watchdog");
                        *counter += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    async fn handle_record(&self, record: SqsMessage) -> Result<(), FunctionError> {
        let request: FanoutRequest =
            serde_json::from_str(record.body.as_deref().unwrap_or_default())
                .map_err(|e| format!("fan-out message is not a FanoutRequest: {e}"))?;
        self.fan_out(&request).await
    }
}

/// What one watchdog pass did.
#[derive(Debug, Default, serde::Serialize)]
pub struct WatchdogReport {
    pub looked: u64,
    pub completed: u64,
    pub redriven: u64,
    pub failed: u64,
    pub finished: u64,
}

/// A small run: capped at `EXPRESS_MAX_PROFILES`, or its whole audience in its first page.
fn is_small(run: &Run, batch_no: u64, last_page: bool) -> bool {
    run.profile_cap
        .is_some_and(|cap| cap <= shared::personalize::run::EXPRESS_MAX_PROFILES)
        || (batch_no == 1 && last_page)
}

/// Whether the run already has `window` profiles enqueued and not yet accounted for.
fn window_full(run: &Run, window: Option<u64>) -> bool {
    window.is_some_and(|w| run.counts.outstanding() >= w)
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if event.get("Records").is_some() {
            let event: SqsEvent = parse_event(event, "SQS")?;
            let response =
                sqs::for_each_record(event, 1, |record| self.handle_record(record)).await;
            return Ok(serde_json::to_value(response)?);
        }
        if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            let report = self.watchdog().await?;
            tracing::info!(?report, "run watchdog");
            return Ok(serde_json::to_value(report)?);
        }
        let req: ApiGatewayV2httpRequest =
            parse_event(event, "API Gateway HTTP API, SQS or a Scheduled Event")?;
        Ok(serde_json::to_value(http::respond(
            self.handle_http(&req).await,
        ))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::personalize::run::AudienceRef;
    use shared::personalize::RunCounts;

    fn run_with(total: u64, written: u64) -> Run {
        Run {
            run_id: "01J".into(),
            state: RunState::Fanning,
            state_reason: None,
            audience: serde_json::from_value::<AudienceRef>(
                serde_json::json!({"kind": "segment", "id": "abc123"}),
            )
            .unwrap(),
            brief: "b".into(),
            offer: Default::default(),
            holdout_percent: 0,
            profile_cap: None,
            review: false,
            property_set: Default::default(),
            retry_of: None,
            written_as: None,
            counts: RunCounts {
                total,
                written,
                ..RunCounts::default()
            },
            tokens: Default::default(),
            requests: Default::default(),
            fanout_done: false,
            batches: 0,
            fanout_cursor: None,
            fanout_pending: None,
            progress_at: None,
            fanout_redrives: 0,
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn small_runs_take_the_express_queue() {
        let mut run = run_with(0, 0);
        assert!(
            !is_small(&run, 1, false),
            "an uncapped audience of many pages"
        );
        assert!(is_small(&run, 1, true), "an audience of one page");
        assert!(!is_small(&run, 3, true), "the last page of a big audience");
        run.profile_cap = Some(200);
        assert!(is_small(&run, 2, false));
        run.profile_cap = Some(20_000);
        assert!(!is_small(&run, 2, false));
    }

    #[test]
    fn the_window_counts_profiles_enqueued_but_not_yet_accounted_for() {
        assert!(!window_full(&run_with(1_100, 0), Some(1_200)));
        assert!(window_full(&run_with(1_200, 0), Some(1_200)));
        assert!(!window_full(&run_with(2_000, 900), Some(1_200)));
        assert!(!window_full(&run_with(1_000_000, 0), None));
    }
}
