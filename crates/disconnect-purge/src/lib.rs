//! disconnect-purge: deletes a merchant's secrets, cached catalog and records.
//! Placeholder until the leave-no-trace issue: the handler signature is real, the work is not.

use async_trait::async_trait;
use serde_json::Value;
use shared::edge::{Function, FunctionError};
use shared::Config;

pub struct Handler {
    #[allow(dead_code)]
    config: Config,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        Ok(Self { config })
    }
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, _event: Value) -> Result<Value, FunctionError> {
        // Failing loudly is safer than acknowledging work that was not done.
        Err("disconnect-purge is not implemented yet (API Gateway HTTP API events)".into())
    }
}
