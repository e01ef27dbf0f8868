//! Bulk operations: start a bulk query (or adopt the one a sync that died left running), poll it
//! with backoff until it finishes, and stream its JSONL result line by line. An operation we stop
//! waiting for (an error, the poll limit, the caller's deadline) is canceled with
//! `bulkOperationCancel`: Shopify runs only a few bulk queries at once per shop, and an
//! abandoned one would hold a slot for as long as it runs.
//!
//! Results are downloaded with a client of their own ([`download_client`]): a plain GET on the
//! signed URL (no token header), a connect timeout and a per-read idle timeout, but no total
//! timeout, since a large export takes minutes to stream.

use super::admin::ShopifyAdmin;
use super::error::ShopifyError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const BULK_RUN: &str = include_str!("queries/bulk_run.graphql");
pub const BULK_STATUS: &str = include_str!("queries/bulk_status.graphql");
pub const BULK_CANCEL: &str = include_str!("queries/bulk_cancel.graphql");
pub const BULK_RUNNING: &str = include_str!("queries/bulk_running.graphql");

/// A running export of ours younger than this is adopted by the next sync; an older one is
/// canceled (stuck, or its data too old to be worth waiting for).
pub const ADOPT_MAX_AGE: Duration = Duration::from_secs(30 * 60);
/// How long a cancel gets, retries included: it runs when the caller is already giving up.
pub const CANCEL_WITHIN: Duration = Duration::from_secs(20);

/// How to poll a running bulk operation.
#[derive(Clone, Debug)]
pub struct BulkPolling {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up (with `ShopifyError::Bulk`) after this long; the caller then cancels it.
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

/// How a result file is downloaded.
#[derive(Clone, Debug)]
pub struct BulkDownload {
    /// The longest wait for the response head or for the next piece of the body. There is no
    /// limit on the whole download: a stream that keeps moving may take as long as it needs.
    pub read_timeout: Duration,
    /// The longest JSONL line accepted (a product with an enormous description is still far
    /// below it); a longer one fails the download instead of growing the buffer without bound.
    pub max_line_bytes: usize,
}

impl Default for BulkDownload {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            max_line_bytes: 32 * 1024 * 1024,
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
    /// The inner query as it was submitted (selected by [`BULK_RUNNING`]).
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunningData {
    bulk_operations: Option<OperationNodes>,
}

#[derive(Deserialize)]
struct OperationNodes {
    #[serde(default)]
    nodes: Vec<BulkOperation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelData {
    bulk_operation_cancel: Option<CancelPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelPayload {
    bulk_operation: Option<BulkOperation>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

/// A bulk query this session waits for: started by it, or adopted from a sync that died.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub id: String,
    pub adopted: bool,
}

/// What `bulkOperationCancel` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Cancelation started (CANCELING, CANCELED shortly after).
    Started,
    /// It had already ended (COMPLETED, FAILED, CANCELED …): nothing to stop.
    AlreadyEnded { status: String },
    /// No such operation for this app and shop.
    Unknown,
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

/// The app's bulk queries running at the shop, newest first.
pub async fn running(admin: &ShopifyAdmin) -> Result<Vec<BulkOperation>, ShopifyError> {
    let data: RunningData = admin.query(BULK_RUNNING, serde_json::json!({})).await?;
    Ok(data.bulk_operations.map(|c| c.nodes).unwrap_or_default())
}

/// Adopt a running export of ours with the same query, started within [`ADOPT_MAX_AGE`] (a sync
/// that died mid-export leaves one behind: waiting for it beats starting another and running
/// into Shopify's limit); cancel older ones of ours; else start a new one. Running exports of
/// other queries are not ours to judge and are left alone.
pub async fn start_or_adopt(
    admin: &ShopifyAdmin,
    inner_query: &str,
) -> Result<Export, ShopifyError> {
    let now = OffsetDateTime::now_utc();
    let mut adopted = None;
    for op in running(admin).await? {
        if op.query.as_deref().map(str::trim) != Some(inner_query.trim()) {
            continue;
        }
        let age_secs = op
            .created_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(|created| (now - created).whole_seconds());
        let fresh = age_secs.is_some_and(|age| age <= ADOPT_MAX_AGE.as_secs() as i64);
        if !fresh {
            tracing::info!(
                shop = admin.shop().as_str(),
                operation = op.id.as_str(),
                "canceling a stale bulk export of ours"
            );
            abandon(admin, &op.id).await;
        } else if adopted.is_none() {
            adopted = Some(op.id);
        }
    }
    if let Some(id) = adopted {
        tracing::info!(
            shop = admin.shop().as_str(),
            operation = id.as_str(),
            "adopting a running bulk export of ours"
        );
        return Ok(Export { id, adopted: true });
    }
    Ok(Export {
        id: start(admin, inner_query).await?,
        adopted: false,
    })
}

/// Ask Shopify to cancel an operation.
pub async fn cancel(admin: &ShopifyAdmin, id: &str) -> Result<Cancel, ShopifyError> {
    let data: CancelData = admin
        .query(BULK_CANCEL, serde_json::json!({ "id": id }))
        .await?;
    let payload = data
        .bulk_operation_cancel
        .ok_or_else(|| ShopifyError::Bulk("bulkOperationCancel returned nothing".into()))?;
    Ok(match payload.bulk_operation {
        None => Cancel::Unknown,
        Some(_) if payload.user_errors.is_empty() => Cancel::Started,
        Some(op) => Cancel::AlreadyEnded { status: op.status },
    })
}

/// Best effort, bounded by [`CANCEL_WITHIN`]: cancel an operation we stop waiting for. Never
/// fails; what happened is logged.
pub async fn abandon(admin: &ShopifyAdmin, id: &str) {
    let shop = admin.shop().as_str();
    match tokio::time::timeout(CANCEL_WITHIN, cancel(admin, id)).await {
        Ok(Ok(outcome)) => {
            tracing::info!(
                shop,
                operation = id,
                ?outcome,
                "abandoned bulk operation canceled"
            )
        }
        Ok(Err(err)) => {
            tracing::warn!(shop, operation = id, error = %err, "could not cancel an abandoned bulk operation")
        }
        Err(_) => {
            tracing::warn!(
                shop,
                operation = id,
                "canceling an abandoned bulk operation timed out"
            )
        }
    }
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

/// The client result files are downloaded with, built once per process: no total timeout (a
/// large export streams for minutes; [`JsonlLines`] times out each read instead), a connect
/// timeout, and no pooled connections (one download per sync; nothing stale to reuse).
pub fn download_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("SendPersonal/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .expect("the TLS backend initialises")
    })
}

/// A JSONL result read line by line as it arrives: memory holds one piece of the body and one
/// partial line, whatever the size of the file.
pub struct JsonlLines {
    response: reqwest::Response,
    read_timeout: Duration,
    max_line_bytes: usize,
    buffer: Vec<u8>,
    /// Start of the first byte not yet returned as part of a line.
    start: usize,
    /// Bytes after `start` already searched for a line end.
    searched: usize,
    line_no: usize,
    ended: bool,
}

impl JsonlLines {
    /// Open a result URL with [`download_client`].
    pub async fn open(url: &str, download: &BulkDownload) -> Result<Self, ShopifyError> {
        Self::open_with(download_client(), url, download).await
    }

    pub async fn open_with(
        http: &reqwest::Client,
        url: &str,
        download: &BulkDownload,
    ) -> Result<Self, ShopifyError> {
        let response = tokio::time::timeout(download.read_timeout, http.get(url).send())
            .await
            .map_err(|_| {
                ShopifyError::Transient(format!(
                    "the bulk result download did not answer within {:?}",
                    download.read_timeout
                ))
            })?
            .map_err(ShopifyError::network)?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("bulk result download returned HTTP {}", status.as_u16());
            return Err(if status.is_server_error() {
                ShopifyError::Transient(message)
            } else {
                ShopifyError::Bulk(message)
            });
        }
        Ok(Self {
            response,
            read_timeout: download.read_timeout,
            max_line_bytes: download.max_line_bytes,
            buffer: Vec::new(),
            start: 0,
            searched: 0,
            line_no: 0,
            ended: false,
        })
    }

    /// Lines read so far (blank ones included).
    pub fn lines_read(&self) -> usize {
        self.line_no
    }

    /// The next line, parsed; `None` at the end of the file. Blank lines are skipped, a
    /// trailing `\r` is ignored, and the last line needs no line end.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ShopifyError> {
        loop {
            let from = self.start + self.searched;
            let line = match self.buffer[from..].iter().position(|b| *b == b'\n') {
                Some(pos) => {
                    let line = self.start..from + pos;
                    self.start = from + pos + 1;
                    self.searched = 0;
                    line
                }
                None if self.ended && self.start < self.buffer.len() => {
                    let line = self.start..self.buffer.len();
                    self.start = self.buffer.len();
                    self.searched = 0;
                    line
                }
                None if self.ended => return Ok(None),
                None => {
                    self.searched = self.buffer.len() - self.start;
                    self.fill().await?;
                    continue;
                }
            };
            self.line_no += 1;
            if line.len() > self.max_line_bytes {
                return Err(self.too_long());
            }
            let bytes = &self.buffer[line];
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(bytes).map(Some).map_err(|e| {
                ShopifyError::Bulk(format!("bad JSONL at line {}: {e}", self.line_no))
            });
        }
    }

    fn too_long(&self) -> ShopifyError {
        ShopifyError::Bulk(format!(
            "line {} of the bulk result is longer than {} bytes",
            self.line_no, self.max_line_bytes
        ))
    }

    /// Read the next piece of the body, waiting at most the read timeout.
    async fn fill(&mut self) -> Result<(), ShopifyError> {
        // Drop what was returned already, once it is at least half the buffer.
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if self.buffer.len() - self.start > self.max_line_bytes {
            self.line_no += 1;
            return Err(self.too_long());
        }
        let piece = tokio::time::timeout(self.read_timeout, self.response.chunk())
            .await
            .map_err(|_| {
                ShopifyError::Transient(format!(
                    "the bulk result download stalled: nothing for {:?}",
                    self.read_timeout
                ))
            })?
            .map_err(ShopifyError::network)?;
        match piece {
            Some(bytes) => self.buffer.extend_from_slice(&bytes),
            None => self.ended = true,
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{AppSecret, Secret, ShopDomain};
    use crate::shopify::admin::ShopifyApp;
    use crate::shopify::oauth;
    use crate::shopify::tokens::{ShopifyTokens, TokenVault, VaultError};
    use async_trait::async_trait;
    use serde_json::json;
    use std::io::{Read, Write};
    use std::sync::Arc;

    // ---------- downloads against a hand-driven HTTP server ----------

    /// Serves one response on a thread: the head, then `pieces` with `gap` between them. With
    /// `stall`, the head promises 100 bytes more than are sent and the server goes quiet until
    /// the client hangs up.
    fn serve_once(pieces: Vec<Vec<u8>>, gap: Duration, stall: bool) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/result.jsonl", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            let total: usize =
                pieces.iter().map(Vec::len).sum::<usize>() + if stall { 100 } else { 0 };
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/jsonl\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            );
            if socket.write_all(response.as_bytes()).is_err() {
                return;
            }
            for piece in pieces {
                std::thread::sleep(gap);
                if socket.write_all(&piece).is_err() {
                    return;
                }
            }
            if stall {
                // Quiet until the client gives up and closes.
                let _ = socket.read(&mut buf);
            }
        });
        url
    }

    fn download(read_timeout: Duration) -> BulkDownload {
        BulkDownload {
            read_timeout,
            ..BulkDownload::default()
        }
    }

    async fn read_all(lines: &mut JsonlLines) -> Result<Vec<Value>, ShopifyError> {
        let mut out = Vec::new();
        while let Some(line) = lines.next::<Value>().await? {
            out.push(line);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn lines_split_across_pieces_are_reassembled_and_blank_lines_skipped() {
        let body = b"{\"a\":1}\n\n{\"b\":\"x y\"}\r\n{\"c\":[1,2]}\n   \n{\"d\":null}";
        // Cut the body at every few bytes so lines straddle pieces.
        let pieces: Vec<Vec<u8>> = body.chunks(3).map(<[u8]>::to_vec).collect();
        let url = serve_once(pieces, Duration::ZERO, false);
        let mut lines = JsonlLines::open(&url, &download(Duration::from_secs(5)))
            .await
            .unwrap();
        let values = read_all(&mut lines).await.unwrap();
        assert_eq!(
            values,
            vec![
                json!({"a": 1}),
                json!({"b": "x y"}),
                json!({"c": [1, 2]}),
                json!({"d": null})
            ]
        );
    }

    #[tokio::test]
    async fn a_download_longer_than_the_read_timeout_completes_while_it_keeps_moving() {
        // 20 lines, one every 50 ms: a second in all, never quiet for the 400 ms read timeout.
        let pieces: Vec<Vec<u8>> = (0..20)
            .map(|n| format!("{{\"n\":{n}}}\n").into_bytes())
            .collect();
        let url = serve_once(pieces, Duration::from_millis(50), false);
        let started = Instant::now();
        let mut lines = JsonlLines::open(&url, &download(Duration::from_millis(400)))
            .await
            .unwrap();
        let values = read_all(&mut lines).await.unwrap();
        assert_eq!(values.len(), 20);
        assert_eq!(values[19], json!({"n": 19}));
        assert!(
            started.elapsed() > Duration::from_millis(400),
            "the whole download outlasted one read timeout"
        );
    }

    #[tokio::test]
    async fn a_stalled_download_fails_after_the_read_timeout() {
        let url = serve_once(vec![b"{\"n\":1}\n{\"n\":".to_vec()], Duration::ZERO, true);
        let mut lines = JsonlLines::open(&url, &download(Duration::from_millis(300)))
            .await
            .unwrap();
        assert_eq!(lines.next::<Value>().await.unwrap(), Some(json!({"n": 1})));
        let err = lines.next::<Value>().await.unwrap_err();
        assert!(
            matches!(&err, ShopifyError::Transient(m) if m.contains("stalled")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_fails_instead_of_growing_the_buffer() {
        let long = format!("{{\"d\":\"{}\"}}\n", "x".repeat(5000));
        let pieces: Vec<Vec<u8>> = long.as_bytes().chunks(512).map(<[u8]>::to_vec).collect();
        let url = serve_once(pieces, Duration::ZERO, false);
        let limited = BulkDownload {
            read_timeout: Duration::from_secs(5),
            max_line_bytes: 1024,
        };
        let mut lines = JsonlLines::open(&url, &limited).await.unwrap();
        let err = lines.next::<Value>().await.unwrap_err();
        assert!(matches!(err, ShopifyError::Bulk(_)), "{err}");
    }

    // ---------- operations against the sandbox's Shopify ----------

    /// A vault holding one pair (no refresh happens in these short tests).
    struct FixedTokens(ShopifyTokens);

    #[async_trait]
    impl TokenVault for FixedTokens {
        async fn load(&self) -> Result<Option<ShopifyTokens>, VaultError> {
            Ok(Some(self.0.clone()))
        }
        async fn store(&self, _: &ShopifyTokens) -> Result<(), VaultError> {
            Ok(())
        }
        async fn try_lock(&self, _: &str, _: Duration) -> Result<bool, VaultError> {
            Ok(true)
        }
        async fn unlock(&self, _: &str) -> Result<(), VaultError> {
            Ok(())
        }
    }

    /// The sandbox with one installed shop of `products` products.
    pub(crate) struct Shop {
        pub sandbox: sandbox::Sandbox,
        pub admin: ShopifyAdmin,
        pub domain: ShopDomain,
        http: reqwest::Client,
    }

    impl Shop {
        pub async fn start(products: u64) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let sandbox = sandbox::serve(listener, sandbox::SandboxConfig::default()).await;
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let domain = ShopDomain::parse("bulk-runner.myshopify.com").unwrap();
            let created = http
                .post(format!("{}/_sandbox/shopify/shops", sandbox.base_url))
                .json(&json!({ "shop": domain.as_str(), "products": products, "seed": 77 }))
                .send()
                .await
                .unwrap();
            assert!(created.status().is_success());
            let app = ShopifyApp {
                client_id: "sandbox-client-id".into(),
                client_secret: AppSecret::known(Secret::new("sandbox-shopify-client-secret")),
                api_version: "2026-10".into(),
                base_url_template: sandbox.shopify_base_url_template(),
            };
            let base = app.base_url(&domain);
            let authorize = oauth::authorize_url(
                &base,
                &app.client_id,
                "read_products",
                "https://app.example/cb",
                "s",
            );
            let redirect = http.get(&authorize).send().await.unwrap();
            let location = redirect.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            let code = url::Url::parse(&location)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned();
            let tokens = oauth::exchange_code(
                &http,
                &base,
                &app.client_id,
                "sandbox-shopify-client-secret",
                &code,
            )
            .await
            .unwrap();
            let admin = ShopifyAdmin::new(
                http.clone(),
                app,
                domain.clone(),
                Arc::new(FixedTokens(tokens)),
            );
            Self {
                sandbox,
                admin,
                domain,
                http,
            }
        }

        pub async fn control(&self, what: &str, body: Value) {
            let url = format!(
                "{}/_sandbox/shopify/{}/{what}",
                self.sandbox.base_url,
                self.domain.as_str()
            );
            let resp = self.http.post(url).json(&body).send().await.unwrap();
            assert!(resp.status().is_success(), "{what}: {}", resp.status());
        }

        /// (id, status) of every bulk operation of the shop, oldest first.
        pub async fn operations(&self) -> Vec<(String, String)> {
            let url = format!(
                "{}/_sandbox/shopify/{}/bulk-operations",
                self.sandbox.base_url,
                self.domain.as_str()
            );
            let ops: Vec<Value> = self
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ops.iter()
                .map(|op| {
                    (
                        op["id"].as_str().unwrap().to_owned(),
                        op["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        }

        /// Waits until no operation is CANCELING (the sandbox finishes cancelations shortly).
        pub async fn settled_operations(&self) -> Vec<(String, String)> {
            for _ in 0..100 {
                let ops = self.operations().await;
                if ops.iter().all(|(_, s)| s != "CANCELING") {
                    return ops;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.operations().await
        }
    }

    const INNER: &str = crate::shopify::catalog::BULK_PRODUCTS;

    #[tokio::test]
    async fn an_export_abandoned_at_the_poll_limit_is_canceled() {
        let shop = Shop::start(20).await;
        shop.control("bulk-settings", json!({ "run_secs": 60 }))
            .await;
        let id = start(&shop.admin, INNER).await.unwrap();
        let polling = BulkPolling {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
            timeout: Duration::from_millis(400),
        };
        let err = wait(&shop.admin, &id, &polling).await.unwrap_err();
        assert!(matches!(err, ShopifyError::Bulk(_)), "{err}");
        assert_eq!(
            shop.operations().await,
            vec![(id.clone(), "RUNNING".into())]
        );

        abandon(&shop.admin, &id).await;

        assert_eq!(
            shop.settled_operations().await,
            vec![(id, "CANCELED".into())]
        );
    }

    #[tokio::test]
    async fn cancel_reports_an_operation_that_already_ended_or_never_was() {
        let shop = Shop::start(10).await;
        let id = start(&shop.admin, INNER).await.unwrap();
        let quick = BulkPolling {
            first_delay: Duration::from_millis(50),
            ..BulkPolling::default()
        };
        assert_eq!(
            wait(&shop.admin, &id, &quick).await.unwrap().status,
            "COMPLETED"
        );
        assert_eq!(
            cancel(&shop.admin, &id).await.unwrap(),
            Cancel::AlreadyEnded {
                status: "COMPLETED".into()
            }
        );
        assert_eq!(
            cancel(&shop.admin, "gid://shopify/BulkOperation/1")
                .await
                .unwrap(),
            Cancel::Unknown
        );
    }

    #[tokio::test]
    async fn a_running_export_of_ours_is_adopted_and_one_of_another_query_left_alone() {
        let shop = Shop::start(20).await;
        shop.control("bulk-settings", json!({ "run_secs": 60 }))
            .await;
        // Another document (an older deploy's, say): not ours to adopt or cancel.
        let other_query = format!("{INNER}# an older version of the export\n");
        let other = start(&shop.admin, &other_query).await.unwrap();
        let ours = start(&shop.admin, INNER).await.unwrap();
        // Wait for both to leave CREATED (the listing asks for running ones).
        for _ in 0..50 {
            if shop.operations().await.iter().all(|(_, s)| s == "RUNNING") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let export = start_or_adopt(&shop.admin, INNER).await.unwrap();

        assert_eq!(
            export,
            Export {
                id: ours.clone(),
                adopted: true
            }
        );
        assert_eq!(
            shop.operations().await,
            vec![(other, "RUNNING".into()), (ours, "RUNNING".into())],
            "nothing new started, nothing canceled"
        );
    }

    #[tokio::test]
    async fn with_nothing_of_ours_running_a_new_export_starts() {
        let shop = Shop::start(20).await;
        let export = start_or_adopt(&shop.admin, INNER).await.unwrap();
        assert!(!export.adopted);
        assert_eq!(shop.operations().await.len(), 1);
    }
}
