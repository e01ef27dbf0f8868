use super::Invalid;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A secret string: serialisable (it has to reach Secrets Manager) but never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A secret of the app itself (the Shopify client secret, the audit pepper), read on first use
/// and kept for the container's life. Not at init: a function then starts without a network
/// call, the routes that never need the secret never wait for it, and an unreadable secret
/// fails only the requests that need it, each of which tries again, instead of every start.
#[derive(Clone)]
pub struct AppSecret(Arc<AppSecretInner>);

struct AppSecretInner {
    value: tokio::sync::OnceCell<Secret>,
    fetch: Box<dyn Fn() -> BoxFuture<'static, Result<Secret, SecretUnavailable>> + Send + Sync>,
}

/// The secret could not be read (the text names the secret and the failure, never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretUnavailable(pub String);

impl AppSecret {
    /// Read by `fetch` on first use; concurrent first uses share one read, and a failed read
    /// is retried by the next use.
    pub fn lazy<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Secret, SecretUnavailable>> + Send + 'static,
    {
        Self(Arc::new(AppSecretInner {
            value: tokio::sync::OnceCell::new(),
            fetch: Box::new(move || Box::pin(fetch())),
        }))
    }

    /// A secret already in hand (tests, tools).
    pub fn known(value: Secret) -> Self {
        Self(Arc::new(AppSecretInner {
            value: tokio::sync::OnceCell::new_with(Some(value)),
            fetch: Box::new(|| {
                Box::pin(async { Err(SecretUnavailable("a known secret is never fetched".into())) })
            }),
        }))
    }

    pub async fn get(&self) -> Result<&Secret, SecretUnavailable> {
        self.0.value.get_or_try_init(|| (self.0.fetch)()).await
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret([redacted])")
    }
}

/// A Klaviyo private API key (`pk_` followed by letters and digits).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KlaviyoApiKey(Secret);

impl KlaviyoApiKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let body = raw
            .strip_prefix("pk_")
            .ok_or(Invalid("a Klaviyo private API key starts with pk_"))?;
        if (20..=80).contains(&body.len()) && body.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(Secret::new(raw)))
        } else {
            Err(Invalid(
                "a Klaviyo private API key is pk_ followed by 20 to 80 letters or digits",
            ))
        }
    }
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for KlaviyoApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KlaviyoApiKey([redacted])")
    }
}

impl TryFrom<String> for KlaviyoApiKey {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<KlaviyoApiKey> for String {
    fn from(value: KlaviyoApiKey) -> Self {
        value.0 .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An app secret whose reads are counted and fail while `failing` says so.
    fn counted(failing: Arc<std::sync::atomic::AtomicBool>) -> (AppSecret, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let secret = AppSecret::lazy(move || {
            let counter = counter.clone();
            let failing = failing.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                if failing.load(Ordering::SeqCst) {
                    Err(SecretUnavailable(
                        "secretsmanager:GetSecretValue: throttled".into(),
                    ))
                } else {
                    Ok(Secret::new("s3cr3t"))
                }
            }
        });
        (secret, reads)
    }

    #[tokio::test]
    async fn an_app_secret_is_read_once_however_many_ask_at_once() {
        let (secret, reads) = counted(Default::default());
        assert_eq!(
            reads.load(Ordering::SeqCst),
            0,
            "nothing is read before first use"
        );
        let clone = secret.clone();
        let (a, b, c) = tokio::join!(secret.get(), secret.get(), clone.get());
        assert_eq!(a.unwrap().expose(), "s3cr3t");
        assert_eq!(b.unwrap().expose(), "s3cr3t");
        assert_eq!(c.unwrap().expose(), "s3cr3t");
        secret.get().await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_read_is_retried_by_the_next_use() {
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (secret, reads) = counted(failing.clone());
        let err = secret.get().await.unwrap_err();
        assert!(err.0.contains("throttled"));
        failing.store(false, Ordering::SeqCst);
        assert_eq!(secret.get().await.unwrap().expose(), "s3cr3t");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_known_secret_is_never_fetched_and_never_printed() {
        let secret = AppSecret::known(Secret::new("s3cr3t"));
        assert_eq!(secret.get().await.unwrap().expose(), "s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = KlaviyoApiKey::parse("pk_abcdefghijklmnopqrstuvwxyz0123").unwrap();
        assert!(!format!("{key:?}").contains("abcdef"));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "abc",
            "pk_short",
            "sk_abcdefghijklmnopqrstuvwxyz0123",
            "pk_abcdefghijklmnopqrst uvwxyz",
        ] {
            assert!(
                KlaviyoApiKey::parse(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }
}
