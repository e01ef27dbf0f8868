//! Run accounting: every profile of a run ends in exactly one bucket (written, holdout,
//! skipped by reason, failed by reason) so `total = written + holdout + skipped + failed`.
//! Also the run's state machine, the holdout split and the Bedrock cost estimate.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Why a profile was deliberately not written. Stable snake_case names: they are counter keys.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No product passed the eligibility rules.
    NoCandidates,
    /// The copy failed the grounding validator twice (first try and the one repair).
    ValidationFailed,
    /// The model's tool input could not be parsed, even after the repair attempt.
    MalformedOutput,
    /// The profile id from the audience no longer exists in Klaviyo.
    ProfileNotFound,
    /// The run was cancelled before the profile was processed.
    Cancelled,
    /// The id came twice in one batch (an audience page can repeat a member); written once.
    DuplicateId,
    /// The Bedrock guardrail intervened on copy that had passed our own gate.
    GuardrailIntervened,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCandidates => "no_candidates",
            Self::ValidationFailed => "validation_failed",
            Self::MalformedOutput => "malformed_output",
            Self::ProfileNotFound => "profile_not_found",
            Self::Cancelled => "cancelled",
            Self::DuplicateId => "duplicate_id",
            Self::GuardrailIntervened => "guardrail_intervened",
        }
    }
}

/// Why a profile could not be processed. Stable snake_case names: they are counter keys.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    Bedrock,
    Klaviyo,
    /// Still throttled after the retry budget (Klaviyo 429 or Bedrock ThrottlingException).
    Throttled,
    /// The batch exhausted its receives and landed in the DLQ.
    DeadLetter,
    /// The run stopped making progress and the watchdog ended it with the profile unaccounted.
    Stalled,
    Internal,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bedrock => "bedrock",
            Self::Klaviyo => "klaviyo",
            Self::Throttled => "throttled",
            Self::DeadLetter => "dead_letter",
            Self::Stalled => "stalled",
            Self::Internal => "internal",
        }
    }
}

/// The one bucket a profile ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Outcome {
    Written,
    Holdout,
    Skipped(SkipReason),
    Failed(FailReason),
}

impl Outcome {
    /// Why a profile was skipped or failed (`None` when written or held out).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Skipped(r) => Some(r.as_str()),
            Self::Failed(r) => Some(r.as_str()),
            Self::Written | Self::Holdout => None,
        }
    }
}

/// A run's counters. Maps are keyed by the reasons' snake_case names so the document reads
/// the same in DynamoDB, in `GET /runs/{id}` and in logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RunCounts {
    pub total: u64,
    pub written: u64,
    pub holdout: u64,
    pub skipped: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
}

impl RunCounts {
    pub fn with_total(total: u64) -> Self {
        Self {
            total,
            ..Self::default()
        }
    }

    pub fn add(&mut self, outcome: &Outcome) {
        self.add_n(outcome, 1);
    }

    pub fn add_n(&mut self, outcome: &Outcome, n: u64) {
        match outcome {
            Outcome::Written => self.written += n,
            Outcome::Holdout => self.holdout += n,
            Outcome::Skipped(r) => *self.skipped.entry(r.as_str().to_owned()).or_default() += n,
            Outcome::Failed(r) => *self.failed.entry(r.as_str().to_owned()).or_default() += n,
        }
    }

    /// Adds another batch's counts (its `total` too, which is zero for worker batches).
    pub fn merge(&mut self, other: &RunCounts) {
        self.total += other.total;
        self.written += other.written;
        self.holdout += other.holdout;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Profiles that have reached a bucket.
    pub fn accounted(&self) -> u64 {
        self.written + self.holdout + self.skipped_total() + self.failed_total()
    }

    /// Profiles not yet in any bucket.
    pub fn outstanding(&self) -> u64 {
        self.total.saturating_sub(self.accounted())
    }

    pub fn is_complete(&self) -> bool {
        self.accounted() == self.total
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// The audience is being paged onto the work queue (workers may already be running).
    Fanning,
    /// Samples are ready and the merchant has to approve or cancel.
    AwaitingApproval,
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }

    /// The allowed moves. Terminal states never change; a run may be cancelled or fail from
    /// any live state; approval moves only out of `AwaitingApproval`.
    pub fn can_transition(self, to: RunState) -> bool {
        can_transition(self, to)
    }
}

pub fn can_transition(from: RunState, to: RunState) -> bool {
    use RunState::*;
    match (from, to) {
        (from, _) if from.is_terminal() => false,
        (_, Cancelled | Failed) => true,
        (Fanning, AwaitingApproval | Running | Completed) => true,
        (AwaitingApproval, Running) => true,
        (Running, Completed) => true,
        _ => false,
    }
}

/// Which arm of the uplift measurement a profile is in; written as `sp_group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Personalized,
    Holdout,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personalized => "personalized",
            Self::Holdout => "holdout",
        }
    }
}

/// A stable split: sha256 of `run_id`, a NUL separator (so "ab"+"c" and "a"+"bc" differ) and
/// `profile_id`; the first 8 bytes mod 10,000 below `percent × 100` are held out. A redelivered
/// batch or a retried worker puts each profile in the same group every time.
pub fn holdout_group(run_id: &str, profile_id: &str, holdout_percent: u8) -> Group {
    let mut hasher = Sha256::new();
    hasher.update(run_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(profile_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let bucket = u64::from_be_bytes(first) % 10_000;
    if bucket < u64::from(holdout_percent.min(100)) * 100 {
        Group::Holdout
    } else {
        Group::Personalized
    }
}

/// Bedrock token usage. Converse reports `inputTokens` without the cached part, and the cache
/// reads and writes separately, so the four are priced independently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Cost {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Bedrock Guardrails text units (1 per up to 1,000 characters) of the content filters.
    pub guardrail_content_units: u64,
    /// … and of contextual grounding.
    pub guardrail_grounding_units: u64,
}

/// Guardrails list prices per 1,000 text units (content filters, contextual grounding).
pub const GUARDRAIL_CONTENT_USD_PER_1K_UNITS: f64 = 0.15;
pub const GUARDRAIL_GROUNDING_USD_PER_1K_UNITS: f64 = 0.10;

impl Cost {
    pub fn add(&mut self, other: &Cost) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.guardrail_content_units += other.guardrail_content_units;
        self.guardrail_grounding_units += other.guardrail_grounding_units;
    }

    /// Estimated US dollars at list prices: the model's tokens and the guardrail's units.
    pub fn usd(&self, prices: &ModelPrices) -> f64 {
        let per = |tokens: u64, usd_per_mtok: f64| tokens as f64 * usd_per_mtok / 1_000_000.0;
        per(self.input_tokens, prices.input_per_mtok)
            + per(self.output_tokens, prices.output_per_mtok)
            + per(self.cache_read_tokens, prices.cache_read_per_mtok)
            + per(self.cache_write_tokens, prices.cache_write_per_mtok)
            + self.guardrail_usd()
    }

    /// What the guardrail's text units cost at list prices.
    pub fn guardrail_usd(&self) -> f64 {
        self.guardrail_content_units as f64 * GUARDRAIL_CONTENT_USD_PER_1K_UNITS / 1000.0
            + self.guardrail_grounding_units as f64 * GUARDRAIL_GROUNDING_USD_PER_1K_UNITS / 1000.0
    }
}

/// List prices in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelPrices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cache_write_per_mtok: f64,
    pub cache_read_per_mtok: f64,
    /// False when the model id was not recognised and Sonnet's prices were assumed.
    pub known: bool,
}

impl ModelPrices {
    const fn new(input: f64, output: f64, cache_write: f64, cache_read: f64, known: bool) -> Self {
        Self {
            input_per_mtok: input,
            output_per_mtok: output,
            cache_write_per_mtok: cache_write,
            cache_read_per_mtok: cache_read,
            known,
        }
    }

    /// Bedrock list prices per million tokens (prompts up to 100k tokens, 5-minute cache).
    /// Claude 4.x: cache writes 1.25× input, reads 0.1×. Haiku 5.5 (NOTES §3.1): $0.10 in,
    /// $0.50 out, cache write $0.125, read $0.01. Thinking tokens bill as output.
    /// An unknown id gets Sonnet 4.5's prices, flagged, so a cost is never under-reported silently.
    pub fn for_model(model_id: &str) -> Self {
        let id = model_id.to_ascii_lowercase();
        if id.contains("claude-haiku-5-5") {
            Self::new(0.10, 0.50, 0.125, 0.01, true)
        } else if id.contains("claude-sonnet-5-5") {
            Self::new(2.0, 10.0, 2.5, 0.2, true)
        } else if id.contains("claude-haiku-4-5") {
            Self::new(1.0, 5.0, 1.25, 0.10, true)
        } else if id.contains("claude-sonnet-4-5") || id.contains("claude-sonnet-4-6") {
            Self::new(3.0, 15.0, 3.75, 0.30, true)
        } else {
            Self::new(3.0, 15.0, 3.75, 0.30, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_serialise_as_stable_snake_case() {
        assert_eq!(
            serde_json::to_value(SkipReason::NoCandidates).unwrap(),
            "no_candidates"
        );
        assert_eq!(
            serde_json::to_value(FailReason::DeadLetter).unwrap(),
            "dead_letter"
        );
        for r in [
            SkipReason::NoCandidates,
            SkipReason::ValidationFailed,
            SkipReason::MalformedOutput,
            SkipReason::ProfileNotFound,
            SkipReason::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for r in [
            FailReason::Bedrock,
            FailReason::Klaviyo,
            FailReason::Throttled,
            FailReason::DeadLetter,
            FailReason::Internal,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(
            serde_json::to_value(Outcome::Skipped(SkipReason::ValidationFailed)).unwrap(),
            serde_json::json!({"outcome": "skipped", "reason": "validation_failed"})
        );
    }

    #[test]
    fn counts_add_up_to_total_when_every_profile_is_accounted() {
        let mut c = RunCounts::with_total(6);
        for o in [
            Outcome::Written,
            Outcome::Written,
            Outcome::Holdout,
            Outcome::Skipped(SkipReason::NoCandidates),
            Outcome::Failed(FailReason::Klaviyo),
        ] {
            c.add(&o);
        }
        assert_eq!(
            (c.accounted(), c.outstanding(), c.is_complete()),
            (5, 1, false)
        );
        c.add(&Outcome::Failed(FailReason::Klaviyo));
        assert!(c.is_complete());
        assert_eq!(c.failed.get("klaviyo"), Some(&2));
        assert_eq!(c.skipped.get("no_candidates"), Some(&1));
    }

    #[test]
    fn merge_sums_every_bucket() {
        let mut a = RunCounts::with_total(11);
        a.add_n(&Outcome::Written, 3);
        a.add(&Outcome::Skipped(SkipReason::ValidationFailed));
        let mut b = RunCounts::default();
        b.add_n(&Outcome::Written, 2);
        b.add(&Outcome::Skipped(SkipReason::ValidationFailed));
        b.add_n(&Outcome::Failed(FailReason::DeadLetter), 4);
        a.merge(&b);
        assert_eq!(a.total, 11);
        assert_eq!(a.written, 5);
        assert_eq!(a.skipped.get("validation_failed"), Some(&2));
        assert_eq!(a.failed_total(), 4);
        assert!(a.is_complete());
    }

    #[test]
    fn empty_run_is_complete() {
        assert!(RunCounts::with_total(0).is_complete());
    }

    #[test]
    fn run_counts_document_has_stable_keys() {
        let mut c = RunCounts::with_total(1);
        c.add(&Outcome::Failed(FailReason::Throttled));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"total": 1, "written": 0, "holdout": 0, "skipped": {}, "failed": {"throttled": 1}})
        );
    }

    #[test]
    fn review_runs_go_through_approval() {
        use RunState::*;
        assert!(can_transition(Fanning, AwaitingApproval));
        assert!(can_transition(AwaitingApproval, Running));
        assert!(can_transition(Running, Completed));
        assert!(
            !can_transition(AwaitingApproval, Completed),
            "approval comes before completion"
        );
    }

    #[test]
    fn live_runs_can_be_cancelled_or_fail() {
        use RunState::*;
        for from in [Fanning, AwaitingApproval, Running] {
            assert!(from.can_transition(Cancelled), "{from:?}");
            assert!(from.can_transition(Failed), "{from:?}");
        }
    }

    #[test]
    fn terminal_states_never_change() {
        use RunState::*;
        let all = [
            Fanning,
            AwaitingApproval,
            Running,
            Completed,
            Cancelled,
            Failed,
        ];
        for from in [Completed, Cancelled, Failed] {
            for to in all {
                assert!(!can_transition(from, to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn runs_never_move_backwards() {
        use RunState::*;
        assert!(!can_transition(Running, Fanning));
        assert!(!can_transition(Running, AwaitingApproval));
        assert!(!can_transition(AwaitingApproval, Fanning));
        assert!(!can_transition(Running, Running));
    }

    #[test]
    fn holdout_group_is_stable_for_a_run_and_profile() {
        let first = holdout_group("run-1", "01HPROFILE", 50);
        for _ in 0..10 {
            assert_eq!(holdout_group("run-1", "01HPROFILE", 50), first);
        }
    }

    #[test]
    fn holdout_split_is_within_two_points_of_the_requested_percent() {
        for percent in [5u8, 10, 20, 50] {
            let held = (0..10_000)
                .filter(|i| {
                    holdout_group("01JRUN", &format!("01HPROFILE{i:06}"), percent) == Group::Holdout
                })
                .count();
            let share = held as f64 / 100.0;
            assert!(
                (share - f64::from(percent)).abs() <= 2.0,
                "{percent}% requested, {share}% held out"
            );
        }
    }

    #[test]
    fn holdout_edges_are_none_and_all() {
        assert_eq!(holdout_group("r", "p", 0), Group::Personalized);
        assert_eq!(holdout_group("r", "p", 100), Group::Holdout);
        assert_eq!(holdout_group("r", "p", 255), Group::Holdout);
    }

    #[test]
    fn different_runs_split_differently() {
        let differs = (0..200)
            .filter(|i| {
                let p = format!("p{i}");
                holdout_group("run-a", &p, 50) != holdout_group("run-b", &p, 50)
            })
            .count();
        assert!(
            differs > 50,
            "a new run reshuffles the holdout ({differs} of 200 changed)"
        );
    }

    #[test]
    fn group_names_are_written_as_sp_group_values() {
        assert_eq!(Group::Personalized.as_str(), "personalized");
        assert_eq!(serde_json::to_value(Group::Holdout).unwrap(), "holdout");
    }

    #[test]
    fn haiku_costs_at_list_prices() {
        let p = ModelPrices::for_model("us.anthropic.claude-haiku-4-5-20251001-v1:0");
        assert!(p.known);
        let c = Cost {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            ..Cost::default()
        };
        // 1 + 5 + 0.1 + 1.25
        assert!((c.usd(&p) - 7.35).abs() < 1e-9, "{}", c.usd(&p));
    }

    #[test]
    fn haiku_5_5_costs_a_tenth_of_haiku_4_5_with_its_own_cache_prices() {
        for id in [
            "us.anthropic.claude-haiku-5-5",
            "global.anthropic.claude-haiku-5-5",
        ] {
            let p = ModelPrices::for_model(id);
            assert!(p.known);
            let c = Cost {
                input_tokens: 1_000_000,
                output_tokens: 1_000_000,
                cache_read_tokens: 1_000_000,
                cache_write_tokens: 1_000_000,
                ..Cost::default()
            };
            // 0.10 + 0.50 + 0.01 + 0.125
            assert!((c.usd(&p) - 0.735).abs() < 1e-9, "{}", c.usd(&p));
        }
        let sonnet = ModelPrices::for_model("us.anthropic.claude-sonnet-5-5");
        assert!(sonnet.known);
        assert_eq!((sonnet.input_per_mtok, sonnet.output_per_mtok), (2.0, 10.0));
    }

    #[test]
    fn sonnet_costs_at_list_prices() {
        for id in [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.anthropic.claude-sonnet-4-6",
        ] {
            let p = ModelPrices::for_model(id);
            assert!(p.known);
            let c = Cost {
                input_tokens: 2_000,
                output_tokens: 1_000,
                ..Cost::default()
            };
            assert!((c.usd(&p) - (0.006 + 0.015)).abs() < 1e-12);
        }
    }

    #[test]
    fn unknown_models_are_priced_as_sonnet_and_flagged() {
        let p = ModelPrices::for_model("us.anthropic.claude-opus-9");
        assert!(!p.known);
        assert_eq!(p.input_per_mtok, 3.0);
        assert_eq!(p.output_per_mtok, 15.0);
    }

    #[test]
    fn costs_accumulate() {
        let mut total = Cost::default();
        total.add(&Cost {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            ..Cost::default()
        });
        total.add(&Cost {
            input_tokens: 1,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 7,
            ..Cost::default()
        });
        assert_eq!(
            total,
            Cost {
                input_tokens: 11,
                output_tokens: 6,
                cache_read_tokens: 100,
                cache_write_tokens: 7,
                ..Cost::default()
            }
        );
    }
}
