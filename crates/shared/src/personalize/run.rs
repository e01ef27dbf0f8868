//! A personalization run as we keep it (no customer data: ids, counters, the merchant's brief)
//! and the messages that carry its work (ids only).

use super::accounting::{Cost, RunCounts, RunState};
use super::offer::Offer;
use super::properties::PropertySet;
use crate::domain::MerchantId;
pub use crate::klaviyo::AudienceKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most a holdout may be: a run exists to personalize.
pub const MAX_HOLDOUT_PERCENT: u8 = 50;
/// Briefs are short campaign notes, not documents.
pub const MAX_BRIEF_CHARS: usize = 500;

/// A Klaviyo list or segment, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudienceRef {
    pub kind: AudienceKind,
    #[schema(pattern = "^[A-Za-z0-9]{1,64}$")]
    pub id: String,
}

/// The run record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub state: RunState,
    /// Why the run is cancelled or failed (`klaviyo_disconnected`, `cancelled_by_merchant`…).
    #[serde(default)]
    pub state_reason: Option<String>,
    pub audience: AudienceRef,
    pub brief: String,
    /// The only offer the copy may state (no customer data).
    #[serde(default)]
    pub offer: Offer,
    pub holdout_percent: u8,
    #[serde(default)]
    pub profile_cap: Option<u64>,
    pub review: bool,
    /// The profile properties the run writes (`sp_<set>_…`).
    #[serde(default)]
    pub property_set: PropertySet,
    /// A retry: the run whose failed profiles this one writes.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// A retry writes as the run the merchant started (its id on the profiles and in the
    /// holdout hash), so that run's template guard shows the retried copy.
    #[serde(default)]
    pub written_as: Option<String>,
    pub counts: RunCounts,
    pub tokens: Cost,
    /// Requests made, by vendor and endpoint (`klaviyo.events`, `bedrock.converse`…).
    #[serde(default)]
    pub requests: BTreeMap<String, u64>,
    /// The fan-out has enqueued every batch: `counts.total` is final.
    #[serde(default)]
    pub fanout_done: bool,
    #[serde(default)]
    pub batches: u64,
    /// Where the fan-out continues (Klaviyo's `links.next` of the last claimed page).
    #[serde(default)]
    pub fanout_cursor: Option<String>,
    /// A page claimed (its batch number) whose work message is not yet known to be sent.
    #[serde(default)]
    pub fanout_pending: Option<u64>,
    /// When the fan-out or a batch last moved the run on (the watchdog's clock).
    #[serde(default)]
    pub progress_at: Option<i64>,
    /// Times the watchdog re-drove a stalled fan-out.
    #[serde(default)]
    pub fanout_redrives: u64,
    pub created_at: i64,
    #[serde(default)]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

impl Run {
    /// A new run (a fresh id, no counts yet) in `state`.
    pub fn new(
        state: RunState,
        audience: AudienceRef,
        brief: String,
        offer: Offer,
        holdout_percent: u8,
        profile_cap: Option<u64>,
        property_set: PropertySet,
    ) -> Self {
        Self {
            run_id: ulid::Ulid::new().to_string(),
            state,
            state_reason: None,
            audience,
            brief,
            offer,
            holdout_percent,
            profile_cap,
            review: state == RunState::AwaitingApproval,
            property_set,
            retry_of: None,
            written_as: None,
            counts: RunCounts::default(),
            tokens: Cost::default(),
            requests: BTreeMap::new(),
            fanout_done: false,
            batches: 0,
            fanout_cursor: None,
            fanout_pending: None,
            progress_at: None,
            fanout_redrives: 0,
            created_at: crate::domain::now_unix(),
            started_at: None,
            finished_at: None,
        }
    }

    /// The run id the profiles carry: the original run's for a retry, else this run's.
    pub fn written_run_id(&self) -> &str {
        self.written_as.as_deref().unwrap_or(&self.run_id)
    }

    /// Complete once the fan-out is done and every profile it enqueued is accounted for.
    pub fn is_fully_accounted(&self) -> bool {
        self.fanout_done && self.counts.is_complete()
    }

    /// What the watchdog does with this run at `now` (unix seconds).
    pub fn watchdog_verdict(&self, now: i64, limits: &StallLimits) -> Verdict {
        if self.state.is_terminal() {
            return Verdict::Forget;
        }
        if self.is_fully_accounted() {
            // Every profile counted, but whoever counted last died before completing the run.
            return Verdict::Complete;
        }
        let idle = now - self.progress_at.unwrap_or(self.created_at);
        match self.state {
            // Waiting on the merchant is not a stall.
            RunState::AwaitingApproval => Verdict::Leave,
            _ if !self.fanout_done => {
                if idle < limits.fanout_stall_secs {
                    Verdict::Leave
                } else if self.fanout_redrives < limits.max_fanout_redrives {
                    Verdict::RedriveFanout
                } else {
                    Verdict::Fail(FANOUT_STALLED)
                }
            }
            _ if idle >= limits.run_stall_secs => Verdict::FinishStalled(BATCHES_STALLED),
            _ => Verdict::Leave,
        }
    }
}

/// A run's `state_reason` when the watchdog failed its fan-out.
pub const FANOUT_STALLED: &str = "fanout_stalled";
/// A run's `state_reason` when the watchdog finished it with profiles unaccounted for.
pub const BATCHES_STALLED: &str = "batches_stalled";

/// How long a run may go without progress before the watchdog steps in.
#[derive(Clone, Copy, Debug)]
pub struct StallLimits {
    /// A fan-out idle this long is re-driven from its saved cursor.
    pub fanout_stall_secs: i64,
    /// Re-drives before the run fails.
    pub max_fanout_redrives: u64,
    /// A fanned-out run whose batches are idle this long (longer than SQS's redeliveries and
    /// the dead-letter queue take) is finished, the rest counted `failed: stalled`.
    pub run_stall_secs: i64,
}

/// The watchdog's decision for one live run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy, or waiting on the merchant.
    Leave,
    /// Terminal: stop watching it.
    Forget,
    /// Accounted for but not completed: complete it.
    Complete,
    /// The fan-out stopped: send it a fresh message from the saved cursor.
    RedriveFanout,
    /// The fan-out stopped for good: fail the run with this reason.
    Fail(&'static str),
    /// Batches stopped: finish the run, counting what is outstanding as `failed: stalled`.
    FinishStalled(&'static str),
}

/// `POST /runs` body, validated.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub audience: AudienceRef,
    /// Theme and tone, in the merchant's words. It grants no offer: state that in `offer`.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub brief: String,
    /// The only offer the copy may state; absent: none.
    #[serde(default)]
    pub offer: Offer,
    /// Percent of the audience kept as a control group, 0 to 50.
    #[serde(default, deserialize_with = "crate::domain::whole::number")]
    #[schema(minimum = 0, maximum = 50)]
    pub holdout_percent: u8,
    /// The most profiles the run writes; absent: the whole audience.
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    #[schema(minimum = 1)]
    pub profile_cap: Option<u64>,
    #[serde(default)]
    pub review: bool,
    /// The property set to write (default `campaign`): one live run per set at a time.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[a-z](?:[a-z0-9_]{0,22}[a-z0-9])?$")]
    pub property_set: Option<PropertySet>,
}

impl RunRequest {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let brief = self.brief.trim();
        if brief.is_empty() {
            problems.push("brief must not be empty".to_owned());
        }
        if brief.chars().count() > MAX_BRIEF_CHARS {
            problems.push(format!(
                "brief must be at most {MAX_BRIEF_CHARS} characters"
            ));
        }
        if self.holdout_percent > MAX_HOLDOUT_PERCENT {
            problems.push(format!(
                "holdout_percent must be between 0 and {MAX_HOLDOUT_PERCENT}"
            ));
        }
        if let Err(errors) = self.offer.validate() {
            problems.extend(errors);
        }
        if self.profile_cap == Some(0) {
            problems.push("profile_cap must be at least 1".to_owned());
        }
        let id_ok = !self.audience.id.is_empty()
            && self.audience.id.len() <= 64
            && self.audience.id.chars().all(|c| c.is_ascii_alphanumeric());
        if !id_ok {
            problems.push("audience.id must be a Klaviyo list or segment id".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A work-queue message: one batch of profile ids of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkBatch {
    pub merchant_id: MerchantId,
    pub run_id: String,
    pub batch: u64,
    pub profile_ids: Vec<String>,
    /// Set on the follow-up a worker sends once the batch's write-back job is submitted: look
    /// at the job and count the batch when it is done, instead of holding a container while
    /// Klaviyo imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back_check: Option<WriteBackCheck>,
    /// A small run's batch, on the express queue (its follow-ups go there too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub express: bool,
}

/// Runs capped at this many profiles (or whose audience is one page) go on the express queue.
pub const EXPRESS_MAX_PROFILES: u64 = 1_000;

/// Which look at a submitted write-back job a follow-up is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBackCheck {
    /// Looks before this one.
    pub checks: u32,
}

impl WorkBatch {
    /// The follow-up that looks at this batch's write-back job once more.
    pub fn write_back_check(&self, check: WriteBackCheck) -> Self {
        Self {
            write_back_check: Some(check),
            ..self.clone()
        }
    }
}

/// What a batch's write-back does for each of its profile ids, in order, one letter each:
/// `W` personalized copy, `H` holdout (copy cleared), `C` copy cleared for a skipped or failed
/// profile, `-` nothing written (not found, a duplicate id). Recorded with the write so a later
/// delivery can charge each import error to the right bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcomes(String);

impl WriteOutcomes {
    pub fn new(codes: impl IntoIterator<Item = WriteCode>) -> Self {
        Self(codes.into_iter().map(WriteCode::letter).collect())
    }

    pub fn parse(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code for each profile id of the batch (positions beyond the record read `-`).
    pub fn code_of(&self, ids: &[String], id: &str) -> WriteCode {
        ids.iter()
            .position(|i| i == id)
            .and_then(|i| self.0.as_bytes().get(i).copied())
            .map_or(WriteCode::Nothing, WriteCode::from_letter)
    }

    /// The ids the write-back touches.
    pub fn written_ids<'a>(&self, ids: &'a [String]) -> Vec<&'a String> {
        ids.iter()
            .zip(self.0.bytes().chain(std::iter::repeat(b'-')))
            .filter(|(_, c)| *c != b'-')
            .map(|(id, _)| id)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCode {
    Copy,
    Holdout,
    Cleared,
    Nothing,
}

impl WriteCode {
    fn letter(self) -> char {
        match self {
            Self::Copy => 'W',
            Self::Holdout => 'H',
            Self::Cleared => 'C',
            Self::Nothing => '-',
        }
    }

    fn from_letter(b: u8) -> Self {
        match b {
            b'W' => Self::Copy,
            b'H' => Self::Holdout,
            b'C' => Self::Cleared,
            _ => Self::Nothing,
        }
    }

    /// The code for a profile's outcome (when the profile exists and is written at all).
    pub fn for_outcome(outcome: &super::Outcome) -> Self {
        match outcome {
            super::Outcome::Written => Self::Copy,
            super::Outcome::Holdout => Self::Holdout,
            _ => Self::Cleared,
        }
    }
}

/// A fan-out message: page the audience from `cursor` (Klaviyo's `links.next`) on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanoutRequest {
    pub merchant_id: MerchantId,
    pub run_id: String,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RunRequest {
        RunRequest {
            audience: AudienceRef {
                kind: AudienceKind::Segment,
                id: "Ab12Cd".into(),
            },
            brief: "Warm layers for the first cold weekends".into(),
            offer: Offer::default(),
            holdout_percent: 10,
            profile_cap: None,
            review: true,
            property_set: None,
        }
    }

    #[test]
    fn a_plain_request_is_valid() {
        assert!(request().validate().is_ok());
    }

    #[test]
    fn an_empty_brief_and_a_large_holdout_are_both_reported() {
        let mut r = request();
        r.brief = "  ".into();
        r.holdout_percent = 90;
        assert_eq!(r.validate().unwrap_err().len(), 2);
    }

    fn live_run(state: RunState, fanout_done: bool, progress_at: i64) -> Run {
        Run {
            run_id: "01J".into(),
            state,
            state_reason: None,
            audience: AudienceRef {
                kind: AudienceKind::Segment,
                id: "abc".into(),
            },
            brief: "b".into(),
            offer: Offer::default(),
            holdout_percent: 0,
            profile_cap: None,
            review: false,
            property_set: PropertySet::default(),
            retry_of: None,
            written_as: None,
            counts: RunCounts {
                total: 10,
                written: 4,
                ..Default::default()
            },
            tokens: Default::default(),
            requests: Default::default(),
            fanout_done,
            batches: 1,
            fanout_cursor: None,
            fanout_pending: None,
            progress_at: Some(progress_at),
            fanout_redrives: 0,
            created_at: 0,
            started_at: None,
            finished_at: None,
        }
    }

    const LIMITS: StallLimits = StallLimits {
        fanout_stall_secs: 100,
        max_fanout_redrives: 3,
        run_stall_secs: 1000,
    };

    #[test]
    fn the_watchdog_redrives_a_stalled_fan_out_then_fails_the_run() {
        let mut run = live_run(RunState::Fanning, false, 1000);
        assert_eq!(run.watchdog_verdict(1099, &LIMITS), Verdict::Leave);
        assert_eq!(run.watchdog_verdict(1100, &LIMITS), Verdict::RedriveFanout);
        run.fanout_redrives = 3;
        assert_eq!(
            run.watchdog_verdict(1100, &LIMITS),
            Verdict::Fail(FANOUT_STALLED)
        );
    }

    #[test]
    fn the_watchdog_finishes_a_run_whose_batches_stopped_and_completes_an_accounted_one() {
        let mut run = live_run(RunState::Running, true, 1000);
        assert_eq!(run.watchdog_verdict(1999, &LIMITS), Verdict::Leave);
        assert_eq!(
            run.watchdog_verdict(2000, &LIMITS),
            Verdict::FinishStalled(BATCHES_STALLED)
        );
        run.counts.written = 10;
        assert_eq!(run.watchdog_verdict(1001, &LIMITS), Verdict::Complete);
        run.state = RunState::Completed;
        assert_eq!(run.watchdog_verdict(1001, &LIMITS), Verdict::Forget);
    }

    #[test]
    fn the_watchdog_never_touches_a_run_waiting_for_approval() {
        let run = live_run(RunState::AwaitingApproval, false, 0);
        assert_eq!(run.watchdog_verdict(1_000_000, &LIMITS), Verdict::Leave);
    }

    #[test]
    fn write_outcomes_name_each_position() {
        let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let w = WriteOutcomes::new([WriteCode::Copy, WriteCode::Nothing, WriteCode::Holdout]);
        assert_eq!(w.as_str(), "W-H");
        assert_eq!(w.code_of(&ids, "c"), WriteCode::Holdout);
        assert_eq!(
            w.code_of(&ids, "d"),
            WriteCode::Nothing,
            "beyond the record"
        );
        assert_eq!(w.code_of(&ids, "zz"), WriteCode::Nothing);
        assert_eq!(w.written_ids(&ids), vec![&ids[0], &ids[2]]);
        assert_eq!(WriteOutcomes::parse("W-H"), w);
    }

    #[test]
    fn audience_ids_cannot_smuggle_filter_syntax() {
        let mut r = request();
        r.audience.id = "x\"),equals(".into();
        assert!(r.validate().is_err());
    }
}
