//! The Klaviyo client against the in-process sandbox, over real HTTP.

use futures::TryStreamExt;
use serde_json::{json, Map, Value};
use shared::domain::KlaviyoApiKey;
use shared::klaviyo::{AudienceKind, KlaviyoClient, KlaviyoError, RateLimits};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const REVISION: &str = "2026-07-15";

struct Harness {
    sandbox: sandbox::Sandbox,
    http: reqwest::Client,
}

impl Harness {
    async fn start(config: sandbox::SandboxConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sandbox = sandbox::serve(listener, config).await;
        Self {
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    /// Klaviyo's real rate limits on the server side.
    async fn real_limits() -> Self {
        Self::start(sandbox::SandboxConfig {
            klaviyo_limits: sandbox::RateLimits::Real,
            ..Default::default()
        })
        .await
    }

    async fn relaxed() -> Self {
        Self::start(sandbox::SandboxConfig {
            klaviyo_limits: sandbox::RateLimits::Relaxed,
            ..Default::default()
        })
        .await
    }

    fn client(&self, limits: RateLimits) -> KlaviyoClient {
        KlaviyoClient::with_limits(
            self.http.clone(),
            self.sandbox.klaviyo_base_url(),
            REVISION.into(),
            limits,
        )
    }

    fn full_key(&self) -> KlaviyoApiKey {
        KlaviyoApiKey::parse(&self.sandbox.full_access_klaviyo_key()).unwrap()
    }

    fn root(&self) -> String {
        self.sandbox
            .klaviyo_base_url()
            .trim_end_matches('/')
            .to_owned()
    }

    async fn key_with_scopes(&self, scopes: &[&str]) -> KlaviyoApiKey {
        let response: Value = self
            .http
            .post(format!("{}/_sandbox/klaviyo/keys", self.root()))
            .json(&json!({ "scopes": scopes }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        KlaviyoApiKey::parse(response["key"].as_str().unwrap()).unwrap()
    }

    async fn server_throttled(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/_sandbox/stats", self.root()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["klaviyo"]["throttled_total"].as_u64().unwrap_or(0)
    }
}

const ALL_BUT_EVENTS: &[&str] = &[
    "accounts:read",
    "lists:read",
    "segments:read",
    "profiles:read",
    "metrics:read",
    "profiles:write",
    "lists:write",
];

#[tokio::test]
async fn get_account_returns_the_keys_account_and_organization_name() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let account = client.get_account(&h.full_key()).await.unwrap();
    assert!(!account.id.is_empty());
    assert_eq!(account.name, "Demo Outdoor Co.");
}

#[tokio::test]
async fn probe_lists_exactly_the_missing_read_scope() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.key_with_scopes(ALL_BUT_EVENTS).await;
    assert_eq!(
        client.probe_read_scopes(&key).await.unwrap(),
        vec!["events:read"]
    );
    assert_eq!(
        client.probe_read_scopes(&h.full_key()).await.unwrap(),
        Vec::<&str>::new()
    );
    let bare = h.key_with_scopes(&["accounts:read"]).await;
    assert_eq!(
        client.probe_read_scopes(&bare).await.unwrap(),
        vec![
            "lists:read",
            "segments:read",
            "profiles:read",
            "events:read",
            "metrics:read"
        ]
    );
}

#[tokio::test]
async fn an_unknown_key_is_unauthorized_and_never_echoed() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let unknown = KlaviyoApiKey::parse("pk_0123456789abcdef0123456789abcdef").unwrap();
    let err = client.get_account(&unknown).await.unwrap_err();
    assert!(matches!(err, KlaviyoError::Unauthorized), "{err:?}");
    assert!(!err.to_string().contains("0123456789abcdef"));
    let probe = client.probe_read_scopes(&unknown).await.unwrap_err();
    assert!(matches!(probe, KlaviyoError::Unauthorized), "{probe:?}");
}

#[tokio::test]
async fn a_revoked_key_is_unauthorized() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.key_with_scopes(ALL_BUT_EVENTS).await;
    assert!(client.get_account(&key).await.is_ok());
    let revoked = h
        .http
        .delete(format!(
            "{}/_sandbox/klaviyo/keys/{}",
            h.root(),
            key.expose()
        ))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let err = client.lists(&key).await.unwrap_err();
    assert!(matches!(err, KlaviyoError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn a_missing_scope_on_a_call_is_reported_by_name() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.key_with_scopes(&["accounts:read", "segments:read"]).await;
    let err = client.lists(&key).await.unwrap_err();
    assert!(
        matches!(&err, KlaviyoError::MissingScope(s) if s == "lists:read"),
        "{err:?}"
    );
}

#[tokio::test]
async fn lists_and_segments_are_read_completely() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let lists = client.lists(&key).await.unwrap();
    let segments = client.segments(&key).await.unwrap();
    assert!(lists.iter().any(|l| l.name == "Newsletter"), "{lists:?}");
    assert!(
        segments.iter().any(|s| s.name == "Repeat Buyers"),
        "{segments:?}"
    );
    assert!(lists
        .iter()
        .all(|l| l.kind == AudienceKind::List && !l.id.is_empty()));
    assert!(segments.iter().all(|s| s.kind == AudienceKind::Segment));
}

#[tokio::test]
async fn audience_members_are_paged_past_the_first_hundred_and_resolve_to_profiles() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let lists = client.lists(&key).await.unwrap();
    let newsletter = lists.iter().find(|l| l.name == "Newsletter").unwrap();

    let batches: Vec<Vec<String>> = client
        .audience_profile_ids(&key, AudienceKind::List, &newsletter.id)
        .try_collect()
        .await
        .unwrap();

    assert!(
        batches.len() >= 2,
        "more than one page: {} batches",
        batches.len()
    );
    assert!(batches.iter().all(|b| b.len() <= 100));
    let ids: Vec<String> = batches.concat();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no id repeats across pages");
    assert!(ids.len() > 100);
    let requests = client.usage().requests["GET /api/lists/{id}/relationships/profiles"];
    assert_eq!(requests as usize, batches.len());

    // 150 ids: two filter requests (100 + 50) behind one call.
    let wanted: Vec<String> = ids.iter().take(150.min(ids.len())).cloned().collect();
    let profiles = client.get_profiles(&key, &wanted).await.unwrap();
    let got: HashSet<&str> = profiles.iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(
        got,
        wanted.iter().map(String::as_str).collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn an_unknown_audience_id_is_an_error_and_a_malformed_one_never_leaves() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let unknown: Result<Vec<Vec<String>>, _> = client
        .audience_profile_ids(&key, AudienceKind::List, "ZZZZZZ")
        .try_collect()
        .await;
    assert!(
        matches!(unknown, Err(KlaviyoError::Invalid(_))),
        "{unknown:?}"
    );
    let before = client.usage().requests.values().sum::<u64>();
    let malformed: Result<Vec<Vec<String>>, _> = client
        .audience_profile_ids(&key, AudienceKind::List, "../accounts")
        .try_collect()
        .await;
    assert!(matches!(malformed, Err(KlaviyoError::Invalid(_))));
    assert_eq!(client.usage().requests.values().sum::<u64>(), before);
}

#[tokio::test]
async fn patched_properties_are_read_back() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let lists = client.lists(&key).await.unwrap();
    let preview = lists.iter().find(|l| l.name == "Preview List").unwrap();
    let batches: Vec<Vec<String>> = client
        .audience_profile_ids(&key, AudienceKind::List, &preview.id)
        .try_collect()
        .await
        .unwrap();
    let id = batches.concat().into_iter().next().unwrap();

    let mut props = Map::new();
    props.insert("sp_subject".into(), json!("Trail-ready picks for you"));
    client
        .patch_profile_properties(&key, &id, props)
        .await
        .unwrap();

    let profiles = client
        .get_profiles(&key, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(profiles.len(), 1);
    assert_eq!(
        profiles[0]["attributes"]["properties"]["sp_subject"],
        json!("Trail-ready picks for you")
    );
}

#[tokio::test]
async fn server_429s_are_honoured_until_the_call_succeeds() {
    let h = Harness::real_limits().await;
    // No client-side limiting: the burst reaches the server, which allows 1/s on accounts.
    let client = h.client(RateLimits::unlimited());
    let key = h.full_key();
    let started = Instant::now();
    let calls: Vec<_> = (0..3).map(|_| client.get_account(&key)).collect();
    let results = futures::future::join_all(calls).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let usage = client.usage();
    assert!(usage.throttled >= 2, "{usage:?}");
    assert!(h.server_throttled().await >= 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn persistent_429s_end_as_throttled_with_the_servers_retry_after() {
    let h = Harness::real_limits().await;
    let client = h.client(RateLimits::unlimited()).with_throttle_retries(0);
    let key = h.full_key();
    let calls: Vec<_> = (0..3).map(|_| client.get_account(&key)).collect();
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<&KlaviyoError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    // Three calls within milliseconds touch at most two one-second windows.
    assert!(!throttled.is_empty() && throttled.len() <= 2, "{results:?}");
    for err in throttled {
        assert!(
            matches!(err, KlaviyoError::Throttled { retry_after } if *retry_after >= Duration::from_secs(1)),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn the_client_side_limiter_keeps_a_burst_under_the_servers_limit() {
    let h = Harness::real_limits().await;
    let client = h.client(RateLimits::real()).with_throttle_retries(0);
    let key = h.full_key();
    let started = Instant::now();
    let calls: Vec<_> = (0..3).map(|_| client.get_account(&key)).collect();
    let results = futures::future::join_all(calls).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(h.server_throttled().await, 0);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(client.usage().waited >= Duration::from_secs(2));
}
