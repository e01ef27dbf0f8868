//! A personalization run as we keep it (no customer data: ids, counters, the merchant's brief)
//! and the messages that carry its work (ids only).

use super::accounting::{Cost, RunCounts, RunState};
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
    pub holdout_percent: u8,
    #[serde(default)]
    pub profile_cap: Option<u64>,
    pub review: bool,
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
    pub created_at: i64,
    #[serde(default)]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

impl Run {
    /// Complete once the fan-out is done and every profile it enqueued is accounted for.
    pub fn is_fully_accounted(&self) -> bool {
        self.fanout_done && self.counts.is_complete()
    }
}

/// `POST /runs` body, validated.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub audience: AudienceRef,
    pub brief: String,
    #[serde(default)]
    pub holdout_percent: u8,
    #[serde(default)]
    pub profile_cap: Option<u64>,
    #[serde(default)]
    pub review: bool,
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
            brief: "Winter sale, free shipping over $50".into(),
            holdout_percent: 10,
            profile_cap: None,
            review: true,
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

    #[test]
    fn audience_ids_cannot_smuggle_filter_syntax() {
        let mut r = request();
        r.audience.id = "x\"),equals(".into();
        assert!(r.validate().is_err());
    }
}
