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
    /// A write whose first attempt may have been applied (a 5xx or a lost response after the
    /// request was sent). Never retried blindly: look at Klaviyo before writing again.
    #[error("Klaviyo may or may not have applied the write: {0}")]
    MaybeApplied(String),
    /// 404: what the request names (a list, a segment) does not exist in this account.
    #[error("Klaviyo has no such resource: {0}")]
    NotFound(String),
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

/// Run a read again while Klaviyo throttles it or is briefly unavailable, until `deadline`:
/// the client has already absorbed a few 429s, and a read that still fails is better retried
/// in place than handed to SQS (whose redelivery comes after the queue's visibility timeout).
/// Returns the last error once another wait would pass the deadline. Reads only: a write may
/// have been applied.
pub async fn retry_read_until<T, F, Fut>(
    deadline: tokio::time::Instant,
    mut read: F,
) -> Result<T, KlaviyoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KlaviyoError>>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        let wait = match read().await {
            Err(KlaviyoError::Throttled { retry_after }) => retry_after.max(backoff),
            Err(KlaviyoError::Transient(_)) => backoff,
            other => return other,
        };
        if tokio::time::Instant::now() + wait >= deadline {
            return read().await;
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_throttled_read_is_retried_until_it_succeeds_within_the_deadline() {
        let calls = AtomicU32::new(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let out = retry_read_until(deadline, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(KlaviyoError::Throttled {
                    retry_after: Duration::from_secs(2),
                })
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_throttled_past_the_deadline_returns_the_error_and_other_errors_at_once() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let started = tokio::time::Instant::now();
        let out: Result<(), _> = retry_read_until(deadline, || async {
            Err(KlaviyoError::Throttled {
                retry_after: Duration::from_secs(2),
            })
        })
        .await;
        assert!(matches!(out, Err(KlaviyoError::Throttled { .. })));
        assert!(
            tokio::time::Instant::now() <= deadline,
            "never waits past the deadline"
        );
        assert!(started.elapsed() >= Duration::from_secs(2), "it did wait");
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry_read_until(deadline, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(KlaviyoError::Unauthorized)
        })
        .await;
        assert!(matches!(out, Err(KlaviyoError::Unauthorized)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
