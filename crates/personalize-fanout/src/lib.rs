//! personalize-fanout: the merchant's runs API (audiences, settings, runs with review, approve,
//! cancel) and the fan-out that pages a Klaviyo list or segment onto the work queue as batches
//! of profile ids — checkpointing its cursor and handing on to a continuation message before
//! its time budget ends, so an audience of millions runs like one of ten.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use personalize_worker::engine::{Engine, Job};
use serde_json::Value;
use shared::api::{AudiencesPage, RunCreated, RunList, RunView};
use shared::aws::dynamo::AppStore;
use shared::aws::queue::{Queue, WorkQueues};
use shared::aws::runs::RunStore;
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, KlaviyoApiKey, MerchantId, Vendor};
use shared::edge::{function::parse_event, http, sqs, Function, FunctionError};
use shared::error::ApiError;
use shared::klaviyo::Audience;
use shared::personalize::run::{FanoutRequest, Run, RunRequest, WorkBatch};
use shared::personalize::{RunCounts, RunState, Settings};
use shared::Config;
use std::time::{Duration, Instant};

/// Sample customers generated for review before a run is approved.
const REVIEW_SAMPLES: usize = 3;
/// How soon a fan-out whose window is full looks again.
const WINDOW_RECHECK_SECS: u32 = 3;
const AUDIENCES_PER_PAGE: usize = 50;

pub struct Handler {
    config: Config,
    store: AppStore,
    runs: RunStore,
    secrets: SecretStore,
    fanout_queue: Queue,
    work_queues: WorkQueues,
    engine: Engine,
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
            runs: RunStore::from_sdk(&aws, &config.app_table),
            secrets: SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone()),
            fanout_queue: Queue::from_sdk(&aws, &config.fanout_queue_url),
            work_queues: WorkQueues::from_config(&aws, &config),
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
        let merchant = http::merchant(req)?;
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
            "POST /preview" => {
                let body: shared::api::PreviewRequest = http::json_body(req)?;
                let previewer = personalize_worker::Previewer {
                    config: &self.config,
                    engine: &self.engine,
                    runs: &self.runs,
                    secrets: &self.secrets,
                };
                Ok(http::json(200, &previewer.preview(&merchant, body).await?))
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

    async fn audiences(
        &self,
        merchant: &MerchantId,
        offset: usize,
    ) -> Result<AudiencesPage, ApiError> {
        let key = self.key(merchant).await?;
        let (lists, segments) = tokio::try_join!(
            self.engine.klaviyo.lists(&key),
            self.engine.klaviyo.segments(&key)
        )
        .map_err(ApiError::from)?;
        let mut all: Vec<Audience> = lists.into_iter().chain(segments).collect();
        all.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.id.cmp(&b.id))
        });
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
        // The audience must exist before anything is recorded (and its first page gives samples).
        let (first_page, _) = self
            .engine
            .klaviyo
            .audience_page(&key, request.audience.kind, &request.audience.id, None)
            .await
            .map_err(ApiError::from)?;
        let run = Run {
            run_id: ulid::Ulid::new().to_string(),
            state: if request.review {
                RunState::AwaitingApproval
            } else {
                RunState::Fanning
            },
            state_reason: None,
            audience: request.audience,
            brief: request.brief.trim().to_owned(),
            holdout_percent: request.holdout_percent,
            profile_cap: request.profile_cap,
            review: request.review,
            counts: RunCounts::default(),
            tokens: Default::default(),
            requests: Default::default(),
            fanout_done: false,
            batches: 0,
            fanout_cursor: None,
            created_at: now_unix(),
            started_at: None,
            finished_at: None,
        };
        self.runs.create(merchant, &run).await.map_err(internal)?;
        let mut samples = Vec::new();
        if run.review {
            // Samples are generated for the reviewer and returned once; they are never stored.
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
                run: None,
            };
            let generation = self
                .engine
                .generate(&job, profiles)
                .await
                .map_err(internal)?;
            samples = generation
                .results
                .iter()
                .map(|r| personalize_worker::preview_profile(r.profile_id.clone(), r))
                .collect();
        } else {
            self.start_fanout(merchant, &run.run_id).await?;
        }
        let stored = self.run(merchant, &run.run_id).await?;
        Ok(RunCreated {
            run: self.view(&stored),
            samples,
        })
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
                return Ok(());
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
            let cursor = run.fanout_cursor.clone();
            let (mut ids, next) = self
                .engine
                .klaviyo
                .audience_page(&key, run.audience.kind, &run.audience.id, cursor.as_deref())
                .await?;
            let mut next = next;
            if let Some(left) = remaining_cap {
                if ids.len() as u64 >= left {
                    ids.truncate(left as usize);
                    next = None;
                }
            }
            let batch_no = run.batches + 1;
            if !ids.is_empty() {
                // Sent before the page is claimed, with a deterministic batch number: a crash in
                // between re-sends the same batch, which the worker deduplicates.
                let work = WorkBatch {
                    merchant_id: merchant.clone(),
                    run_id: run.run_id.clone(),
                    batch: batch_no,
                    profile_ids: ids.clone(),
                    write_back_check: None,
                    express: is_small(&run, batch_no, next.is_none()),
                };
                self.work_queues.send(&work, 0).await?;
            }
            let claimed = self
                .runs
                .claim_page(
                    merchant,
                    &run.run_id,
                    run.batches,
                    cursor.as_deref(),
                    next.as_deref(),
                    ids.len() as u64,
                )
                .await?;
            if !claimed {
                tracing::info!(run_id = %run.run_id, "page already claimed by another delivery; stopping");
                return Ok(());
            }
            if next.is_none() {
                return self.finish(merchant, &run.run_id).await;
            }
            if started.elapsed() >= budget {
                // Hand on before the Lambda time limit; the continuation reads the saved cursor.
                self.fanout_queue.send(request).await?;
                tracing::info!(run_id = %run.run_id, batches = batch_no, "fan-out continues in a new invocation");
                return Ok(());
            }
        }
    }

    async fn finish(&self, merchant: &MerchantId, run_id: &str) -> Result<(), FunctionError> {
        self.runs.finish_fanout(merchant, run_id).await?;
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

    async fn handle_record(&self, record: SqsMessage) -> Result<(), FunctionError> {
        let request: FanoutRequest =
            serde_json::from_str(record.body.as_deref().unwrap_or_default())
                .map_err(|e| format!("fan-out message is not a FanoutRequest: {e}"))?;
        self.fan_out(&request).await
    }
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
        let req: ApiGatewayV2httpRequest = parse_event(event, "API Gateway HTTP API or SQS")?;
        Ok(serde_json::to_value(http::respond(
            self.handle_http(&req).await,
        ))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::personalize::run::AudienceRef;

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
            holdout_percent: 0,
            profile_cap: None,
            review: false,
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
