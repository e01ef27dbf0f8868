//! The Klaviyo client against the in-process sandbox, over real HTTP.

use futures::TryStreamExt;
use serde_json::{json, Map, Value};
use shared::domain::KlaviyoApiKey;
use shared::klaviyo::{
    AudienceKind, Endpoint, ImportPolling, ImportStatus, KlaviyoClient, KlaviyoError, RateLimits,
};
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
        matches!(unknown, Err(KlaviyoError::NotFound(_))),
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

// ---------- orders, previews, bulk import ----------

/// Fast polling for the sandbox, whose jobs finish after two polls.
const QUICK_POLLING: ImportPolling = ImportPolling {
    first_wait: Duration::from_millis(50),
    max_wait: Duration::from_millis(200),
    deadline: Duration::from_secs(20),
};

impl Harness {
    /// A raw GET against the sandbox's Klaviyo API with the full key.
    async fn raw_get(&self, path_and_query: &str) -> Value {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.root())
        };
        let response = self
            .http
            .get(url)
            .header(
                "Authorization",
                format!("Klaviyo-API-Key {}", self.full_key().expose()),
            )
            .header("revision", REVISION)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    /// The first `n` profile ids of the account (raw paging of GET /api/profiles).
    async fn profile_ids(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut next = Some("/api/profiles?page[size]=100&fields[profile]=email".to_owned());
        while let Some(url) = next.take() {
            let page = self.raw_get(&url).await;
            ids.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_owned()),
            );
            if ids.len() < n {
                next = page["links"]["next"].as_str().map(str::to_owned);
            }
        }
        assert!(ids.len() >= n, "the sandbox has {} profiles", ids.len());
        ids.truncate(n);
        ids
    }
}

fn requests(client: &KlaviyoClient, endpoint: Endpoint) -> u64 {
    client
        .usage()
        .requests
        .get(endpoint.name())
        .copied()
        .unwrap_or(0)
}

fn total_requests(client: &KlaviyoClient) -> u64 {
    client.usage().requests.values().sum()
}

fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Shopify's "Placed Order" lists product names in `Items`; the custom shape lists objects.
fn order_shape(event: &Value) -> &'static str {
    match &event["attributes"]["event_properties"]["Items"][0] {
        Value::String(_) => "shopify",
        Value::Object(_) => "custom",
        _ => "other",
    }
}

#[tokio::test]
async fn order_metrics_finds_placed_order_and_ordered_product() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let metrics = client.order_metrics(&h.full_key()).await.unwrap();
    let placed = metrics.placed_order.clone().expect("Placed Order");
    let ordered = metrics.ordered_product.clone().expect("Ordered Product");
    assert_ne!(placed, ordered);
    let all = h.raw_get("/api/metrics").await;
    let name_of = |id: &str| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["attributes"]["name"].as_str().unwrap().to_owned())
    };
    assert_eq!(name_of(&placed).as_deref(), Some("Placed Order"));
    assert_eq!(name_of(&ordered).as_deref(), Some("Ordered Product"));
    assert_eq!(requests(&client, Endpoint::Metrics), 1);
}

#[tokio::test]
async fn profile_events_return_both_order_shapes_newest_first_bounded_by_max_and_since() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let placed = client
        .order_metrics(&key)
        .await
        .unwrap()
        .placed_order
        .unwrap();

    // A profile whose orders come in both shapes, found by raw paging of all Placed Orders.
    let mut by_profile: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let mut next = Some(format!(
        "/api/events?filter=equals(metric_id,\"{placed}\")&page[size]=1000"
    ));
    while let Some(url) = next.take() {
        let page = h.raw_get(&url).await;
        for event in page["data"].as_array().unwrap() {
            let profile = event["relationships"]["profile"]["data"]["id"]
                .as_str()
                .unwrap();
            by_profile
                .entry(profile.to_owned())
                .or_default()
                .push(event.clone());
        }
        next = page["links"]["next"].as_str().map(str::to_owned);
    }
    // The sandbox gives each customer one shape: take the busiest of each.
    let busiest = |shape: &str| {
        by_profile
            .iter()
            .filter(|(_, events)| events.iter().all(|e| order_shape(e) == shape))
            .max_by_key(|(id, events)| (events.len(), id.as_str()))
            .map(|(id, events)| (id.clone(), events.len()))
            .unwrap()
    };
    let (profile, order_count) = busiest("shopify");
    let (custom_profile, custom_count) = busiest("custom");
    assert!(order_count >= 3, "{order_count} orders");
    let profile = profile.as_str();

    let events = client
        .profile_events(&key, profile, &placed, None, 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), order_count);
    assert!(events.iter().all(|e| order_shape(e) == "shopify"));
    assert!(events[0]["attributes"]["event_properties"]["$extra"]["line_items"].is_array());
    let custom = client
        .profile_events(&key, &custom_profile, &placed, None, 1000)
        .await
        .unwrap();
    assert_eq!(custom.len(), custom_count);
    assert!(custom.iter().all(|e| order_shape(e) == "custom"));
    assert!(custom[0]["attributes"]["event_properties"]["Items"][0]["ProductID"].is_string());
    // Only the requested attributes come back.
    let attributes: HashSet<&str> = events[0]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        attributes,
        HashSet::from(["datetime", "event_properties", "timestamp"])
    );
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["attributes"]["timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    let newest_two = client
        .profile_events(&key, profile, &placed, None, 2)
        .await
        .unwrap();
    assert_eq!(newest_two.len(), 2);
    assert_eq!(newest_two[0]["id"], events[0]["id"]);
    assert_eq!(newest_two[1]["id"], events[1]["id"]);

    let since = times[1];
    let recent = client
        .profile_events(&key, profile, &placed, Some(since), 1000)
        .await
        .unwrap();
    let expected = times.iter().filter(|t| **t >= since).count();
    assert_eq!(recent.len(), expected);
    assert!(recent
        .iter()
        .all(|e| e["attributes"]["timestamp"].as_i64().unwrap() >= since));
    let future = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
    assert!(client
        .profile_events(&key, profile, &placed, Some(future), 10)
        .await
        .unwrap()
        .is_empty());

    // No request for max 0 or a malformed id.
    let before = total_requests(&client);
    assert!(client
        .profile_events(&key, profile, &placed, None, 0)
        .await
        .unwrap()
        .is_empty());
    let bad = client
        .profile_events(&key, "x\"),equals(email", &placed, None, 5)
        .await;
    assert!(matches!(bad, Err(KlaviyoError::Invalid(_))), "{bad:?}");
    assert_eq!(total_requests(&client), before);
}

#[tokio::test]
async fn profiles_are_found_by_email_a_hundred_per_request() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let ids = h.profile_ids(150).await;
    let profiles = client.get_profiles(&key, &ids).await.unwrap();
    let by_email: Vec<(String, String)> = profiles
        .iter()
        .filter_map(|p| {
            Some((
                p["attributes"]["email"].as_str()?.to_owned(),
                p["id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert!(by_email.len() > 100, "{} emails", by_email.len());

    let before = requests(&client, Endpoint::Profiles);
    let mut emails: Vec<String> = by_email.iter().map(|(e, _)| e.clone()).collect();
    emails.push("nobody-here@example.com".into());
    emails.push(format!("  {}  ", by_email[0].0));
    let found = client.find_profiles_by_email(&key, &emails).await.unwrap();
    let found_ids: HashSet<&str> = found.iter().filter_map(|p| p["id"].as_str()).collect();
    let expected: HashSet<&str> = by_email.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(found_ids, expected);
    assert_eq!(found.len(), expected.len(), "duplicates are asked once");
    assert_eq!(requests(&client, Endpoint::Profiles) - before, 2);

    let one = client
        .find_profiles_by_email(&key, std::slice::from_ref(&by_email[1].0))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["id"], by_email[1].1.as_str());
    assert!(client
        .find_profiles_by_email(&key, &[])
        .await
        .unwrap()
        .is_empty());

    let before = total_requests(&client);
    let err = client
        .find_profiles_by_email(&key, &["eve\"])@example.com".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(err, KlaviyoError::Invalid(_)), "{err:?}");
    assert!(!err.to_string().contains("eve"));
    assert_eq!(total_requests(&client), before);
}

#[tokio::test]
async fn a_bulk_import_of_150_profiles_completes_and_its_properties_read_back() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let ids = h.profile_ids(150).await;
    // A property the import clears with null.
    client
        .patch_profile_properties(&key, &ids[0], props(&[("sp_old", json!("stale"))]))
        .await
        .unwrap();

    let batch: Vec<(String, Map<String, Value>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.clone(),
                props(&[
                    ("sp_subject", json!(format!("Picks for you #{i}"))),
                    ("sp_run_id", json!("run-42")),
                    ("sp_old", Value::Null),
                ]),
            )
        })
        .collect();
    let job_id = client.start_bulk_import(&key, &batch).await.unwrap();
    let job = client
        .wait_bulk_import(&key, &job_id, &QUICK_POLLING)
        .await
        .unwrap();
    assert_eq!(job.id, job_id);
    assert_eq!(job.status, ImportStatus::Complete);
    assert_eq!(
        (job.total_count, job.completed_count, job.failed_count),
        (150, 150, 0)
    );
    assert!(client
        .bulk_import_errors(&key, &job_id)
        .await
        .unwrap()
        .is_empty());

    let profiles = client.get_profiles(&key, &ids).await.unwrap();
    assert_eq!(profiles.len(), 150);
    for profile in &profiles {
        let id = profile["id"].as_str().unwrap();
        let i = ids.iter().position(|x| x == id).unwrap();
        let properties = &profile["attributes"]["properties"];
        assert_eq!(
            properties["sp_subject"],
            json!(format!("Picks for you #{i}"))
        );
        assert_eq!(properties["sp_run_id"], "run-42");
        assert!(properties.get("sp_old").is_none(), "null cleared sp_old");
    }

    assert_eq!(requests(&client, Endpoint::CreateBulkImport), 1);
    assert!(requests(&client, Endpoint::GetBulkImport) >= 2);
    assert_eq!(requests(&client, Endpoint::BulkImportErrors), 1);
    assert_eq!(
        client.usage().requests["POST /api/profile-bulk-import-jobs"],
        1
    );
}

#[tokio::test]
async fn waiting_past_the_deadline_is_a_transient_error() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let ids = h.profile_ids(1).await;
    let job_id = client
        .start_bulk_import(&key, &[(ids[0].clone(), props(&[("sp_x", json!(1))]))])
        .await
        .unwrap();
    let impatient = ImportPolling {
        first_wait: Duration::ZERO,
        max_wait: Duration::ZERO,
        deadline: Duration::ZERO,
    };
    let err = client
        .wait_bulk_import(&key, &job_id, &impatient)
        .await
        .unwrap_err();
    assert!(matches!(err, KlaviyoError::Transient(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(ImportPolling::default().first_wait, Duration::from_secs(5));
    assert_eq!(ImportPolling::default().max_wait, Duration::from_secs(30));
}

#[tokio::test]
async fn bulk_import_limits_are_enforced_before_sending() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let id = h.profile_ids(1).await.remove(0);
    let small = props(&[("sp_subject", json!("Hi"))]);

    let too_many: Vec<(String, Map<String, Value>)> =
        (0..10_001).map(|_| (id.clone(), small.clone())).collect();
    let big_profile = vec![(
        id.clone(),
        props(&[("sp_body", json!("x".repeat(101 * 1024)))]),
    )];
    // 60 profiles of 90 KB each: every one fits, the request (5.4 MB) does not.
    let big_request: Vec<(String, Map<String, Value>)> = (0..60)
        .map(|_| {
            (
                id.clone(),
                props(&[("sp_body", json!("y".repeat(90 * 1024)))]),
            )
        })
        .collect();
    let malformed = vec![("../accounts".to_owned(), small.clone())];

    let before = total_requests(&client);
    for (what, batch) in [
        ("10,001 profiles", too_many),
        ("a 101 KB profile", big_profile),
        ("a 5.4 MB request", big_request),
        ("a malformed id", malformed),
        ("no profiles", Vec::new()),
    ] {
        let err = client.start_bulk_import(&key, &batch).await.unwrap_err();
        assert!(matches!(err, KlaviyoError::Invalid(_)), "{what}: {err:?}");
        assert!(!err.to_string().contains("xxxx"), "{what}: {err}");
    }
    assert_eq!(total_requests(&client), before, "nothing was sent");

    // Right at the limits is accepted: 10,000 small profiles in one job.
    let ten_thousand: Vec<(String, Map<String, Value>)> =
        (0..10_000).map(|_| (id.clone(), small.clone())).collect();
    let job_id = client.start_bulk_import(&key, &ten_thousand).await.unwrap();
    let job = client.bulk_import_job(&key, &job_id).await.unwrap();
    assert_eq!(job.total_count, 10_000);
}

#[tokio::test]
async fn import_errors_are_read_across_pages_with_profile_ids_and_no_personal_data() {
    let h = Harness::relaxed().await;
    let client = h.client(RateLimits::real());
    let key = h.full_key();
    let known = h.profile_ids(3).await;
    // 120 ids no profile has: more than one page of import errors.
    let unknown: Vec<String> = (0..120)
        .map(|i| format!("01JZZZZZZZZZZZZZZZZZZZ{i:04}"))
        .collect();
    let batch: Vec<(String, Map<String, Value>)> = known
        .iter()
        .chain(&unknown)
        .map(|id| (id.clone(), props(&[("sp_subject", json!("Hello"))])))
        .collect();
    let job_id = client.start_bulk_import(&key, &batch).await.unwrap();
    let job = client
        .wait_bulk_import(&key, &job_id, &QUICK_POLLING)
        .await
        .unwrap();
    assert_eq!(job.status, ImportStatus::Complete);
    assert_eq!(
        (job.total_count, job.completed_count, job.failed_count),
        (123, 3, 120)
    );
    let errors = client.bulk_import_errors(&key, &job_id).await.unwrap();
    assert_eq!(errors.len(), 120);
    assert_eq!(
        requests(&client, Endpoint::BulkImportErrors),
        2,
        "two pages"
    );
    let reported: HashSet<&str> = errors
        .iter()
        .map(|e| e.profile_id.as_deref().expect("profile id"))
        .collect();
    assert_eq!(reported, unknown.iter().map(String::as_str).collect());
    assert!(errors
        .iter()
        .all(|e| e.code == "invalid" && !e.detail.is_empty()));
    // Unknown ids never become new profiles.
    assert!(client
        .get_profiles(&key, &unknown[..5])
        .await
        .unwrap()
        .is_empty());

    // Klaviyo may echo an email address in a detail: it is scrubbed, the code kept.
    let body = json!({"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "jane.doe@localhost", "phone_number": "+15005550006"}},
        {"type": "profile", "id": known[0], "attributes": {"properties": {"sp_subject": "ok"}}},
    ]}}}});
    let created: Value = h
        .http
        .post(format!("{}/api/profile-bulk-import-jobs", h.root()))
        .header("Authorization", format!("Klaviyo-API-Key {}", key.expose()))
        .header("revision", REVISION)
        .header("Content-Type", "application/vnd.api+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw_job = created["data"]["id"].as_str().unwrap();
    let raw_errors = h
        .raw_get(&format!(
            "/api/profile-bulk-import-jobs/{raw_job}/import-errors"
        ))
        .await;
    assert!(
        raw_errors.to_string().contains("jane.doe@localhost"),
        "the sandbox echoes the address"
    );
    let errors = client.bulk_import_errors(&key, raw_job).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "invalid");
    assert_eq!(errors[0].profile_id, None);
    assert!(errors[0].detail.contains("[email]"), "{}", errors[0].detail);
    let debug = format!("{errors:?}");
    assert!(
        !debug.contains("jane") && !debug.contains("5550006"),
        "{debug}"
    );
}
