//! Runs, settings and batch idempotency in the app table. Counters are separate numeric
//! attributes so every worker adds to them with an atomic `ADD`; a batch is counted exactly once
//! because its "done" mark and the run's counters change in one transaction.

use super::dynamo::{from_item, get_item, merchant_pk, to_item, Item};
use super::{describe, is_condition_failure, written, AwsError};
use crate::domain::{now_unix, MerchantId};
use crate::personalize::accounting::{Cost, RunCounts, RunState};
use crate::personalize::run::Run;
use crate::personalize::settings::Settings;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};

/// Batch markers outlive any redelivery (SQS keeps messages at most 14 days).
const BATCH_TTL_SECS: i64 = 15 * 24 * 3600;

#[derive(Clone)]
pub struct RunStore {
    client: Client,
    table: String,
}

/// What one batch adds to its run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchTally {
    pub counts: RunCounts,
    pub tokens: Cost,
    /// Requests by `vendor_endpoint` (e.g. `klaviyo_events`, `bedrock_converse`).
    pub requests: BTreeMap<String, u64>,
    /// Klaviyo ids of the batch's failed profiles (ids only), kept with the batch so the
    /// merchant can retry them (`POST /runs/{id}/retry`).
    pub failed_ids: Vec<String>,
}

fn ids_value(ids: &[String]) -> AttributeValue {
    AttributeValue::L(ids.iter().map(s).collect())
}

fn ids_of_item(item: &Item, attr: &str) -> Vec<String> {
    item.get(attr)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

/// How a worker finds a batch it was handed.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchClaim {
    /// Never started (or its last worker's lease ran out before it wrote anything).
    Fresh,
    /// A previous delivery got as far as its write-back (it may or may not have created the
    /// job): finish that instead of writing again.
    Resume(Box<RecordedWrite>),
    /// Already counted: nothing to do.
    Done,
    /// Another worker holds an unexpired lease on it.
    Busy,
}

/// What a worker recorded before creating a batch's write-back job, and the job once created.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedWrite {
    /// The job, once its creation was answered. `None`: the creation may or may not have
    /// happened (the worker died, or the answer was lost): look before writing again.
    pub job_id: Option<String>,
    /// When the write was about to be submitted (unix seconds).
    pub intent_at: i64,
    /// One letter per profile id of the batch, in order: what the write-back does for it
    /// ([`crate::personalize::run::WriteOutcomes`]).
    pub outcomes: String,
    /// What the batch adds to its run if every write lands.
    pub pending: BatchTally,
}

impl RecordedWrite {
    fn from_item(item: &Item) -> Option<Self> {
        let intent_at = item
            .get("intent_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())?;
        Some(Self {
            job_id: item.get("job_id").and_then(|v| v.as_s().ok()).cloned(),
            intent_at,
            outcomes: item
                .get("outcomes")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            pending: tally_from_item(item),
        })
    }
}

/// Holds the one live run of each property set of a merchant.
fn set_lock_sk(set: &crate::personalize::PropertySet) -> String {
    format!("PROPSET#{}", set.as_str())
}
/// The partition listing live runs for the watchdog (ids only).
const LIVE_PK: &str = "LIVERUNS";
fn live_sk(merchant: &MerchantId, run_id: &str) -> String {
    format!("{}#{run_id}", merchant.as_str())
}
/// The watchdog's entry for a run (deleted with the run when the account goes).
pub fn live_run_key(merchant: &MerchantId, run_id: &str) -> (String, String) {
    (LIVE_PK.to_owned(), live_sk(merchant, run_id))
}
fn page_key(run_id: &str, batch: u64) -> (String, String) {
    (format!("RUNBATCH#{run_id}"), format!("PAGE#{batch:010}"))
}
/// A claimed page's ids are kept only until its work message is sent.
const PAGE_TTL_SECS: i64 = 24 * 3600;

/// A run state as stored (`"running"`…).
fn state_text(st: RunState) -> String {
    serde_json::to_value(st)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn run_sk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}
fn batch_key(run_id: &str, batch: u64) -> (String, String) {
    (format!("RUNBATCH#{run_id}"), format!("BATCH#{batch:010}"))
}

/// Attribute names of the counters: `c_written`, `c_skipped_no_candidates`, `t_input`, `r_klaviyo_events`…
fn counter_attrs(tally: &BatchTally) -> Vec<(String, u64)> {
    let c = &tally.counts;
    let mut attrs = vec![
        ("c_total".to_owned(), c.total),
        ("c_written".to_owned(), c.written),
        ("c_holdout".to_owned(), c.holdout),
        ("t_input".to_owned(), tally.tokens.input_tokens),
        ("t_output".to_owned(), tally.tokens.output_tokens),
        ("t_cache_read".to_owned(), tally.tokens.cache_read_tokens),
        ("t_cache_write".to_owned(), tally.tokens.cache_write_tokens),
        (
            "t_gr_content".to_owned(),
            tally.tokens.guardrail_content_units,
        ),
        (
            "t_gr_grounding".to_owned(),
            tally.tokens.guardrail_grounding_units,
        ),
    ];
    attrs.extend(
        c.skipped
            .iter()
            .map(|(k, v)| (format!("c_skipped_{k}"), *v)),
    );
    attrs.extend(c.failed.iter().map(|(k, v)| (format!("c_failed_{k}"), *v)));
    attrs.extend(tally.requests.iter().map(|(k, v)| (format!("r_{k}"), *v)));
    attrs.retain(|(_, v)| *v > 0);
    attrs
}

fn tally_from_item(item: &Item) -> BatchTally {
    let mut tally = BatchTally {
        failed_ids: ids_of_item(item, "failed_ids"),
        ..Default::default()
    };
    for (name, value) in item {
        let Some(v) = value.as_n().ok().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        match name.as_str() {
            "c_total" => tally.counts.total = v,
            "c_written" => tally.counts.written = v,
            "c_holdout" => tally.counts.holdout = v,
            "t_input" => tally.tokens.input_tokens = v,
            "t_output" => tally.tokens.output_tokens = v,
            "t_cache_read" => tally.tokens.cache_read_tokens = v,
            "t_cache_write" => tally.tokens.cache_write_tokens = v,
            "t_gr_content" => tally.tokens.guardrail_content_units = v,
            "t_gr_grounding" => tally.tokens.guardrail_grounding_units = v,
            other => {
                if let Some(reason) = other.strip_prefix("c_skipped_") {
                    tally.counts.skipped.insert(reason.to_owned(), v);
                } else if let Some(reason) = other.strip_prefix("c_failed_") {
                    tally.counts.failed.insert(reason.to_owned(), v);
                } else if let Some(endpoint) = other.strip_prefix("r_") {
                    tally.requests.insert(endpoint.to_owned(), v);
                }
            }
        }
    }
    tally
}

/// An `ADD a :a, b :b` expression with its values.
fn add_expression(
    attrs: &[(String, u64)],
    prefix: &str,
) -> (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
) {
    let mut parts = Vec::new();
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    for (i, (attr, v)) in attrs.iter().enumerate() {
        names.insert(format!("#{prefix}{i}"), attr.clone());
        values.insert(format!(":{prefix}{i}"), n(v));
        parts.push(format!("#{prefix}{i} :{prefix}{i}"));
    }
    (parts.join(", "), names, values)
}

fn run_from_item(item: Item) -> Result<Run, AwsError> {
    let tally = tally_from_item(&item);
    let mut plain: Item = item
        .into_iter()
        .filter(|(k, _)| !k.starts_with("c_") && !k.starts_with("t_") && !k.starts_with("r_"))
        .collect();
    // The record's nested fields are rebuilt from the counters above.
    plain.insert("counts".into(), AttributeValue::M(HashMap::new()));
    plain.insert("tokens".into(), AttributeValue::M(HashMap::new()));
    let mut run: Run = from_item(plain)?;
    run.counts = tally.counts;
    run.tokens = tally.tokens;
    run.requests = tally.requests;
    Ok(run)
}

impl RunStore {
    pub fn from_sdk(aws: &super::Aws, table: impl Into<String>) -> Self {
        Self {
            client: aws.dynamodb(),
            table: table.into(),
        }
    }

    fn err<E, R>(op: &'static str) -> impl Fn(aws_sdk_dynamodb::error::SdkError<E, R>) -> AwsError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        move |e| AwsError::new(op, describe(&e))
    }

    pub async fn settings(&self, merchant: &MerchantId) -> Result<Option<Settings>, AwsError> {
        let item = get_item(&self.client, &self.table, merchant_pk(merchant), "SETTINGS").await?;
        item.map(from_item).transpose()
    }

    pub async fn put_settings(
        &self,
        merchant: &MerchantId,
        settings: &Settings,
    ) -> Result<(), AwsError> {
        let mut item = to_item(settings)?;
        item.insert("pk".into(), s(merchant_pk(merchant)));
        item.insert("sk".into(), s("SETTINGS"));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(Self::err("dynamodb:PutItem"))?;
        Ok(())
    }

    /// Record a new run, taking its property set: `Ok(Err(holder))` when another live run of
    /// the merchant writes the same set (two runs must never interleave their writes).
    pub async fn create(
        &self,
        merchant: &MerchantId,
        run: &Run,
    ) -> Result<Result<(), String>, AwsError> {
        let pk = merchant_pk(merchant);
        let lock_sk = set_lock_sk(&run.property_set);
        let holder = get_item(&self.client, &self.table, pk.clone(), &lock_sk)
            .await?
            .and_then(|i| i.get("run_id").and_then(|v| v.as_s().ok()).cloned());
        if let Some(holder) = &holder {
            let live = self
                .get(merchant, holder)
                .await?
                .is_some_and(|r| !r.state.is_terminal());
            if live {
                return Ok(Err(holder.clone()));
            }
        }
        let mut item = to_item(&serde_json::json!({
            "run_id": run.run_id, "state": run.state, "audience": run.audience, "brief": run.brief,
            "offer": run.offer, "holdout_percent": run.holdout_percent, "profile_cap": run.profile_cap, "review": run.review,
            "property_set": run.property_set, "retry_of": run.retry_of, "written_as": run.written_as,
            "fanout_done": false, "batches": 0,
            "created_at": run.created_at, "progress_at": run.created_at, "c_total": 0,
        }))?;
        item.insert("pk".into(), s(&pk));
        item.insert("sk".into(), s(run_sk(&run.run_id)));
        let put = |item: Item, condition: &str| {
            aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .build()
                .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))
        };
        let run_put = put(item, "attribute_not_exists(pk)")?;
        let lock_item: Item = [
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s(&lock_sk)),
            ("run_id".to_owned(), s(&run.run_id)),
        ]
        .into();
        let lock_put = match &holder {
            None => put(lock_item, "attribute_not_exists(pk)")?,
            Some(prev) => aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(lock_item))
                .condition_expression("run_id = :prev")
                .expression_attribute_values(":prev", s(prev))
                .build()
                .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?,
        };
        let live_item: Item = [
            ("pk".to_owned(), s(LIVE_PK)),
            ("sk".to_owned(), s(live_sk(merchant, &run.run_id))),
        ]
        .into();
        let live_put = put(live_item, "attribute_not_exists(pk)")?;
        let items = [run_put, lock_put, live_put]
            .into_iter()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .collect();
        // Refused: another run took the set between our read and our write.
        Ok(if self.transact(items).await? {
            Ok(())
        } else {
            Err(holder.unwrap_or_default())
        })
    }

    /// One transaction: `false` when a condition refused it (nothing was written).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, AwsError> {
        super::dynamo::transact(&self.client, items).await
    }

    /// Every run the watchdog should look at: `(merchant, run_id)`.
    pub async fn live_runs(&self) -> Result<Vec<(MerchantId, String)>, AwsError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(LIVE_PK))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(Self::err("dynamodb:Query"))?;
            for item in page.items.unwrap_or_default() {
                let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if let Some((m, r)) = sk.rsplit_once('#') {
                    if let Ok(m) = MerchantId::parse(m) {
                        out.push((m, r.to_owned()));
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// The run is finished (or gone): the watchdog stops looking at it.
    pub async fn forget_live(&self, merchant: &MerchantId, run_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(LIVE_PK))
            .key("sk", s(live_sk(merchant, run_id)))
            .send()
            .await
            .map_err(Self::err("dynamodb:DeleteItem"))?;
        Ok(())
    }

    pub async fn get(&self, merchant: &MerchantId, run_id: &str) -> Result<Option<Run>, AwsError> {
        let item = get_item(
            &self.client,
            &self.table,
            merchant_pk(merchant),
            &run_sk(run_id),
        )
        .await?;
        item.map(run_from_item).transpose()
    }

    /// The merchant's runs, newest first (run ids are ULIDs, so they sort by time).
    pub async fn list(&self, merchant: &MerchantId, limit: i32) -> Result<Vec<Run>, AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :run)")
            .expression_attribute_values(":pk", s(merchant_pk(merchant)))
            .expression_attribute_values(":run", s("RUN#"))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(Self::err("dynamodb:Query"))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(run_from_item)
            .collect()
    }

    /// Move the run to `to` if it is in one of `from`; returns false when it was not.
    pub async fn transition(
        &self,
        merchant: &MerchantId,
        run_id: &str,
        from: &[RunState],
        to: RunState,
        reason: Option<&str>,
    ) -> Result<bool, AwsError> {
        let mut sets = vec!["#state = :to".to_owned()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(run_id)))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(state_text(to)));
        if let Some(reason) = reason {
            sets.push("state_reason = :reason".into());
            request = request.expression_attribute_values(":reason", s(reason));
        }
        if to == RunState::Running || to == RunState::Fanning {
            // Starting (or approving) moves the watchdog's clock: waiting for approval is no stall.
            sets.push("started_at = if_not_exists(started_at, :now)".into());
            sets.push("progress_at = :now".into());
            request = request.expression_attribute_values(":now", n(now_unix()));
        }
        if to.is_terminal() {
            sets.push("finished_at = :fin".into());
            request = request.expression_attribute_values(":fin", n(now_unix()));
        }
        let allowed: Vec<String> = from
            .iter()
            .enumerate()
            .map(|(i, _)| format!(":from{i}"))
            .collect();
        for (i, st) in from.iter().enumerate() {
            request = request.expression_attribute_values(format!(":from{i}"), s(state_text(*st)));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(format!("#state IN ({})", allowed.join(", ")))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem")
    }

    /// Claim one audience page for the fan-out, before its work message is sent: count its
    /// profiles into the total, take batch number `batches + 1`, move the cursor on and keep
    /// the page's ids until the message is sent ([`Self::page_sent`]), only if nobody did so for
    /// this page yet (the run still shows `expected_batches` and `cursor`). A fan-out that dies
    /// after the claim sends the kept ids, never a re-read page, under that batch number.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_page(
        &self,
        merchant: &MerchantId,
        run_id: &str,
        expected_batches: u64,
        cursor: Option<&str>,
        next_cursor: Option<&str>,
        ids: &[String],
    ) -> Result<bool, AwsError> {
        let batch = expected_batches + 1;
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(run_id)))
            .expression_attribute_values(":n", n(ids.len()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expected", n(expected_batches))
            .expression_attribute_values(":now", n(now_unix()));
        let pending = if ids.is_empty() {
            ""
        } else {
            update = update.expression_attribute_values(":batch", n(batch));
            ", fanout_pending = :batch"
        };
        let moved = match next_cursor {
            Some(next) => {
                update = update.expression_attribute_values(":next", s(next));
                format!("SET fanout_cursor = :next, progress_at = :now{pending} ADD c_total :n, batches :one")
            }
            None => format!(
                "SET progress_at = :now{pending} REMOVE fanout_cursor ADD c_total :n, batches :one"
            ),
        };
        let condition = match cursor {
            Some(current) => {
                update = update.expression_attribute_values(":cur", s(current));
                "batches = :expected AND fanout_cursor = :cur"
            }
            None => "batches = :expected AND attribute_not_exists(fanout_cursor)",
        };
        let update = update
            .update_expression(moved)
            .condition_expression(condition)
            .build()
            .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if !ids.is_empty() {
            let (pk, sk) = page_key(run_id, batch);
            let page: Item = [
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("profile_ids".to_owned(), ids_value(ids)),
                ("expires_at".to_owned(), n(now_unix() + PAGE_TTL_SECS)),
            ]
            .into();
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(page))
                .build()
                .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items).await
    }

    /// For a retry's fan-out: the failed profile ids of the next batch of `run_id` after the
    /// batch `after` (a batch sort key, the retry's cursor) that has any, with that batch's key
    /// as the next cursor; `(empty, None)` when no batch after it has failures.
    pub async fn failed_page(
        &self,
        run_id: &str,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), AwsError> {
        let (pk, first) = batch_key(run_id, 0);
        let from = after.map(str::to_owned).unwrap_or(first);
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk > :after")
                .filter_expression("begins_with(sk, :batch) AND size(failed_ids) > :zero")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":after", s(&from))
                .expression_attribute_values(":batch", s("BATCH#"))
                .expression_attribute_values(":zero", n(0))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(Self::err("dynamodb:Query"))?;
            if let Some(item) = page.items.unwrap_or_default().into_iter().next() {
                let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
                return Ok((ids_of_item(&item, "failed_ids"), sk));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((Vec::new(), None)),
            }
        }
    }

    /// The ids of a claimed page whose work message may not have been sent.
    pub async fn claimed_page(
        &self,
        run_id: &str,
        batch: u64,
    ) -> Result<Option<Vec<String>>, AwsError> {
        let (pk, sk) = page_key(run_id, batch);
        Ok(get_item(&self.client, &self.table, pk, &sk)
            .await?
            .filter(|item| item.contains_key("profile_ids"))
            .map(|item| ids_of_item(&item, "profile_ids")))
    }

    /// The claimed page's work message is on the queue: forget its ids.
    pub async fn page_sent(
        &self,
        merchant: &MerchantId,
        run_id: &str,
        batch: u64,
    ) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(run_id)))
            .update_expression("REMOVE fanout_pending")
            .condition_expression("fanout_pending = :batch")
            .expression_attribute_values(":batch", n(batch))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem")?;
        let (pk, sk) = page_key(run_id, batch);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(Self::err("dynamodb:DeleteItem"))?;
        Ok(())
    }

    /// The fan-out enqueued everything: the total is final.
    pub async fn finish_fanout(&self, merchant: &MerchantId, run_id: &str) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(run_id)))
            .update_expression("SET fanout_done = :t REMOVE fanout_cursor")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(Self::err("dynamodb:UpdateItem"))?;
        Ok(())
    }

    /// Take a batch for processing, or learn that it is done or busy.
    pub async fn claim_batch(
        &self,
        run_id: &str,
        batch: u64,
        lease_secs: i64,
    ) -> Result<BatchClaim, AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        let now = now_unix();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(&sk))
            .update_expression("SET #status = :working, lease_until = :lease, expires_at = if_not_exists(expires_at, :ttl)")
            .condition_expression("attribute_not_exists(pk) OR (#status = :working AND lease_until < :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":working", s("working"))
            .expression_attribute_values(":lease", n(now + lease_secs))
            .expression_attribute_values(":ttl", n(now + BATCH_TTL_SECS))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                Ok(match RecordedWrite::from_item(&old) {
                    Some(write) => BatchClaim::Resume(Box::new(write)),
                    None => BatchClaim::Fresh,
                })
            }
            Err(e) if is_condition_failure(&e) => {
                let item = get_item(&self.client, &self.table, pk, &sk)
                    .await?
                    .unwrap_or_default();
                let done = item
                    .get("status")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|st| st == "done");
                // A write already under way is finished whoever holds the lease: looking at
                // the job (or the profiles) is safe to do twice; counting happens once.
                Ok(if done {
                    BatchClaim::Done
                } else if let Some(write) = RecordedWrite::from_item(&item) {
                    BatchClaim::Resume(Box::new(write))
                } else {
                    BatchClaim::Busy
                })
            }
            Err(e) => Err(AwsError::new("dynamodb:UpdateItem", describe(&e))),
        }
    }

    /// Keep holding a fresh batch while it is being worked on.
    pub async fn renew_lease(
        &self,
        run_id: &str,
        batch: u64,
        lease_secs: i64,
    ) -> Result<(), AwsError> {
        self.set_lease(run_id, batch, now_unix() + lease_secs).await
    }

    /// Let go of a batch this delivery holds (handing it back): the next delivery may take it.
    pub async fn release_lease(&self, run_id: &str, batch: u64) -> Result<(), AwsError> {
        self.set_lease(run_id, batch, now_unix() - 1).await
    }

    async fn set_lease(&self, run_id: &str, batch: u64, until: i64) -> Result<(), AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET lease_until = :until")
            .condition_expression("#status = :working")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":working", s("working"))
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem").map(|_| ())
    }

    /// A batch's write-back as recorded by the delivery that submitted it: `None` when the
    /// batch is already counted or never got that far.
    pub async fn recorded_write(
        &self,
        run_id: &str,
        batch: u64,
    ) -> Result<Option<RecordedWrite>, AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        let Some(item) = get_item(&self.client, &self.table, pk, &sk).await? else {
            return Ok(None);
        };
        if item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|st| st == "done")
        {
            return Ok(None);
        }
        Ok(RecordedWrite::from_item(&item))
    }

    /// Before creating a write-back job: remember what it writes for each profile and what the
    /// batch will add, so any later delivery finishes this write instead of starting another.
    pub async fn record_write_intent(
        &self,
        run_id: &str,
        batch: u64,
        outcomes: &str,
        pending: &BatchTally,
        intent_at: i64,
    ) -> Result<(), AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        let attrs = counter_attrs(pending);
        let mut sets = vec![
            "intent_at = :at".to_owned(),
            "outcomes = :outcomes".to_owned(),
            "failed_ids = :failed".to_owned(),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk));
        for (i, (attr, v)) in attrs.iter().enumerate() {
            sets.push(format!("#p{i} = :p{i}"));
            request = request
                .expression_attribute_names(format!("#p{i}"), attr)
                .expression_attribute_values(format!(":p{i}"), n(v));
        }
        request
            .update_expression(format!("SET {}", sets.join(", ")))
            .expression_attribute_values(":at", n(intent_at))
            .expression_attribute_values(":outcomes", s(outcomes))
            .expression_attribute_values(":failed", ids_value(&pending.failed_ids))
            .send()
            .await
            .map_err(Self::err("dynamodb:UpdateItem"))?;
        Ok(())
    }

    /// The write-back job was created: later deliveries look at it.
    pub async fn record_write_job(
        &self,
        run_id: &str,
        batch: u64,
        job_id: &str,
    ) -> Result<(), AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET job_id = :job")
            .expression_attribute_values(":job", s(job_id))
            .send()
            .await
            .map_err(Self::err("dynamodb:UpdateItem"))?;
        Ok(())
    }

    /// Count a batch into its run, once: the batch's "done" mark and the run's counters change
    /// in one transaction, which fails if the batch was already done. Returns the run after it,
    /// or None when the batch had been counted before.
    pub async fn complete_batch(
        &self,
        merchant: &MerchantId,
        run_id: &str,
        batch: u64,
        tally: &BatchTally,
    ) -> Result<Option<Run>, AwsError> {
        let (pk, sk) = batch_key(run_id, batch);
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression(
                "SET #status = :done, expires_at = if_not_exists(expires_at, :ttl), failed_ids = :failed",
            )
            .condition_expression("attribute_not_exists(#status) OR #status <> :done")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":failed", ids_value(&tally.failed_ids))
            .expression_attribute_values(":ttl", n(now_unix() + BATCH_TTL_SECS))
            .build()
            .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
        let mut items = vec![TransactWriteItem::builder().update(mark).build()];
        let attrs = counter_attrs(tally);
        if !attrs.is_empty() {
            let (expr, names, values) = add_expression(&attrs, "a");
            let add = Update::builder()
                .table_name(&self.table)
                .key("pk", s(merchant_pk(merchant)))
                .key("sk", s(run_sk(run_id)))
                .update_expression(format!("SET progress_at = :now ADD {expr}"))
                // A run the watchdog closed has counted this batch's profiles as stalled.
                .condition_expression("attribute_not_exists(stalled_closed)")
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .expression_attribute_values(":now", n(now_unix()))
                .build()
                .map_err(|e| AwsError::new("dynamodb:TransactWriteItems", e))?;
            items.push(TransactWriteItem::builder().update(add).build());
        }
        if self.transact(items).await? {
            self.get(merchant, run_id).await
        } else {
            Ok(None)
        }
    }

    /// The watchdog re-drives a stalled fan-out (once per `seen_redrives`).
    pub async fn note_fanout_redrive(
        &self,
        merchant: &MerchantId,
        run_id: &str,
        seen_redrives: u64,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(run_id)))
            .update_expression("SET progress_at = :now, fanout_redrives = :next")
            .condition_expression(
                "attribute_not_exists(fanout_redrives) OR fanout_redrives = :seen",
            )
            .expression_attribute_values(":now", n(now_unix()))
            .expression_attribute_values(":next", n(seen_redrives + 1))
            .expression_attribute_values(":seen", n(seen_redrives))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem")
    }

    /// End a run that stopped making progress: what is still outstanding is counted as
    /// `failed: stalled` and the run moves to `to` with `reason`, only if nothing moved since
    /// the watchdog looked (same total, same accounted count).
    pub async fn finish_stalled(
        &self,
        merchant: &MerchantId,
        run: &Run,
        to: RunState,
        reason: &str,
    ) -> Result<bool, AwsError> {
        let outstanding = run.counts.outstanding();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(merchant_pk(merchant)))
            .key("sk", s(run_sk(&run.run_id)))
            .update_expression(
                "SET #state = :to, state_reason = :reason, finished_at = :now, fanout_done = :t, \
                 stalled_closed = :t REMOVE fanout_cursor ADD c_failed_stalled :n",
            )
            .condition_expression(
                "#state = :from AND c_total = :total \
                 AND (attribute_not_exists(progress_at) OR progress_at = :seen)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(state_text(to)))
            .expression_attribute_values(":from", s(state_text(run.state)))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", n(now_unix()))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":n", n(outstanding))
            .expression_attribute_values(":total", n(run.counts.total))
            .expression_attribute_values(":seen", n(run.progress_at.unwrap_or_default()))
            .send()
            .await;
        written(result, "dynamodb:UpdateItem")
    }

    /// Mark the run completed when its numbers add up (called after each batch and at the end
    /// of the fan-out; whichever comes last wins, the other finds it already completed).
    pub async fn complete_if_accounted(
        &self,
        merchant: &MerchantId,
        run: &Run,
    ) -> Result<bool, AwsError> {
        if !run.is_fully_accounted() || run.state.is_terminal() {
            return Ok(false);
        }
        self.transition(
            merchant,
            &run.run_id,
            &[RunState::Running, RunState::Fanning],
            RunState::Completed,
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_through_attributes() {
        let mut tally = BatchTally::default();
        tally.counts.written = 7;
        tally.counts.skipped.insert("no_candidates".into(), 2);
        tally.counts.failed.insert("klaviyo".into(), 1);
        tally.tokens.input_tokens = 1234;
        tally.requests.insert("klaviyo_events".into(), 10);
        let item: Item = counter_attrs(&tally)
            .into_iter()
            .map(|(k, v)| (k, n(v)))
            .collect();
        assert_eq!(tally_from_item(&item), tally);
    }
}
