//! The vendor budgets, read from template.yaml: every function that calls Klaviyo or Bedrock
//! on a budget declares its share (per container, or pooled by all its containers) and bounds
//! its containers, and the shares together never exceed the budget (the part of each Klaviyo
//! tier we may use, the account's Bedrock quota).

use local_runner::Template;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> Template {
    Template::load(&root().join("template.yaml")).expect("template.yaml parses")
}

/// Whether the function's crate builds a budgeted Klaviyo or Bedrock client.
fn calls_vendors_on_a_budget(binary: &str) -> bool {
    let src = root().join("crates").join(binary).join("src");
    std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|code| {
            [
                "klaviyo_limits()",
                "bedrock::from_config",
                "Engine::from_config",
            ]
            .iter()
            .any(|call| code.contains(call))
        })
}

/// How many times the function's share counts: once when its containers pool it, once per
/// container otherwise.
fn holders(template: &Template, id: &str) -> Option<f64> {
    let f = &template.functions[id];
    if f.environment.contains_key("VENDOR_BUDGET_POOL") {
        Some(1.0)
    } else {
        f.reserved_concurrency.map(f64::from)
    }
}

fn share(template: &Template, id: &str) -> Option<f64> {
    template.functions[id]
        .environment
        .get("VENDOR_BUDGET_SHARE")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
}

#[test]
fn every_budgeted_function_declares_its_share_and_bounds_its_containers() {
    let template = template();
    let mut budgeted = 0;
    for (id, f) in &template.functions {
        let binary = f.binary.as_deref().unwrap_or_default();
        if !calls_vendors_on_a_budget(binary) {
            continue;
        }
        budgeted += 1;
        let share =
            share(&template, id).unwrap_or_else(|| panic!("{id} has no VENDOR_BUDGET_SHARE"));
        assert!(share > 0.0 && share <= 1.0, "{id}: {share}");
        let containers = f
            .reserved_concurrency
            .unwrap_or_else(|| panic!("{id} has no ReservedConcurrentExecutions: its containers, and so its use of the budget, are unbounded"));
        let pollers: u32 = f
            .sqs
            .iter()
            .filter_map(|m| m.maximum_concurrency)
            .max()
            .unwrap_or(0);
        assert!(
            containers >= pollers,
            "{id}: {containers} containers < {pollers} pollers of one queue"
        );
    }
    assert!(
        budgeted >= 2,
        "the fan-out and the worker call vendors on a budget"
    );
}

/// Each function's per-container share of one Klaviyo tier (or of Bedrock: `None`).
fn tier_share(template: &Template, id: &str, tier: Option<usize>) -> Option<f64> {
    let default = share(template, id)?;
    let spec = template.functions[id]
        .environment
        .get("KLAVIYO_TIER_SHARES")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Some(
        tier.and_then(|t| shared::config::tier_shares(&spec)[t])
            .unwrap_or(default),
    )
}

#[test]
fn the_shares_of_every_function_add_up_to_at_most_the_whole_budget() {
    let template = template();
    // Bedrock, then each Klaviyo tier XS, S, M, L, XL.
    for tier in [None, Some(0), Some(1), Some(2), Some(3), Some(4)] {
        let total: f64 = template
            .functions
            .keys()
            .filter_map(|id| Some(tier_share(&template, id, tier)? * holders(&template, id)?))
            .sum();
        assert!(
            total <= 1.0 + 1e-9,
            "tier {tier:?}: shares × holders = {total}"
        );
        assert!(
            total >= 0.9,
            "tier {tier:?}: {total}: most of the budget should be in use"
        );
    }
}

#[test]
fn klaviyo_headroom_for_the_merchants_other_apps_defaults_to_twenty_percent() {
    let template = template();
    assert_eq!(
        template.parameters["KlaviyoBudgetPercent"]
            .default
            .as_deref(),
        Some("80")
    );
    for (id, f) in &template.functions {
        assert!(
            f.environment.contains_key("KLAVIYO_BUDGET_PERCENT"),
            "{id} does not know the headroom"
        );
    }
    // A worker container paces to its share of the 80% we may use.
    let env: std::collections::HashMap<String, String> = [
        ("APP_TABLE", "a"),
        ("CATALOG_TABLE", "c"),
        ("SYNC_QUEUE_URL", "q"),
        ("SHOPIFY_CLIENT_ID", "id"),
        ("SHOPIFY_REDIRECT_URI", "https://x/cb"),
        ("VENDOR_BUDGET_SHARE", "0.16"),
        ("KLAVIYO_BUDGET_PERCENT", "80"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = shared::Config::from_map(&env).unwrap();
    let f = config
        .klaviyo_limits()
        .factor(shared::klaviyo::Tier::XL)
        .unwrap();
    assert!((f - 0.128).abs() < 1e-9, "{f}");
}

#[test]
fn claude_haiku_5_5_is_the_default_model_and_priced() {
    let template = template();
    let model = template.parameters["BedrockModelId"]
        .default
        .clone()
        .expect("a default model");
    assert!(model.contains("claude-haiku-5-5"), "{model}");
    assert!(shared::personalize::ModelPrices::for_model(&model).known);
}
