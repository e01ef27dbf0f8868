//! Flow triggers and the public flow webhook, as documented operations.

use crate::error::Problem;
use crate::flows::{SecretRotated, TriggerCreated, TriggerList, TriggerRequest, TriggerView};
use utoipa::OpenApi;

#[utoipa::path(post, path = "/flows/triggers", tag = "flows", request_body = TriggerRequest,
    responses((status = 201, description = "the trigger, and what to paste into Klaviyo (the secret is shown only here)", body = TriggerCreated),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "the property set is used by a campaign or another trigger", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn create_trigger() {}

#[utoipa::path(get, path = "/flows/triggers", tag = "flows",
    responses((status = 200, description = "every trigger with today's and the last 30 days' counts and latency", body = TriggerList)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn list_triggers() {}

#[utoipa::path(get, path = "/flows/triggers/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = TriggerView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_trigger() {}

#[utoipa::path(delete, path = "/flows/triggers/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "deleted; its property set is free again"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn delete_trigger() {}

#[utoipa::path(post, path = "/flows/triggers/{id}/pause", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = TriggerView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "revoked", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn pause_trigger() {}

#[utoipa::path(post, path = "/flows/triggers/{id}/resume", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = TriggerView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "revoked", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn resume_trigger() {}

#[utoipa::path(post, path = "/flows/triggers/{id}/rotate-secret", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "the new header (shown once); the previous secret works until previous_secret_valid_until", body = SecretRotated),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn rotate_secret() {}

#[utoipa::path(post, path = "/flows/triggers/{id}/revoke", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, description = "every secret stops working at once; deliveries get 404", body = TriggerView),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn revoke_trigger() {}

/// Called by Klaviyo's flow Webhook action with the header and body the trigger gave.
#[utoipa::path(post, path = "/hooks/flows/{trigger_id}", tag = "flows", params(("trigger_id" = String, Path)),
    request_body(content = String, description = "{\"profile_id\": \"{{ person.KlaviyoID }}\", \"event_id\": \"{{ event|lookup:'$event_id' }}\"} as Klaviyo renders it", content_type = "application/json"),
    responses((status = 202, description = "accepted (or a replay, accepted without a second generation)"),
              (status = 401, description = "the Authorization header does not carry the trigger's secret", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such trigger, or revoked", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "malformed body, trigger paused, or Klaviyo not connected", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "not queued; Klaviyo retries", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn flow_hook() {}

#[derive(OpenApi)]
#[openapi(paths(
    create_trigger,
    list_triggers,
    get_trigger,
    delete_trigger,
    pause_trigger,
    resume_trigger,
    rotate_secret,
    revoke_trigger,
    flow_hook
))]
pub(crate) struct FlowsDoc;
