//! Klaviyo REST (JSON:API) emulation served at the root (`/api/...`).

pub mod data;
mod django;
pub mod filter;
pub(crate) mod flows;
pub mod limits;
mod routes;
pub mod seeding;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use serde_json::{json, Value};

use self::limits::{Decision, Tier};
use crate::state::{AppState, Stats};
use crate::util::request_base;

pub const JSON_API: &str = "application/vnd.api+json";

/// One served route, in the spec's templated form (what `/_sandbox/routes` reports).
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub scopes: &'static [&'static str],
    pub tier: Tier,
}

impl RouteSpec {
    /// The rate-limit bucket. Creating, polling and reading the errors of bulk import jobs are
    /// one M tier (10/s, 150/min) and draw on one budget here, at least as hard as separate
    /// buckets: a client that polls hard slows its own job creation.
    pub fn key(&self) -> &'static str {
        const IMPORT_JOBS: &str = "/api/profile-bulk-import-jobs";
        if self.path.starts_with(IMPORT_JOBS) {
            IMPORT_JOBS
        } else {
            self.path
        }
    }
}

macro_rules! route {
    ($name:ident, $m:literal, $p:literal, [$($s:literal),*], $t:ident) => {
        pub const $name: RouteSpec = RouteSpec { method: $m, path: $p, scopes: &[$($s),*], tier: Tier::$t };
    };
}

route!(ACCOUNTS, "GET", "/api/accounts", ["accounts:read"], XS);
route!(LISTS, "GET", "/api/lists", ["lists:read"], L);
route!(SEGMENTS, "GET", "/api/segments", ["segments:read"], L);
route!(
    LIST_MEMBERS,
    "GET",
    "/api/lists/{id}/relationships/profiles",
    ["lists:read", "profiles:read"],
    L
);
route!(
    SEGMENT_MEMBERS,
    "GET",
    "/api/segments/{id}/relationships/profiles",
    ["segments:read", "profiles:read"],
    L
);
route!(PROFILES, "GET", "/api/profiles", ["profiles:read"], L);
route!(PROFILE, "GET", "/api/profiles/{id}", ["profiles:read"], L);
route!(
    PATCH_PROFILE,
    "PATCH",
    "/api/profiles/{id}",
    ["profiles:write"],
    L
);
route!(METRICS, "GET", "/api/metrics", ["metrics:read"], M);
route!(EVENTS, "GET", "/api/events", ["events:read"], XL);
route!(
    CREATE_IMPORT,
    "POST",
    "/api/profile-bulk-import-jobs",
    ["profiles:write", "lists:write"],
    M
);
route!(
    LIST_IMPORTS,
    "GET",
    "/api/profile-bulk-import-jobs",
    ["profiles:read", "lists:read"],
    M
);
route!(
    GET_IMPORT,
    "GET",
    "/api/profile-bulk-import-jobs/{job_id}",
    ["profiles:read", "lists:read"],
    M
);
route!(
    IMPORT_ERRORS,
    "GET",
    "/api/profile-bulk-import-jobs/{id}/import-errors",
    ["profiles:read"],
    M
);

pub const ROUTES: &[&RouteSpec] = &[
    &ACCOUNTS,
    &LISTS,
    &SEGMENTS,
    &LIST_MEMBERS,
    &SEGMENT_MEMBERS,
    &PROFILES,
    &PROFILE,
    &PATCH_PROFILE,
    &METRICS,
    &EVENTS,
    &CREATE_IMPORT,
    &LIST_IMPORTS,
    &GET_IMPORT,
    &IMPORT_ERRORS,
];

pub fn router() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    let table: Vec<(&str, MethodRouter<Arc<AppState>>)> = vec![
        ("/api/accounts", get(routes::get_accounts)),
        ("/api/lists", get(routes::get_lists)),
        ("/api/segments", get(routes::get_segments)),
        (
            "/api/lists/{id}/relationships/profiles",
            get(routes::get_list_members),
        ),
        (
            "/api/segments/{id}/relationships/profiles",
            get(routes::get_segment_members),
        ),
        ("/api/profiles", get(routes::get_profiles)),
        (
            "/api/profiles/{id}",
            get(routes::get_profile).patch(routes::patch_profile),
        ),
        ("/api/metrics", get(routes::get_metrics)),
        ("/api/events", get(routes::get_events)),
        (
            "/api/profile-bulk-import-jobs",
            axum::routing::post(routes::create_import_job)
                .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
                .get(routes::list_import_jobs),
        ),
        (
            "/api/profile-bulk-import-jobs/{id}",
            get(routes::get_import_job),
        ),
        (
            "/api/profile-bulk-import-jobs/{id}/import-errors",
            get(routes::get_import_errors),
        ),
    ];
    // Klaviyo tolerates a trailing slash, so every route is served both ways.
    for (path, method_router) in table {
        r = r
            .route(path, method_router.clone())
            .route(&format!("{path}/"), method_router);
    }
    r
}

/// A Klaviyo JSON:API error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    source: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            source: None,
            retry_after: None,
        }
    }

    pub fn invalid_param(param: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid", "Invalid input.", detail);
        e.source = Some(json!({ "parameter": param }));
        e
    }

    pub fn invalid_pointer(pointer: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid", "Invalid input.", detail);
        e.source = Some(json!({ "pointer": pointer }));
        e
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "Request entity too large.",
            detail,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({
            "id": uuid_now(),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": self.source.unwrap_or_else(|| json!({"pointer": "/data/"})),
        });
        if let Some(obj) = err.as_object_mut() {
            // Live Klaviyo adds an integer status the spec leaves out; mirror it.
            obj.insert("status".into(), json!(self.status.as_u16()));
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, JSON_API)],
            json!({ "errors": [err] }).to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn uuid_now() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = format!(
        "{:032x}",
        nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// What a request learned from authentication and rate limiting.
pub struct Ctx {
    pub account_id: String,
    /// `http://host:port` the client used; links are built on it.
    pub base: String,
    rate_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Ctx {
    pub fn respond(&self, status: StatusCode, body: Value) -> Response {
        let mut resp =
            (status, [(header::CONTENT_TYPE, JSON_API)], body.to_string()).into_response();
        for (k, v) in &self.rate_headers {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
        resp
    }
}

/// Authenticates the key, checks the revision header and scopes, and applies the rate limit
/// of `tier` (which may differ from the route's, e.g. profiles with predictive analytics).
pub fn authorize(
    st: &AppState,
    headers: &HeaderMap,
    route: &RouteSpec,
    bucket: (&'static str, Tier),
) -> Result<Ctx, ApiError> {
    {
        let mut stats = st.stats();
        Stats::bump(
            &mut stats.klaviyo_requests,
            &format!("{} {}", route.method, route.path),
        );
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = match auth.trim().split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("Klaviyo-API-Key") => key.trim(),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
            ))
        }
    };
    let mut store = st.klaviyo();
    let api_key = match store.keys.get(key) {
        Some(k) if !k.revoked => k.clone(),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "Incorrect authentication credentials.",
                "Incorrect authentication credentials.",
            ))
        }
    };
    match headers.get("revision").and_then(|v| v.to_str().ok()) {
        Some(rev) if valid_revision(rev) => {}
        Some(rev) => {
            let mut e = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                format!("Invalid revision '{rev}'. Expected YYYY-MM-DD."),
            );
            e.source = Some(json!({"parameter": "revision"}));
            return Err(e);
        }
        None => {
            let mut e = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                "The 'revision' header is required.",
            );
            e.source = Some(json!({"parameter": "revision"}));
            return Err(e);
        }
    }
    if let Some(missing) = route.scopes.iter().find(|s| !api_key.scopes.contains(**s)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "You do not have permission to perform this action.",
            format!("This API key is missing required scopes: {missing}"),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let decision = store
        .limiter
        .check(&api_key.account_id, bucket.0, bucket.1, now);
    drop(store);
    match decision {
        Decision::Throttled { retry_after_secs } => {
            let mut stats = st.stats();
            Stats::bump(
                &mut stats.klaviyo_throttled,
                &format!("{} {}", route.method, route.path),
            );
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Request was throttled.",
                format!("Request was throttled. Expected available in {retry_after_secs} seconds."),
            );
            e.retry_after = Some(retry_after_secs);
            Err(e)
        }
        Decision::Allowed {
            limit,
            remaining,
            reset_secs,
        } => Ok(Ctx {
            account_id: api_key.account_id,
            base: request_base(headers, &st.base_url),
            rate_headers: vec![
                (
                    HeaderName::from_static("ratelimit-limit"),
                    HeaderValue::from(limit),
                ),
                (
                    HeaderName::from_static("ratelimit-remaining"),
                    HeaderValue::from(remaining),
                ),
                (
                    HeaderName::from_static("ratelimit-reset"),
                    HeaderValue::from(reset_secs),
                ),
            ],
        }),
    }
}

/// Accepts `YYYY-MM-DD` with an optional suffix such as `.pre`.
fn valid_revision(rev: &str) -> bool {
    let date = rev.split('.').next().unwrap_or("");
    crate::util::parse_datetime(date).is_some() && date.len() == 10
}
