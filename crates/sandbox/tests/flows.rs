//! The sandbox playing Klaviyo's side of a flow with a Webhook action, against a real local
//! HTTP receiver that answers scripted statuses.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "Bearer s3cret-pasted-by-the-merchant";

/// What the receiver does for one profile: the statuses to answer in turn (the last one
/// repeats) and, optionally, copy to write to the profile through Update Profile before
/// answering (as our service does).
#[derive(Default)]
struct Script {
    statuses: VecDeque<u16>,
    write_copy: Option<String>,
}

struct Received {
    profile_id: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct ReceiverState {
    scripts: HashMap<String, Script>,
    received: Vec<Received>,
    /// Sandbox base URL and key, for `write_copy`.
    sandbox: Option<(String, String)>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<ReceiverState>>);

impl Receiver {
    fn script(&self, profile_id: &str, statuses: &[u16]) {
        self.0.lock().unwrap().scripts.insert(
            profile_id.to_string(),
            Script {
                statuses: statuses.iter().copied().collect(),
                write_copy: None,
            },
        );
    }

    fn received_for(&self, profile_id: &str) -> usize {
        let st = self.0.lock().unwrap();
        st.received
            .iter()
            .filter(|r| r.profile_id == profile_id)
            .count()
    }

    fn bodies(&self) -> Vec<String> {
        let st = self.0.lock().unwrap();
        st.received.iter().map(|r| r.body.clone()).collect()
    }

    /// Serves on an ephemeral loopback port; returns the webhook URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hooks/klaviyo", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hooks/klaviyo")
    }
}

/// Reads the profile id from the body (`"profile_id": "…"` when it parses, else a raw search).
fn profile_in(body: &str) -> String {
    if let Some(id) = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["profile_id"].as_str().map(str::to_owned))
    {
        return id;
    }
    body.split("\"profile_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let profile_id = profile_in(&body);
    let (status, copy, sandbox) = {
        let mut st = r.0.lock().unwrap();
        st.received.push(Received {
            profile_id: profile_id.clone(),
            headers,
            body,
        });
        let sandbox = st.sandbox.clone();
        let script = st.scripts.entry(profile_id.clone()).or_default();
        let status = if script.statuses.len() > 1 {
            script.statuses.pop_front().unwrap()
        } else {
            script.statuses.front().copied().unwrap_or(200)
        };
        (status, script.write_copy.take(), sandbox)
    };
    if let (Some(copy), Some((base, key))) = (copy, sandbox) {
        let resp = patch_profile(
            &base,
            &key,
            &profile_id,
            json!({"properties": {"sp_flow_body": copy}}),
        )
        .await;
        assert_eq!(resp, 200);
    }
    StatusCode::from_u16(status).unwrap()
}

async fn patch_profile(base: &str, key: &str, id: &str, attributes: Value) -> u16 {
    client()
        .patch(format!("{base}/api/profiles/{id}"))
        .header("Authorization", format!("Klaviyo-API-Key {key}"))
        .header("revision", REVISION)
        .header("Content-Type", "application/vnd.api+json")
        .json(&json!({"data": {"type": "profile", "id": id, "attributes": attributes}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn control(
    sb: &sandbox::Sandbox,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/_sandbox/klaviyo/flows{path}", sb.base_url);
    let mut req = match method {
        "POST" => client().post(url),
        _ => client().get(url),
    };
    if !key.is_empty() {
        req = req.header("Authorization", format!("Klaviyo-API-Key {key}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A metric-triggered flow posting `{"profile_id": …}` to `url`, 1 vendor second = `scale`.
fn flow_body(url: &str, scale: f64) -> Value {
    json!({
        "name": "Checkout personalisation",
        "trigger_metric": "Checkout Started",
        "webhook": {
            "url": url,
            "headers": {"Authorization": SECRET},
            "body": r#"{"profile_id":"{{ person.KlaviyoID }}"}"#,
        },
        "delay_seconds": 120,
        "email": {"template": "<p>{{ person|lookup:'sp_flow_body'|default:'Our bestsellers' }}</p>"},
        "time_scale": scale,
    })
}

async fn create_flow(sb: &sandbox::Sandbox, key: &str, body: Value) -> String {
    let (status, resp) = control(sb, key, "POST", "", Some(body)).await;
    assert_eq!(status, 201, "{resp}");
    resp["id"].as_str().unwrap().to_string()
}

fn checkout(event_id: &str) -> Value {
    // Keys in sorted order so `{{ event }}` reads the same with or without serde_json's
    // preserve_order feature.
    json!({
        "$event_id": event_id,
        "$extra": {
            "checkout_url": "https://demo-store.myshopify.com/checkouts/abc",
            "line_items": [{
                "line_price": "129.00",
                "product_id": 7001,
                "quantity": 1.0,
                "title": "Trail Tent",
                "variant_id": 9001,
            }],
        },
        "$value": 129.0,
        "Item Count": 1,
        "Items": ["Trail Tent"],
    })
}

async fn fire(sb: &sandbox::Sandbox, key: &str, flow: &str, profiles: &[&str]) -> Value {
    let entries: Vec<Value> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"profile_id": p, "event": checkout(&format!("ck-{flow}-{i}"))}))
        .collect();
    let (status, resp) = control(
        sb,
        key,
        "POST",
        &format!("/{flow}/fire"),
        Some(json!({"profiles": entries})),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    resp
}

async fn wait_done(sb: &sandbox::Sandbox, key: &str, flow: &str) -> Value {
    let (status, resp) = control(
        sb,
        key,
        "GET",
        &format!("/{flow}/deliveries?wait_secs=30"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["done"], true, "{resp:#}");
    resp
}

fn delivery<'a>(report: &'a Value, profile: &str) -> &'a Value {
    report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["profile_id"] == profile)
        .unwrap_or_else(|| panic!("no delivery for {profile}"))
}

fn statuses(d: &Value) -> Vec<Value> {
    d["webhook"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect()
}

async fn profile_ids(sb: &sandbox::Sandbox, key: &str, n: usize) -> Vec<String> {
    let page = klaviyo_json(sb, key, &format!("/api/profiles?page[size]={n}")).await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn retries_429_500_502_503_until_a_2xx_then_stops() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let flow = create_flow(&sb, &key, flow_body(&url, 1e-4)).await;
    let ids = profile_ids(&sb, &key, 4).await;
    let scripts: [&[u16]; 4] = [
        &[429, 200],
        &[500, 204],
        &[502, 503, 200],
        &[503, 503, 503, 201],
    ];
    for (id, script) in ids.iter().zip(scripts) {
        receiver.script(id, script);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    fire(&sb, &key, &flow, &refs).await;
    let report = wait_done(&sb, &key, &flow).await;

    for (id, script) in ids.iter().zip(scripts) {
        let d = delivery(&report, id);
        let want: Vec<Value> = script.iter().map(|s| json!(s)).collect();
        assert_eq!(
            statuses(d),
            want,
            "one attempt per status, stopping at the 2xx"
        );
        assert_eq!(d["webhook"]["outcome"], "succeeded");
        assert_eq!(receiver.received_for(id), script.len());
        // Exponential backoff: 10 s, then 20 s, then 40 s (vendor time) between tries.
        let times: Vec<f64> = d["webhook"]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["vendor_elapsed_secs"].as_f64().unwrap())
            .collect();
        for (k, w) in times.windows(2).enumerate() {
            let gap = 10.0 * 2f64.powi(k as i32);
            assert!(w[1] - w[0] >= gap * 0.99, "gap {k}: {times:?}");
        }
    }
    // Klaviyo's headers on every request: JSON, the pasted secret, the flow id; no signature.
    let st = receiver.0.lock().unwrap();
    assert_eq!(st.received.len(), 2 + 2 + 3 + 4);
    for r in &st.received {
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["authorization"], SECRET);
        assert_eq!(r.headers["x-klaviyo-flow-id"], flow.as_str());
        assert!(r.headers.get("klaviyo-signature").is_none());
    }
}

#[tokio::test]
async fn drops_4xx_3xx_504_and_unreachable_receivers_after_one_try() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let flow = create_flow(&sb, &key, flow_body(&url, 1e-4)).await;
    let dropped = [400u16, 401, 404, 422, 504, 301];
    let ids = profile_ids(&sb, &key, dropped.len()).await;
    for (id, status) in ids.iter().zip(dropped) {
        receiver.script(id, &[status, 200]);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    fire(&sb, &key, &flow, &refs).await;
    let report = wait_done(&sb, &key, &flow).await;
    // A retry would come 10 vendor seconds (1 ms here) later; give it far longer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (id, status) in ids.iter().zip(dropped) {
        let d = delivery(&report, id);
        assert_eq!(statuses(d), vec![json!(status)]);
        assert_eq!(d["webhook"]["outcome"], "dropped", "{status}");
        assert_eq!(receiver.received_for(id), 1, "{status} is never retried");
    }
    assert_eq!(report["webhook_outcomes"]["dropped"], dropped.len());

    // Nobody listening: one failed try, dropped.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let flow = create_flow(&sb, &key, flow_body(&dead_url, 1e-4)).await;
    fire(&sb, &key, &flow, &[&ids[0]]).await;
    let report = wait_done(&sb, &key, &flow).await;
    let d = delivery(&report, &ids[0]);
    assert_eq!(statuses(d), vec![Value::Null]);
    assert_eq!(d["webhook"]["attempts"][0]["error"], "connection failed");
    assert_eq!(d["webhook"]["outcome"], "dropped");
}

#[tokio::test]
async fn gives_up_after_seventeen_tries_spread_over_a_day() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    // 24 vendor hours in about 0.9 s.
    let flow = create_flow(&sb, &key, flow_body(&url, 1e-5)).await;
    let ids = profile_ids(&sb, &key, 1).await;
    receiver.script(&ids[0], &[503]);
    fire(&sb, &key, &flow, &[&ids[0]]).await;
    let report = wait_done(&sb, &key, &flow).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let d = delivery(&report, &ids[0]);
    assert_eq!(statuses(d), vec![json!(503); 17]);
    assert_eq!(d["webhook"]["outcome"], "retries_exhausted");
    assert_eq!(receiver.received_for(&ids[0]), 17, "no 18th try");
    let last = d["webhook"]["attempts"][16]["vendor_elapsed_secs"]
        .as_f64()
        .unwrap();
    assert!(
        last >= 86_400.0 * 0.99,
        "the 17th try comes a day later: {last}"
    );
}

#[tokio::test]
async fn webhook_body_renders_person_and_event_including_the_python_dict_quirk() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let ids = profile_ids(&sb, &key, 2).await;
    let base = sb.klaviyo_base_url();
    let status = patch_profile(
        &base,
        &key,
        &ids[0],
        json!({"external_id": "cust-1001", "email": "ava@example.com", "first_name": "Ava",
               "properties": {"Some Prop": "hiking"}}),
    )
    .await;
    assert_eq!(status, 200);
    // Values are inserted as they are: a quote in a name breaks a JSON body.
    let status = patch_profile(&base, &key, &ids[1], json!({"first_name": "Jo \"JJ\""})).await;
    assert_eq!(status, 200);

    let mut body = flow_body(&url, 1e-4);
    body["webhook"]["body"] = json!(concat!(
        r#"{"profile_id":"{{ person.KlaviyoID }}","external_id":"{{ person.id }}","#,
        r#""email":"{{ person.email }}","first_name":"{{ person.first_name }}","#,
        r#""prop":"{{ person|lookup:'Some Prop'|default:'none' }}","missing":"{{ person.no_such_prop }}","#,
        r#""value":{{ event|lookup:'$value' }},"product":{{ event.extra.line_items.0.product_id }},"#,
        r#""event":"{{ event }}"}"#
    ));
    let flow = create_flow(&sb, &key, body).await;
    fire(&sb, &key, &flow, &[&ids[0], &ids[1]]).await;
    let report = wait_done(&sb, &key, &flow).await;

    let bodies = receiver.bodies();
    let first = bodies.iter().find(|b| b.contains(&ids[0])).unwrap();
    let expected_event = format!(
        "{{'$event_id': 'ck-{flow}-0', '$extra': {{'checkout_url': 'https://demo-store.myshopify.com/checkouts/abc', \
         'line_items': [{{'line_price': '129.00', 'product_id': 7001, 'quantity': 1.0, 'title': 'Trail Tent', 'variant_id': 9001}}]}}, \
         '$value': 129.0, 'Item Count': 1, 'Items': ['Trail Tent']}}"
    );
    let expected = format!(
        r#"{{"profile_id":"{}","external_id":"cust-1001","email":"ava@example.com","first_name":"Ava","prop":"hiking","missing":"","value":129.0,"product":7001,"event":"{expected_event}"}}"#,
        ids[0]
    );
    assert_eq!(first, &expected);
    let parsed: Value = serde_json::from_str(first).unwrap();
    assert!(
        serde_json::from_str::<Value>(parsed["event"].as_str().unwrap()).is_err(),
        "{{{{ event }}}} is a Python dict, not JSON"
    );
    assert_eq!(
        delivery(&report, &ids[0])["webhook"]["body"],
        expected.as_str()
    );

    let second = bodies.iter().find(|b| b.contains(&ids[1])).unwrap();
    assert!(second.contains(r#""first_name":"Jo "JJ"""#), "{second}");
    assert!(serde_json::from_str::<Value>(second).is_err());
}

#[tokio::test]
async fn email_renders_the_copy_written_between_webhook_and_send() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    receiver.0.lock().unwrap().sandbox = Some((sb.klaviyo_base_url(), key.clone()));
    let url = receiver.serve().await;
    // The 2-minute delay lasts 0.6 s.
    let flow = create_flow(&sb, &key, flow_body(&url, 0.005)).await;
    let ids = profile_ids(&sb, &key, 2).await;
    receiver.0.lock().unwrap().scripts.insert(
        ids[0].clone(),
        Script {
            statuses: VecDeque::from([200]),
            write_copy: Some("Tents & tarps for <you>".into()),
        },
    );
    fire(&sb, &key, &flow, &[&ids[0], &ids[1]]).await;

    // The webhook has landed and the copy is written; the email is not sent yet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, early) = control(&sb, &key, "GET", &format!("/{flow}/deliveries"), None).await;
    assert_eq!(early["done"], false);
    assert_eq!(delivery(&early, &ids[0])["webhook"]["outcome"], "succeeded");
    assert_eq!(delivery(&early, &ids[0])["email"]["status"], "pending");

    let report = wait_done(&sb, &key, &flow).await;
    let with_copy = &delivery(&report, &ids[0])["email"];
    assert_eq!(with_copy["status"], "sent");
    assert_eq!(
        with_copy["html"], "<p>Tents &amp; tarps for &lt;you&gt;</p>",
        "the property as stored at send time, HTML-escaped"
    );
    assert!(with_copy["vendor_elapsed_secs"].as_f64().unwrap() >= 120.0 * 0.99);
    assert_eq!(
        delivery(&report, &ids[1])["email"]["html"],
        "<p>Our bestsellers</p>"
    );
}

#[tokio::test]
async fn triggering_event_is_readable_only_after_the_ingest_delay_and_deduplicated() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let mut body = flow_body(&url, 0.01);
    body["event_readable_after_seconds"] = json!(120); // 1.2 s here
    let flow = create_flow(&sb, &key, body).await;
    let ids = profile_ids(&sb, &key, 1).await;
    let fired = fire(&sb, &key, &flow, &[&ids[0]]).await;
    let event_id = fired["profiles"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();

    let metrics = klaviyo_json(&sb, &key, "/api/metrics").await;
    let metric = metrics["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["attributes"]["name"] == "Checkout Started")
        .expect("the trigger metric exists");
    assert_eq!(metric["attributes"]["integration"]["name"], "Shopify");
    let events_url = format!(
        "/api/events?filter=equals(profile_id,\"{}\"),equals(metric_id,\"{}\")&sort=-datetime&page[size]=5",
        ids[0],
        metric["id"].as_str().unwrap()
    );
    let early = klaviyo_json(&sb, &key, &events_url).await;
    assert_eq!(
        early["data"].as_array().unwrap().len(),
        0,
        "not readable yet"
    );

    tokio::time::sleep(Duration::from_millis(1_400)).await;
    let late = klaviyo_json(&sb, &key, &events_url).await;
    let events = late["data"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], event_id.as_str());
    assert_eq!(
        events[0]["attributes"]["event_properties"]["$event_id"],
        format!("ck-{flow}-0")
    );
    assert_eq!(
        events[0]["attributes"]["event_properties"]["$extra"]["line_items"][0]["product_id"],
        7001
    );

    // The same $event_id again: deduplicated, the flow does not run twice.
    let again = fire(&sb, &key, &flow, &[&ids[0]]).await;
    assert_eq!(again["profiles"][0]["deduplicated"], true);
    let report = wait_done(&sb, &key, &flow).await;
    assert_eq!(report["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn flow_controls_refuse_what_klaviyo_refuses() {
    let sb = start(small_config()).await;
    let key = sb.full_access_klaviyo_key();
    let url = "https://hooks.example.com/klaviyo";
    let ok = flow_body(url, 1e-4);

    let (status, _) = control(&sb, "", "POST", "", Some(ok.clone())).await;
    assert_eq!(status, 401, "the account's key is required");
    for (field, value) in [
        ("delay_seconds", json!(30)),
        ("delay_seconds", json!(90)),
        ("name", json!("")),
        ("trigger_metric", json!(5)),
    ] {
        let mut body = ok.clone();
        body[field] = value.clone();
        let (status, _) = control(&sb, &key, "POST", "", Some(body)).await;
        assert_eq!(status, 400, "{field} = {value}");
    }
    for (pointer, value) in [
        ("/webhook/url", json!("http://hooks.example.com/klaviyo")),
        ("/webhook/body", json!("{\"v\": {{ event.$value }}}")),
        (
            "/webhook/body",
            json!("{% for i in event.Items %}{% endfor %}"),
        ),
        (
            "/email/template",
            json!("{{ person.sp_body|nosuchfilter }}"),
        ),
    ] {
        let mut body = ok.clone();
        *body.pointer_mut(pointer).unwrap() = value.clone();
        let (status, resp) = control(&sb, &key, "POST", "", Some(body)).await;
        assert_eq!(status, 400, "{pointer} = {value}: {resp}");
    }

    let flow = create_flow(&sb, &key, ok).await;
    let (status, _) = control(
        &sb,
        &key,
        "POST",
        &format!("/{flow}/fire"),
        Some(json!({"profiles": [{"profile_id": "01NOSUCHPROFILE0000000000"}]})),
    )
    .await;
    assert_eq!(status, 404);
    let ids = profile_ids(&sb, &key, 1).await;
    let (status, _) = control(
        &sb,
        &key,
        "POST",
        &format!("/{flow}/fire"),
        Some(json!({"profiles": [{"profile_id": ids[0]}]})),
    )
    .await;
    assert_eq!(status, 400, "a metric-triggered flow needs the event");

    // Another account's key does not see the flow.
    let (status, _) =
        sandbox_post(&sb, "/_sandbox/klaviyo/accounts", json!({"id": "Other1"})).await;
    assert_eq!(status, 201);
    let (_, other) = sandbox_post(
        &sb,
        "/_sandbox/klaviyo/keys",
        json!({"scopes": ["profiles:read"], "account": "Other1"}),
    )
    .await;
    let other_key = other["key"].as_str().unwrap();
    let (status, _) = control(&sb, other_key, "GET", &format!("/{flow}/deliveries"), None).await;
    assert_eq!(status, 404);
}

async fn sandbox_post(sb: &sandbox::Sandbox, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", sb.base_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}
