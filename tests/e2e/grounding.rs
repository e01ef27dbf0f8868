//! The grounding gate holds on copy a capable model writes, in every language we write: the
//! labelled corpus of `tests/grounding/` (written blind to the rules: at least 300 cases in 10
//! languages, every defect kind and every false-positive trap, about half clean) goes through
//! the real preview API, each case's copy being the sandbox model's scripted answer.

use e2e::World;
use local_runner::grounding_corpus::{stack_options, Runner};

/// Defects that must never get through: prices and personal data.
const ALWAYS_CAUGHT: &[&str] = &[
    "wrong_price",
    "personal_data",
    "surname",
    "other_customer_name",
    "name_when_unknown",
];

#[tokio::test]
async fn the_labelled_corpus_through_the_preview_meets_the_targets() {
    let world = World::start_with(stack_options).await;
    let confusion = Runner::new(&world.stack).run().await;
    let defects = confusion.results.iter().filter(|r| r.defect).count();
    let clean = confusion.results.len() - defects;
    let languages: std::collections::BTreeSet<&str> = confusion
        .results
        .iter()
        .map(|r| r.language.as_str())
        .collect();
    assert!(confusion.results.len() >= 300, "at least 300 cases");
    assert!(
        languages.len() >= 10,
        "at least 10 languages: {languages:?}"
    );
    for r in confusion.wrong() {
        println!(
            "{} [{} {}] passed={} {:?}",
            r.id,
            if r.defect { "defect" } else { "clean" },
            r.kind,
            r.passed,
            r.findings
        );
    }
    println!("{}", confusion.table());
    println!(
        "{defects} defects, recall {:.3}; {clean} clean, rejected {:.3}",
        confusion.recall(),
        confusion.false_rejections()
    );
    assert!(
        confusion.recall() >= 0.98,
        "recall {:.3}",
        confusion.recall()
    );
    assert_eq!(
        confusion.recall_of(ALWAYS_CAUGHT),
        1.0,
        "every price and personal-data defect is caught"
    );
    assert!(
        confusion.false_rejections() <= 0.03,
        "clean copy rejected: {:.3}",
        confusion.false_rejections()
    );
}

/// The sandbox's model writing like a model (fluent copy, its defects at the default rates):
/// a whole run writes none of the defects it injected. Every profile of the run is read back
/// from the sandbox's Klaviyo; no written copy holds an injected fragment (other than the
/// profile's own first name, which a name defect may be for another customer).
#[tokio::test]
async fn a_run_in_writer_mode_writes_none_of_the_injected_defects() {
    use e2e::{assert_adds_up, audience, first_members, klaviyo, run_and_wait};
    use serde_json::json;

    let world = World::start().await;
    let merchant = world.merchant("writer-mode").await;
    merchant.connect_demo_accounts().await;
    let writer = world
        .sandbox(
            reqwest::Method::POST,
            "/_sandbox/bedrock/writer",
            json!({ "enabled": true, "reset": true }),
        )
        .await;
    assert!(writer["total_rate"].as_f64().unwrap() > 0.1, "{writer}");
    let vip = audience(&merchant, "VIP + Engaged").await;
    let offer =
        json!({ "kind": "percent_off", "percent": 20, "code": "SNOW20", "ends_on": "2026-12-24" });
    let run = run_and_wait(
        &world,
        &merchant,
        json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": "Warm layers for the first cold weekends",
                "offer": offer, "profile_cap": 100 }),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_adds_up(&run);
    let injected = world
        .sandbox(
            reqwest::Method::GET,
            "/_sandbox/bedrock/injected",
            json!({}),
        )
        .await;
    let injected = injected["injected"].as_array().unwrap().clone();
    assert!(
        injected.len() >= 5,
        "the model made mistakes: {}",
        injected.len()
    );

    let settings = merchant.get("/settings").await.body;
    let (client, key) = klaviyo(&world);
    let ids = first_members(&world, &vip, 100).await;
    let mut profiles = Vec::new();
    for page in ids.chunks(100) {
        profiles.extend(client.get_profiles(&key, page).await.unwrap());
    }
    let fold = |s: &str| s.to_lowercase();
    let mut written = 0;
    for p in &profiles {
        let attrs = &p["attributes"];
        let props = &attrs["properties"];
        if props["sp_campaign_outcome"] != "personalized" {
            continue;
        }
        written += 1;
        let copy: String = ["subject", "preheader", "body"]
            .iter()
            .filter_map(|s| props[format!("sp_campaign_{s}")].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for slot in ["subject", "preheader", "body"] {
            let limit = settings["slots"][slot]["max_chars"]
                .as_u64()
                .unwrap_or(u64::MAX);
            let chars = props[format!("sp_campaign_{slot}")]
                .as_str()
                .map_or(0, |t| t.chars().count() as u64);
            assert!(
                chars <= limit,
                "a written {slot} of {chars} characters (limit {limit})"
            );
        }
        let own_name = attrs["first_name"].as_str().map(fold);
        for i in &injected {
            // An overlong slot is padding, and a cut-off answer ends in ordinary words: neither
            // fragment is an invention (lengths are checked above; a cut answer is split and
            // written again whole).
            if i["kind"] == "too_long" || i["kind"] == "truncated" {
                continue;
            }
            let Some(fragment) = i["fragment"].as_str().filter(|f| f.chars().count() >= 3) else {
                continue;
            };
            if own_name.as_deref() == Some(fold(fragment).as_str()) {
                continue;
            }
            assert!(
                !fold(&copy).contains(&fold(fragment)),
                "an injected {} ({fragment:?}) was written: {copy}",
                i["kind"]
            );
        }
    }
    let counts = &run["counts"];
    println!(
        "writer mode: {} injected, {written} written; counts {counts}",
        injected.len()
    );
    assert_eq!(written, counts["written"].as_u64().unwrap() as usize);
    assert!(written > 0, "clean copy is written");
}

/// With a guardrail configured, copy that passed our gate goes through `ApplyGuardrail`: an
/// insult the gate has no rule for is stopped (the customer skipped with the reason), and the
/// run shows the guardrail's text units in its cost.
#[tokio::test]
async fn a_configured_guardrail_moderates_copy_and_its_units_are_costed() {
    use e2e::{audience, first_members, run_and_wait};
    use reqwest::StatusCode;
    use serde_json::json;

    let world = World::start_with(|o| {
        o.parameters
            .insert("BedrockGuardrailId".into(), "grsandbox1".into());
        o.parameters
            .insert("BedrockGuardrailVersion".into(), "1".into());
    })
    .await;
    world
        .sandbox(
            reqwest::Method::POST,
            "/_sandbox/bedrock/guardrails",
            json!({ "id": "grsandbox1", "version": "1", "tier": "STANDARD", "content_filters": true,
                    "grounding_threshold": 0.1 }),
        )
        .await;
    let merchant = world.merchant("guarded").await;
    merchant.connect_demo_accounts().await;
    let vip = audience(&merchant, "VIP + Engaged").await;

    // A run: every written profile's copy was moderated, and paid for.
    let run = run_and_wait(
        &world,
        &merchant,
        json!({ "audience": { "kind": "segment", "id": vip["id"] }, "brief": "Warm layers for the first cold weekends", "profile_cap": 16 }),
    )
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    let written = run["counts"]["written"].as_u64().unwrap();
    assert!(written > 0, "{run}");
    let units = run["tokens"]["guardrail_content_units"].as_u64().unwrap();
    println!(
        "guardrail: {written} written, tokens {}, cost {}",
        run["tokens"], run["estimated_cost_usd"]
    );
    assert!(
        units >= written,
        "one content unit per written copy at least: {run}"
    );
    assert!(
        run["tokens"]["guardrail_grounding_units"].as_u64().unwrap() >= written,
        "contextual grounding is billed too: {run}"
    );

    // A copy our rules pass but the guardrail's content filter does not.
    let ids = first_members(&world, &vip, 1).await;
    let preview = merchant
        .post(
            "/preview",
            json!({ "brief": "Warm layers", "profiles": ids }),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{:?}", preview.body);
    let p = &preview.body["profiles"][0];
    assert_eq!(p["outcome"], "written", "{p}");
    let first = p["first_name"]
        .as_str()
        .map(|n| format!("Hi {n}, "))
        .unwrap_or_default();
    let insult = json!({ "copies": [{
        "profile_ref": "C1",
        "subject": "A warm pick for the weekend ahead",
        "preheader": "Only a stupid idiot would skip this one, honestly",
        "body": format!("{first}only a stupid idiot would head out without a warm layer this weekend. Have a look at what we picked."),
        "products": ["P1"],
    }]});
    world
        .sandbox(
            reqwest::Method::POST,
            "/_sandbox/bedrock/script",
            json!({ "outputs": [{ "input": insult }] }),
        )
        .await;
    let preview = merchant
        .post(
            "/preview",
            json!({ "brief": "Warm layers", "profiles": ids }),
        )
        .await;
    let p = &preview.body["profiles"][0];
    assert_eq!(p["outcome"], "skipped", "{p}");
    assert_eq!(p["reason"], "guardrail_intervened", "{p}");
}
