//! A customer's purchase history, normalised from Klaviyo events. Klaviyo stores orders in
//! several shapes (the Shopify integration's "Placed Order", a custom/API "Placed Order", and
//! one flat "Ordered Product" event per line), so every shape is parsed leniently into one
//! `PurchasedItem`. Odd input never panics: a field that is missing or of the wrong type is
//! simply absent. The history lives in memory for one profile and is never stored.

use crate::domain::CatalogProduct;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Which Klaviyo metric an event belongs to. The events endpoint is queried per metric id, so
/// the caller knows it; the event resource itself only carries the metric's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderMetric {
    PlacedOrder,
    OrderedProduct,
}

impl OrderMetric {
    /// The metric's name as Klaviyo lists it under `GET /api/metrics`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Placed Order" => Some(Self::PlacedOrder),
            "Ordered Product" => Some(Self::OrderedProduct),
            _ => None,
        }
    }
}

/// One bought line, whatever shape it came in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurchasedItem {
    /// The numeric Shopify product id as text (a GID is reduced to its number); custom feeds
    /// may put their own id here.
    pub product_id: Option<String>,
    pub handle: Option<String>,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub quantity: u32,
    /// Unit price.
    pub price: Option<f64>,
    /// Categories, collections and the product type as the event named them.
    pub categories: Vec<String>,
    pub product_type: Option<String>,
    pub brand: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
    /// Seconds since the Unix epoch.
    pub ordered_at: i64,
}

impl PurchasedItem {
    /// Whether this line is `product`: by numeric product id when both sides have one (ids are
    /// authoritative, so a different id is a different product), else by handle (also read
    /// from a `/products/<handle>` URL), else by exact title ignoring case.
    pub fn matches(&self, product: &CatalogProduct) -> bool {
        if let (Some(pid), Some(nid)) = (self.numeric_product_id(), product.numeric_id()) {
            return pid == nid;
        }
        if let Some(handle) = self.effective_handle() {
            return handle.eq_ignore_ascii_case(&product.handle);
        }
        match &self.title {
            Some(title) => same_title(title, &product.title),
            None => false,
        }
    }

    /// The product id when it is a Shopify number (custom feeds may use their own ids).
    pub fn numeric_product_id(&self) -> Option<&str> {
        self.product_id
            .as_deref()
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    }

    /// The handle, or the one in a storefront URL (`…/products/<handle>?…`).
    pub fn effective_handle(&self) -> Option<&str> {
        self.handle
            .as_deref()
            .filter(|h| !h.is_empty())
            .or_else(|| self.url.as_deref().and_then(handle_from_url))
    }
}

pub(crate) fn same_title(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn handle_from_url(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("/products/")?;
    let handle = rest.split(['/', '?', '#']).next()?;
    (!handle.is_empty()).then_some(handle)
}

/// One event, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderEvent {
    pub metric: OrderMetric,
    /// Which order this event belongs to (`$event_id` or `OrderId` of a Placed Order, `OrderId`
    /// of an Ordered Product), used to avoid counting an order twice when both metrics are read.
    pub order_key: Option<String>,
    pub ordered_at: i64,
    /// `$value`: the order total for Placed Order, the line total for Ordered Product.
    pub value: Option<f64>,
    pub items: Vec<PurchasedItem>,
}

/// Parses one event resource as `GET /api/events` returns it. `None` only when the event has
/// no usable time (without one it cannot be bounded by age).
pub fn parse_event(event: &Value, metric: OrderMetric) -> Option<OrderEvent> {
    let attributes = event.get("attributes")?;
    let ordered_at = event_time(attributes)?;
    let empty = Map::new();
    let props = attributes
        .get("event_properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let value = props.get("$value").and_then(number);
    let parsed = match metric {
        OrderMetric::PlacedOrder => OrderEvent {
            metric,
            order_key: text(props, &["$event_id", "OrderId", "order_id"]),
            ordered_at,
            value,
            items: placed_order_items(props, ordered_at),
        },
        OrderMetric::OrderedProduct => OrderEvent {
            metric,
            order_key: text(props, &["OrderId", "order_id", "Order ID"]),
            ordered_at,
            value,
            items: ordered_product_item(props, ordered_at)
                .into_iter()
                .collect(),
        },
    };
    Some(parsed)
}

/// `timestamp` is Unix seconds; fall back to the RFC 3339 `datetime`.
fn event_time(attributes: &Value) -> Option<i64> {
    if let Some(ts) = attributes.get("timestamp").and_then(number) {
        // Some exports carry milliseconds; no real order is from before 1973.
        let secs = if ts > 1e11 { ts / 1000.0 } else { ts };
        if secs.is_finite() && secs > 0.0 {
            return Some(secs as i64);
        }
    }
    let dt = attributes.get("datetime")?.as_str()?;
    time::OffsetDateTime::parse(dt, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn placed_order_items(props: &Map<String, Value>, at: i64) -> Vec<PurchasedItem> {
    // Order-level facts; attached to lines that do not carry their own.
    let mut order_categories = strings(props, &["Categories", "Collections"]);
    dedup_keep_order(&mut order_categories);
    let brands = strings(props, &["Brands"]);

    let line_items = props
        .get("$extra")
        .and_then(|e| e.get("line_items"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let item_values = props.get("Items").and_then(Value::as_array);

    let mut items: Vec<PurchasedItem> = if let Some(lines) = line_items {
        lines
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|l| shopify_line(l, at))
            .collect()
    } else if item_values.is_some_and(|a| a.iter().any(Value::is_object)) {
        item_values
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .filter_map(|l| flat_item(l, at))
            .collect()
    } else {
        // Only names: Shopify's `Items` strings or the custom `ItemNames`.
        let mut names = strings(props, &["Items"]);
        if names.is_empty() {
            names = strings(props, &["ItemNames"]);
        }
        names
            .into_iter()
            .map(|title| PurchasedItem {
                title: Some(title),
                quantity: 1,
                ordered_at: at,
                ..Default::default()
            })
            .collect()
    };
    for item in &mut items {
        if item.categories.is_empty() {
            item.categories = order_categories.clone();
        }
        if let Some(t) = &item.product_type {
            if !item.categories.iter().any(|c| c.eq_ignore_ascii_case(t)) {
                item.categories.push(t.clone());
            }
        }
        if item.brand.is_none() && brands.len() == 1 {
            item.brand = brands.first().cloned();
        }
    }
    items
}

/// A Shopify `$extra.line_items[]` entry.
fn shopify_line(line: &Map<String, Value>, at: i64) -> Option<PurchasedItem> {
    let empty = Map::new();
    let product = line
        .get("product")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let image_url = product
        .get("images")
        .and_then(Value::as_array)
        .and_then(|imgs| {
            imgs.iter().find_map(|i| {
                i.get("src")
                    .or_else(|| i.get("url"))
                    .and_then(Value::as_str)
            })
        })
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
        .or_else(|| text(line, &["image_url", "image"]));
    let product_type = text(product, &["product_type"]).or_else(|| text(line, &["product_type"]));
    let item = PurchasedItem {
        product_id: text(product, &["id"])
            .or_else(|| text(line, &["product_id"]))
            .map(shopify_id),
        handle: text(product, &["handle"]),
        sku: text(line, &["sku"]),
        title: text(line, &["title", "name"]).or_else(|| text(product, &["title"])),
        quantity: quantity(line, &["quantity"]),
        price: line.get("price").and_then(number),
        // Shopify puts collections on the order, not the line; they are attached below.
        categories: Vec::new(),
        product_type,
        brand: text(line, &["vendor"]).or_else(|| text(product, &["vendor"])),
        url: text(line, &["url", "product_url"]),
        image_url,
        ordered_at: at,
    };
    identifiable(item)
}

/// A custom `Items[]` object or a flat "Ordered Product" event: the same field names, with the
/// spellings the Shopify integration's Ordered Product uses as alternatives.
fn flat_item(p: &Map<String, Value>, at: i64) -> Option<PurchasedItem> {
    let quantity = quantity(p, &["Quantity", "quantity"]);
    let extra_product = p
        .get("$extra")
        .and_then(|e| e.get("product"))
        .and_then(Value::as_object);
    let product_type = text(p, &["Product Type", "ProductType"]);
    let mut categories = strings(p, &["Categories", "ProductCategories", "Collections"]);
    categories.extend(product_type.iter().cloned());
    dedup_keep_order(&mut categories);
    let item = PurchasedItem {
        product_id: text(p, &["ProductID", "ProductId", "product_id"])
            .or_else(|| extra_product.and_then(|e| text(e, &["id"])))
            .map(shopify_id),
        handle: text(p, &["Handle", "handle"])
            .or_else(|| extra_product.and_then(|e| text(e, &["handle"]))),
        sku: text(p, &["SKU", "Sku", "sku"]),
        title: text(p, &["ProductName", "Name", "Title", "Product Name"])
            .or_else(|| extra_product.and_then(|e| text(e, &["title"]))),
        quantity,
        price: ["ItemPrice", "Price", "price"]
            .iter()
            .find_map(|k| p.get(*k).and_then(number)),
        categories,
        product_type,
        brand: text(p, &["Brand", "ProductBrand", "Vendor"]),
        url: text(p, &["ProductURL", "URL", "Url"]),
        image_url: text(p, &["ImageURL", "ImageUrl", "Image"]),
        ordered_at: at,
    };
    identifiable(item)
}

fn ordered_product_item(props: &Map<String, Value>, at: i64) -> Option<PurchasedItem> {
    let mut item = flat_item(props, at)?;
    if item.price.is_none() {
        // The event's `$value` is the line total.
        item.price = props
            .get("$value")
            .and_then(number)
            .map(|v| v / f64::from(item.quantity.max(1)));
    }
    Some(item)
}

/// A line nobody can recognise (no id, handle, title or URL) is dropped.
fn identifiable(item: PurchasedItem) -> Option<PurchasedItem> {
    let known = item.product_id.is_some()
        || item.handle.is_some()
        || item.title.is_some()
        || item.url.is_some();
    known.then_some(item)
}

/// `gid://shopify/Product/123` → `123`; anything else unchanged.
fn shopify_id(id: String) -> String {
    match id.strip_prefix("gid://shopify/Product/") {
        Some(n) => n.to_owned(),
        None => id,
    }
}

/// The first of `keys` holding a non-empty string or a number, as trimmed text.
fn text(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match obj.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The first of `keys` holding a list (or a single string) of non-empty texts.
fn strings(obj: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    for k in keys {
        match obj.get(*k) {
            Some(Value::Array(a)) => {
                let list: Vec<String> = a
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                if !list.is_empty() {
                    return list;
                }
            }
            Some(Value::String(s)) if !s.trim().is_empty() => return vec![s.trim().to_owned()],
            _ => {}
        }
    }
    Vec::new()
}

/// A number, or a string holding one ("12.00", "$12.00", "1,299.00").
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let cleaned: String = s
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            cleaned.parse().ok()
        }
        _ => None,
    }?;
    n.is_finite().then_some(n)
}

fn quantity(obj: &Map<String, Value>, keys: &[&str]) -> u32 {
    keys.iter()
        .find_map(|k| obj.get(*k).and_then(number))
        .filter(|q| *q >= 1.0)
        .map(|q| q.min(f64::from(u32::MAX)) as u32)
        .unwrap_or(1)
}

fn dedup_keep_order(list: &mut Vec<String>) {
    let mut seen = HashSet::new();
    list.retain(|s| seen.insert(s.to_lowercase()));
}

/// How much history to read: the newest `max_events` events no older than `max_age_days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryBounds {
    pub max_events: usize,
    pub max_age_days: u32,
}

impl Default for HistoryBounds {
    /// Enough to see taste without paging: one events page, two years.
    fn default() -> Self {
        Self {
            max_events: 50,
            max_age_days: 730,
        }
    }
}

impl HistoryBounds {
    /// The earliest time still inside the bounds, for the events `greater-or-equal(datetime,…)`
    /// filter so Klaviyo does not send what would be dropped.
    pub fn since(&self, now: i64) -> i64 {
        now.saturating_sub(i64::from(self.max_age_days) * 86_400)
    }
}

/// What one customer bought, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurchaseHistory {
    pub items: Vec<PurchasedItem>,
    pub orders: usize,
    pub total_value: f64,
    pub last_order_at: Option<i64>,
}

impl PurchaseHistory {
    /// Builds the history from events of either metric. When an order arrives both as a Placed
    /// Order and as Ordered Product lines (same order key), it counts once, and its items come
    /// from whichever shape identifies more products.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = (OrderMetric, &'a Value)>,
        bounds: HistoryBounds,
        now: i64,
    ) -> Self {
        let since = bounds.since(now);
        let mut parsed: Vec<OrderEvent> = events
            .into_iter()
            .filter_map(|(metric, e)| parse_event(e, metric))
            .filter(|e| e.ordered_at >= since)
            .collect();
        parsed.sort_by_key(|e| std::cmp::Reverse(e.ordered_at));
        parsed.truncate(bounds.max_events);

        // Group into orders, keeping first-seen (newest) order.
        struct Order {
            ordered_at: i64,
            placed: Option<(Option<f64>, Vec<PurchasedItem>)>,
            lines: Vec<PurchasedItem>,
            line_value: f64,
        }
        let mut order_index: HashMap<String, usize> = HashMap::new();
        let mut orders: Vec<Order> = Vec::new();
        for (i, ev) in parsed.into_iter().enumerate() {
            // Without a key, a Placed Order is its own order; Ordered Product lines without a key
            // are grouped by their timestamp (lines of one order share it).
            let key = match (&ev.order_key, ev.metric) {
                (Some(k), _) => format!("k:{k}"),
                (None, OrderMetric::PlacedOrder) => format!("e:{i}"),
                (None, OrderMetric::OrderedProduct) => format!("t:{}", ev.ordered_at),
            };
            let idx = *order_index.entry(key).or_insert_with(|| {
                orders.push(Order {
                    ordered_at: ev.ordered_at,
                    placed: None,
                    lines: Vec::new(),
                    line_value: 0.0,
                });
                orders.len() - 1
            });
            let order = &mut orders[idx];
            order.ordered_at = order.ordered_at.max(ev.ordered_at);
            match ev.metric {
                OrderMetric::PlacedOrder if order.placed.is_none() => {
                    order.placed = Some((ev.value, ev.items))
                }
                OrderMetric::PlacedOrder => {} // a duplicate delivery of the same order
                OrderMetric::OrderedProduct => {
                    order.line_value += ev.value.unwrap_or_else(|| line_total(&ev.items));
                    order.lines.extend(ev.items);
                }
            }
        }

        let mut history = PurchaseHistory::default();
        for order in orders {
            let (value, items) = match order.placed {
                Some((value, placed_items)) => {
                    let items = if identified(&order.lines) > identified(&placed_items) {
                        order.lines
                    } else {
                        placed_items
                    };
                    (value.unwrap_or_else(|| line_total(&items)), items)
                }
                None => (order.line_value, order.lines),
            };
            history.orders += 1;
            history.total_value += value;
            history.last_order_at = history.last_order_at.max(Some(order.ordered_at));
            history.items.extend(items);
        }
        history
    }

    /// Convenience for the common case of reading only "Placed Order".
    pub fn from_placed_orders(events: &[Value], bounds: HistoryBounds, now: i64) -> Self {
        Self::from_events(
            events.iter().map(|e| (OrderMetric::PlacedOrder, e)),
            bounds,
            now,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Mean unit price of the lines that carry one.
    pub fn average_item_price(&self) -> Option<f64> {
        let prices: Vec<f64> = self
            .items
            .iter()
            .filter_map(|i| i.price)
            .filter(|p| *p > 0.0)
            .collect();
        (!prices.is_empty()).then(|| prices.iter().sum::<f64>() / prices.len() as f64)
    }

    /// Whether any bought line is `product`.
    pub fn contains(&self, product: &CatalogProduct) -> bool {
        self.items.iter().any(|i| i.matches(product))
    }
}

fn identified(items: &[PurchasedItem]) -> usize {
    items
        .iter()
        .filter(|i| i.product_id.is_some() || i.effective_handle().is_some())
        .count()
}

fn line_total(items: &[PurchasedItem]) -> f64 {
    items
        .iter()
        .filter_map(|i| i.price.map(|p| p * f64::from(i.quantity)))
        .sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Money;
    use serde_json::json;

    pub(crate) const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const DAY: i64 = 86_400;

    pub(crate) fn event(ts: i64, props: Value) -> Value {
        json!({
            "type": "event",
            "id": format!("ev{ts}"),
            "attributes": {"timestamp": ts, "datetime": "ignored", "event_properties": props},
            "relationships": {"metric": {"data": {"type": "metric", "id": "M1"}}}
        })
    }

    /// The Shopify integration's Placed Order, as the sandbox and Klaviyo render it.
    pub(crate) fn shopify_order(
        ts: i64,
        order_id: u64,
        lines: &[(u64, &str, &str, &str, &str)],
    ) -> Value {
        let line_items: Vec<Value> = lines
            .iter()
            .map(|(id, title, handle, price, vendor)| {
                json!({
                    "title": title, "quantity": 1, "price": price, "sku": format!("SKU-{id}"),
                    "variant_id": id * 10, "vendor": vendor,
                    "product": {"id": id, "title": title, "handle": handle, "product_type": "Jackets",
                                "images": [{"src": format!("https://cdn.example/{handle}.jpg")}]}
                })
            })
            .collect();
        event(
            ts,
            json!({
                "Items": lines.iter().map(|l| l.1).collect::<Vec<_>>(),
                "Collections": ["Outerwear"],
                "Item Count": lines.len(),
                "$value": 120.0,
                "$event_id": order_id.to_string(),
                "$extra": {"line_items": line_items}
            }),
        )
    }

    pub(crate) fn product(id: u64, title: &str) -> CatalogProduct {
        CatalogProduct {
            id: format!("gid://shopify/Product/{id}"),
            title: title.into(),
            description: format!("About {title}."),
            handle: title.to_lowercase().replace(' ', "-"),
            url: format!(
                "https://shop.example/products/{}",
                title.to_lowercase().replace(' ', "-")
            ),
            tags: vec![],
            product_type: "Jackets".into(),
            vendor: "Northwind".into(),
            price_min: Money {
                amount: "89.00".into(),
                currency: "USD".into(),
            },
            price_max: Money {
                amount: "89.00".into(),
                currency: "USD".into(),
            },
            image_url: Some(format!("https://cdn.example/{id}.jpg")),
            available: true,
            updated_at: "2025-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn shopify_placed_order_reads_line_items() {
        let ev = shopify_order(
            NOW - DAY,
            7,
            &[(101, "Alpine Jacket", "alpine-jacket", "89.00", "Northwind")],
        );
        let parsed = parse_event(&ev, OrderMetric::PlacedOrder).unwrap();
        assert_eq!(parsed.order_key.as_deref(), Some("7"));
        assert_eq!(parsed.value, Some(120.0));
        let item = &parsed.items[0];
        assert_eq!(item.product_id.as_deref(), Some("101"));
        assert_eq!(item.handle.as_deref(), Some("alpine-jacket"));
        assert_eq!(item.title.as_deref(), Some("Alpine Jacket"));
        assert_eq!(item.sku.as_deref(), Some("SKU-101"));
        assert_eq!(item.price, Some(89.0));
        assert_eq!(item.brand.as_deref(), Some("Northwind"));
        assert_eq!(item.product_type.as_deref(), Some("Jackets"));
        assert_eq!(
            item.categories,
            vec!["Outerwear", "Jackets"],
            "order collections plus the product type"
        );
        assert_eq!(
            item.image_url.as_deref(),
            Some("https://cdn.example/alpine-jacket.jpg")
        );
        assert_eq!(item.ordered_at, NOW - DAY);
    }

    #[test]
    fn shopify_placed_order_without_line_items_falls_back_to_item_names() {
        let ev = event(
            NOW,
            json!({"Items": ["Alpine Jacket", "Trail Socks"], "Collections": ["Outerwear"], "$value": 40}),
        );
        let parsed = parse_event(&ev, OrderMetric::PlacedOrder).unwrap();
        let titles: Vec<_> = parsed
            .items
            .iter()
            .map(|i| i.title.clone().unwrap())
            .collect();
        assert_eq!(titles, vec!["Alpine Jacket", "Trail Socks"]);
        assert_eq!(parsed.items[0].categories, vec!["Outerwear"]);
        assert_eq!(parsed.items[0].quantity, 1);
    }

    #[test]
    fn custom_placed_order_reads_item_objects() {
        let ev = event(
            NOW,
            json!({
                "OrderId": "C-1", "Categories": ["Outerwear"], "ItemNames": ["Alpine Jacket"], "Brands": ["Northwind"],
                "$value": 178.0,
                "Items": [{"ProductID": "101", "SKU": "AJ-1", "ProductName": "Alpine Jacket", "Quantity": 2,
                           "ItemPrice": 89.0, "RowTotal": 178.0,
                           "ProductURL": "https://shop.example/products/alpine-jacket?variant=1",
                           "ImageURL": "https://cdn.example/aj.jpg", "Categories": ["Outerwear", "Jackets"], "Brand": "Northwind"}]
            }),
        );
        let parsed = parse_event(&ev, OrderMetric::PlacedOrder).unwrap();
        assert_eq!(parsed.order_key.as_deref(), Some("C-1"));
        let item = &parsed.items[0];
        assert_eq!(item.product_id.as_deref(), Some("101"));
        assert_eq!(item.quantity, 2);
        assert_eq!(item.price, Some(89.0));
        assert_eq!(item.categories, vec!["Outerwear", "Jackets"]);
        assert_eq!(item.brand.as_deref(), Some("Northwind"));
        assert_eq!(item.effective_handle(), Some("alpine-jacket"));
        assert_eq!(
            item.image_url.as_deref(),
            Some("https://cdn.example/aj.jpg")
        );
    }

    #[test]
    fn custom_placed_order_with_only_item_names_still_yields_titles() {
        let ev = event(
            NOW,
            json!({"ItemNames": ["Alpine Jacket"], "Categories": ["Outerwear"], "Brands": ["Northwind"]}),
        );
        let item = &parse_event(&ev, OrderMetric::PlacedOrder).unwrap().items[0];
        assert_eq!(item.title.as_deref(), Some("Alpine Jacket"));
        assert_eq!(item.brand.as_deref(), Some("Northwind"));
        assert_eq!(item.categories, vec!["Outerwear"]);
    }

    #[test]
    fn ordered_product_in_shopify_spelling_is_read() {
        let ev = event(
            NOW,
            json!({"$value": 178.0, "Name": "Alpine Jacket", "ProductID": 101, "SKU": "AJ-1", "Quantity": 2,
                   "Vendor": "Northwind", "Product Type": "Jackets", "Collections": ["Outerwear"],
                   "ImageURL": "https://cdn.example/aj.jpg", "URL": "https://shop.example/products/alpine-jacket",
                   "OrderId": 7, "$extra": {"product": {"id": 101, "handle": "alpine-jacket"}}}),
        );
        let parsed = parse_event(&ev, OrderMetric::OrderedProduct).unwrap();
        assert_eq!(parsed.order_key.as_deref(), Some("7"));
        let item = &parsed.items[0];
        assert_eq!(item.title.as_deref(), Some("Alpine Jacket"));
        assert_eq!(
            item.price,
            Some(89.0),
            "unit price is the line value over the quantity"
        );
        assert_eq!(item.categories, vec!["Outerwear", "Jackets"]);
        assert_eq!(item.handle.as_deref(), Some("alpine-jacket"));
        assert_eq!(item.brand.as_deref(), Some("Northwind"));
    }

    #[test]
    fn ordered_product_in_custom_spelling_is_read() {
        let ev = event(
            NOW,
            json!({"$value": 20.0, "OrderId": "C-1", "ProductID": "gid://shopify/Product/55", "ProductName": "Trail Socks",
                   "ProductCategories": ["Accessories"], "ProductBrand": "Woolly", "ProductURL": "https://shop.example/products/trail-socks"}),
        );
        let item = &parse_event(&ev, OrderMetric::OrderedProduct).unwrap().items[0];
        assert_eq!(
            item.product_id.as_deref(),
            Some("55"),
            "GIDs are reduced to their number"
        );
        assert_eq!(item.brand.as_deref(), Some("Woolly"));
        assert_eq!(item.categories, vec!["Accessories"]);
        assert_eq!(item.price, Some(20.0));
    }

    #[test]
    fn datetime_is_used_when_timestamp_is_missing() {
        let ev = json!({"attributes": {"datetime": "2025-12-31T00:00:00+00:00", "event_properties": {"Items": ["A"]}}});
        assert_eq!(
            parse_event(&ev, OrderMetric::PlacedOrder)
                .unwrap()
                .ordered_at,
            NOW - DAY
        );
    }

    #[test]
    fn odd_input_never_panics_and_yields_nothing_usable() {
        let odd = [
            json!(null),
            json!([1, 2]),
            json!({"attributes": null}),
            json!({"attributes": {"timestamp": "soon"}}),
            json!({"attributes": {"timestamp": -5}}),
            json!({"attributes": {"timestamp": 1, "event_properties": {"Items": [null, 3, {"Quantity": "x"}], "$extra": {"line_items": [1, {"product": 5}]}}}}),
            json!({"attributes": {"timestamp": 1, "event_properties": {"Items": "Alpine Jacket", "$value": "oops", "Quantity": -4}}}),
        ];
        for ev in &odd {
            for metric in [OrderMetric::PlacedOrder, OrderMetric::OrderedProduct] {
                if let Some(parsed) = parse_event(ev, metric) {
                    assert!(parsed.items.iter().all(|i| i.quantity >= 1));
                }
            }
        }
        assert!(parse_event(&odd[0], OrderMetric::PlacedOrder).is_none());
        assert!(parse_event(&odd[3], OrderMetric::PlacedOrder).is_none());
    }

    #[test]
    fn millisecond_timestamps_are_read_as_seconds() {
        let ev = event((NOW - DAY) * 1000, json!({"Items": ["A"]}));
        assert_eq!(
            parse_event(&ev, OrderMetric::PlacedOrder)
                .unwrap()
                .ordered_at,
            NOW - DAY
        );
    }

    #[test]
    fn history_counts_orders_value_and_last_order() {
        let events = vec![
            shopify_order(
                NOW - 10 * DAY,
                1,
                &[(101, "Alpine Jacket", "alpine-jacket", "89.00", "Northwind")],
            ),
            shopify_order(
                NOW - 2 * DAY,
                2,
                &[
                    (102, "Trail Socks", "trail-socks", "12.00", "Woolly"),
                    (103, "Beanie", "beanie", "19.00", "Woolly"),
                ],
            ),
        ];
        let h = PurchaseHistory::from_placed_orders(&events, HistoryBounds::default(), NOW);
        assert_eq!(h.orders, 2);
        assert_eq!(h.total_value, 240.0);
        assert_eq!(h.last_order_at, Some(NOW - 2 * DAY));
        let titles: Vec<_> = h
            .items
            .iter()
            .map(|i| i.title.as_deref().unwrap())
            .collect();
        assert_eq!(
            titles,
            vec!["Trail Socks", "Beanie", "Alpine Jacket"],
            "newest first"
        );
        assert_eq!(h.average_item_price(), Some(40.0));
    }

    #[test]
    fn history_drops_events_older_than_max_age() {
        let events = vec![
            shopify_order(NOW - 400 * DAY, 1, &[(101, "Old", "old", "1", "V")]),
            shopify_order(NOW - 5 * DAY, 2, &[(102, "New", "new", "1", "V")]),
        ];
        let h = PurchaseHistory::from_placed_orders(
            &events,
            HistoryBounds {
                max_events: 10,
                max_age_days: 365,
            },
            NOW,
        );
        assert_eq!(h.orders, 1);
        assert_eq!(h.items[0].title.as_deref(), Some("New"));
    }

    #[test]
    fn history_keeps_only_the_newest_max_events() {
        let events: Vec<Value> = (0..5)
            .map(|i| {
                shopify_order(
                    NOW - i * DAY,
                    i as u64,
                    &[(100 + i as u64, "X", "x", "1", "V")],
                )
            })
            .collect();
        let h = PurchaseHistory::from_placed_orders(
            &events,
            HistoryBounds {
                max_events: 2,
                max_age_days: 365,
            },
            NOW,
        );
        assert_eq!(h.orders, 2);
        assert_eq!(h.last_order_at, Some(NOW));
        assert_eq!(
            h.items
                .iter()
                .map(|i| i.product_id.clone().unwrap())
                .collect::<Vec<_>>(),
            vec!["100", "101"]
        );
    }

    #[test]
    fn the_same_order_read_through_both_metrics_counts_once() {
        let placed = event(
            NOW,
            json!({"Items": ["Alpine Jacket"], "$value": 89.0, "$event_id": "7"}),
        );
        let line = event(
            NOW,
            json!({"$value": 89.0, "OrderId": 7, "ProductID": 101, "Name": "Alpine Jacket", "Quantity": 1}),
        );
        let h = PurchaseHistory::from_events(
            [
                (OrderMetric::PlacedOrder, &placed),
                (OrderMetric::OrderedProduct, &line),
            ],
            HistoryBounds::default(),
            NOW,
        );
        assert_eq!(h.orders, 1);
        assert_eq!(h.total_value, 89.0);
        assert_eq!(h.items.len(), 1);
        assert_eq!(
            h.items[0].product_id.as_deref(),
            Some("101"),
            "the better-identified shape wins"
        );
    }

    #[test]
    fn ordered_product_lines_alone_group_into_orders() {
        let a = event(
            NOW,
            json!({"$value": 10.0, "OrderId": "C-1", "ProductName": "A"}),
        );
        let b = event(
            NOW,
            json!({"$value": 15.0, "OrderId": "C-1", "ProductName": "B"}),
        );
        let c = event(NOW - DAY, json!({"$value": 5.0, "ProductName": "C"}));
        let h = PurchaseHistory::from_events(
            [&a, &b, &c].map(|e| (OrderMetric::OrderedProduct, e)),
            HistoryBounds::default(),
            NOW,
        );
        assert_eq!(h.orders, 2);
        assert_eq!(h.total_value, 30.0);
        assert_eq!(h.items.len(), 3);
    }

    #[test]
    fn an_empty_history_has_no_orders() {
        let h = PurchaseHistory::from_placed_orders(&[], HistoryBounds::default(), NOW);
        assert!(h.is_empty());
        assert_eq!(
            (h.orders, h.last_order_at, h.average_item_price()),
            (0, None, None)
        );
    }

    #[test]
    fn matches_by_numeric_id_first() {
        let p = product(101, "Alpine Jacket");
        let by_id = PurchasedItem {
            product_id: Some("101".into()),
            title: Some("Renamed".into()),
            ..Default::default()
        };
        assert!(by_id.matches(&p));
        let other_id = PurchasedItem {
            product_id: Some("999".into()),
            title: Some("Alpine Jacket".into()),
            ..Default::default()
        };
        assert!(
            !other_id.matches(&p),
            "a different id is a different product even with the same title"
        );
    }

    #[test]
    fn matches_by_handle_then_url_when_no_numeric_id() {
        let p = product(101, "Alpine Jacket");
        let by_handle = PurchasedItem {
            product_id: Some("SKU-9".into()),
            handle: Some("Alpine-Jacket".into()),
            ..Default::default()
        };
        assert!(by_handle.matches(&p));
        let by_url = PurchasedItem {
            url: Some("https://shop.example/products/alpine-jacket?v=1".into()),
            ..Default::default()
        };
        assert!(by_url.matches(&p));
        let wrong_handle = PurchasedItem {
            handle: Some("beanie".into()),
            title: Some("Alpine Jacket".into()),
            ..Default::default()
        };
        assert!(!wrong_handle.matches(&p));
    }

    #[test]
    fn matches_by_title_ignoring_case_as_last_resort() {
        let p = product(101, "Alpine Jacket");
        assert!(PurchasedItem {
            title: Some(" alpine JACKET ".into()),
            ..Default::default()
        }
        .matches(&p));
        assert!(!PurchasedItem {
            title: Some("Alpine Jacket 2".into()),
            ..Default::default()
        }
        .matches(&p));
        assert!(!PurchasedItem::default().matches(&p));
    }

    #[test]
    fn bounds_give_the_events_filter_start() {
        assert_eq!(
            HistoryBounds {
                max_events: 1,
                max_age_days: 1
            }
            .since(NOW),
            NOW - DAY
        );
    }

    #[test]
    fn metric_names_map_to_kinds() {
        assert_eq!(
            OrderMetric::from_name("Placed Order"),
            Some(OrderMetric::PlacedOrder)
        );
        assert_eq!(
            OrderMetric::from_name("Ordered Product"),
            Some(OrderMetric::OrderedProduct)
        );
        assert_eq!(OrderMetric::from_name("Viewed Product"), None);
    }
}
