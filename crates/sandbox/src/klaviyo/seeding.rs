//! `POST /_sandbox/klaviyo/accounts/{account_id}/profiles`: customers with an exact order
//! history, for tests that build a small world of their own (one shop's catalog, a few buyers).
//!
//! Each profile is stored as a bulk import would store it; each order becomes a "Placed Order"
//! of the Shopify integration's metric plus one "Ordered Product" per line, rendered by the
//! same code as the seeded history ([`shopify_placed_order`], [`shopify_ordered_product`]), so
//! they read exactly like seeded orders of the Shopify shape. A product id that names a product
//! of a sandbox shop takes that product's handle, vendor, image, variant and SKU (the shop's
//! currency is the default); the title, price and product type are the order's own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::data::{
    shopify_ordered_product, shopify_placed_order, Event, EventKind, Group, GroupKind,
    KlaviyoStore, LineFacts, Metric, Order, OrderShape, Profile, DEFAULT_ACCOUNT_ID,
};
use crate::controls::{error, parse_body};
use crate::shopify::catalog_data::{
    handle_from_title, json_price_cents, storefront_base, Product, ProductStatus, Variant,
};
use crate::state::AppState;
use crate::util::{alnum_id, now_unix, uuid_like};

/// Most profiles one request may create.
const MAX_PROFILES: usize = 1_000;
/// Most orders one profile may be given.
const MAX_ORDERS: usize = 100;
/// Orders may be dated at most this many days back.
const MAX_DAYS_AGO: u64 = 3_650;

/// One requested order line (one product, quantity 1).
#[derive(Debug)]
struct OrderSpec {
    product_id: u64,
    title: String,
    price_cents: u64,
    product_type: Option<String>,
    days_ago: u64,
}

#[derive(Debug)]
struct ProfileSpec {
    first_name: Option<String>,
    last_name: Option<String>,
    email: String,
    orders: Vec<OrderSpec>,
}

/// What a sandbox shop knows about a product an order names.
struct KnownProduct {
    product: Product,
    shop: String,
    currency: String,
}

fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && domain
                    .split_once('.')
                    .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
        }
        None => false,
    }
}

fn optional_name(p: &Value, at: &str, key: &str) -> Result<Option<String>, String> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{key} must be a string or null")),
    }
}

fn parse_order(o: &Value, at: &str) -> Result<OrderSpec, String> {
    let product_id = match o.get("product_id") {
        Some(Value::String(s)) => s
            .strip_prefix("gid://shopify/Product/")
            .unwrap_or(s)
            .parse::<u64>()
            .ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .filter(|id| *id > 0)
    .ok_or(format!(
        "{at}.product_id must be \"gid://shopify/Product/<n>\" or the number"
    ))?;
    let title = o
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or(format!("{at}.title is required"))?
        .to_string();
    let price_cents = json_price_cents(o.get("price")).ok_or(format!(
        "{at}.price must be a decimal string such as \"129.00\""
    ))?;
    let product_type = match o.get("product_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(format!("{at}.product_type must be a string")),
    };
    let days_ago = match o.get("days_ago") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().filter(|d| *d <= MAX_DAYS_AGO).ok_or(format!(
            "{at}.days_ago must be a whole number from 0 to {MAX_DAYS_AGO}"
        ))?,
    };
    Ok(OrderSpec {
        product_id,
        title,
        price_cents,
        product_type,
        days_ago,
    })
}

/// The request's profiles, validated as a whole (nothing is stored unless all are valid).
fn parse_profiles(req: &Value) -> Result<Vec<ProfileSpec>, String> {
    let items = req
        .get("profiles")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= MAX_PROFILES)
        .ok_or(format!(
            "'profiles' must be an array of 1 to {MAX_PROFILES} profiles"
        ))?;
    let mut specs: Vec<ProfileSpec> = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let at = format!("profiles[{i}]");
        let email = p
            .get("email")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|e| plausible_email(e))
            .ok_or(format!("{at}.email must be an email address"))?
            .to_string();
        if specs.iter().any(|s| s.email.eq_ignore_ascii_case(&email)) {
            return Err(format!("{at}.email '{email}' is given twice"));
        }
        let orders = match p.get("orders") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.len() <= MAX_ORDERS => a
                .iter()
                .enumerate()
                .map(|(j, o)| parse_order(o, &format!("{at}.orders[{j}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "{at}.orders must be an array of at most {MAX_ORDERS} orders"
                ))
            }
        };
        specs.push(ProfileSpec {
            first_name: optional_name(p, &at, "first_name")?,
            last_name: optional_name(p, &at, "last_name")?,
            email,
            orders,
        });
    }
    Ok(specs)
}

/// The product a sandbox shop holds under `id`: the Klaviyo account's own shop first, then the
/// others by domain (generated catalogs share ids; a shop's own catalog has ids of its own).
fn find_product(st: &AppState, home_shop: &str, id: u64) -> Option<KnownProduct> {
    let store = st.shopify();
    let mut domains: Vec<&String> = store.shops.keys().collect();
    domains.sort_by_key(|d| (d.as_str() != home_shop, d.as_str()));
    domains.into_iter().find_map(|d| {
        let shop = &store.shops[d];
        shop.product_index(id).map(|i| KnownProduct {
            product: shop.products[i].clone(),
            shop: d.clone(),
            currency: shop.currency.clone(),
        })
    })
}

/// The line's product as the event shows it: the order's title, price and product type over
/// what the shop knows (handle, vendor, image, variant, SKU), or made up from the title.
fn line_product(spec: &OrderSpec, known: Option<&KnownProduct>, vendor: &str) -> Product {
    let mut product = match known {
        Some(k) => k.product.clone(),
        None => Product {
            id: spec.product_id,
            title: spec.title.clone(),
            handle: Some(handle_from_title(&spec.title))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("product-{}", spec.product_id)),
            description: String::new(),
            description_html: String::new(),
            product_type: String::new(),
            vendor: vendor.to_string(),
            tags: Vec::new(),
            status: ProductStatus::Active,
            published: true,
            has_image: true,
            created_at: 0,
            updated_at: 0,
            variants: Vec::new(),
        },
    };
    let variant = product.variants.first().cloned().unwrap_or(Variant {
        id: spec.product_id * 100 + 1,
        title: "Default Title".to_string(),
        option_name: "Title",
        sku: format!("SKU-{}", spec.product_id),
        price_cents: spec.price_cents,
        compare_at_cents: None,
        inventory: 0,
        available: true,
    });
    product.title = spec.title.clone();
    if let Some(t) = &spec.product_type {
        product.product_type = t.clone();
    }
    product.variants = vec![Variant {
        price_cents: spec.price_cents,
        ..variant
    }];
    product
}

/// The Shopify integration's metric named `name`, created (as Klaviyo does on a first event)
/// when the sandbox has none.
fn shopify_metric(store: &mut KlaviyoStore, name: &str) -> usize {
    let is_shopify = |m: &Metric| {
        m.name == name
            && m.integration
                .as_ref()
                .and_then(|i| i.get("key"))
                .and_then(Value::as_str)
                == Some("shopify")
    };
    if let Some(i) = store.metrics.iter().position(is_shopify) {
        return i;
    }
    let id = alnum_id(&mut store.rng, 6);
    store.metrics.push(Metric {
        id,
        name: name.to_string(),
        created: now_unix(),
        integration: Some(json!({
            "object": "integration", "id": "0eMvjm", "key": "shopify",
            "name": "Shopify", "category": "eCommerce",
        })),
    });
    store.metrics.len() - 1
}

/// Keeps `events` in time order (stable, so same-time events keep their order) and
/// `events_by_profile` pointing at them.
fn reindex_events(store: &mut KlaviyoStore) {
    store.events.sort_by_key(|e| e.ts);
    let mut by_profile = vec![Vec::new(); store.profiles.len()];
    for (ei, e) in store.events.iter().enumerate() {
        by_profile[e.profile].push(ei);
    }
    store.events_by_profile = by_profile;
}

/// `POST /_sandbox/klaviyo/accounts/{account_id}/profiles` (`default` names the default
/// account) `{"profiles": [{"first_name", "last_name", "email", "orders": [{"product_id",
/// "title", "price", "product_type"?, "days_ago"}]}], "list_name"?, "currency"?}` → 201
/// `{"account_id", "currency", "profiles": [{"id", "email", "placed_order_event_ids"}],
/// "list_id"?}`. 404 for an unknown account, 409 when a profile with one of the emails exists,
/// 400 for anything malformed; nothing is stored unless the whole request is accepted.
pub async fn create_profiles(
    State(st): State<Arc<AppState>>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let account_id = if account == "default" {
        DEFAULT_ACCOUNT_ID.to_string()
    } else {
        account
    };
    let specs = match parse_profiles(&req) {
        Ok(s) => s,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let list_name = match req.get("list_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(_) => return error(StatusCode::BAD_REQUEST, "'list_name' must be a string"),
    };
    let currency = match req.get("currency") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_str()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            Some(c) => Some(c.to_string()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "'currency' must be an ISO 4217 code such as \"EUR\"",
                )
            }
        },
    };

    // What the shops know about the ordered products (read before the Klaviyo store is locked).
    let (home_shop, account_name) = {
        let store = st.klaviyo();
        let Some(a) = store.accounts.iter().find(|a| a.id == account_id) else {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown account '{account_id}'"),
            );
        };
        (store.shop_domain.clone(), a.name.clone())
    };
    let known: Vec<Vec<Option<KnownProduct>>> = specs
        .iter()
        .map(|p| {
            p.orders
                .iter()
                .map(|o| find_product(&st, &home_shop, o.product_id))
                .collect()
        })
        .collect();
    let currency = currency
        .or_else(|| {
            known
                .iter()
                .flatten()
                .flatten()
                .map(|k| k.currency.clone())
                .next()
        })
        .unwrap_or_else(|| "USD".to_string());

    let mut store = st.klaviyo();
    if let Some(taken) = specs
        .iter()
        .find(|s| store.find_profile_by_email(&s.email).is_some())
    {
        return error(
            StatusCode::CONFLICT,
            format!("a profile with email '{}' exists", taken.email),
        );
    }
    let placed_order = shopify_metric(&mut store, "Placed Order");
    let ordered_product = shopify_metric(&mut store, "Ordered Product");
    let now = now_unix();
    let mut created = Vec::with_capacity(specs.len());
    let mut members = Vec::with_capacity(specs.len());
    for (spec, known) in specs.iter().zip(&known) {
        let oldest_days = spec.orders.iter().map(|o| o.days_ago).max().unwrap_or(0);
        let random_bits: u128 = rand::Rng::gen::<u128>(&mut store.rng) & ((1u128 << 80) - 1);
        // Time-prefixed ids ascending in request order.
        let id_ms = now as u64 * 1000 + created.len() as u64;
        let id = ulid::Ulid::from_parts(id_ms, random_bits).to_string();
        let mut properties = Map::new();
        properties.insert("Accepts Marketing".into(), json!(true));
        properties.insert("$source".into(), json!("Shopify"));
        store.profiles.push(Profile {
            id: id.clone(),
            email: Some(spec.email.clone()),
            phone_number: None,
            external_id: None,
            first_name: spec.first_name.clone(),
            last_name: spec.last_name.clone(),
            location: json!({"address1": null, "address2": null, "city": null, "country": null,
                "latitude": null, "longitude": null, "region": null, "zip": null, "timezone": null, "ip": null}),
            properties,
            created: now - (oldest_days as i64 + 30) * 86_400,
            updated: now,
            last_event_date: None,
            predictive: None,
        });
        store.events_by_profile.push(Vec::new());
        let pi = store.profiles.len() - 1;
        store.profile_index.insert(id.clone(), pi);
        members.push(pi);

        let mut event_ids = Vec::with_capacity(spec.orders.len());
        for (o, k) in spec.orders.iter().zip(known) {
            let product = line_product(o, k.as_ref(), &account_name);
            let shop = k.as_ref().map_or(home_shop.as_str(), |k| k.shop.as_str());
            let variant = &product.variants[0];
            let facts = LineFacts {
                product: &product,
                variant_title: variant.title.clone(),
                variant_id: variant.id,
                sku: variant.sku.clone(),
                price_cents: variant.price_cents,
                url: format!(
                    "{}/products/{}",
                    storefront_base(shop),
                    product.handle_path()
                ),
                image: product.image_url(),
                collection: Some(product.product_type.clone())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "All".to_string()),
            };
            let order = Order {
                id: store.next_order_id,
                number: store.next_order_number,
                shape: OrderShape::Shopify,
                lines: Vec::new(),
                discount_code: None,
                discount_cents: 0,
                source: "web",
            };
            store.next_order_id += 1 + rand::Rng::gen_range(&mut store.rng, 0..499u64);
            store.next_order_number += 1;
            let ts = now - o.days_ago as i64 * 86_400;
            let lines = [(1u32, facts)];
            let placed = shopify_placed_order(&order, &lines, &currency);
            let line = shopify_ordered_product(&order, 0, 1, &lines[0].1);
            for (metric, offset, properties) in
                [(placed_order, 0, placed), (ordered_product, 1, line)]
            {
                let event_id = alnum_id(&mut store.rng, 12);
                let uuid = uuid_like(&mut store.rng);
                if metric == placed_order {
                    event_ids.push(event_id.clone());
                }
                store.events.push(Event {
                    id: event_id,
                    uuid,
                    metric,
                    profile: pi,
                    ts: ts + offset,
                    kind: EventKind::Recorded { properties },
                    readable_at: None,
                });
            }
            let p = &mut store.profiles[pi];
            p.last_event_date = Some(p.last_event_date.unwrap_or(0).max(ts + 1));
        }
        created.push(json!({
            "id": id,
            "email": spec.email,
            "placed_order_event_ids": event_ids,
        }));
    }
    reindex_events(&mut store);

    let mut body = json!({
        "account_id": account_id,
        "currency": currency,
        "profiles": created,
    });
    if let Some(name) = list_name {
        let mut list_id = alnum_id(&mut store.rng, 6);
        while store
            .lists
            .iter()
            .chain(&store.segments)
            .any(|g| g.id == list_id)
        {
            list_id = alnum_id(&mut store.rng, 6);
        }
        members.sort_unstable();
        store.lists.push(Group {
            id: list_id.clone(),
            name,
            kind: GroupKind::List,
            created: now,
            updated: now,
            members,
        });
        body["list_id"] = json!(list_id);
    }
    (StatusCode::CREATED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_take_gids_or_numbers_and_reject_the_rest() {
        let ok = parse_order(
            &json!({"product_id": "gid://shopify/Product/123", "title": "Tee", "price": "129.00", "days_ago": 12}),
            "o",
        )
        .unwrap();
        assert_eq!(
            (ok.product_id, ok.price_cents, ok.days_ago),
            (123, 12_900, 12)
        );
        assert_eq!(
            parse_order(
                &json!({"product_id": "123", "title": "Tee", "price": 5}),
                "o"
            )
            .unwrap()
            .product_id,
            123
        );
        for bad in [
            json!({"product_id": "gid://shopify/ProductVariant/x", "title": "T", "price": "1"}),
            json!({"product_id": "1", "title": " ", "price": "1"}),
            json!({"product_id": "1", "title": "T", "price": "1,00"}),
            json!({"product_id": "1", "title": "T", "price": "1", "days_ago": -3}),
        ] {
            assert!(parse_order(&bad, "o").is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_emails_in_one_request_are_refused() {
        let req = json!({"profiles": [{"email": "a@b.example"}, {"email": "A@b.example"}]});
        assert!(parse_profiles(&req).unwrap_err().contains("twice"));
    }
}
