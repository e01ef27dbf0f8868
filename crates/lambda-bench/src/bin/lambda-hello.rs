//! The baseline of `make bench`: a hello-world `lambda_runtime` function (echo the event), built
//! with the same release profile as the real functions. Its init time and RSS are what the
//! runtime itself costs; the functions' figures are compared with it.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
