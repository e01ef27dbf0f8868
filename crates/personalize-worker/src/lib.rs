//! personalize-worker: personalizes batches of profiles from the work queue and submits the copy
//! to Klaviyo as a bulk import job; a delayed follow-up message counts the batch once the job is
//! done (so no container waits on Klaviyo's import); counts batches that died in the
//! dead-letter queue. [`Previewer`] is the
//! same engine writing nothing: `POST /preview`, served by the fan-out function, whose
//! containers hold the vendor budget for interactive calls.

pub mod engine;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use engine::{Engine, EngineError, Job, ProfileResult};
use serde_json::{Map, Value};
use shared::api::{
    Grounding, PreviewProfile, PreviewRequest, PreviewResponse, MAX_PREVIEW_PROFILES,
};
use shared::aws::runs::{BatchClaim, BatchTally, RunStore};
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, KlaviyoApiKey, MerchantId, Vendor};
use shared::edge::{function::parse_event, sqs, Function, FunctionError};
use shared::error::ApiError;
use shared::klaviyo::{ImportStatus, KlaviyoError};
use shared::personalize::copy::RenderedProduct;
use shared::personalize::run::{WorkBatch, WriteBackCheck};
use shared::personalize::{
    holdout_group, holdout_properties, FailReason, Group, ModelPrices, Outcome, SkipReason,
};
use shared::Config;
use std::collections::HashSet;
use std::time::Duration;

/// A worker holds a batch this long before another delivery may take it over.
const BATCH_LEASE_SECS: i64 = 600;
/// Batches processed at once per container (each one is already concurrent inside).
const BATCHES_IN_FLIGHT: usize = 3;
/// How long a resumed batch waits in place for its write-back job before handing it back to SQS.
const IMPORT_WAIT_LIMIT: Duration = Duration::from_secs(150);
/// Follow-ups that look at a write-back job before the batch is left to SQS's retries and the
/// dead-letter queue (the delays grow to a minute: about half an hour in all).
const WRITE_BACK_CHECKS: u32 = 40;

/// How long this container's import jobs have taken to finish (creation to the poll that saw
/// them done), as a moving average.
struct ImportDuration(std::sync::Mutex<Duration>);

impl ImportDuration {
    const FIRST_GUESS: Duration = Duration::from_secs(5);

    fn typical(&self) -> Duration {
        let d = *self.0.lock().expect("import duration lock");
        d.clamp(Duration::from_secs(2), Duration::from_secs(30))
    }

    fn observe(&self, took: Duration) {
        let mut d = self.0.lock().expect("import duration lock");
        *d = d.mul_f64(0.7) + took.mul_f64(0.3);
    }
}

pub struct Handler {
    config: Config,
    engine: Engine,
    runs: RunStore,
    secrets: SecretStore,
    /// Where the write-back follow-ups go: the queue their batch came on.
    work_queues: shared::aws::queue::WorkQueues,
    import_duration: ImportDuration,
}

/// How far a fresh batch got.
enum Written {
    /// Every profile is accounted in the tally.
    Counted(BatchTally),
    /// Its write-back job is submitted and recorded; a follow-up counts it when the job is done.
    Submitted,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        let engine = Engine::from_config(&aws, &config);
        Ok(Self {
            runs: RunStore::from_sdk(&aws, &config.app_table),
            secrets: SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone()),
            work_queues: shared::aws::queue::WorkQueues::from_config(&aws, &config),
            engine,
            config,
            import_duration: ImportDuration(std::sync::Mutex::new(ImportDuration::FIRST_GUESS)),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn klaviyo_key(
        &self,
        merchant: &MerchantId,
    ) -> Result<Option<KlaviyoApiKey>, FunctionError> {
        Ok(self
            .secrets
            .klaviyo_key(&self.config.secret_name(merchant, Vendor::Klaviyo))
            .await?)
    }

    /// One work-queue batch. Idempotent: a batch already counted is acknowledged; one whose
    /// write-back job was submitted by an earlier delivery is finished, not written again.
    pub async fn process_batch(&self, batch: &WorkBatch) -> Result<(), FunctionError> {
        let started = std::time::Instant::now();
        let merchant = &batch.merchant_id;
        let Some(run) = self.runs.get(merchant, &batch.run_id).await? else {
            tracing::info!(run_id = %batch.run_id, "run no longer exists; batch dropped");
            return Ok(());
        };
        if let Some(check) = batch.write_back_check {
            return self
                .check_write_back(batch, run.holdout_percent, check, started)
                .await;
        }
        let claim = self
            .runs
            .claim_batch(&batch.run_id, batch.batch, BATCH_LEASE_SECS)
            .await?;
        let key = self.klaviyo_key(merchant).await?;
        let tally = match claim {
            BatchClaim::Done => return Ok(()),
            BatchClaim::Busy => return Err("another worker holds this batch; retry later".into()),
            BatchClaim::Resume { job_id, pending } => match &key {
                Some(key) => self.finish_import(key, &job_id, pending).await?,
                None => pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled)),
            },
            BatchClaim::Fresh if run.state.is_terminal() || key.is_none() => {
                // Cancelled (by the merchant or a Klaviyo disconnect): every profile is accounted.
                pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled))
            }
            BatchClaim::Fresh => {
                let key = key.as_ref().expect("checked above");
                match self
                    .personalize_and_write(batch, &run.brief, run.holdout_percent, key)
                    .await?
                {
                    Written::Counted(tally) => tally,
                    Written::Submitted => {
                        // The container moves on; the follow-up counts the batch.
                        self.send_write_back_check(batch, WriteBackCheck { checks: 0 })
                            .await?;
                        return Ok(());
                    }
                }
            }
        };
        self.count(batch, &tally, started).await
    }

    /// Count a finished batch into its run (once), and complete the run when it is all counted.
    async fn count(
        &self,
        batch: &WorkBatch,
        tally: &BatchTally,
        started: std::time::Instant,
    ) -> Result<(), FunctionError> {
        let merchant = &batch.merchant_id;
        if let Some(after) = self
            .runs
            .complete_batch(merchant, &batch.run_id, batch.batch, tally)
            .await?
        {
            if self.runs.complete_if_accounted(merchant, &after).await? {
                tracing::info!(run_id = %batch.run_id, "run completed");
            }
        }
        let throttled =
            self.engine.klaviyo.usage().throttled + self.engine.bedrock.usage_totals().throttled;
        shared::metrics::batch(tally, throttled, started.elapsed());
        Ok(())
    }

    /// Queue the next look at a batch's write-back job: the first after about as long as jobs
    /// have been taking, the rest after a growing fraction of that (up to a minute).
    async fn send_write_back_check(
        &self,
        batch: &WorkBatch,
        check: WriteBackCheck,
    ) -> Result<(), FunctionError> {
        let typical = self.import_duration.typical();
        let delay = if check.checks == 0 {
            typical
        } else {
            (typical / 3)
                .mul_f64(1.3f64.powi(check.checks as i32))
                .clamp(Duration::from_secs(2), Duration::from_secs(60))
        };
        self.work_queues
            .send(
                &batch.write_back_check(check),
                delay.as_secs_f64().ceil() as u32,
            )
            .await?;
        Ok(())
    }

    /// A follow-up: look at the batch's write-back job once; count the batch when the job is
    /// done, else look again later.
    async fn check_write_back(
        &self,
        batch: &WorkBatch,
        holdout_percent: u8,
        check: WriteBackCheck,
        started: std::time::Instant,
    ) -> Result<(), FunctionError> {
        let Some((job_id, mut pending)) =
            self.runs.recorded_job(&batch.run_id, batch.batch).await?
        else {
            return Ok(()); // counted already (a redelivered follow-up)
        };
        let Some(key) = self.klaviyo_key(&batch.merchant_id).await? else {
            // Disconnected meanwhile: the job may or may not have landed; nobody can look.
            let tally = pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled));
            return self.count(batch, &tally, started).await;
        };
        *pending
            .requests
            .entry("klaviyo_bulk_import_job".into())
            .or_default() += 1;
        let job = self.engine.klaviyo.bulk_import_job(&key, &job_id).await?;
        if !job.status.is_final() {
            if check.checks + 1 >= WRITE_BACK_CHECKS {
                return Err(
                    "the Klaviyo import job did not finish in time; SQS will redeliver".into(),
                );
            }
            let next = WriteBackCheck {
                checks: check.checks + 1,
            };
            return self.send_write_back_check(batch, next).await;
        }
        // How long the job took by Klaviyo's clock, not by our look (which comes after the
        // wait and would only ever push the next wait up).
        if let Some(took) = job.took {
            self.import_duration.observe(took);
        }
        // Any import error not for a holdout profile is for one whose copy was written.
        let written_ids: HashSet<String> = batch
            .profile_ids
            .iter()
            .filter(|id| holdout_group(&batch.run_id, id, holdout_percent) == Group::Personalized)
            .cloned()
            .collect();
        let tally = self
            .account_import(&key, &job_id, &job, pending, Some(&written_ids))
            .await;
        self.count(batch, &tally, started).await
    }

    async fn personalize_and_write(
        &self,
        batch: &WorkBatch,
        brief: &str,
        holdout_percent: u8,
        key: &KlaviyoApiKey,
    ) -> Result<Written, FunctionError> {
        let merchant = &batch.merchant_id;
        let settings = self.runs.settings(merchant).await?.unwrap_or_default();
        let mut tally = BatchTally::default();
        *tally.requests.entry("klaviyo_profiles".into()).or_default() +=
            batch.profile_ids.len().div_ceil(100) as u64;
        let profiles = match self
            .engine
            .klaviyo
            .get_profiles(key, &batch.profile_ids)
            .await
        {
            Ok(p) => p,
            // Throttled or unavailable: let SQS redeliver (the DLQ counts it if it never works).
            Err(err @ (KlaviyoError::Throttled { .. } | KlaviyoError::Transient(_))) => {
                return Err(Box::new(err))
            }
            Err(_) => {
                return Ok(Written::Counted(pending_as(
                    &batch.profile_ids,
                    Outcome::Failed(FailReason::Klaviyo),
                )))
            }
        };
        let found: HashSet<&str> = profiles
            .iter()
            .filter_map(|p| p.get("id").and_then(Value::as_str))
            .collect();
        let missing = batch
            .profile_ids
            .iter()
            .filter(|id| !found.contains(id.as_str()))
            .count() as u64;
        tally
            .counts
            .add_n(&Outcome::Skipped(SkipReason::ProfileNotFound), missing);

        let job = Job {
            merchant,
            key,
            settings: &settings,
            brief,
            run: Some((&batch.run_id, holdout_percent)),
        };
        let generation = match self.engine.generate(&job, profiles).await {
            Ok(g) => g,
            Err(EngineError::NoCatalog) => {
                return Ok(Written::Counted(pending_as(
                    &batch.profile_ids,
                    Outcome::Skipped(SkipReason::NoCandidates),
                )));
            }
            Err(err) => return Err(Box::new(err)),
        };
        tally.tokens = generation.tokens;
        for (k, v) in &generation.requests {
            *tally.requests.entry(k.clone()).or_default() += v;
        }

        let generated_at = now_unix();
        let mut writes: Vec<(String, Map<String, Value>)> = Vec::new();
        for result in &generation.results {
            match (&result.outcome, &result.copy) {
                (Outcome::Written, Some(copy)) => {
                    writes.push((
                        result.profile_id.clone(),
                        copy.to_properties(&batch.run_id, generated_at, Group::Personalized),
                    ));
                }
                (Outcome::Holdout, _) => {
                    writes.push((
                        result.profile_id.clone(),
                        holdout_properties(&batch.run_id, generated_at),
                    ));
                }
                (outcome, _) => tally.counts.add(outcome),
            }
        }
        if writes.is_empty() {
            return Ok(Written::Counted(tally));
        }
        // What the write-back will add if it succeeds, recorded with the job so a redelivery
        // finishes this job rather than writing again.
        for result in &generation.results {
            if matches!(result.outcome, Outcome::Written | Outcome::Holdout) {
                tally.counts.add(&result.outcome);
            }
        }
        *tally
            .requests
            .entry("klaviyo_bulk_import".into())
            .or_default() += 1;
        let job_id = match self.engine.klaviyo.start_bulk_import(key, &writes).await {
            Ok(id) => id,
            Err(err @ (KlaviyoError::Throttled { .. } | KlaviyoError::Transient(_))) => {
                return Err(Box::new(err))
            }
            Err(err) => {
                tracing::warn!(error = %err, "bulk import refused");
                move_all_to_failed(&mut tally, writes.len());
                return Ok(Written::Counted(tally));
            }
        };
        self.runs
            .record_batch_job(&batch.run_id, batch.batch, &job_id, &tally)
            .await?;
        Ok(Written::Submitted)
    }

    /// Wait in place for a write-back job a previous delivery submitted, then account it.
    async fn finish_import(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
        mut tally: BatchTally,
    ) -> Result<BatchTally, FunctionError> {
        // Import jobs queue and then process for seconds to minutes, and every poll counts
        // against the account's M tier (shared with job creation): wait about as long as jobs
        // have been taking before the first poll, then poll at a third of that.
        let created = std::time::Instant::now();
        let typical = self.import_duration.typical();
        let mut wait = typical;
        let deadline = created + IMPORT_WAIT_LIMIT;
        let job = loop {
            tokio::time::sleep(wait).await;
            wait = (typical / 3).max(Duration::from_secs(2));
            *tally
                .requests
                .entry("klaviyo_bulk_import_job".into())
                .or_default() += 1;
            let job = self.engine.klaviyo.bulk_import_job(key, job_id).await?;
            if job.status.is_final() {
                self.import_duration
                    .observe(job.took.unwrap_or_else(|| created.elapsed()));
                break job;
            }
            if std::time::Instant::now() > deadline {
                return Err(
                    "the Klaviyo import job did not finish in time; SQS will redeliver".into(),
                );
            }
        };
        Ok(self.account_import(key, job_id, &job, tally, None).await)
    }

    /// Move the profiles a finished write-back job could not write to failed(klaviyo).
    /// `written_ids` tells import errors of written profiles from holdouts' (unknown: holdouts
    /// first).
    async fn account_import(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
        job: &shared::klaviyo::BulkImportJob,
        mut tally: BatchTally,
        written_ids: Option<&HashSet<String>>,
    ) -> BatchTally {
        let failed = match job.status {
            ImportStatus::Complete => job.failed_count,
            _ => job
                .total_count
                .max(tally.counts.written + tally.counts.holdout),
        };
        if failed > 0 {
            let mut from_written = 0;
            if job.status == ImportStatus::Complete {
                *tally
                    .requests
                    .entry("klaviyo_bulk_import_errors".into())
                    .or_default() += 1;
                let errors = self
                    .engine
                    .klaviyo
                    .bulk_import_errors(key, job_id)
                    .await
                    .unwrap_or_default();
                if let Some(ids) = written_ids {
                    from_written = errors
                        .iter()
                        .filter(|e| e.profile_id.as_ref().is_some_and(|id| ids.contains(id)))
                        .count() as u64;
                }
            } else {
                from_written = tally.counts.written;
            }
            let from_written = from_written.min(tally.counts.written);
            let from_holdout = (failed - from_written).min(tally.counts.holdout);
            tally.counts.written -= from_written;
            tally.counts.holdout -= from_holdout;
            tally.counts.add_n(
                &Outcome::Failed(FailReason::Klaviyo),
                from_written + from_holdout,
            );
        }
        tally
    }

    /// A batch in the dead-letter queue: every profile not yet counted fails with `dead_letter`.
    async fn dead_letter(&self, batch: &WorkBatch) -> Result<(), FunctionError> {
        let tally = pending_as(&batch.profile_ids, Outcome::Failed(FailReason::DeadLetter));
        if let Some(after) = self
            .runs
            .complete_batch(&batch.merchant_id, &batch.run_id, batch.batch, &tally)
            .await?
        {
            tracing::warn!(run_id = %batch.run_id, batch = batch.batch, "batch counted as failed from the dead-letter queue");
            self.runs
                .complete_if_accounted(&batch.merchant_id, &after)
                .await?;
        }
        Ok(())
    }

    async fn handle_record(&self, record: SqsMessage, dead: bool) -> Result<(), FunctionError> {
        let batch: WorkBatch = serde_json::from_str(record.body.as_deref().unwrap_or_default())
            .map_err(|e| format!("work message is not a WorkBatch: {e}"))?;
        let span = tracing::info_span!("batch", run_id = %batch.run_id, batch = batch.batch);
        // Instrumented (not entered across awaits): batches run concurrently on one task.
        let work = async {
            if dead {
                self.dead_letter(&batch).await
            } else {
                self.process_batch(&batch).await
            }
        };
        tracing::Instrument::instrument(work, span).await
    }
}

/// What `POST /preview` needs (served by the fan-out function, whose containers hold the
/// budget for interactive calls).
pub struct Previewer<'a> {
    pub config: &'a Config,
    pub engine: &'a Engine,
    pub runs: &'a RunStore,
    pub secrets: &'a SecretStore,
}

impl Previewer<'_> {
    /// `POST /preview`: generate for up to ten profiles and return everything; write nothing.
    pub async fn preview(
        &self,
        merchant: &MerchantId,
        request: PreviewRequest,
    ) -> Result<PreviewResponse, ApiError> {
        if request.brief.trim().is_empty()
            || request.brief.chars().count() > shared::personalize::run::MAX_BRIEF_CHARS
        {
            return Err(ApiError::InvalidRequest(
                "brief must be 1 to 500 characters".into(),
            ));
        }
        if request.profiles.is_empty() || request.profiles.len() > MAX_PREVIEW_PROFILES {
            return Err(ApiError::InvalidRequest(format!(
                "name 1 to {MAX_PREVIEW_PROFILES} profiles"
            )));
        }
        let key = self
            .secrets
            .klaviyo_key(&self.config.secret_name(merchant, Vendor::Klaviyo))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or(ApiError::NotConnected("Klaviyo"))?;
        let settings = self
            .runs
            .settings(merchant)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .unwrap_or_default();
        let (emails, ids): (Vec<String>, Vec<String>) = request
            .profiles
            .iter()
            .cloned()
            .partition(|p| p.contains('@'));
        let mut profiles = self
            .engine
            .klaviyo
            .get_profiles(&key, &ids)
            .await
            .map_err(ApiError::from)?;
        if !emails.is_empty() {
            profiles.extend(
                self.engine
                    .klaviyo
                    .find_profiles_by_email(&key, &emails)
                    .await
                    .map_err(ApiError::from)?,
            );
        }
        // Which requested entry each profile answers (by id or email), before the data is used.
        let requested_of = |p: &Value| -> Option<String> {
            let id = p.get("id").and_then(Value::as_str)?;
            let email = p
                .pointer("/attributes/email")
                .and_then(Value::as_str)
                .unwrap_or_default();
            request
                .profiles
                .iter()
                .find(|r| r.as_str() == id || r.eq_ignore_ascii_case(email))
                .cloned()
        };
        let mut requested_by_id = std::collections::HashMap::new();
        for p in &profiles {
            if let (Some(id), Some(requested)) =
                (p.get("id").and_then(Value::as_str), requested_of(p))
            {
                requested_by_id.insert(id.to_owned(), requested);
            }
        }
        let job = Job {
            merchant,
            key: &key,
            settings: &settings,
            brief: &request.brief,
            run: None,
        };
        let generation = self
            .engine
            .generate(&job, profiles)
            .await
            .map_err(|e| match e {
                EngineError::NoCatalog => ApiError::NotConnected("Shopify catalog"),
                EngineError::Klaviyo(k) => ApiError::from(k),
                other => ApiError::Internal(other.to_string()),
            })?;
        let mut out: Vec<PreviewProfile> = generation
            .results
            .iter()
            .map(|r| {
                preview_profile(
                    requested_by_id
                        .get(&r.profile_id)
                        .cloned()
                        .unwrap_or_default(),
                    r,
                )
            })
            .collect();
        for requested in &request.profiles {
            if !requested_by_id.values().any(|r| r == requested) {
                out.push(PreviewProfile {
                    requested: requested.clone(),
                    profile_id: None,
                    outcome: "skipped".into(),
                    reason: Some(SkipReason::ProfileNotFound.as_str().into()),
                    first_name: None,
                    history: String::new(),
                    candidates: Vec::new(),
                    copy: None,
                    grounding: Grounding {
                        passed: false,
                        repaired: false,
                        findings: Vec::new(),
                    },
                });
            }
        }
        // Answer in the order asked.
        out.sort_by_key(|p| {
            request
                .profiles
                .iter()
                .position(|r| *r == p.requested)
                .unwrap_or(usize::MAX)
        });
        let prices = ModelPrices::for_model(&self.config.bedrock_model_id);
        Ok(PreviewResponse {
            profiles: out,
            estimated_cost_usd: generation.tokens.usd(&prices),
            tokens: generation.tokens,
        })
    }
}

/// Every profile of a batch in one bucket.
fn pending_as(ids: &[String], outcome: Outcome) -> BatchTally {
    let mut tally = BatchTally::default();
    tally.counts.add_n(&outcome, ids.len() as u64);
    tally
}

/// The write-back was refused outright: nothing of the batch's writes landed.
fn move_all_to_failed(tally: &mut BatchTally, n: usize) {
    tally.counts.written = 0;
    tally.counts.holdout = 0;
    tally
        .counts
        .add_n(&Outcome::Failed(FailReason::Klaviyo), n as u64);
}

fn outcome_parts(outcome: &Outcome) -> (String, Option<String>) {
    match outcome {
        Outcome::Written => ("written".into(), None),
        Outcome::Holdout => ("holdout".into(), None),
        Outcome::Skipped(r) => ("skipped".into(), Some(r.as_str().into())),
        Outcome::Failed(r) => ("failed".into(), Some(r.as_str().into())),
    }
}

pub fn preview_profile(requested: String, r: &ProfileResult) -> PreviewProfile {
    let (outcome, reason) = outcome_parts(&r.outcome);
    PreviewProfile {
        requested,
        profile_id: Some(r.profile_id.clone()),
        outcome,
        reason,
        first_name: r.first_name.clone(),
        history: r.history_summary.clone(),
        candidates: r
            .candidates
            .iter()
            .map(RenderedProduct::from_catalog)
            .collect(),
        copy: r.copy.clone(),
        grounding: Grounding {
            passed: r.copy.is_some(),
            repaired: r.repaired,
            findings: r
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.rule(), f.message()))
                .collect(),
        },
    }
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if event.get("Records").is_some() {
            let event: SqsEvent = parse_event(event, "SQS")?;
            let dead = event
                .records
                .first()
                .and_then(|r| r.event_source_arn.as_deref())
                .is_some_and(|arn| {
                    !self.config.work_dlq_arn.is_empty() && arn == self.config.work_dlq_arn
                });
            let response = sqs::for_each_record(event, BATCHES_IN_FLIGHT, |record| {
                self.handle_record(record, dead)
            })
            .await;
            return Ok(serde_json::to_value(response)?);
        }
        Err("personalize-worker takes SQS events only (work batches and their dead letters)".into())
    }
}
