//! CloudWatch metrics through the Embedded Metric Format: one JSON line on stdout per
//! document, which CloudWatch Logs turns into metrics in the `SendPersonal` namespace without an
//! API call (no PutMetricData permission, no latency on the request path).
//!
//! Documents carry counts and durations only, with the function as the one dimension; run ids
//! go in as properties (searchable in Logs Insights, not a dimension: unbounded cardinality).
//! Never a key, a token, an email or a profile's data.
//!
//! The template's runs dashboard (`RunsDashboard`) plots exactly the names emitted here.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const NAMESPACE: &str = "SendPersonal";
/// The dimension every document is published under.
pub const DIMENSION: &str = "Function";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: metrics of one function at one moment.
#[derive(Clone, Debug)]
pub struct Document {
    function: &'static str,
    metrics: Vec<(&'static str, f64, Unit)>,
    properties: Map<String, Value>,
}

impl Document {
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.metrics.push((name, value as f64, Unit::Count));
        self
    }

    pub fn millis(mut self, name: &'static str, elapsed: Duration) -> Self {
        self.metrics
            .push((name, elapsed.as_secs_f64() * 1000.0, Unit::Milliseconds));
        self
    }

    /// A searchable field that is not a metric (an id, an outcome). Never personal data.
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    /// The EMF JSON: the `_aws` metadata block, the dimension value, each metric's value at the
    /// root, then the properties.
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert(DIMENSION.into(), Value::from(self.function));
        for (key, value) in &self.properties {
            root.insert(key.clone(), value.clone());
        }
        for (name, value, _) in &self.metrics {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    /// Write the document as one line on stdout (where Lambda sends it to CloudWatch Logs).
    /// Outside a Lambda runtime (the local runner, tests, the demo) it goes to the debug log
    /// instead, so it does not interleave with what those programs print.
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let line = self.to_json(now).to_string();
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
            tracing::debug!(emf = %line, "metrics");
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Container-wide vendor throttle counters only grow; each batch reports what it added.
static THROTTLES_SEEN: AtomicU64 = AtomicU64::new(0);

fn throttles_since_last(total: u64) -> u64 {
    total.saturating_sub(THROTTLES_SEEN.swap(total, Ordering::Relaxed))
}

fn requests_with_prefix(requests: &std::collections::BTreeMap<String, u64>, prefix: &str) -> u64 {
    requests
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// The worker's document for one batch. `throttled_total` is the container's running count of
/// vendor throttles (Klaviyo 429s + Bedrock ThrottlingExceptions); the document carries the
/// increase since the previous batch.
#[cfg(feature = "dynamodb")]
pub fn batch_document(
    tally: &crate::aws::runs::BatchTally,
    throttled_total: u64,
    elapsed: Duration,
) -> Document {
    let counts = &tally.counts;
    Document::new("personalize-worker")
        .count("Batches", 1)
        .count("ProfilesWritten", counts.written)
        .count("ProfilesHoldout", counts.holdout)
        .count("ProfilesSkipped", counts.skipped.values().sum())
        .count("ProfilesFailed", counts.failed.values().sum())
        .count("InputTokens", tally.tokens.input_tokens)
        .count("OutputTokens", tally.tokens.output_tokens)
        .count("CacheReadTokens", tally.tokens.cache_read_tokens)
        .count("CacheWriteTokens", tally.tokens.cache_write_tokens)
        .count(
            "KlaviyoRequests",
            requests_with_prefix(&tally.requests, "klaviyo"),
        )
        .count(
            "BedrockRequests",
            requests_with_prefix(&tally.requests, "bedrock"),
        )
        .count("VendorThrottles", throttles_since_last(throttled_total))
        .millis("BatchLatency", elapsed)
        // Reasons, not people: skip/fail reason names and their counts.
        .property("skipped", json!(counts.skipped))
        .property("failed", json!(counts.failed))
}

/// Emit [`batch_document`] (the worker calls this once per processed batch).
#[cfg(feature = "dynamodb")]
pub fn batch(tally: &crate::aws::runs::BatchTally, throttled_total: u64, elapsed: Duration) {
    batch_document(tally, throttled_total, elapsed).emit();
}

/// catalog-sync's document for one sync: `outcome` is `replaced`, `not_connected`,
/// `superseded` or `failed`.
pub fn catalog_sync_document(
    outcome: &'static str,
    products: u64,
    shopify: &crate::shopify::ShopifyUsage,
    ddb_requests: u64,
    elapsed: Duration,
) -> Document {
    Document::new("catalog-sync")
        .count("Syncs", 1)
        .count("ProductsCached", products)
        .count("ShopifyRequests", shopify.requests)
        .count("ShopifyCostPoints", shopify.cost_points)
        .count("VendorThrottles", shopify.throttled)
        .count("DynamoDbRequests", ddb_requests)
        .millis("SyncLatency", elapsed)
        .millis("ShopifyThrottleWait", shopify.waited)
        .property("outcome", outcome)
}

pub fn catalog_sync(
    outcome: &'static str,
    products: u64,
    shopify: &crate::shopify::ShopifyUsage,
    ddb_requests: u64,
    elapsed: Duration,
) {
    catalog_sync_document(outcome, products, shopify, ddb_requests, elapsed).emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_declares_every_metric_in_the_aws_block_and_carries_its_value() {
        let doc = Document::new("personalize-worker")
            .count("ProfilesWritten", 7)
            .millis("BatchLatency", Duration::from_millis(1500))
            .property("run_id", "01JRUN")
            .to_json(1_700_000_000_000);
        let block = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(block["Namespace"], "SendPersonal");
        assert_eq!(block["Dimensions"], json!([["Function"]]));
        assert_eq!(
            block["Metrics"],
            json!([{ "Name": "ProfilesWritten", "Unit": "Count" }, { "Name": "BatchLatency", "Unit": "Milliseconds" }])
        );
        assert_eq!(doc["Function"], "personalize-worker");
        assert_eq!(doc["ProfilesWritten"], 7.0);
        assert_eq!(doc["BatchLatency"], 1500.0);
        assert_eq!(doc["run_id"], "01JRUN");
    }

    #[test]
    fn every_dimension_has_a_value_at_the_root() {
        let doc = catalog_sync_document(
            "replaced",
            3,
            &Default::default(),
            2,
            Duration::from_secs(1),
        )
        .to_json(0);
        for set in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap()
        {
            for dim in set.as_array().unwrap() {
                assert!(
                    doc[dim.as_str().unwrap()].is_string(),
                    "dimension {dim} has no value"
                );
            }
        }
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            assert!(
                doc[m["Name"].as_str().unwrap()].is_number(),
                "metric {m} has no value"
            );
        }
    }

    #[cfg(feature = "dynamodb")]
    #[test]
    fn batch_reports_outcomes_tokens_requests_and_new_throttles_only() {
        use crate::personalize::{FailReason, Outcome, SkipReason};
        let mut tally = crate::aws::runs::BatchTally::default();
        tally.counts.add_n(&Outcome::Written, 5);
        tally.counts.add_n(&Outcome::Holdout, 1);
        tally
            .counts
            .add_n(&Outcome::Skipped(SkipReason::ProfileNotFound), 2);
        tally.counts.add_n(&Outcome::Failed(FailReason::Klaviyo), 1);
        tally.tokens.input_tokens = 900;
        tally.tokens.output_tokens = 300;
        tally.requests.insert("klaviyo_profiles".into(), 1);
        tally.requests.insert("klaviyo_events".into(), 3);
        tally.requests.insert("bedrock_converse".into(), 2);
        let first = batch_document(&tally, 4, Duration::from_millis(20)).to_json(0);
        let second = batch_document(&tally, 6, Duration::from_millis(20)).to_json(0);
        assert_eq!(first["ProfilesWritten"], 5.0);
        assert_eq!(first["ProfilesHoldout"], 1.0);
        assert_eq!(first["ProfilesSkipped"], 2.0);
        assert_eq!(first["ProfilesFailed"], 1.0);
        assert_eq!(first["InputTokens"], 900.0);
        assert_eq!(first["KlaviyoRequests"], 4.0);
        assert_eq!(first["BedrockRequests"], 2.0);
        assert_eq!(second["VendorThrottles"], 2.0);
        let text = first.to_string();
        assert!(
            !text.contains('@'),
            "no email-like data in a metric document: {text}"
        );
    }
}
