//! What a leave-no-trace check looks at: every item of every table the template declares, every
//! Secrets Manager secret of the stack, every message waiting in every queue and DLQ, and every
//! log line the functions wrote (captured by a tracing subscriber installed before the stack).

#![allow(dead_code)]

use e2e::World;
use local_runner::ResourceKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the system holds at one moment, as text per place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// (table logical id, item as text), sorted.
    pub items: Vec<(String, String)>,
    /// (secret name, value).
    pub secrets: Vec<(String, String)>,
    /// (queue logical id, body).
    pub messages: Vec<(String, String)>,
}

impl Snapshot {
    pub fn table(&self, logical_id: &str) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(t, _)| t == logical_id)
            .map(|(_, i)| i.as_str())
            .collect()
    }

    /// Stored state only (tables, secrets, queues): what must be empty of a deleted merchant.
    pub fn places(&self) -> impl Iterator<Item = (String, &str)> {
        self.items
            .iter()
            .map(|(t, i)| (format!("table {t}"), i.as_str()))
            .chain(
                self.secrets
                    .iter()
                    .map(|(n, _)| (format!("secret {n} (name)"), n.as_str()))
                    .chain(
                        self.secrets
                            .iter()
                            .map(|(n, v)| (format!("secret {n} (value)"), v.as_str())),
                    ),
            )
            .chain(
                self.messages
                    .iter()
                    .map(|(q, b)| (format!("queue {q}"), b.as_str())),
            )
    }
}

pub async fn snapshot(world: &World) -> Snapshot {
    let stack = &world.stack;
    let mut snap = Snapshot::default();
    let ddb = stack.aws.dynamodb();
    for (id, physical) in stack
        .resources
        .iter()
        .filter(|(_, p)| p.kind == ResourceKind::Table)
    {
        let mut start = None;
        loop {
            let out = ddb
                .scan()
                .table_name(&physical.name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            for item in out.items.unwrap_or_default() {
                snap.items.push((
                    id.to_owned(),
                    canonical(&aws_sdk_dynamodb::types::AttributeValue::M(item)),
                ));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
    }
    snap.items.sort();

    let sm = stack.aws.secrets();
    let mut token = None;
    loop {
        let out = sm
            .list_secrets()
            .set_next_token(token.take())
            .max_results(100)
            .send()
            .await
            .expect("list secrets");
        for entry in out.secret_list() {
            let name = entry.name().unwrap_or_default().to_owned();
            if !name.starts_with(&stack.prefix) {
                continue; // another test's stack in the same moto
            }
            let value = sm
                .get_secret_value()
                .secret_id(&name)
                .send()
                .await
                .ok()
                .and_then(|o| o.secret_string)
                .unwrap_or_default();
            snap.secrets.push((name, value));
        }
        match out.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    snap.secrets.sort();

    let sqs = stack.aws.sqs();
    for (id, physical) in stack
        .resources
        .iter()
        .filter(|(_, p)| p.kind == ResourceKind::Queue)
    {
        let url = physical.url.clone().unwrap_or_default();
        let mut seen = BTreeMap::new();
        for _ in 0..3 {
            // Peek: visibility 0 leaves every message where it was.
            let out = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            for m in out.messages() {
                seen.insert(
                    m.message_id().unwrap_or_default().to_owned(),
                    m.body().unwrap_or_default().to_owned(),
                );
            }
        }
        snap.messages
            .extend(seen.into_values().map(|b| (id.to_owned(), b)));
    }
    snap.messages.sort();
    snap
}

/// An item as text with every map's keys sorted, so equal items print equally.
fn canonical(value: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::M(map) => {
            let sorted: BTreeMap<_, _> =
                map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            format!("{sorted:?}")
        }
        A::L(items) => format!("{:?}", items.iter().map(canonical).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

/// The log capture: every line any handler (or the runner) logged in this test process.
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        // Our crates at debug, everything else at the deployed default (info). The sandbox plays
        // the vendors: its logs are theirs, not ours.
        let filter = tracing_subscriber::EnvFilter::new(
            "info,sandbox=off,shared=debug,connect_shopify=debug,connect_klaviyo=debug,catalog_sync=debug,\
             disconnect_purge=debug,personalize_fanout=debug,personalize_worker=debug,local_runner=debug",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
    .clone()
}

pub fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Email addresses in `text` (local@domain.tld).
pub fn emails(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut found = Vec::new();
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'@' {
            continue;
        }
        let start = (0..i).rev().take_while(|&j| local(bytes[j])).last();
        let end = (i + 1..bytes.len())
            .take_while(|&j| domain(bytes[j]))
            .last();
        if let (Some(s), Some(e)) = (start, end) {
            let candidate = &text[s..=e];
            let dom = &text[i + 1..=e];
            if dom.contains('.')
                && dom.rsplit('.').next().is_some_and(|tld| {
                    tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
                })
            {
                found.push(candidate.to_owned());
            }
        }
    }
    found
}

/// Phone numbers in international form (`+` then at least 9 digits, separators allowed).
pub fn phones(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'+' || !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let run: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || "-. ()".contains(*c))
            .collect();
        if run.chars().filter(char::is_ascii_digit).count() >= 9 {
            found.push(format!("+{}", run.trim_end()));
        }
    }
    found
}

/// Vendor credentials by their shapes: Shopify access/refresh tokens and Klaviyo private keys.
pub fn credentials(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["shpat_", "shprt_", "shpca_", "shpss_", "pk_"] {
        for (i, _) in text.match_indices(prefix) {
            let boundary = i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric();
            let tail: String = text[i + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if boundary && tail.len() >= 16 {
                found.push(format!("{prefix}{}…", &tail[..4]));
            }
        }
    }
    found
}

/// The personal data and credentials no place but Secrets Manager may hold (credentials only
/// there), plus the literal strings a step put in play (customer names, generated copy...).
pub fn assert_no_leaks(step: &str, snap: &Snapshot, logs: &str, forbidden: &[&str]) {
    let mut problems = Vec::new();
    let mut check = |place: &str, text: &str, secrets_allowed: bool| {
        for e in emails(text) {
            problems.push(format!("{place}: email address {e}"));
        }
        for p in phones(text) {
            problems.push(format!("{place}: phone number {p}"));
        }
        if !secrets_allowed {
            for c in credentials(text) {
                problems.push(format!("{place}: credential {c}"));
            }
        }
        for f in forbidden {
            if text.contains(f) {
                problems.push(format!("{place}: {f:?}"));
            }
        }
    };
    for (table, item) in &snap.items {
        check(&format!("table {table}"), item, false);
    }
    for (name, value) in &snap.secrets {
        check(&format!("secret {name}"), value, true);
        check(&format!("secret name {name}"), name, false);
    }
    for (queue, body) in &snap.messages {
        check(&format!("queue {queue}"), body, false);
    }
    for line in logs.lines() {
        check("log", line, false);
    }
    assert!(
        problems.is_empty(),
        "after {step}, found what must not be there:\n{}",
        problems.join("\n")
    );
}

/// After deletion: nothing stored anywhere names the merchant or the shop.
pub fn assert_nothing_left(step: &str, snap: &Snapshot, needles: &[&str]) {
    let mut problems = Vec::new();
    for (place, text) in snap.places() {
        for needle in needles {
            if text.contains(needle) {
                problems.push(format!(
                    "{place}: {needle:?} in {}",
                    &text[..text.len().min(300)]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "after {step}, something is left:\n{}",
        problems.join("\n")
    );
}

/// One Shopify webhook delivery, built and signed by the sandbox, sent as raw bytes.
pub struct Delivery {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Delivery {
    pub async fn from_sandbox(world: &World, shop: &str, request: serde_json::Value) -> Delivery {
        let prepared = world
            .sandbox(
                reqwest::Method::POST,
                &format!("/_sandbox/shopify/{shop}/webhooks"),
                request,
            )
            .await;
        let body = prepared["body"]
            .as_str()
            .expect("the sandbox returns the body")
            .as_bytes()
            .to_vec();
        let headers = prepared["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        Delivery { body, headers }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Replace the body and sign it again with the app secret (a delivery Shopify really signed).
    pub fn resign(&mut self, body: Vec<u8>) {
        let signature = sandbox::shopify_webhook_hmac(e2e::SANDBOX_CLIENT_SECRET, &body);
        self.body = body;
        self.set_header("X-Shopify-Hmac-Sha256", &signature);
    }

    pub async fn send(&self, world: &World) -> e2e::Response {
        let mut req = world
            .http
            .post(world.url("/webhooks/shopify"))
            .body(self.body.clone());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.expect("the local API answers");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.unwrap_or_default();
        e2e::Response {
            status,
            content_type,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            location: None,
            set_cookies: Vec::new(),
        }
    }
}

/// A fresh uuid-like event id (Shopify's are UUIDs).
pub fn event_id() -> String {
    let a: u128 = rand_u128();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    let a = h.finish() as u128;
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a as u64);
    (a << 64) | h2.finish() as u128
}
