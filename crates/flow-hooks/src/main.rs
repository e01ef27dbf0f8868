//! Lambda entry point: logs, config and clients once per container, then the runtime loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = shared::Config::from_env()?;
    let handler = flow_hooks::Handler::init(config).await?;
    shared::edge::lambda::run(handler).await
}
