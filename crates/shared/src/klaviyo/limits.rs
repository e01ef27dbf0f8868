//! Klaviyo's rate limits, enforced in-process before a request leaves: per account (we key by a
//! fingerprint of the merchant's key) and tier, a 1 s burst window and a 60 s steady window.
//!
//! Klaviyo counts in fixed windows whose boundaries we cannot see, so each window here is a
//! *sliding* log of send times: at most `limit` sends in any interval of the window's length,
//! which also keeps us within any fixed window the server uses. Limits are shared by every
//! private-key app on the account, so production may scale them down (`RateLimits::Scaled`).
//! A function whose containers pool their share (`RateLimiter::pooled`) paces through
//! [`crate::budget`] instead, one budget per account and tier over all its containers.

use crate::budget::{PoolLimits, PooledBudget, SlotStore};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Klaviyo's rate-limit tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    XS,
    S,
    M,
    L,
    XL,
}

impl Tier {
    /// (burst per second, steady per minute).
    pub const fn limits(self) -> (u32, u32) {
        match self {
            Tier::XS => (1, 15),
            Tier::S => (3, 60),
            Tier::M => (10, 150),
            Tier::L => (75, 750),
            Tier::XL => (350, 3500),
        }
    }
}

/// Every endpoint the client calls, with its tier and scope (NOTES §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Accounts,
    Lists,
    Segments,
    ListProfiles,
    SegmentProfiles,
    Profiles,
    /// `GET /api/profiles` with `additional-fields[profile]=predictive_analytics`.
    ProfilesPredictive,
    Metrics,
    Events,
    UpdateProfile,
    /// `POST /api/profile-bulk-import-jobs`.
    CreateBulkImport,
    /// `GET /api/profile-bulk-import-jobs/{id}` (polling).
    GetBulkImport,
    /// `GET /api/profile-bulk-import-jobs/{id}/import-errors`.
    BulkImportErrors,
}

/// Every scope our calls need: what a merchant's private key must grant.
pub const SCOPES: &[&str] = &[
    "accounts:read",
    "lists:read",
    "segments:read",
    "profiles:read",
    "events:read",
    "metrics:read",
    "profiles:write",
    "lists:write",
];

impl Endpoint {
    pub const fn tier(self) -> Tier {
        match self {
            Endpoint::Accounts => Tier::XS,
            Endpoint::Lists
            | Endpoint::Segments
            | Endpoint::ListProfiles
            | Endpoint::SegmentProfiles
            | Endpoint::Profiles
            | Endpoint::UpdateProfile => Tier::L,
            Endpoint::ProfilesPredictive
            | Endpoint::Metrics
            | Endpoint::CreateBulkImport
            | Endpoint::GetBulkImport
            | Endpoint::BulkImportErrors => Tier::M,
            Endpoint::Events => Tier::XL,
        }
    }

    /// Every scope the endpoint requires (NOTES §1.2).
    pub const fn scopes(self) -> &'static [&'static str] {
        match self {
            Endpoint::Accounts => &["accounts:read"],
            Endpoint::Lists => &["lists:read"],
            Endpoint::Segments => &["segments:read"],
            Endpoint::ListProfiles => &["profiles:read", "lists:read"],
            Endpoint::SegmentProfiles => &["profiles:read", "segments:read"],
            Endpoint::Profiles | Endpoint::ProfilesPredictive | Endpoint::BulkImportErrors => {
                &["profiles:read"]
            }
            Endpoint::Metrics => &["metrics:read"],
            Endpoint::Events => &["events:read"],
            Endpoint::UpdateProfile => &["profiles:write"],
            // `lists:write` even when no list is given.
            Endpoint::CreateBulkImport => &["profiles:write", "lists:write"],
            Endpoint::GetBulkImport => &["profiles:read", "lists:read"],
        }
    }

    /// The scope whose absence a 403 on this endpoint most likely means.
    pub const fn scope(self) -> &'static str {
        match self {
            Endpoint::Accounts => "accounts:read",
            Endpoint::Lists | Endpoint::ListProfiles => "lists:read",
            Endpoint::Segments | Endpoint::SegmentProfiles => "segments:read",
            Endpoint::Profiles | Endpoint::ProfilesPredictive => "profiles:read",
            Endpoint::Metrics => "metrics:read",
            Endpoint::Events => "events:read",
            Endpoint::UpdateProfile => "profiles:write",
            // Read scopes are probed at connect; write scopes cannot be, and bulk import is
            // the one call that needs lists:write.
            Endpoint::CreateBulkImport => "lists:write",
            Endpoint::GetBulkImport | Endpoint::BulkImportErrors => "profiles:read",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Endpoint::Accounts => "GET /api/accounts",
            Endpoint::Lists => "GET /api/lists",
            Endpoint::Segments => "GET /api/segments",
            Endpoint::ListProfiles => "GET /api/lists/{id}/relationships/profiles",
            Endpoint::SegmentProfiles => "GET /api/segments/{id}/relationships/profiles",
            Endpoint::Profiles => "GET /api/profiles",
            Endpoint::ProfilesPredictive => "GET /api/profiles (predictive)",
            Endpoint::Metrics => "GET /api/metrics",
            Endpoint::Events => "GET /api/events",
            Endpoint::UpdateProfile => "PATCH /api/profiles/{id}",
            Endpoint::CreateBulkImport => "POST /api/profile-bulk-import-jobs",
            Endpoint::GetBulkImport => "GET /api/profile-bulk-import-jobs/{id}",
            Endpoint::BulkImportErrors => "GET /api/profile-bulk-import-jobs/{id}/import-errors",
        }
    }
}

/// How strictly the client limits itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateLimits {
    /// Klaviyo's published limits times a factor (1.0 = as published; below 1 leaves headroom for
    /// other apps on the account; above 1 for tests against a relaxed sandbox).
    Scaled(f64),
    /// A factor per tier, in [`Tier`] order (XS, S, M, L, XL): a container's share where the
    /// functions split the tiers differently (the fan-out pages on L, the worker reads on XL).
    Tiered([f64; 5]),
    /// No client-side limiting (tests that want the server's 429s).
    Unlimited,
}

impl RateLimits {
    /// The factor applied to `tier`'s published limits; `None` when unlimited.
    pub fn factor(&self, tier: Tier) -> Option<f64> {
        match self {
            RateLimits::Scaled(f) => Some(*f),
            RateLimits::Tiered(f) => Some(f[tier as usize]),
            RateLimits::Unlimited => None,
        }
    }

    pub const fn real() -> Self {
        RateLimits::Scaled(1.0)
    }
    pub const fn unlimited() -> Self {
        RateLimits::Unlimited
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::real()
    }
}

/// Counters for benchmarks and logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KlaviyoUsage {
    /// Requests sent (including retries) by endpoint name.
    pub requests: BTreeMap<&'static str, u64>,
    /// 429 responses received.
    pub throttled: u64,
    /// Retries after 5xx, network errors or Cloudflare challenges.
    pub transient_retries: u64,
    /// Time spent waiting: for the local limiter and for `Retry-After`.
    pub waited: Duration,
}

/// The first 8 hex digits of SHA-256 of the key: identifies an account's bucket without holding
/// the key itself.
pub fn key_fingerprint(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..4])
}

#[derive(Default)]
struct Window {
    sent: VecDeque<Instant>,
}

impl Window {
    /// When one more send fits: now, or when the oldest send in the window ages out.
    fn ready_at(&mut self, now: Instant, span: Duration, limit: usize) -> Instant {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= span)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < limit {
            now
        } else {
            self.sent[self.sent.len() - limit] + span
        }
    }
}

#[derive(Default)]
struct Windows {
    burst: Window,
    steady: Window,
}

pub(crate) struct RateLimiter {
    mode: RateLimits,
    windows: Mutex<HashMap<(String, Tier), Windows>>,
    pool: Option<Pool>,
    usage: Mutex<KlaviyoUsage>,
}

/// The limits pooled by every container of a function ([`crate::budget`]): `mode`'s factors
/// are then the function's share, not one container's.
struct Pool {
    store: Arc<dyn SlotStore>,
    name: String,
    budgets: Mutex<HashMap<(String, Tier), Arc<PooledBudget>>>,
}

impl RateLimiter {
    pub(crate) fn new(mode: RateLimits) -> Self {
        Self {
            mode,
            windows: Mutex::new(HashMap::new()),
            pool: None,
            usage: Mutex::new(KlaviyoUsage::default()),
        }
    }

    /// Every container built with the same `store` and `name` shares one budget per account
    /// and tier.
    pub(crate) fn pooled(mode: RateLimits, store: Arc<dyn SlotStore>, name: &str) -> Self {
        Self {
            pool: Some(Pool {
                store,
                name: name.to_owned(),
                budgets: Mutex::new(HashMap::new()),
            }),
            ..Self::new(mode)
        }
    }

    fn pooled_budget(&self, fingerprint: &str, tier: Tier) -> Option<Arc<PooledBudget>> {
        let pool = self.pool.as_ref()?;
        let factor = self.mode.factor(tier)?;
        let mut budgets = pool.budgets.lock().unwrap();
        let budget = budgets
            .entry((fingerprint.to_owned(), tier))
            .or_insert_with(|| {
                let (burst, steady) = tier.limits();
                let limits = PoolLimits::new(f64::from(steady) * factor, f64::from(burst) * factor);
                Arc::new(PooledBudget::new(
                    pool.store.clone(),
                    format!("klaviyo#{}#{fingerprint}#{tier:?}", pool.name),
                    limits,
                ))
            });
        Some(budget.clone())
    }

    fn limits(&self, tier: Tier) -> Option<(usize, usize)> {
        match self.mode {
            RateLimits::Unlimited => None,
            RateLimits::Scaled(_) | RateLimits::Tiered(_) => {
                let factor = self.mode.factor(tier).unwrap_or(1.0);
                let (burst, steady) = tier.limits();
                let scale = |n: u32| ((n as f64 * factor).floor() as usize).max(1);
                Some((scale(burst), scale(steady)))
            }
        }
    }

    /// Wait until both windows of (`fingerprint`, tier of `endpoint`) have room, then count the send.
    pub(crate) async fn acquire(&self, fingerprint: &str, endpoint: Endpoint) {
        if let Some(budget) = self.pooled_budget(fingerprint, endpoint.tier()) {
            let waited = budget.acquire("", 1).await;
            if waited > Duration::from_millis(1) {
                self.add_wait(waited);
            }
        } else if let Some((burst, steady)) = self.limits(endpoint.tier()) {
            let started = Instant::now();
            loop {
                let ready = {
                    let mut all = self.windows.lock().unwrap();
                    let windows = all
                        .entry((fingerprint.to_owned(), endpoint.tier()))
                        .or_default();
                    let now = Instant::now();
                    let ready = windows
                        .burst
                        .ready_at(now, Duration::from_secs(1), burst)
                        .max(
                            windows
                                .steady
                                .ready_at(now, Duration::from_secs(60), steady),
                        );
                    if ready <= now {
                        windows.burst.sent.push_back(now);
                        windows.steady.sent.push_back(now);
                        None
                    } else {
                        Some(ready - now)
                    }
                };
                match ready {
                    None => break,
                    Some(wait) => tokio::time::sleep(wait + Duration::from_millis(5)).await,
                }
            }
            let waited = started.elapsed();
            if waited > Duration::from_millis(1) {
                self.add_wait(waited);
            }
        }
        *self
            .usage
            .lock()
            .unwrap()
            .requests
            .entry(endpoint.name())
            .or_default() += 1;
    }

    pub(crate) fn mode(&self) -> RateLimits {
        self.mode
    }

    pub(crate) fn add_wait(&self, waited: Duration) {
        self.usage.lock().unwrap().waited += waited;
    }
    pub(crate) fn count_throttled(&self) {
        self.usage.lock().unwrap().throttled += 1;
    }
    pub(crate) fn count_transient(&self) {
        self.usage.lock().unwrap().transient_retries += 1;
    }
    pub(crate) fn usage(&self) -> KlaviyoUsage {
        self.usage.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_map_to_the_published_tiers() {
        assert_eq!(Endpoint::Accounts.tier(), Tier::XS);
        assert_eq!(Endpoint::Lists.tier(), Tier::L);
        assert_eq!(Endpoint::ProfilesPredictive.tier(), Tier::M);
        assert_eq!(Endpoint::Metrics.tier(), Tier::M);
        assert_eq!(Endpoint::Events.tier(), Tier::XL);
        assert_eq!(Endpoint::CreateBulkImport.tier(), Tier::M);
        assert_eq!(Endpoint::GetBulkImport.tier(), Tier::M);
        assert_eq!(Endpoint::BulkImportErrors.tier(), Tier::M);
        assert_eq!(
            Endpoint::CreateBulkImport.scopes(),
            ["profiles:write", "lists:write"]
        );
        assert_eq!(Endpoint::BulkImportErrors.scopes(), ["profiles:read"]);
        for endpoint in [
            Endpoint::Profiles,
            Endpoint::CreateBulkImport,
            Endpoint::GetBulkImport,
        ] {
            assert!(
                endpoint.scopes().contains(&endpoint.scope()),
                "{endpoint:?}"
            );
        }
        assert_eq!(Tier::S.limits(), (3, 60));
    }

    #[test]
    fn fingerprint_is_eight_hex_digits_and_hides_the_key() {
        let fp = key_fingerprint("pk_abcdefghijklmnopqrstuvwxyz0123");
        assert_eq!(fp.len(), 8);
        assert!(!fp.contains("abc"));
        assert_eq!(fp, key_fingerprint("pk_abcdefghijklmnopqrstuvwxyz0123"));
    }

    #[tokio::test]
    async fn the_burst_window_spaces_calls_a_second_apart_for_xs() {
        let limiter = RateLimiter::new(RateLimits::real());
        let started = Instant::now();
        limiter.acquire("acct", Endpoint::Accounts).await;
        limiter.acquire("acct", Endpoint::Accounts).await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
        // Another account (another key) is not held up.
        let other = Instant::now();
        limiter.acquire("other", Endpoint::Accounts).await;
        assert!(other.elapsed() < Duration::from_millis(100));
        let usage = limiter.usage();
        assert_eq!(usage.requests["GET /api/accounts"], 3);
        assert!(usage.waited >= Duration::from_millis(900));
    }

    #[test]
    fn the_steady_window_binds_once_the_minute_is_used_up() {
        let mut window = Window::default();
        let t0 = Instant::now();
        for i in 0..15 {
            window.sent.push_back(t0 + Duration::from_millis(i * 10));
        }
        let ready = window.ready_at(t0 + Duration::from_secs(1), Duration::from_secs(60), 15);
        assert_eq!(ready, t0 + Duration::from_secs(60));
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let limiter = RateLimiter::new(RateLimits::unlimited());
        let started = Instant::now();
        for _ in 0..20 {
            limiter.acquire("acct", Endpoint::Accounts).await;
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
