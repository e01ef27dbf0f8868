//! `make bench`, cold starts: every function's release bootstrap (target/lambda/<fn>/bootstrap,
//! built by `make build`) is started as Lambda starts it, against a minimal Lambda Runtime API
//! emulator in this process, with moto (AWS) and the sandbox (vendors) behind it through the
//! function's resolved template environment. Measured per start:
//!
//! * init: process spawn → its first `GET /runtime/invocation/next` (config, clients, TLS roots);
//! * first event: the event handed out → its `POST .../response` (or `/error`);
//! * peak RSS: the child's `VmHWM` read from /proc while it waits on its second `/next`.
//!
//! The hello-world `lambda-hello` bootstrap (same profile) is started in the same rounds as the
//! baseline. One unrecorded round first (page cache, moto's first responses), then medians over
//! `--starts` (default 21; a start takes milliseconds) rounds; one JSON line per function on stdout.
//!
//! Usage: `lambda-bench [--lambda-dir target/lambda] [--starts N]` with AWS_ENDPOINT_URL at moto.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use local_runner::{LocalStack, StackOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The typical event of each function (events/<binary>/<case>.json): the request or message it
/// handles most often.
const TYPICAL_EVENTS: &[(&str, &str, &str)] = &[
    (
        "ConnectKlaviyoFunction",
        "connect-klaviyo",
        "get-connections",
    ),
    ("ConnectShopifyFunction", "connect-shopify", "start-oauth"),
    ("CatalogSyncFunction", "catalog-sync", "sqs-sync-request"),
    (
        "PersonalizeFanoutFunction",
        "personalize-fanout",
        "start-run",
    ),
    (
        "PersonalizeWorkerFunction",
        "personalize-worker",
        "sqs-batch",
    ),
    (
        "DisconnectPurgeFunction",
        "disconnect-purge",
        "get-account-export",
    ),
];
const BASELINE: &str = "lambda-hello";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Report {
    FirstNext(Instant),
    Done { at: Instant, ok: bool, body: String },
    SecondNext,
    InitError(String),
}

struct Emulator {
    /// The event the next `/next` hands out (one per start).
    event: Mutex<Option<Value>>,
    reports: mpsc::UnboundedSender<Report>,
}

async fn next(State(emu): State<Arc<Emulator>>) -> axum::response::Response {
    let event = emu.event.lock().unwrap().take();
    let Some(event) = event else {
        // The function finished its event and asks for another: it is idle, as between
        // invocations on Lambda. Hold the request; the harness reads its RSS and stops it.
        let _ = emu.reports.send(Report::SecondNext);
        std::future::pending::<()>().await;
        unreachable!()
    };
    let _ = emu.reports.send(Report::FirstNext(Instant::now()));
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 300_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
    );
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
        ),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn response(
    State(emu): State<Arc<Emulator>>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    let _ = emu.reports.send(Report::Done {
        at: Instant::now(),
        ok: true,
        body,
    });
    StatusCode::ACCEPTED
}

async fn error(
    State(emu): State<Arc<Emulator>>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    let _ = emu.reports.send(Report::Done {
        at: Instant::now(),
        ok: false,
        body,
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(emu): State<Arc<Emulator>>, body: String) -> StatusCode {
    let _ = emu.reports.send(Report::InitError(body));
    StatusCode::ACCEPTED
}

#[derive(Default)]
struct Samples {
    init_ms: Vec<f64>,
    first_event_ms: Vec<f64>,
    rss_mb: Vec<f64>,
    outcome: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

fn vm_hwm_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Harness {
    emu: Arc<Emulator>,
    reports: mpsc::UnboundedReceiver<Report>,
    runtime_api: String,
}

impl Harness {
    async fn wait(&mut self) -> Result<Report, String> {
        tokio::time::timeout(STEP_TIMEOUT, self.reports.recv())
            .await
            .map_err(|_| "timed out".to_owned())?
            .ok_or_else(|| "emulator stopped".to_owned())
    }

    /// One cold start of `bootstrap` with `env`, handed `event`.
    async fn start(
        &mut self,
        bootstrap: &PathBuf,
        env: &HashMap<String, String>,
        event: &Value,
        samples: &mut Samples,
    ) -> Result<(), String> {
        while self.reports.try_recv().is_ok() {}
        *self.emu.event.lock().unwrap() = Some(event.clone());
        let mut command = Command::new(bootstrap);
        command
            .envs(env)
            .env("AWS_LAMBDA_RUNTIME_API", &self.runtime_api)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let spawned = Instant::now();
        let mut child: Child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bootstrap.display()))?;
        let result = async {
            let first = match self.wait().await? {
                Report::FirstNext(at) => at,
                Report::InitError(body) => return Err(format!("init error: {body}")),
                other => return Err(format!("unexpected {other:?}")),
            };
            let (done, ok, body) = match self.wait().await? {
                Report::Done { at, ok, body } => (at, ok, body),
                other => return Err(format!("unexpected {other:?}")),
            };
            match self.wait().await? {
                Report::SecondNext => {}
                other => return Err(format!("unexpected {other:?}")),
            }
            samples.rss_mb.push(vm_hwm_mb(child.id()));
            samples
                .init_ms
                .push((first - spawned).as_secs_f64() * 1000.0);
            samples
                .first_event_ms
                .push((done - first).as_secs_f64() * 1000.0);
            samples.outcome = outcome(ok, &body);
            Ok(())
        }
        .await;
        let _ = child.kill();
        let _ = child.wait();
        result
    }
}

/// What the event produced, briefly: an HTTP status, a batch's failure count, or the error type.
fn outcome(ok: bool, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if !ok {
        return format!("error: {}", v["errorType"].as_str().unwrap_or("?"));
    }
    if let Some(status) = v.get("statusCode") {
        return format!("http {status}");
    }
    if let Some(failures) = v.get("batchItemFailures").and_then(Value::as_array) {
        return format!("sqs {} failed", failures.len());
    }
    "ok".into()
}

/// What Lambda sets for every runtime process.
fn lambda_env(name: &str, memory_mb: u64) -> HashMap<String, String> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]bench".to_owned(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn memory_of(template: &local_runner::Template, id: &str) -> u64 {
    let props = &template.resources[id].properties;
    props
        .get("MemorySize")
        .and_then(serde_yaml::Value::as_u64)
        .or_else(|| template.raw["Globals"]["Function"]["MemorySize"].as_u64())
        .unwrap_or(128)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut lambda_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/lambda"));
    let mut starts = 21usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--lambda-dir" => {
                lambda_dir = PathBuf::from(args.next().ok_or("--lambda-dir needs a value")?)
            }
            "--starts" => starts = args.next().ok_or("--starts needs a value")?.parse()?,
            other => {
                return Err(format!(
                    "unknown flag {other}; usage: lambda-bench [--lambda-dir DIR] [--starts N]"
                )
                .into())
            }
        }
    }
    let events_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events"));

    let stack = LocalStack::start(StackOptions {
        run_queues: false,
        ..StackOptions::default()
    })
    .await?;

    let (tx, rx) = mpsc::unbounded_channel();
    let emu = Arc::new(Emulator {
        event: Mutex::new(None),
        reports: tx,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(emu.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let runtime_api = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut harness = Harness {
        emu,
        reports: rx,
        runtime_api,
    };

    // The bootstrap's environment: this process's (AWS endpoint and fake credentials for moto),
    // Lambda's own variables, and the function's resolved template environment.
    let mut subjects: Vec<(String, PathBuf, HashMap<String, String>, Value)> = Vec::new();
    for (id, binary, case) in TYPICAL_EVENTS {
        let bootstrap = lambda_dir.join(binary).join("bootstrap");
        if !bootstrap.exists() {
            return Err(
                format!("{} is missing: run `make build` first", bootstrap.display()).into(),
            );
        }
        let mut env = lambda_env(binary, memory_of(&stack.template, id));
        env.extend(stack.function_env(id).clone());
        let text = std::fs::read_to_string(events_dir.join(binary).join(format!("{case}.json")))?;
        subjects.push((
            binary.to_string(),
            bootstrap,
            env,
            serde_json::from_str(&text)?,
        ));
    }
    let baseline = lambda_dir.join(BASELINE).join("bootstrap");
    if !baseline.exists() {
        return Err(format!("{} is missing: run `make build` first", baseline.display()).into());
    }
    subjects.push((
        BASELINE.into(),
        baseline,
        lambda_env(BASELINE, 128),
        json!({ "hello": "world" }),
    ));

    let mut samples: HashMap<String, Samples> = HashMap::new();
    // Rounds interleave the functions and the baseline, so drift on a shared machine hits all.
    for (name, bootstrap, env, event) in &subjects {
        let mut unrecorded = Samples::default();
        if let Err(e) = harness.start(bootstrap, env, event, &mut unrecorded).await {
            eprintln!("{name} (warm-up): {e}");
        }
    }
    for _round in 0..starts {
        for (name, bootstrap, env, event) in &subjects {
            let s = samples.entry(name.clone()).or_default();
            if let Err(e) = harness.start(bootstrap, env, event, s).await {
                eprintln!("{name}: {e}");
            }
        }
    }

    let base = &samples[BASELINE];
    let base_init = median(&base.init_ms);
    let size_mb = |p: &PathBuf| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / (1024.0 * 1024.0))
            .unwrap_or(f64::NAN)
    };
    let base_size = size_mb(&subjects.last().unwrap().1);
    let base_rss = median(&base.rss_mb);
    for (name, bootstrap, _, _) in &subjects[..subjects.len() - 1] {
        let s = &samples[name];
        let init = median(&s.init_ms);
        let line = json!({
            "bench": "lambda_cold_start",
            "function": name,
            "binary_mb": round2(size_mb(bootstrap)),
            "init_ms": round2(init),
            "baseline_init_ms": round2(base_init),
            "init_ratio": round2(init / base_init),
            "first_event_ms": round2(median(&s.first_event_ms)),
            "peak_rss_mb": round2(median(&s.rss_mb)),
            "baseline_binary_mb": round2(base_size),
            "baseline_peak_rss_mb": round2(base_rss),
            "starts": s.init_ms.len(),
            "event_outcome": s.outcome,
        });
        println!("{line}");
    }
    stack.shutdown().await;
    Ok(())
}
