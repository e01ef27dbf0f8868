//! The merchant console's first load, measured in headless Chromium against the local stack by
//! `console/e2e/bench.mjs` (transferred bytes, gzip-compressed as the CDN serves them, and the
//! time to interactive); its JSON line is printed as it comes.

use local_runner::console::ConsoleOptions;
use local_runner::{LocalStack, StackOptions};

pub(crate) async fn first_load() -> Result<(), shared::edge::FunctionError> {
    let console_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../console");
    let stack = LocalStack::start(StackOptions {
        run_queues: false,
        console: Some(ConsoleOptions::default()),
        ..StackOptions::default()
    })
    .await?;
    let url = stack.console_url.clone().unwrap_or_default();
    let mut cmd = std::process::Command::new("node");
    cmd.arg("e2e/bench.mjs")
        .current_dir(console_dir)
        .env("CONSOLE_URL", &url);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    stack.shutdown().await;
    if !out.status.success() {
        return Err(format!(
            "console bench failed (is the console built? make console-build):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
