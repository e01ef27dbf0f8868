//! The grounding gate on the labelled corpus (`tests/grounding/`), straight through `validate`:
//! the fast loop for rule work. The same corpus goes through the preview API in
//! `tests/e2e/grounding.rs`, which holds the targets.

use serde_json::Value;
use shared::domain::{CatalogProduct, Money};
use shared::personalize::{
    validate, GeneratedCopy, Offer, PersonalData, Settings, ValidationContext,
};
use std::collections::BTreeMap;

fn load() -> (Vec<Value>, Vec<Value>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/grounding");
    let worlds: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("worlds.json")).unwrap()).unwrap();
    let cases = std::fs::read_to_string(dir.join("corpus.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (worlds, cases)
}

fn product(world: &Value, p: &Value) -> CatalogProduct {
    let money = Money {
        amount: p["price"].as_str().unwrap().into(),
        currency: world["currency"].as_str().unwrap().into(),
    };
    CatalogProduct {
        id: format!("gid://shopify/Product/{}", p["key"].as_str().unwrap()),
        title: p["title"].as_str().unwrap().into(),
        description: p["description"].as_str().unwrap_or_default().into(),
        handle: p["key"].as_str().unwrap().into(),
        url: String::new(),
        tags: vec![],
        product_type: p["product_type"].as_str().unwrap_or_default().into(),
        vendor: world["shop"].as_str().unwrap_or_default().into(),
        price_min: money.clone(),
        price_max: money,
        image_url: None,
        available: true,
        updated_at: String::new(),
    }
}

#[test]
fn corpus_through_the_gate() {
    let (worlds, cases) = load();
    let mut table: BTreeMap<String, [u32; 2]> = BTreeMap::new();
    let mut misses = Vec::new();
    for case in &cases {
        let world = worlds
            .iter()
            .find(|w| w["language"] == case["world"])
            .expect("world");
        let customer = world["customers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == case["customer"])
            .unwrap();
        let bought: Vec<&str> = customer["purchases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let all: Vec<CatalogProduct> = world["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| product(world, p))
            .collect();
        let candidates: Vec<CatalogProduct> = all
            .iter()
            .filter(|p| !bought.contains(&p.handle.as_str()))
            .cloned()
            .collect();
        let purchased: Vec<String> = all
            .iter()
            .filter(|p| bought.contains(&p.handle.as_str()))
            .map(|p| p.title.clone())
            .collect();
        let refs: Vec<String> = case["copy"]["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                candidates
                    .iter()
                    .position(|c| c.title == t.as_str().unwrap())
                    .map_or("P9".to_owned(), |i| format!("P{}", i + 1))
            })
            .collect();
        let copy = GeneratedCopy {
            subject: case["copy"]["subject"].as_str().unwrap_or_default().into(),
            preheader: case["copy"]["preheader"]
                .as_str()
                .unwrap_or_default()
                .into(),
            body: case["copy"]["body"].as_str().unwrap_or_default().into(),
            product_refs: refs,
        };
        let mut settings = Settings {
            language: case["language"].as_str().unwrap().into(),
            sign_off: String::new(),
            ..Settings::default()
        };
        settings.slots.subject = Some(shared::personalize::SlotLimit { max_chars: 60 });
        settings.slots.preheader = Some(shared::personalize::SlotLimit { max_chars: 100 });
        settings.slots.body = Some(shared::personalize::SlotLimit { max_chars: 500 });
        settings.slots.products = 3;
        let offer: Offer = serde_json::from_value(case["offer"].clone()).unwrap();
        let others: Vec<String> = case["others"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| {
                world["customers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| &c["key"] == o)?["first_name"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        let brief = case["brief"].as_str().unwrap();
        let mut ctx = ValidationContext::new(
            &candidates,
            brief,
            &offer,
            &settings,
            PersonalData {
                first_name: customer["first_name"].as_str(),
                last_name: customer["last_name"].as_str(),
                email: None,
                phone_number: None,
            },
        )
        .with_others(others);
        ctx.purchased_titles = purchased;
        let result = validate(&copy, &ctx);
        let defect = case["label"] == "defect";
        let right = result.is_err() == defect;
        let key = format!(
            "{} {}",
            case["label"].as_str().unwrap(),
            case["kind"].as_str().unwrap()
        );
        table.entry(key).or_default()[usize::from(right)] += 1;
        table
            .entry(format!(
                "lang {} {}",
                case["language"].as_str().unwrap(),
                case["label"].as_str().unwrap()
            ))
            .or_default()[usize::from(right)] += 1;
        if !right {
            misses.push(format!(
                "{} [{}] {:?}",
                case["id"].as_str().unwrap(),
                case["kind"].as_str().unwrap(),
                result
                    .err()
                    .map(|f| f.iter().map(|x| x.to_string()).collect::<Vec<_>>())
            ));
        }
    }
    for (k, [wrong, right]) in &table {
        println!("{k:40} right {right:3} wrong {wrong:3}");
    }
    for m in &misses {
        println!("MISS {m}");
    }
    println!("misses: {}", misses.len());
}
