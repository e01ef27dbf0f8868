//! Bulk query operations: validated like Shopify's (1–5 connections, nesting depth ≤ 2, parents
//! of nested connections must select `id`), run in the background, and written as JSONL where
//! each nested connection node is its own line carrying `__parentId`.

use std::sync::Arc;
use std::time::Duration;

use graphql_parser::query as q;
use serde_json::{json, Map, Value};

use super::graphql::{select_operation, Exec, OpKind};
use super::model::product_model;
use super::schema::{self, Ty};
use super::search;
use super::ShopifyStore;
use crate::state::AppState;
use crate::util::{now_unix, shopify_time};

/// Concurrent bulk queries allowed per app and shop (2026-01 and later).
const MAX_CONCURRENT: usize = 5;
const MAX_CONNECTIONS: usize = 5;
const MAX_DEPTH: usize = 2;

#[derive(Debug, Clone)]
pub struct BulkOp {
    pub id: u64,
    pub shop: String,
    pub query: String,
    pub status: &'static str,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub object_count: u64,
    pub root_object_count: u64,
    pub jsonl: Option<Arc<String>>,
}

impl BulkOp {
    pub fn gid(&self) -> String {
        format!("gid://shopify/BulkOperation/{}", self.id)
    }

    pub fn model(&self, base_url: &str) -> Value {
        let done = self.status == "COMPLETED";
        let url = (done && self.object_count > 0)
            .then(|| format!("{base_url}/_sandbox/bulk/{}.jsonl", self.id));
        json!({
            "__typename": "BulkOperation",
            "id": self.gid(),
            "status": self.status,
            "errorCode": null,
            // UnsignedInt64 scalars are strings on the wire.
            "objectCount": self.object_count.to_string(),
            "rootObjectCount": self.root_object_count.to_string(),
            "fileSize": self.jsonl.as_ref().map(|j| j.len().to_string()),
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
    let running = store
        .bulk_ops
        .values()
        .filter(|op| op.shop == shop && matches!(op.status, "CREATED" | "RUNNING"))
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
            jsonl: None,
        },
    );
    Ok(id)
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

/// Produces the JSONL for `query` over a snapshot of the shop's products.
fn generate(
    query: &str,
    products: &[super::catalog_data::Product],
    shop: &str,
) -> (String, u64, u64) {
    let Ok(doc) = graphql_parser::parse_query::<String>(query) else {
        return (String::new(), 0, 0);
    };
    let Ok((_, sel, defs)) = select_operation(&doc, None) else {
        return (String::new(), 0, 0);
    };
    let mut exec = Exec::new(&doc, defs, Map::new(), shop, "");
    exec.bulk = true;
    let mut roots = Vec::new();
    exec.collect_fields("QueryRoot", sel, &mut roots);
    let Some(root) = roots.into_iter().find(|f| f.name == "products") else {
        return (String::new(), 0, 0);
    };
    let filter = exec
        .arg(root, "query")
        .and_then(|v| v.as_str().map(search::parse))
        .unwrap_or_default();
    let node_sels = node_selections(&root.selection_set);
    let Some(node_sel) = node_sels.first() else {
        return (String::new(), 0, 0);
    };
    let mut out = String::new();
    let mut count = 0;
    let mut roots_count = 0;
    for p in products.iter().filter(|p| filter.matches(p)) {
        let model = product_model(p, shop);
        emit(
            &mut exec, &model, "Product", node_sel, None, &mut out, &mut count,
        );
        roots_count += 1;
    }
    (out, count, roots_count)
}

/// Background task: CREATED → RUNNING → COMPLETED, taking time roughly proportional to size.
pub async fn run(st: Arc<AppState>, id: u64) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snapshot = {
        let mut store = st.shopify();
        let Some(op) = store.bulk_ops.get_mut(&id) else {
            return;
        };
        op.status = "RUNNING";
        let (query, shop) = (op.query.clone(), op.shop.clone());
        store
            .shops
            .get(&shop)
            .map(|s| (query, shop, s.products.clone()))
    };
    let Some((query, shop, products)) = snapshot else {
        return;
    };
    let began = std::time::Instant::now();
    let generated = tokio::task::spawn_blocking(move || generate(&query, &products, &shop)).await;
    let (jsonl, objects, roots) = generated.unwrap_or_default();
    // Finish roughly in proportion to size (~0.1 s minimum, 1.5 s at most), counting the
    // time generation itself took.
    let target = Duration::from_millis((100 + objects / 10).min(1_500));
    if let Some(rest) = target.checked_sub(began.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let mut store = st.shopify();
    if let Some(op) = store.bulk_ops.get_mut(&id) {
        op.status = "COMPLETED";
        op.completed_at = Some(now_unix());
        op.object_count = objects;
        op.root_object_count = roots;
        op.jsonl = Some(Arc::new(jsonl));
    }
}
