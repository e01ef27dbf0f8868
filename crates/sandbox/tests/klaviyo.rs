mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use sandbox::{RateLimits, SandboxConfig};
use serde_json::{json, Value};

async fn group_id(sb: &sandbox::Sandbox, key: &str, kind: &str, name: &str) -> String {
    let body = klaviyo_json(sb, key, &format!("/api/{kind}")).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["attributes"]["name"] == name)
        .map(|g| g["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

#[tokio::test]
async fn segment_members_page_through_links_next_until_absent() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let id = group_id(&sb, &key, "segments", "VIP + Engaged").await;
    let mut url = format!("/api/segments/{id}/relationships/profiles?page[size]=100");
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let body = klaviyo_json(&sb, &key, &url).await;
        pages += 1;
        for m in body["data"].as_array().unwrap() {
            assert_eq!(m["type"], "profile");
            let id = m["id"].as_str().unwrap();
            assert_eq!(id.len(), 26, "profile ids are ULIDs");
            assert!(seen.insert(id.to_string()));
        }
        assert!(body["links"]["self"]
            .as_str()
            .unwrap()
            .starts_with("http://"));
        match body["links"].get("next").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.starts_with(&sb.base_url) && next.contains("page%5Bcursor%5D="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert!(seen.len() >= 2000, "segment has {} members", seen.len());
    assert_eq!(pages, seen.len().div_ceil(100));
}

#[tokio::test]
async fn profiles_filters_and_predictive_fields() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let page = klaviyo_json(&sb, &key, "/api/profiles?page[size]=3").await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert!(data[0]["attributes"].get("predictive_analytics").is_none());
    let ids: Vec<&str> = data.iter().map(|p| p["id"].as_str().unwrap()).collect();

    let filter = format!(
        "any(id,[{}])",
        ids.iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let url = format!(
        "{}/api/profiles?filter={}&page[size]=100&additional-fields[profile]=predictive_analytics",
        sb.base_url,
        url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let resp = klaviyo_get(&sb, &key, &url).await;
    assert_eq!(resp.status(), 200);
    // The predictive variant runs on the lower M tier (×100 relaxed = 1000/s).
    assert_eq!(resp.headers()["ratelimit-limit"], "1000");
    let body: Value = resp.json().await.unwrap();
    let got: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert!(body["data"][0]["attributes"]["predictive_analytics"].is_object());

    let email = data[1]["attributes"]["email"].as_str().unwrap();
    let body = klaviyo_json(
        &sb,
        &key,
        &format!("/api/profiles?filter=equals(email,\"{email}\")&fields[profile]=email,first_name"),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["id"], ids[1]);
    let attrs = body["data"][0]["attributes"].as_object().unwrap();
    assert_eq!(
        attrs.len(),
        2,
        "sparse fieldset keeps only requested fields"
    );

    let too_big = klaviyo_get(&sb, &key, "/api/profiles?page[size]=101").await;
    assert_eq!(too_big.status(), 400);
}

#[tokio::test]
async fn events_for_a_profile_reference_real_catalog_products_in_both_shapes() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let metrics = klaviyo_json(&sb, &key, "/api/metrics").await;
    let metric_id = |name: &str| {
        metrics["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                m["attributes"]["name"] == name
                    && m["attributes"]["integration"]["name"] == "Shopify"
            })
            .map(|m| m["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let placed = metric_id("Placed Order");
    let _ordered = metric_id("Ordered Product");

    let all = klaviyo_json(
        &sb,
        &key,
        &format!("/api/events?filter=equals(metric_id,\"{placed}\")&page[size]=1000"),
    )
    .await;
    let events = all["data"].as_array().unwrap();
    assert_eq!(events.len(), 1000);
    let shopify_shape = events
        .iter()
        .find(|e| e["attributes"]["event_properties"]["$extra"]["line_items"].is_array())
        .unwrap();
    let custom_shape = events
        .iter()
        .find(|e| e["attributes"]["event_properties"]["Items"][0]["ProductID"].is_string())
        .unwrap();
    assert!(shopify_shape["attributes"]["event_properties"]["Items"][0].is_string());

    // Per-profile history, newest first.
    let profile = shopify_shape["relationships"]["profile"]["data"]["id"]
        .as_str()
        .unwrap();
    let url = format!("/api/events?filter=equals(profile_id,\"{profile}\"),equals(metric_id,\"{placed}\")&sort=-datetime");
    let history = klaviyo_json(&sb, &key, &url).await;
    let times: Vec<i64> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attributes"]["timestamp"].as_i64().unwrap())
        .collect();
    assert!(!times.is_empty());
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    // The referenced products exist in the default shop's catalog.
    let token = install(&sb, SHOP).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let shopify_pid = shopify_shape["attributes"]["event_properties"]["$extra"]["line_items"][0]
        ["product"]["id"]
        .as_u64()
        .unwrap();
    let custom_pid = custom_shape["attributes"]["event_properties"]["Items"][0]["ProductID"]
        .as_str()
        .unwrap()
        .to_string();
    for (pid, title) in [
        (
            shopify_pid.to_string(),
            shopify_shape["attributes"]["event_properties"]["$extra"]["line_items"][0]["title"]
                .clone(),
        ),
        (
            custom_pid,
            custom_shape["attributes"]["event_properties"]["Items"][0]["ProductName"].clone(),
        ),
    ] {
        let (_, body) = graphql(
            &sb,
            SHOP,
            &token,
            "query($id: ID!) { product(id: $id) { title } }",
            json!({ "id": format!("gid://shopify/Product/{pid}") }),
        )
        .await;
        assert_eq!(body["data"]["product"]["title"], title);
    }
}

#[tokio::test]
async fn real_limits_throttle_accounts_with_retry_after_and_no_ratelimit_headers() {
    let sb = start(SandboxConfig {
        default_shop_products: 50,
        klaviyo_profiles: 50,
        klaviyo_limits: RateLimits::Real,
        ..SandboxConfig::default()
    })
    .await;
    let key = sb.full_access_klaviyo_key();
    let mut throttled = None;
    for _ in 0..3 {
        let resp = klaviyo_get(&sb, &key, "/api/accounts").await;
        if resp.status() == 429 {
            throttled = Some(resp);
            break;
        }
        assert!(resp.headers().contains_key("ratelimit-remaining"));
    }
    let resp = throttled.expect("XS tier allows 1/s");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(!resp.headers().contains_key("ratelimit-limit"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "throttled");
}

#[tokio::test]
async fn auth_errors_use_klaviyo_codes() {
    let sb = start(small_config()).await;
    let http = client();
    let resp = http
        .get(format!("{}/api/lists", sb.base_url))
        .header("revision", REVISION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "not_authenticated"
    );

    let resp = klaviyo_get(&sb, "pk_unknown", "/api/lists").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "authentication_failed"
    );

    let created: Value = http
        .post(format!("{}/_sandbox/klaviyo/keys", sb.base_url))
        .json(&json!({ "scopes": ["accounts:read", "lists:read"], "account": "default" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let limited = created["key"].as_str().unwrap();
    assert_eq!(
        klaviyo_get(&sb, limited, "/api/lists/").await.status(),
        200,
        "trailing slash tolerated"
    );
    let resp = klaviyo_get(&sb, limited, "/api/segments").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "permission_denied"
    );

    http.delete(format!("{}/_sandbox/klaviyo/keys/{limited}", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(klaviyo_get(&sb, limited, "/api/lists").await.status(), 401);

    let resp = http
        .get(format!("{}/api/lists", sb.base_url))
        .header(
            "Authorization",
            format!("Klaviyo-API-Key {}", sb.full_access_klaviyo_key()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "revision header is required");
}

/// Sends a JSON:API body with `key` (revision and content type set).
async fn klaviyo_send(
    sb: &sandbox::Sandbox,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client()
        .request(method, format!("{}{path}", sb.base_url))
        .header("Authorization", format!("Klaviyo-API-Key {key}"))
        .header("revision", REVISION)
        .header("Content-Type", "application/vnd.api+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn patch(sb: &sandbox::Sandbox, id: &str, body: &Value) -> reqwest::Response {
    let key = sb.full_access_klaviyo_key();
    let path = format!("/api/profiles/{id}");
    klaviyo_send(sb, &key, reqwest::Method::PATCH, &path, body).await
}

#[tokio::test]
async fn patch_profile_sets_clears_and_unsets_properties() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let id = klaviyo_json(&sb, &key, "/api/profiles?page[size]=1").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"data": {"type": "profile", "id": id, "attributes": {"properties": {"sp_subject": "Hi", "sp_old": "x", "sp_gone": "y"}}}});
    assert_eq!(patch(&sb, &id, &body).await.status(), 200);
    let body = json!({"data": {"type": "profile", "id": id,
        "attributes": {"properties": {"sp_body": "Text", "sp_gone": null}},
        "meta": {"patch_properties": {"unset": ["sp_old"]}}}});
    let resp = patch(&sb, &id, &body).await;
    assert_eq!(resp.status(), 200);
    let props = resp.json::<Value>().await.unwrap()["data"]["attributes"]["properties"].clone();
    assert_eq!(props["sp_subject"], "Hi");
    assert_eq!(props["sp_body"], "Text");
    assert!(props.get("sp_old").is_none() && props.get("sp_gone").is_none());

    let huge = json!({"data": {"type": "profile", "id": id, "attributes": {"properties": {"sp_body": "x".repeat(110 * 1024)}}}});
    assert_eq!(patch(&sb, &id, &huge).await.status(), 413);
}

#[tokio::test]
async fn bulk_import_job_progresses_to_complete_and_lists_errors() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let list = group_id(&sb, &key, "lists", "VIP Customers").await;
    let body = json!({"data": {"type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": {"email": "new.person@example.com", "properties": {"sp_subject": "Welcome"}}},
            {"type": "profile", "attributes": {"first_name": "No identifier"}},
        ]}},
        "relationships": {"lists": {"data": [{"type": "list", "id": list}]}}}});
    let resp = post_import(&sb, &key, &body).await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["data"]["attributes"]["status"], "queued");
    let id = job["data"]["id"].as_str().unwrap();

    let mut status = String::new();
    // Seconds at the vendor's time (make test scales it down): poll patiently.
    for _ in 0..200 {
        let job = klaviyo_json(&sb, &key, &format!("/api/profile-bulk-import-jobs/{id}")).await;
        status = job["data"]["attributes"]["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == "complete" {
            assert_eq!(job["data"]["attributes"]["completed_count"], 1);
            assert_eq!(job["data"]["attributes"]["failed_count"], 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "complete");
    let errors = klaviyo_json(
        &sb,
        &key,
        &format!("/api/profile-bulk-import-jobs/{id}/import-errors"),
    )
    .await;
    assert_eq!(errors["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        sp_subject(&sb, &key, "new.person@example.com").await,
        "Welcome"
    );
}

async fn sp_subject(sb: &sandbox::Sandbox, key: &str, email: &str) -> Value {
    let url = format!("/api/profiles?filter=equals(email,\"{email}\")");
    let found = klaviyo_json(sb, key, &url).await;
    found["data"][0]["attributes"]["properties"]["sp_subject"].clone()
}

async fn post_import(sb: &sandbox::Sandbox, key: &str, body: &Value) -> reqwest::Response {
    let path = "/api/profile-bulk-import-jobs";
    klaviyo_send(sb, key, reqwest::Method::POST, path, body).await
}

/// POSTs a bulk import of `emails`, each with `sp_subject = subject`; returns (status, job id).
async fn create_import(
    sb: &sandbox::Sandbox,
    key: &str,
    emails: &[String],
    subject: &str,
) -> (u16, String) {
    let profiles: Vec<Value> = emails
        .iter()
        .map(|e| json!({"type": "profile", "attributes": {"email": e, "properties": {"sp_subject": subject}}}))
        .collect();
    let body = json!({"data": {"type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": profiles}}}});
    let resp = post_import(sb, key, &body).await;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (
        status,
        v["data"]["id"].as_str().unwrap_or_default().to_string(),
    )
}

async fn job_status(sb: &sandbox::Sandbox, key: &str, id: &str) -> String {
    let job = klaviyo_json(sb, key, &format!("/api/profile-bulk-import-jobs/{id}")).await;
    job["data"]["attributes"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}.{i}@example.com"))
        .collect()
}

#[tokio::test]
async fn import_jobs_queue_then_process_for_longer_the_bigger_they_are() {
    // One job at a time per account; queued ≥ 1 s, then 0.5 s + 10 profiles/s. The small job
    // (2 profiles) runs from 1.0 to 1.7 s; the big one (10) waits for its slot, 1.7 to 3.2 s.
    let sb = start(SandboxConfig {
        vendor_time_scale: 1.0,
        klaviyo_import: sandbox::ImportTiming {
            queued_secs: 1.0,
            base_secs: 0.5,
            profiles_per_s: 10.0,
            concurrent_jobs_per_account: 1,
        },
        ..small_config()
    })
    .await;
    let key = sb.full_access_klaviyo_key();
    let started = std::time::Instant::now();
    let (_, small) = create_import(&sb, &key, &emails("small", 2), "Small").await;
    let (_, big) = create_import(&sb, &key, &emails("big", 10), "Big").await;
    assert_eq!(job_status(&sb, &key, &small).await, "queued");
    assert_eq!(job_status(&sb, &key, &big).await, "queued");

    tokio::time::sleep(std::time::Duration::from_millis(1_350).saturating_sub(started.elapsed()))
        .await;
    assert_eq!(job_status(&sb, &key, &small).await, "processing");
    assert_eq!(
        job_status(&sb, &key, &big).await,
        "queued",
        "waits for the account's slot"
    );

    // Not polled again: the jobs still take effect when they are due.
    tokio::time::sleep(std::time::Duration::from_millis(3_600).saturating_sub(started.elapsed()))
        .await;
    assert_eq!(sp_subject(&sb, &key, "big.9@example.com").await, "Big");
    let job = klaviyo_json(&sb, &key, &format!("/api/profile-bulk-import-jobs/{big}")).await;
    assert_eq!(job["data"]["attributes"]["status"], "complete");
    assert_eq!(job["data"]["attributes"]["completed_count"], 10);
}

#[tokio::test]
async fn polling_an_import_job_draws_on_the_budget_for_creating_them() {
    let sb = start(SandboxConfig {
        klaviyo_limits: RateLimits::Real,
        ..small_config()
    })
    .await;
    let key = sb.full_access_klaviyo_key();
    // Start just after a second boundary so the burst window (10/s) does not roll over.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(
        1_000 - u64::from(now.subsec_millis()) + 20,
    ))
    .await;
    let (status, id) = create_import(&sb, &key, &emails("poll", 1), "Poll").await;
    assert_eq!(status, 202);
    let mut polls = 0;
    loop {
        let resp = klaviyo_get(&sb, &key, &format!("/api/profile-bulk-import-jobs/{id}")).await;
        if resp.status() == 429 {
            break;
        }
        polls += 1;
        assert!(polls < 10, "the M tier allows 10 requests per second");
    }
    assert_eq!(polls, 9, "the create and 9 polls use the second's 10");
    let (status, _) = create_import(&sb, &key, &emails("late", 1), "Late").await;
    assert_eq!(status, 429, "polls used up the budget for creating jobs");
}
