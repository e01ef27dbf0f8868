//! The Lambda runtime loop: every binary's `main` ends in `run(function)`.

use super::Function;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

pub async fn run<F: Function>(function: F) -> Result<(), lambda_runtime::Error> {
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Every log line of the invocation carries its request id. `instrument`, not `enter`:
        // an entered guard held across an await would tag other tasks' lines on this thread.
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        function.invoke(event.payload).instrument(span)
    }))
    .await
}
