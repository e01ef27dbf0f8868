use super::Invalid;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

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

/// An app secret as Secrets Manager holds it: the secret itself (a plain string, the original
/// format), or, while a rotation is under way, the secret in use and the one it replaced:
///
/// ```json
/// {"current": "<new>", "previous": "<old>", "rotated_at": 1767225600, "grace_secs": 86400}
/// ```
///
/// `rotated_at` (unix seconds or RFC 3339) is when the previous secret stopped being the one the
/// vendor signs with; signatures made with it are accepted until `rotated_at` + the grace period
/// (`grace_secs`, else the caller's default), never after. Everything that *sends* the secret
/// (token requests) uses `current` only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVersions {
    current: Secret,
    previous: Option<PreviousSecret>,
}

#[derive(Clone, PartialEq, Eq)]
struct PreviousSecret {
    value: Secret,
    rotated_at: i64,
    grace_secs: Option<i64>,
}

impl SecretVersions {
    /// A secret that was never rotated (or whose rotation is over).
    pub fn single(current: Secret) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Read the stored text: a JSON object is a rotation document and must be a valid one; any
    /// other text is the secret itself, byte for byte.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(&raw)
        else {
            return Ok(Self::single(Secret(raw)));
        };
        let text = |key: &str| doc.get(key).and_then(serde_json::Value::as_str);
        let current = text("current").filter(|s| !s.is_empty()).ok_or(Invalid(
            "a rotated app secret needs a non-empty \"current\" string",
        ))?;
        let previous = match doc.get("previous") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => {
                let value = value.as_str().filter(|s| !s.is_empty()).ok_or(Invalid(
                    "\"previous\" must be a non-empty string (or absent)",
                ))?;
                let rotated_at = doc.get("rotated_at").and_then(unix_seconds).ok_or(Invalid(
                    "\"previous\" needs \"rotated_at\" (unix seconds or RFC 3339): without it the \
                     old secret would be accepted for ever",
                ))?;
                let grace_secs = match doc.get("grace_secs") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(g) => Some(g.as_i64().filter(|g| *g >= 0).ok_or(Invalid(
                        "\"grace_secs\" must be a whole number of seconds, 0 or more",
                    ))?),
                };
                Some(PreviousSecret {
                    value: Secret::new(value),
                    rotated_at,
                    grace_secs,
                })
            }
        };
        Ok(Self {
            current: Secret::new(current),
            previous,
        })
    }

    /// The secret in use: the one to send, and the first to check a signature with.
    pub fn current(&self) -> &Secret {
        &self.current
    }

    /// The secrets a signature made at `now` may have been made with: the current one, and the
    /// previous one until `rotated_at` + its grace (`grace_secs`, else `default_grace_secs`).
    pub fn accepted_at(&self, now: i64, default_grace_secs: i64) -> Vec<&Secret> {
        let mut accepted = vec![&self.current];
        if let Some(p) = &self.previous {
            let grace = p.grace_secs.unwrap_or(default_grace_secs).max(0);
            if now <= p.rotated_at.saturating_add(grace) {
                accepted.push(&p.value);
            }
        }
        accepted
    }
}

/// `1767225600` or `"2026-01-01T00:00:00Z"`.
fn unix_seconds(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
                .map(time::OffsetDateTime::unix_timestamp)
        }
        _ => None,
    }
}

impl fmt::Debug for SecretVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersions")
            .field("current", &self.current)
            .field(
                "previous",
                &self.previous.as_ref().map(|p| (&p.value, p.rotated_at)),
            )
            .finish()
    }
}

/// How long an app secret read from Secrets Manager is used before it is read again, so a
/// rotation reaches every warm container within this (the rotation procedure in the README
/// waits this long before the old secret is revoked at the vendor).
pub const APP_SECRET_MAX_AGE: Duration = Duration::from_secs(300);

/// A secret of the app itself (the Shopify client secret, the audit pepper), read on first use
/// and read again once it is [`APP_SECRET_MAX_AGE`] old. Not at init: a function then starts
/// without a network call, the routes that never need the secret never wait for it, and an
/// unreadable secret fails only the requests that need it, each of which tries again, instead of
/// every start. A re-read that fails (or finds a malformed document) keeps the value in hand and
/// is logged; a changed value is used from then on.
#[derive(Clone)]
pub struct AppSecret(Arc<AppSecretInner>);

type Fetch = Box<dyn Fn() -> BoxFuture<'static, Result<Secret, SecretUnavailable>> + Send + Sync>;

struct AppSecretInner {
    fetch: Fetch,
    /// The first value read, followed by every different value read since: append-only, so a
    /// reference handed out stays valid for the container's life (a rotation adds one link).
    first: tokio::sync::OnceCell<Link>,
    /// When the newest value was read (or a re-read attempted); `None` for a known secret,
    /// which is never read again.
    checked: Option<Mutex<Instant>>,
    /// One re-read at a time; the others go on with the value in hand.
    rereading: tokio::sync::Mutex<()>,
}

struct Link {
    versions: SecretVersions,
    next: OnceLock<Box<Link>>,
}

impl Link {
    fn new(versions: SecretVersions) -> Self {
        Self {
            versions,
            next: OnceLock::new(),
        }
    }
    fn newest(&self) -> &Link {
        let mut link = self;
        while let Some(next) = link.next.get() {
            link = next;
        }
        link
    }
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
            fetch: Box::new(move || Box::pin(fetch())),
            first: tokio::sync::OnceCell::new(),
            checked: Some(Mutex::new(Instant::now())),
            rereading: tokio::sync::Mutex::new(()),
        }))
    }

    /// A secret already in hand (tests, tools); never read again.
    pub fn known(value: Secret) -> Self {
        Self::known_versions(SecretVersions::single(value))
    }

    /// A rotation already in hand (tests, tools).
    pub fn known_versions(versions: SecretVersions) -> Self {
        Self(Arc::new(AppSecretInner {
            fetch: Box::new(|| {
                Box::pin(async { Err(SecretUnavailable("a known secret is never fetched".into())) })
            }),
            first: tokio::sync::OnceCell::new_with(Some(Link::new(versions))),
            checked: None,
            rereading: tokio::sync::Mutex::new(()),
        }))
    }

    /// The secret in use (the one to send).
    pub async fn get(&self) -> Result<&Secret, SecretUnavailable> {
        Ok(self.versions().await?.current())
    }

    /// The secrets a signature made at `now` may carry: the current one and, during a
    /// rotation's grace, the previous one (see [`SecretVersions::accepted_at`]).
    pub async fn accepted_at(
        &self,
        now: i64,
        default_grace_secs: i64,
    ) -> Result<Vec<&Secret>, SecretUnavailable> {
        Ok(self.versions().await?.accepted_at(now, default_grace_secs))
    }

    /// The newest versions read (reading them first, or again once they are old).
    pub async fn versions(&self) -> Result<&SecretVersions, SecretUnavailable> {
        let inner = &self.0;
        let first = inner
            .first
            .get_or_try_init(|| async {
                let versions = self.read().await?;
                self.mark_checked();
                Ok::<_, SecretUnavailable>(Link::new(versions))
            })
            .await?;
        if self.is_stale() {
            if let Ok(_only_reader) = inner.rereading.try_lock() {
                if self.is_stale() {
                    self.reread(first).await;
                }
            }
        }
        Ok(&first.newest().versions)
    }

    async fn read(&self) -> Result<SecretVersions, SecretUnavailable> {
        let raw = (self.0.fetch)().await?;
        SecretVersions::parse(raw.0)
            .map_err(|e| SecretUnavailable(format!("the app secret is not usable: {}", e.0)))
    }

    /// Read again; a different value becomes the newest link. Called with `rereading` held.
    async fn reread(&self, first: &Link) {
        match self.read().await {
            Ok(versions) => {
                let newest = first.newest();
                if versions != newest.versions {
                    let _ = newest.next.set(Box::new(Link::new(versions)));
                    tracing::info!(
                        "an app secret changed in Secrets Manager; the new value is in use"
                    );
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read an app secret again; the value in hand stays in use");
            }
        }
        self.mark_checked();
    }

    fn is_stale(&self) -> bool {
        self.0.checked.as_ref().is_some_and(|checked| {
            checked.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= APP_SECRET_MAX_AGE
        })
    }

    fn mark_checked(&self) {
        if let Some(checked) = &self.0.checked {
            *checked.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
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

    /// An app secret that reads whatever `stored` holds at the time, counting reads.
    fn stored(stored: Arc<Mutex<Result<String, String>>>) -> (AppSecret, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = reads.clone();
        let secret = AppSecret::lazy(move || {
            let value = stored.lock().unwrap().clone();
            counter.fetch_add(1, Ordering::SeqCst);
            async move { value.map(Secret::new).map_err(SecretUnavailable) }
        });
        (secret, reads)
    }

    const ROTATED_AT: i64 = 1_800_000_000;

    fn rotation(grace: Option<i64>) -> String {
        let mut doc = serde_json::json!({
            "current": "new-secret", "previous": "old-secret", "rotated_at": ROTATED_AT,
        });
        if let Some(g) = grace {
            doc["grace_secs"] = g.into();
        }
        doc.to_string()
    }

    fn exposed(secrets: Vec<&Secret>) -> Vec<&str> {
        secrets.into_iter().map(Secret::expose).collect()
    }

    #[test]
    fn a_plain_secret_is_the_current_one_byte_for_byte() {
        for raw in [
            "shpss_0123456789abcdef",
            " spaced ",
            "42",
            "\"quoted\"",
            "[1]",
        ] {
            let v = SecretVersions::parse(raw.to_owned()).unwrap();
            assert_eq!(v.current().expose(), raw);
            assert_eq!(exposed(v.accepted_at(ROTATED_AT, 3600)), [raw]);
        }
    }

    #[test]
    fn the_previous_secret_is_accepted_until_rotated_at_plus_the_grace_and_never_after() {
        let v = SecretVersions::parse(rotation(None)).unwrap();
        assert_eq!(v.current().expose(), "new-secret");
        let grace = 24 * 3600;
        for now in [ROTATED_AT - 60, ROTATED_AT, ROTATED_AT + grace] {
            assert_eq!(
                exposed(v.accepted_at(now, grace)),
                ["new-secret", "old-secret"],
                "{now}"
            );
        }
        assert_eq!(
            exposed(v.accepted_at(ROTATED_AT + grace + 1, grace)),
            ["new-secret"]
        );
    }

    #[test]
    fn a_rotation_may_set_its_own_grace_and_rfc3339_times() {
        let v = SecretVersions::parse(rotation(Some(60))).unwrap();
        assert_eq!(v.accepted_at(ROTATED_AT + 60, 86_400).len(), 2);
        assert_eq!(v.accepted_at(ROTATED_AT + 61, 86_400).len(), 1);
        let none = SecretVersions::parse(rotation(Some(0))).unwrap();
        assert_eq!(none.accepted_at(ROTATED_AT + 1, 86_400).len(), 1);
        let text = r#"{"current":"n","previous":"o","rotated_at":"2027-01-15T08:00:00Z"}"#;
        let v = SecretVersions::parse(text.to_owned()).unwrap();
        let at = 1_800_000_000; // 2027-01-15T08:00:00Z
        assert_eq!(v.accepted_at(at + 10, 10).len(), 2);
        assert_eq!(v.accepted_at(at + 11, 10).len(), 1);
    }

    #[test]
    fn a_rotation_document_without_what_it_needs_is_refused() {
        for bad in [
            r#"{"previous":"o","rotated_at":1}"#,
            r#"{"current":"","previous":"o","rotated_at":1}"#,
            r#"{"current":"n","previous":"o"}"#,
            r#"{"current":"n","previous":"o","rotated_at":"yesterday"}"#,
            r#"{"current":"n","previous":"o","rotated_at":1,"grace_secs":-5}"#,
            r#"{"current":"n","previous":7,"rotated_at":1}"#,
        ] {
            let err = SecretVersions::parse(bad.to_owned()).unwrap_err();
            assert!(!err.0.contains("\"o\""), "{bad}: {}", err.0);
        }
        let finished = SecretVersions::parse(r#"{"current":"n","previous":null}"#.into()).unwrap();
        assert_eq!(exposed(finished.accepted_at(0, 86_400)), ["n"]);
    }

    #[test]
    fn debug_never_shows_either_secret() {
        let v = SecretVersions::parse(rotation(None)).unwrap();
        let text = format!("{v:?}");
        assert!(
            !text.contains("new-secret") && !text.contains("old-secret"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_stored_later_is_in_use_once_the_value_in_hand_is_old() {
        let value = Arc::new(Mutex::new(Ok("old-secret".to_owned())));
        let (secret, reads) = stored(value.clone());
        let before = secret.get().await.unwrap();
        assert_eq!(before.expose(), "old-secret");

        *value.lock().unwrap() = Ok(rotation(None));
        tokio::time::advance(APP_SECRET_MAX_AGE - Duration::from_secs(1)).await;
        assert_eq!(secret.get().await.unwrap().expose(), "old-secret");
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "not read again while fresh"
        );

        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(secret.get().await.unwrap().expose(), "new-secret");
        assert_eq!(
            exposed(secret.accepted_at(ROTATED_AT, 3600).await.unwrap()),
            ["new-secret", "old-secret"]
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(
            before.expose(),
            "old-secret",
            "what was handed out stays valid"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_malformed_reread_keeps_the_value_in_hand() {
        let value = Arc::new(Mutex::new(Ok("s3cr3t".to_owned())));
        let (secret, reads) = stored(value.clone());
        assert_eq!(secret.get().await.unwrap().expose(), "s3cr3t");
        for broken in [
            Err("secretsmanager:GetSecretValue: throttled".to_owned()),
            Ok(r#"{"previous":"x","rotated_at":1}"#.to_owned()),
        ] {
            *value.lock().unwrap() = broken;
            tokio::time::advance(APP_SECRET_MAX_AGE).await;
            assert_eq!(secret.get().await.unwrap().expose(), "s3cr3t");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_malformed_first_read_fails_and_names_no_value() {
        let value = Arc::new(Mutex::new(Ok(
            r#"{"current":"","previous":"leaky"}"#.to_owned()
        )));
        let (secret, _) = stored(value);
        let err = secret.get().await.unwrap_err();
        assert!(
            err.0.contains("current") && !err.0.contains("leaky"),
            "{}",
            err.0
        );
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
