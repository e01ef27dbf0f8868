//! Least privilege, checked against the code rather than a hand-kept list.
//!
//! For every function in template.yaml this test derives the AWS actions its code can call and
//! the resources they touch, then compares them with the function's inline policy:
//!
//! * an allowed action or resource with a wildcard fails, except the documented ones
//!   ([`WILDCARD_EXCEPTIONS`]);
//! * an action the code calls that no Allow statement grants on the right resource fails;
//! * an allowed (action, resource) that no code path needs fails too.
//!
//! "What the code calls" comes from the sources: the function's crate (and the workspace Lambda
//! crates it depends on) calls methods of the shared AWS adapters (`AppStore`, `RunStore`,
//! `SecretStore`, `Queue`, `AwsTokenVault`, `BedrockClient`...); each adapter method's body is
//! scanned for SDK operations (`.get_item()`, `.transact_write_items()`, `.converse()`...) and for
//! calls to other adapter methods (`self.get(..)`, `self.store.try_lock(..)`), followed
//! transitively. The SDK operation → IAM action table ([`SDK_OPERATIONS`]) and the adapter →
//! resource table ([`ADAPTERS`]) are the only hand-written knowledge.
//!
//! Limits (deliberate): method names are matched by name within the adapter types a crate uses
//! (over-approximation: a `.get(` on a map counts as `SecretStore::get` in a crate that uses a
//! SecretStore), and Lambda crates are expected to reach AWS only through the shared adapters.

use local_runner::intrinsics::{intrinsic, ref_target};
use local_runner::Template;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// SDK operation (method on an SDK client) → the IAM action it needs.
/// `transact_write_items` needs no action of its own: IAM checks each item's action, which
/// [`TRANSACT_ITEMS`] derives from the item builders in the same adapter.
const SDK_OPERATIONS: &[(&str, &str)] = &[
    ("get_item", "dynamodb:GetItem"),
    ("put_item", "dynamodb:PutItem"),
    ("update_item", "dynamodb:UpdateItem"),
    ("delete_item", "dynamodb:DeleteItem"),
    ("query", "dynamodb:Query"),
    ("scan", "dynamodb:Scan"),
    ("batch_write_item", "dynamodb:BatchWriteItem"),
    ("batch_get_item", "dynamodb:BatchGetItem"),
    ("transact_get_items", "dynamodb:GetItem"),
    ("describe_table", "dynamodb:DescribeTable"),
    ("send_message", "sqs:SendMessage"),
    ("send_message_batch", "sqs:SendMessage"),
    ("receive_message", "sqs:ReceiveMessage"),
    ("delete_message", "sqs:DeleteMessage"),
    ("get_queue_attributes", "sqs:GetQueueAttributes"),
    ("get_secret_value", "secretsmanager:GetSecretValue"),
    (
        "batch_get_secret_value",
        "secretsmanager:BatchGetSecretValue",
    ),
    ("create_secret", "secretsmanager:CreateSecret"),
    ("put_secret_value", "secretsmanager:PutSecretValue"),
    ("update_secret", "secretsmanager:UpdateSecret"),
    ("describe_secret", "secretsmanager:DescribeSecret"),
    ("delete_secret", "secretsmanager:DeleteSecret"),
    ("list_secrets", "secretsmanager:ListSecrets"),
    ("converse", "bedrock:InvokeModel"),
    ("apply_guardrail", "bedrock:ApplyGuardrail"),
    ("invoke_model", "bedrock:InvokeModel"),
    ("converse_stream", "bedrock:InvokeModelWithResponseStream"),
    (
        "invoke_model_with_response_stream",
        "bedrock:InvokeModelWithResponseStream",
    ),
    ("admin_delete_user", "cognito-idp:AdminDeleteUser"),
    ("admin_get_user", "cognito-idp:AdminGetUser"),
    ("admin_create_user", "cognito-idp:AdminCreateUser"),
    (
        "admin_user_global_sign_out",
        "cognito-idp:AdminUserGlobalSignOut",
    ),
    ("list_users", "cognito-idp:ListUsers"),
];

/// Items of a DynamoDB transaction, by builder (`Update::builder()` ...).
const TRANSACT_ITEMS: &[(&str, &str)] = &[
    ("Update", "dynamodb:UpdateItem"),
    ("Put", "dynamodb:PutItem"),
    ("Delete", "dynamodb:DeleteItem"),
    ("ConditionCheck", "dynamodb:ConditionCheckItem"),
];

/// What an adapter type talks to.
#[derive(Clone, Copy, Debug)]
enum Binding {
    /// The resource named by this environment variable (`APP_TABLE: !Ref AppTable`).
    Env(&'static str),
    /// The queues whose `config.*_queue_url` the crate reads (one `Queue` type, many queues).
    QueuesReadByCrate,
    /// Merchant secrets, named `{SECRET_PREFIX}/{merchant}/{vendor}` at run time.
    MerchantSecrets,
    /// The Bedrock inference profile of `BEDROCK_MODEL_ID` (and the models it routes to).
    InferenceProfile,
    /// Holds other adapters and calls them; no resource of its own.
    Delegates,
}

/// The shared AWS adapter types and what each talks to.
const ADAPTERS: &[(&str, Binding)] = &[
    ("AppStore", Binding::Env("APP_TABLE")),
    ("DynamoSlots", Binding::Env("APP_TABLE")),
    ("RunStore", Binding::Env("APP_TABLE")),
    ("FlowStore", Binding::Env("APP_TABLE")),
    ("CatalogStore", Binding::Env("CATALOG_TABLE")),
    ("AuditLog", Binding::Env("AUDIT_TABLE")),
    ("UserDirectory", Binding::Env("USER_POOL_ID")),
    ("WorkQueues", Binding::QueuesReadByCrate),
    ("Queue", Binding::QueuesReadByCrate),
    ("SecretStore", Binding::MerchantSecrets),
    ("BedrockClient", Binding::InferenceProfile),
    ("AwsTokenVault", Binding::Delegates),
];

/// Adapter sources: every file of `crates/shared/src/aws/` plus these.
const EXTRA_ADAPTER_FILES: &[&str] = &[
    "crates/shared/src/bedrock/mod.rs",
    "crates/shared/src/bedrock/guardrail.rs",
];

/// Wildcard resources allowed, each for a documented reason (substring of the `!Sub` text).
const WILDCARD_EXCEPTIONS: &[(&str, &str)] = &[
    (
        ":secret:${SECRET_PREFIX}/*",
        "merchant secrets are created at run time as {prefix}/{merchant}/{vendor}",
    ),
    (
        ":bedrock:*::foundation-model/anthropic.claude-",
        "a cross-region inference profile routes to the foundation model in any region of its geography",
    ),
];

// ---------------------------------------------------------------------------------------------
// What a policy grants

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    sid: String,
    action: String,
    /// `X` for `!GetAtt X.Arn` / `!Ref X`, else the (`!Sub`) text.
    resource: String,
}

fn resource_text(v: &Value) -> String {
    if let Some(id) = ref_target(v) {
        return id;
    }
    match intrinsic(v) {
        Some((name, arg)) if name == "Sub" => match arg {
            Value::String(s) => s.clone(),
            Value::Sequence(parts) => parts
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => format!("{arg:?}"),
        },
        _ => v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{v:?}")),
    }
}

fn strings(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Allow grants of one function; errors for anything the test cannot read as inline statements.
fn grants(function: &str, properties: &Value, problems: &mut Vec<String>) -> Vec<Grant> {
    let mut out = Vec::new();
    let Some(policies) = properties.get("Policies") else {
        return out;
    };
    for policy in strings(policies) {
        let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) else {
            problems.push(format!(
                "{function}: policy {policy:?} is not an inline statement list (managed policies and SAM policy templates cannot be checked)"
            ));
            continue;
        };
        for st in statements {
            let sid = st
                .get("Sid")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let effect = st.get("Effect").and_then(Value::as_str).unwrap_or_default();
            if st.get("NotAction").is_some() || st.get("NotResource").is_some() {
                problems.push(format!(
                    "{function}/{sid}: NotAction/NotResource are not allowed"
                ));
            }
            let actions: Vec<String> = st
                .get("Action")
                .map(|a| {
                    strings(a)
                        .into_iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let resources: Vec<String> = st
                .get("Resource")
                .map(|r| strings(r).into_iter().map(resource_text).collect())
                .unwrap_or_default();
            if effect != "Allow" {
                continue;
            }
            for action in &actions {
                for resource in &resources {
                    out.push(Grant {
                        sid: sid.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What the code needs

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A stack resource by logical id (a table, queue, user pool, secret, key).
    Logical(String),
    /// `arn:...:secret:{prefix}/*`.
    SecretPrefix(String),
    /// `arn:...:secret:${Param}-??????` for a secret whose name is a template parameter.
    SecretParameter(String),
    /// `arn:...:inference-profile/${Param}`.
    InferenceProfile(String),
    /// `arn:...:guardrail/${Param}`.
    Guardrail(String),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    action: String,
    target: Target,
    /// Why: `AppStore::klaviyo -> .get_item()`.
    via: String,
}

fn grant_covers(grant: &Grant, need: &Need) -> bool {
    grant.action == need.action
        && match &need.target {
            Target::Logical(id) => {
                grant.resource == *id
                    || grant.resource.contains(&format!("${{{id}.Arn}}"))
                    || grant.resource.contains(&format!("${{{id}}}"))
            }
            Target::SecretPrefix(prefix) => {
                grant.resource.ends_with(&format!(":secret:{prefix}/*"))
            }
            Target::SecretParameter(param) => {
                grant.resource.contains(&format!(":secret:${{{param}}}"))
            }
            Target::InferenceProfile(param) => {
                grant
                    .resource
                    .contains(&format!(":inference-profile/${{{param}}}"))
                    || grant.resource.contains(":foundation-model/")
            }
            Target::Guardrail(param) => {
                grant.resource.contains(&format!(":guardrail/${{{param}}}"))
            }
        }
}

// ---------------------------------------------------------------------------------------------
// A small Rust reader: enough to find impl blocks, fn bodies and calls in source text.

/// Source without comments, string or char literal contents, and `#[cfg(test)]` items.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // raw string r"..." / r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            let end = if b.get(i + 1) == Some(&b'\\') {
                (i + 2..b.len()).find(|&k| b[k] == b'\'')
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    // Test modules are not part of the deployed function.
    match out.find("#[cfg(test)]") {
        Some(pos) => out[..pos].to_owned(),
        None => out,
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Dot,
    Path,
    Open,
    Other(char),
}

fn tokens(text: &str) -> Vec<Tok> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(text[start..i].to_owned()));
            continue;
        }
        match c {
            b'.' => out.push(Tok::Dot),
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push(Tok::Path);
                i += 1;
            }
            b'(' => out.push(Tok::Open),
            c if c.is_ascii_whitespace() => {}
            c => out.push(Tok::Other(c as char)),
        }
        i += 1;
    }
    out
}

/// One call in a body: `recv.a.b.name(` gives chain [recv, a, b]; `Type::name(` gives path
/// [Type]; `name(` gives neither.
#[derive(Debug)]
struct Call {
    name: String,
    chain: Vec<String>,
    path: Vec<String>,
    method: bool,
}

fn calls(body: &str) -> Vec<Call> {
    let toks = tokens(body);
    let mut out = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        if *t != Tok::Open || k == 0 {
            continue;
        }
        // Skip a turbofish: name::<T>(
        let mut n = k - 1;
        if toks[n] == Tok::Other('>') {
            let mut depth = 0;
            loop {
                match toks[n] {
                    Tok::Other('>') => depth += 1,
                    Tok::Other('<') => depth -= 1,
                    _ => {}
                }
                if depth == 0 || n == 0 {
                    break;
                }
                n -= 1;
            }
            if n < 2 || toks[n - 1] != Tok::Path {
                continue;
            }
            n -= 2;
        }
        let Tok::Ident(name) = &toks[n] else { continue };
        let mut call = Call {
            name: name.clone(),
            chain: Vec::new(),
            path: Vec::new(),
            method: false,
        };
        if n >= 1 && toks[n - 1] == Tok::Dot {
            call.method = true;
            let mut m = n - 1;
            while m >= 1 {
                if let Tok::Ident(id) = &toks[m - 1] {
                    call.chain.insert(0, id.clone());
                    if m >= 2 && toks[m - 2] == Tok::Dot {
                        m -= 2;
                        continue;
                    }
                }
                break;
            }
        } else if n >= 2 && toks[n - 1] == Tok::Path {
            if let Tok::Ident(id) = &toks[n - 2] {
                call.path.push(id.clone());
            }
        }
        out.push(call);
    }
    out
}

#[derive(Debug)]
struct FnDef {
    owner: Option<String>,
    name: String,
    public: bool,
    /// Declared in `impl Trait for Owner`: callable through the trait from anywhere.
    trait_impl: bool,
    body: String,
    file: String,
}

fn matching_brace(b: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    b.len() - 1
}

fn word_at(text: &str, pos: usize, word: &str) -> bool {
    let b = text.as_bytes();
    text[pos..].starts_with(word)
        && (pos == 0 || !is_ident(b[pos - 1]))
        && b.get(pos + word.len()).is_none_or(|c| !is_ident(*c))
}

/// Functions of a stripped file: top-level fns and fns inside impl blocks.
fn functions(file: &str, text: &str) -> (Vec<FnDef>, BTreeMap<String, BTreeMap<String, String>>) {
    let b = text.as_bytes();
    let mut fns = Vec::new();
    let mut structs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut i = 0;
    while i < b.len() {
        if word_at(text, i, "impl") {
            let Some(open) = text[i..].find('{').map(|o| i + o) else {
                break;
            };
            let header = &text[i + 4..open];
            let (owner, trait_impl) = impl_owner(header);
            let close = matching_brace(b, open);
            let inner = &text[open + 1..close];
            for (name, public, body) in fns_in(inner) {
                fns.push(FnDef {
                    owner: Some(owner.clone()),
                    name,
                    public,
                    trait_impl,
                    body,
                    file: file.to_owned(),
                });
            }
            i = close + 1;
        } else if word_at(text, i, "struct") {
            let rest = &text[i + 6..];
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let semi = rest.find(';').unwrap_or(usize::MAX);
            match rest.find('{') {
                Some(o) if o < semi => {
                    let open = i + 6 + o;
                    let close = matching_brace(b, open);
                    let fields = text[open + 1..close]
                        .split(',')
                        .filter_map(|f| {
                            let (n, ty) = f.split_once(':')?;
                            let n = n.split_whitespace().last()?.to_owned();
                            Some((n, ty.trim().to_owned()))
                        })
                        .collect();
                    structs.insert(name, fields);
                    i = close + 1;
                }
                _ => i += 6,
            }
        } else if word_at(text, i, "fn") {
            let public = text[..i].trim_end().ends_with("pub")
                || text[..i].trim_end().ends_with("pub async")
                || text[..i].trim_end().ends_with(')');
            let (name, body, end) = fn_at(text, i);
            fns.push(FnDef {
                owner: None,
                name,
                public,
                trait_impl: false,
                body,
                file: file.to_owned(),
            });
            i = end;
        } else if word_at(text, i, "mod")
            && text[i..]
                .find('{')
                .is_some_and(|o| text[i..i + o].find(';').is_none())
        {
            // inline module: its items are read as if top level
            i += 3;
        } else {
            i += 1;
        }
    }
    (fns, structs)
}

/// `<T> Trait for Owner<U>` or ` Owner` → (Owner, is_trait_impl).
fn impl_owner(header: &str) -> (String, bool) {
    let mut h = header.trim();
    if h.starts_with('<') {
        let mut depth = 0;
        for (k, c) in h.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        h = h[k + 1..].trim();
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let (ty, trait_impl) = match h.find(" for ") {
        Some(p) => (&h[p + 5..], true),
        None => (h, false),
    };
    let ty = ty
        .split('<')
        .next()
        .unwrap_or(ty)
        .split(" where")
        .next()
        .unwrap_or(ty)
        .trim();
    (ty.rsplit("::").next().unwrap_or(ty).to_owned(), trait_impl)
}

/// `fn name ... { body }` starting at `pos`: (name, body, index after body).
fn fn_at(text: &str, pos: usize) -> (String, String, usize) {
    let b = text.as_bytes();
    let rest = &text[pos + 2..];
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let brace = rest.find('{');
    let semi = rest.find(';');
    match (brace, semi) {
        (Some(o), s) if s.is_none_or(|s| o < s) => {
            let open = pos + 2 + o;
            let close = matching_brace(b, open);
            (name, text[open + 1..close].to_owned(), close + 1)
        }
        (_, Some(s)) => (name, String::new(), pos + 2 + s + 1),
        _ => (name, String::new(), text.len()),
    }
}

fn fns_in(inner: &str) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        if word_at(inner, i, "fn") {
            let before = inner[..i].trim_end();
            let before = before
                .strip_suffix("async")
                .map(str::trim_end)
                .unwrap_or(before);
            let public = before.ends_with("pub") || before.ends_with("pub(crate)");
            let (name, body, end) = fn_at(inner, i);
            out.push((name, public, body));
            i = end;
        } else {
            i += inner[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The analysis

/// The sources the analysis reads, by path relative to the repository root.
type Sources = BTreeMap<String, String>;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn load_sources(root: &Path, crates: &[String]) -> Sources {
    let mut files = Vec::new();
    rust_files(&root.join("crates/shared/src/aws"), &mut files);
    for extra in EXTRA_ADAPTER_FILES {
        files.push(root.join(extra));
    }
    for krate in crates {
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
    }
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, text)
        })
        .collect()
}

fn is_adapter_file(path: &str) -> bool {
    path.starts_with("crates/shared/src/aws/") || EXTRA_ADAPTER_FILES.contains(&path)
}

/// (owner type, action) pairs an adapter function reaches, transitively.
struct Adapters {
    fns: Vec<FnDef>,
    fields: BTreeMap<String, BTreeMap<String, String>>,
}

/// (owner, action or `config:field`, via)
type Reach = BTreeSet<(String, String, String)>;
const CONFIG_READ: &str = "config:";

impl Adapters {
    fn read(sources: &Sources) -> Self {
        let mut fns = Vec::new();
        let mut fields = BTreeMap::new();
        for (path, text) in sources.iter().filter(|(p, _)| is_adapter_file(p)) {
            let (f, s) = functions(path, &strip(text));
            fns.extend(f);
            fields.extend(s);
        }
        Adapters { fns, fields }
    }

    fn adapter_of_type(ty: &str) -> Option<&'static str> {
        ADAPTERS.iter().map(|(name, _)| *name).find(|name| {
            ty.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == *name)
        })
    }

    fn reach(
        &self,
        owner: &str,
        name: &str,
        seen: &mut BTreeSet<(String, String)>,
        out: &mut Reach,
    ) {
        if !seen.insert((owner.to_owned(), name.to_owned())) {
            return;
        }
        for f in self
            .fns
            .iter()
            .filter(|f| f.owner.as_deref() == Some(owner) && f.name == name)
        {
            self.reach_body(owner, f, seen, out);
        }
    }

    fn reach_body(
        &self,
        owner: &str,
        f: &FnDef,
        seen: &mut BTreeSet<(String, String)>,
        out: &mut Reach,
    ) {
        // Configuration read inside the adapter (e.g. `config.shopify_client_secret_id`).
        let toks = tokens(&f.body);
        for w in toks.windows(3) {
            if let [Tok::Ident(c), Tok::Dot, Tok::Ident(field)] = w {
                if c == "config" {
                    out.insert((
                        owner.to_owned(),
                        format!("{CONFIG_READ}{field}"),
                        format!("{owner}::{}", f.name),
                    ));
                }
            }
        }
        for call in calls(&f.body) {
            let via = format!("{owner}::{}", f.name);
            if call.method {
                if let Some((_, action)) = SDK_OPERATIONS.iter().find(|(op, _)| *op == call.name) {
                    out.insert((
                        owner.to_owned(),
                        action.to_string(),
                        format!("{via} -> .{}()", call.name),
                    ));
                    continue;
                }
            }
            if call.path.len() == 1 && call.name == "builder" {
                if let Some((_, action)) = TRANSACT_ITEMS
                    .iter()
                    .find(|(item, _)| *item == call.path[0])
                {
                    out.insert((
                        owner.to_owned(),
                        action.to_string(),
                        format!("{via} -> {}::builder() (transaction item)", call.path[0]),
                    ));
                    continue;
                }
            }
            let chain: Vec<&str> = call.chain.iter().map(String::as_str).collect();
            match (
                call.method,
                chain.as_slice(),
                call.path.first().map(String::as_str),
            ) {
                (true, ["self"], _) | (false, [], Some("Self")) => {
                    self.reach(owner, &call.name, seen, out)
                }
                (true, ["self", field], _) => {
                    if let Some(ty) = self
                        .fields
                        .get(owner)
                        .and_then(|fs| fs.get(*field))
                        .and_then(|t| Self::adapter_of_type(t))
                    {
                        self.reach(ty, &call.name, seen, out);
                    }
                }
                (false, [], Some(ty)) if ADAPTERS.iter().any(|(a, _)| *a == ty) => {
                    self.reach(ty, &call.name, seen, out)
                }
                (false, [], None) => {
                    // a free helper fn of the same file
                    for helper in self
                        .fns
                        .iter()
                        .filter(|h| h.owner.is_none() && h.name == call.name && h.file == f.file)
                    {
                        if seen.insert((format!("fn@{}", helper.file), helper.name.clone())) {
                            self.reach_body(owner, helper, seen, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Everything one function's code reaches, as needs against template targets.
fn needs_of(
    function: &str,
    template: &Template,
    env: &BTreeMap<String, Value>,
    crates: &[String],
    sources: &Sources,
    adapters: &Adapters,
    problems: &mut Vec<String>,
) -> BTreeSet<Need> {
    let crate_text: String = sources
        .iter()
        .filter(|(p, _)| {
            crates
                .iter()
                .any(|c| p.starts_with(&format!("crates/{c}/src/")))
        })
        .map(|(_, t)| strip(t))
        .collect::<Vec<_>>()
        .join("\n");
    let crate_calls = calls(&crate_text);
    let crate_words: BTreeSet<&str> = crate_text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .collect();

    let env_target = |var: &str| -> Option<String> { env.get(var).and_then(ref_target) };
    let mut needs = BTreeSet::new();
    // Config fields read by the crate or by the adapter code it reaches.
    let mut config_reads: BTreeSet<String> = BTreeSet::new();
    for (ty, binding) in ADAPTERS {
        if !crate_words.contains(ty) {
            continue;
        }
        // Entry points: public methods called by name from the crate, and trait methods (called
        // through the trait object by shared code).
        let mut reach = Reach::new();
        let mut seen = BTreeSet::new();
        for f in adapters
            .fns
            .iter()
            .filter(|f| f.owner.as_deref() == Some(*ty))
        {
            let called = crate_calls
                .iter()
                .any(|c| c.name == f.name && (c.method || c.path.first().is_some_and(|p| p == ty)));
            if f.trait_impl || (f.public && called) {
                adapters.reach(ty, &f.name, &mut seen, &mut reach);
            }
        }
        // Configuration the reached adapter code reads, first: it names queues too.
        for (_, action, _) in &reach {
            if let Some(field) = action.strip_prefix(CONFIG_READ) {
                config_reads.insert(field.to_owned());
            }
        }
        for (owner, action, via) in reach {
            if action.starts_with(CONFIG_READ) {
                continue;
            }
            let binding = ADAPTERS
                .iter()
                .find(|(a, _)| *a == owner)
                .map(|(_, b)| *b)
                .unwrap_or(*binding);
            let targets: Vec<Target> = match binding {
                Binding::Env(var) => match env_target(var) {
                    Some(id) => vec![Target::Logical(id)],
                    None => {
                        problems.push(format!("{function}: {via} needs {action} but the function has no {var} naming a stack resource"));
                        vec![]
                    }
                },
                Binding::QueuesReadByCrate => {
                    let vars: Vec<String> = crate_words
                        .iter()
                        .copied()
                        .chain(config_reads.iter().map(String::as_str))
                        .filter(|w| w.ends_with("_queue_url"))
                        .map(|w| w.to_ascii_uppercase())
                        .collect();
                    vars.iter()
                        .filter_map(|v| env_target(v))
                        .map(Target::Logical)
                        .collect()
                }
                Binding::MerchantSecrets => {
                    let prefix = env
                        .get("SECRET_PREFIX")
                        .and_then(Value::as_str)
                        .unwrap_or("sendpersonal");
                    vec![Target::SecretPrefix(prefix.to_owned())]
                }
                Binding::InferenceProfile if action == "bedrock:ApplyGuardrail" => {
                    match env_target("BEDROCK_GUARDRAIL_ID") {
                        Some(param) => vec![Target::Guardrail(param)],
                        None => {
                            problems.push(format!("{function}: {via} needs {action} but the function has no BEDROCK_GUARDRAIL_ID"));
                            vec![]
                        }
                    }
                }
                Binding::InferenceProfile => match env_target("BEDROCK_MODEL_ID") {
                    Some(param) => vec![Target::InferenceProfile(param)],
                    None => vec![],
                },
                Binding::Delegates => vec![],
            };
            for target in targets {
                needs.insert(Need {
                    action: action.clone(),
                    target,
                    via: via.clone(),
                });
            }
        }
    }

    // Secrets named by configuration (`*_SECRET_ID`) that the crate reads: the app's Shopify
    // client secret (a parameter) and the audit pepper (a stack resource).
    if needs
        .iter()
        .any(|n| n.action == "secretsmanager:GetSecretValue")
    {
        for (var, value) in env {
            let field = var.to_ascii_lowercase();
            if !var.ends_with("_SECRET_ID")
                || !(crate_words.contains(field.as_str()) || config_reads.contains(&field))
            {
                continue;
            }
            let Some(id) = ref_target(value) else {
                continue;
            };
            let target = if template.parameters.contains_key(&id) {
                Target::SecretParameter(id)
            } else {
                Target::Logical(id)
            };
            needs.insert(Need {
                action: "secretsmanager:GetSecretValue".into(),
                target,
                via: format!("config.{}", var.to_ascii_lowercase()),
            });
        }
    }

    // Secrets encrypted with the stack's key: Secrets Manager uses it on the caller's behalf
    // (GenerateDataKey to store a value, Decrypt to read one and to store one).
    if let Some(key) = env_target("SECRETS_KMS_KEY_ID") {
        let secret_actions: BTreeSet<String> = needs
            .iter()
            .filter(|n| n.action.starts_with("secretsmanager:"))
            .map(|n| n.action.clone())
            .collect();
        let mut kms = BTreeSet::new();
        for a in &secret_actions {
            match a.as_str() {
                "secretsmanager:GetSecretValue" => {
                    kms.insert("kms:Decrypt");
                }
                "secretsmanager:CreateSecret"
                | "secretsmanager:PutSecretValue"
                | "secretsmanager:UpdateSecret" => {
                    kms.insert("kms:GenerateDataKey");
                    kms.insert("kms:Decrypt");
                }
                _ => {}
            }
        }
        for action in kms {
            needs.insert(Need {
                action: action.into(),
                target: Target::Logical(key.clone()),
                via: "secrets encrypted with SECRETS_KMS_KEY_ID".into(),
            });
        }
    }
    needs
}

/// The workspace Lambda crates one crate depends on (their code runs in its binary).
fn crate_closure(root: &Path, krate: &str, lambda_crates: &BTreeSet<String>) -> Vec<String> {
    let mut out = vec![krate.to_owned()];
    let manifest = std::fs::read_to_string(root.join("crates").join(krate).join("Cargo.toml"))
        .unwrap_or_default();
    for other in lambda_crates {
        let depends = manifest.lines().any(|l| {
            l.trim_start()
                .strip_prefix(other.as_str())
                .is_some_and(|rest| rest.starts_with([' ', '=', '.']))
        });
        if other != krate && depends {
            out.push(other.clone());
        }
    }
    out
}

fn wildcard_problem(grant: &Grant) -> Option<String> {
    if grant.action.contains('*') {
        return Some(format!("allows the wildcard action {}", grant.action));
    }
    if grant.resource == "*" {
        return Some(format!("allows {} on Resource \"*\"", grant.action));
    }
    if grant.resource.contains('*') {
        let text = grant
            .resource
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", "R")
            .replace("${AWS::AccountId}", "A");
        let allowed = WILDCARD_EXCEPTIONS.iter().any(|(pattern, _)| {
            let prefix_pattern = pattern.replace("${SECRET_PREFIX}", "sendpersonal");
            text.contains(&prefix_pattern)
        });
        if !allowed {
            return Some(format!(
                "allows {} on the wildcard resource {}",
                grant.action, grant.resource
            ));
        }
    }
    None
}

/// All problems of the template against the given sources.
fn check(root: &Path, template: &Template, sources: &Sources) -> Vec<String> {
    let mut problems = Vec::new();
    let adapters = Adapters::read(sources);
    let lambda_crates: BTreeSet<String> = template
        .functions
        .values()
        .filter_map(|f| f.binary.clone())
        .collect();
    for (id, function) in &template.functions {
        let Some(binary) = &function.binary else {
            problems.push(format!("{id}: no Metadata.BuildProperties.Binary"));
            continue;
        };
        let properties = &template.resources[id].properties;
        let granted = grants(id, properties, &mut problems);
        for g in &granted {
            if let Some(p) = wildcard_problem(g) {
                problems.push(format!("{id}/{}: {p}", g.sid));
            }
        }
        let crates = crate_closure(root, binary, &lambda_crates);
        let needs = needs_of(
            id,
            template,
            &function.environment,
            &crates,
            sources,
            &adapters,
            &mut problems,
        );
        for need in &needs {
            if !granted.iter().any(|g| grant_covers(g, need)) {
                problems.push(format!(
                    "{id}: missing {} on {:?} (the code calls it: {})",
                    need.action, need.target, need.via
                ));
            }
        }
        for g in &granted {
            if !needs.iter().any(|n| grant_covers(g, n)) {
                problems.push(format!(
                    "{id}/{}: allows {} on {} but no code path of {binary} needs it",
                    g.sid, g.action, g.resource
                ));
            }
        }
    }
    problems
}

fn load() -> (PathBuf, Template, Sources) {
    let root = repo_root();
    let template = Template::load(&root.join("template.yaml")).expect("template.yaml parses");
    let crates: Vec<String> = template
        .functions
        .values()
        .filter_map(|f| f.binary.clone())
        .collect();
    let sources = load_sources(&root, &crates);
    (root, template, sources)
}

#[test]
fn every_function_policy_grants_exactly_what_its_code_calls() {
    let (root, template, sources) = load();
    assert!(
        template.functions.len() >= 6,
        "template.yaml declares the Lambda functions"
    );
    let problems = check(&root, &template, &sources);
    assert!(
        problems.is_empty(),
        "least-privilege problems in template.yaml:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_analysis_sees_the_calls_it_must() {
    // Guard against a reader that silently finds nothing: known facts of the code base.
    let (root, template, sources) = load();
    let adapters = Adapters::read(&sources);
    let lambda_crates: BTreeSet<String> = template
        .functions
        .values()
        .filter_map(|f| f.binary.clone())
        .collect();
    let needs_for = |id: &str| {
        let f = template.function(id).unwrap();
        let crates = crate_closure(&root, f.binary.as_deref().unwrap(), &lambda_crates);
        let mut problems = Vec::new();
        needs_of(
            id,
            &template,
            &f.environment,
            &crates,
            &sources,
            &adapters,
            &mut problems,
        )
        .into_iter()
        .map(|n| (n.action, n.target))
        .collect::<BTreeSet<_>>()
    };
    let worker = needs_for("PersonalizeWorkerFunction");
    assert!(
        worker.contains(&(
            "dynamodb:UpdateItem".into(),
            Target::Logical("AppTable".into())
        )),
        "{worker:?}"
    );
    assert!(
        worker.contains(&(
            "bedrock:InvokeModel".into(),
            Target::InferenceProfile("BedrockModelId".into())
        )),
        "{worker:?}"
    );
    let sync = needs_for("CatalogSyncFunction");
    assert!(
        sync.contains(&(
            "dynamodb:BatchWriteItem".into(),
            Target::Logical("CatalogTable".into())
        )),
        "{sync:?}"
    );
    assert!(
        sync.contains(&(
            "sqs:SendMessage".into(),
            Target::Logical("SyncQueue".into())
        )),
        "{sync:?}"
    );
    // through AwsTokenVault (a trait object inside ShopifyAdmin) to SecretStore::put
    assert!(
        sync.contains(&(
            "secretsmanager:PutSecretValue".into(),
            Target::SecretPrefix("sendpersonal".into())
        )),
        "{sync:?}"
    );
    let purge = needs_for("DisconnectPurgeFunction");
    assert!(
        purge.contains(&(
            "cognito-idp:AdminDeleteUser".into(),
            Target::Logical("UserPool".into())
        )),
        "{purge:?}"
    );
    assert!(
        purge.contains(&(
            "secretsmanager:GetSecretValue".into(),
            Target::Logical("AuditPepperSecret".into())
        )),
        "{purge:?}"
    );
}

#[test]
fn a_new_scan_in_an_adapter_method_fails_until_granted() {
    let (root, template, mut sources) = load();
    let path = "crates/shared/src/aws/dynamo.rs".to_owned();
    let text = sources[&path].clone();
    // AppStore::klaviyo is called by connect-klaviyo, whose policy has no dynamodb:Scan.
    let anchor = "pub async fn klaviyo(";
    let at = text.find(anchor).expect("AppStore::klaviyo exists");
    let open = at + text[at..].find('{').unwrap();
    let mutated = format!(
        "{}{{ let _ = self.client.scan().table_name(&self.table).send().await;{}",
        &text[..open],
        &text[open + 1..]
    );
    sources.insert(path, mutated);
    let problems = check(&root, &template, &sources);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("ConnectKlaviyoFunction: missing dynamodb:Scan")),
        "expected a missing dynamodb:Scan for connect-klaviyo, got:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_wildcard_action_or_resource_fails() {
    let star = Grant {
        sid: "S".into(),
        action: "dynamodb:*".into(),
        resource: "AppTable".into(),
    };
    assert!(wildcard_problem(&star).is_some());
    let any = Grant {
        sid: "S".into(),
        action: "dynamodb:GetItem".into(),
        resource: "*".into(),
    };
    assert!(wildcard_problem(&any).is_some());
    let all_secrets = Grant {
        sid: "S".into(),
        action: "secretsmanager:GetSecretValue".into(),
        resource: "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
            .into(),
    };
    assert!(wildcard_problem(&all_secrets).is_some());
    let merchant = Grant {
        sid: "S".into(),
        action: "secretsmanager:GetSecretValue".into(),
        resource: "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:sendpersonal/*".into(),
    };
    assert!(wildcard_problem(&merchant).is_none());
}

#[test]
fn the_reader_finds_calls_through_fields_and_transactions() {
    let src = strip(
        r#"
        pub struct Vault { store: AppStore, name: String }
        impl Vault {
            pub async fn go(&self) { self.store.try_lock("x{", 'a').await; let s = "}"; }
        }
        impl AppStore {
            pub async fn try_lock(&self) { self.client.put_item().send().await; helper(); }
            fn t<'a>(&'a self) { let u = Update::builder().build(); self.client.transact_write_items().send(); }
        }
        fn helper() {}
        #[cfg(test)]
        mod tests { fn x() { c.scan(); } }
        "#,
    );
    let (fns, structs) = functions("f.rs", &src);
    assert_eq!(structs["Vault"]["store"], "AppStore");
    let names: Vec<_> = fns
        .iter()
        .map(|f| (f.owner.clone(), f.name.clone(), f.public))
        .collect();
    assert!(
        names.contains(&(Some("Vault".into()), "go".into(), true)),
        "{names:?}"
    );
    assert!(
        names.contains(&(Some("AppStore".into()), "t".into(), false)),
        "{names:?}"
    );
    assert!(!src.contains("scan"));
    let go = fns.iter().find(|f| f.name == "go").unwrap();
    let c = calls(&go.body);
    assert!(
        c.iter()
            .any(|c| c.name == "try_lock" && c.chain == ["self", "store"]),
        "{c:?}"
    );
}
