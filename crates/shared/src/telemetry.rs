//! Structured JSON logs, initialised once per container. Log lines carry ids (merchant, run,
//! request), never a secret or a customer's personal data.
//!
//! One JSON object per line on stdout. `span` is the innermost span and `spans` the whole
//! stack, so a line logged inside a worker batch carries both the invocation's `request_id`
//! (crates/shared/src/edge/lambda.rs) and the batch's `run_id`. Metrics are separate EMF lines
//! (crate::metrics).

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .without_time() // CloudWatch stamps every line already
        .with_target(false)
        .try_init();
}
