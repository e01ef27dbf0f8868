//! The sandbox's Bedrock writer mode and scripted outputs over raw HTTP: copy in ten
//! languages within the slot limits, offers rendered per language, every injected mistake
//! labelled with the exact text it put in, scripted answers in order.

mod common;

use common::*;
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const SIGN_OFF: &str = "The Northwind team";
const LANGS: [&str; 10] = ["en", "de", "fr", "es", "it", "nl", "pt", "sv", "pl", "ja"];

fn fast() -> SandboxConfig {
    SandboxConfig {
        vendor_time_scale: 0.01,
        ..small_config()
    }
}

/// The shape our client sends (crates/shared/src/personalize/prompt.rs), written out by hand:
/// the sandbox must not depend on it.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"copies": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {
                "profile_ref": {"type": "string"},
                "subject": {"type": "string", "minLength": 1, "maxLength": 60},
                "preheader": {"type": "string", "minLength": 1, "maxLength": 100},
                "body": {"type": "string", "minLength": 1, "maxLength": 500},
                "products": {"type": "array", "minItems": 1, "maxItems": 3,
                             "items": {"type": "string", "pattern": "^P[0-9]+$"}}
            },
            "required": ["profile_ref", "subject", "preheader", "body", "products"],
            "additionalProperties": false}}},
        "required": ["copies"],
        "additionalProperties": false
    })
}

fn system(lang: &str) -> String {
    format!(
        "You write short, personal marketing email copy for an online store.\n\n\
         Brand voice: warm, outdoorsy.\n\
         Language: write every slot in the language with BCP-47 tag \"{lang}\".\n\n\
         Slots to write for each customer:\n\
         - subject: the email subject line, at most 60 characters.\n\
         - preheader: the preview text shown after the subject, at most 100 characters.\n\
         - body: one short paragraph, at most 500 characters including the sign-off, ending with the sign-off \"{SIGN_OFF}\" on its own line.\n\
         - products: 1 to 3 of that customer's product refs, best match first.\n\n\
         Rules:\n- Never invent discounts.\n- Call the emit_copy tool exactly once."
    )
}

fn brief(offer: &Value) -> String {
    format!(
        "Campaign brief from the merchant:\nSnow is coming: our winter range is in.\n\
         Offer (the only offer the copy may state):\n{offer}"
    )
}

const PRODUCTS: [(&str, &str, &str); 5] = [
    (
        "Storm Shell Jacket",
        "$199.00",
        "Waterproof 3-layer shell with taped seams. Packs small.",
    ),
    (
        "Merino Trail Socks",
        "$19.00",
        "Soft merino wool that stays warm when wet.",
    ),
    (
        "Summit Daypack 22L",
        "$89.50",
        "Light daypack with a padded back panel and hip belt.",
    ),
    (
        "Enamel Camp Mug",
        "$14.00",
        "Tough enamel mug for coffee at the campsite.",
    ),
    (
        "Alpine Down Vest",
        "$149.00",
        "Packable down vest for cold mornings on the trail.",
    ),
];
const NAMES: [Option<&str>; 8] = [
    Some("Ana"),
    None,
    Some("Henrik"),
    Some("Chiara"),
    None,
    Some("Tomasz"),
    Some("Yuki"),
    Some("Bruno"),
];

fn customers(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let products: Vec<Value> = (0..3)
                .map(|j| {
                    let (t, p, d) = PRODUCTS[(i + j) % PRODUCTS.len()];
                    json!({"ref": format!("P{}", j + 1), "title": t, "price": p, "description": d})
                })
                .collect();
            json!({
                "profile_ref": format!("C{}", i + 1),
                "first_name": NAMES[i % NAMES.len()],
                "bought_before": if i % 3 == 2 { "no previous orders".to_owned() } else { "Trail Runner 2 (Shoes); Wool Beanie".to_owned() },
                "products": products,
            })
        })
        .collect()
}

fn user(customers: &[Value]) -> String {
    let lines: Vec<String> = customers.iter().map(Value::to_string).collect();
    let refs: Vec<&str> = customers
        .iter()
        .map(|c| c["profile_ref"].as_str().unwrap())
        .collect();
    format!(
        "Write copy for these {} customer(s). A null first_name means: do not address them by name.\n\
         ```json\n{{\"profiles\": [\n{}\n]}}\n```\nCall emit_copy once with an entry for each of: {}.",
        customers.len(),
        lines.join(",\n"),
        refs.join(", ")
    )
}

fn converse_body(lang: &str, offer: &Value, customers: &[Value], max_tokens: u64) -> Value {
    json!({
        "system": [{"text": system(lang)}, {"text": brief(offer)}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": user(customers)}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.7},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "emit_copy", "description": "Return the copy.",
                                    "inputSchema": {"json": schema()}}}],
            "toolChoice": {"tool": {"name": "emit_copy"}}
        }
    })
}

async fn converse(sb: &Sandbox, body: &Value) -> Value {
    let resp = client()
        .post(format!(
            "{}/model/{}/converse",
            sb.bedrock_endpoint(),
            HAIKU.replace(':', "%3A")
        ))
        .json(body)
        .send()
        .await
        .expect("converse");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn control(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, format!("{}/_sandbox/bedrock/{path}", sb.base_url));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("control");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn copies(resp: &Value) -> &Vec<Value> {
    resp["output"]["message"]["content"][0]["toolUse"]["input"]["copies"]
        .as_array()
        .expect("copies")
}

fn offer_de() -> Value {
    json!({"kind":"percent_off","percent":20,"scope":"outerwear","ends_on":"2026-12-24","code":"SNOW20","currency":"EUR"})
}

/// The body with the catalog's own (English) text and the sign-off taken out, for detection.
fn prose(body: &str) -> String {
    let mut s = body.replace(SIGN_OFF, " ");
    for (t, _, d) in PRODUCTS {
        s = s.replace(t, " ");
        let clause = d.split('.').next().unwrap();
        s = s.replace(clause, " ");
        let lower: String = clause
            .chars()
            .next()
            .unwrap()
            .to_lowercase()
            .chain(clause.chars().skip(1))
            .collect();
        s = s.replace(&lower, " ");
    }
    for h in ["Trail Runner 2", "Wool Beanie"] {
        s = s.replace(h, " ");
    }
    s
}

fn expected_whatlang(tag: &str) -> whatlang::Lang {
    use whatlang::Lang::*;
    match tag {
        "en" => Eng,
        "de" => Deu,
        "fr" => Fra,
        "es" => Spa,
        "it" => Ita,
        "nl" => Nld,
        "pt" => Por,
        "sv" => Swe,
        "pl" => Pol,
        _ => Jpn,
    }
}

fn assert_within_limits(entry: &Value) {
    for (slot, max) in [("subject", 60), ("preheader", 100), ("body", 500)] {
        let text = entry[slot].as_str().unwrap_or("");
        assert!(!text.is_empty(), "{slot} empty: {entry}");
        assert!(text.chars().count() <= max, "{slot} over {max}: {text}");
    }
}

#[tokio::test]
async fn writer_writes_every_language_within_the_slot_limits() {
    let sb = start(fast()).await;
    let (status, state) = control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"enabled": true, "seed": 7, "defect_rates": {}})),
    )
    .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["total_rate"], 0.0);
    // Which of the languages we write is it (Dutch alone can pass for Afrikaans).
    let detector =
        whatlang::Detector::with_allowlist(LANGS.iter().map(|l| expected_whatlang(l)).collect());
    let people = customers(6);
    for lang in LANGS {
        let resp = converse(&sb, &converse_body(lang, &offer_de(), &people, 4000)).await;
        assert_eq!(resp["stopReason"], "tool_use");
        let list = copies(&resp);
        assert_eq!(list.len(), 6);
        let mut openings = std::collections::BTreeSet::new();
        for (i, e) in list.iter().enumerate() {
            assert_eq!(e["profile_ref"], format!("C{}", i + 1));
            assert_within_limits(e);
            let body = e["body"].as_str().unwrap();
            assert!(body.ends_with(&format!("\n{SIGN_OFF}")), "{body}");
            // Named by first name only when known; products by their exact titles.
            match NAMES[i] {
                Some(n) => assert!(body.contains(n), "{lang}: {body}"),
                None => {
                    for other in NAMES.iter().flatten() {
                        assert!(!body.contains(other), "{lang}: {body}");
                    }
                }
            }
            let products = e["products"].as_array().unwrap();
            assert!((1..=3).contains(&products.len()));
            for r in products {
                let j: usize = r.as_str().unwrap()[1..].parse().unwrap();
                let title = PRODUCTS[(i + j - 1) % PRODUCTS.len()].0;
                assert!(body.contains(title), "{lang}: {title} not in {body}");
            }
            let detected = detector.detect_lang(&prose(body));
            assert_eq!(detected, Some(expected_whatlang(lang)), "{lang}: {body}");
            openings.insert(body.split(['.', '!', '。']).next().unwrap().to_owned());
        }
        assert!(openings.len() >= 3, "{lang}: little variety: {openings:?}");
        if lang == "de" {
            for e in list {
                let body = e["body"].as_str().unwrap();
                for part in [
                    "20 % Rabatt auf Oberbekleidung",
                    "bis 24.12.2026",
                    "mit dem Code SNOW20",
                ] {
                    assert!(body.contains(part), "{part} not in {body}");
                }
            }
        }
        if lang == "ja" {
            assert!(list.iter().all(|e| e["body"]
                .as_str()
                .unwrap()
                .chars()
                .any(|c| ('\u{3040}'..='\u{309f}').contains(&c))));
        }
    }
    let (_, injected) = control(&sb, reqwest::Method::GET, "injected", None).await;
    assert_eq!(injected["injected"], json!([]), "no mistakes at rate 0");
}

#[tokio::test]
async fn without_an_offer_clean_copy_states_none() {
    let sb = start(fast()).await;
    control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"seed": 3, "defect_rates": {}})),
    )
    .await;
    for lang in ["en", "de", "fr"] {
        let resp = converse(
            &sb,
            &converse_body(lang, &json!({"kind": "none"}), &customers(5), 4000),
        )
        .await;
        for e in copies(&resp) {
            let text = format!("{} {} {}", e["subject"], e["preheader"], e["body"]);
            for word in [
                "%",
                "code",
                "Code",
                "Rabatt",
                "réduction",
                "off ",
                "shipping",
                "Versand",
                "livraison",
            ] {
                assert!(!text.contains(word), "{lang}: {word} in {text}");
            }
        }
    }
}

#[tokio::test]
async fn amounts_are_written_in_the_languages_money_format() {
    let sb = start(fast()).await;
    control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"seed": 5, "defect_rates": {}})),
    )
    .await;
    let offer = json!({"kind": "amount_off", "amount": "10.00", "currency": "EUR", "code": "TEN"});
    for (lang, expected) in [
        ("de", "10,00 € Rabatt"),
        ("fr", "10,00 € de réduction"),
        ("en", "€10.00 off"),
        ("nl", "€ 10,00 korting"),
    ] {
        let resp = converse(&sb, &converse_body(lang, &offer, &customers(2), 4000)).await;
        for e in copies(&resp) {
            assert!(
                e["body"].as_str().unwrap().contains(expected),
                "{lang}: {}",
                e["body"]
            );
        }
    }
    let jpy = json!({"kind": "free_shipping", "min_spend": "5000", "currency": "JPY"});
    let resp = converse(&sb, &converse_body("ja", &jpy, &customers(2), 4000)).await;
    for e in copies(&resp) {
        assert!(
            e["body"]
                .as_str()
                .unwrap()
                .contains("5,000円以上のご注文で送料無料"),
            "{}",
            e["body"]
        );
    }
}

#[tokio::test]
async fn every_injected_mistake_is_labelled_with_the_text_it_put_in() {
    let sb = start(fast()).await;
    let kinds = [
        "invented_offer",
        "rescoped_offer",
        "wrong_price",
        "invented_code",
        "link",
        "other_customer_name",
        "surname",
        "name_when_unknown",
        "wrong_language",
        "too_long",
        "extra_product_ref",
        "duplicate_product_ref",
        "truncated",
    ];
    let rates: serde_json::Map<String, Value> =
        kinds.iter().map(|k| (k.to_string(), json!(0.07))).collect();
    let (status, state) = control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"seed": 11, "defect_rates": rates})),
    )
    .await;
    assert_eq!(status, 200, "{state}");
    let mut seen = std::collections::BTreeSet::new();
    for (round, lang) in ["en", "de", "fr", "ja", "es", "pl", "sv", "it"]
        .iter()
        .enumerate()
    {
        control(&sb, reqwest::Method::DELETE, "injected", None).await;
        let people = customers(8);
        let resp = converse(&sb, &converse_body(lang, &offer_de(), &people, 8000)).await;
        let (_, log) = control(&sb, reqwest::Method::GET, "injected", None).await;
        let log = log["injected"].as_array().unwrap().clone();
        let input = &resp["output"]["message"]["content"][0]["toolUse"]["input"];
        let truncated = log.iter().any(|l| l["kind"] == "truncated");
        assert_eq!(
            resp["stopReason"] == "max_tokens",
            truncated,
            "round {round}: {resp}"
        );
        if truncated {
            assert_eq!(resp["usage"]["outputTokens"], 8000);
        }
        let entries = input["copies"].as_array().cloned().unwrap_or_default();
        for l in &log {
            assert_eq!(
                l["call"],
                (round + 1) as u64,
                "call numbers count Converse calls"
            );
            let kind = l["kind"].as_str().unwrap();
            seen.insert(kind.to_owned());
            let fragment = l["fragment"].as_str().unwrap();
            assert!(!fragment.is_empty(), "{l}");
            let entry = entries
                .iter()
                .find(|e| e["profile_ref"] == l["profile_ref"])
                .unwrap_or_else(|| panic!("no entry for {l} in {input}"));
            let whole = entry.to_string();
            let encoded = serde_json::to_string(fragment).unwrap();
            assert!(
                whole.contains(encoded.trim_matches('"')),
                "{kind}: {fragment:?} not in {whole}"
            );
            let i: usize = l["profile_ref"].as_str().unwrap()[1..]
                .parse::<usize>()
                .unwrap()
                - 1;
            match kind {
                "too_long" => assert!(entry["body"].as_str().unwrap().chars().count() > 500),
                "extra_product_ref" => {
                    assert!(entry["products"]
                        .as_array()
                        .unwrap()
                        .contains(&json!(fragment)));
                    let n: usize = fragment[1..].parse().unwrap();
                    assert!(n > 3, "{fragment} was offered");
                }
                "duplicate_product_ref" => {
                    let refs = entry["products"].as_array().unwrap();
                    assert_eq!(refs.iter().filter(|r| **r == json!(fragment)).count(), 2);
                }
                "name_when_unknown" => assert!(NAMES[i % NAMES.len()].is_none()),
                "other_customer_name" => {
                    assert!(NAMES.iter().flatten().any(|n| *n == fragment));
                    assert_ne!(NAMES[i % NAMES.len()], Some(fragment));
                }
                _ => {}
            }
        }
        // Entries without a label are clean: within every limit, refs offered, no other name.
        for e in &entries {
            let labelled = log.iter().any(|l| l["profile_ref"] == e["profile_ref"]);
            if labelled || e.get("products").is_none() {
                continue;
            }
            assert_within_limits(e);
            let refs = e["products"].as_array().unwrap();
            let distinct: std::collections::BTreeSet<String> =
                refs.iter().map(|r| r.to_string()).collect();
            assert_eq!(distinct.len(), refs.len(), "{e}");
        }
    }
    assert!(seen.len() >= 8, "too few kinds seen: {seen:?}");
}

#[tokio::test]
async fn a_small_max_tokens_cuts_the_tool_call_as_bedrock_does() {
    let sb = start(fast()).await;
    control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"seed": 2, "defect_rates": {}})),
    )
    .await;
    let resp = converse(&sb, &converse_body("de", &offer_de(), &customers(6), 300)).await;
    assert_eq!(resp["stopReason"], "max_tokens");
    assert_eq!(resp["usage"]["outputTokens"], 300);
    let list = copies(&resp);
    assert!(list.len() < 6, "cut short: {}", list.len());
    let (_, log) = control(&sb, reqwest::Method::GET, "injected", None).await;
    assert_eq!(log["injected"][0]["kind"], "truncated");
}

#[tokio::test]
async fn output_tokens_follow_the_text_written() {
    let sb = start(fast()).await;
    control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"seed": 2, "defect_rates": {}})),
    )
    .await;
    let en = converse(&sb, &converse_body("en", &offer_de(), &customers(4), 4000)).await;
    let ja = converse(&sb, &converse_body("ja", &offer_de(), &customers(4), 4000)).await;
    for r in [&en, &ja] {
        let text = r["output"]["message"]["content"][0]["toolUse"]["input"].to_string();
        let out = r["usage"]["outputTokens"].as_u64().unwrap();
        let chars = text.chars().count() as u64;
        assert!(
            out >= chars / 5 && out <= chars,
            "{out} tokens for {chars} chars"
        );
    }
    let per_char = |r: &Value| {
        r["usage"]["outputTokens"].as_f64().unwrap()
            / r["output"]["message"]["content"][0]["toolUse"]["input"]
                .to_string()
                .chars()
                .count() as f64
    };
    assert!(
        per_char(&ja) > per_char(&en) * 1.5,
        "Japanese costs more tokens per character"
    );
}

#[tokio::test]
async fn writer_settings_are_validated_and_readable() {
    let sb = start(fast()).await;
    let (status, off) = control(&sb, reqwest::Method::GET, "writer", None).await;
    assert_eq!((status, off["enabled"].clone()), (200, json!(false)));
    let (status, on) = control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    let total = on["total_rate"].as_f64().unwrap();
    assert!((0.15..=0.25).contains(&total), "default total {total}");
    for bad in [
        json!({"defect_rates": {"typo": 0.1}}),
        json!({"defect_rates": {"link": 2}}),
        json!({"defect_rates": {"link": 0.6, "surname": 0.6}}),
    ] {
        let (status, _) = control(&sb, reqwest::Method::POST, "writer", Some(bad)).await;
        assert_eq!(status, 400);
    }
    let (_, off) = control(
        &sb,
        reqwest::Method::POST,
        "writer",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(off["enabled"], false);
}

#[tokio::test]
async fn scripted_outputs_answer_the_next_calls_in_order() {
    let sb = start(fast()).await;
    let first = json!({"copies": [{"profile_ref": "C1", "subject": "One", "preheader": "p", "body": "Scripted body one.", "products": ["P1"]}]});
    let second = json!({"copies": [{"profile_ref": "C1", "subject": "Two", "preheader": "p", "body": "Use code SAVE50 now.", "products": ["P9"]}]});
    let third = json!({"copies": [
        {"profile_ref": "C1", "subject": "Three", "preheader": "p", "body": "A long scripted body that will be cut off part of the way through.", "products": ["P1"]},
        {"profile_ref": "C2", "subject": "Four", "preheader": "p", "body": "Never reached.", "products": ["P2"]}]});
    let (status, queued) = control(
        &sb,
        reqwest::Method::POST,
        "script",
        Some(json!({"outputs": [
            {"input": first, "stop_reason": "tool_use"},
            {"input": second},
            {"input": third, "stop_reason": "max_tokens"},
        ]})),
    )
    .await;
    assert_eq!((status, queued["queued"].clone()), (200, json!(3)));
    let body = converse_body("en", &json!({"kind": "none"}), &customers(2), 2000);
    let a = converse(&sb, &body).await;
    assert_eq!(a["stopReason"], "tool_use");
    assert_eq!(
        a["output"]["message"]["content"][0]["toolUse"]["input"],
        first
    );
    assert_eq!(
        a["output"]["message"]["content"][0]["toolUse"]["name"],
        "emit_copy"
    );
    let (_, left) = control(&sb, reqwest::Method::GET, "script", None).await;
    assert_eq!(left["queued"], 2);
    let b = converse(&sb, &body).await;
    assert_eq!(
        b["output"]["message"]["content"][0]["toolUse"]["input"],
        second
    );
    let c = converse(&sb, &body).await;
    assert_eq!(c["stopReason"], "max_tokens");
    assert_eq!(c["usage"]["outputTokens"], 2000);
    let cut = &c["output"]["message"]["content"][0]["toolUse"]["input"];
    assert_ne!(cut, &third);
    assert!(
        cut["copies"].as_array().unwrap().len() < 2 || cut["copies"][1].get("products").is_none(),
        "{cut}"
    );
    // The queue is empty: the model writes again.
    let d = converse(&sb, &body).await;
    assert_eq!(d["stopReason"], "tool_use");
    assert_eq!(copies(&d).len(), 2);
    control(
        &sb,
        reqwest::Method::POST,
        "script",
        Some(json!({"outputs": [{"input": first}]})),
    )
    .await;
    let (_, cleared) = control(&sb, reqwest::Method::DELETE, "script", None).await;
    assert_eq!(cleared["cleared"], 1);
    let (status, _) = control(
        &sb,
        reqwest::Method::POST,
        "script",
        Some(json!({"outputs": [{"input": "x"}]})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = control(
        &sb,
        reqwest::Method::POST,
        "script",
        Some(json!({"outputs": [{"input": {}, "stop_reason": "end_turn"}]})),
    )
    .await;
    assert_eq!(status, 400);
}
