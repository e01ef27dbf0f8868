//! The personalization part of the HTTP contract: audiences, settings, preview and runs.

use crate::error::Problem;
use crate::klaviyo::Audience;
use crate::personalize::copy::{RenderedProduct, ValidCopy};
use crate::personalize::run::{AudienceRef, RunRequest};
use crate::personalize::{Cost, Offer, RunCounts, RunState, Settings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{OpenApi, ToSchema};

/// The most profiles one preview may name.
pub const MAX_PREVIEW_PROFILES: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AudiencesPage {
    pub audiences: Vec<Audience>,
    /// Pass as `?cursor=` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// `POST /preview`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Theme and tone; it grants no offer.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub brief: String,
    /// The only offer the copy may state; absent: none.
    #[serde(default)]
    pub offer: Offer,
    /// 1 to 10 Klaviyo profile ids or email addresses.
    #[schema(schema_with = crate::api::schema::preview_profiles)]
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewResponse {
    pub profiles: Vec<PreviewProfile>,
    pub tokens: Cost,
    pub estimated_cost_usd: f64,
}

/// One previewed customer: their history as the model saw it, the products chosen for them,
/// the copy (only when it passed the grounding check) and the check itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewProfile {
    /// What the merchant asked for (profile id or email), echoed back to them only.
    pub requested: String,
    pub profile_id: Option<String>,
    /// `written` means "would be written"; otherwise `skipped`/`failed` with a reason.
    pub outcome: String,
    pub reason: Option<String>,
    pub first_name: Option<String>,
    pub history: String,
    pub candidates: Vec<RenderedProduct>,
    pub copy: Option<ValidCopy>,
    pub grounding: Grounding,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Grounding {
    pub passed: bool,
    /// The first answer failed and the one repair attempt was used.
    pub repaired: bool,
    /// `rule: message` of each finding of the last attempt.
    pub findings: Vec<String>,
}

/// `GET /runs/{id}`: everything about a run; its counts always add up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub run_id: String,
    pub state: RunState,
    pub state_reason: Option<String>,
    pub audience: AudienceRef,
    pub brief: String,
    pub offer: Offer,
    pub holdout_percent: u8,
    pub profile_cap: Option<u64>,
    pub review: bool,
    /// The profile properties the run writes: `sp_<property_set>_subject`, `…_body`, …
    pub property_set: String,
    /// A Klaviyo template snippet that shows this run's body and nothing else (not an older
    /// run's copy, not copy of a profile this run skipped).
    pub template_snippet: String,
    /// For a retry: the run whose failed profiles it writes (as that run: the snippet is its).
    pub retry_of: Option<String>,
    pub counts: RunCounts,
    pub tokens: Cost,
    pub estimated_cost_usd: f64,
    /// Requests by vendor and endpoint, e.g. `klaviyo_events`, `bedrock_converse`.
    pub requests: BTreeMap<String, u64>,
    /// Profiles accounted for per second of running time.
    pub profiles_per_second: Option<f64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
}

/// `POST /runs` answer, at once: the run (with `review`, it waits in `awaiting_approval`, and
/// `GET /runs/{id}/samples` writes the copy to approve).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunCreated {
    pub run: RunView,
}

/// `GET /runs/{id}/samples`: copy for the audience's first customers, written for this request
/// and returned once (never stored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunSamples {
    pub samples: Vec<PreviewProfile>,
}

#[utoipa::path(get, path = "/audiences", tag = "personalize",
    params(("cursor" = Option<String>, Query, description = "from next_cursor")),
    responses((status = 200, body = AudiencesPage), (status = 409, description = "Klaviyo not connected", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the stored Klaviyo key was revoked or lacks a scope (`klaviyo-key-rejected`, `klaviyo-missing-scopes`)", body = Problem, content_type = "application/problem+json"), (status = 502, description = "Klaviyo is unavailable (`vendor-unavailable`); retry later", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Klaviyo is rate limiting us (`vendor-throttled`); retry after Retry-After", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_audiences() {}

#[utoipa::path(get, path = "/settings", tag = "personalize", responses((status = 200, body = Settings)), security(("bearer" = [])))]
#[allow(dead_code)]
fn get_settings() {}

#[utoipa::path(put, path = "/settings", tag = "personalize", request_body = Settings,
    responses((status = 200, body = Settings), (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn put_settings() {}

#[utoipa::path(post, path = "/preview", tag = "personalize", request_body = PreviewRequest,
    responses((status = 200, body = PreviewResponse), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Klaviyo or Shopify not connected", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the stored Klaviyo key was revoked or lacks a scope (`klaviyo-key-rejected`, `klaviyo-missing-scopes`)", body = Problem, content_type = "application/problem+json"), (status = 502, description = "Klaviyo is unavailable (`vendor-unavailable`); retry later", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Klaviyo is rate limiting us (`vendor-throttled`); retry after Retry-After", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn post_preview() {}

#[utoipa::path(post, path = "/runs", tag = "personalize", request_body = RunRequest,
    responses((status = 201, body = RunCreated), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "Klaviyo has no such list or segment (`klaviyo-not-found`)", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Klaviyo or Shopify not connected, or the property set is in use", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the stored Klaviyo key was revoked or lacks a scope (`klaviyo-key-rejected`, `klaviyo-missing-scopes`)", body = Problem, content_type = "application/problem+json"), (status = 502, description = "Klaviyo is unavailable (`vendor-unavailable`); retry later", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Klaviyo is rate limiting us (`vendor-throttled`); retry after Retry-After", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn post_runs() {}

#[utoipa::path(get, path = "/runs", tag = "personalize", responses((status = 200, body = RunList)), security(("bearer" = [])))]
#[allow(dead_code)]
fn get_runs() {}

#[utoipa::path(get, path = "/runs/{id}", tag = "personalize", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_run() {}

#[utoipa::path(get, path = "/runs/{id}/samples", tag = "personalize", params(("id" = String, Path)),
    responses((status = 200, body = RunSamples), (status = 404, description = "no such run, or its audience is gone from Klaviyo", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "not awaiting approval", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "the stored Klaviyo key was revoked or lacks a scope (`klaviyo-key-rejected`, `klaviyo-missing-scopes`)", body = Problem, content_type = "application/problem+json"), (status = 502, description = "Klaviyo is unavailable (`vendor-unavailable`); retry later", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the model did not finish in time; retry after Retry-After", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_run_samples() {}

#[utoipa::path(post, path = "/runs/{id}/approve", tag = "personalize", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "not awaiting approval", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn approve_run() {}

#[utoipa::path(post, path = "/runs/{id}/retry", tag = "personalize", params(("id" = String, Path)),
    responses((status = 201, body = RunCreated), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "not finished, nothing failed, or its property set is in use", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn retry_run() {}

#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "personalize", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "already finished", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn cancel_run() {}

#[derive(OpenApi)]
#[openapi(paths(
    get_audiences,
    get_settings,
    put_settings,
    post_preview,
    post_runs,
    get_runs,
    get_run,
    get_run_samples,
    approve_run,
    retry_run,
    cancel_run
))]
pub(super) struct PersonalizeDoc;

impl RunView {
    /// The view of a stored run; the cost is estimated at `model_id`'s list prices.
    pub fn from_run(run: &crate::personalize::run::Run, model_id: &str) -> Self {
        use crate::domain::rfc3339;
        let prices = crate::personalize::ModelPrices::for_model(model_id);
        let elapsed = run
            .started_at
            .map(|start| run.finished_at.unwrap_or_else(crate::domain::now_unix) - start);
        let done = run.counts.accounted();
        Self {
            run_id: run.run_id.clone(),
            state: run.state,
            state_reason: run.state_reason.clone(),
            audience: run.audience.clone(),
            brief: run.brief.clone(),
            offer: run.offer.clone(),
            holdout_percent: run.holdout_percent,
            profile_cap: run.profile_cap,
            review: run.review,
            property_set: run.property_set.as_str().to_owned(),
            template_snippet: run.property_set.template_guard(run.written_run_id()),
            retry_of: run.retry_of.clone(),
            counts: run.counts.clone(),
            tokens: run.tokens,
            estimated_cost_usd: (run.tokens.usd(&prices) * 10_000.0).round() / 10_000.0,
            requests: run.requests.clone(),
            profiles_per_second: elapsed.filter(|s| *s > 0).map(|s| done as f64 / s as f64),
            created_at: rfc3339(run.created_at),
            started_at: run.started_at.map(rfc3339),
            finished_at: run.finished_at.map(rfc3339),
        }
    }
}
