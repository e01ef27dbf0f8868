use serde::{Deserialize, Serialize};

/// The Klaviyo account a key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    /// `attributes.contact_information.organization_name`.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AudienceKind {
    List,
    Segment,
}

impl AudienceKind {
    /// The path segment under `/api/`.
    pub fn path(self) -> &'static str {
        match self {
            AudienceKind::List => "lists",
            AudienceKind::Segment => "segments",
        }
    }
}

/// A list or segment a merchant can personalise for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Audience {
    pub id: String,
    pub name: String,
    pub kind: AudienceKind,
}

/// The read scopes the product needs; `probe_read_scopes` reports the missing ones.
pub const READ_SCOPES: [&str; 5] = [
    "lists:read",
    "segments:read",
    "profiles:read",
    "events:read",
    "metrics:read",
];

/// The ids of the order metrics (`None` when the account has no such metric, e.g. no store
/// integration yet). Cache them per merchant: Get Metrics is on the M tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMetrics {
    pub placed_order: Option<String>,
    pub ordered_product: Option<String>,
}

/// A profile bulk import job's status. `Failed` is not in the published enum but is accepted;
/// any other unknown value reads as `Processing` (keep polling until the deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    Queued,
    Processing,
    Complete,
    Cancelled,
    Failed,
}

impl ImportStatus {
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "queued" => ImportStatus::Queued,
            "complete" | "completed" => ImportStatus::Complete,
            "cancelled" | "canceled" => ImportStatus::Cancelled,
            "failed" => ImportStatus::Failed,
            _ => ImportStatus::Processing,
        }
    }

    /// Complete, cancelled or failed: polling stops.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ImportStatus::Complete | ImportStatus::Cancelled | ImportStatus::Failed
        )
    }
}

/// `GET /api/profile-bulk-import-jobs/{id}`: progress of one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkImportJob {
    pub id: String,
    pub status: ImportStatus,
    pub total_count: u64,
    pub completed_count: u64,
    pub failed_count: u64,
    /// From `created_at` to `completed_at` (whole seconds), once the job is done.
    pub took: Option<std::time::Duration>,
}

/// How [`super::KlaviyoClient::wait_bulk_import`] polls: the first wait, doubling up to
/// `max_wait`, until the job is final or `deadline` (from the call) has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportPolling {
    pub first_wait: std::time::Duration,
    pub max_wait: std::time::Duration,
    pub deadline: std::time::Duration,
}

impl Default for ImportPolling {
    /// NOTES §1.2: poll with backoff 5–30 s; give up after 15 minutes.
    fn default() -> Self {
        Self {
            first_wait: std::time::Duration::from_secs(5),
            max_wait: std::time::Duration::from_secs(30),
            deadline: std::time::Duration::from_secs(15 * 60),
        }
    }
}

/// One entry of a job's `import-errors`, without personal data: `detail` has anything that
/// looks like an email address or phone number replaced, `original_payload` is dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportError {
    /// Klaviyo's error code, e.g. `invalid`.
    pub code: String,
    /// Klaviyo's detail text, scrubbed of emails and phone numbers.
    pub detail: String,
    /// The profile the error is about, from `original_payload.id` when present.
    pub profile_id: Option<String>,
}
