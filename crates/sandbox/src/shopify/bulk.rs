//! Bulk query operations: validated like Shopify's (1–5 connections, nesting depth ≤ 2, parents
//! of nested connections must select `id`), run in the background over a snapshot of the shop's
//! products, and served as JSONL where each nested connection node is its own line carrying
//! `__parentId`. The file is never held: [`Export::write`] generates it piece by piece, once to
//! count it when the operation completes and again for each download ([`super::storage`]).
//! `bulkOperationCancel` moves a CREATED or RUNNING operation to CANCELING and, a moment later,
//! CANCELED, which frees its slot.

use std::sync::Arc;
use std::time::Duration;

use graphql_parser::query as q;
use serde_json::{json, Map, Value};

use super::catalog_data::Product;
use super::graphql::{select_operation, Exec, OpKind};
use super::model::product_model;
use super::schema::{self, Ty};
use super::search;
use super::ShopifyStore;
use crate::state::AppState;
use crate::util::{now_unix, random_hex, shopify_time};

/// Concurrent bulk queries allowed per app and shop (2026-01 and later).
const MAX_CONCURRENT: usize = 5;
const MAX_CONNECTIONS: usize = 5;
const MAX_DEPTH: usize = 2;
/// How long CANCELING lasts before CANCELED, at the vendors' own time.
const CANCEL_DELAY: Duration = Duration::from_millis(200);
/// Pieces of a result file handed to a download (or counted) at a time.
pub const PIECE_BYTES: usize = 64 * 1024;

/// What a completed operation exports: the query and the products as they were when it ran.
pub struct Export {
    pub query: String,
    pub shop: String,
    pub description_padding: usize,
    /// The shop's currency code, for every money field.
    pub currency: String,
    pub products: Vec<Product>,
}

/// What [`Export::write`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub objects: u64,
    pub roots: u64,
    pub bytes: u64,
}

#[derive(Clone)]
pub struct BulkOp {
    pub id: u64,
    pub shop: String,
    pub query: String,
    pub status: &'static str,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub object_count: u64,
    pub root_object_count: u64,
    pub file_size: Option<u64>,
    /// The result's object name at the storage endpoint (random, like a signed URL's path).
    pub object_key: String,
    /// The result's download URL, once completed with at least one object.
    pub result_url: Option<String>,
    pub export: Option<Arc<Export>>,
    /// How long it runs (captured from the shop's settings when it started).
    pub run_secs: Option<f64>,
}

impl std::fmt::Debug for BulkOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkOp")
            .field("id", &self.id)
            .field("shop", &self.shop)
            .field("status", &self.status)
            .field("object_count", &self.object_count)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

impl BulkOp {
    pub fn gid(&self) -> String {
        format!("gid://shopify/BulkOperation/{}", self.id)
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status, "CREATED" | "RUNNING" | "CANCELING")
    }

    pub fn model(&self) -> Value {
        let done = self.status == "COMPLETED";
        let url = if done && self.object_count > 0 {
            self.result_url.clone()
        } else {
            None
        };
        json!({
            "__typename": "BulkOperation",
            "id": self.gid(),
            "status": self.status,
            "errorCode": null,
            // UnsignedInt64 scalars are strings on the wire.
            "objectCount": self.object_count.to_string(),
            "rootObjectCount": self.root_object_count.to_string(),
            "fileSize": self.file_size.filter(|_| done).map(|n| n.to_string()),
            "url": url,
            "partialDataUrl": null,
            "createdAt": shopify_time(self.created_at),
            "completedAt": self.completed_at.map(shopify_time),
            "query": self.query,
            "type": "QUERY",
        })
    }
}

pub fn user_error(code: &str, field: &str, message: &str) -> Value {
    json!({
        "__typename": "BulkOperationUserError",
        "field": [field],
        "message": message,
        "code": code,
    })
}

/// Validates and registers a bulk query; the caller spawns [`run`] for the returned id.
pub fn start(
    store: &mut ShopifyStore,
    shop: &str,
    query: &str,
    _base_url: &str,
) -> Result<u64, Vec<Value>> {
    validate(query)?;
    // CANCELING still holds its slot; CANCELED frees it.
    let running = store
        .bulk_ops
        .values()
        .filter(|op| op.shop == shop && op.is_active())
        .count();
    if running >= MAX_CONCURRENT {
        return Err(vec![user_error(
            "LIMIT_REACHED",
            "query",
            &format!("A maximum of {MAX_CONCURRENT} bulk queries can run concurrently for this app and shop."),
        )]);
    }
    let id = store.next_bulk_id;
    store.next_bulk_id += 1;
    let object_key = random_hex(&mut store.rng, 16);
    let run_secs = store.shops.get(shop).and_then(|s| s.bulk_run_secs);
    store.bulk_ops.insert(
        id,
        BulkOp {
            id,
            shop: shop.to_string(),
            query: query.to_string(),
            status: "CREATED",
            created_at: now_unix(),
            completed_at: None,
            object_count: 0,
            root_object_count: 0,
            file_size: None,
            object_key,
            result_url: None,
            export: None,
            run_secs,
        },
    );
    Ok(id)
}

/// `bulkOperationCancel(id:)`: the payload's `bulkOperation` and `userErrors` (Shopify's
/// answers, as captured: unknown ids and finished operations are user errors), and whether a
/// cancelation started (the caller then spawns [`finish_cancel`]).
pub fn cancel(store: &mut ShopifyStore, shop: &str, gid: &str) -> (Value, Vec<Value>, Option<u64>) {
    let op = gid
        .strip_prefix("gid://shopify/BulkOperation/")
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|id| store.bulk_ops.get_mut(&id))
        .filter(|op| op.shop == shop);
    let Some(op) = op else {
        let error = json!({
            "__typename": "UserError",
            "field": ["id"],
            "message": "Bulk operation does not exist",
        });
        return (Value::Null, vec![error], None);
    };
    match op.status {
        "CREATED" | "RUNNING" => {
            op.status = "CANCELING";
            (op.model(), Vec::new(), Some(op.id))
        }
        "CANCELING" => (op.model(), Vec::new(), None),
        finished => {
            let error = json!({
                "__typename": "UserError",
                "field": null,
                "message": format!(
                    "A bulk operation cannot be canceled when it is {}",
                    finished.to_ascii_lowercase()
                ),
            });
            (op.model(), vec![error], None)
        }
    }
}

/// CANCELING → CANCELED after a short delay (scaled like every vendor duration).
pub async fn finish_cancel(st: Arc<AppState>, id: u64) {
    tokio::time::sleep(CANCEL_DELAY.mul_f64(st.config.vendor_time_scale)).await;
    let mut store = st.shopify();
    if let Some(op) = store.bulk_ops.get_mut(&id) {
        if op.status == "CANCELING" {
            op.status = "CANCELED";
            op.completed_at = Some(now_unix());
        }
    }
}

fn invalid(message: impl Into<String>) -> Vec<Value> {
    vec![user_error("INVALID", "query", &message.into())]
}

fn validate(query: &str) -> Result<(), Vec<Value>> {
    let doc = graphql_parser::parse_query::<String>(query)
        .map_err(|e| invalid(format!("Invalid bulk query: {}", e.to_string().trim())))?;
    let (kind, sel, defs) = select_operation(&doc, None).map_err(invalid)?;
    if kind != OpKind::Query {
        return Err(invalid("Bulk operations only support queries."));
    }
    let mut exec = Exec::new(&doc, defs, Map::new(), "", "");
    exec.bulk = true;
    exec.validate("QueryRoot", sel, &mut vec!["query".into()]);
    if !exec.errors.is_empty() {
        return Err(exec
            .errors
            .iter()
            .map(|e| {
                user_error(
                    "INVALID",
                    "query",
                    e["message"].as_str().unwrap_or("Invalid bulk query"),
                )
            })
            .collect());
    }
    let mut roots = Vec::new();
    exec.collect_fields("QueryRoot", sel, &mut roots);
    let root = match roots.as_slice() {
        [f] if f.name == "products" => *f,
        [f] if matches!(
            schema::field_type("QueryRoot", &f.name),
            Some(Ty::Connection(_))
        ) =>
        {
            return Err(invalid(format!(
                "The sandbox supports bulk queries over 'products' only, not '{}'.",
                f.name
            )))
        }
        [] => {
            return Err(invalid(
                "Bulk queries must contain at least one connection.",
            ))
        }
        [_] => {
            return Err(invalid(
                "Bulk queries must contain at least one connection.",
            ))
        }
        _ => return Err(invalid("Bulk queries must have a single top-level field.")),
    };
    let mut stats = Walk::default();
    walk_connection(&exec, "Product", &root.selection_set, 1, &mut stats);
    if let Some(msg) = stats.problem {
        return Err(invalid(msg));
    }
    if stats.connections > MAX_CONNECTIONS {
        return Err(invalid(format!(
            "Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
        )));
    }
    if stats.max_depth > MAX_DEPTH {
        return Err(invalid(format!(
            "Bulk queries cannot contain connections with a nesting depth greater than {MAX_DEPTH}."
        )));
    }
    Ok(())
}

#[derive(Default)]
struct Walk {
    connections: usize,
    max_depth: usize,
    problem: Option<String>,
}

/// The node selection of a connection: `nodes { … }` or `edges { node { … } }`.
fn node_selections<'s, 'a>(
    conn_sel: &'s q::SelectionSet<'a, String>,
) -> Vec<&'s q::SelectionSet<'a, String>> {
    let mut out = Vec::new();
    for item in &conn_sel.items {
        if let q::Selection::Field(f) = item {
            match f.name.as_str() {
                "nodes" => out.push(&f.selection_set),
                "edges" => {
                    for inner in &f.selection_set.items {
                        if let q::Selection::Field(n) = inner {
                            if n.name == "node" {
                                out.push(&n.selection_set);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn walk_connection<'a>(
    exec: &Exec<'_, 'a>,
    node_ty: &str,
    conn_sel: &q::SelectionSet<'a, String>,
    depth: usize,
    w: &mut Walk,
) {
    w.connections += 1;
    w.max_depth = w.max_depth.max(depth);
    for node_sel in node_selections(conn_sel) {
        let mut fields = Vec::new();
        exec.collect_fields(node_ty, node_sel, &mut fields);
        let mut has_nested = false;
        for f in &fields {
            if let Some(Ty::Connection(n)) = schema::field_type(node_ty, &f.name) {
                has_nested = true;
                walk_connection(exec, n, &f.selection_set, depth + 1, w);
            }
        }
        if has_nested && !fields.iter().any(|f| f.name == "id") {
            w.problem.get_or_insert_with(|| {
                format!("The parent '{node_ty}' of a nested connection must select the 'id' field.")
            });
        }
    }
}

/// Projects one object (connections stripped) then its nested connection nodes as lines.
fn emit<'a>(
    exec: &mut Exec<'_, 'a>,
    model: &Value,
    ty: &str,
    sel: &q::SelectionSet<'a, String>,
    parent: Option<&str>,
    out: &mut String,
    count: &mut u64,
) {
    let mut obj = exec.project(model, ty, sel);
    if let (Some(p), Some(map)) = (parent, obj.as_object_mut()) {
        map.insert("__parentId".into(), json!(p));
    }
    out.push_str(&obj.to_string());
    out.push('\n');
    *count += 1;
    let concrete = model["__typename"].as_str().unwrap_or(ty).to_string();
    let id = model["id"].as_str().map(str::to_owned);
    let mut fields = Vec::new();
    exec.collect_fields(&concrete, sel, &mut fields);
    for f in fields {
        if let Some(Ty::Connection(n)) = schema::field_type(&concrete, &f.name) {
            let items = model[f.name.as_str()]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for node_sel in node_selections(&f.selection_set).into_iter().take(1) {
                for item in &items {
                    emit(exec, item, n, node_sel, id.as_deref(), out, count);
                }
            }
        }
    }
}

impl Export {
    /// Generates the JSONL, handing it to `sink` in pieces of about `piece` bytes (each piece
    /// ends at a line end); stops early when `sink` returns false. The same export always
    /// writes the same bytes.
    pub fn write(&self, piece: usize, mut sink: impl FnMut(&[u8]) -> bool) -> ExportCounts {
        let mut counts = ExportCounts::default();
        let Ok(doc) = graphql_parser::parse_query::<String>(&self.query) else {
            return counts;
        };
        let Ok((_, sel, defs)) = select_operation(&doc, None) else {
            return counts;
        };
        let mut exec = Exec::new(&doc, defs, Map::new(), &self.shop, "");
        exec.bulk = true;
        let mut roots = Vec::new();
        exec.collect_fields("QueryRoot", sel, &mut roots);
        let Some(root) = roots.into_iter().find(|f| f.name == "products") else {
            return counts;
        };
        let filter = exec
            .arg(root, "query")
            .and_then(|v| v.as_str().map(search::parse))
            .unwrap_or_default();
        let node_sels = node_selections(&root.selection_set);
        let Some(node_sel) = node_sels.first() else {
            return counts;
        };
        let mut out = String::with_capacity(piece + 4096);
        for p in self.products.iter().filter(|p| filter.matches(p)) {
            let model = product_model(p, &self.shop, self.description_padding, &self.currency);
            emit(
                &mut exec,
                &model,
                "Product",
                node_sel,
                None,
                &mut out,
                &mut counts.objects,
            );
            counts.roots += 1;
            if out.len() >= piece {
                counts.bytes += out.len() as u64;
                if !sink(out.as_bytes()) {
                    return counts;
                }
                out.clear();
            }
        }
        if !out.is_empty() {
            counts.bytes += out.len() as u64;
            sink(out.as_bytes());
        }
        counts
    }
}

fn status_of(st: &AppState, id: u64) -> Option<&'static str> {
    st.shopify().bulk_ops.get(&id).map(|op| op.status)
}

/// Background task: CREATED → RUNNING → COMPLETED over a snapshot of the shop's products,
/// taking time roughly proportional to size (or the shop's `bulk_run_secs`). A cancelation
/// meanwhile wins: the operation never completes.
pub async fn run(st: Arc<AppState>, id: u64) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snapshot = {
        let mut store = st.shopify();
        let Some(op) = store.bulk_ops.get_mut(&id) else {
            return;
        };
        if op.status != "CREATED" {
            return;
        }
        op.status = "RUNNING";
        let (query, shop, run_secs) = (op.query.clone(), op.shop.clone(), op.run_secs);
        store.shops.get(&shop).map(|s| {
            let export = Export {
                query,
                description_padding: s.description_padding,
                currency: s.currency.clone(),
                products: s.products.clone(),
                shop,
            };
            (Arc::new(export), run_secs)
        })
    };
    let Some((export, run_secs)) = snapshot else {
        return;
    };
    let began = std::time::Instant::now();
    let counting = export.clone();
    let counts = tokio::task::spawn_blocking(move || counting.write(PIECE_BYTES, |_| true))
        .await
        .unwrap_or_default();
    // Finish roughly in proportion to size (~0.1 s minimum, 1.5 s at most), counting the time
    // generation itself took, unless the shop says how long its exports take.
    let target = match run_secs {
        Some(secs) => Duration::from_secs_f64(secs),
        None => Duration::from_millis((100 + counts.objects / 10).min(1_500)),
    };
    while let Some(rest) = target.checked_sub(began.elapsed()) {
        if status_of(&st, id) != Some("RUNNING") {
            return;
        }
        tokio::time::sleep(rest.min(Duration::from_millis(50))).await;
    }
    let storage = super::storage::ensure_started(&st);
    let mut store = st.shopify();
    if let Some(op) = store.bulk_ops.get_mut(&id) {
        if op.status != "RUNNING" {
            return;
        }
        op.status = "COMPLETED";
        op.completed_at = Some(now_unix());
        op.object_count = counts.objects;
        op.root_object_count = counts.roots;
        op.file_size = Some(counts.bytes);
        op.result_url = storage.map(|base| format!("{base}/{}.jsonl", op.object_key));
        op.export = Some(export);
    }
}
