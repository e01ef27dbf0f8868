use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(
        "AWS_ENDPOINT_URL is not set: the local stack needs moto. Run the tests via `make test` \
         (it starts moto and sets AWS_ENDPOINT_URL), or start `moto_server -H 127.0.0.1 -p 5055` and \
         export AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
         AWS_SECRET_ACCESS_KEY=testing"
    )]
    NoMoto,
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("provisioning {resource} in moto failed: {message}")]
    Provision { resource: String, message: String },
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("{function}: environment does not make a Config: {message}")]
    Config { function: String, message: String },
    #[error("{function}: Handler::init failed: {message}")]
    Init { function: String, message: String },
    #[error("{0} is not a function of the template")]
    UnknownFunction(String),
    #[error("{function}: no handler for binary {binary:?} (add it to local_runner::handlers or pass an override)")]
    NoHandler { function: String, binary: String },
    #[error("{0} has no Schedule event")]
    NoSchedule(String),
    #[error("{function} failed: {message}")]
    Invocation { function: String, message: String },
    #[error("{function} timed out after {timeout:?}")]
    FunctionTimeout { function: String, timeout: Duration },
    #[error("queues not drained within {0:?}")]
    DrainTimeout(Duration),
    #[error("AWS call failed: {0}")]
    Aws(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The full chain of an SDK error (the top level alone says only "service error").
pub(crate) fn aws_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
