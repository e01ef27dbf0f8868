//! Klaviyo account model and deterministic seed data: profiles, lists, segments, metrics and
//! order history that references the default Shopify shop's real catalog.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::limits::RateLimiter;
use crate::shopify::catalog_data::{
    collection_for, money, storefront_base, Product, ProductStatus,
};
use crate::util::{alnum_id, random_hex, today_anchor, uuid_like};
use crate::RateLimits;

pub const DEFAULT_ACCOUNT_ID: &str = "XyZ123";

/// Time base for profile ULIDs (2020-09-13).
const ID_EPOCH: i64 = 1_600_000_000;

/// Every scope our product might ask for (NOTES §1.4).
pub const ALL_SCOPES: &[&str] = &[
    "accounts:read",
    "lists:read",
    "lists:write",
    "segments:read",
    "profiles:read",
    "profiles:write",
    "events:read",
    "metrics:read",
];

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub public_api_key: String,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub account_id: String,
    pub scopes: HashSet<String>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct Predictive {
    pub historic_clv: f64,
    pub predicted_clv: f64,
    pub historic_orders: f64,
    pub predicted_orders: f64,
    pub avg_days_between: f64,
    pub aov: f64,
    pub churn: f64,
    pub next_order: i64,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub location: Value,
    pub properties: Map<String, Value>,
    pub created: i64,
    pub updated: i64,
    pub last_event_date: Option<i64>,
    pub predictive: Option<Predictive>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    List,
    Segment,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub kind: GroupKind,
    pub created: i64,
    pub updated: i64,
    /// Profile indices, ascending (i.e. in profile id order).
    pub members: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub id: String,
    pub name: String,
    pub created: i64,
    pub integration: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderShape {
    /// Klaviyo's native Shopify integration: `Items` are names, details under `$extra`.
    Shopify,
    /// A custom/API integration: `Items` are objects with `ProductID` etc.
    Custom,
}

#[derive(Debug, Clone)]
pub struct LineItem {
    pub product: usize,
    pub variant: usize,
    pub qty: u32,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: u64,
    pub number: u64,
    pub shape: OrderShape,
    pub lines: Vec<LineItem>,
    pub discount_code: Option<&'static str>,
    pub discount_cents: u64,
    pub source: &'static str,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    PlacedOrder {
        order: usize,
    },
    OrderedProduct {
        order: usize,
        line: usize,
    },
    /// Tracked after seeding (e.g. a flow's triggering event), stored as sent.
    Recorded {
        properties: Value,
    },
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub uuid: String,
    pub metric: usize,
    pub profile: usize,
    pub ts: i64,
    pub kind: EventKind,
    /// Hidden from Get Events until then (ingest lag); seeded history is always readable.
    pub readable_at: Option<std::time::Instant>,
}

#[derive(Debug, Clone)]
pub struct ImportJob {
    pub id: String,
    pub account_id: String,
    pub created: i64,
    pub created_instant: std::time::Instant,
    /// When it leaves `queued` and when it is complete (by the clock, not by polls).
    pub starts_at: std::time::Instant,
    pub completes_at: std::time::Instant,
    pub polls: u32,
    pub total: usize,
    /// Profiles that passed validation, applied when the job completes.
    pub pending: Vec<Value>,
    pub list_ids: Vec<String>,
    pub errors: Vec<ImportError>,
    pub completed_at: Option<i64>,
    pub started_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ImportError {
    pub id: String,
    pub code: String,
    pub title: String,
    pub detail: String,
    pub pointer: String,
    pub original_payload: Value,
}

pub struct KlaviyoStore {
    pub shop_domain: String,
    pub catalog: Arc<Vec<Product>>,
    pub accounts: Vec<Account>,
    pub keys: HashMap<String, ApiKey>,
    pub default_key: String,
    pub profiles: Vec<Profile>,
    pub profile_index: HashMap<String, usize>,
    pub lists: Vec<Group>,
    pub segments: Vec<Group>,
    pub metrics: Vec<Metric>,
    pub orders: Vec<Order>,
    /// Sorted by timestamp ascending.
    pub events: Vec<Event>,
    pub events_by_profile: Vec<Vec<usize>>,
    pub jobs: HashMap<String, ImportJob>,
    /// Import jobs applied to each profile (by id): tests assert a write lands at most once.
    pub imports_by_profile: HashMap<String, u32>,
    /// The next this many job creations are accepted but answered 502, as when a gateway loses
    /// Klaviyo's 202 (`POST /_sandbox/klaviyo/faults`).
    pub lose_import_responses: u32,
    /// The next this many profiles sent to a bulk import are refused as gone (as when a
    /// profile is merged or deleted between our read and our write).
    pub vanish_import_profiles: u32,
    pub limiter: RateLimiter,
    pub rng: StdRng,
    /// Flows with a webhook action (`/_sandbox/klaviyo/flows`), by flow id.
    pub flows: HashMap<String, super::flows::Flow>,
    /// Id and number the next order made by a seeding control gets (after the seeded ones).
    pub next_order_id: u64,
    pub next_order_number: u64,
}

const FIRST_NAMES: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Ivy", "Lucas", "Nora", "Owen", "Ruby", "Eli",
    "Hazel", "Jonah", "Iris", "Caleb", "Wren", "Miles", "Luna", "Theo", "Sage", "Felix", "June",
    "Ezra", "Clara", "Hugo", "Priya", "Mateo", "Aiko", "Sofia",
];
const LAST_NAMES: &[&str] = &[
    "Rivera", "Chen", "Patel", "Nguyen", "Johnson", "Garcia", "Kim", "Okafor", "Larsen", "Silva",
    "Cohen", "Murphy", "Tanaka", "Rossi", "Novak", "Haddad", "Brooks", "Fischer", "Moreau",
    "Singh",
];
const CITIES: &[(&str, &str, &str, &str, f64, f64, &str)] = &[
    (
        "Portland",
        "Oregon",
        "United States",
        "97205",
        45.52,
        -122.68,
        "America/Los_Angeles",
    ),
    (
        "Denver",
        "Colorado",
        "United States",
        "80202",
        39.74,
        -104.99,
        "America/Denver",
    ),
    (
        "Seattle",
        "Washington",
        "United States",
        "98101",
        47.61,
        -122.33,
        "America/Los_Angeles",
    ),
    (
        "Boulder",
        "Colorado",
        "United States",
        "80302",
        40.01,
        -105.27,
        "America/Denver",
    ),
    (
        "Austin",
        "Texas",
        "United States",
        "78701",
        30.27,
        -97.74,
        "America/Chicago",
    ),
    (
        "Burlington",
        "Vermont",
        "United States",
        "05401",
        44.48,
        -73.21,
        "America/New_York",
    ),
    (
        "Asheville",
        "North Carolina",
        "United States",
        "28801",
        35.60,
        -82.55,
        "America/New_York",
    ),
    (
        "Vancouver",
        "British Columbia",
        "Canada",
        "V6B 1A1",
        49.28,
        -123.12,
        "America/Vancouver",
    ),
    (
        "Salt Lake City",
        "Utah",
        "United States",
        "84101",
        40.76,
        -111.89,
        "America/Denver",
    ),
    (
        "Bend",
        "Oregon",
        "United States",
        "97701",
        44.06,
        -121.31,
        "America/Los_Angeles",
    ),
];
const DISCOUNT_CODES: &[&str] = &["WELCOME10", "TRAIL15", "SUMMIT20", "FREESHIP"];

impl KlaviyoStore {
    /// Seeds one account ("Demo Outdoor Co.") whose history references `catalog`, the default
    /// shop's products generated from the same seed.
    pub fn seed(
        seed: u64,
        n_profiles: usize,
        catalog: Arc<Vec<Product>>,
        shop_domain: &str,
        limits: RateLimits,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b1a_0001_2e5f_9a3d);
        let anchor = today_anchor();

        let account = Account {
            id: DEFAULT_ACCOUNT_ID.to_string(),
            name: "Demo Outdoor Co.".to_string(),
            public_api_key: DEFAULT_ACCOUNT_ID.to_string(),
        };
        let default_key = format!("pk_{}", random_hex(&mut rng, 17));
        let mut keys = HashMap::new();
        keys.insert(
            default_key.clone(),
            ApiKey {
                account_id: account.id.clone(),
                scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
                revoked: false,
            },
        );

        // Profiles, created oldest first so ULIDs (time-prefixed) ascend with the index.
        let mut profiles = Vec::with_capacity(n_profiles);
        let span = 1_000 * 86_400i64;
        for i in 0..n_profiles {
            let created = anchor - span
                + (span * i as i64) / n_profiles.max(1) as i64
                + rng.gen_range(0..3_600);
            // The ULID's time part comes from a fixed epoch, not `created` (which is relative
            // to today), so ids are identical for a seed on any day.
            let id_ms = (ID_EPOCH + (span * i as i64) / n_profiles.max(1) as i64) as u64 * 1000;
            let random_bits: u128 = rng.gen::<u128>() & ((1u128 << 80) - 1);
            let id = ulid::Ulid::from_parts(id_ms, random_bits).to_string();
            let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
            let last = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
            let city = CITIES[rng.gen_range(0..CITIES.len())];
            let mut properties = Map::new();
            properties.insert("Accepts Marketing".into(), json!(rng.gen_bool(0.85)));
            properties.insert("$source".into(), json!("Shopify"));
            if rng.gen_bool(0.3) {
                properties.insert(
                    "Favorite Activity".into(),
                    json!(
                        ["Hiking", "Camping", "Climbing", "Trail Running", "Paddling"]
                            [rng.gen_range(0..5)]
                    ),
                );
            }
            profiles.push(Profile {
                id,
                email: Some(format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i + 1
                )),
                phone_number: rng
                    .gen_bool(0.3)
                    .then(|| format!("+1555{:07}", rng.gen_range(0..10_000_000))),
                external_id: None,
                first_name: Some(first.to_string()),
                last_name: Some(last.to_string()),
                location: json!({
                    "address1": null, "address2": null,
                    "city": city.0, "region": city.1, "country": city.2, "zip": city.3,
                    "latitude": city.4, "longitude": city.5, "timezone": city.6, "ip": null,
                }),
                properties,
                created,
                updated: created,
                last_event_date: None,
                predictive: None,
            });
        }

        let metrics = seed_metrics(&mut rng, anchor);
        let placed_order = 0usize;
        let ordered_product = 1usize;

        // Order history: products mostly ACTIVE, some since archived (realistic history).
        let active: Vec<usize> = (0..catalog.len())
            .filter(|&i| catalog[i].status == ProductStatus::Active)
            .collect();
        let archived: Vec<usize> = (0..catalog.len())
            .filter(|&i| catalog[i].status == ProductStatus::Archived)
            .collect();
        let mut orders = Vec::new();
        let mut events = Vec::new();
        let mut order_counts = vec![0usize; profiles.len()];
        let mut next_order_id = 5_100_000_000_000u64;
        let mut next_number = 1001u64;
        if !active.is_empty() {
            for (pi, profile) in profiles.iter_mut().enumerate() {
                // About 15% never ordered.
                if rng.gen_range(0..100) < 15 {
                    continue;
                }
                let n_orders = match rng.gen_range(0..100) {
                    0..=44 => 1,
                    45..=69 => 2,
                    70..=84 => 3,
                    85..=94 => 4,
                    _ => rng.gen_range(5..=8),
                };
                order_counts[pi] = n_orders;
                let shape = if rng.gen_range(0..100) < 70 {
                    OrderShape::Shopify
                } else {
                    OrderShape::Custom
                };
                for _ in 0..n_orders {
                    // A fraction rather than a ranged draw keeps rng consumption independent
                    // of the date, so the rest of the seed stays stable day to day.
                    let ts = profile.created
                        + (rng.gen::<f64>() * (anchor - profile.created).max(1) as f64) as i64;
                    let n_lines = rng.gen_range(1..=3);
                    let lines = (0..n_lines)
                        .map(|_| {
                            let product = if !archived.is_empty() && rng.gen_range(0..100) < 8 {
                                archived[rng.gen_range(0..archived.len())]
                            } else {
                                active[rng.gen_range(0..active.len())]
                            };
                            LineItem {
                                product,
                                variant: rng.gen_range(0..catalog[product].variants.len()),
                                qty: if rng.gen_range(0..100) < 85 { 1 } else { 2 },
                            }
                        })
                        .collect::<Vec<_>>();
                    let discount_code = (rng.gen_range(0..100) < 20)
                        .then(|| DISCOUNT_CODES[rng.gen_range(0..DISCOUNT_CODES.len())]);
                    let order_idx = orders.len();
                    orders.push(Order {
                        id: next_order_id,
                        number: next_number,
                        shape,
                        discount_cents: if discount_code.is_some() { 1_000 } else { 0 },
                        discount_code,
                        lines,
                        source: if rng.gen_range(0..100) < 90 {
                            "web"
                        } else {
                            "pos"
                        },
                    });
                    next_order_id += rng.gen_range(1..500);
                    next_number += 1;
                    events.push(Event {
                        id: alnum_id(&mut rng, 12),
                        uuid: uuid_like(&mut rng),
                        metric: placed_order,
                        profile: pi,
                        ts,
                        kind: EventKind::PlacedOrder { order: order_idx },
                        readable_at: None,
                    });
                    for line in 0..orders[order_idx].lines.len() {
                        events.push(Event {
                            id: alnum_id(&mut rng, 12),
                            uuid: uuid_like(&mut rng),
                            metric: ordered_product,
                            profile: pi,
                            ts: ts + 1,
                            kind: EventKind::OrderedProduct {
                                order: order_idx,
                                line,
                            },
                            readable_at: None,
                        });
                    }
                    profile.last_event_date =
                        Some(profile.last_event_date.unwrap_or(0).max(ts + 1));
                }
                if n_orders >= 2 && rng.gen_range(0..100) < 60 {
                    let aov = rng.gen_range(40.0..260.0f64);
                    profile.predictive = Some(Predictive {
                        historic_clv: (aov * n_orders as f64 * 100.0).round() / 100.0,
                        predicted_clv: (aov * rng.gen_range(0.5..3.0) * 100.0).round() / 100.0,
                        historic_orders: n_orders as f64,
                        predicted_orders: (rng.gen_range(0.2..3.0f64) * 10.0).round() / 10.0,
                        avg_days_between: rng.gen_range(30.0..200.0f64).round(),
                        aov: (aov * 100.0).round() / 100.0,
                        churn: (rng.gen_range(0.05..0.95f64) * 100.0).round() / 100.0,
                        next_order: anchor + rng.gen_range(1..120) * 86_400,
                    });
                }
            }
        }
        events.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
        let mut events_by_profile = vec![Vec::new(); profiles.len()];
        for (ei, e) in events.iter().enumerate() {
            events_by_profile[e.profile].push(ei);
        }

        let all: Vec<usize> = (0..profiles.len()).collect();
        let pick = |rng: &mut StdRng, pct: u32| -> Vec<usize> {
            all.iter()
                .copied()
                .filter(|_| rng.gen_range(0..100) < pct)
                .collect()
        };
        let newsletter = pick(&mut rng, 88);
        let vip_list = pick(&mut rng, 12);
        let back_in_stock = pick(&mut rng, 5);
        let engaged = pick(&mut rng, 84);
        let repeat: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| order_counts[i] >= 2)
            .collect();
        let never: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| order_counts[i] == 0)
            .collect();

        let group = |name: &str, kind, members: Vec<usize>, rng: &mut StdRng| Group {
            id: alnum_id(rng, 6),
            name: name.to_string(),
            kind,
            created: anchor - rng.gen_range(400..900) * 86_400,
            updated: anchor - rng.gen_range(1..30) * 86_400,
            members,
        };
        let lists = vec![
            group("Newsletter", GroupKind::List, newsletter, &mut rng),
            group("VIP Customers", GroupKind::List, vip_list, &mut rng),
            group(
                "Back in Stock Alerts",
                GroupKind::List,
                back_in_stock,
                &mut rng,
            ),
            group(
                "Preview List",
                GroupKind::List,
                all.iter().copied().take(5).collect(),
                &mut rng,
            ),
        ];
        let segments = vec![
            group("VIP + Engaged", GroupKind::Segment, engaged, &mut rng),
            group("Repeat Buyers", GroupKind::Segment, repeat, &mut rng),
            group("Never Purchased", GroupKind::Segment, never, &mut rng),
        ];

        let profile_index = profiles
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();

        Self {
            shop_domain: shop_domain.to_string(),
            catalog,
            accounts: vec![account],
            keys,
            default_key,
            profiles,
            profile_index,
            lists,
            segments,
            metrics,
            imports_by_profile: HashMap::new(),
            lose_import_responses: 0,
            vanish_import_profiles: 0,
            orders,
            events,
            events_by_profile,
            jobs: HashMap::new(),
            limiter: RateLimiter::new(limits),
            rng,
            flows: HashMap::new(),
            next_order_id,
            next_order_number: next_number,
        }
    }

    pub fn find_profile_by_email(&self, email: &str) -> Option<usize> {
        self.profiles.iter().position(|p| {
            p.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    /// The event's `event_properties`, rendered from the order model.
    pub fn event_properties(&self, event: &Event) -> Value {
        match event.kind {
            EventKind::PlacedOrder { order } => self.placed_order_properties(&self.orders[order]),
            EventKind::OrderedProduct { order, line } => {
                self.ordered_product_properties(&self.orders[order], line)
            }
            EventKind::Recorded { ref properties } => properties.clone(),
        }
    }

    fn line_facts(&self, line: &LineItem) -> LineFacts<'_> {
        let product = &self.catalog[line.product];
        let variant = &product.variants[line.variant];
        LineFacts {
            product,
            variant_title: variant.title.clone(),
            variant_id: variant.id,
            sku: variant.sku.clone(),
            price_cents: variant.price_cents,
            url: format!(
                "{}/products/{}",
                storefront_base(&self.shop_domain),
                product.handle_path()
            ),
            image: product.image_url(),
            collection: collection_for(&product.product_type).to_string(),
        }
    }

    fn order_total_cents(&self, order: &Order) -> u64 {
        let subtotal: u64 = order
            .lines
            .iter()
            .map(|l| self.catalog[l.product].variants[l.variant].price_cents * l.qty as u64)
            .sum();
        subtotal.saturating_sub(order.discount_cents)
    }

    fn placed_order_properties(&self, order: &Order) -> Value {
        let total = self.order_total_cents(order) as f64 / 100.0;
        let facts: Vec<_> = order
            .lines
            .iter()
            .map(|l| (l, self.line_facts(l)))
            .collect();
        let mut collections: Vec<&str> = facts.iter().map(|(_, f)| f.collection.as_str()).collect();
        collections.dedup();
        match order.shape {
            OrderShape::Shopify => {
                let lines: Vec<(u32, LineFacts)> =
                    facts.into_iter().map(|(l, f)| (l.qty, f)).collect();
                shopify_placed_order(order, &lines, "USD")
            }
            OrderShape::Custom => {
                let items: Vec<Value> = facts
                    .iter()
                    .map(|(l, f)| {
                        json!({
                            "ProductID": f.product.id.to_string(),
                            "SKU": f.sku,
                            "ProductName": f.product.title,
                            "Quantity": l.qty,
                            "ItemPrice": f.price_cents as f64 / 100.0,
                            "RowTotal": (f.price_cents * l.qty as u64) as f64 / 100.0,
                            "ProductURL": f.url,
                            "ImageURL": f.image,
                            "Categories": [f.collection, f.product.product_type],
                            "Brand": f.product.vendor,
                        })
                    })
                    .collect();
                let order_id = format!("C-{}", order.number);
                json!({
                    "OrderId": order_id,
                    "Categories": collections,
                    "ItemNames": facts.iter().map(|(_, f)| f.product.title.clone()).collect::<Vec<_>>(),
                    "DiscountCode": order.discount_code.unwrap_or(""),
                    "DiscountValue": order.discount_cents as f64 / 100.0,
                    "Brands": facts.iter().map(|(_, f)| f.product.vendor.as_str()).collect::<HashSet<_>>().into_iter().collect::<Vec<_>>(),
                    "Items": items,
                    "$value": total,
                    "$event_id": order_id,
                })
            }
        }
    }

    fn ordered_product_properties(&self, order: &Order, line_idx: usize) -> Value {
        let line = &order.lines[line_idx];
        let f = self.line_facts(line);
        let row = (f.price_cents * line.qty as u64) as f64 / 100.0;
        match order.shape {
            OrderShape::Shopify => shopify_ordered_product(order, line_idx, line.qty, &f),
            OrderShape::Custom => json!({
                "$event_id": format!("C-{}-{}", order.number, line_idx),
                "$value": row,
                "OrderId": format!("C-{}", order.number),
                "ProductID": f.product.id.to_string(),
                "SKU": f.sku,
                "ProductName": f.product.title,
                "Quantity": line.qty,
                "ProductURL": f.url,
                "ImageURL": f.image,
                "ProductCategories": [f.collection, f.product.product_type],
                "ProductBrand": f.product.vendor,
            }),
        }
    }
}

/// What an order line says about its product and variant.
pub(crate) struct LineFacts<'a> {
    pub product: &'a Product,
    pub variant_title: String,
    pub variant_id: u64,
    pub sku: String,
    pub price_cents: u64,
    pub url: String,
    pub image: Option<String>,
    pub collection: String,
}

/// A "Placed Order" of Klaviyo's Shopify integration: `Items` are the titles, the lines are
/// under `$extra.line_items` (with their `product`), money in `currency`. `lines` are
/// (quantity, facts); `order` gives the id, number, discount and source (not its lines).
pub(crate) fn shopify_placed_order(
    order: &Order,
    lines: &[(u32, LineFacts)],
    currency: &str,
) -> Value {
    let subtotal: u64 = lines
        .iter()
        .map(|(qty, f)| f.price_cents * u64::from(*qty))
        .sum();
    let total_cents = subtotal.saturating_sub(order.discount_cents);
    let mut collections: Vec<&str> = lines.iter().map(|(_, f)| f.collection.as_str()).collect();
    collections.dedup();
    let item_count: u32 = lines.iter().map(|(qty, _)| qty).sum();
    let line_items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (qty, f))| {
            json!({
                "id": order.id * 10 + i as u64,
                "title": f.product.title,
                "quantity": qty,
                "price": money(f.price_cents),
                "line_price": money(f.price_cents * u64::from(*qty)),
                "sku": f.sku,
                "variant_id": f.variant_id,
                "variant_title": f.variant_title,
                "vendor": f.product.vendor,
                "product_id": f.product.id,
                "product": {
                    "id": f.product.id,
                    "title": f.product.title,
                    "handle": f.product.handle,
                    "vendor": f.product.vendor,
                    "product_type": f.product.product_type,
                    "images": f.image.iter().map(|src| json!({"src": src})).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    json!({
        "Items": lines.iter().map(|(_, f)| f.product.title.clone()).collect::<Vec<_>>(),
        "Collections": collections,
        "Item Count": item_count,
        "Discount Codes": order.discount_code.iter().collect::<Vec<_>>(),
        "Total Discounts": money(order.discount_cents),
        "Source Name": order.source,
        "$currency_code": currency,
        "$event_id": order.id.to_string(),
        "$value": total_cents as f64 / 100.0,
        "$extra": {
            "line_items": line_items,
            "name": format!("#{}", order.number),
            "order_number": order.number,
            "currency": currency,
            "total_price": money(total_cents),
            "total_discounts": money(order.discount_cents),
            "source_name": order.source,
        },
    })
}

/// The Shopify integration's "Ordered Product" for line `line_idx` of `order`.
pub(crate) fn shopify_ordered_product(
    order: &Order,
    line_idx: usize,
    qty: u32,
    f: &LineFacts,
) -> Value {
    json!({
        "$event_id": format!("{}:{}:0", order.id, order.id * 10 + line_idx as u64),
        "$value": (f.price_cents * u64::from(qty)) as f64 / 100.0,
        "Name": f.product.title,
        "ProductID": f.product.id,
        "Variant Name": f.variant_title,
        "VariantID": f.variant_id,
        "SKU": f.sku,
        "Quantity": qty,
        "Vendor": f.product.vendor,
        "Product Type": f.product.product_type,
        "Collections": [f.collection],
        "ImageURL": f.image,
        "URL": f.url,
        "OrderId": order.id,
        "$extra": {"product": {"id": f.product.id, "title": f.product.title, "handle": f.product.handle}},
    })
}

fn seed_metrics(rng: &mut StdRng, anchor: i64) -> Vec<Metric> {
    let shopify = json!({
        "object": "integration", "id": "0eMvjm", "key": "shopify",
        "name": "Shopify", "category": "eCommerce",
    });
    let klaviyo = json!({
        "object": "integration", "id": "0rG4eQ", "key": "klaviyo",
        "name": "Klaviyo", "category": "Internal",
    });
    let api = json!({
        "object": "integration", "id": "7FtS4J", "key": "api",
        "name": "API", "category": "API",
    });
    // Placed Order and Ordered Product must stay at indices 0 and 1 (events point at them).
    let defs: [(&str, &Value); 12] = [
        ("Placed Order", &shopify),
        ("Ordered Product", &shopify),
        ("Fulfilled Order", &shopify),
        ("Started Checkout", &shopify),
        ("Viewed Product", &shopify),
        ("Cancelled Order", &shopify),
        ("Refunded Order", &shopify),
        ("Received Email", &klaviyo),
        ("Opened Email", &klaviyo),
        ("Clicked Email", &klaviyo),
        ("Subscribed to List", &klaviyo),
        ("Loyalty Points Earned", &api),
    ];
    defs.iter()
        .map(|(name, integration)| Metric {
            id: alnum_id(rng, 6),
            name: name.to_string(),
            created: anchor - rng.gen_range(500..1_200) * 86_400,
            integration: Some((*integration).clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::catalog_data::generate_catalog;

    fn seed(seed: u64) -> KlaviyoStore {
        let catalog = Arc::new(generate_catalog(seed, 200));
        KlaviyoStore::seed(
            seed,
            300,
            catalog,
            "demo-store.myshopify.com",
            RateLimits::Real,
        )
    }

    #[test]
    fn seed_is_deterministic_and_has_both_order_shapes() {
        let (a, b) = (seed(5), seed(5));
        assert_eq!(a.default_key, b.default_key);
        assert!(a
            .profiles
            .iter()
            .zip(&b.profiles)
            .all(|(x, y)| x.id == y.id && x.email == y.email));
        assert_eq!(a.lists[0].id, b.lists[0].id);
        assert_eq!(a.events.len(), b.events.len());
        assert!(
            a.profiles.windows(2).all(|w| w[0].id < w[1].id),
            "ULIDs ascend"
        );
        assert!(a.orders.iter().any(|o| o.shape == OrderShape::Shopify));
        assert!(a.orders.iter().any(|o| o.shape == OrderShape::Custom));
        assert!(
            a.events_by_profile.iter().any(Vec::is_empty),
            "some profiles never ordered"
        );
    }
}
