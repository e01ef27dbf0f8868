//! One Lambda function as the runtime sees it: JSON in, JSON out. The Lambda runtime and the
//! local runner both call functions through this trait, so local and deployed run the same code.

use async_trait::async_trait;
use serde_json::Value;

pub type FunctionError = Box<dyn std::error::Error + Send + Sync>;

#[async_trait]
pub trait Function: Send + Sync {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError>;
}

/// Deserialize a typed event, or fail the invocation with a message naming the expected shape.
pub fn parse_event<T: serde::de::DeserializeOwned>(
    event: Value,
    shape: &str,
) -> Result<T, FunctionError> {
    serde_json::from_value(event).map_err(|e| format!("expected {shape} event: {e}").into())
}
