//! Calls a function the way the Lambda service does: one event in, one JSON out, bounded by the
//! function's `Timeout`, a panic reported as a failed invocation rather than taking the runner
//! down. Counts invocations so `drain` knows when nothing is in flight.
//!
//! A function with `ReservedConcurrentExecutions` runs as that many containers: each is its own
//! handler instance (own clients, own rate limiters paced to the function's
//! `VENDOR_BUDGET_SHARE`) serving one event at a time; an event waits while all are busy
//! (Lambda would throttle it instead). Other functions share one instance.

use serde_json::Value;
use shared::edge::Function;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::StackError;

/// The containers of one function.
pub(crate) struct Containers {
    idle: std::sync::Mutex<Vec<Arc<dyn Function>>>,
    /// One permit per container; `None`: one shared instance, no limit.
    permits: Option<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Containers {
    /// `instances.len()` containers, one event at a time each.
    pub fn exclusive(instances: Vec<Arc<dyn Function>>, timeout: Duration) -> Self {
        Self {
            permits: Some(tokio::sync::Semaphore::new(instances.len())),
            idle: std::sync::Mutex::new(instances),
            timeout,
        }
    }

    /// One instance serving every event concurrently.
    pub fn shared(instance: Arc<dyn Function>, timeout: Duration) -> Self {
        Self {
            idle: std::sync::Mutex::new(vec![instance]),
            permits: None,
            timeout,
        }
    }
}

pub(crate) struct Invoker {
    functions: HashMap<String, Containers>,
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

/// Puts an exclusive container back when the invocation ends, however it ends.
struct ReturnContainer<'a> {
    containers: &'a Containers,
    handler: Option<Arc<dyn Function>>,
}

impl Drop for ReturnContainer<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.handler.take() {
            self.containers
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(h);
        }
    }
}

impl Invoker {
    pub fn new(functions: HashMap<String, Containers>) -> Self {
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
        let containers = self
            .functions
            .get(function)
            .ok_or_else(|| StackError::UnknownFunction(function.to_owned()))?;
        let timeout = containers.timeout;
        let _slot = self.begin();
        // A container of our own for the whole invocation (or the shared instance).
        let _permit = match &containers.permits {
            Some(p) => p.acquire().await.ok(),
            None => None,
        };
        let handler = {
            let mut idle = containers.idle.lock().unwrap_or_else(|e| e.into_inner());
            if containers.permits.is_some() {
                idle.pop()
            } else {
                idle.first().cloned()
            }
        }
        .ok_or_else(|| StackError::UnknownFunction(function.to_owned()))?;
        let _back = ReturnContainer {
            containers,
            handler: containers.permits.is_some().then(|| handler.clone()),
        };
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
