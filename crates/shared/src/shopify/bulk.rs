//! Bulk operations: start a bulk query, poll it with backoff until it finishes, and stream the
//! JSONL result line by line (plain GET on the signed URL: no token header).

use super::admin::ShopifyAdmin;
use super::error::ShopifyError;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

pub const BULK_RUN: &str = include_str!("queries/bulk_run.graphql");
pub const BULK_STATUS: &str = include_str!("queries/bulk_status.graphql");

/// How to poll a running bulk operation.
#[derive(Clone, Debug)]
pub struct BulkPolling {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up (with `ShopifyError::Bulk`) after this long; the operation keeps running at Shopify.
    pub timeout: Duration,
}

impl Default for BulkPolling {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(12 * 60),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default, deserialize_with = "de_count")]
    pub object_count: Option<u64>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub partial_data_url: Option<String>,
}

/// `UnsignedInt64` arrives as a string; accept a number too.
fn de_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunData {
    bulk_operation_run_query: Option<RunPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPayload {
    bulk_operation: Option<BulkOperation>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusData {
    bulk_operation: Option<BulkOperation>,
}

/// Start a bulk query (`groupObjects: false`); returns the operation's id.
pub async fn start(admin: &ShopifyAdmin, inner_query: &str) -> Result<String, ShopifyError> {
    let data: RunData = admin
        .query(BULK_RUN, serde_json::json!({ "query": inner_query }))
        .await?;
    let payload = data
        .bulk_operation_run_query
        .ok_or_else(|| ShopifyError::Bulk("bulkOperationRunQuery returned nothing".into()))?;
    if !payload.user_errors.is_empty() {
        let text: Vec<String> = payload
            .user_errors
            .iter()
            .map(|e| format!("{} ({})", e.message, e.code.as_deref().unwrap_or("?")))
            .collect();
        return Err(ShopifyError::Bulk(text.join("; ")));
    }
    payload
        .bulk_operation
        .map(|op| op.id)
        .ok_or_else(|| ShopifyError::Bulk("bulkOperationRunQuery returned no operation".into()))
}

/// Poll until the operation leaves CREATED/RUNNING. Returns it when COMPLETED; any other end
/// state (FAILED, CANCELED, EXPIRED …) is a `Bulk` error naming the status and error code.
pub async fn wait(
    admin: &ShopifyAdmin,
    id: &str,
    polling: &BulkPolling,
) -> Result<BulkOperation, ShopifyError> {
    let started = Instant::now();
    let mut delay = polling.first_delay;
    loop {
        let data: StatusData = admin
            .query(BULK_STATUS, serde_json::json!({ "id": id }))
            .await?;
        let op = data
            .bulk_operation
            .ok_or_else(|| ShopifyError::Bulk("bulk operation not found".into()))?;
        match op.status.as_str() {
            "COMPLETED" => return Ok(op),
            "CREATED" | "RUNNING" => {}
            other => {
                return Err(ShopifyError::Bulk(format!(
                    "bulk operation ended {other} ({})",
                    op.error_code.as_deref().unwrap_or("no error code")
                )))
            }
        }
        if started.elapsed() + delay > polling.timeout {
            return Err(ShopifyError::Bulk(format!(
                "bulk operation still {} after {:?}",
                op.status, polling.timeout
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay.mul_f64(1.5)).min(polling.max_delay);
    }
}

/// Download a JSONL result and hand each parsed line to `on_line`, reading chunk by chunk so a
/// large export never sits in memory whole.
pub async fn for_each_line(
    http: &reqwest::Client,
    url: &str,
    mut on_line: impl FnMut(Value) -> Result<(), ShopifyError>,
) -> Result<(), ShopifyError> {
    let mut response = http.get(url).send().await.map_err(ShopifyError::network)?;
    let status = response.status();
    if !status.is_success() {
        return Err(if status.is_server_error() {
            ShopifyError::Transient(format!(
                "bulk result download returned HTTP {}",
                status.as_u16()
            ))
        } else {
            ShopifyError::Bulk(format!(
                "bulk result download returned HTTP {}",
                status.as_u16()
            ))
        });
    }
    let mut buffer: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut handle = |line: &[u8], line_no: &mut usize| -> Result<(), ShopifyError> {
        *line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| ShopifyError::Bulk(format!("bad JSONL at line {line_no}: {e}")))?;
        on_line(value)
    };
    while let Some(chunk) = response.chunk().await.map_err(ShopifyError::network)? {
        buffer.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = buffer[start..].iter().position(|b| *b == b'\n') {
            handle(&buffer[start..start + pos], &mut line_no)?;
            start += pos + 1;
        }
        buffer.drain(..start);
    }
    if !buffer.is_empty() {
        handle(&buffer, &mut line_no)?;
    }
    Ok(())
}
