//! Crash points for fault-injection tests. The fan-out and the worker name a point after every
//! vendor or AWS call that changes something; a test harness arms one point of its stack's
//! scope (`FAULT_SCOPE`) and the next pass through it fails the invocation as if the container
//! had died there, so SQS redelivers. Deployed functions have no scope: every point is a no-op.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

#[derive(Debug, Default)]
struct Plan {
    /// The point to crash at, and how many passes to let through first.
    armed: Option<(String, u32)>,
    /// Passes through each point since the plan was made.
    hits: BTreeMap<String, u32>,
    /// Crashes injected, by point.
    crashed: BTreeMap<String, u32>,
}

static PLANS: LazyLock<Mutex<HashMap<String, Plan>>> = LazyLock::new(Default::default);

fn plans() -> std::sync::MutexGuard<'static, HashMap<String, Plan>> {
    PLANS.lock().unwrap_or_else(|e| e.into_inner())
}

/// An injected crash: the invocation ends here, as the container's death would end it.
#[derive(Debug, thiserror::Error)]
#[error("injected crash at {0}")]
pub struct Crash(pub String);

/// Pass through crash point `name`: `Err` when the scope's plan is armed for it.
pub fn point(scope: Option<&str>, name: &str) -> Result<(), Crash> {
    let Some(scope) = scope else {
        return Ok(());
    };
    let mut plans = plans();
    let plan = plans.entry(scope.to_owned()).or_default();
    *plan.hits.entry(name.to_owned()).or_default() += 1;
    match &mut plan.armed {
        Some((armed, skip)) if armed == name => {
            if *skip > 0 {
                *skip -= 1;
                return Ok(());
            }
            plan.armed = None;
            *plan.crashed.entry(name.to_owned()).or_default() += 1;
            Err(Crash(name.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Crash once at `name` after letting `skip` passes through.
pub fn arm(scope: &str, name: &str, skip: u32) {
    plans().entry(scope.to_owned()).or_default().armed = Some((name.to_owned(), skip));
}

/// Whether the armed crash is still to come.
pub fn pending(scope: &str) -> bool {
    plans().get(scope).is_some_and(|p| p.armed.is_some())
}

/// Passes through every point of the scope so far.
pub fn hits(scope: &str) -> BTreeMap<String, u32> {
    plans()
        .get(scope)
        .map(|p| p.hits.clone())
        .unwrap_or_default()
}

/// Crashes injected so far, by point.
pub fn crashed(scope: &str) -> BTreeMap<String, u32> {
    plans()
        .get(scope)
        .map(|p| p.crashed.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_crashes_once_after_its_skips_and_other_scopes_never() {
        assert!(point(None, "a").is_ok(), "no scope: a no-op");
        arm("s1", "a", 1);
        assert!(point(Some("s2"), "a").is_ok(), "another scope");
        assert!(point(Some("s1"), "b").is_ok());
        assert!(point(Some("s1"), "a").is_ok(), "the skipped pass");
        assert!(pending("s1"));
        assert!(point(Some("s1"), "a").is_err());
        assert!(!pending("s1"));
        assert!(point(Some("s1"), "a").is_ok(), "only once");
        assert_eq!(hits("s1")["a"], 3);
        assert_eq!(crashed("s1")["a"], 1);
    }
}
