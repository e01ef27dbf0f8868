//! Flow-triggered copy end to end: a checkout-abandoned trigger made through the API, its URL,
//! header and body pasted into the sandbox's Klaviyo flow (Trigger → Webhook → Time delay 2 min →
//! Email), fired for profiles that left carts; every email shows the copy written for that
//! profile and that cart, or the template's fallback for a profile skipped with a reason; wrong
//! headers, unknown triggers, malformed bodies and replays change nothing; Klaviyo's retries
//! after a 503 make one generation.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::faults;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

const A: &str = "5a1c7e2b-3d4f-4a6b-9c8d-7e6f5a4b3c2d";
const BRIEF: &str = "Complete the look: what goes with the cart they left";
/// The flow's vendor time runs this much faster: its 120 s delay takes 120 × this, in seconds.
/// (The stack's other vendors run at `SANDBOX_VENDOR_TIME_SCALE`; rate windows are not scaled.)
const FLOW_TIME_SCALE: f64 = 0.5;
/// Vendor seconds until Klaviyo makes the triggering event readable through Get Events.
const EVENT_READABLE_AFTER: f64 = 8.0;
/// Profiles fired (`FLOWS_E2E_PROFILES`, default 60): Klaviyo's L tier (Get Profiles and
/// Update Profile, 750/min, of which the flow worker may use 0.5 × 80 %) lets about 150 jobs
/// a minute through, so 500 carts abandoned within seconds cannot all be written within a
/// 2-minute delay at any time scale; with 500 the test still checks every email and count.
fn profile_count() -> usize {
    std::env::var("FLOWS_E2E_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}
/// Profiles fired at once, and the pause between waves.
const FIRE_WAVE: usize = 50;
const FIRE_GAP_MS: u64 = 500;
const SET: &str = "cart";
/// Real seconds: just under the flow's delay (120 vendor s × FLOW_TIME_SCALE), so what is not
/// written before the email is counted too late, never written after it.
const DEADLINE_SECS: u32 = 55;
const FALLBACK: &str = "FALLBACK-PARAGRAPH";

/// The email: what the copy is for (the event id), the outcome, the products, the body.
fn email_template() -> String {
    ["run_id", "outcome", "product_1_title", "product_2_title"]
        .iter()
        .map(|f| format!("<p>[[{{{{ person|lookup:'sp_{SET}_{f}'|default:'-' }}}}]]</p>"))
        .chain(std::iter::once(format!(
            "<p>[[{{{{ person|lookup:'sp_{SET}_body'|default:'{FALLBACK}' }}}}]]</p>"
        )))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `[[…]]` fields of a rendered email, in order.
fn fields(html: &str) -> Vec<String> {
    html.split("[[")
        .skip(1)
        .filter_map(|s| s.split("]]").next())
        .map(unescape)
        .collect()
}

struct Setup<'w> {
    merchant: Merchant<'w>,
    trigger: Value,
    webhook: Value,
    klaviyo_key: String,
}

async fn setup(world: &World) -> Setup<'_> {
    let merchant = world.merchant(A).await;
    merchant.connect_demo_accounts().await;
    let resp = merchant
        .post(
            "/flows/triggers",
            json!({"name": "Abandoned checkout", "kind": "checkout_abandoned", "brief": BRIEF,
                   "property_set": SET, "deadline_seconds": DEADLINE_SECS}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
    let webhook = resp.body["webhook"].clone();
    assert_eq!(webhook["header_name"], "Authorization");
    assert!(webhook["header_value"]
        .as_str()
        .unwrap()
        .starts_with("Bearer sph_"));
    assert_eq!(
        webhook["body"],
        "{\"profile_id\": \"{{ person.KlaviyoID }}\", \"event_id\": \"{{ event|lookup:'$event_id' }}\"}"
    );
    Setup {
        merchant,
        trigger: resp.body["trigger"].clone(),
        webhook,
        klaviyo_key: world.stack.sandbox.full_access_klaviyo_key(),
    }
}

/// A sandbox Klaviyo control, as the account.
async fn klaviyo_control(
    world: &World,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> Value {
    let resp = world
        .http
        .request(method, format!("{}{}", world.stack.sandbox.base_url, path))
        .header("Authorization", format!("Klaviyo-API-Key {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// The merchant's flow, with the URL, header and body pasted as the trigger gave them.
async fn paste_flow(world: &World, s: &Setup<'_>) -> String {
    let flow = klaviyo_control(
        world,
        &s.klaviyo_key,
        Method::POST,
        "/_sandbox/klaviyo/flows",
        json!({
            "name": "Abandoned checkout",
            "trigger_metric": "Checkout Started",
            "webhook": {
                "url": s.webhook["url"],
                "headers": {"Authorization": s.webhook["header_value"]},
                "body": s.webhook["body"],
            },
            "delay_seconds": 120,
            "email": {"template": email_template()},
            "time_scale": FLOW_TIME_SCALE,
            "event_readable_after_seconds": EVENT_READABLE_AFTER,
        }),
    )
    .await;
    flow["id"].as_str().unwrap().to_owned()
}

/// `n` profile ids of the demo account's biggest segment.
async fn profiles(world: &World, merchant: &Merchant<'_>, n: usize) -> Vec<String> {
    let (client, key) = klaviyo(world);
    let segment = audience(merchant, "VIP + Engaged").await;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    while ids.len() < n {
        let (page, next) = client
            .audience_page(
                &key,
                shared::klaviyo::AudienceKind::Segment,
                segment["id"].as_str().unwrap(),
                cursor.as_deref(),
            )
            .await
            .unwrap();
        ids.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.truncate(n);
    assert_eq!(ids.len(), n, "the segment has {n} profiles");
    ids
}

/// Two catalog products per cart, different per profile: `(numeric id, title)`.
fn carts(catalog: &[shared::domain::CatalogProduct], n: usize) -> Vec<Vec<(String, String)>> {
    let products: Vec<(String, String)> = catalog
        .iter()
        .map(|p| (p.id.rsplit('/').next().unwrap().to_owned(), p.title.clone()))
        .collect();
    (0..n)
        .map(|i| {
            vec![
                products[(i * 7) % products.len()].clone(),
                products[(i * 7 + 3) % products.len()].clone(),
            ]
        })
        .collect()
}

fn checkout_event(event_id: &str, cart: &[(String, String)]) -> Value {
    let items: Vec<Value> = cart
        .iter()
        .map(|(id, title)| {
            json!({"product_id": id.parse::<u64>().map(Value::from).unwrap_or(Value::from(id.clone())),
                   "title": title, "quantity": 1, "line_price": 25.0})
        })
        .collect();
    json!({"$event_id": event_id, "$value": 50.0, "$extra": {"line_items": items}})
}

async fn counts(s: &Setup<'_>) -> Value {
    let id = s.trigger["trigger_id"].as_str().unwrap();
    let resp = s.merchant.get(&format!("/flows/triggers/{id}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    resp.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_abandoned_checkout_email_shows_copy_for_that_customer_and_that_cart() {
    let world = World::start().await;
    let s = setup(&world).await;
    let flow_id = paste_flow(&world, &s).await;
    let n = profile_count();
    let ids = profiles(&world, &s.merchant, n).await;
    let catalog = world.cached_catalog(A).await;
    let carts = carts(&catalog, ids.len());

    let entries: Vec<Value> = ids
        .iter()
        .zip(&carts)
        .enumerate()
        .map(|(i, (id, cart))| json!({"profile_id": id, "event": checkout_event(&format!("chk-{i}"), cart)}))
        .collect();
    // Carts are abandoned over a few seconds, as a busy store's are, not in one instant.
    let started = Instant::now();
    for wave in entries.chunks(FIRE_WAVE) {
        klaviyo_control(
            &world,
            &s.klaviyo_key,
            Method::POST,
            &format!("/_sandbox/klaviyo/flows/{flow_id}/fire"),
            json!({ "profiles": wave }),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(FIRE_GAP_MS)).await;
    }
    let report = klaviyo_control(
        &world,
        &s.klaviyo_key,
        Method::GET,
        &format!("/_sandbox/klaviyo/flows/{flow_id}/deliveries?wait_secs=300"),
        Value::Null,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(report["done"], true, "every delivery finished");
    let deliveries = report["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), n);

    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut webhook_ms: Vec<u64> = Vec::new();
    for d in deliveries {
        assert_eq!(d["webhook"]["outcome"], "succeeded", "{d}");
        let attempts = d["webhook"]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "no retry was needed: {d}");
        assert_eq!(attempts[0]["status"], 202);
        webhook_ms.push(attempts[0]["elapsed_ms"].as_u64().unwrap_or(0));
        let pid = d["profile_id"].as_str().unwrap();
        let i = ids.iter().position(|p| p == pid).unwrap();
        let f = fields(d["email"]["html"].as_str().unwrap());
        assert_eq!(f.len(), 5, "{f:?}");
        let (mark, outcome, p1, p2, body) = (&f[0], &f[1], &f[2], &f[3], &f[4]);
        *outcomes.entry(outcome.clone()).or_default() += 1;
        if outcome == "personalized" {
            assert_eq!(
                *mark,
                format!("chk-{i}"),
                "the copy was written for this event"
            );
            assert_ne!(body, FALLBACK);
            let cart_titles: HashSet<&str> = carts[i].iter().map(|(_, t)| t.as_str()).collect();
            for title in [p1, p2].into_iter().filter(|t| *t != "-") {
                assert!(
                    !cart_titles.contains(title.as_str()),
                    "{pid}: recommends {title}, which is in the cart"
                );
            }
            assert!(p1 != "-", "a personalized email names a product");
        } else {
            assert_eq!(
                body, FALLBACK,
                "no copy: the template's fallback shows ({f:?})"
            );
        }
    }
    // Jobs still running when their email went out end as too late.
    world.settle().await;
    let view = counts(&s).await;
    let today = &view["today"];
    let skipped: u64 = today["skipped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let failed: u64 = today["failed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    // Under load the hook may answer 503 and Klaviyo retry: a delivery can be received more
    // than once, and every one received ends counted.
    let received = today["received"].as_u64().unwrap();
    assert!(received >= n as u64, "{view}");
    assert_eq!(
        today["written"].as_u64().unwrap()
            + skipped
            + failed
            + today["too_late"].as_u64().unwrap()
            + today["duplicates"].as_u64().unwrap_or(0),
        received,
        "every job ends counted: {view}"
    );
    assert_eq!(
        outcomes.get("personalized").copied().unwrap_or(0),
        today["written"].as_u64().unwrap(),
        "every written profile's email showed its copy: {outcomes:?} {view}"
    );
    assert_eq!(today["duplicates"], 0);
    webhook_ms.sort_unstable();
    let pct = |q: usize| webhook_ms[(webhook_ms.len() * q / 100).min(webhook_ms.len() - 1)];
    let p99 = pct(99);
    eprintln!(
        "webhook ms p50 {} p90 {} p99 {} max {}",
        pct(50),
        pct(90),
        p99,
        webhook_ms[webhook_ms.len() - 1]
    );
    eprintln!(
        "flows e2e: {n} profiles in {:.1} s; outcomes {outcomes:?}; today {today}; \
         latency {}; webhook p99 {p99} ms",
        took.as_secs_f64(),
        view["latency_today"]
    );
    // How many make it before the email is a speed, which `make bench` measures (`flows`),
    // with the hook's p99; here copy must reach the emails at all.
    assert!(
        today["written"].as_u64().unwrap() > 0,
        "copy is written in time: {view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_headers_unknown_triggers_malformed_bodies_and_replays_change_nothing_and_a_503_is_retried_into_one_generation(
) {
    let scope = local_runner::random_prefix();
    let world = World::start_with(|o| {
        o.env_overrides.insert("FAULT_SCOPE".into(), scope.clone());
    })
    .await;
    let s = setup(&world).await;
    let url = s.webhook["url"].as_str().unwrap().to_owned();
    let header = s.webhook["header_value"].as_str().unwrap().to_owned();
    let ids = profiles(&world, &s.merchant, 3).await;
    let post = |url: String, auth: Option<String>, body: String| {
        let world = &world;
        async move {
            let mut req = world.http.post(url).body(body);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    // No event id (as a list-triggered flow sends): the job does not wait for an event.
    let good = format!("{{\"profile_id\": \"{}\"}}", ids[0]);

    // The property set is the trigger's own: neither another trigger nor a campaign takes it.
    let again = s
        .merchant
        .post(
            "/flows/triggers",
            json!({"name": "Other", "kind": "custom", "brief": BRIEF, "property_set": SET}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.problem_type().ends_with("/property-set-in-use"));

    let cases = [
        (
            url.clone(),
            Some("Bearer sph_wrong".to_owned()),
            good.clone(),
            401,
            "flow-hook-unauthorized",
        ),
        (
            url.clone(),
            None,
            good.clone(),
            401,
            "flow-hook-unauthorized",
        ),
        (
            url.replace("/hooks/flows/ft", "/hooks/flows/fu"),
            Some(header.clone()),
            good.clone(),
            404,
            "flow-trigger-not-found",
        ),
        (
            format!("{}/hooks/flows/ft00000000000000000000", world.stack.api_url),
            Some(header.clone()),
            good.clone(),
            404,
            "flow-trigger-not-found",
        ),
        (
            url.clone(),
            Some(header.clone()),
            "{\"profile_id\": \"{{ person.KlaviyoID }}\"}".to_owned(),
            422,
            "invalid-flow-hook-body",
        ),
        (
            url.clone(),
            Some(header.clone()),
            "profile_id=01".to_owned(),
            422,
            "invalid-flow-hook-body",
        ),
        (
            url.clone(),
            Some(header.clone()),
            format!(
                "{{\"profile_id\": \"{}\", \"pad\": \"{}\"}}",
                ids[0],
                "x".repeat(5000)
            ),
            422,
            "invalid-flow-hook-body",
        ),
    ];
    for (u, auth, body, status, kind) in cases {
        let (got, problem) = post(u, auth, body).await;
        assert_eq!(got.as_u16(), status, "{problem}");
        assert!(
            problem["type"].as_str().unwrap_or_default().ends_with(kind),
            "{problem}"
        );
    }
    world.settle().await;
    let view = counts(&s).await;
    assert_eq!(view["today"]["received"], 0, "nothing was queued: {view}");

    // A delivery, then its replay: 202 both, one generation.
    let (first, _) = post(url.clone(), Some(header.clone()), good.clone()).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    let (replay, _) = post(url.clone(), Some(header.clone()), good.clone()).await;
    assert_eq!(replay, StatusCode::ACCEPTED);
    world.settle().await;
    let view = counts(&s).await;
    assert_eq!(view["today"]["received"], 1, "{view}");
    assert_eq!(view["today"]["duplicates"], 1, "{view}");

    // Klaviyo's side: the first try meets a 503 (the job could not be queued); Klaviyo retries
    // 10 s (vendor) later, the retry is taken, and the profile is generated once.
    let flow_id = paste_flow(&world, &s).await;
    let catalog = world.cached_catalog(A).await;
    let cart = carts(&catalog, 1).remove(0);
    faults::arm(&scope, "hook.enqueue", 0);
    klaviyo_control(
        &world,
        &s.klaviyo_key,
        Method::POST,
        &format!("/_sandbox/klaviyo/flows/{flow_id}/fire"),
        json!({"profiles": [{"profile_id": ids[1], "event": checkout_event("chk-retry", &cart)}]}),
    )
    .await;
    let report = klaviyo_control(
        &world,
        &s.klaviyo_key,
        Method::GET,
        &format!("/_sandbox/klaviyo/flows/{flow_id}/deliveries?wait_secs=120"),
        Value::Null,
    )
    .await;
    let d = &report["deliveries"][0];
    let statuses: Vec<u64> = d["webhook"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, vec![503, 202], "{d}");
    assert_eq!(faults::crashed(&scope).get("hook.enqueue"), Some(&1));
    world.settle().await;
    let view = counts(&s).await;
    assert_eq!(
        view["today"]["received"], 2,
        "one more generation, not two: {view}"
    );
    let f = fields(d["email"]["html"].as_str().unwrap());
    assert_eq!(f[0], "chk-retry", "{f:?} {view} {d}");

    // Paused: refused with a problem, counted; resumed: taken again.
    let id = s.trigger["trigger_id"].as_str().unwrap();
    let paused = s
        .merchant
        .post(&format!("/flows/triggers/{id}/pause"), json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK);
    let other = format!("{{\"profile_id\": \"{}\"}}", ids[2]);
    let (status, _) = post(url.clone(), Some(header.clone()), other.clone()).await;
    assert_eq!(status.as_u16(), 422);
    s.merchant
        .post(&format!("/flows/triggers/{id}/resume"), json!({}))
        .await;

    // Rotation: the new secret works, and so does the old one during the overlap; revoking
    // ends both.
    let rotated = s
        .merchant
        .post(&format!("/flows/triggers/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_header = rotated.body["webhook"]["header_value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_header, header);
    let (old_ok, _) = post(url.clone(), Some(header.clone()), other.clone()).await;
    assert_eq!(old_ok, StatusCode::ACCEPTED);
    let (new_ok, _) = post(url.clone(), Some(new_header.clone()), other.clone()).await;
    assert_eq!(new_ok, StatusCode::ACCEPTED);
    s.merchant
        .post(&format!("/flows/triggers/{id}/revoke"), json!({}))
        .await;
    let (gone, _) = post(url.clone(), Some(new_header), other).await;
    assert_eq!(gone, StatusCode::NOT_FOUND);
    world.settle().await;

    let list = s.merchant.get("/flows/triggers").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["triggers"].as_array().unwrap().len(), 1);
    assert_eq!(
        list.body["triggers"][0]["today"]["paused"], 1,
        "{:?}",
        list.body
    );
    // Another merchant sees none of it.
    let other_merchant = world.merchant("9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d").await;
    let theirs = other_merchant.get("/flows/triggers").await;
    assert_eq!(theirs.body["triggers"].as_array().unwrap().len(), 0);
    assert_eq!(
        other_merchant
            .get(&format!("/flows/triggers/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Deleting frees the property set.
    assert_eq!(
        s.merchant
            .call_delete(&format!("/flows/triggers/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    let again = s
        .merchant
        .post(
            "/flows/triggers",
            json!({"name": "Again", "kind": "welcome", "brief": BRIEF, "property_set": SET}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);

    // A delivery leaves a replay mark (a Klaviyo profile id) and counters; deleting the account
    // deletes every trigger's partition with them.
    let url2 = again.body["webhook"]["url"].as_str().unwrap().to_owned();
    let header2 = again.body["webhook"]["header_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let (taken, _) = post(url2, Some(header2), good.clone()).await;
    assert_eq!(taken, StatusCode::ACCEPTED);
    world.settle().await;
    assert!(world.app_table_dump().await.contains("FLOWTRIGGER#"));
    let deleted = world
        .call(Method::DELETE, "/account", Some(&s.merchant.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let dump = world.app_table_dump().await;
    assert!(!dump.contains("FLOWTRIGGER#"), "{dump}");
    assert!(!dump.contains(&ids[0]), "no replay mark names the profile");
}
