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
use shared::aws::runs::{BatchClaim, BatchTally, RecordedWrite, RunStore};
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, KlaviyoApiKey, MerchantId, Vendor};
use shared::edge::{function::parse_event, sqs, Function, FunctionError};
use shared::error::ApiError;
use shared::klaviyo::{retry_read_until, ImportStatus, KlaviyoError};
use shared::personalize::copy::RenderedProduct;
use shared::personalize::run::{Run, WorkBatch, WriteBackCheck, WriteCode, WriteOutcomes};
use shared::personalize::{FailReason, ModelPrices, Outcome, SkipReason};
use shared::Config;
use std::collections::HashSet;
use std::time::Duration;

/// Batches processed at once per container (each one is already concurrent inside).
const BATCHES_IN_FLIGHT: usize = 3;
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

    /// When a batch started at `started` must be handed back.
    fn deadline(&self, started: std::time::Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(started)
            + Duration::from_millis(self.config.worker_time_budget_ms)
    }

    /// Until when throttled reads are retried in place: half the budget, leaving the rest for
    /// the model and the write.
    fn read_deadline(&self, started: std::time::Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(started)
            + Duration::from_millis(self.config.worker_time_budget_ms / 2)
    }

    /// A crash point (`shared::faults`): a no-op unless a test armed it.
    fn crash_point(&self, name: &str) -> Result<(), FunctionError> {
        Ok(shared::faults::point(
            self.config.fault_scope.as_deref(),
            name,
        )?)
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
    /// write-back an earlier delivery started is finished, never written again.
    pub async fn process_batch(&self, batch: &WorkBatch) -> Result<(), FunctionError> {
        let started = std::time::Instant::now();
        let merchant = &batch.merchant_id;
        let Some(run) = self.runs.get(merchant, &batch.run_id).await? else {
            tracing::info!(run_id = %batch.run_id, "run no longer exists; batch dropped");
            return Ok(());
        };
        if let Some(check) = batch.write_back_check {
            return self.check_write_back(batch, check, started).await;
        }
        let claim = self
            .runs
            .claim_batch(&batch.run_id, batch.batch, self.config.batch_lease_secs)
            .await?;
        self.crash_point("worker.batch_claimed")?;
        let key = self.klaviyo_key(merchant).await?;
        let tally = match claim {
            // Counted already; whoever counted it may have died before completing the run.
            BatchClaim::Done => return self.complete_run_if_accounted(batch).await,
            BatchClaim::Busy => {
                // Another delivery holds it (a duplicate message, or a redelivery while the
                // first is alive): look again once its lease could have run out, without
                // spending one of the message's receives on the wait.
                let delay = self.config.batch_lease_secs.clamp(1, 900) as u32;
                self.work_queues.send(batch, delay).await?;
                return Ok(());
            }
            BatchClaim::Resume(write) => match (&key, &write.job_id) {
                (None, _) => {
                    pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled))
                }
                (Some(_), Some(_)) => {
                    // The job exists: the follow-up path looks at it (and counts once).
                    return self
                        .send_write_back_check(batch, WriteBackCheck { checks: 0 })
                        .await;
                }
                (Some(key), None) => match self
                    .settle_uncertain_write(batch, &run, key, &write)
                    .await?
                {
                    Some(tally) => tally,
                    // Nothing of it landed: no job was made. Write as a fresh batch would.
                    None => return self.write_fresh(batch, &run, key, started).await,
                },
            },
            BatchClaim::Fresh => match &key {
                None => pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled)),
                Some(key) => return self.write_fresh(batch, &run, key, started).await,
            },
        };
        self.count(batch, &tally, started).await
    }

    /// Personalize (or, for a cancelled run, clear) a batch and submit its write-back, holding
    /// the batch's lease while working.
    async fn write_fresh(
        &self,
        batch: &WorkBatch,
        run: &Run,
        key: &KlaviyoApiKey,
        started: std::time::Instant,
    ) -> Result<(), FunctionError> {
        let work = self.personalize_and_write(batch, run, key, started);
        tokio::pin!(work);
        let renew_every = Duration::from_secs((self.config.batch_lease_secs / 3).max(1) as u64);
        let deadline = self.deadline(started);
        let written = loop {
            tokio::select! {
                result = &mut work => break result?,
                _ = tokio::time::sleep_until(deadline) => {
                    // Out of time before the Lambda's: give the batch back now rather than be
                    // killed and wait out the queue's visibility timeout. Whatever it recorded
                    // (a write intent, a job) the next delivery finishes; the lease is let go.
                    tracing::warn!(run_id = %batch.run_id, batch = batch.batch, "batch out of time; handed back");
                    self.runs.release_lease(&batch.run_id, batch.batch).await?;
                    self.work_queues.send(batch, 0).await?;
                    return Ok(());
                }
                _ = tokio::time::sleep(renew_every) => {
                    if let Err(e) = self.runs.renew_lease(&batch.run_id, batch.batch, self.config.batch_lease_secs).await {
                        tracing::warn!(error = %e, "could not renew the batch lease");
                    }
                }
            }
        };
        match written {
            Written::Counted(tally) => self.count(batch, &tally, started).await,
            Written::Submitted => {
                // The container moves on; the follow-up counts the batch.
                self.send_write_back_check(batch, WriteBackCheck { checks: 0 })
                    .await?;
                self.crash_point("worker.follow_up_sent")
            }
        }
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
            self.crash_point("worker.batch_counted")?;
            if self.runs.complete_if_accounted(merchant, &after).await? {
                tracing::info!(run_id = %batch.run_id, "run completed");
            }
        }
        let throttled =
            self.engine.klaviyo.usage().throttled + self.engine.bedrock.usage_totals().throttled;
        shared::metrics::batch(tally, throttled, started.elapsed());
        Ok(())
    }

    /// A batch found counted: complete its run if that was the last one (the delivery that
    /// counted it may have died before it could).
    async fn complete_run_if_accounted(&self, batch: &WorkBatch) -> Result<(), FunctionError> {
        if let Some(run) = self.runs.get(&batch.merchant_id, &batch.run_id).await? {
            self.runs
                .complete_if_accounted(&batch.merchant_id, &run)
                .await?;
        }
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
        check: WriteBackCheck,
        started: std::time::Instant,
    ) -> Result<(), FunctionError> {
        let Some(write) = self.runs.recorded_write(&batch.run_id, batch.batch).await? else {
            // Counted already (a redelivered follow-up).
            return self.complete_run_if_accounted(batch).await;
        };
        let Some(job_id) = write.job_id.clone() else {
            return Err("a follow-up for a batch whose write-back job is not recorded".into());
        };
        let Some(key) = self.klaviyo_key(&batch.merchant_id).await? else {
            // Disconnected meanwhile: the job may or may not have landed; nobody can look.
            let tally = pending_as(&batch.profile_ids, Outcome::Skipped(SkipReason::Cancelled));
            return self.count(batch, &tally, started).await;
        };
        let mut pending = write.pending.clone();
        *pending
            .requests
            .entry("klaviyo_bulk_import_job".into())
            .or_default() += 1;
        let job = self.engine.klaviyo.bulk_import_job(&key, &job_id).await?;
        self.crash_point("worker.job_polled")?;
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
        let outcomes = WriteOutcomes::parse(&write.outcomes);
        let tally = self
            .account_import(&key, &job_id, &job, pending, &batch.profile_ids, &outcomes)
            .await?;
        self.count(batch, &tally, started).await
    }

    /// A write-back whose job creation may or may not have happened (the worker died in
    /// between, or Klaviyo's answer was lost). Once every import job created since is final,
    /// the profiles tell: those carrying this run's id were written. `None` when none of them
    /// was (so no job was made and the batch may be written afresh).
    async fn settle_uncertain_write(
        &self,
        batch: &WorkBatch,
        run: &Run,
        key: &KlaviyoApiKey,
        write: &RecordedWrite,
    ) -> Result<Option<BatchTally>, FunctionError> {
        // A little slack for clock skew between our clock and Klaviyo's.
        if self
            .engine
            .klaviyo
            .import_jobs_unfinished_since(key, write.intent_at - 5)
            .await?
        {
            return Err(
                "an import job that may be this batch's is still running; retry later".into(),
            );
        }
        let outcomes = WriteOutcomes::parse(&write.outcomes);
        let ids: Vec<String> = outcomes
            .written_ids(&batch.profile_ids)
            .into_iter()
            .cloned()
            .collect();
        let profiles = self.engine.klaviyo.get_profiles(key, &ids).await?;
        // This write's profiles carry the run's id and the write's own time (a retry writes as
        // the original run, whose older write the time tells apart).
        let (run_key, at_key) = (
            run.property_set.key("run_id"),
            run.property_set.key("generated_at"),
        );
        let at = shared::domain::rfc3339(write.intent_at);
        let landed: HashSet<&str> = profiles
            .iter()
            .filter(|p| {
                let props = p.pointer("/attributes/properties");
                let prop = |k: &str| props.and_then(|props| props.get(k)).and_then(Value::as_str);
                prop(&run_key) == Some(run.written_run_id()) && prop(&at_key) == Some(at.as_str())
            })
            .filter_map(|p| p.get("id").and_then(Value::as_str))
            .collect();
        if landed.is_empty() {
            tracing::info!(run_id = %batch.run_id, batch = batch.batch, "uncertain write-back never landed; writing afresh");
            return Ok(None);
        }
        let mut tally = write.pending.clone();
        for id in &ids {
            if !landed.contains(id.as_str()) {
                charge_import_error(&mut tally, outcomes.code_of(&batch.profile_ids, id), id);
            }
        }
        Ok(Some(tally))
    }

    async fn personalize_and_write(
        &self,
        batch: &WorkBatch,
        run: &Run,
        key: &KlaviyoApiKey,
        started: std::time::Instant,
    ) -> Result<Written, FunctionError> {
        let merchant = &batch.merchant_id;
        let mut tally = BatchTally::default();
        // Each id once: an audience page can repeat a member.
        let mut seen = HashSet::new();
        let unique: Vec<String> = batch
            .profile_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .cloned()
            .collect();
        tally.counts.add_n(
            &Outcome::Skipped(SkipReason::DuplicateId),
            (batch.profile_ids.len() - unique.len()) as u64,
        );
        // What each profile ends as (and is written as), by id.
        let plan: Vec<(String, Outcome, Option<&shared::personalize::ValidCopy>)>;
        let generation;
        if run.state.is_terminal() {
            // Cancelled before this batch: clear the set on its profiles so no older copy stays.
            plan = unique
                .iter()
                .map(|id| (id.clone(), Outcome::Skipped(SkipReason::Cancelled), None))
                .collect();
        } else {
            let settings = self.runs.settings(merchant).await?.unwrap_or_default();
            *tally.requests.entry("klaviyo_profiles".into()).or_default() +=
                unique.len().div_ceil(100) as u64;
            let read_deadline = self.read_deadline(started);
            let read = || self.engine.klaviyo.get_profiles(key, &unique);
            let profiles = match retry_read_until(read_deadline, read).await {
                Ok(p) => p,
                // Still throttled or unavailable at the deadline: hand it to SQS (the DLQ counts
                // it if it never works).
                Err(err @ (KlaviyoError::Throttled { .. } | KlaviyoError::Transient(_))) => {
                    return Err(Box::new(err))
                }
                Err(_) => {
                    tally
                        .counts
                        .add_n(&Outcome::Failed(FailReason::Klaviyo), unique.len() as u64);
                    tally.failed_ids.extend(unique.iter().cloned());
                    return Ok(Written::Counted(tally));
                }
            };
            self.crash_point("worker.profiles_read")?;
            // Only the ids asked for: a merged profile answers under its surviving id, which
            // belongs to no batch of ours (the asked id is then not found).
            let asked: HashSet<&str> = unique.iter().map(String::as_str).collect();
            let profiles: Vec<Value> = profiles
                .into_iter()
                .filter(|p| {
                    p.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| asked.contains(id))
                })
                .collect();
            let found: HashSet<String> = profiles
                .iter()
                .filter_map(|p| p.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            let missing = unique.iter().filter(|id| !found.contains(*id)).count() as u64;
            tally
                .counts
                .add_n(&Outcome::Skipped(SkipReason::ProfileNotFound), missing);

            let job = Job {
                merchant,
                key,
                settings: &settings,
                brief: &run.brief,
                offer: &run.offer,
                run: Some((run.written_run_id(), run.holdout_percent)),
                read_deadline: Some(read_deadline),
                carts: None,
            };
            generation = match self.engine.generate(&job, profiles).await {
                Ok(g) => g,
                Err(EngineError::NoCatalog) => {
                    tally.counts.add_n(
                        &Outcome::Skipped(SkipReason::NoCandidates),
                        found.len() as u64,
                    );
                    return Ok(Written::Counted(tally));
                }
                Err(err) => return Err(Box::new(err)),
            };
            self.crash_point("worker.generated")?;
            tally.tokens = generation.tokens;
            for (k, v) in &generation.requests {
                *tally.requests.entry(k.clone()).or_default() += v;
            }
            plan = generation
                .results
                .iter()
                .map(|r| (r.profile_id.clone(), r.outcome, r.copy.as_ref()))
                .collect();
        }

        let generated_at = now_unix();
        let set = &run.property_set;
        let mut writes: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut codes = std::collections::HashMap::new();
        for (id, outcome, copy) in &plan {
            let properties = match (outcome, copy) {
                (Outcome::Written, Some(copy)) => {
                    set.copy_properties(copy, run.written_run_id(), generated_at)
                }
                (Outcome::Written, None) => continue, // cannot happen: written copy is valid copy
                (other, _) => set.cleared_properties(run.written_run_id(), generated_at, other),
            };
            writes.push((id.clone(), properties));
            codes.insert(id.as_str(), WriteCode::for_outcome(outcome));
            // Counted as planned; a failed import moves it later.
            tally.counts.add(outcome);
            if matches!(outcome, Outcome::Failed(_)) {
                tally.failed_ids.push(id.clone());
            }
        }
        if writes.is_empty() {
            return Ok(Written::Counted(tally));
        }
        // Positions in the batch message; a repeated id is written at its first position only.
        let mut first = HashSet::new();
        let outcomes = WriteOutcomes::new(batch.profile_ids.iter().map(|id| {
            if first.insert(id.as_str()) {
                codes
                    .get(id.as_str())
                    .copied()
                    .unwrap_or(WriteCode::Nothing)
            } else {
                WriteCode::Nothing
            }
        }));
        *tally
            .requests
            .entry("klaviyo_bulk_import".into())
            .or_default() += 1;
        // What the write-back adds if it succeeds, recorded before the job exists so a later
        // delivery finishes this write (or learns it never happened) instead of writing again.
        self.runs
            .record_write_intent(
                &batch.run_id,
                batch.batch,
                outcomes.as_str(),
                &tally,
                generated_at,
            )
            .await?;
        self.crash_point("worker.write_intent_recorded")?;
        let job_id = match self.engine.klaviyo.start_bulk_import(key, &writes).await {
            Ok(id) => id,
            // Not made (throttled, or refused before sending), or perhaps made: either way a
            // redelivery settles it by looking, never by writing blindly.
            Err(
                err @ (KlaviyoError::Throttled { .. }
                | KlaviyoError::Transient(_)
                | KlaviyoError::MaybeApplied(_)),
            ) => return Err(Box::new(err)),
            Err(err) => {
                tracing::warn!(error = %err, "bulk import refused");
                for (id, outcome, _) in &plan {
                    charge_import_error(&mut tally, WriteCode::for_outcome(outcome), id);
                }
                return Ok(Written::Counted(tally));
            }
        };
        self.crash_point("worker.import_created")?;
        self.runs
            .record_write_job(&batch.run_id, batch.batch, &job_id)
            .await?;
        self.crash_point("worker.import_recorded")?;
        Ok(Written::Submitted)
    }

    /// Move the profiles a finished write-back job could not write to `failed: klaviyo`; a
    /// failed clear leaves its skipped or failed profile where it was.
    async fn account_import(
        &self,
        key: &KlaviyoApiKey,
        job_id: &str,
        job: &shared::klaviyo::BulkImportJob,
        mut tally: BatchTally,
        ids: &[String],
        outcomes: &WriteOutcomes,
    ) -> Result<BatchTally, FunctionError> {
        if job.status != ImportStatus::Complete {
            // The whole job failed or was cancelled: nothing of it landed.
            for id in outcomes.written_ids(ids) {
                charge_import_error(&mut tally, outcomes.code_of(ids, id), id);
            }
            return Ok(tally);
        }
        if job.failed_count == 0 {
            return Ok(tally);
        }
        *tally
            .requests
            .entry("klaviyo_bulk_import_errors".into())
            .or_default() += 1;
        let errors = self.engine.klaviyo.bulk_import_errors(key, job_id).await?;
        self.crash_point("worker.import_errors_read")?;
        let mut unnamed = job.failed_count;
        for error in &errors {
            if let Some(id) = &error.profile_id {
                charge_import_error(&mut tally, outcomes.code_of(ids, id), id);
                unnamed = unnamed.saturating_sub(1);
            }
        }
        // Errors that name no profile: charged to copy first, then holdouts (the worst case);
        // which profile failed is unknown, so a retry cannot pick it up.
        for _ in 0..unnamed {
            let code = if tally.counts.written > 0 {
                WriteCode::Copy
            } else {
                WriteCode::Holdout
            };
            charge_import_error(&mut tally, code, "");
        }
        Ok(tally)
    }

    /// A batch in the dead-letter queue: what its recorded write-back wrote is counted as such,
    /// and every other profile fails with `dead_letter`.
    async fn dead_letter(&self, batch: &WorkBatch) -> Result<(), FunctionError> {
        let merchant = &batch.merchant_id;
        let write = self.runs.recorded_write(&batch.run_id, batch.batch).await?;
        let key = self.klaviyo_key(merchant).await?;
        let tally = match (write, key) {
            (Some(write), Some(key)) if write.job_id.is_some() => {
                let job_id = write.job_id.clone().unwrap_or_default();
                let job = self.engine.klaviyo.bulk_import_job(&key, &job_id).await?;
                if !job.status.is_final() {
                    return self
                        .send_write_back_check(batch, WriteBackCheck { checks: 0 })
                        .await;
                }
                let outcomes = WriteOutcomes::parse(&write.outcomes);
                let tally = self
                    .account_import(
                        &key,
                        &job_id,
                        &job,
                        write.pending.clone(),
                        &batch.profile_ids,
                        &outcomes,
                    )
                    .await?;
                dead_letter_rest(tally, &batch.profile_ids, &outcomes)
            }
            (Some(write), Some(key)) => {
                let Some(run) = self.runs.get(merchant, &batch.run_id).await? else {
                    return Ok(());
                };
                match self
                    .settle_uncertain_write(batch, &run, &key, &write)
                    .await?
                {
                    Some(tally) => dead_letter_rest(
                        tally,
                        &batch.profile_ids,
                        &WriteOutcomes::parse(&write.outcomes),
                    ),
                    None => pending_as(&batch.profile_ids, Outcome::Failed(FailReason::DeadLetter)),
                }
            }
            _ => pending_as(&batch.profile_ids, Outcome::Failed(FailReason::DeadLetter)),
        };
        if let Some(after) = self
            .runs
            .complete_batch(merchant, &batch.run_id, batch.batch, &tally)
            .await?
        {
            tracing::warn!(run_id = %batch.run_id, batch = batch.batch, "batch counted from the dead-letter queue");
            self.runs.complete_if_accounted(merchant, &after).await?;
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

/// Profile `id`'s write did not land: copy and holdouts move to `failed: klaviyo` (and may be
/// retried); a failed clear leaves its skipped or failed profile where it was.
fn charge_import_error(tally: &mut BatchTally, code: WriteCode, id: &str) {
    let bucket = match code {
        WriteCode::Copy => &mut tally.counts.written,
        WriteCode::Holdout => &mut tally.counts.holdout,
        WriteCode::Cleared | WriteCode::Nothing => return,
    };
    if *bucket > 0 {
        *bucket -= 1;
        tally.counts.add(&Outcome::Failed(FailReason::Klaviyo));
        if !id.is_empty() {
            tally.failed_ids.push(id.to_owned());
        }
    }
}

/// A dead-lettered batch whose recorded write was settled: profiles the write did not cover
/// (none, when the tally covers the batch) fail with `dead_letter`.
fn dead_letter_rest(mut tally: BatchTally, ids: &[String], outcomes: &WriteOutcomes) -> BatchTally {
    let rest = (ids.len() as u64).saturating_sub(tally.counts.accounted());
    tally
        .counts
        .add_n(&Outcome::Failed(FailReason::DeadLetter), rest);
    let mut seen = HashSet::new();
    let unwritten = ids
        .iter()
        .filter(|id| seen.insert(id.as_str()) && outcomes.code_of(ids, id) == WriteCode::Nothing)
        .take(rest as usize)
        .cloned();
    tally.failed_ids.extend(unwritten);
    tally
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
        if let Err(errors) = request.offer.validate() {
            return Err(ApiError::InvalidRequest(errors.join("; ")));
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
        // Customers go to the model in the order asked (C1 is the first profile named).
        profiles.sort_by_key(|p| {
            requested_of(p)
                .and_then(|r| request.profiles.iter().position(|x| *x == r))
                .unwrap_or(usize::MAX)
        });
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
            offer: &request.offer,
            run: None,
            read_deadline: None,
            carts: None,
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
    if matches!(outcome, Outcome::Failed(_)) {
        tally.failed_ids = ids.to_vec();
    }
    tally
}

fn outcome_parts(outcome: &Outcome) -> (String, Option<String>) {
    let label = match outcome {
        Outcome::Written => "written",
        Outcome::Holdout => "holdout",
        Outcome::Skipped(_) => "skipped",
        Outcome::Failed(_) => "failed",
    };
    (label.into(), outcome.reason().map(str::to_owned))
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
