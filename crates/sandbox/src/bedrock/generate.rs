//! The stand-in "model": plausible, deterministic marketing copy grounded in the request.
//!
//! It reads the customers from the first JSON document in the user message that holds a
//! `profiles` array, the brief from that document or from a system block titled "...brief...:",
//! and shapes its answer after the forced tool's input schema: property names are matched by
//! meaning (`profile_ref`, `subject`, `preheader`, `body`, `products[{product_ref}]`) and every
//! other required property is filled generically, so the lead's schema can change freely.
//! Distortions (the `/_sandbox/bedrock/faults` modes) bend the first customer's entry only.

use serde_json::{json, Map, Value};

/// A misbehaviour applied to the answer (the first customer's entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distortion {
    None,
    InventProduct,
    InventDiscount,
    WrongPrice,
    Overlong,
    Malformed,
    LeakPii,
}

pub const INVENTED_PRODUCT_REF: &str = "P9";
pub const INVENTED_PRODUCT_TITLE: &str = "Aurora Summit Parka";
pub const INVENTED_DISCOUNT: &str = "Use code SAVE20 for 20% off.";
pub const LEAKED_EMAIL: &str = "jane.doe@example.com";
pub const LEAKED_LAST_NAME: &str = "Doe";

/// What the model was given, already split out of the Converse request.
pub struct Prompt<'a> {
    pub system: &'a [String],
    /// Text of the user messages, in order.
    pub user: &'a str,
    pub seed: u64,
}

#[derive(Clone, Debug, Default)]
struct Product {
    product_ref: String,
    title: String,
    price: String,
}

#[derive(Clone, Debug, Default)]
struct Customer {
    profile_ref: String,
    first_name: Option<String>,
    history: Vec<String>,
    products: Vec<Product>,
}

struct Context {
    customers: Vec<Customer>,
    brief_theme: Option<String>,
    sign_off: Option<String>,
    seed: u64,
}

impl Context {
    fn read(prompt: &Prompt<'_>) -> Self {
        let document = find_profiles_document(prompt.user);
        let customers = document
            .as_ref()
            .and_then(find_profiles_array)
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, p)| customer(i, p))
                    .collect()
            })
            .unwrap_or_default();
        let brief = document
            .as_ref()
            .and_then(|d| d.get("brief"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| brief_from_system(prompt.system));
        let system_text = prompt.system.join("\n");
        Self {
            customers,
            brief_theme: brief.as_deref().and_then(theme),
            sign_off: quoted_after(&system_text, "sign-off \""),
            seed: prompt.seed,
        }
    }
}

/// The tool input a compliant (or, with a distortion, misbehaving) model would return.
pub fn tool_input(prompt: &Prompt<'_>, schema: &Value, distortion: Distortion) -> Value {
    let ctx = Context::read(prompt);
    let mut out = match list_property(schema) {
        Some((key, items)) => {
            let mut obj = fill_object_except(schema, &key, ctx.seed);
            let customers = if ctx.customers.is_empty() {
                vec![Customer {
                    profile_ref: "C1".into(),
                    ..Customer::default()
                }]
            } else {
                ctx.customers.clone()
            };
            let entries = customers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let d = if i == 0 { distortion } else { Distortion::None };
                    entry(&items, c, &ctx, d)
                })
                .collect();
            obj.insert(key, Value::Array(entries));
            Value::Object(obj)
        }
        // The schema is one customer's entry itself.
        None if is_object_schema(schema) => {
            let c = ctx.customers.first().cloned().unwrap_or_default();
            entry(schema, &c, &ctx, distortion)
        }
        None => fill(schema, "value", ctx.seed),
    };
    if distortion == Distortion::Malformed && !is_object_schema(schema) {
        out = json!({ "unexpected": true });
    }
    out
}

/// What a model cut off by `maxTokens` leaves: the first entry only, its body cut mid-way and
/// the fields after it missing.
pub fn truncate_input(input: &Value) -> Value {
    let Some(obj) = input.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match v {
            Value::Array(items) => {
                let mut first = match items.first() {
                    Some(Value::Object(e)) => e.clone(),
                    _ => Map::new(),
                };
                let mut cut = Map::new();
                for (ek, ev) in first.iter_mut() {
                    if let Value::String(s) = ev {
                        if ek.to_ascii_lowercase().contains("body") {
                            let half: String = s.chars().take(s.chars().count() / 2).collect();
                            cut.insert(ek.clone(), Value::String(half));
                            break;
                        }
                    }
                    cut.insert(ek.clone(), ev.clone());
                }
                out.insert(k.clone(), Value::Array(vec![Value::Object(cut)]));
                break;
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    Value::Object(out)
}

/// A plain-text answer for requests without a tool to call.
pub fn text_reply(prompt: &Prompt<'_>) -> String {
    let ctx = Context::read(prompt);
    match ctx.customers.first() {
        Some(c) => {
            let k = c.products.len().min(3);
            compose_body(c, &c.products[..k], &ctx, None, None, false).unwrap_or_default()
        }
        None => "Here is a short note picked for you. Take a look at what is new in the store."
            .to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the prompt

/// The first JSON object in `text` that holds (at any depth) a `profiles` array. Objects inside
/// fenced ```json blocks are found the same way.
pub(super) fn find_profiles_document(text: &str) -> Option<Value> {
    for (i, _) in text.match_indices('{') {
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        if let Some(Ok(v)) = stream.next() {
            if find_profiles_array(&v).is_some() {
                return Some(v);
            }
        }
    }
    None
}

pub(super) fn find_profiles_array(v: &Value) -> Option<&Vec<Value>> {
    let obj = v.as_object()?;
    for key in ["profiles", "customers"] {
        if let Some(list) = obj.get(key).and_then(Value::as_array) {
            return Some(list);
        }
    }
    obj.values().find_map(find_profiles_array)
}

pub(super) fn str_field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn customer(index: usize, v: &Value) -> Customer {
    let history = match ["history", "bought_before", "purchases", "past_purchases"]
        .iter()
        .find_map(|k| v.get(*k))
    {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                other => str_field(other, &["title", "name"]).map(str::to_owned),
            })
            .collect(),
        // "Alpine Jacket (Outerwear, Jackets); Trail Socks"
        Some(Value::String(s)) if !s.to_ascii_lowercase().starts_with("no previous") => s
            .split(';')
            .map(|part| part.split(" (").next().unwrap_or(part).trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    let products = ["products", "candidates"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_array))
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, p)| Product {
                    product_ref: str_field(p, &["ref", "product_ref", "id"])
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("P{}", i + 1)),
                    title: str_field(p, &["title", "name"]).unwrap_or("").to_owned(),
                    price: str_field(p, &["price"]).unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Customer {
        profile_ref: str_field(v, &["profile_ref", "ref", "id"])
            .map(str::to_owned)
            .unwrap_or_else(|| format!("C{}", index + 1)),
        first_name: str_field(v, &["first_name", "firstName", "name"]).map(str::to_owned),
        history,
        products,
    }
}

/// The text after the first system line that mentions a brief and ends with ':' (e.g.
/// "Campaign brief from the merchant:"), up to the next blank line or the end of its block.
fn brief_from_system(system: &[String]) -> Option<String> {
    system.iter().find_map(|block| {
        let mut lines = block.lines();
        lines.find(|l| {
            let l = l.trim().to_ascii_lowercase();
            l.contains("brief") && l.ends_with(':')
        })?;
        let brief: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).collect();
        Some(brief.join("\n").trim().to_owned()).filter(|s| !s.is_empty())
    })
}

/// The brief's first sentence, at most ~90 characters (cut at a word boundary).
fn theme(brief: &str) -> Option<String> {
    let first = brief
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .find(|s| !s.is_empty())?;
    let mut out = String::new();
    for word in first.split_whitespace() {
        if out.chars().count() + word.chars().count() + 1 > 90 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

pub(super) fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].trim().to_owned()).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Shaping the answer after the schema

pub(super) fn is_object_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("object") || s.get("properties").is_some()
}

pub(super) fn properties(s: &Value) -> Vec<(String, Value)> {
    s.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

pub(super) fn required(s: &Value) -> Vec<String> {
    s.get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn max_len(s: &Value) -> Option<usize> {
    s.get("maxLength")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
}

pub(super) fn items_range(s: &Value) -> (usize, usize) {
    let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s
        .get("maxItems")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .unwrap_or(usize::MAX);
    (min, max)
}

/// The top-level array of per-customer objects: a well-known name first, else the first array
/// of objects.
pub(super) fn list_property(schema: &Value) -> Option<(String, Value)> {
    let props = properties(schema);
    let is_list = |p: &Value| {
        p.get("type").and_then(Value::as_str) == Some("array")
            && p.get("items").is_some_and(is_object_schema)
    };
    let preferred = [
        "profiles",
        "copies",
        "customers",
        "emails",
        "results",
        "items",
    ];
    preferred
        .iter()
        .find_map(|name| props.iter().find(|(k, p)| k == name && is_list(p)).cloned())
        .or_else(|| props.iter().find(|(_, p)| is_list(p)).cloned())
        .map(|(k, p)| (k, p["items"].clone()))
}

pub(super) fn fill_object_except(schema: &Value, skip: &str, seed: u64) -> Map<String, Value> {
    let props = properties(schema);
    let mut out = Map::new();
    for name in required(schema) {
        if name == skip {
            continue;
        }
        let sub = props
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(json!({"type": "string"}));
        out.insert(name.clone(), fill(&sub, &name, seed));
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    ProfileRef,
    Subject,
    Preheader,
    Body,
    Products,
    Other,
}

fn slot(name: &str, s: &Value) -> Slot {
    let n = name.to_ascii_lowercase();
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    if ty == "array" {
        return if n.contains("product") || n.contains("recommend") {
            Slot::Products
        } else {
            Slot::Other
        };
    }
    if n.contains("subject") {
        Slot::Subject
    } else if n.contains("preheader") || n.contains("preview") {
        Slot::Preheader
    } else if n.contains("body") || n.contains("paragraph") || n == "copy" || n == "text" {
        Slot::Body
    } else if n.contains("profile") || n.contains("customer") || n == "ref" {
        Slot::ProfileRef
    } else {
        Slot::Other
    }
}

/// One customer's entry, shaped by the entry schema.
fn entry(schema: &Value, c: &Customer, ctx: &Context, distortion: Distortion) -> Value {
    let props = properties(schema);
    let req = required(schema);
    let body_max = props
        .iter()
        .find(|(k, p)| slot(k, p) == Slot::Body)
        .and_then(|(_, p)| max_len(p));
    let (min_items, max_items) = props
        .iter()
        .find(|(k, p)| slot(k, p) == Slot::Products)
        .map(|(_, p)| items_range(p))
        .unwrap_or((1, 3));

    // 1–3 products in rank order, fewer when their titles would not fit the body.
    let wanted = c
        .products
        .len()
        .min(3)
        .min(max_items)
        .max(min_items.min(c.products.len()));
    let extra = match distortion {
        Distortion::InventProduct => {
            Some(format!("You might also like the {INVENTED_PRODUCT_TITLE}."))
        }
        Distortion::InventDiscount => Some(INVENTED_DISCOUNT.to_owned()),
        Distortion::WrongPrice => c
            .products
            .first()
            .map(|p| format!("The {} is now only {}.", p.title, wrong_price(&p.price))),
        Distortion::LeakPii => Some(format!("We will send the details to {LEAKED_EMAIL}.")),
        _ => None,
    };
    let leak = distortion == Distortion::LeakPii;
    let mut chosen = wanted;
    let mut body = None;
    while body.is_none() {
        let picks = &c.products[..chosen];
        body = compose_body(c, picks, ctx, extra.as_deref(), body_max, leak);
        if body.is_none() {
            if chosen <= 1 {
                break;
            }
            chosen -= 1;
        }
    }
    let picks = &c.products[..chosen.min(c.products.len())];
    let mut body = body.unwrap_or_else(|| {
        let full = compose_body(c, picks, ctx, extra.as_deref(), None, leak).unwrap_or_default();
        cut_words(&full, body_max.unwrap_or(usize::MAX))
    });
    if distortion == Distortion::Overlong {
        let target = body_max.map(|m| m * 3).unwrap_or(3000).max(600);
        let base = body.clone();
        while body.chars().count() <= target {
            body.push(' ');
            body.push_str(&base);
        }
    }

    let mut out = Map::new();
    for (name, p) in &props {
        let is_required = req.contains(name);
        let value = match slot(name, p) {
            Slot::ProfileRef => Value::String(c.profile_ref.clone()),
            Slot::Subject => Value::String(subject(c, picks, ctx, max_len(p), leak)),
            Slot::Preheader => Value::String(preheader(c, ctx, max_len(p))),
            Slot::Body => Value::String(body.clone()),
            Slot::Products => {
                let mut items: Vec<Value> = picks
                    .iter()
                    .map(|prod| product_item(p.get("items").unwrap_or(&Value::Null), prod))
                    .collect();
                if distortion == Distortion::InventProduct {
                    let invented = Product {
                        product_ref: INVENTED_PRODUCT_REF.into(),
                        title: INVENTED_PRODUCT_TITLE.into(),
                        price: "129.00 USD".into(),
                    };
                    items.push(product_item(
                        p.get("items").unwrap_or(&Value::Null),
                        &invented,
                    ));
                }
                Value::Array(items)
            }
            Slot::Other if is_required => fill(p, name, ctx.seed),
            Slot::Other => continue,
        };
        out.insert(name.clone(), value);
    }
    // Required names the schema does not describe still get a value.
    for name in req {
        if !out.contains_key(&name) {
            out.insert(
                name.clone(),
                fill(&json!({"type": "string"}), &name, ctx.seed),
            );
        }
    }

    if distortion == Distortion::Malformed {
        // Drop the body (or, failing that, the first non-ref required field) and break a type.
        let victim = out
            .keys()
            .find(|k| k.to_ascii_lowercase().contains("body"))
            .cloned()
            .or_else(|| {
                out.keys()
                    .find(|k| !k.to_ascii_lowercase().contains("ref"))
                    .cloned()
            });
        if let Some(v) = victim {
            out.remove(&v);
        }
        let products_key = out
            .keys()
            .find(|k| k.to_ascii_lowercase().contains("product"))
            .cloned();
        match products_key {
            Some(k) => {
                out.insert(k, json!("P1, P2"));
            }
            None => {
                out.insert("subject".into(), json!(42));
            }
        }
    }
    Value::Object(out)
}

fn product_item(items_schema: &Value, p: &Product) -> Value {
    if !is_object_schema(items_schema) {
        return Value::String(p.product_ref.clone());
    }
    let props = properties(items_schema);
    let req = required(items_schema);
    let mut out = Map::new();
    for (name, s) in &props {
        let n = name.to_ascii_lowercase();
        let v = if n.contains("ref") || n == "id" {
            Value::String(p.product_ref.clone())
        } else if n.contains("title") || n == "name" {
            Value::String(p.title.clone())
        } else if n.contains("price") {
            Value::String(p.price.clone())
        } else if req.contains(name) {
            fill(s, name, 0)
        } else {
            continue;
        };
        out.insert(name.clone(), v);
    }
    if out.is_empty() {
        out.insert("product_ref".into(), Value::String(p.product_ref.clone()));
    }
    Value::Object(out)
}

fn pick<'a>(seed: u64, salt: u64, options: &[&'a str]) -> &'a str {
    options[((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % options.len() as u64) as usize]
}

fn list_titles(picks: &[Product]) -> String {
    let titles: Vec<String> = picks.iter().map(|p| format!("the {}", p.title)).collect();
    match titles.len() {
        0 => String::new(),
        1 => titles[0].clone(),
        n => format!("{} and {}", titles[..n - 1].join(", "), titles[n - 1]),
    }
}

/// The body, or None when even the shortest form would exceed `max`.
fn compose_body(
    c: &Customer,
    picks: &[Product],
    ctx: &Context,
    extra: Option<&str>,
    max: Option<usize>,
    leak: bool,
) -> Option<String> {
    let greeting = match (&c.first_name, leak) {
        (Some(n), false) => format!("Hi {n},"),
        (Some(n), true) => format!("Hi {n} {LEAKED_LAST_NAME},"),
        (None, false) => "Hi there,".to_owned(),
        (None, true) => format!("Hi Jane {LEAKED_LAST_NAME},"),
    };
    let seed = ctx.seed ^ hash_str(&c.profile_ref);
    let history = c.history.first().map(|h| {
        let t = pick(
            seed,
            1,
            &[
                "since you picked up the {h}, we saved a few things for you.",
                "we hope you are enjoying your {h}.",
                "thanks again for choosing the {h}.",
            ],
        );
        t.replace("{h}", h)
    });
    let products = (!picks.is_empty()).then(|| {
        let t = pick(
            seed,
            2,
            &[
                "We think you will love {p}.",
                "Take a look at {p}, picked with you in mind.",
                "Next up for you: {p}.",
            ],
        );
        t.replace("{p}", &list_titles(picks))
    });
    let brief = ctx.brief_theme.as_ref().map(|b| {
        let mut s = b.clone();
        if !s.ends_with(['.', '!', '?']) {
            s.push('.');
        }
        s
    });
    let sign_off = ctx.sign_off.as_ref().map(|s| format!("\n{s}"));

    let with_history = |greeting: &str, h: &str| format!("{greeting} {h}");
    let fits = |s: &str| max.is_none_or(|m| s.chars().count() <= m);
    for (use_history, use_brief) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut s = match (&history, use_history) {
            (Some(h), true) => with_history(&greeting, h),
            _ => greeting.clone(),
        };
        if use_history && history.is_none() {
            continue;
        }
        let mut lower_next = !(use_history && history.is_some());
        for part in [
            products.as_deref(),
            extra,
            brief.as_deref().filter(|_| use_brief),
        ]
        .into_iter()
        .flatten()
        {
            s.push(' ');
            if std::mem::take(&mut lower_next) {
                // "Hi there, take a look…": the greeting's comma runs into the sentence.
                s.push_str(&lower_first(part));
            } else {
                s.push_str(part);
            }
        }
        if !fits(&s) {
            continue;
        }
        // A model fills the slot it is given: write on to 65–95% of the limit.
        let sign_off_len = sign_off.as_ref().map_or(0, |so| so.chars().count());
        let target = target_length(max, seed).saturating_sub(sign_off_len);
        write_on(
            &mut s,
            c,
            picks,
            seed,
            target,
            max.map(|m| m - sign_off_len.min(m)),
        );
        if let Some(so) = &sign_off {
            s.push_str(so);
        }
        if fits(&s) {
            return Some(s);
        }
    }
    None
}

/// How long a model writes a slot of `max` characters: 65–95% of it (350–600 without a limit).
fn target_length(max: Option<usize>, seed: u64) -> usize {
    let f = 0.65 + (hash_bytes(&seed.to_le_bytes()) % 31) as f64 / 100.0;
    match max {
        Some(m) => (m as f64 * f) as usize,
        None => 350 + (hash_bytes(&(seed ^ 7).to_le_bytes()) % 251) as usize,
    }
}

/// Sentences a model adds about the customer's products and history, in a seeded order, until
/// the copy reaches `target` characters (never past `max`). Plain words only: no numbers,
/// prices, offers or claims that the catalog and brief do not make.
fn write_on(
    s: &mut String,
    c: &Customer,
    picks: &[Product],
    seed: u64,
    target: usize,
    max: Option<usize>,
) {
    let mut sentences: Vec<String> = Vec::new();
    for (i, p) in picks.iter().enumerate() {
        let t = pick(
            seed,
            10 + i as u64,
            &[
                "The {p} is an easy one to reach for again and again.",
                "We picked the {p} because it sits well with what you already have.",
                "If you like things that just work, the {p} is worth a closer look.",
                "The {p} is one of those pieces you notice every time you use it.",
                "Many people pair the {p} with the things they already love.",
            ],
        );
        sentences.push(t.replace("{p}", &p.title));
    }
    if let Some(h) = c.history.get(1).or(c.history.first()) {
        let t = pick(
            seed,
            20,
            &[
                "It goes nicely with the {h} from your last order.",
                "Together with your {h}, it makes a setup you will enjoy.",
                "We chose it with your {h} in mind.",
            ],
        );
        sentences.push(t.replace("{h}", h));
    }
    for (i, line) in [
        "Have a look whenever you have a quiet moment.",
        "Each one was chosen with care, just for you.",
        "We would love to hear what you think.",
        "There is plenty more in the store when you are ready.",
        "Take your time and see what feels right.",
        "Thank you for being part of our community.",
    ]
    .iter()
    .enumerate()
    {
        if !hash_bytes(&(seed ^ (30 + i as u64)).to_le_bytes()).is_multiple_of(3) || i < 2 {
            sentences.push((*line).to_owned());
        }
    }
    for sentence in sentences {
        let len = s.chars().count();
        if len >= target {
            break;
        }
        let next = len + 1 + sentence.chars().count();
        if max.is_some_and(|m| next > m) {
            continue;
        }
        s.push(' ');
        s.push_str(&sentence);
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn subject(
    c: &Customer,
    picks: &[Product],
    ctx: &Context,
    max: Option<usize>,
    leak: bool,
) -> String {
    let name = c.first_name.as_deref();
    let first = picks.first().map(|p| p.title.as_str());
    let mut options: Vec<String> = Vec::new();
    if leak {
        options.push(format!(
            "{} {LEAKED_LAST_NAME}, picked for you",
            name.unwrap_or("Jane")
        ));
    }
    match (name, first) {
        (Some(n), Some(t)) => {
            options.push(format!("{n}, the {t} is waiting for you"));
            options.push(format!("{n}, meet the {t}"));
        }
        (None, Some(t)) => {
            options.push(format!("Picked for you: the {t}"));
            options.push(format!("Meet the {t}"));
        }
        _ => {}
    }
    if let Some(b) = &ctx.brief_theme {
        options.push(b.clone());
    }
    if let Some(n) = name {
        options.push(format!("{n}, picked for you"));
    }
    options.push("Picked for you".to_owned());
    // Alternate the two leading lines between customers; the fallbacks stay last.
    if !leak && options.len() > 2 && (ctx.seed ^ hash_str(&c.profile_ref)) % 2 == 1 {
        options.swap(0, 1);
    }
    first_fit(&options, max)
}

fn preheader(c: &Customer, ctx: &Context, max: Option<usize>) -> String {
    let mut options: Vec<String> = Vec::new();
    if let Some(b) = &ctx.brief_theme {
        options.push(b.clone());
    }
    if let Some(h) = c.history.first() {
        options.push(format!("Because you loved the {h}"));
    }
    options.push("New picks based on what you like".to_owned());
    options.push("Picked for you".to_owned());
    first_fit(&options, max)
}

fn first_fit(options: &[String], max: Option<usize>) -> String {
    let m = max.unwrap_or(usize::MAX);
    options
        .iter()
        .find(|o| o.chars().count() <= m)
        .cloned()
        .unwrap_or_else(|| cut_words(options.last().map(String::as_str).unwrap_or(""), m))
}

fn cut_words(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    for word in s.split(' ') {
        let extra = if out.is_empty() { 0 } else { 1 };
        if out.chars().count() + extra + word.chars().count() > max {
            break;
        }
        if extra == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        out = s.chars().take(max).collect();
    }
    out
}

/// A price that differs from the listed one: 20% lower, same currency and format.
fn wrong_price(listed: &str) -> String {
    let mut parts = listed.split_whitespace();
    let amount = parts
        .next()
        .and_then(|a| a.trim_start_matches('$').parse::<f64>().ok());
    match amount {
        Some(a) if a > 0.0 => {
            let rest: Vec<&str> = parts.collect();
            let wrong = format!("{:.2}", (a * 0.8 * 100.0).round() / 100.0);
            if rest.is_empty() {
                wrong
            } else {
                format!("{wrong} {}", rest.join(" "))
            }
        }
        _ => "19.99 USD".to_owned(),
    }
}

/// A schema-conforming placeholder for properties the generator does not understand.
pub fn fill(schema: &Value, name: &str, seed: u64) -> Value {
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return fill(first, name, seed);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match ty {
        "object" => Value::Object(fill_object_except(schema, "", seed)),
        "array" => {
            let (min, max) = items_range(schema);
            let n = min.max(1).min(max);
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            Value::Array((0..n).map(|_| fill(&items, name, seed)).collect())
        }
        "integer" => json!(schema
            .get("minimum")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(
                schema
                    .get("exclusiveMinimum")
                    .and_then(Value::as_i64)
                    .map(|m| m + 1)
                    .unwrap_or(i64::MIN)
            )),
        "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0)),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => {
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if let Some(s) = from_pattern(p) {
                    return Value::String(s);
                }
            }
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut s = cut_words(
                &format!("{} picked for you", name.replace('_', " ")),
                max_len(schema).unwrap_or(usize::MAX),
            );
            while s.chars().count() < min {
                s.push('.');
            }
            Value::String(s)
        }
    }
}

/// `^P[0-9]+$` → `P1`: literal prefix plus one digit when the pattern is that simple.
fn from_pattern(p: &str) -> Option<String> {
    let body = p.trim_start_matches('^').trim_end_matches('$');
    let literal: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let rest = &body[literal.len()..];
    match rest {
        "" => Some(literal),
        "[0-9]+" | "\\d+" | "[0-9]*" | "\\d*" | "[1-9][0-9]*" => Some(format!("{literal}1")),
        _ => None,
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
pub fn hash_str(s: &str) -> u64 {
    hash_bytes(s.as_bytes())
}

pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"profiles": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "profile_ref": {"type": "string"},
                    "subject": {"type": "string", "maxLength": 60},
                    "preheader": {"type": "string", "maxLength": 90},
                    "body": {"type": "string", "maxLength": 400},
                    "products": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                        "type": "object", "properties": {"product_ref": {"type": "string", "pattern": "^P[0-9]+$"}},
                        "required": ["product_ref"]}}
                },
                "required": ["profile_ref", "subject", "preheader", "body", "products"]}}},
            "required": ["profiles"]
        })
    }

    fn user() -> String {
        let doc = json!({"brief": "Warm layers for the first cold weekends. Ends Sunday.", "profiles": [
            {"profile_ref": "C1", "first_name": "Ana", "history": ["Trail Runner 2"], "products": [
                {"ref": "P1", "title": "Storm Shell Jacket", "price": "129.00 USD", "description": "x"},
                {"ref": "P2", "title": "Merino Trail Socks", "price": "19.00 USD", "description": "y"}]},
            {"profile_ref": "C2", "first_name": null, "history": [], "products": [
                {"ref": "P1", "title": "Camp Mug", "price": "12.00 USD", "description": "z"}]}
        ]});
        format!(
            "Write copy.\n```json\n{}\n```\nCall the tool.",
            serde_json::to_string_pretty(&doc).unwrap()
        )
    }

    #[test]
    fn copy_is_grounded_in_the_customers_products_and_history() {
        let system = vec!["You write copy.".to_owned()];
        let user = user();
        let p = Prompt {
            system: &system,
            user: &user,
            seed: 7,
        };
        let out = tool_input(&p, &schema(), Distortion::None);
        let list = out["profiles"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        let ana = &list[0];
        assert_eq!(ana["profile_ref"], "C1");
        let body = ana["body"].as_str().unwrap();
        assert!(body.contains("Ana"), "{body}");
        assert!(
            body.contains("Storm Shell Jacket") && body.contains("Trail Runner 2"),
            "{body}"
        );
        assert!(
            body.contains("Warm layers for the first cold weekends"),
            "{body}"
        );
        assert!(body.chars().count() <= 400);
        assert!(ana["subject"].as_str().unwrap().chars().count() <= 60);
        assert_eq!(ana["products"][0]["product_ref"], "P1");
        assert!(!list[1]["body"].as_str().unwrap().contains("null"));
    }

    #[test]
    fn fills_a_schema_without_any_profiles_document() {
        let system = vec![];
        let p = Prompt {
            system: &system,
            user: "hello",
            seed: 1,
        };
        let out = tool_input(&p, &schema(), Distortion::None);
        assert!(out["profiles"][0]["body"].is_string());
        assert_eq!(out["profiles"][0]["profile_ref"], "C1");
    }

    #[test]
    fn brief_and_sign_off_are_read_from_system_blocks() {
        let system = vec![
            "Rules... ending with the sign-off \"The Northwind team\" on its own line.".to_owned(),
            "Campaign brief from the merchant:\nSpring hiking days are here\n\nMore rules."
                .to_owned(),
        ];
        let user = user().replace("\"brief\"", "\"ignored\"");
        let p = Prompt {
            system: &system,
            user: &user,
            seed: 3,
        };
        let out = tool_input(&p, &schema(), Distortion::None);
        let body = out["profiles"][0]["body"].as_str().unwrap();
        assert!(body.ends_with("\nThe Northwind team"), "{body}");
        assert!(body.contains("Spring hiking days are here"), "{body}");
    }

    #[test]
    fn short_body_limit_drops_products_before_overflowing() {
        let mut s = schema();
        s["properties"]["profiles"]["items"]["properties"]["body"]["maxLength"] = json!(80);
        let user = user();
        let p = Prompt {
            system: &[],
            user: &user,
            seed: 3,
        };
        let out = tool_input(&p, &s, Distortion::None);
        let e = &out["profiles"][0];
        assert!(e["body"].as_str().unwrap().chars().count() <= 80);
        for prod in e["products"].as_array().unwrap() {
            let title = if prod["product_ref"] == "P1" {
                "Storm Shell Jacket"
            } else {
                "Merino Trail Socks"
            };
            assert!(e["body"].as_str().unwrap().contains(title));
        }
    }

    #[test]
    fn truncation_keeps_a_partial_first_entry() {
        let user = user();
        let p = Prompt {
            system: &[],
            user: &user,
            seed: 3,
        };
        let out = truncate_input(&tool_input(&p, &schema(), Distortion::None));
        assert_eq!(out["profiles"].as_array().unwrap().len(), 1);
        assert!(out["profiles"][0].get("products").is_none());
    }

    #[test]
    fn simple_patterns_yield_matching_strings() {
        assert_eq!(from_pattern("^P[0-9]+$").as_deref(), Some("P1"));
        assert_eq!(from_pattern("^[a-z]+$"), None);
    }
}
