//! The proof of the privacy promise: a merchant is walked through everything SendPersonal does
//! and every way out of it, and after each step EVERYTHING the system wrote is scanned — every
//! item of every table template.yaml declares, every secret of the stack, every message in every
//! queue and DLQ, and every log line. Personal data and credentials may be nowhere (credentials
//! only in Secrets Manager); after account deletion nothing may name the merchant or the shop.
//!
//! Adding a step (e.g. the personalization preview and a run with review, once they exist) is one
//! call plus one `checkpoint(...)`: see the marked places below.

mod trace;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trace::{snapshot, Delivery, Snapshot};

/// Names, emails and phones that enter the system through payloads; none may be stored or logged.
const CUSTOMER: &[&str] = &[
    "Ottilie",
    "Vanterpool",
    "ottilie.vanterpool",
    "Sam Owner",
    "owner@demo-store",
];

async fn checkpoint(world: &World, step: &str, forbidden: &[&str]) -> Snapshot {
    world.settle().await;
    let snap = snapshot(world).await;
    let mut all: Vec<&str> = CUSTOMER.to_vec();
    all.extend_from_slice(forbidden);
    trace::assert_no_leaks(step, &snap, &trace::log_text(), &all);
    snap
}

async fn cognito_user_exists(world: &World, username: &str) -> bool {
    let pool = world.stack.resources.get("UserPool").unwrap().name.clone();
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(world.stack.aws.config());
    cognito
        .admin_get_user()
        .user_pool_id(pool)
        .username(username)
        .send()
        .await
        .is_ok()
}

async fn put_item(world: &World, item: Vec<(&str, AttributeValue)>) {
    let ddb = world.stack.aws.dynamodb();
    let mut req = ddb.put_item().table_name(world.config().app_table);
    for (k, v) in item {
        req = req.item(k, v);
    }
    req.send().await.expect("put item");
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

async fn deliver(world: &World, topic: &str, extra: Value) -> Response {
    let mut request = json!({ "topic": topic });
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let resp = Delivery::from_sandbox(world, DEMO_SHOP, request)
        .await
        .send(world)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{topic}: {:?}", resp.body);
    resp
}

fn numeric(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_merchant_who_leaves_leaves_no_trace() {
    trace::logs();
    let world = World::start().await;
    let (merchant, username) = cognito_merchant(&world, "leaving.merchant@example.org").await;
    let sub = merchant.sub.clone();
    let klaviyo_key = world.stack.sandbox.full_access_klaviyo_key();
    let config = world.config();
    let shopify_secret = config.secret_name(
        &shared::domain::MerchantId::parse(&sub).unwrap(),
        shared::domain::Vendor::Shopify,
    );

    // 1. Connect Klaviyo.
    let resp = merchant.connect_klaviyo(&klaviyo_key).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    checkpoint(&world, "connect Klaviyo", &[]).await;

    // 2. Connect Shopify; the first sync fills the catalog.
    let resp = merchant.connect_shopify(DEMO_SHOP).await;
    assert_eq!(resp.install_outcome(), "connected");
    let catalog = world.cached_catalog(&sub).await;
    assert!(!catalog.is_empty());
    checkpoint(&world, "connect Shopify and sync", &[]).await;

    // 3. Personalization: a preview, then a run with review. Neither may leave the customers'
    //    emails, names or the generated copy anywhere we keep things.
    let (people, copy) = personalize_steps(&world, &merchant).await;
    let mut forbidden: Vec<&str> = people.iter().map(String::as_str).collect();
    forbidden.extend(copy.iter().map(String::as_str));
    checkpoint(&world, "preview and a run with review", &forbidden).await;

    // 4. Webhooks of every product and customer topic, with real HMAC headers.
    let (first, second) = (numeric(&catalog[0].id), numeric(&catalog[1].id));
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{first}/update"),
            json!({ "title": "Renamed" }),
        )
        .await;
    deliver(&world, "products/update", json!({ "product_id": first })).await;
    deliver(&world, "products/create", json!({ "product_id": second })).await;
    world
        .sandbox(
            Method::DELETE,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/products/{second}"),
            json!({}),
        )
        .await;
    deliver(&world, "products/delete", json!({ "product_id": second })).await;
    let customer = json!({ "id": 7100000042u64, "email": "ottilie.vanterpool@example.net", "phone": "+44 7700 900123",
                           "first_name": "Ottilie", "last_name": "Vanterpool" });
    for topic in ["customers/data_request", "customers/redact"] {
        let resp = deliver(&world, topic, json!({ "customer": customer })).await;
        assert_eq!(resp.body["status"], "acknowledged");
    }
    checkpoint(&world, "product and customer webhooks", &[]).await;

    // 5. Disconnect Klaviyo while a run is live: the run stops and says why; a finished one stays.
    let pk = format!("MERCHANT#{sub}");
    put_item(
        &world,
        vec![
            ("pk", s(&pk)),
            ("sk", s("RUN#01LIVE")),
            ("run_id", s("01LIVE")),
            ("state", s("running")),
        ],
    )
    .await;
    put_item(
        &world,
        vec![
            ("pk", s(&pk)),
            ("sk", s("RUN#00DONE")),
            ("run_id", s("00DONE")),
            ("state", s("completed")),
        ],
    )
    .await;
    put_item(
        &world,
        vec![
            ("pk", s("RUNBATCH#01LIVE")),
            ("sk", s("BATCH#0000000001")),
            ("done", AttributeValue::Bool(true)),
        ],
    )
    .await;
    let resp = world
        .call(
            Method::DELETE,
            "/connections/klaviyo",
            Some(&merchant.token),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "deleted");
    assert_eq!(
        resp.body["deleted"],
        json!({ "connection": 1, "run_cancelled": 1, "secret": 1 })
    );
    let snap = checkpoint(&world, "disconnect Klaviyo", &[&klaviyo_key]).await;
    let runs = snap
        .table("AppTable")
        .into_iter()
        .filter(|i| i.contains("RUN#0"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        runs.contains("cancelled") && runs.contains("klaviyo_disconnected"),
        "{runs}"
    );
    assert!(
        runs.contains("completed"),
        "a finished run keeps its ending: {runs}"
    );
    assert!(merchant.connections().await["klaviyo"].is_null());

    // 6. Disconnect Shopify: the grant is revoked at Shopify, then everything of the shop goes.
    let tokens: Value =
        serde_json::from_str(&world.secret(&shopify_secret).await.unwrap()).unwrap();
    let resp = world
        .call(
            Method::DELETE,
            "/connections/shopify",
            Some(&merchant.token),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["grant_revoked"], true, "{:?}", resp.body);
    assert_eq!(resp.body["deleted"]["secret"], 1);
    assert!(resp.body["deleted"]["catalog_item"].as_u64().unwrap() >= catalog.len() as u64 - 1);
    let graphql = world
        .http
        .post(format!(
            "{}/shopify/{DEMO_SHOP}/admin/api/2026-10/graphql.json",
            world.stack.sandbox.base_url
        ))
        .header(
            "X-Shopify-Access-Token",
            tokens["access_token"].as_str().unwrap(),
        )
        .json(&json!({ "query": "{ shop { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        graphql.status(),
        StatusCode::UNAUTHORIZED,
        "the old token no longer works at Shopify"
    );
    let snap = checkpoint(&world, "disconnect Shopify", &[]).await;
    assert!(
        snap.table("CatalogTable").is_empty(),
        "no cached product is left"
    );
    assert!(merchant.connections().await["shopify"].is_null());

    // 7. Reinstall, then uninstall from the Shopify admin: app/uninstalled purges the Shopify
    //    side (the token is already dead), and shop/redact 48 h later finds nothing left.
    merchant.connect_shopify(DEMO_SHOP).await;
    assert!(!world.cached_catalog(&sub).await.is_empty());
    world
        .sandbox(
            Method::POST,
            &format!("/_sandbox/shopify/{DEMO_SHOP}/uninstall"),
            json!({}),
        )
        .await;
    assert_eq!(
        deliver(&world, "app/uninstalled", json!({})).await.body["status"],
        "queued"
    );
    let snap = checkpoint(&world, "app/uninstalled", &[]).await;
    assert!(snap.table("CatalogTable").is_empty());
    assert!(world.secret(&shopify_secret).await.is_none());
    assert!(merchant.connections().await["shopify"].is_null());
    assert_eq!(
        deliver(&world, "shop/redact", json!({})).await.body["status"],
        "queued"
    );
    let after_redact = checkpoint(&world, "shop/redact", &[]).await;
    assert_eq!(after_redact.table("CatalogTable").len(), 0);

    // 8. Everything connected again, with settings; the export shows all we hold, no secret.
    merchant.connect_klaviyo(&klaviyo_key).await;
    merchant.connect_shopify(DEMO_SHOP).await;
    put_item(
        &world,
        vec![
            ("pk", s(&pk)),
            ("sk", s("SETTINGS")),
            ("brand_voice", s("warm and brief")),
        ],
    )
    .await;
    let export = merchant.get("/account/export").await;
    assert_eq!(export.status, StatusCode::OK, "{:?}", export.body);
    let sks: Vec<&str> = export.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["sk"].as_str())
        .collect();
    for sk in [
        "CONNECTION#klaviyo",
        "CONNECTION#shopify",
        "SETTINGS",
        "RUN#00DONE",
        "RUN#01LIVE",
    ] {
        assert!(sks.contains(&sk), "the export holds {sk}: {sks:?}");
    }
    assert_eq!(export.body["secrets"].as_array().unwrap().len(), 2);
    assert_eq!(export.body["shop"], DEMO_SHOP);
    let export_text = export.body.to_string();
    assert!(
        trace::credentials(&export_text).is_empty() && !export_text.contains(&klaviyo_key),
        "the export holds no secret"
    );
    checkpoint(&world, "export", &[]).await;

    // 9. Delete the account: nothing is left that names the merchant or the shop.
    let resp = world
        .call(Method::DELETE, "/account", Some(&merchant.token), None)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "deleted");
    assert_eq!(resp.body["deleted"]["user"], 1, "{:?}", resp.body);
    assert!(
        !cognito_user_exists(&world, &username).await,
        "the sign-in user is gone"
    );
    let gone = checkpoint(&world, "account deletion", &[&klaviyo_key]).await;
    trace::assert_nothing_left("account deletion", &gone, &[&sub, DEMO_SHOP, "demo-store"]);
    let apps = gone.table("AppTable");
    // Besides webhook dedupe markers, only the pooled budgets' one-second slots and the deleted
    // account's tombstone (keyed by a hash of the id, refusing its still-valid tokens), which
    // name no merchant (checked above) and expire.
    assert!(
        apps.iter().all(|i| i.contains("WEBHOOK#")
            || ((i.contains("BUDGET#") || i.contains("DELETED#")) && i.contains("expires_at"))),
        "only webhook dedupe markers, budget slots and the tombstone (TTL) remain: {apps:?}"
    );
    assert!(gone.table("CatalogTable").is_empty());
    let merchant_secrets: Vec<_> = gone
        .secrets
        .iter()
        .filter(|(n, _)| n.contains("sendpersonal/") && !n.contains("/app/"))
        .collect();
    assert!(merchant_secrets.is_empty(), "{merchant_secrets:?}");
    assert!(
        gone.messages.is_empty(),
        "no queue or DLQ holds anything: {:?}",
        gone.messages
    );

    // The audit trail: one record per purge, keyed by HMAC(pepper, merchant id), no id or shop inside.
    let pepper = gone
        .secrets
        .iter()
        .find(|(n, _)| n.ends_with("AuditPepperSecret"))
        .map(|(_, v)| v.clone())
        .unwrap();
    let key = shared::aws::audit::subject_key(&pepper, &format!("merchant:{sub}"));
    let audit = gone.table("AuditTable");
    assert!(audit.iter().all(|i| i.contains(&key)), "{audit:?}");
    for action in [
        "disconnect_klaviyo",
        "disconnect_shopify",
        "app_uninstalled",
        "delete_account",
    ] {
        assert!(
            audit.iter().any(|i| i.contains(action)),
            "audit has {action}: {audit:?}"
        );
    }

    // The log capture really saw the handlers (so "no leak in the logs" means something).
    let logs = trace::log_text();
    assert!(
        logs.contains("purge complete") && logs.contains("webhook queued"),
        "handler logs are captured"
    );

    // Deleting again is a no-op with a clear answer.
    let again = world
        .call(Method::DELETE, "/account", Some(&merchant.token), None)
        .await;
    assert_eq!(
        again.body["status"], "nothing_to_delete",
        "{:?}",
        again.body
    );
    world.settle().await;
    let after = snapshot(&world).await;
    let added: Vec<_> = after
        .places()
        .filter(|p| !gone.places().any(|g| g == *p))
        .collect();
    let removed: Vec<_> = gone
        .places()
        .filter(|p| !after.places().any(|g| g == *p))
        .collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "a second deletion changes nothing: added {added:?}, removed {removed:?}"
    );
}

#[tokio::test]
async fn a_purge_that_crashed_half_way_finishes_on_retry() {
    trace::logs();
    let world = World::start().await;
    let merchant = world.merchant("crash-half-way").await;
    merchant.connect_shopify(DEMO_SHOP).await;
    let config = world.config();
    let id = shared::domain::MerchantId::parse(&merchant.sub).unwrap();

    // The first attempt died after marking the connection and deleting the secret.
    let store = shared::aws::dynamo::AppStore::from_sdk(&world.stack.aws, &config.app_table);
    assert!(store
        .mark_disconnecting(&id, shared::domain::Vendor::Shopify)
        .await
        .unwrap()
        .is_some());
    let secrets = shared::aws::secrets::SecretStore::from_sdk(&world.stack.aws, None);
    secrets
        .delete(&config.secret_name(&id, shared::domain::Vendor::Shopify))
        .await
        .unwrap();
    assert_eq!(
        merchant.connections().await["shopify"]["status"],
        "disconnecting"
    );

    let resp = world
        .call(
            Method::DELETE,
            "/connections/shopify",
            Some(&merchant.token),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "deleted");
    assert_eq!(
        resp.body["grant_revoked"], false,
        "the token was already gone: {:?}",
        resp.body
    );
    assert!(resp.body["deleted"]["catalog_item"].as_u64().unwrap() > 0);
    world.settle().await;
    let snap = snapshot(&world).await;
    trace::assert_nothing_left("the retried purge", &snap, &[&merchant.sub, DEMO_SHOP]);
}

/// The audit pepper is read before anything is deleted: while it is unreadable a disconnect
/// fails whole and the key stays; once it is back, the same request deletes the key and leaves
/// its audit record (deleting first would have left a purge nobody can account for).
#[tokio::test]
async fn a_purge_that_cannot_leave_its_record_deletes_nothing() {
    trace::logs();
    let world = World::start().await;
    let merchant = world.merchant("audit-pepper-outage").await;
    let key = world.stack.sandbox.full_access_klaviyo_key();
    assert_eq!(merchant.connect_klaviyo(&key).await.status, StatusCode::OK);
    let config = world.config();
    let id = shared::domain::MerchantId::parse(&merchant.sub).unwrap();
    let key_name = config.secret_name(&id, shared::domain::Vendor::Klaviyo);

    let pepper_id = world
        .stack
        .config("DisconnectPurgeFunction")
        .audit_pepper_secret_id
        .expect("the purge function names its pepper");
    let pepper = world.take_secret(&pepper_id).await;

    let disconnect = || {
        world.call(
            Method::DELETE,
            "/connections/klaviyo",
            Some(&merchant.token),
            None,
        )
    };
    let failed = disconnect().await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(failed.problem_type().ends_with("/internal"));
    assert!(
        world.secret(&key_name).await.is_some(),
        "nothing was deleted"
    );
    assert_eq!(
        merchant.connections().await["klaviyo"]["status"],
        "connected"
    );

    world.restore_secret(&pepper_id, &pepper).await;
    let resp = disconnect().await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    assert_eq!(resp.body["status"], "deleted");
    assert!(world.secret(&key_name).await.is_none());
    let audit = snapshot(&world).await;
    let subject = shared::aws::audit::subject_key(&pepper, &format!("merchant:{}", merchant.sub));
    assert!(
        audit
            .table("AuditTable")
            .iter()
            .any(|i| i.contains(&subject) && i.contains("disconnect_klaviyo")),
        "the purge left its record"
    );
}

#[test]
fn the_scanners_find_what_they_look_for() {
    assert_eq!(
        trace::emails("x {\"email\": S(\"jane.doe+1@mail.example.com\")} y"),
        vec!["jane.doe+1@mail.example.com"]
    );
    assert!(trace::emails("arn:aws:sqs:us-east-1:123456789012:q and a@b").is_empty());
    assert_eq!(trace::phones("call +44 7700 900123 now").len(), 1);
    assert!(trace::phones("+1 day, 2026-10-05T12:00:00Z, +12").is_empty());
    assert_eq!(
        trace::credentials("token=shpat_0123456789abcdef0123 key pk_abcdefghijklmnopqrstu").len(),
        2
    );
    assert!(trace::credentials("the shpat_ prefix, gid://shopify/Product/1, sk_pk_").is_empty());
}

/// Preview three customers, then run a small segment slice with review and approve it. Returns
/// what must never be stored: the customers' emails and full names, and every piece of copy.
async fn personalize_steps(world: &World, merchant: &Merchant<'_>) -> (Vec<String>, Vec<String>) {
    let audiences = merchant.get("/audiences").await.body;
    let segment = audiences["audiences"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == "VIP + Engaged"))
        .cloned()
        .expect("the sandbox has a VIP + Engaged segment");
    let key = shared::domain::KlaviyoApiKey::parse(&world.stack.sandbox.full_access_klaviyo_key())
        .unwrap();
    let klaviyo = shared::klaviyo::KlaviyoClient::new(
        reqwest::Client::new(),
        world.stack.sandbox.klaviyo_base_url(),
        "2026-07-15".into(),
    );
    let (ids, _) = klaviyo
        .audience_page(
            &key,
            shared::klaviyo::AudienceKind::Segment,
            segment["id"].as_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    let ids: Vec<String> = ids.into_iter().take(12).collect();
    let mut people = Vec::new();
    for p in klaviyo.get_profiles(&key, &ids).await.unwrap() {
        let a = &p["attributes"];
        if let Some(email) = a["email"].as_str() {
            people.push(email.to_owned());
        }
        if let (Some(first), Some(last)) = (a["first_name"].as_str(), a["last_name"].as_str()) {
            people.push(format!("{first} {last}"));
        }
    }
    let mut copy = Vec::new();
    let mut keep_copy = |v: &Value| {
        for slot in ["subject", "body"] {
            if let Some(text) = v["copy"][slot].as_str() {
                copy.push(text.to_owned());
            }
        }
    };
    let preview = merchant
        .post(
            "/preview",
            json!({ "brief": "Warm layers for the first cold weekends", "profiles": &ids[..3] }),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{:?}", preview.body);
    preview.body["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(&mut keep_copy);
    let run = merchant
        .post(
            "/runs",
            json!({ "audience": { "kind": "segment", "id": segment["id"] }, "brief": "Warm layers for the first cold weekends",
                    "holdout_percent": 10, "profile_cap": 12, "review": true }),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{:?}", run.body);
    let id = run.body["run"]["run_id"].as_str().unwrap().to_owned();
    let samples = merchant.get(&format!("/runs/{id}/samples")).await;
    assert_eq!(samples.status, StatusCode::OK, "{:?}", samples.body);
    samples.body["samples"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(&mut keep_copy);
    assert_eq!(
        merchant
            .post(&format!("/runs/{id}/approve"), json!({}))
            .await
            .status,
        StatusCode::OK
    );
    world.settle().await;
    let done = merchant.get(&format!("/runs/{id}")).await.body;
    assert_eq!(done["state"], "completed", "{done}");
    // The copy that was written now lives in Klaviyo only: read it back to scan for it.
    for p in klaviyo.get_profiles(&key, &ids).await.unwrap() {
        if let Some(body) = p["attributes"]["properties"]["sp_campaign_body"].as_str() {
            copy.push(body.to_owned());
        }
    }
    assert!(
        !copy.is_empty() && people.len() >= 12,
        "the scan has something to look for"
    );
    (people, copy)
}
