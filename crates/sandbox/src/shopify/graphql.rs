//! Admin GraphQL endpoint: parses the document with graphql-parser, validates it against the
//! mini schema, prices it, applies the leaky bucket, then projects the selection onto the JSON
//! object model (aliases, fragments, connections with nodes/edges/pageInfo, `__typename`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use graphql_parser::query as q;
use serde_json::{json, Map, Value};

use super::model::{gid_number, product_model, shop_model};
use super::schema::{self, Ty};
use super::search::{self, SortKey, SortVal};
use super::throttle::MAX_QUERY_COST;
use super::{bulk, ShopifyStore};
use crate::state::{AppState, Stats};

pub type Doc<'a> = q::Document<'a, String>;
type Sel<'a> = q::SelectionSet<'a, String>;
type Field<'a> = q::Field<'a, String>;

const MAX_PAGE: i64 = 250;

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The 401 Shopify sends for unknown, revoked or expired tokens.
pub fn invalid_token() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
    )
}

fn gql_error(
    message: impl Into<String>,
    pos: Option<graphql_parser::Pos>,
    code: Option<&str>,
) -> Value {
    let mut e = json!({ "message": message.into() });
    if let Some(p) = pos {
        e["locations"] = json!([{ "line": p.line, "column": p.column }]);
    }
    if let Some(c) = code {
        e["extensions"] = json!({ "code": c });
    }
    e
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Query,
    Mutation,
}

/// Picks the operation to run (by name when several) and its root selection.
pub fn select_operation<'d, 'a>(
    doc: &'d Doc<'a>,
    name: Option<&str>,
) -> Result<(OpKind, &'d Sel<'a>, &'d [q::VariableDefinition<'a, String>]), String> {
    let ops: Vec<&q::OperationDefinition<String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            q::Definition::Operation(op) => Some(op),
            q::Definition::Fragment(_) => None,
        })
        .collect();
    let op_name = |op: &q::OperationDefinition<String>| -> Option<String> {
        match op {
            q::OperationDefinition::Query(x) => x.name.clone(),
            q::OperationDefinition::Mutation(x) => x.name.clone(),
            q::OperationDefinition::Subscription(x) => x.name.clone(),
            q::OperationDefinition::SelectionSet(_) => None,
        }
    };
    let op = match name {
        Some(n) => ops
            .iter()
            .find(|op| op_name(op).as_deref() == Some(n))
            .ok_or_else(|| format!("No operation named \"{n}\""))?,
        None if ops.len() == 1 => &ops[0],
        None if ops.is_empty() => return Err("No operations in query document".into()),
        None => {
            return Err(
                "An operation name is required when the document has several operations".into(),
            )
        }
    };
    match op {
        q::OperationDefinition::SelectionSet(s) => Ok((OpKind::Query, s, &[])),
        q::OperationDefinition::Query(x) => {
            Ok((OpKind::Query, &x.selection_set, &x.variable_definitions))
        }
        q::OperationDefinition::Mutation(x) => {
            Ok((OpKind::Mutation, &x.selection_set, &x.variable_definitions))
        }
        q::OperationDefinition::Subscription(_) => Err("Subscriptions are not supported".into()),
    }
}

/// One page of a connection: the node models with their cursors.
pub struct Page {
    pub items: Vec<(Value, String)>,
    pub has_next: bool,
    pub has_prev: bool,
}

pub fn encode_cursor(val: &SortVal, id: u64) -> String {
    let raw = json!({ "last_id": id, "last_value": val.to_json() }).to_string();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_cursor(cursor: &str, like: &SortVal) -> Option<(SortVal, u64)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let id = v.get("last_id")?.as_u64()?;
    let val = SortVal::from_json(v.get("last_value")?, like)?;
    Some((val, id))
}

pub struct Exec<'d, 'a> {
    fragments: HashMap<&'d str, &'d q::FragmentDefinition<'a, String>>,
    vars: Map<String, Value>,
    pub errors: Vec<Value>,
    pub actual_cost: u64,
    /// In bulk mode connections are ignored by `project` (they become separate JSONL lines)
    /// and `first:` is not required.
    pub bulk: bool,
    pub shop: String,
    pub base_url: String,
    pub started_bulk_ops: Vec<u64>,
    /// Operations this request moved to CANCELING (the handler finishes them afterwards).
    pub canceled_bulk_ops: Vec<u64>,
}

impl<'d, 'a> Exec<'d, 'a> {
    pub fn new(
        doc: &'d Doc<'a>,
        var_defs: &'d [q::VariableDefinition<'a, String>],
        variables: Map<String, Value>,
        shop: &str,
        base_url: &str,
    ) -> Self {
        let fragments = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                q::Definition::Fragment(f) => Some((f.name.as_str(), f)),
                q::Definition::Operation(_) => None,
            })
            .collect();
        let mut vars = variables;
        for def in var_defs {
            if !vars.contains_key(&def.name) {
                let default = def
                    .default_value
                    .as_ref()
                    .map(|v| const_value(v))
                    .unwrap_or(Value::Null);
                vars.insert(def.name.clone(), default);
            }
        }
        Self {
            fragments,
            vars,
            errors: Vec::new(),
            actual_cost: 0,
            bulk: false,
            shop: shop.to_string(),
            base_url: base_url.to_string(),
            started_bulk_ops: Vec::new(),
            canceled_bulk_ops: Vec::new(),
        }
    }

    fn value(&self, v: &q::Value<'a, String>) -> Value {
        match v {
            q::Value::Variable(name) => self.vars.get(name).cloned().unwrap_or(Value::Null),
            q::Value::List(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            q::Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.value(v)))
                    .collect(),
            ),
            other => const_value(other),
        }
    }

    pub fn arg(&self, field: &Field<'a>, name: &str) -> Option<Value> {
        field
            .arguments
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| self.value(v))
            .filter(|v| !v.is_null())
    }

    fn included(&self, directives: &[q::Directive<'a, String>]) -> bool {
        directives.iter().all(|d| {
            let cond = d
                .arguments
                .iter()
                .find(|(k, _)| k == "if")
                .map(|(_, v)| self.value(v).as_bool().unwrap_or(false));
            !matches!(
                (d.name.as_str(), cond),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }

    /// Fields selected on an object whose runtime type is `concrete` (fragments flattened).
    pub fn collect_fields<'s>(&self, concrete: &str, sel: &'s Sel<'a>, out: &mut Vec<&'s Field<'a>>)
    where
        'd: 's,
    {
        for item in &sel.items {
            match item {
                q::Selection::Field(f) => {
                    if self.included(&f.directives) {
                        out.push(f);
                    }
                }
                q::Selection::InlineFragment(frag) => {
                    let applies = match &frag.type_condition {
                        Some(q::TypeCondition::On(t)) => schema::implements(concrete, t),
                        None => true,
                    };
                    if applies && self.included(&frag.directives) {
                        self.collect_fields(concrete, &frag.selection_set, out);
                    }
                }
                q::Selection::FragmentSpread(spread) => {
                    if let Some(frag) = self.fragments.get(spread.fragment_name.as_str()).copied() {
                        let q::TypeCondition::On(t) = &frag.type_condition;
                        if schema::implements(concrete, t) && self.included(&spread.directives) {
                            self.collect_fields(concrete, &frag.selection_set, out);
                        }
                    }
                }
            }
        }
    }

    // ---------- validation ----------

    /// Static checks against the mini schema; errors land in `self.errors`.
    pub fn validate(&mut self, ty: &str, sel: &Sel<'a>, path: &mut Vec<String>) {
        for item in &sel.items {
            match item {
                q::Selection::Field(f) => self.validate_field(ty, f, path),
                q::Selection::InlineFragment(frag) => {
                    let cond = match &frag.type_condition {
                        Some(q::TypeCondition::On(t)) => t.as_str(),
                        None => ty,
                    };
                    if self.check_fragment_type(ty, cond, frag.position) {
                        self.validate(cond, &frag.selection_set, path);
                    }
                }
                q::Selection::FragmentSpread(spread) => {
                    let Some(frag) = self.fragments.get(spread.fragment_name.as_str()).copied()
                    else {
                        self.errors.push(gql_error(
                            format!(
                                "Fragment {} was used, but not defined",
                                spread.fragment_name
                            ),
                            Some(spread.position),
                            Some("useAndDefineFragment"),
                        ));
                        continue;
                    };
                    let q::TypeCondition::On(cond) = &frag.type_condition;
                    if self.check_fragment_type(ty, cond, spread.position) {
                        self.validate(cond, &frag.selection_set, path);
                    }
                }
            }
        }
    }

    fn check_fragment_type(&mut self, parent: &str, cond: &str, pos: graphql_parser::Pos) -> bool {
        if !schema::type_exists(cond) {
            self.errors.push(gql_error(
                format!("No such type {cond}, so it can't be a fragment condition"),
                Some(pos),
                Some("undefinedType"),
            ));
            return false;
        }
        if !schema::fragment_applies_statically(parent, cond) {
            self.errors.push(gql_error(
                format!(
                    "Fragment on {cond} can't be spread inside {}",
                    schema::display_name(parent)
                ),
                Some(pos),
                Some("fragmentSpreadTypeMismatch"),
            ));
            return false;
        }
        true
    }

    fn validate_field(&mut self, ty: &str, f: &Field<'a>, path: &mut Vec<String>) {
        let Some(fty) = schema::field_type(ty, &f.name) else {
            let mut e = gql_error(
                format!(
                    "Field '{}' doesn't exist on type '{}'",
                    f.name,
                    schema::display_name(ty)
                ),
                Some(f.position),
                Some("undefinedField"),
            );
            let mut p = path.clone();
            p.push(f.name.clone());
            e["path"] = json!(p);
            e["extensions"]["typeName"] = json!(schema::display_name(ty));
            e["extensions"]["fieldName"] = json!(f.name);
            self.errors.push(e);
            return;
        };
        path.push(f.alias.clone().unwrap_or_else(|| f.name.clone()));
        let has_sub = !f.selection_set.items.is_empty();
        match fty {
            Ty::Scalar if has_sub => self.errors.push(gql_error(
                format!(
                    "Selections can't be made on scalars (field '{}' on type '{}')",
                    f.name,
                    schema::display_name(ty)
                ),
                Some(f.position),
                Some("selectionMismatch"),
            )),
            Ty::Scalar => {}
            Ty::Object(t) | Ty::List(t) => {
                if has_sub {
                    self.validate(t, &f.selection_set, path);
                } else {
                    self.errors.push(gql_error(
                        format!("Field must have selections (field '{}' returns {t} but has no selections. Did you mean '{} {{ ... }}'?)", f.name, f.name),
                        Some(f.position),
                        Some("selectionMismatch"),
                    ));
                }
            }
            Ty::Connection(n) => {
                if !has_sub {
                    self.errors.push(gql_error(
                        format!("Field must have selections (field '{}' returns {n}Connection but has no selections. Did you mean '{} {{ ... }}'?)", f.name, f.name),
                        Some(f.position),
                        Some("selectionMismatch"),
                    ));
                } else {
                    self.validate_page_args(f);
                    self.validate(&format!("Connection:{n}"), &f.selection_set, path);
                }
            }
        }
        path.pop();
    }

    fn validate_page_args(&mut self, f: &Field<'a>) {
        if self.bulk {
            return;
        }
        let first = self.arg(f, "first").and_then(|v| v.as_i64());
        let last = self.arg(f, "last").and_then(|v| v.as_i64());
        match first.or(last) {
            None => self.errors.push(gql_error(
                "you must provide one of first or last",
                Some(f.position),
                None,
            )),
            Some(n) if !(0..=MAX_PAGE).contains(&n) => self.errors.push(gql_error(
                format!(
                    "The requested page size ({n}) for '{}' must be between 0 and {MAX_PAGE}.",
                    f.name
                ),
                Some(f.position),
                Some("BAD_USER_INPUT"),
            )),
            Some(_) => {}
        }
    }

    // ---------- cost ----------

    /// Requested cost: objects 1, scalars 0, connections 2 + n × (1 + node cost),
    /// `nodes(ids:)` per id, mutations a flat 10.
    pub fn requested_cost(&self, ty: &str, sel: &Sel<'a>) -> u64 {
        let mut total = 0;
        for item in &sel.items {
            match item {
                q::Selection::Field(f) => total += self.field_cost(ty, f),
                q::Selection::InlineFragment(frag) => {
                    let cond = match &frag.type_condition {
                        Some(q::TypeCondition::On(t)) => t.as_str(),
                        None => ty,
                    };
                    total += self.requested_cost(cond, &frag.selection_set);
                }
                q::Selection::FragmentSpread(spread) => {
                    if let Some(frag) = self.fragments.get(spread.fragment_name.as_str()) {
                        let q::TypeCondition::On(cond) = &frag.type_condition;
                        total += self.requested_cost(cond, &frag.selection_set);
                    }
                }
            }
        }
        total
    }

    fn field_cost(&self, ty: &str, f: &Field<'a>) -> u64 {
        if ty == "Mutation" {
            return 10;
        }
        match schema::field_type(ty, &f.name) {
            None | Some(Ty::Scalar) => 0,
            Some(Ty::Object(t)) => {
                let sub = self.requested_cost(t, &f.selection_set);
                if free_object(ty, &f.name) {
                    sub
                } else {
                    1 + sub
                }
            }
            Some(Ty::List(t)) => {
                let sub = self.requested_cost(t, &f.selection_set);
                if ty == "QueryRoot" && f.name == "nodes" {
                    let n = self
                        .arg(f, "ids")
                        .and_then(|v| v.as_array().map(Vec::len))
                        .unwrap_or(0) as u64;
                    n * (1 + sub)
                } else {
                    sub
                }
            }
            Some(Ty::Connection(n)) => {
                let size = self
                    .arg(f, "first")
                    .or_else(|| self.arg(f, "last"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                2 + size * (1 + self.requested_cost(&format!("Connection:{n}"), &f.selection_set))
            }
        }
    }

    // ---------- execution ----------

    /// Projects `sel` onto `model` (static type `ty`).
    pub fn project(&mut self, model: &Value, ty: &str, sel: &Sel<'a>) -> Value {
        let concrete = model
            .get("__typename")
            .and_then(Value::as_str)
            .unwrap_or(ty)
            .to_string();
        let mut fields = Vec::new();
        self.collect_fields(&concrete, sel, &mut fields);
        let mut out = Map::new();
        for f in fields {
            let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
            if f.name == "__typename" {
                out.insert(key, json!(concrete));
                continue;
            }
            let fty =
                schema::field_type(&concrete, &f.name).or_else(|| schema::field_type(ty, &f.name));
            let v = match fty {
                None | Some(Ty::Scalar) => model.get(&f.name).cloned().unwrap_or(Value::Null),
                Some(Ty::Object(t)) => match model.get(&f.name) {
                    Some(obj) if obj.is_object() => {
                        if !free_object(&concrete, &f.name) {
                            self.actual_cost += 1;
                        }
                        self.project(obj, t, &f.selection_set)
                    }
                    _ => Value::Null,
                },
                Some(Ty::List(t)) => match model.get(&f.name).and_then(Value::as_array) {
                    Some(items) => Value::Array(
                        items
                            .iter()
                            .map(|i| self.project(i, t, &f.selection_set))
                            .collect(),
                    ),
                    None => Value::Null,
                },
                Some(Ty::Connection(n)) => {
                    if self.bulk {
                        continue;
                    }
                    let items = model
                        .get(&f.name)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    match self.paginate_models(items, f) {
                        Ok(page) => self.project_connection(page, n, &f.selection_set),
                        Err(e) => {
                            self.errors.push(gql_error(e, Some(f.position), None));
                            Value::Null
                        }
                    }
                }
            };
            merge_into(&mut out, key, v);
        }
        Value::Object(out)
    }

    /// Builds a connection object (edges / nodes / pageInfo) for `page`.
    pub fn project_connection(&mut self, page: Page, node_ty: &str, sel: &Sel<'a>) -> Value {
        self.actual_cost += 2;
        let conn_ty = format!("Connection:{node_ty}");
        let mut fields = Vec::new();
        self.collect_fields(&conn_ty, sel, &mut fields);
        let mut out = Map::new();
        for f in fields {
            let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
            let v = match f.name.as_str() {
                "__typename" => json!(format!("{node_ty}Connection")),
                "nodes" => Value::Array(
                    page.items
                        .iter()
                        .map(|(m, _)| {
                            self.actual_cost += 1;
                            self.project(m, node_ty, &f.selection_set)
                        })
                        .collect(),
                ),
                "edges" => Value::Array(
                    page.items
                        .iter()
                        .map(|(m, cursor)| {
                            let mut edge_fields = Vec::new();
                            self.collect_fields(
                                &format!("Edge:{node_ty}"),
                                &f.selection_set,
                                &mut edge_fields,
                            );
                            let mut edge = Map::new();
                            for ef in edge_fields {
                                let k = ef.alias.clone().unwrap_or_else(|| ef.name.clone());
                                let v = match ef.name.as_str() {
                                    "cursor" => json!(cursor),
                                    "__typename" => json!(format!("{node_ty}Edge")),
                                    "node" => {
                                        self.actual_cost += 1;
                                        self.project(m, node_ty, &ef.selection_set)
                                    }
                                    _ => Value::Null,
                                };
                                merge_into(&mut edge, k, v);
                            }
                            Value::Object(edge)
                        })
                        .collect(),
                ),
                "pageInfo" => {
                    let info = json!({
                        "__typename": "PageInfo",
                        "hasNextPage": page.has_next,
                        "hasPreviousPage": page.has_prev,
                        "startCursor": page.items.first().map(|(_, c)| c.clone()),
                        "endCursor": page.items.last().map(|(_, c)| c.clone()),
                    });
                    self.project(&info, "PageInfo", &f.selection_set)
                }
                _ => Value::Null,
            };
            merge_into(&mut out, key, v);
        }
        Value::Object(out)
    }

    /// Pages a nested connection held as an array in the model (ordered by position).
    fn paginate_models(&self, items: Vec<Value>, f: &Field<'a>) -> Result<Page, String> {
        let reverse = self
            .arg(f, "reverse")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut keyed: Vec<((SortVal, u64), Value)> = items
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let id = m
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(gid_number)
                    .unwrap_or(i as u64);
                ((SortVal::Num(i as i64), id), m)
            })
            .collect();
        if reverse {
            keyed.reverse();
        }
        let (keys, models): (Vec<_>, Vec<_>) = keyed.into_iter().unzip();
        self.page(&keys, models, f, reverse)
    }

    /// Applies first/last/after/before to `keys` (already in output order).
    pub fn page(
        &self,
        keys: &[(SortVal, u64)],
        mut models: Vec<Value>,
        f: &Field<'a>,
        reverse: bool,
    ) -> Result<Page, String> {
        let like = keys.first().map(|k| k.0.clone()).unwrap_or(SortVal::Num(0));
        let cursor = |name: &str| -> Result<Option<(SortVal, u64)>, String> {
            match self
                .arg(f, name)
                .and_then(|v| v.as_str().map(str::to_owned))
            {
                None => Ok(None),
                Some(c) => decode_cursor(&c, &like)
                    .map(Some)
                    .ok_or_else(|| format!("Invalid cursor for '{}'", f.name)),
            }
        };
        let mut start = 0;
        let mut end = keys.len();
        if let Some(c) = cursor("after")? {
            start = keys.partition_point(|k| search::compare(k, &c, reverse) != Ordering::Greater);
        }
        if let Some(c) = cursor("before")? {
            end = keys.partition_point(|k| search::compare(k, &c, reverse) == Ordering::Less);
        }
        end = end.max(start);
        let first = self
            .arg(f, "first")
            .and_then(|v| v.as_u64())
            .map(|n| n as usize);
        let last = self
            .arg(f, "last")
            .and_then(|v| v.as_u64())
            .map(|n| n as usize);
        let (lo, hi) = match (first, last) {
            (Some(n), _) => (start, (start + n).min(end)),
            (None, Some(n)) => (end.saturating_sub(n).max(start), end),
            (None, None) if self.bulk => (start, end),
            (None, None) => (start, start),
        };
        let has_next = hi < end || (last.is_some() && first.is_none() && end < keys.len());
        let has_prev = lo > start || start > 0;
        let items = models
            .drain(lo..hi)
            .zip(&keys[lo..hi])
            .map(|(m, (v, id))| (m, encode_cursor(v, *id)))
            .collect();
        Ok(Page {
            items,
            has_next,
            has_prev,
        })
    }

    /// Resolves the operation's root fields against the store.
    pub fn run_root(
        &mut self,
        store: &mut ShopifyStore,
        kind: OpKind,
        sel: &Sel<'a>,
        scope: &str,
    ) -> Value {
        let root_ty = match kind {
            OpKind::Query => "QueryRoot",
            OpKind::Mutation => "Mutation",
        };
        let mut fields = Vec::new();
        self.collect_fields(root_ty, sel, &mut fields);
        let mut data = Map::new();
        for f in fields {
            let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
            if f.name == "__typename" {
                data.insert(key, json!(root_ty));
                continue;
            }
            let needs_products = matches!(
                f.name.as_str(),
                "products" | "product" | "productByHandle" | "productsCount" | "nodes" | "node"
            );
            if needs_products
                && !scope
                    .split(',')
                    .any(|s| matches!(s.trim(), "read_products" | "write_products"))
            {
                let mut e = gql_error(
                    format!("Access denied for {} field. Required access: `read_products` access scope.", f.name),
                    Some(f.position),
                    Some("ACCESS_DENIED"),
                );
                e["path"] = json!([key]);
                e["extensions"]["documentation"] =
                    json!("https://shopify.dev/api/usage/access-scopes");
                e["extensions"]["requiredAccess"] = json!("`read_products` access scope.");
                self.errors.push(e);
                data.insert(key, Value::Null);
                continue;
            }
            let v = match kind {
                OpKind::Query => self.query_field(store, f),
                OpKind::Mutation => self.mutation_field(store, f),
            };
            data.insert(key, v);
        }
        Value::Object(data)
    }

    fn query_field(&mut self, store: &mut ShopifyStore, f: &Field<'a>) -> Value {
        let Some(shop) = store.shops.get(&self.shop) else {
            return Value::Null;
        };
        let shop_domain = shop.domain.clone();
        let padding = shop.description_padding;
        let currency = shop.currency.clone();
        match f.name.as_str() {
            "products" => {
                let query = self
                    .arg(f, "query")
                    .and_then(|v| v.as_str().map(search::parse))
                    .unwrap_or_default();
                let sort = match self
                    .arg(f, "sortKey")
                    .and_then(|v| v.as_str().map(str::to_owned))
                {
                    None => SortKey::Id,
                    Some(s) => match SortKey::parse(&s) {
                        Some(k) => k,
                        None => {
                            self.errors.push(gql_error(
                                format!("Argument 'sortKey' on Field 'products' has an invalid value ({s}). Expected type 'ProductSortKeys'."),
                                Some(f.position),
                                Some("argumentLiteralsIncompatible"),
                            ));
                            return Value::Null;
                        }
                    },
                };
                let reverse = self
                    .arg(f, "reverse")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                let mut keyed: Vec<((SortVal, u64), usize)> = shop
                    .products
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| query.matches(p))
                    .map(|(i, p)| ((sort.value(p), p.id), i))
                    .collect();
                keyed.sort_by(|a, b| search::compare(&a.0, &b.0, reverse));
                let keys: Vec<(SortVal, u64)> = keyed.iter().map(|(k, _)| k.clone()).collect();
                // Only build models for the requested window: page over indices first.
                let idx_models: Vec<Value> = keyed.iter().map(|(_, i)| json!(i)).collect();
                match self.page(&keys, idx_models, f, reverse) {
                    Ok(mut page) => {
                        for (m, _) in page.items.iter_mut() {
                            let i = m.as_u64().unwrap_or(0) as usize;
                            *m = product_model(&shop.products[i], &shop_domain, padding, &currency);
                        }
                        self.project_connection(page, "Product", &f.selection_set)
                    }
                    Err(e) => {
                        self.errors.push(gql_error(e, Some(f.position), None));
                        Value::Null
                    }
                }
            }
            "product" | "productByHandle" => {
                let found = if f.name == "product" {
                    self.arg(f, "id")
                        .and_then(|v| v.as_str().and_then(gid_number))
                        .and_then(|id| shop.product_index(id))
                } else {
                    let handle = self
                        .arg(f, "handle")
                        .and_then(|v| v.as_str().map(str::to_owned));
                    shop.products
                        .iter()
                        .position(|p| Some(&p.handle) == handle.as_ref())
                };
                match found {
                    Some(i) => {
                        self.actual_cost += 1;
                        let m = product_model(&shop.products[i], &shop_domain, padding, &currency);
                        self.project(&m, "Product", &f.selection_set)
                    }
                    None => Value::Null,
                }
            }
            "productsCount" => {
                let query = self
                    .arg(f, "query")
                    .and_then(|v| v.as_str().map(search::parse))
                    .unwrap_or_default();
                let limit = self
                    .arg(f, "limit")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(10_000) as usize;
                let count = shop.products.iter().filter(|p| query.matches(p)).count();
                self.actual_cost += 1;
                let m = json!({
                    "__typename": "Count",
                    "count": count.min(limit),
                    "precision": if count > limit { "AT_LEAST" } else { "EXACT" },
                });
                self.project(&m, "Count", &f.selection_set)
            }
            "shop" => {
                self.actual_cost += 1;
                let m = shop_model(shop);
                self.project(&m, "Shop", &f.selection_set)
            }
            "nodes" | "node" => {
                let ids: Vec<String> = if f.name == "nodes" {
                    self.arg(f, "ids")
                        .and_then(|v| v.as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                } else {
                    self.arg(f, "id")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .into_iter()
                        .collect()
                };
                let results: Vec<Value> = ids
                    .iter()
                    .map(|gid| match node_model(store, &self.shop, gid) {
                        Some(m) => {
                            self.actual_cost += 1;
                            self.project(&m, "Node", &f.selection_set)
                        }
                        None => Value::Null,
                    })
                    .collect();
                if f.name == "nodes" {
                    Value::Array(results)
                } else {
                    results.into_iter().next().unwrap_or(Value::Null)
                }
            }
            "bulkOperations" => {
                let filter = self
                    .arg(f, "query")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let wanted = |key: &str| -> Vec<String> {
                    filter
                        .split_whitespace()
                        .filter_map(|term| term.split_once(':'))
                        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| {
                            v.trim_matches(|c| c == '"' || c == '\'')
                                .to_ascii_uppercase()
                        })
                        .collect()
                };
                let (statuses, types) = (wanted("status"), wanted("operation_type"));
                let reverse = self
                    .arg(f, "reverse")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                // Newest first by default (ids grow with creation, so CREATED_AT and ID agree).
                let mut ops: Vec<&super::bulk::BulkOp> = store
                    .bulk_ops
                    .values()
                    .filter(|op| op.shop == self.shop)
                    .filter(|op| statuses.is_empty() || statuses.iter().any(|s| s == op.status))
                    .filter(|_| types.is_empty() || types.iter().any(|t| t == "QUERY"))
                    .collect();
                let newest_first = !reverse;
                ops.sort_by(|a, b| {
                    let o = a.id.cmp(&b.id);
                    if newest_first {
                        o.reverse()
                    } else {
                        o
                    }
                });
                let keys: Vec<(SortVal, u64)> = ops
                    .iter()
                    .map(|op| (SortVal::Num(op.id as i64), op.id))
                    .collect();
                let models: Vec<Value> = ops.iter().map(|op| op.model()).collect();
                match self.page(&keys, models, f, newest_first) {
                    Ok(page) => self.project_connection(page, "BulkOperation", &f.selection_set),
                    Err(e) => {
                        self.errors.push(gql_error(e, Some(f.position), None));
                        Value::Null
                    }
                }
            }
            "bulkOperation" | "currentBulkOperation" => {
                let op = if f.name == "bulkOperation" {
                    self.arg(f, "id")
                        .and_then(|v| v.as_str().and_then(gid_number))
                        .and_then(|id| store.bulk_ops.get(&id))
                        .filter(|op| op.shop == self.shop)
                } else {
                    store
                        .bulk_ops
                        .values()
                        .filter(|op| op.shop == self.shop)
                        .max_by_key(|op| op.id)
                };
                match op.map(|op| op.model()) {
                    Some(m) => {
                        self.actual_cost += 1;
                        self.project(&m, "BulkOperation", &f.selection_set)
                    }
                    None => Value::Null,
                }
            }
            _ => Value::Null,
        }
    }

    fn mutation_field(&mut self, store: &mut ShopifyStore, f: &Field<'a>) -> Value {
        match f.name.as_str() {
            "bulkOperationRunQuery" => {
                let inner = self
                    .arg(f, "query")
                    .and_then(|v| v.as_str().map(str::to_owned));
                let result = match inner {
                    Some(inner) => bulk::start(store, &self.shop, &inner, &self.base_url),
                    None => Err(vec![bulk::user_error(
                        "INVALID",
                        "query",
                        "Query can't be blank",
                    )]),
                };
                let payload = match result {
                    Ok(id) => {
                        self.started_bulk_ops.push(id);
                        let model = store.bulk_ops.get(&id).map(|op| op.model());
                        json!({ "__typename": "BulkOperationRunQueryPayload", "bulkOperation": model, "userErrors": [] })
                    }
                    Err(errors) => json!({
                        "__typename": "BulkOperationRunQueryPayload",
                        "bulkOperation": null,
                        "userErrors": errors,
                    }),
                };
                let cost_before = self.actual_cost;
                let v = self.project(&payload, "BulkOperationRunQueryPayload", &f.selection_set);
                // Mutations cost a flat 10 however much they select.
                self.actual_cost = cost_before + 10;
                v
            }
            "bulkOperationCancel" => {
                let id = self
                    .arg(f, "id")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let (op, user_errors, started) = bulk::cancel(store, &self.shop, &id);
                self.canceled_bulk_ops.extend(started);
                let payload = json!({
                    "__typename": "BulkOperationCancelPayload",
                    "bulkOperation": op,
                    "userErrors": user_errors,
                });
                let cost_before = self.actual_cost;
                let v = self.project(&payload, "BulkOperationCancelPayload", &f.selection_set);
                self.actual_cost = cost_before + 10;
                v
            }
            "appUninstall" => {
                // The app uninstalls itself: every token it holds for the shop stops working.
                super::webhooks::uninstall(store, &self.shop);
                let payload = json!({
                    "__typename": "AppUninstallPayload",
                    "app": { "__typename": "App", "id": "gid://shopify/App/1", "title": "SendPersonal", "handle": "sendpersonal", "apiKey": "sandbox" },
                    "userErrors": [],
                });
                let cost_before = self.actual_cost;
                let v = self.project(&payload, "AppUninstallPayload", &f.selection_set);
                self.actual_cost = cost_before + 10;
                v
            }
            _ => Value::Null,
        }
    }
}

/// PageInfo and the edge's `node` are priced by their connection, not as separate objects.
fn free_object(parent: &str, field: &str) -> bool {
    (parent.starts_with("Connection:") && field == "pageInfo")
        || (parent.starts_with("Edge:") && field == "node")
}

/// Repeated selections of the same response key merge (GraphQL field merging).
fn merge_into(out: &mut Map<String, Value>, key: String, v: Value) {
    match (out.get_mut(&key), v) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, val) in new {
                merge_into(existing, k, val);
            }
        }
        (_, v) => {
            out.insert(key, v);
        }
    }
}

fn const_value(v: &q::Value<'_, String>) -> Value {
    match v {
        q::Value::Variable(_) | q::Value::Null => Value::Null,
        q::Value::Int(n) => n.as_i64().map(Value::from).unwrap_or(Value::Null),
        q::Value::Float(f) => json!(f),
        q::Value::String(s) => json!(s),
        q::Value::Boolean(b) => json!(b),
        q::Value::Enum(e) => json!(e),
        q::Value::List(items) => Value::Array(items.iter().map(const_value).collect()),
        q::Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), const_value(v)))
                .collect(),
        ),
    }
}

fn node_model(store: &ShopifyStore, shop: &str, gid: &str) -> Option<Value> {
    let shop_ref = store.shops.get(shop)?;
    let n = gid_number(gid)?;
    let kind = gid.strip_prefix("gid://shopify/")?.split('/').next()?;
    match kind {
        "Product" => shop_ref.product_index(n).map(|i| {
            product_model(
                &shop_ref.products[i],
                shop,
                shop_ref.description_padding,
                &shop_ref.currency,
            )
        }),
        "ProductVariant" => shop_ref
            .product_index(n / 100)
            .map(|i| {
                product_model(
                    &shop_ref.products[i],
                    shop,
                    shop_ref.description_padding,
                    &shop_ref.currency,
                )
            })
            .and_then(|p| {
                p["variants"]
                    .as_array()?
                    .iter()
                    .find(|v| v["id"] == json!(gid))
                    .cloned()
            }),
        "BulkOperation" => store
            .bulk_ops
            .get(&n)
            .filter(|op| op.shop == shop)
            .map(|op| op.model()),
        "Shop" => (shop_ref.id == n).then(|| shop_model(shop_ref)),
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct GraphqlBody {
    query: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

fn valid_version(v: &str) -> bool {
    v == "unstable"
        || (v.len() == 7
            && v.as_bytes()[4] == b'-'
            && v[..4].chars().all(|c| c.is_ascii_digit())
            && v[5..].chars().all(|c| c.is_ascii_digit()))
}

pub async fn handle(
    State(st): State<Arc<AppState>>,
    Path((shop, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut stats = st.stats();
        Stats::bump(&mut stats.shopify_requests, "POST graphql.json");
    }
    if !valid_version(&version) {
        return json_response(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();

    let mut store = st.shopify();
    if !store.shops.contains_key(&shop) {
        return json_response(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    }
    let scope = match super::oauth::check_access_token(&store, &shop, &token) {
        Some(scope) => scope,
        None => return invalid_token(),
    };
    if let Some(s) = store.shops.get_mut(&shop) {
        if s.faults > 0 {
            s.faults -= 1;
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"errors": [{
                    "message": "Internal error. Looks like something went wrong on our end.",
                    "extensions": { "code": "INTERNAL_SERVER_ERROR" },
                }]}),
            );
        }
    }

    // Shopify also accepts `Content-Type: application/graphql` with the raw document.
    let is_raw_graphql = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/graphql"));
    let req = if is_raw_graphql {
        GraphqlBody {
            query: Some(String::from_utf8_lossy(&body).into_owned()),
            variables: None,
            operation_name: None,
        }
    } else {
        match serde_json::from_slice::<GraphqlBody>(&body) {
            Ok(b) => b,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"errors": {"query": [format!("Required parameter missing or invalid: {e}")]}}),
                )
            }
        }
    };
    let Some(query_text) = req.query.filter(|q| !q.trim().is_empty()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"errors": {"query": ["Required parameter missing or invalid"]}}),
        );
    };
    let variables = match req.variables {
        Some(Value::Object(m)) => m,
        // Some clients send variables as a JSON-encoded string.
        Some(Value::String(s)) => match serde_json::from_str(&s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    let doc = match graphql_parser::parse_query::<String>(&query_text) {
        Ok(d) => d,
        Err(e) => {
            return json_response(
                StatusCode::OK,
                json!({"errors": [gql_error(format!("Parse error: {}", e.to_string().trim()), None, Some("parseError"))]}),
            )
        }
    };
    let (kind, sel, var_defs) = match select_operation(&doc, req.operation_name.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            return json_response(
                StatusCode::OK,
                json!({"errors": [gql_error(e, None, None)]}),
            )
        }
    };
    let mut exec = Exec::new(&doc, var_defs, variables, &shop, &st.base_url);
    let root_ty = match kind {
        OpKind::Query => "QueryRoot",
        OpKind::Mutation => "Mutation",
    };
    let op_label = match kind {
        OpKind::Query => "query",
        OpKind::Mutation => "mutation",
    };
    exec.validate(root_ty, sel, &mut vec![op_label.to_string()]);
    if !exec.errors.is_empty() {
        return json_response(StatusCode::OK, json!({ "errors": exec.errors }));
    }

    // Fault injection for bulk status reads: the request fails as a whole, like a 500.
    let mut roots = Vec::new();
    exec.collect_fields(root_ty, sel, &mut roots);
    if roots.iter().any(|f| f.name == "bulkOperation") {
        if let Some(s) = store.shops.get_mut(&shop) {
            if s.bulk_status_faults > 0 {
                s.bulk_status_faults -= 1;
                return json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"errors": [{
                        "message": "Internal error. Looks like something went wrong on our end.",
                        "extensions": { "code": "INTERNAL_SERVER_ERROR" },
                    }]}),
                );
            }
        }
    }

    let requested = exec.requested_cost(root_ty, sel);
    if requested > MAX_QUERY_COST {
        return json_response(
            StatusCode::OK,
            json!({"errors": [{
                "message": format!("Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"),
                "extensions": {
                    "code": "MAX_COST_EXCEEDED",
                    "cost": requested,
                    "maxCost": MAX_QUERY_COST,
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }]}),
        );
    }
    let Some(shop_state) = store.shops.get_mut(&shop) else {
        return json_response(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    };
    if !shop_state.bucket.try_take(requested as f64) {
        let status = shop_state.bucket.status_json();
        drop(store);
        let mut stats = st.stats();
        Stats::bump(&mut stats.shopify_throttled, &shop);
        return json_response(
            StatusCode::OK,
            json!({
                "errors": [{
                    "message": "Throttled",
                    "extensions": { "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits" },
                }],
                "extensions": { "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": null,
                    "throttleStatus": status,
                }},
            }),
        );
    }

    let data = exec.run_root(&mut store, kind, sel, &scope);
    let actual = exec.actual_cost.min(requested);
    let throttle_status = match store.shops.get_mut(&shop) {
        Some(s) => {
            s.bucket.refund((requested - actual) as f64);
            s.bucket.status_json()
        }
        None => Value::Null,
    };
    let started = std::mem::take(&mut exec.started_bulk_ops);
    let canceled = std::mem::take(&mut exec.canceled_bulk_ops);
    drop(store);
    {
        let mut stats = st.stats();
        *stats.shopify_cost_points.entry(shop.clone()).or_default() += actual as f64;
        for _ in &started {
            Stats::bump(&mut stats.shopify_bulk_operations, &shop);
        }
    }
    for id in started {
        tokio::spawn(bulk::run(st.clone(), id));
    }
    for id in canceled {
        tokio::spawn(bulk::finish_cancel(st.clone(), id));
    }

    let mut body = json!({
        "data": data,
        "extensions": { "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": throttle_status,
        }},
    });
    if !exec.errors.is_empty() {
        body["errors"] = json!(exec.errors);
    }
    json_response(StatusCode::OK, body)
}
