//! Property-based contract test: schemathesis generates requests from `GET /openapi.json` and
//! sends them through the local API Gateway as a connected merchant. It fails on any 5xx, any
//! status the document does not declare, any response that does not match its schema, and any
//! schema-valid request refused for its shape (400/413/415/422): the document is as strict as
//! the server, no more and no less.
//!
//! The seed is random each run and printed by schemathesis (`--seed` replays it). Left out:
//! nothing but `DELETE /account`, which ends the merchant the rest of the run acts as; it runs
//! on its own, last.

use e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const MERCHANT: &str = "5b8d2c7e-1f4a-4e6b-9c3d-8a7f6e5d4c3b";
/// Test cases per operation and phase: enough to reach every branch the schema describes,
/// few enough to keep `make test` quick.
const MAX_EXAMPLES: &str = "12";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,positive_data_acceptance";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `.venv/bin/schemathesis`, installed by `make venv` from infra/requirements.txt.
fn schemathesis() -> PathBuf {
    let bin = repo_root().join(".venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run `make venv` (infra/requirements.txt pins schemathesis)",
        bin.display()
    );
    bin
}

/// Run schemathesis against `api_url` with `extra` filters; panics with its report on failure.
async fn fuzz(spec: &Path, api_url: &str, token: &str, extra: &[&str]) {
    let mut cmd = Command::new(schemathesis());
    cmd.arg("--config-file")
        .arg(repo_root().join("tests/e2e/schemathesis.toml"))
        .arg("run")
        .arg(spec)
        .args(["--url", api_url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--max-failures", "200"])
        .args(["--output-truncate", "false"])
        .args(extra)
        .current_dir(repo_root())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    // The local API runs on this runtime's other threads; the fuzzer blocks one of them.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found contract violations: see its report above (replay with its seed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn schema_valid_requests_get_documented_answers_and_no_5xx() {
    // The fuzzer sends in a minute what a merchant sends in a month: the API functions get the
    // whole vendor budget here, or their (declared) 503 vendor-throttled answers would be all it
    // sees. The budget shares have their own tests (template_budget, fairness).
    let world = World::start_with(|o| {
        o.env_overrides
            .insert("VENDOR_BUDGET_SHARE".into(), "1".into());
        o.env_overrides
            .insert("KLAVIYO_TIER_SHARES".into(), String::new());
    })
    .await;
    let merchant = world.merchant(MERCHANT).await;
    merchant.connect_demo_accounts().await;

    let served = world
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(served.status, reqwest::StatusCode::OK);
    let dir = std::env::temp_dir().join(format!("sp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, served.body.to_string()).unwrap();

    let api = world.stack.api_url.clone();
    fuzz(
        &spec,
        &api,
        &merchant.token,
        &["--exclude-operation-id", "delete_account"],
    )
    .await;
    fuzz(
        &spec,
        &api,
        &merchant.token,
        &["--include-operation-id", "delete_account"],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
