//! The merchant console in a real browser: the local stack serves `console/dist` and its
//! `/config.json`, and `console/e2e/journey.mjs` drives Debian's headless Chromium through it
//! (playwright-core), running axe-core on every page and writing screenshots to
//! `target/console-screens/`. `make test` builds the console and installs Chromium first.

use e2e::*;
use local_runner::console::{default_dist_dir, ConsoleOptions};
use std::path::PathBuf;
use std::process::Stdio;

fn console_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../console"))
}

fn screens_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("console-screens")
}

async fn console_world() -> World {
    for (what, path) in [
        ("the console build", default_dist_dir().join("index.html")),
        (
            "the console's test tooling",
            console_dir().join("node_modules/playwright-core"),
        ),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): run `make console-build` (make test does)",
            path.display()
        );
    }
    World::start_with(|o| o.console = Some(ConsoleOptions::default())).await
}

/// Runs the journey script in `mode` against the world; panics with its report unless every
/// step passed.
async fn journey(world: &World, mode: &str) {
    let console_url = world
        .stack
        .console_url
        .clone()
        .expect("the console is served");
    let mut cmd = std::process::Command::new("node");
    cmd.arg("e2e/journey.mjs")
        .arg(mode)
        .current_dir(console_dir())
        .env("CONSOLE_URL", &console_url)
        .env("SANDBOX_URL", &world.stack.sandbox.base_url)
        .env("SCREENS_DIR", screens_dir())
        .env("KLAVIYO_SCOPES", shared::klaviyo::limits::SCOPES.join(","))
        .env("SHOPIFY_APP_SECRET", SANDBOX_CLIENT_SECRET)
        .stdin(Stdio::null());
    // The stack keeps serving on the runtime's other threads while node drives the browser.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs (make test installs Node's packages for console/)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "the console journey ({mode}) failed:\n{stdout}\n{stderr}"
    );
}

/// Needs nothing from the parallel work of issue 13: the landing page, the PKCE authorize
/// request, a forged sign-in answer refused, the security headers, axe on each page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_starts_sign_in_with_pkce_and_passes_axe() {
    let world = console_world().await;
    // The API answers the console's origin for CORS: AppBaseUrl is the console's origin.
    let console_url = world.stack.console_url.clone().unwrap();
    let preflight = world
        .http
        .request(reqwest::Method::OPTIONS, world.url("/connections"))
        .header("origin", &console_url)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(console_url.as_str())
    );
    journey(&world, "smoke").await;
}

/// Sign-up to account deletion through the browser, against the sandbox's Cognito managed login,
/// Shopify's OAuth and the whole local stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merchant_journey_from_sign_up_to_account_deletion() {
    let world = console_world().await;
    journey(&world, "full").await;
}
