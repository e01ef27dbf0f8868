//! The Lambda runtime loop: every binary's `main` ends in `run(function)`.

use super::Function;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

pub async fn run<F: Function>(function: F) -> Result<(), lambda_runtime::Error> {
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let _entered = span.enter();
        function.invoke(event.payload).await
    }))
    .await
}
