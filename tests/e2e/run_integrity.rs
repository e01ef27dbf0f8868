//! Runs you can trust: every run ends (the watchdog re-drives a lost fan-out, fails one that
//! never recovers, finishes a run whose batches were lost), and a crash of the fan-out or the
//! worker after any of their vendor or AWS calls never loses, double-writes or miscounts a
//! profile.

use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::faults;
use std::collections::HashMap;
use std::time::Duration;

const A: &str = "3b1f5c2e-8d4a-4f6b-9e7c-2a1d0c9b8e7f";
const BRIEF: &str = "Warm layers for the first cold weekends";

/// A stack whose watchdog steps in after a second of no progress.
async fn impatient_world() -> World {
    World::start_with(|o| {
        o.run_queues = false;
        o.env_overrides
            .insert("FANOUT_STALL_SECS".into(), "1".into());
        o.env_overrides.insert("RUN_STALL_SECS".into(), "1".into());
    })
    .await
}

/// Let the run's progress clock fall behind the one-second stall limits.
async fn stall() {
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

async fn watchdog(world: &World) -> Value {
    world
        .stack
        .fire_schedule("PersonalizeFanoutFunction")
        .await
        .expect("the watchdog runs")
}

async fn create_run(merchant: &Merchant<'_>, vip: &Value, cap: u64) -> String {
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": cap }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["run"]["run_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_watchdog_redrives_a_lost_fan_out_and_finishes_a_run_whose_batches_were_lost() {
    let world = impatient_world().await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let run_id = create_run(&merchant, &vip, 5).await;

    // The fan-out's message is lost: without the watchdog the run would stay `fanning`.
    // (That it leaves a run alone before the limit is `Run::watchdog_verdict`'s unit test: here
    // a slow machine can take the limit's two seconds to get this far.)
    assert_eq!(take_messages(&world, "FanoutQueue", 5, 10).await.len(), 1);
    stall().await;
    let report = watchdog(&world).await;
    assert_eq!(report["redriven"], 1, "{report}");
    let redriven = take_messages(&world, "FanoutQueue", 5, 10).await;
    assert_eq!(redriven.len(), 1, "one fresh fan-out message: {redriven:?}");
    let fanout_arn = world
        .stack
        .resources
        .arn("FanoutQueue")
        .unwrap_or_default()
        .to_owned();
    let out = world
        .stack
        .invoke(
            "PersonalizeFanoutFunction",
            sqs_event("f1", &redriven[0], &fanout_arn),
        )
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(
        run["state"], "running",
        "the re-driven fan-out enqueued the audience: {run}"
    );
    assert_eq!(run["counts"]["total"], 5);

    // Its batch is lost too (as if it had aged out of every queue): the run is finished with
    // the outstanding profiles counted as failed, and says why.
    assert_eq!(
        take_messages(&world, "ExpressWorkQueue", 5, 10).await.len(),
        1
    );
    stall().await;
    let report = watchdog(&world).await;
    assert_eq!(report["finished"], 1, "{report}");
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["state_reason"], "batches_stalled", "{run}");
    assert_eq!(run["counts"]["failed"]["stalled"], 5, "{run}");
    assert_adds_up(&run);

    // An ended run is no longer watched.
    let report = watchdog(&world).await;
    let again = watchdog(&world).await;
    assert_eq!(
        again["looked"], 0,
        "forgotten after it ended: {report} then {again}"
    );
}

#[tokio::test]
async fn the_watchdog_fails_a_run_whose_fan_out_never_recovers() {
    let world = impatient_world().await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let run_id = create_run(&merchant, &vip, 5).await;
    // Every fan-out message is lost, the first and each re-drive's.
    for redrive in 1..=3 {
        take_messages(&world, "FanoutQueue", 5, 10).await;
        stall().await;
        let report = watchdog(&world).await;
        assert_eq!(report["redriven"], 1, "re-drive {redrive}: {report}");
    }
    take_messages(&world, "FanoutQueue", 5, 10).await;
    stall().await;
    let report = watchdog(&world).await;
    assert_eq!(report["failed"], 1, "{report}");
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["state_reason"], "fanout_stalled", "{run}");
    assert_adds_up(&run);
}

/// Import jobs the sandbox's Klaviyo applied to each profile, by id.
async fn profile_writes(world: &World) -> HashMap<String, u64> {
    let v = world
        .sandbox(Method::GET, "/_sandbox/klaviyo/profile-writes", json!({}))
        .await;
    serde_json::from_value(v).unwrap()
}

/// The run ended completed, its counts add up and match what Klaviyo holds, and every profile
/// of it was written exactly once (copy, or the set cleared with the outcome) but the
/// `vanished` ones Klaviyo refused, which were written never and counted failed.
async fn assert_exact(
    world: &World,
    run: &Value,
    ids: &[String],
    before: &HashMap<String, u64>,
    vanished: u64,
    case: &str,
) {
    assert_eq!(run["state"], "completed", "{case}: {run}");
    assert_eq!(run["counts"]["total"], ids.len() as u64, "{case}: {run}");
    assert_adds_up(run);
    let after = profile_writes(world).await;
    let mut unwritten = 0;
    for id in ids {
        let n = after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
        assert!(n <= 1, "{case}: profile {id} written {n} times: {run}");
        unwritten += 1 - n;
    }
    assert_eq!(unwritten, vanished, "{case}: profiles never written: {run}");
    assert_eq!(
        run["counts"]["failed"]["klaviyo"].as_u64().unwrap_or(0),
        vanished,
        "{case}: {run}"
    );
    let (client, key) = klaviyo(world);
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    for p in client.get_profiles(&key, ids).await.unwrap() {
        let props = &p["attributes"]["properties"];
        let outcome = if props["sp_campaign_run_id"] == run["run_id"] {
            props["sp_campaign_outcome"].as_str().unwrap_or("none")
        } else {
            // Refused by Klaviyo: it still shows an older run, and this run counts it failed.
            "failed"
        };
        *outcomes.entry(outcome.to_owned()).or_default() += 1;
    }
    let c = &run["counts"];
    let sum = |m: &Value| {
        m.as_object()
            .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>())
    };
    let counted: HashMap<String, u64> = [
        ("personalized", c["written"].as_u64().unwrap()),
        ("holdout", c["holdout"].as_u64().unwrap()),
        ("skipped", sum(&c["skipped"])),
        ("failed", sum(&c["failed"])),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(
        outcomes, counted,
        "{case}: Klaviyo holds what the run counted: {run}"
    );
}

/// Crash points every run passes (`shared::faults`); the test fails if one disappears.
const EXPECTED_POINTS: &[&str] = &[
    "fanout.page_read",
    "fanout.page_claimed",
    "fanout.batch_sent",
    "fanout.page_sent",
    "fanout.finished",
    "worker.batch_claimed",
    "worker.profiles_read",
    "worker.generated",
    "worker.write_intent_recorded",
    "worker.import_created",
    "worker.import_recorded",
    "worker.follow_up_sent",
    "worker.job_polled",
    "worker.batch_counted",
];

#[tokio::test]
async fn every_crash_point_of_the_fan_out_and_the_worker_is_survived() {
    let scope = local_runner::random_prefix();
    let world = World::start_with(|o| {
        o.env_overrides.insert("FAULT_SCOPE".into(), scope.clone());
        // A redelivery (1 s locally) finds a dead worker's batch free soon, as the queue's
        // 30-minute visibility does against the 2-minute lease when deployed.
        o.env_overrides
            .insert("BATCH_LEASE_SECS".into(), "2".into());
    })
    .await;
    let merchant = world.merchant(A).await;
    merchant.connect_demo_accounts().await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let ids = first_members(&world, &vip, 12).await;
    let body = json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 12, "holdout_percent": 25 });

    // Without a crash: the points a run passes.
    let before = profile_writes(&world).await;
    let run = run_and_wait(&world, &merchant, body.clone()).await;
    assert_exact(&world, &run, &ids, &before, 0, "no crash").await;
    let points: Vec<String> = faults::hits(&scope).into_keys().collect();
    for expected in EXPECTED_POINTS {
        assert!(
            points.iter().any(|p| p == expected),
            "{expected} was passed: {points:?}"
        );
    }

    // A profile Klaviyo refuses at import (merged away since it was read): the import-error
    // path, whose points a clean run never passes.
    let vanish = || {
        world.sandbox(
            Method::POST,
            "/_sandbox/klaviyo/faults",
            json!({ "vanish_import_profiles": 1 }),
        )
    };
    vanish().await;
    let before = profile_writes(&world).await;
    let run = run_and_wait(&world, &merchant, body.clone()).await;
    assert_exact(&world, &run, &ids, &before, 1, "a vanished profile").await;
    let on_import_errors: Vec<String> = faults::hits(&scope)
        .into_keys()
        .filter(|p| !points.contains(p))
        .collect();
    assert!(
        on_import_errors
            .iter()
            .any(|p| p == "worker.import_errors_read"),
        "{on_import_errors:?}"
    );

    let cases = points
        .iter()
        .map(|p| (p, 0))
        .chain(on_import_errors.iter().map(|p| (p, 1)));
    for (point, vanished) in cases {
        let crashed = |p: &str| faults::crashed(&scope).get(p).copied().unwrap_or(0);
        let crashes_before = crashed(point);
        if vanished > 0 {
            vanish().await;
        }
        let before = profile_writes(&world).await;
        faults::arm(&scope, point, 0);
        let run = run_and_wait(&world, &merchant, body.clone()).await;
        assert_eq!(
            crashed(point),
            crashes_before + 1,
            "the crash at {point} happened"
        );
        assert!(!faults::pending(&scope));
        let case = format!("crash at {point}");
        assert_exact(&world, &run, &ids, &before, vanished, &case).await;
    }
    let covered = points.len() + on_import_errors.len();
    println!(
        "fault injection: a run survived a crash at each of {covered} points: {}, {}",
        points.join(", "),
        on_import_errors.join(", ")
    );
}

#[tokio::test]
async fn a_batch_out_of_time_is_handed_back_before_the_lambda_deadline() {
    let world = World::start_with(|o| {
        o.run_queues = false;
        // Every model call takes 6 s; the worker's budget is 1 s.
        o.sandbox.bedrock_latency_ms = 6000;
        o.env_overrides
            .insert("WORKER_TIME_BUDGET_MS".into(), "1000".into());
    })
    .await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 4 }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let run_id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let ids = first_members(&world, &vip, 4).await;
    let batch = json!({ "merchant_id": A, "run_id": run_id, "batch": 1, "profile_ids": ids });

    let started = std::time::Instant::now();
    let out = deliver_work(&world, "WorkQueue", "w1", &batch).await;
    let took = started.elapsed();
    assert_eq!(
        out["batchItemFailures"],
        json!([]),
        "handed back, not failed: {out}"
    );
    assert!(
        took < Duration::from_millis(5000),
        "stopped at its budget, not the model's pace: {took:?}"
    );
    let handed_back = next_work_message(&world).await;
    assert_eq!(handed_back["batch"], 1, "{handed_back}");
    assert_eq!(
        handed_back["profile_ids"], batch["profile_ids"],
        "{handed_back}"
    );
    assert!(handed_back["write_back_check"].is_null(), "{handed_back}");
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    assert_eq!(run["counts"]["written"], 0, "{run}");
    // The lease was let go: the next delivery takes the batch at once.
    let config = world.stack.config("PersonalizeWorkerFunction");
    let runs = shared::aws::runs::RunStore::from_sdk(&world.stack.aws, &config.app_table);
    assert_eq!(
        runs.claim_batch(&run_id, 1, 60).await.unwrap(),
        shared::aws::runs::BatchClaim::Fresh
    );
}

#[tokio::test]
async fn failed_profiles_of_a_finished_run_can_be_retried_as_that_run() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    merchant.connect_demo_accounts().await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let body = json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 12, "holdout_percent": 25 });
    let clean = run_and_wait(&world, &merchant, body.clone()).await;
    let clean_id = clean["run_id"].as_str().unwrap().to_owned();
    let nothing = merchant
        .post(&format!("/runs/{clean_id}/retry"), json!({}))
        .await;
    assert_eq!(
        nothing.status,
        StatusCode::CONFLICT,
        "nothing failed: {:?}",
        nothing.body
    );
    assert!(nothing.problem_type().ends_with("/run-state-conflict"));

    // The model is down for the whole run: every profile not held out fails.
    bedrock_fault(&world, "fail", -1).await;
    let failed = run_and_wait(&world, &merchant, body).await;
    bedrock_fault(&world, "none", 0).await;
    let failed_id = failed["run_id"].as_str().unwrap().to_owned();
    let failures = failed["counts"]["failed"]["bedrock"].as_u64().unwrap();
    assert!(failures > 0, "{failed}");
    assert_eq!(
        failures + failed["counts"]["holdout"].as_u64().unwrap(),
        12,
        "{failed}"
    );

    let retry = merchant
        .post(&format!("/runs/{failed_id}/retry"), json!({}))
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert_eq!(retry.body["run"]["retry_of"], failed_id.as_str());
    let retry_id = retry.body["run"]["run_id"].as_str().unwrap().to_owned();
    world.settle().await;
    let retried = merchant.get(&format!("/runs/{retry_id}")).await.body;
    assert_eq!(retried["state"], "completed", "{retried}");
    assert_eq!(
        retried["counts"]["total"], failures,
        "only the failed profiles: {retried}"
    );
    assert_eq!(retried["counts"]["written"], failures, "{retried}");
    assert_eq!(
        retried["template_snippet"], failed["template_snippet"],
        "{retried}"
    );

    // In Klaviyo every profile of the failed run now shows its copy (or its holdout), under the
    // failed run's id, so that run's template guard shows the retried copy.
    let ids = first_members(&world, &vip, 12).await;
    let (client, key) = klaviyo(&world);
    let mut personalized = 0;
    for p in client.get_profiles(&key, &ids).await.unwrap() {
        let props = &p["attributes"]["properties"];
        assert_eq!(props["sp_campaign_run_id"], failed_id.as_str(), "{props}");
        match props["sp_campaign_outcome"].as_str() {
            Some("personalized") => personalized += 1,
            Some("holdout") => {}
            other => panic!("{other:?}: {props}"),
        }
    }
    assert_eq!(personalized, failures);
    let again = merchant
        .post(&format!("/runs/{retry_id}/retry"), json!({}))
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "the retry left nothing failed"
    );
}

#[tokio::test]
async fn a_lost_import_answer_is_settled_by_looking_never_by_writing_again() {
    let world = World::start().await;
    let merchant = world.merchant(A).await;
    merchant.connect_demo_accounts().await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let ids = first_members(&world, &vip, 12).await;
    // Klaviyo accepts the next import job but its 202 is lost on the way (a 502 arrives).
    world
        .sandbox(
            Method::POST,
            "/_sandbox/klaviyo/faults",
            json!({ "lose_import_responses": 1 }),
        )
        .await;
    let before = profile_writes(&world).await;
    let run = run_and_wait(
        &world,
        &merchant,
        json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 12, "holdout_percent": 25 }),
    )
    .await;
    assert_exact(&world, &run, &ids, &before, 0, "a lost 202").await;
    assert_eq!(
        run["requests"]["klaviyo_bulk_import"], 1,
        "one job, not a second one for the lost answer: {run}"
    );
}

#[tokio::test]
async fn a_page_with_a_repeated_or_merged_id_is_accounted_for_with_a_reason() {
    let world = World::start_with(|o| o.run_queues = false).await;
    let merchant = connected_without_queues(&world, A).await;
    let vip = audience(&merchant, "VIP + Engaged").await;
    let created = merchant
        .post("/runs", json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": BRIEF, "profile_cap": 4, "review": true }))
        .await;
    let run_id = created.body["run"]["run_id"].as_str().unwrap().to_owned();
    let (client, key) = klaviyo(&world);
    let ids = first_page(&client, &key, &vip).await;
    // A member listed twice, and one merged away (Klaviyo answers it under another id).
    let page = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[0].clone(),
        "01MERGEDAWAY0000000000000Z".to_owned(),
    ];
    let batch = json!({ "merchant_id": A, "run_id": run_id, "batch": 1, "profile_ids": page });
    let out = deliver_work(&world, "WorkQueue", "w1", &batch).await;
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let follow_up = next_work_message(&world).await;
    deliver_work(&world, "WorkQueue", "f1", &follow_up).await;
    let run = merchant.get(&format!("/runs/{run_id}")).await.body;
    let c = &run["counts"];
    assert_eq!(c["skipped"]["duplicate_id"], 1, "{run}");
    assert_eq!(c["skipped"]["profile_not_found"], 1, "{run}");
    assert_eq!(
        c["written"].as_u64().unwrap() + c["holdout"].as_u64().unwrap(),
        2,
        "{run}"
    );
    let writes = profile_writes(&world).await;
    assert_eq!(
        writes.get(&ids[0]).copied(),
        Some(1),
        "the repeated member is written once"
    );
}
