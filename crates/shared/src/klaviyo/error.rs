use std::time::Duration;

/// What can go wrong calling Klaviyo. Messages never include the API key (nor profile data:
/// 400 details are reduced to Klaviyo's error code, title and the offending field).
#[derive(Debug, thiserror::Error)]
pub enum KlaviyoError {
    /// 401 `authentication_failed` (key invalid or revoked) or `not_authenticated`.
    #[error("Klaviyo rejected the API key (it is invalid or revoked)")]
    Unauthorized,
    /// A JSON 403 `permission_denied`: the key lacks this scope.
    #[error("the Klaviyo API key lacks the {0} scope")]
    MissingScope(String),
    /// Still 429 after the allowed retries.
    #[error("Klaviyo is rate limiting us; retry after {} s", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    /// 5xx, network failures, or a Cloudflare challenge (403 `text/html`).
    #[error("Klaviyo is unavailable: {0}")]
    Transient(String),
    /// 400 (or another 4xx we do not expect): our request is wrong.
    #[error("Klaviyo refused the request: {0}")]
    Invalid(String),
}

impl KlaviyoError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KlaviyoError::Throttled { .. } | KlaviyoError::Transient(_)
        )
    }

    pub(crate) fn network(err: reqwest::Error) -> Self {
        // Without the URL: a query string could carry profile ids.
        KlaviyoError::Transient(err.without_url().to_string())
    }
}
