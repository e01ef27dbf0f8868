//! Calls a function the way the Lambda service does: one event in, one JSON out, bounded by the
//! function's `Timeout`, a panic reported as a failed invocation rather than taking the runner
//! down. Counts invocations so `drain` knows when nothing is in flight.

use serde_json::Value;
use shared::edge::Function;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::StackError;

pub(crate) struct Invoker {
    functions: HashMap<String, (Arc<dyn Function>, Duration)>,
    in_flight: AtomicUsize,
    started: AtomicU64,
}

/// Holds an invocation slot; dropping it marks the invocation finished.
pub(crate) struct InFlight<'a>(&'a Invoker);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Invoker {
    pub fn new(functions: HashMap<String, (Arc<dyn Function>, Duration)>) -> Self {
        Self {
            functions,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
        }
    }

    pub fn contains(&self, function: &str) -> bool {
        self.functions.contains_key(function)
    }

    /// Marks work as in flight (e.g. a received SQS batch until it is settled).
    pub fn begin(&self) -> InFlight<'_> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    /// (in flight now, started so far): `drain` compares two readings.
    pub fn activity(&self) -> (usize, u64) {
        (
            self.in_flight.load(Ordering::SeqCst),
            self.started.load(Ordering::SeqCst),
        )
    }

    pub async fn invoke(&self, function: &str, event: Value) -> Result<Value, StackError> {
        let (handler, timeout) = self
            .functions
            .get(function)
            .cloned()
            .ok_or_else(|| StackError::UnknownFunction(function.to_owned()))?;
        let _slot = self.begin();
        let span = tracing::info_span!("invoke", function = %function);
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move { handler.invoke(event).await.map_err(|e| e.to_string()) },
            span,
        ));
        let abort = task.abort_handle();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(message))) => Err(StackError::Invocation {
                function: function.to_owned(),
                message,
            }),
            Ok(Err(join)) => Err(StackError::Invocation {
                function: function.to_owned(),
                message: if join.is_panic() {
                    "the handler panicked".into()
                } else {
                    join.to_string()
                },
            }),
            Err(_) => {
                abort.abort();
                Err(StackError::FunctionTimeout {
                    function: function.to_owned(),
                    timeout,
                })
            }
        }
    }
}
