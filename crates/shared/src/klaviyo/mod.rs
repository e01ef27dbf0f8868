//! Klaviyo: one typed JSON:API client with cursor paging, per-tier rate limits and error kinds.
//! Each call takes the merchant's key; the client itself (and its rate limiter) is built once per
//! container.

pub mod client;
pub mod error;
pub mod limits;
pub mod scrub;
pub mod types;

pub use client::KlaviyoClient;
pub use error::{retry_read_until, KlaviyoError};
pub use limits::{Endpoint, KlaviyoUsage, RateLimits, Tier};
pub use types::{
    Account, Audience, AudienceKind, BulkImportJob, ImportError, ImportPolling, ImportStatus,
    OrderMetrics, READ_SCOPES,
};
