//! Writer mode: a stand-in model that writes fluent, varied copy in the requested language and,
//! at configured rates, makes the mistakes real models make, each recorded with the exact text
//! it put into the answer (`GET /_sandbox/bedrock/injected`).
//!
//! It reads only what a model reads: the system blocks (language, slot limits, sign-off, the
//! brief and its offer line), the customers JSON document in the user message and the forced
//! tool's input schema (slot names and `maxLength`). At most one mistake per customer entry.

mod lang;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub use self::lang::Lang;
use self::lang::{date, money, percent, split_decimal, translate_scope, Bank};
use super::generate::{self, hash_bytes, Prompt};

/// The mistakes writer mode makes, as labelled in `/_sandbox/bedrock/injected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DefectKind {
    InventedOffer,
    RescopedOffer,
    WrongPrice,
    InventedCode,
    Link,
    OtherCustomerName,
    Surname,
    NameWhenUnknown,
    WrongLanguage,
    TooLong,
    ExtraProductRef,
    DuplicateProductRef,
    Truncated,
}

impl DefectKind {
    pub const ALL: [DefectKind; 13] = [
        Self::InventedOffer,
        Self::RescopedOffer,
        Self::WrongPrice,
        Self::InventedCode,
        Self::Link,
        Self::OtherCustomerName,
        Self::Surname,
        Self::NameWhenUnknown,
        Self::WrongLanguage,
        Self::TooLong,
        Self::ExtraProductRef,
        Self::DuplicateProductRef,
        Self::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InventedOffer => "invented_offer",
            Self::RescopedOffer => "rescoped_offer",
            Self::WrongPrice => "wrong_price",
            Self::InventedCode => "invented_code",
            Self::Link => "link",
            Self::OtherCustomerName => "other_customer_name",
            Self::Surname => "surname",
            Self::NameWhenUnknown => "name_when_unknown",
            Self::WrongLanguage => "wrong_language",
            Self::TooLong => "too_long",
            Self::ExtraProductRef => "extra_product_ref",
            Self::DuplicateProductRef => "duplicate_product_ref",
            Self::Truncated => "truncated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Per customer entry; about 20% in all, the share of answers a validator sees fail with a
    /// small model on long prompts.
    fn default_rate(self) -> f64 {
        match self {
            Self::InventedOffer => 0.03,
            Self::RescopedOffer => 0.02,
            Self::WrongPrice => 0.02,
            Self::InventedCode => 0.015,
            Self::Link => 0.015,
            Self::OtherCustomerName => 0.01,
            Self::Surname => 0.01,
            Self::NameWhenUnknown => 0.015,
            Self::WrongLanguage => 0.01,
            Self::TooLong => 0.015,
            Self::ExtraProductRef => 0.015,
            Self::DuplicateProductRef => 0.01,
            Self::Truncated => 0.005,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub enabled: bool,
    pub seed: u64,
    pub rates: BTreeMap<DefectKind, f64>,
}

impl WriterConfig {
    pub fn default_rates() -> BTreeMap<DefectKind, f64> {
        DefectKind::ALL
            .iter()
            .map(|k| (*k, k.default_rate()))
            .collect()
    }

    pub fn new(enabled: bool, seed: u64) -> Self {
        Self {
            enabled,
            seed,
            rates: Self::default_rates(),
        }
    }

    pub fn to_json(&self) -> Value {
        let rates: Map<String, Value> = DefectKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_owned(),
                    json!(self.rates.get(k).copied().unwrap_or(0.0)),
                )
            })
            .collect();
        json!({
            "enabled": self.enabled,
            "seed": self.seed,
            "defect_rates": rates,
            "total_rate": (self.rates.values().sum::<f64>() * 1e6).round() / 1e6,
        })
    }
}

/// One injected mistake: `fragment` is the exact text (or ref) put into the answer.
#[derive(Clone, Debug)]
pub struct Injected {
    pub call: u64,
    pub profile_ref: String,
    pub kind: DefectKind,
    pub slot: String,
    pub fragment: String,
}

impl Injected {
    pub fn to_json(&self) -> Value {
        json!({
            "call": self.call,
            "profile_ref": self.profile_ref,
            "kind": self.kind.as_str(),
            "slot": self.slot,
            "fragment": self.fragment,
        })
    }
}

/// The writer's answer: the tool input and, when the model ran out of output budget, where its
/// serialized form was cut (characters kept).
pub struct Written {
    pub input: Value,
    pub injected: Vec<Injected>,
    pub cut_at: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// A small seeded generator (SplitMix64): stable across Rust and crate versions.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the prompt

#[derive(Clone, Debug)]
struct Product {
    product_ref: String,
    title: String,
    price: String,
    fact: Option<String>,
}

#[derive(Clone, Debug)]
struct Customer {
    profile_ref: String,
    first_name: Option<String>,
    last_name: Option<String>,
    history: Vec<String>,
    products: Vec<Product>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offer {
    pub kind: String,
    pub percent: Option<u64>,
    pub amount: Option<String>,
    pub min_spend: Option<String>,
    pub scope: Option<String>,
    pub ends_on: Option<String>,
    pub code: Option<String>,
    pub currency: Option<String>,
}

struct Context {
    lang: Lang,
    customers: Vec<Customer>,
    offer: Option<Offer>,
    currency: String,
    sign_off: Option<String>,
    brand: String,
    system_limits: BTreeMap<String, usize>,
}

/// The language tag the system prompt asks for: a quoted BCP-47 tag (or a bare known one) within
/// a short distance after the word "language".
pub fn requested_language(system: &str) -> Lang {
    let lower = system.to_lowercase();
    for (i, _) in lower.match_indices("language") {
        let window: String = system[i..].chars().take(120).collect();
        for quoted in window.split('"').skip(1).step_by(2) {
            if let Some(l) = Lang::from_tag(quoted.trim()) {
                return l;
            }
        }
        for word in window.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let primary = word.split('-').next().unwrap_or("");
            if primary.len() == 2 && primary.chars().all(|c| c.is_ascii_lowercase()) {
                if let Some(l) = Lang::from_tag(word) {
                    return l;
                }
            }
        }
    }
    Lang::En
}

/// The JSON object on the line after "Offer (...):" (or on the same line) in the brief block.
pub fn read_offer(system: &[String]) -> Option<Offer> {
    for block in system {
        let Some(i) = block.find("Offer (").or_else(|| block.find("Offer:")) else {
            continue;
        };
        let rest = &block[i..];
        let start = rest.find('{')?;
        let mut stream = serde_json::Deserializer::from_str(&rest[start..]).into_iter::<Value>();
        let v = stream.next()?.ok()?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| match x {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        let kind = s("kind")?;
        if kind == "none" {
            return None;
        }
        return Some(Offer {
            percent: v.get("percent").and_then(|p| {
                p.as_u64()
                    .or_else(|| p.as_f64().map(|f| f.round() as u64))
                    .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
            }),
            amount: s("amount"),
            min_spend: s("min_spend"),
            scope: s("scope"),
            ends_on: s("ends_on"),
            code: s("code"),
            currency: s("currency").map(|c| c.to_ascii_uppercase()),
            kind,
        });
    }
    None
}

/// "- subject: ... at most 60 characters" lines of the system prompt.
fn system_limits(system: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in system.lines() {
        let l = line.trim_start_matches(['-', ' ']);
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.is_empty() {
            continue;
        }
        if let Some(i) = rest.find("at most ") {
            let n: String = rest[i + 8..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = n.parse() {
                out.insert(name.to_owned(), n);
            }
        }
    }
    out
}

/// A short phrase from a description: its first clause, at most ~60 characters, cut at a word.
fn fact(description: &str) -> Option<String> {
    let first = description
        .split(['.', '!', '?', ';', '\n', '(', ':'])
        .map(str::trim)
        .find(|s| s.chars().count() >= 8)?;
    let mut out = String::new();
    for w in first.split_whitespace() {
        if out.chars().count() + w.chars().count() + 1 > 60 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    let out = out.trim_end_matches([',', '-', ' ']).to_owned();
    if out.chars().count() < 8 {
        return None;
    }
    // Lower-case the first letter unless the phrase starts with a name or acronym.
    let mut chars = out.chars();
    let first = chars.next()?;
    let second = chars.next();
    if second.is_some_and(|c| c.is_lowercase()) {
        Some(first.to_lowercase().chain(out.chars().skip(1)).collect())
    } else {
        Some(out)
    }
}

fn read_customers(user: &str) -> Vec<Customer> {
    let Some(doc) = generate::find_profiles_document(user) else {
        return Vec::new();
    };
    let Some(list) = generate::find_profiles_array(&doc) else {
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let history = match ["bought_before", "history", "purchases"]
                .iter()
                .find_map(|k| v.get(*k))
            {
                Some(Value::String(s)) if !s.to_lowercase().starts_with("no previous") => s
                    .split(';')
                    .map(|p| p.split(" (").next().unwrap_or(p).trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .or_else(|| generate::str_field(x, &["title"]).map(str::to_owned))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let products = v
                .get("products")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .enumerate()
                        .map(|(j, p)| Product {
                            product_ref: generate::str_field(p, &["ref", "product_ref"])
                                .map(str::to_owned)
                                .unwrap_or_else(|| format!("P{}", j + 1)),
                            title: generate::str_field(p, &["title", "name"])
                                .unwrap_or("")
                                .to_owned(),
                            price: generate::str_field(p, &["price"]).unwrap_or("").to_owned(),
                            fact: generate::str_field(p, &["description"]).and_then(fact),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Customer {
                profile_ref: generate::str_field(v, &["profile_ref", "ref"])
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("C{}", i + 1)),
                first_name: generate::str_field(v, &["first_name", "firstName"]).map(str::to_owned),
                last_name: generate::str_field(v, &["last_name", "lastName", "surname"])
                    .map(str::to_owned),
                history,
                products,
            }
        })
        .collect()
}

/// ISO 4217 code from a listed price ("$199.00", "199,00 €", "129.00 USD").
fn currency_of(price: &str) -> Option<String> {
    let p = price.trim();
    for (sym, code) in [
        ("R$", "BRL"),
        ("$", "USD"),
        ("€", "EUR"),
        ("£", "GBP"),
        ("¥", "JPY"),
        ("円", "JPY"),
        ("zł", "PLN"),
        ("kr", "SEK"),
    ] {
        if p.contains(sym) {
            return Some(code.to_owned());
        }
    }
    p.split_whitespace()
        .find(|w| w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))
        .map(str::to_owned)
}

/// The number in a listed price, as a decimal string with a dot ("$1,299.00" → "1299.00").
fn amount_of(price: &str) -> Option<String> {
    let digits: String = price
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .collect();
    if digits.is_empty() {
        return None;
    }
    // The last separator followed by exactly two digits is the decimal point.
    let (int, frac) = match digits.rfind(['.', ',']) {
        Some(i) if digits.len() - i == 3 => (&digits[..i], &digits[i + 1..]),
        _ => (digits.as_str(), ""),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    if int.is_empty() {
        return None;
    }
    Some(if frac.is_empty() {
        int
    } else {
        format!("{int}.{frac}")
    })
}

fn brand_from(sign_off: Option<&str>) -> String {
    let words: Vec<String> = sign_off
        .unwrap_or("")
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| {
            !w.is_empty()
                && ![
                    "the", "team", "das", "le", "el", "your", "from", "de", "die", "la", "il",
                    "och", "and", "und",
                ]
                .contains(&w.as_str())
        })
        .collect();
    words.first().cloned().unwrap_or_else(|| "shop".to_owned())
}

impl Context {
    fn read(prompt: &Prompt<'_>) -> Self {
        let system_text = prompt.system.join("\n");
        let customers = read_customers(prompt.user);
        let offer = read_offer(prompt.system);
        let currency = offer
            .as_ref()
            .and_then(|o| o.currency.clone())
            .or_else(|| {
                customers
                    .iter()
                    .flat_map(|c| c.products.iter())
                    .find_map(|p| currency_of(&p.price))
            })
            .unwrap_or_else(|| "USD".to_owned());
        let sign_off = generate::quoted_after(&system_text, "sign-off \"");
        Self {
            lang: requested_language(&system_text),
            brand: brand_from(sign_off.as_deref()),
            customers,
            offer,
            currency,
            sign_off,
            system_limits: system_limits(&system_text),
        }
    }

    fn limit(&self, slot: &str, schema_max: Option<usize>) -> Option<usize> {
        match (schema_max, self.system_limits.get(slot).copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Offers in words

/// The offer in `lang`: `full` with date and code (the code first when `code_first`), `short`
/// with kind and scope only.
fn offer_text(
    lang: Lang,
    o: &Offer,
    currency: &str,
    widen: bool,
    code_first: bool,
) -> Option<(String, String)> {
    let w = &lang.bank().offer_words;
    let cur = o.currency.as_deref().unwrap_or(currency);
    let core = match o.kind.as_str() {
        "percent_off" => percent(lang, o.percent?),
        "amount_off" => w
            .amount
            .replace("{a}", &money(lang, o.amount.as_deref()?, cur)),
        "free_shipping" => match (&o.min_spend, widen) {
            (Some(m), false) => w.free_shipping_min.replace("{a}", &money(lang, m, cur)),
            _ => w.free_shipping.to_owned(),
        },
        _ => return None,
    };
    let scope = if widen {
        Some(w.everything.to_owned())
    } else {
        o.scope
            .as_deref()
            .map(|s| w.scope.replace("{s}", &translate_scope(lang, s)))
    };
    let until = o
        .ends_on
        .as_deref()
        .map(|d| w.until.replace("{d}", &date(lang, d)));
    let code = o.code.as_deref().map(|c| w.code.replace("{c}", c));
    if lang == Lang::Ja {
        // 12月24日まで、アウターが20%オフ（クーポンコード：SNOW20）
        let short = format!("{}{core}", scope.clone().unwrap_or_default());
        let mut full = String::new();
        if let Some(u) = &until {
            full.push_str(u);
            full.push('、');
        }
        full.push_str(&short);
        if let Some(c) = &code {
            full.push_str(c);
        }
        return Some((full, short));
    }
    let short = match &scope {
        Some(s) => format!("{core} {s}"),
        None => core,
    };
    let mut full = short.clone();
    let parts = if code_first {
        [code, until]
    } else {
        [until, code]
    };
    for part in parts.into_iter().flatten() {
        full.push(' ');
        full.push_str(&part);
    }
    Some((full, short))
}

/// The stated offer made bigger than it is: everything instead of its scope, or a larger
/// percentage or amount when it has no scope.
fn widened_offer(lang: Lang, o: &Offer, currency: &str, rng: &mut Rng) -> Option<String> {
    if o.scope.is_some() || (o.kind == "free_shipping" && o.min_spend.is_some()) {
        return offer_text(lang, o, currency, true, false).map(|(_, short)| short);
    }
    let mut bigger = o.clone();
    match o.kind.as_str() {
        "percent_off" => bigger.percent = Some(o.percent? + 5 * (1 + rng.below(3) as u64)),
        "amount_off" => {
            let (int, frac) = split_decimal(o.amount.as_deref()?)?;
            let n: u64 = int.parse().ok()?;
            bigger.amount = Some(format!("{}.{frac}", n + 5 * (1 + rng.below(3) as u64)));
        }
        _ => return None,
    }
    offer_text(lang, &bigger, currency, false, false).map(|(_, short)| short)
}

// ---------------------------------------------------------------------------------------------
// Writing

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in vars {
        s = s.replace(k, v);
    }
    s
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

struct Sentence {
    text: String,
    /// Lower keeps longer when the slot is tight; `u8::MAX` is never dropped.
    keep: u8,
}

/// Joins sentences (optionally followed by the sign-off line).
fn join(lang: Lang, sentences: &[Sentence], sign_off: Option<&str>) -> String {
    let mut s = sentences
        .iter()
        .map(|x| x.text.as_str())
        .collect::<Vec<_>>()
        .join(lang.sep());
    if let Some(so) = sign_off {
        s.push('\n');
        s.push_str(so);
    }
    s
}

struct EntryPlan<'a> {
    lang: Lang,
    c: &'a Customer,
    /// The name in the greeting (None: no name).
    name: Option<String>,
    picks: Vec<&'a Product>,
    /// Inserted before the closing sentence, never dropped.
    inject: Option<String>,
}

/// The body: greeting, products by title, a description fact, history, the offer, closers, in
/// a seeded order, filled to 65–95% of `max` (sign-off included) without passing it.
fn body(ctx: &Context, plan: &EntryPlan<'_>, max: Option<usize>, rng: &mut Rng) -> Option<String> {
    let bank: &Bank = plan.lang.bank();
    let must = u8::MAX;
    let greeting = match &plan.name {
        Some(n) => fill(rng.pick(bank.greet_name), &[("{name}", n)]),
        None => rng.pick(bank.greet_anon).to_owned(),
    };
    let mut lead: Vec<Sentence> = Vec::new();
    let mut middle: Vec<Sentence> = Vec::new();
    // Without products to name, the copy opens with a general line.
    let no_product = Product {
        product_ref: String::new(),
        title: String::new(),
        price: String::new(),
        fact: None,
    };
    let first = plan.picks.first().copied().unwrap_or(&no_product);
    let lead_s = Sentence {
        text: if plan.picks.is_empty() {
            rng.pick(bank.extra).to_owned()
        } else {
            fill(rng.pick(bank.lead), &[("{p}", &first.title)])
        },
        keep: must,
    };
    let history = plan
        .c
        .history
        .get(rng.below(plan.c.history.len().min(2)))
        .map(|h| Sentence {
            text: fill(rng.pick(bank.history), &[("{h}", h)]),
            keep: 3,
        });
    let history_first = rng.chance(0.5);
    if let (Some(h), true) = (&history, history_first) {
        lead.push(Sentence {
            text: h.text.clone(),
            keep: h.keep,
        });
    }
    lead.push(lead_s);
    let fact_product = plan
        .picks
        .get(rng.below(plan.picks.len()))
        .copied()
        .unwrap_or(&no_product);
    if let Some(f) = &fact_product.fact {
        middle.push(Sentence {
            text: fill(
                rng.pick(bank.fact),
                &[("{p}", &fact_product.title), ("{f}", f)],
            ),
            keep: 4,
        });
    }
    // A different frame for each further product.
    let mut frames: Vec<&str> = bank.more.to_vec();
    for p in plan.picks.iter().skip(1) {
        let frame = if frames.len() > 1 {
            frames.remove(rng.below(frames.len()))
        } else {
            frames[0]
        };
        middle.push(Sentence {
            text: fill(frame, &[("{p}", &p.title)]),
            keep: must,
        });
    }
    if let (Some(h), false) = (history, history_first) {
        middle.push(h);
    }
    if rng.chance(0.25) && !first.price.is_empty() {
        middle.push(Sentence {
            text: fill(
                rng.pick(bank.price),
                &[("{p}", &first.title), ("{price}", &first.price)],
            ),
            keep: 1,
        });
    }
    let code_first = rng.chance(0.4);
    if let Some((full, _)) = ctx
        .offer
        .as_ref()
        .and_then(|o| offer_text(plan.lang, o, &ctx.currency, false, code_first))
    {
        let s = Sentence {
            text: fill(rng.pick(bank.offer), &[("{offer}", &full)]),
            keep: must,
        };
        if rng.chance(0.3) {
            lead.insert(0, s);
        } else {
            middle.push(s);
        }
    }
    if let Some(x) = &plan.inject {
        middle.push(Sentence {
            text: x.clone(),
            keep: must,
        });
    }
    let closer = Sentence {
        text: rng.pick(bank.closer).to_owned(),
        keep: 2,
    };
    let mut sentences = vec![Sentence {
        text: greeting,
        keep: must,
    }];
    sentences.extend(lead);
    sentences.extend(middle);
    sentences.push(closer);

    let sign_off = ctx.sign_off.as_deref();
    let fits = |s: &[Sentence]| max.is_none_or(|m| char_len(&join(plan.lang, s, sign_off)) <= m);
    // Drop optional sentences, least important first, until it fits.
    while !fits(&sentences) {
        let drop = sentences
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keep < must)
            .min_by_key(|(_, s)| s.keep)
            .map(|(i, _)| i);
        match drop {
            Some(i) => {
                sentences.remove(i);
            }
            None => return None,
        }
    }
    // Write on to the target length with extra sentences, before the closer.
    let target = match max {
        Some(m) => (m as f64 * (0.65 + rng.unit() * 0.3)) as usize,
        None => 300 + rng.below(300),
    };
    let mut extras: Vec<&str> = bank.extra.to_vec();
    while !extras.is_empty() && char_len(&join(plan.lang, &sentences, sign_off)) < target {
        let e = extras.remove(rng.below(extras.len()));
        let at = sentences.len().saturating_sub(1).max(1);
        sentences.insert(
            at,
            Sentence {
                text: e.to_owned(),
                keep: 0,
            },
        );
        if !fits(&sentences) {
            sentences.remove(at);
        }
    }
    Some(join(plan.lang, &sentences, sign_off))
}

fn first_fit(options: Vec<String>, max: Option<usize>) -> String {
    let m = max.unwrap_or(usize::MAX);
    options
        .iter()
        .find(|o| char_len(o) <= m && !o.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            options
                .last()
                .cloned()
                .unwrap_or_default()
                .chars()
                .take(m)
                .collect()
        })
}

fn subject(ctx: &Context, plan: &EntryPlan<'_>, max: Option<usize>, rng: &mut Rng) -> String {
    let bank = plan.lang.bank();
    let title = plan.picks.first().map(|p| p.title.as_str()).unwrap_or("");
    let mut options = Vec::new();
    if let Some((_, short)) = ctx
        .offer
        .as_ref()
        .and_then(|o| offer_text(plan.lang, o, &ctx.currency, false, false))
    {
        if rng.chance(0.4) {
            options.push(fill(rng.pick(bank.subject_offer), &[("{offer}", &short)]));
        }
    }
    match &plan.name {
        Some(n) => {
            options.push(fill(
                rng.pick(bank.subject_name),
                &[("{name}", n), ("{p}", title)],
            ));
            options.push(fill(
                bank.subject_name[2.min(bank.subject_name.len() - 1)],
                &[("{name}", n), ("{p}", title)],
            ));
        }
        None => options.push(fill(rng.pick(bank.subject_anon), &[("{p}", title)])),
    }
    options.push(fill(
        bank.subject_anon[bank.subject_anon.len() - 1],
        &[("{p}", title)],
    ));
    options.push(rng.pick(bank.subject_short).to_owned());
    options.push(bank.subject_short[1].to_owned());
    first_fit(options, max)
}

fn preheader(ctx: &Context, plan: &EntryPlan<'_>, max: Option<usize>, rng: &mut Rng) -> String {
    let bank = plan.lang.bank();
    let mut options = Vec::new();
    let title = plan.picks.first().map(|p| p.title.as_str()).unwrap_or("");
    if let Some((_, short)) = ctx
        .offer
        .as_ref()
        .and_then(|o| offer_text(plan.lang, o, &ctx.currency, false, false))
    {
        if rng.chance(0.3) {
            options.push(fill(rng.pick(bank.preheader_offer), &[("{offer}", &short)]));
        }
    }
    if let (Some(h), true) = (plan.c.history.first(), rng.chance(0.5)) {
        options.push(fill(rng.pick(bank.preheader_history), &[("{h}", h)]));
    }
    options.push(fill(rng.pick(bank.preheader), &[("{p}", title)]));
    options.push(bank.preheader[1].to_owned());
    options.push(rng.pick(bank.preheader_short).to_owned());
    options.push(bank.preheader_short[0].to_owned());
    first_fit(options, max)
}

/// Slot name → (schema, `maxLength`) for the entry schema's string slots.
fn slot_of(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.contains("subject") {
        "subject"
    } else if n.contains("preheader") || n.contains("preview") {
        "preheader"
    } else if n.contains("body") || n == "copy" || n == "text" {
        "body"
    } else if n.contains("profile") || n.contains("customer") || n == "ref" {
        "profile_ref"
    } else if n.contains("product") {
        "products"
    } else {
        "other"
    }
}

/// What one customer's entry gets wrong, if anything, and the text it puts in.
struct Mistake {
    kind: DefectKind,
    slot: &'static str,
    fragment: String,
}

fn draw(cfg: &WriterConfig, rng: &mut Rng) -> Option<DefectKind> {
    let u = rng.unit();
    let mut acc = 0.0;
    for (k, r) in &cfg.rates {
        acc += r;
        if u < acc {
            return Some(*k);
        }
    }
    None
}

fn invented_code(o: Option<&Offer>, rng: &mut Rng) -> String {
    let generic = [
        "WINTER10",
        "WELCOME15",
        "VIP20",
        "THANKYOU10",
        "SAVE15",
        "EXTRA10",
    ];
    if let Some(code) = o.and_then(|o| o.code.as_deref()) {
        let letters: String = code.chars().take_while(|c| c.is_alphabetic()).collect();
        let digits: String = code.chars().filter(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or(10) + 5;
        let base = if letters.is_empty() {
            "SAVE".to_owned()
        } else {
            letters
        };
        let variants = [
            format!("{}{n}", base.to_lowercase()),
            format!("{base}-{n}"),
            format!("{base}{n}"),
            generic[rng.below(generic.len())].to_owned(),
        ];
        let v = variants[rng.below(variants.len())].clone();
        if v == code {
            format!("{base}{}", n + 5)
        } else {
            v
        }
    } else {
        generic[rng.below(generic.len())].to_owned()
    }
}

fn wrong_price(lang: Lang, listed: &str, currency: &str, rng: &mut Rng) -> String {
    let amount = amount_of(listed).unwrap_or_else(|| "49.00".to_owned());
    let (int, frac) = split_decimal(&amount).unwrap_or(("49".into(), "00".into()));
    let n: u64 = int.parse().unwrap_or(49);
    let other_amount = format!("{}.{frac}", (n * (60 + rng.below(30) as u64) / 100).max(1));
    let other_currency = if currency == "USD" { "EUR" } else { "USD" };
    let options = [
        // The right number in the wrong currency and another language's format.
        money(
            if lang == Lang::En { Lang::De } else { Lang::En },
            &amount,
            other_currency,
        ),
        // An amount nobody stated, in the shop's own currency and the right format.
        money(lang, &other_amount, currency),
        // A four-digit price in US format, as models write prices from memory.
        money(Lang::En, &format!("{}.00", 1000 + n * 3), other_currency),
    ];
    let pick = options[rng.below(options.len())].clone();
    if pick == listed {
        options[1].clone()
    } else {
        pick
    }
}

/// Writes the answer to the forced tool's `schema` (see the module docs).
pub fn write(prompt: &Prompt<'_>, schema: &Value, cfg: &WriterConfig, call: u64) -> Written {
    let ctx = Context::read(prompt);
    if ctx.customers.is_empty() {
        // No customers document to write for: the template answer, which fits the schema.
        return Written {
            input: generate::tool_input(prompt, schema, generate::Distortion::None),
            injected: Vec::new(),
            cut_at: None,
        };
    }
    let mut rng = Rng(cfg.seed ^ hash_bytes(&call.to_le_bytes()).rotate_left(17) ^ prompt.seed);
    let Some((list_key, item_schema)) = generate::list_property(schema) else {
        // Not the per-customer shape: a plain schema-conforming answer.
        return Written {
            input: generate::fill(schema, "value", prompt.seed),
            injected: Vec::new(),
            cut_at: None,
        };
    };
    let mut top = generate::fill_object_except(schema, &list_key, prompt.seed);
    let props = generate::properties(&item_schema);
    let required = generate::required(&item_schema);
    let max_items = props
        .iter()
        .find(|(k, _)| slot_of(k) == "products")
        .map(|(_, p)| generate::items_range(p).1)
        .unwrap_or(3);
    let products_are_strings = props
        .iter()
        .find(|(k, _)| slot_of(k) == "products")
        .and_then(|(_, p)| p.get("items"))
        .is_some_and(|i| !generate::is_object_schema(i));

    let mut entries = Vec::new();
    let mut injected = Vec::new();
    let mut truncate_entry: Option<usize> = None;
    for (idx, c) in ctx.customers.iter().enumerate() {
        let mut lang = ctx.lang;
        let mut name = c.first_name.clone();
        let mut inject: Option<String> = None;
        let mut mistake: Option<Mistake> = None;
        let bank = lang.bank();
        let kind = draw(cfg, &mut rng);
        let wanted = c.products.len().clamp(0, max_items.min(3));
        let mut picks: Vec<&Product> = c
            .products
            .iter()
            .take(1 + rng.below(wanted.max(1)))
            .collect();
        if picks.is_empty() {
            // Nothing to recommend: an entry without products (the validator decides).
            picks = Vec::new();
        }
        let mut extra_ref: Option<String> = None;
        let mut duplicate_ref: Option<String> = None;
        match kind {
            Some(DefectKind::InventedOffer) => {
                let phrase = rng.pick(bank.invented_offers).to_owned();
                inject = Some(fill(
                    rng.pick(bank.invented_offer_frame),
                    &[("{offer}", &phrase)],
                ));
                mistake = Some(Mistake {
                    kind: DefectKind::InventedOffer,
                    slot: "body",
                    fragment: phrase,
                });
            }
            Some(DefectKind::RescopedOffer) => {
                if let Some(w) = ctx
                    .offer
                    .as_ref()
                    .and_then(|o| widened_offer(lang, o, &ctx.currency, &mut rng))
                {
                    inject = Some(fill(
                        rng.pick(bank.invented_offer_frame),
                        &[("{offer}", &w)],
                    ));
                    mistake = Some(Mistake {
                        kind: DefectKind::RescopedOffer,
                        slot: "body",
                        fragment: w,
                    });
                }
            }
            Some(DefectKind::WrongPrice) => {
                if let Some(p) = picks.first() {
                    let price = wrong_price(lang, &p.price, &ctx.currency, &mut rng);
                    inject = Some(fill(
                        rng.pick(bank.wrong_price_frame),
                        &[("{p}", &p.title), ("{price}", &price)],
                    ));
                    mistake = Some(Mistake {
                        kind: DefectKind::WrongPrice,
                        slot: "body",
                        fragment: price,
                    });
                }
            }
            Some(DefectKind::InventedCode) => {
                let code = invented_code(ctx.offer.as_ref(), &mut rng);
                inject = Some(fill(rng.pick(bank.code_frame), &[("{code}", &code)]));
                mistake = Some(Mistake {
                    kind: DefectKind::InventedCode,
                    slot: "body",
                    fragment: code,
                });
            }
            Some(DefectKind::Link) => {
                let b = &ctx.brand;
                let links = [
                    format!("{b}.com/sale"),
                    format!("www.{b}.com"),
                    format!("https://{b}.com/new"),
                    format!("{b}-shop.com/deals"),
                ];
                let link = links[rng.below(links.len())].clone();
                inject = Some(fill(rng.pick(bank.link_frame), &[("{link}", &link)]));
                mistake = Some(Mistake {
                    kind: DefectKind::Link,
                    slot: "body",
                    fragment: link,
                });
            }
            Some(DefectKind::OtherCustomerName) => {
                let others: Vec<&String> = ctx
                    .customers
                    .iter()
                    .filter(|o| o.profile_ref != c.profile_ref)
                    .filter_map(|o| o.first_name.as_ref())
                    .filter(|n| Some(*n) != c.first_name.as_ref())
                    .collect();
                if !others.is_empty() {
                    let other = others[rng.below(others.len())].clone();
                    name = Some(other.clone());
                    mistake = Some(Mistake {
                        kind: DefectKind::OtherCustomerName,
                        slot: "body",
                        fragment: other,
                    });
                }
            }
            Some(DefectKind::Surname) => {
                if let Some(first) = &c.first_name {
                    let surname = c
                        .last_name
                        .clone()
                        .unwrap_or_else(|| rng.pick(bank.surnames).to_owned());
                    name = Some(if lang == Lang::Ja {
                        format!("{surname}{first}")
                    } else {
                        format!("{first} {surname}")
                    });
                    mistake = Some(Mistake {
                        kind: DefectKind::Surname,
                        slot: "body",
                        fragment: surname,
                    });
                }
            }
            Some(DefectKind::NameWhenUnknown) if c.first_name.is_none() => {
                let n = rng.pick(bank.given_names).to_owned();
                name = Some(n.clone());
                mistake = Some(Mistake {
                    kind: DefectKind::NameWhenUnknown,
                    slot: "body",
                    fragment: n,
                });
            }
            Some(DefectKind::WrongLanguage) => {
                let others: Vec<Lang> = Lang::ALL.into_iter().filter(|l| *l != ctx.lang).collect();
                lang = others[rng.below(others.len())];
                // The fragment (the body without its sign-off) is filled in once written.
                mistake = Some(Mistake {
                    kind: DefectKind::WrongLanguage,
                    slot: "body",
                    fragment: String::new(),
                });
            }
            Some(DefectKind::TooLong) => {
                mistake = Some(Mistake {
                    kind: DefectKind::TooLong,
                    slot: "body",
                    fragment: String::new(),
                });
            }
            Some(DefectKind::ExtraProductRef) => {
                let r = format!("P{}", c.products.len() + 1 + rng.below(5));
                extra_ref = Some(r.clone());
                mistake = Some(Mistake {
                    kind: DefectKind::ExtraProductRef,
                    slot: "products",
                    fragment: r,
                });
            }
            Some(DefectKind::DuplicateProductRef) => {
                if let Some(p) = picks.first() {
                    duplicate_ref = Some(p.product_ref.clone());
                    mistake = Some(Mistake {
                        kind: DefectKind::DuplicateProductRef,
                        slot: "products",
                        fragment: p.product_ref.clone(),
                    });
                }
            }
            Some(DefectKind::Truncated) => {
                truncate_entry = Some(idx);
            }
            _ => {}
        }
        let too_long = mistake
            .as_ref()
            .is_some_and(|m| m.kind == DefectKind::TooLong);
        // Fewer products when the must-say sentences would not fit.
        let mut plan = EntryPlan {
            lang,
            c,
            name,
            picks,
            inject,
        };
        let mut out = Map::new();
        for (key, p) in &props {
            let max = ctx.limit(slot_of(key), generate::max_len(p));
            let value = match slot_of(key) {
                "profile_ref" => Value::String(c.profile_ref.clone()),
                "subject" => Value::String(subject(&ctx, &plan, max, &mut rng)),
                "preheader" => Value::String(preheader(&ctx, &plan, max, &mut rng)),
                "body" => {
                    let mut text = None;
                    while text.is_none() {
                        text = body(&ctx, &plan, max, &mut rng);
                        if text.is_none() {
                            if plan.picks.len() <= 1 {
                                break;
                            }
                            plan.picks.pop();
                        }
                    }
                    let mut text = text.unwrap_or_else(|| {
                        body(&ctx, &plan, None, &mut rng)
                            .unwrap_or_default()
                            .chars()
                            .take(max.unwrap_or(500))
                            .collect()
                    });
                    if too_long {
                        // Runs on past the limit: extra sentences before the sign-off.
                        let m = max.unwrap_or(500);
                        let mut added = String::new();
                        let mut pool: Vec<&str> = plan
                            .lang
                            .bank()
                            .extra
                            .iter()
                            .copied()
                            .filter(|x| !text.contains(x))
                            .collect();
                        while char_len(&text) + char_len(&added) <= m + 20 && !pool.is_empty() {
                            added.push_str(plan.lang.sep());
                            added.push_str(pool.remove(rng.below(pool.len())));
                        }
                        while char_len(&text) + char_len(&added) <= m {
                            added.push_str(plan.lang.sep());
                            added.push_str(plan.lang.bank().extra[0]);
                        }
                        let at = ctx
                            .sign_off
                            .as_ref()
                            .and_then(|so| text.rfind(&format!("\n{so}")))
                            .unwrap_or(text.len());
                        text.insert_str(at, &added);
                        if let Some(m) = mistake.as_mut() {
                            m.fragment = added.trim_start().to_owned();
                        }
                    }
                    if let Some(m) = mistake
                        .as_mut()
                        .filter(|m| m.kind == DefectKind::WrongLanguage)
                    {
                        let end = ctx
                            .sign_off
                            .as_ref()
                            .and_then(|so| text.rfind(&format!("\n{so}")))
                            .unwrap_or(text.len());
                        m.fragment = text[..end].to_owned();
                    }
                    Value::String(text)
                }
                "products" => {
                    let mut refs: Vec<String> =
                        plan.picks.iter().map(|p| p.product_ref.clone()).collect();
                    if let Some(r) = &extra_ref {
                        refs.push(r.clone());
                    }
                    if let Some(r) = &duplicate_ref {
                        refs.push(r.clone());
                    }
                    Value::Array(
                        refs.into_iter()
                            .map(|r| {
                                if products_are_strings {
                                    Value::String(r)
                                } else {
                                    json!({ "product_ref": r })
                                }
                            })
                            .collect(),
                    )
                }
                _ if required.contains(key) => generate::fill(p, key, prompt.seed),
                _ => continue,
            };
            out.insert(key.clone(), value);
        }
        if let Some(m) = mistake {
            injected.push(Injected {
                call,
                profile_ref: c.profile_ref.clone(),
                kind: m.kind,
                slot: m.slot.to_owned(),
                fragment: m.fragment,
            });
        }
        entries.push(Value::Object(out));
    }
    top.insert(list_key.clone(), Value::Array(entries));
    let input = Value::Object(top);

    // A run-on answer that uses up the output budget: cut inside that customer's body.
    let mut cut_at = None;
    if let Some(idx) = truncate_entry {
        let text = model_json(&input);
        let entry = &input[&list_key][idx];
        let body_key = entry
            .as_object()
            .and_then(|o| o.keys().find(|k| slot_of(k) == "body").cloned());
        if let Some(bk) = body_key {
            let body = entry[&bk].as_str().unwrap_or("");
            let encoded = serde_json::to_string(body).unwrap_or_default();
            if let Some(pos) = text.find(&encoded) {
                let keep_chars = char_len(body) * (3 + rng.below(5)) / 10;
                let start_chars = char_len(&text[..pos]) + 1;
                let cut = start_chars + keep_chars.max(8);
                let partial = cut_json(&text, cut);
                let tail: String = {
                    let kept = partial[&list_key]
                        .as_array()
                        .and_then(|a| a.get(idx))
                        .and_then(|e| e.get(&bk))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let n = char_len(kept);
                    kept.chars().skip(n.saturating_sub(24)).collect()
                };
                // Mistakes the cut removed are not in the answer: drop their labels.
                let kept = partial[&list_key].as_array().cloned().unwrap_or_default();
                injected.retain(|i| {
                    let fragment = serde_json::to_string(&i.fragment).unwrap_or_default();
                    kept.iter().any(|e| {
                        e.get("profile_ref").and_then(Value::as_str) == Some(i.profile_ref.as_str())
                            && e.to_string().contains(fragment.trim_matches('"'))
                    })
                });
                injected.push(Injected {
                    call,
                    profile_ref: ctx.customers[idx].profile_ref.clone(),
                    kind: DefectKind::Truncated,
                    slot: bk.clone(),
                    fragment: tail,
                });
                cut_at = Some(cut);
            }
        }
    }
    Written {
        input,
        injected,
        cut_at,
    }
}

/// The JSON text as the model writes it: each entry's keys in the order the slots are asked
/// for (ref, subject, preheader, body, products, then the rest), which decides what a cut-off
/// answer still holds.
pub fn model_json(v: &Value) -> String {
    fn rank(k: &str) -> u8 {
        match slot_of(k) {
            "profile_ref" => 0,
            "subject" => 1,
            "preheader" => 2,
            "body" => 3,
            "products" => 4,
            _ => 5,
        }
    }
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| (rank(k), k.as_str()));
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        model_json(&m[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(model_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// What a tool call cut off after `chars` characters of its JSON arrives as: the prefix parsed
/// as far as it goes (an open string kept up to the cut, a key without its value dropped,
/// open arrays and objects closed).
pub fn cut_json(text: &str, chars: usize) -> Value {
    let byte_end = text
        .char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    let mut end = byte_end;
    loop {
        let prefix = &text[..end];
        if let Some(v) = close_json(prefix) {
            return v;
        }
        if end == 0 {
            return json!({});
        }
        end = prefix
            .char_indices()
            .next_back()
            .map(|(i, _)| i)
            .unwrap_or(0);
    }
}

fn close_json(prefix: &str) -> Option<Value> {
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escape = false;
    for c in prefix.chars() {
        if in_string {
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    if escape {
        return None;
    }
    let mut s = prefix.to_owned();
    if in_string {
        s.push('"');
    }
    let trimmed = s.trim_end();
    let mut s = trimmed.trim_end_matches(',').to_owned();
    while let Some(c) = stack.pop() {
        s.push(c);
    }
    serde_json::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_string_is_kept_and_a_dangling_key_dropped() {
        let text = r#"{"copies":[{"body":"Hello there, friend","products":["P1"]}]}"#;
        let v = cut_json(text, 25);
        assert_eq!(v, json!({"copies":[{"body":"Hello"}]}));
        let v = cut_json(text, text.find("products").unwrap() + 10);
        assert_eq!(v, json!({"copies":[{"body":"Hello there, friend"}]}));
        assert_eq!(cut_json(text, 3), json!({}));
    }

    #[test]
    fn language_tag_is_found_near_the_word_language() {
        assert_eq!(
            requested_language(
                "Language: write every slot in the language with BCP-47 tag \"de\".\n"
            ),
            Lang::De
        );
        assert_eq!(requested_language("Output language: pt-BR"), Lang::Pt);
        assert_eq!(requested_language("Write in the shop's voice."), Lang::En);
    }

    #[test]
    fn offer_line_is_read_from_the_brief_block() {
        let system = vec![
            "rules".to_owned(),
            "Campaign brief from the merchant:\nSnow days.\nOffer (the only offer the copy may state):\n{\"kind\":\"percent_off\",\"percent\":20,\"scope\":\"outerwear\",\"ends_on\":\"2026-12-24\",\"code\":\"SNOW20\",\"currency\":\"EUR\"}".to_owned(),
        ];
        let o = read_offer(&system).unwrap();
        assert_eq!(o.percent, Some(20));
        let (full, short) = offer_text(Lang::De, &o, "EUR", false, false).unwrap();
        assert_eq!(
            full,
            "20 % Rabatt auf Oberbekleidung bis 24.12.2026 mit dem Code SNOW20"
        );
        assert_eq!(short, "20 % Rabatt auf Oberbekleidung");
        let none =
            vec!["Offer (the only offer the copy may state):\n{\"kind\":\"none\"}".to_owned()];
        assert_eq!(read_offer(&none), None);
    }

    #[test]
    fn amounts_are_rendered_in_the_languages_money_format() {
        let o = Offer {
            kind: "amount_off".into(),
            amount: Some("10.00".into()),
            currency: Some("EUR".into()),
            ..Offer::default()
        };
        assert_eq!(
            offer_text(Lang::Fr, &o, "EUR", false, false).unwrap().0,
            "10,00 € de réduction"
        );
        let fs = Offer {
            kind: "free_shipping".into(),
            min_spend: Some("50".into()),
            currency: Some("USD".into()),
            ..Offer::default()
        };
        assert_eq!(
            offer_text(Lang::En, &fs, "USD", false, false).unwrap().0,
            "free shipping on orders over $50.00"
        );
    }

    fn schema() -> Value {
        json!({"type": "object", "required": ["copies"], "properties": {"copies": {"type": "array",
            "items": {"type": "object", "required": ["profile_ref", "subject", "body", "products"],
                "properties": {"profile_ref": {"type": "string"},
                    "subject": {"type": "string", "maxLength": 60},
                    "body": {"type": "string", "maxLength": 300},
                    "products": {"type": "array", "maxItems": 3, "items": {"type": "string"}}}}}}})
    }

    #[test]
    fn a_customer_without_products_still_gets_copy() {
        let user = "```json\n{\"profiles\": [{\"profile_ref\": \"C1\", \"first_name\": \"Ana\", \"products\": []}]}\n```";
        let system = vec!["Language: \"sv\"".to_owned()];
        let p = Prompt {
            system: &system,
            user,
            seed: 1,
        };
        let cfg = WriterConfig {
            enabled: true,
            seed: 1,
            rates: BTreeMap::new(),
        };
        let w = write(&p, &schema(), &cfg, 1);
        let body = w.input["copies"][0]["body"].as_str().unwrap();
        assert!(
            body.contains("Ana") && body.chars().count() <= 300,
            "{body}"
        );
        assert_eq!(w.input["copies"][0]["products"], json!([]));
    }

    #[test]
    fn without_customers_the_answer_still_fits_the_schema() {
        let p = Prompt {
            system: &[],
            user: "hello",
            seed: 1,
        };
        let cfg = WriterConfig::new(true, 1);
        let w = write(&p, &schema(), &cfg, 1);
        assert_eq!(w.input["copies"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_model_writes_the_ref_first_and_the_products_last() {
        let v = json!({"products": ["P1"], "body": "b", "subject": "s", "profile_ref": "C1", "zeta": 1});
        assert_eq!(
            model_json(&v),
            r#"{"profile_ref":"C1","subject":"s","body":"b","products":["P1"],"zeta":1}"#
        );
    }

    #[test]
    fn a_fact_is_the_descriptions_first_clause() {
        assert_eq!(
            fact("Waterproof 3-layer shell with taped seams. Packs small.").as_deref(),
            Some("waterproof 3-layer shell with taped seams")
        );
        assert_eq!(fact("ok"), None);
    }

    #[test]
    fn listed_prices_give_their_amount_and_currency() {
        assert_eq!(amount_of("$1,299.00").as_deref(), Some("1299.00"));
        assert_eq!(amount_of("199,00 €").as_deref(), Some("199.00"));
        assert_eq!(currency_of("199,00 €").as_deref(), Some("EUR"));
        assert_eq!(currency_of("129.00 USD").as_deref(), Some("USD"));
    }
}
