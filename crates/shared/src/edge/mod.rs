//! Edge helpers: the only place that knows Lambda event shapes. Handlers turn an event into
//! domain calls with these, and turn the result back into a response.

pub mod function;
pub mod http;
pub mod sqs;

#[cfg(feature = "runtime")]
pub mod lambda;

pub use function::{Function, FunctionError};
