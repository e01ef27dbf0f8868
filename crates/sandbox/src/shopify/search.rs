//! Shopify's product search syntax (the `query:` argument) and `sortKey`s, as far as a catalog
//! sync needs them: `status:`, `published_status:`, `updated_at:>…`, `id:>…`, `tag:`,
//! `product_type:`, `vendor:`, `handle:`, `title:` and free text. Terms are ANDed; `OR` is
//! accepted loosely (treated as AND) and unknown fields are ignored, as Shopify does.

use std::cmp::Ordering;

use super::catalog_data::{Product, ProductStatus};
use crate::util::parse_datetime;

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
        }
    }
}

#[derive(Debug, Clone)]
enum Term {
    Status(Vec<ProductStatus>),
    Published(bool),
    UpdatedAt(Cmp, i64),
    CreatedAt(Cmp, i64),
    Id(Cmp, u64),
    Tag(String),
    ProductType(String),
    Vendor(String),
    Handle(String),
    Title(String),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    terms: Vec<(bool, Term)>,
}

pub fn parse(query: &str) -> ProductQuery {
    let mut terms = Vec::new();
    for token in tokenize(query) {
        if matches!(token.as_str(), "AND" | "OR") {
            continue;
        }
        let (negated, token) = match token.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, token),
        };
        let Some((field, value)) = token.split_once(':') else {
            terms.push((negated, Term::Text(unquote(&token).to_lowercase())));
            continue;
        };
        let (cmp, value) = split_cmp(value);
        let value = unquote(value);
        let term = match field.to_ascii_lowercase().as_str() {
            "status" => Term::Status(value.split(',').filter_map(ProductStatus::parse).collect()),
            "published_status" => match value.to_ascii_lowercase().as_str() {
                "published" | "online_store:visible" => Term::Published(true),
                "unpublished" | "online_store:hidden" => Term::Published(false),
                _ => continue,
            },
            "updated_at" => match parse_datetime(&value) {
                Some(ts) => Term::UpdatedAt(cmp, ts),
                None => continue,
            },
            "created_at" => match parse_datetime(&value) {
                Some(ts) => Term::CreatedAt(cmp, ts),
                None => continue,
            },
            "id" => match value.rsplit('/').next().and_then(|n| n.parse().ok()) {
                Some(id) => Term::Id(cmp, id),
                None => continue,
            },
            "tag" | "tags" => Term::Tag(value.to_lowercase()),
            "product_type" => Term::ProductType(value.to_lowercase()),
            "vendor" => Term::Vendor(value.to_lowercase()),
            "handle" => Term::Handle(value.to_lowercase()),
            "title" => Term::Title(value.trim_matches('*').to_lowercase()),
            _ => continue,
        };
        terms.push((negated, term));
    }
    ProductQuery { terms }
}

impl ProductQuery {
    pub fn matches(&self, p: &Product) -> bool {
        self.terms
            .iter()
            .all(|(negated, t)| term_matches(t, p) != *negated)
    }
}

fn term_matches(t: &Term, p: &Product) -> bool {
    match t {
        Term::Status(s) => s.contains(&p.status),
        Term::Published(want) => p.published == *want,
        Term::UpdatedAt(c, ts) => c.test(p.updated_at, *ts),
        Term::CreatedAt(c, ts) => c.test(p.created_at, *ts),
        Term::Id(c, id) => c.test(p.id, *id),
        Term::Tag(tag) => p.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)),
        Term::ProductType(v) => p.product_type.eq_ignore_ascii_case(v),
        Term::Vendor(v) => p.vendor.eq_ignore_ascii_case(v),
        Term::Handle(v) => p.handle == *v,
        Term::Title(v) => p.title.to_lowercase().contains(v.as_str()),
        Term::Text(v) => {
            p.title.to_lowercase().contains(v.as_str())
                || p.tags.iter().any(|t| t.contains(v.as_str()))
                || p.product_type.to_lowercase().contains(v.as_str())
        }
    }
}

fn tokenize(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in q.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                cur.push(c);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn split_cmp(v: &str) -> (Cmp, &str) {
    for (prefix, cmp) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            return (cmp, rest);
        }
    }
    (Cmp::Eq, v)
}

fn unquote(v: &str) -> String {
    v.trim_matches(|c| c == '\'' || c == '"').to_string()
}

/// A comparable sort value (what a cursor's `last_value` carries).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortVal {
    Num(i64),
    Str(String),
}

impl SortVal {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SortVal::Num(n) => serde_json::Value::String(n.to_string()),
            SortVal::Str(s) => serde_json::Value::String(s.clone()),
        }
    }

    /// Parses a cursor's `last_value` back, shaped like `like`.
    pub fn from_json(v: &serde_json::Value, like: &SortVal) -> Option<SortVal> {
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        match like {
            SortVal::Num(_) => s.parse().ok().map(SortVal::Num),
            SortVal::Str(_) => Some(SortVal::Str(s)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Title,
    UpdatedAt,
    CreatedAt,
    ProductType,
    Vendor,
    InventoryTotal,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ID" | "RELEVANCE" => SortKey::Id,
            "TITLE" => SortKey::Title,
            "UPDATED_AT" => SortKey::UpdatedAt,
            "CREATED_AT" | "PUBLISHED_AT" => SortKey::CreatedAt,
            "PRODUCT_TYPE" => SortKey::ProductType,
            "VENDOR" => SortKey::Vendor,
            "INVENTORY_TOTAL" => SortKey::InventoryTotal,
            _ => return None,
        })
    }

    pub fn value(self, p: &Product) -> SortVal {
        match self {
            SortKey::Id => SortVal::Num(p.id as i64),
            SortKey::Title => SortVal::Str(p.title.clone()),
            SortKey::UpdatedAt => SortVal::Num(p.updated_at),
            SortKey::CreatedAt => SortVal::Num(p.created_at),
            SortKey::ProductType => SortVal::Str(p.product_type.to_string()),
            SortKey::Vendor => SortVal::Str(p.vendor.to_string()),
            SortKey::InventoryTotal => SortVal::Num(p.total_inventory()),
        }
    }
}

/// Orders by (value, id), reversed when asked: the same order cursors resume in.
pub fn compare(a: &(SortVal, u64), b: &(SortVal, u64), reverse: bool) -> Ordering {
    let o = a.cmp(b);
    if reverse {
        o.reverse()
    } else {
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::catalog_data::generate_catalog;

    #[test]
    fn status_and_published_filters() {
        let cat = generate_catalog(3, 500);
        let q = parse("status:active AND published_status:published");
        let hits: Vec<_> = cat.iter().filter(|p| q.matches(p)).collect();
        assert!(!hits.is_empty());
        assert!(hits
            .iter()
            .all(|p| p.status == ProductStatus::Active && p.published));
        let q = parse("status:active,draft");
        assert!(cat
            .iter()
            .filter(|p| q.matches(p))
            .all(|p| matches!(p.status, ProductStatus::Active | ProductStatus::Draft)));
        let q = parse("updated_at:>'2000-01-01T00:00:00Z'");
        assert_eq!(cat.iter().filter(|p| q.matches(p)).count(), cat.len());
    }
}
