//! Personalizing an audience end to end through the real HTTP API, SQS, moto and the sandbox's
//! Klaviyo, Shopify and Bedrock: preview, review and approve, cancel, the holdout split, every
//! profile accounted for, each model misbehaviour caught, redelivery and the DLQ.

use e2e::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const A: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const BRIEF: &str = "Warm layers for the first cold weekends";

async fn connected(world: &World) -> Merchant<'_> {
    let merchant = world.merchant(A).await;
    merchant.connect_demo_accounts().await;
    merchant
}

#[tokio::test]
async fn settings_are_validated_and_kept() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    let defaults = merchant.get("/settings").await;
    assert_eq!(defaults.status, StatusCode::OK);
    let mut settings = defaults.body.clone();
    settings["brand_voice"]["descriptors"] = json!(["warm", "outdoorsy"]);
    settings["sign_off"] = json!("The Demo Outdoor team");
    assert_eq!(
        merchant.put("/settings", settings.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(merchant.get("/settings").await.body, settings);

    settings["slots"]["products"] = json!(9);
    let bad = merchant.put("/settings", settings).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.problem_type().ends_with("/invalid-settings"));
}

#[tokio::test]
async fn preview_returns_grounded_copy_and_writes_nothing() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let (client, key) = klaviyo(&world);
    let vip = audience(&merchant, "VIP + Engaged").await;
    let ids = first_page(&client, &key, &vip).await;
    let asked: Vec<String> = ids.into_iter().take(3).collect();
    let before = world.sandbox_stats().await;

    let resp = merchant
        .post("/preview", json!({ "brief": BRIEF, "profiles": asked }))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    let profiles = resp.body["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3);
    for p in profiles {
        assert_eq!(p["outcome"], "written", "{p}");
        assert!(p["grounding"]["passed"].as_bool().unwrap());
        let candidates: Vec<&Value> = p["candidates"].as_array().unwrap().iter().collect();
        for product in p["copy"]["products"].as_array().unwrap() {
            assert!(
                candidates.contains(&product),
                "every product is one of the candidates, exactly: {product}"
            );
        }
    }
    assert!(resp.body["tokens"]["input_tokens"].as_u64().unwrap() > 0);
    let after = world.sandbox_stats().await;
    assert_eq!(
        writes(&before),
        writes(&after),
        "a preview writes nothing to Klaviyo"
    );
}

/// Profile writes the sandbox has served (PATCH and bulk import jobs).
fn writes(stats: &Value) -> u64 {
    let text = stats["klaviyo"].to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    let mut n = 0;
    if let Some(map) = v.as_object() {
        for (k, val) in map {
            if k.contains("PATCH") || k.contains("POST /api/profile-bulk-import-jobs") {
                n += val.as_u64().unwrap_or(0);
            }
            if let Some(inner) = val.as_object() {
                for (k2, v2) in inner {
                    if k2.contains("PATCH") || k2.contains("POST /api/profile-bulk-import-jobs") {
                        n += v2.as_u64().unwrap_or(0);
                    }
                }
            }
        }
    }
    n
}

#[tokio::test]
async fn a_run_writes_every_profile_back_and_its_numbers_add_up() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let run = run_and_wait(
        &world,
        &merchant,
        json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "holdout_percent": 20, "profile_cap": 150, "review": false }),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["counts"]["total"], 150);
    assert_adds_up(&run);
    let written = run["counts"]["written"].as_u64().unwrap();
    let holdout = run["counts"]["holdout"].as_u64().unwrap();
    assert!(written >= 100, "most profiles are written: {run}");
    assert!((15..=45).contains(&holdout), "about 20% held out: {run}");
    assert!(
        run["requests"]["klaviyo_events"].as_u64().unwrap() > 0
            && run["requests"]["bedrock_converse"].as_u64().unwrap() > 0
    );
    assert!(run["estimated_cost_usd"].as_f64().unwrap() > 0.0);

    // Read the profiles back from Klaviyo: copy for the personalized group; for every other
    // profile of the run the set is cleared and names the run and the outcome.
    let (client, key) = klaviyo(&world);
    let ids = first_page(&client, &key, &vip).await;
    let profiles = client.get_profiles(&key, &ids).await.unwrap();
    let run_id = run["run_id"].as_str().unwrap();
    assert_eq!(run["property_set"], "campaign", "the default set: {run}");
    let mut seen = (0, 0);
    for p in &profiles {
        let props = &p["attributes"]["properties"];
        if props["sp_campaign_run_id"] != run_id {
            continue;
        }
        match props["sp_campaign_outcome"].as_str() {
            Some("personalized") => {
                seen.0 += 1;
                assert!(
                    props["sp_campaign_body"]
                        .as_str()
                        .is_some_and(|b| !b.is_empty()),
                    "{props}"
                );
                assert!(props["sp_campaign_product_1_url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http")));
            }
            Some("holdout" | "skipped" | "failed") => {
                seen.1 += usize::from(props["sp_campaign_outcome"] == "holdout");
                assert!(
                    props.get("sp_campaign_body").is_none_or(Value::is_null),
                    "profiles without copy of this run have none: {props}"
                );
            }
            other => panic!("unexpected sp_campaign_outcome {other:?}"),
        }
    }
    assert!(
        seen.0 > 0 && seen.1 > 0,
        "both groups were written back: {seen:?}"
    );
}

/// Every profile of a run ends with this run's copy or none: a profile the second run cannot
/// personalize loses the first run's copy and says why.
#[tokio::test]
async fn a_profile_a_run_cannot_personalize_keeps_no_older_copy() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let body = json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 12, "holdout_percent": 0 });
    let first = run_and_wait(&world, &merchant, body.clone()).await;
    assert_eq!(first["state"], "completed", "{first}");
    assert!(first["counts"]["written"].as_u64().unwrap() > 0, "{first}");

    // The model fails for every customer of the second run: nothing is written, and the first
    // run's copy must not survive to be sent with the second campaign.
    bedrock_fault(&world, "fail", -1).await;
    let second = run_and_wait(&world, &merchant, body).await;
    bedrock_fault(&world, "none", 0).await;
    assert_eq!(second["state"], "completed", "{second}");
    assert_adds_up(&second);
    assert_eq!(second["counts"]["failed"]["bedrock"], 12, "{second}");

    let ids = first_members(&world, &vip, 12).await;
    let (client, key) = klaviyo(&world);
    let second_id = second["run_id"].as_str().unwrap();
    for p in client.get_profiles(&key, &ids).await.unwrap() {
        let props = &p["attributes"]["properties"];
        assert_eq!(props["sp_campaign_run_id"], second_id, "{props}");
        assert_eq!(props["sp_campaign_outcome"], "failed", "{props}");
        assert_eq!(props["sp_campaign_reason"], "bedrock", "{props}");
        for k in [
            "sp_campaign_subject",
            "sp_campaign_body",
            "sp_campaign_product_1_title",
        ] {
            assert!(
                props.get(k).is_none_or(Value::is_null),
                "{k} cleared: {props}"
            );
        }
    }
}

/// Runs write named property sets: two live runs never share one, and different sets can be
/// live side by side.
#[tokio::test]
async fn two_live_runs_never_write_the_same_property_set() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let body = |set: &str| json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 5, "review": true, "property_set": set });
    let winter = merchant.post("/runs", body("winter")).await;
    assert_eq!(winter.status, StatusCode::CREATED, "{:?}", winter.body);
    assert_eq!(winter.body["run"]["property_set"], "winter");
    let winter_id = winter.body["run"]["run_id"].as_str().unwrap().to_owned();

    let clash = merchant.post("/runs", body("winter")).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{:?}", clash.body);
    assert!(clash.problem_type().ends_with("/property-set-in-use"));
    assert!(clash.body["detail"].as_str().unwrap().contains(&winter_id));

    let other = merchant.post("/runs", body("spring")).await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "another set is free: {:?}",
        other.body
    );

    let bad = merchant.post("/runs", body("Winter-Sale")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);

    // Once the holder ends, the set is free again.
    let cancelled = merchant
        .post(&format!("/runs/{winter_id}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let again = merchant.post("/runs", body("winter")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
}

#[tokio::test]
async fn review_waits_for_approval_and_a_cancelled_run_writes_nothing() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let body = json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 30, "review": true });

    let before = world.sandbox_stats().await;
    let created = merchant.post("/runs", body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["run"]["state"], "awaiting_approval");
    assert_eq!(
        world.sandbox_stats().await["bedrock"]["requests"],
        before["bedrock"]["requests"],
        "creating the run asks the model nothing"
    );
    let id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let samples = merchant.get(&format!("/runs/{id}/samples")).await;
    assert_eq!(samples.status, StatusCode::OK, "{:?}", samples.body);
    assert_eq!(
        samples.body["samples"].as_array().unwrap().len(),
        3,
        "samples to review: {:?}",
        samples.body
    );
    world.settle().await;
    assert_eq!(
        merchant.get(&format!("/runs/{id}")).await.body["counts"]["total"],
        0,
        "nothing runs before approval"
    );

    let approved = merchant
        .post(&format!("/runs/{id}/approve"), json!({}))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    world.settle().await;
    let run = merchant.get(&format!("/runs/{id}")).await.body;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["counts"]["total"], 30);
    assert_adds_up(&run);
    let again = merchant
        .post(&format!("/runs/{id}/approve"), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.problem_type().ends_with("/run-state-conflict"));
    let late = merchant.get(&format!("/runs/{id}/samples")).await;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "no samples once approved"
    );

    let second = merchant.post("/runs", body).await;
    let second_id = second.body["run"]["run_id"].as_str().unwrap().to_owned();
    let cancelled = merchant
        .post(&format!("/runs/{second_id}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["state"], "cancelled");
    assert_eq!(
        merchant
            .post(&format!("/runs/{second_id}/approve"), json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );

    let missing = merchant.get("/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.problem_type().ends_with("/run-not-found"));
    let listed = merchant.get("/runs").await.body;
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_model_misbehaviour_is_caught_and_accounted_for() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    // Content faults hit the first customer of every request, on the repair attempt too. An
    // overlong body (three times its slot) is refused by the gate, or, when the model runs past
    // the request's maxTokens writing it, arrives cut off: skipped either way, never written.
    for (mode, expect) in [
        ("invent_product", &["validation_failed"][..]),
        ("invent_discount", &["validation_failed"]),
        ("wrong_price", &["validation_failed"]),
        ("overlong", &["validation_failed", "malformed_output"]),
        ("leak_pii", &["validation_failed"]),
        ("malformed", &["malformed_output"]),
        ("max_tokens", &["malformed_output"]),
    ] {
        bedrock_fault(&world, mode, -1).await;
        let run = run_and_wait(
            &world,
            &merchant,
            json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 10 }),
        )
        .await;
        assert_adds_up(&run);
        let caught: u64 = expect
            .iter()
            .map(|reason| run["counts"]["skipped"][*reason].as_u64().unwrap_or(0))
            .sum();
        assert!(caught >= 1, "{mode} is caught as {expect:?}: {run}");
        assert!(
            run["counts"]["written"].as_u64().unwrap_or(0) < 10,
            "{mode}: the faulty copy was not written: {run}"
        );
        assert_eq!(run["state"], "completed");
    }
    // Service faults: a short throttle is absorbed by retries; a persistent failure fails the
    // profiles with a reason, and nothing is lost.
    bedrock_fault(&world, "throttle", 2).await;
    let run = run_and_wait(&world, &merchant, json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 10 })).await;
    assert_adds_up(&run);
    assert_eq!(
        run["counts"]["written"], 10,
        "throttling was retried away: {run}"
    );
    bedrock_fault(&world, "fail", -1).await;
    let run = run_and_wait(&world, &merchant, json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 10 })).await;
    assert_adds_up(&run);
    assert_eq!(run["counts"]["failed"]["bedrock"], 10, "{run}");
    bedrock_fault(&world, "none", 0).await;
}

#[tokio::test]
async fn a_redelivered_batch_is_counted_once_and_a_dead_letter_is_counted_as_failed() {
    let world = World::start_with(|o| {
        o.run_queues = false;
    })
    .await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 8, "review": true }))
        .await;
    let run_id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let (client, key) = klaviyo(&world);
    let ids = first_page(&client, &key, &vip).await;
    let work_queue = world
        .stack
        .resources
        .arn("WorkQueue")
        .unwrap_or_default()
        .to_owned();
    let batch = |n: u64, ids: &[String]| {
        sqs_event(
            &format!("m{n}"),
            &json!({ "merchant_id": A, "run_id": run_id, "batch": n, "profile_ids": ids }),
            &work_queue,
        )
    };
    // The same batch delivered twice, as after a worker crash: written and counted once.
    let first = world
        .stack
        .invoke("PersonalizeWorkerFunction", batch(1, &ids[..4]))
        .await
        .unwrap();
    assert_eq!(first["batchItemFailures"], json!([]), "{first}");
    // The batch ended with its write-back job submitted; the follow-up it queued counts it
    // once the job is done.
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(
        run["counts"]["written"], 0,
        "not counted before its job is done: {run}"
    );
    let follow_up = next_work_message(&world).await;
    assert_eq!(follow_up["batch"], 1, "{follow_up}");
    assert_eq!(follow_up["write_back_check"]["checks"], 0, "{follow_up}");
    let checked = deliver_work(&world, "WorkQueue", "f1", &follow_up).await;
    assert_eq!(checked["batchItemFailures"], json!([]), "{checked}");
    let again = world
        .stack
        .invoke("PersonalizeWorkerFunction", batch(1, &ids[..4]))
        .await
        .unwrap();
    assert_eq!(again["batchItemFailures"], json!([]));
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    let c = &run["counts"];
    assert_eq!(
        c["written"].as_u64().unwrap() + c["holdout"].as_u64().unwrap(),
        4,
        "counted once: {run}"
    );

    // A batch that exhausted its receives arrives from the DLQ: its profiles fail with a reason.
    let mut dead = batch(2, &ids[4..8]);
    dead["Records"][0]["eventSourceARN"] = json!(world
        .stack
        .resources
        .arn("WorkDeadLetterQueue")
        .unwrap_or_default());
    world
        .stack
        .invoke("PersonalizeWorkerFunction", dead)
        .await
        .unwrap();
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(run["counts"]["failed"]["dead_letter"], 4, "{run}");
}

#[tokio::test]
async fn a_worker_that_crashed_after_submitting_its_write_finishes_that_write_instead_of_writing_again(
) {
    let world = World::start_with(|o| o.run_queues = false).await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 5, "review": true }))
        .await;
    let run_id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let (client, key) = klaviyo(&world);
    let ids = first_page(&client, &key, &vip).await;
    let ids: Vec<String> = ids.into_iter().take(5).collect();

    // The state a worker leaves when it dies right after submitting its write-back: the batch
    // claimed (lease already expired), the import job submitted and recorded with its tally.
    let config = world.stack.config("PersonalizeWorkerFunction");
    let runs = shared::aws::runs::RunStore::from_sdk(&world.stack.aws, &config.app_table);
    assert_eq!(
        runs.claim_batch(&run_id, 1, -1).await.unwrap(),
        shared::aws::runs::BatchClaim::Fresh
    );
    let props: Vec<(String, serde_json::Map<String, Value>)> = ids
        .iter()
        .map(|id| (id.clone(), json!({ "sp_campaign_run_id": run_id, "sp_campaign_outcome": "personalized", "sp_campaign_body": "written before the crash" }).as_object().unwrap().clone()))
        .collect();
    let mut pending = shared::aws::runs::BatchTally::default();
    pending.counts.written = 5;
    runs.record_write_intent(&run_id, 1, "WWWWW", &pending, shared::domain::now_unix())
        .await
        .unwrap();
    let job_id = client.start_bulk_import(&key, &props).await.unwrap();
    runs.record_write_job(&run_id, 1, &job_id).await.unwrap();
    let before = world.sandbox_stats().await;

    let mut event = sqs_event(
        "redelivered",
        &json!({ "merchant_id": A, "run_id": run_id, "batch": 1, "profile_ids": ids }),
        world.stack.resources.arn("WorkQueue").unwrap_or_default(),
    );
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("2");
    let out = world
        .stack
        .invoke("PersonalizeWorkerFunction", event)
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    // The redelivery hands the recorded job to a follow-up, which counts it.
    let follow_up = next_work_message(&world).await;
    assert_eq!(follow_up["write_back_check"]["checks"], 0, "{follow_up}");
    let checked = deliver_work(&world, "WorkQueue", "f1", &follow_up).await;
    assert_eq!(checked["batchItemFailures"], json!([]), "{checked}");

    let after = world.sandbox_stats().await;
    assert_eq!(writes(&before), writes(&after), "no second write-back");
    assert_eq!(
        before["bedrock"]["requests"], after["bedrock"]["requests"],
        "no second generation"
    );
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(
        run["counts"]["written"], 5,
        "counted once, from the recorded tally: {run}"
    );
    for p in client.get_profiles(&key, &ids).await.unwrap() {
        assert_eq!(
            p["attributes"]["properties"]["sp_campaign_body"],
            "written before the crash"
        );
    }
}

#[tokio::test]
async fn a_429_storm_slows_a_run_down_but_loses_no_profile() {
    let world = World::start_with(|o| o.sandbox.klaviyo_limits = sandbox::RateLimits::Real).await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 300 }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let run_id = created.body["run"]["run_id"].as_str().unwrap().to_owned();

    // Another app on the same Klaviyo account floods the events endpoint and the import jobs'
    // tier (more than its 150 a minute, however slow this machine is) while the run works: the
    // account's shared budget is spent and the run meets 429s with Retry-After.
    let base = world.stack.sandbox.klaviyo_base_url();
    let key = world.stack.sandbox.full_access_klaviyo_key();
    let paths = (0..40)
        .map(|_| "/api/events?page%5Bsize%5D=1")
        .chain((0..20).map(|_| "/api/profile-bulk-import-jobs"));
    let storm = futures::future::join_all(paths.map(|path| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let http = reqwest::Client::new();
            for _ in 0..30 {
                let _ = http
                    .get(format!("{base}{path}"))
                    .header("Authorization", format!("Klaviyo-API-Key {key}"))
                    .header("revision", "2026-07-15")
                    .send()
                    .await;
            }
        }
    }));
    storm.await;
    world.settle().await;

    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    let stats = world.sandbox_stats().await;
    assert!(
        stats["klaviyo"]["throttled_total"].as_u64().unwrap() > 0,
        "the storm produced 429s: {stats}"
    );
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["counts"]["total"], 300);
    assert_adds_up(&run);
    // Throttled reads were retried in place: nobody failed, everyone not held out was written.
    assert_eq!(run["counts"]["failed"], json!({}), "{run}");
    assert_eq!(run["counts"]["skipped"], json!({}), "{run}");
    assert_eq!(
        run["counts"]["written"].as_u64().unwrap() + run["counts"]["holdout"].as_u64().unwrap(),
        300,
        "{run}"
    );
}

/// Klaviyo answers lists and segments ten a page: a merchant paging through audiences (or a
/// console refreshing) reads them once a minute, not on every call.
#[tokio::test]
async fn audiences_are_read_from_klaviyo_once_then_reused_briefly() {
    let world = World::start().await;
    let merchant = connected(&world).await;
    let audience_reads = |stats: &Value| -> u64 {
        stats["klaviyo"]["requests"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                (k.contains("/api/lists") || k.contains("/api/segments"))
                    && !k.contains("relationships")
            })
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let before = audience_reads(&world.sandbox_stats().await);
    let first = merchant.get("/audiences").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let after_first = audience_reads(&world.sandbox_stats().await);
    assert!(after_first > before, "the first call reads Klaviyo");
    let second = merchant.get("/audiences").await;
    assert_eq!(second.body, first.body, "the same audiences");
    assert_eq!(
        audience_reads(&world.sandbox_stats().await),
        after_first,
        "the second call within a minute reads nothing"
    );
}

/// A model slower than the samples deadline costs the samples call a retryable 503, never the
/// run: `POST /runs` answers at once and the run can still be approved.
#[tokio::test]
async fn a_slow_model_delays_the_samples_but_never_the_run() {
    let world = World::start_with(|o| {
        o.sandbox.bedrock_latency_ms = 8000;
        o.env_overrides
            .insert("SAMPLES_DEADLINE_MS".into(), "1000".into());
    })
    .await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let started = std::time::Instant::now();
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 5, "review": true }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(7000),
        "POST /runs does not wait for the model"
    );
    let id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let samples = merchant.get(&format!("/runs/{id}/samples")).await;
    assert_eq!(
        samples.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        samples.body
    );
    assert!(samples.problem_type().ends_with("/samples-not-ready"));
    assert_eq!(
        merchant.get(&format!("/runs/{id}")).await.body["state"],
        "awaiting_approval",
        "the run is intact"
    );
    let approved = merchant
        .post(&format!("/runs/{id}/approve"), json!({}))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
}

/// A model slower than API Gateway's 30 s costs a preview a retryable 503 problem before the
/// gateway would cut the request off with a bare 503 of its own.
#[tokio::test]
async fn a_preview_that_would_outlast_the_gateway_answers_503_in_time() {
    let world = World::start_with(|o| o.sandbox.bedrock_latency_ms = 40_000).await;
    let merchant = connected(&world).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let asked = first_members(&world, &vip, 1).await;
    let started = std::time::Instant::now();
    let resp = merchant
        .post("/preview", json!({ "brief": BRIEF, "profiles": asked }))
        .await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        resp.body
    );
    assert!(resp.problem_type().ends_with("/vendor-throttled"));
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(24) && took < std::time::Duration::from_secs(29),
        "answered at the interactive deadline, inside the gateway's 30 s: {took:?}"
    );
}
