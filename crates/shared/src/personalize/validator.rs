//! The grounding validator: the gate before any write. Copy passes only when every product it
//! recommends is one of that customer's candidates, it names no other catalog product, every
//! price and promise in it is grounded in a candidate or the brief, each slot fits its limit,
//! it holds no personal data beyond the first name and no markup. Every rule is a `Finding`
//! whose message can go straight into the one repair prompt (it never repeats personal data).

use super::copy::{GeneratedCopy, ValidCopy};
use super::orders::PurchaseHistory;
use super::prompt::product_ref;
use super::settings::Settings;
use super::text::{amounts, contains_words, decimal_cents, words, AmountKind};
use crate::domain::CatalogProduct;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A text slot of the email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Subject,
    Preheader,
    Body,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Preheader => "preheader",
            Self::Body => "body",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of personal data leaked. The value itself is never kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonalKind {
    LastName,
    Email,
    Phone,
}

/// One broken rule. Serialised (tagged by `rule`) as the preview's grounding check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Finding {
    /// `products` names a ref that is not one of this customer's candidates.
    UnknownProduct {
        product_ref: String,
    },
    DuplicateProduct {
        product_ref: String,
    },
    /// Too few or too many products for the settings.
    ProductCount {
        count: usize,
        max: u8,
    },
    /// The text names a catalog product that is not among the candidates.
    ForeignProduct {
        slot: Slot,
        title: String,
    },
    /// An amount that is neither a candidate's price nor in the brief.
    UngroundedPrice {
        slot: Slot,
        amount: String,
    },
    /// A discount, percentage or promise the brief does not make.
    UngroundedPromise {
        slot: Slot,
        phrase: String,
    },
    /// Something shaped like a discount code that the brief does not give.
    UngroundedCode {
        slot: Slot,
        code: String,
    },
    SlotEmpty {
        slot: Slot,
    },
    SlotTooLong {
        slot: Slot,
        chars: usize,
        max: u16,
    },
    PersonalData {
        slot: Slot,
        kind: PersonalKind,
    },
    Markup {
        slot: Slot,
    },
    Link {
        slot: Slot,
    },
}

impl Finding {
    /// A stable rule name, for counters and logs.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::UnknownProduct { .. } => "unknown_product",
            Self::DuplicateProduct { .. } => "duplicate_product",
            Self::ProductCount { .. } => "product_count",
            Self::ForeignProduct { .. } => "foreign_product",
            Self::UngroundedPrice { .. } => "ungrounded_price",
            Self::UngroundedPromise { .. } => "ungrounded_promise",
            Self::UngroundedCode { .. } => "ungrounded_code",
            Self::SlotEmpty { .. } => "slot_empty",
            Self::SlotTooLong { .. } => "slot_too_long",
            Self::PersonalData { .. } => "personal_data",
            Self::Markup { .. } => "markup",
            Self::Link { .. } => "link",
        }
    }

    /// What is wrong and what to do, addressed to the model.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownProduct { product_ref } => format!(
                "products lists {product_ref}, which is not one of this customer's products; use only the refs listed for them"
            ),
            Self::DuplicateProduct { product_ref } => format!("products lists {product_ref} more than once; list each product once"),
            Self::ProductCount { count, max } => {
                format!("products lists {count} product(s); list between 1 and {max}")
            }
            Self::ForeignProduct { slot, title } => format!(
                "the {slot} mentions \"{title}\", which is not one of this customer's products; mention only the products listed for them"
            ),
            Self::UngroundedPrice { slot, amount } => format!(
                "the {slot} mentions the amount \"{amount}\", which is neither a listed product price nor in the brief; remove it or use a listed price exactly"
            ),
            Self::UngroundedPromise { slot, phrase } => format!(
                "the {slot} mentions \"{phrase}\", which the brief does not offer; remove it (no discounts, codes, percentages or promises beyond the brief)"
            ),
            Self::UngroundedCode { slot, code } => format!(
                "the {slot} contains \"{code}\", which looks like a discount code the brief does not give; remove it"
            ),
            Self::SlotEmpty { slot } => format!("the {slot} is empty; write it"),
            Self::SlotTooLong { slot, chars, max } => {
                format!("the {slot} is {chars} characters long but the limit is {max}; shorten it")
            }
            Self::PersonalData { slot, kind } => {
                let what = match kind {
                    PersonalKind::LastName => "the customer's last name",
                    PersonalKind::Email => "an email address",
                    PersonalKind::Phone => "a phone number",
                };
                format!("the {slot} contains {what}; use no personal data beyond the first name")
            }
            Self::Markup { slot } => {
                format!("the {slot} contains markup (HTML, Markdown or template tags); write plain text only")
            }
            Self::Link { slot } => {
                format!("the {slot} contains a link; leave links out, the email shows the product links")
            }
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// The customer's personal data, only to detect it in the copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersonalData<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone_number: Option<&'a str>,
}

/// Every catalog title, indexed by first word, built once per batch so checking a profile's
/// copy against 10,000 titles costs a lookup per word of copy.
#[derive(Clone, Debug, Default)]
pub struct TitleIndex {
    by_first_word: HashMap<String, Vec<(Vec<String>, String)>>,
}

impl TitleIndex {
    pub fn new(catalog: &[CatalogProduct]) -> Self {
        Self::from_titles(catalog.iter().map(|p| p.title.as_str()))
    }

    /// Titles of a single word are left out: "Jacket" or "Candle" are ordinary words in copy.
    pub fn from_titles<'t>(titles: impl IntoIterator<Item = &'t str>) -> Self {
        let mut by_first_word: HashMap<String, Vec<(Vec<String>, String)>> = HashMap::new();
        for title in titles {
            let w = words(title);
            if w.len() < 2 {
                continue;
            }
            let entry = by_first_word.entry(w[0].clone()).or_default();
            if !entry.iter().any(|(existing, _)| *existing == w) {
                entry.push((w, title.trim().to_owned()));
            }
        }
        Self { by_first_word }
    }

    /// Titles occurring as whole-word runs in `text_words`.
    fn mentioned<'s>(&'s self, text_words: &[String]) -> Vec<(&'s [String], &'s str)> {
        let mut out = Vec::new();
        for (i, w) in text_words.iter().enumerate() {
            for (title_words, title) in self.by_first_word.get(w).into_iter().flatten() {
                if text_words[i..].starts_with(title_words) {
                    out.push((title_words.as_slice(), title.as_str()));
                }
            }
        }
        out
    }
}

/// What one profile's copy is checked against.
pub struct ValidationContext<'a> {
    /// The customer's candidates by ref, as the prompt named them.
    pub candidates: Vec<(String, &'a CatalogProduct)>,
    pub brief: &'a str,
    pub settings: &'a Settings,
    pub person: PersonalData<'a>,
    /// The whole catalog's titles; when given, naming a non-candidate product is a finding.
    pub catalog_titles: Option<&'a TitleIndex>,
    /// Titles the customer bought before: naming those ("loved your Alpine Jacket?") is fine.
    pub purchased_titles: Vec<String>,
}

impl<'a> ValidationContext<'a> {
    /// Candidates get refs P1.. in order, as `ProfilePrompt::new` gave them.
    pub fn new(
        candidates: &'a [CatalogProduct],
        brief: &'a str,
        settings: &'a Settings,
        person: PersonalData<'a>,
    ) -> Self {
        Self {
            candidates: candidates
                .iter()
                .enumerate()
                .map(|(i, p)| (product_ref(i), p))
                .collect(),
            brief,
            settings,
            person,
            catalog_titles: None,
            purchased_titles: Vec::new(),
        }
    }

    pub fn with_catalog_titles(mut self, titles: &'a TitleIndex) -> Self {
        self.catalog_titles = Some(titles);
        self
    }

    pub fn with_purchases(mut self, history: &PurchaseHistory) -> Self {
        self.purchased_titles = history
            .items
            .iter()
            .filter_map(|i| i.title.clone())
            .collect();
        self
    }
}

/// Checks the copy; on success returns it ready to write (sign-off appended when the model left
/// it out, subject and preheader on one line). All findings are reported at once so a single
/// repair can fix them all.
pub fn validate(copy: &GeneratedCopy, ctx: &ValidationContext) -> Result<ValidCopy, Vec<Finding>> {
    let mut findings: Vec<Finding> = Vec::new();
    let push = |f: Finding, findings: &mut Vec<Finding>| {
        if !findings.contains(&f) {
            findings.push(f);
        }
    };

    // Products.
    let mut chosen: Vec<&CatalogProduct> = Vec::new();
    let mut seen = HashSet::new();
    for r in &copy.product_refs {
        if !seen.insert(r.as_str()) {
            push(
                Finding::DuplicateProduct {
                    product_ref: r.clone(),
                },
                &mut findings,
            );
            continue;
        }
        match ctx
            .candidates
            .iter()
            .find(|(cref, _)| cref.eq_ignore_ascii_case(r))
        {
            Some((_, p)) => chosen.push(p),
            None => push(
                Finding::UnknownProduct {
                    product_ref: r.clone(),
                },
                &mut findings,
            ),
        }
    }
    let max = ctx.settings.slots.products;
    let count = copy.product_refs.len();
    if count == 0 || count > usize::from(max) {
        push(Finding::ProductCount { count, max }, &mut findings);
    }

    // Text slots. Disabled slots are ignored (and not written).
    let grounds = Grounds::new(ctx);
    let slots = &ctx.settings.slots;
    let subject = slots
        .subject
        .map(|l| (Slot::Subject, single_line(&copy.subject), l.max_chars));
    let preheader = slots
        .preheader
        .map(|l| (Slot::Preheader, single_line(&copy.preheader), l.max_chars));
    let body = slots
        .body
        .map(|l| (Slot::Body, copy.body.trim().to_owned(), l.max_chars));
    for (slot, text, max_chars) in [&subject, &preheader, &body].into_iter().flatten() {
        if text.is_empty() {
            push(Finding::SlotEmpty { slot: *slot }, &mut findings);
            continue;
        }
        for f in grounds.check(*slot, text) {
            push(f, &mut findings);
        }
        let final_text = if *slot == Slot::Body {
            with_sign_off(text, &ctx.settings.sign_off)
        } else {
            text.clone()
        };
        let chars = final_text.chars().count();
        if chars > usize::from(*max_chars) {
            push(
                Finding::SlotTooLong {
                    slot: *slot,
                    chars,
                    max: *max_chars,
                },
                &mut findings,
            );
        }
    }

    if findings.is_empty() {
        let body = body.map(|(_, text, _)| with_sign_off(&text, &ctx.settings.sign_off));
        Ok(ValidCopy::new(
            subject.map(|s| s.1),
            preheader.map(|s| s.1),
            body,
            &chosen,
        ))
    } else {
        Err(findings)
    }
}

/// The prompt for the one repair attempt.
pub fn repair_message(findings: &[Finding]) -> String {
    let mut s = String::from("Your copy for this customer did not pass our checks:\n");
    for f in findings {
        s.push_str("- ");
        s.push_str(&f.message());
        s.push('\n');
    }
    s.push_str("Call emit_copy again for this customer only, fixing every point above and keeping to all the rules.");
    s
}

fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Appends the merchant's sign-off on its own line unless the body already ends with it.
fn with_sign_off(body: &str, sign_off: &str) -> String {
    let sign_off = sign_off.trim();
    if sign_off.is_empty() {
        return body.to_owned();
    }
    let tail = body.trim_end_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation());
    if words(tail).ends_with(&words(sign_off)) {
        body.to_owned()
    } else {
        format!("{body}\n\n{sign_off}")
    }
}

/// Discount and promise vocabulary, in groups: a phrase is allowed when the brief uses any
/// phrase of its group ("Winter sale" allows "on sale"). Matched on whole words, ignoring case.
const PROMISE_GROUPS: &[&[&str]] = &[
    &["discount", "discounts", "discounted"],
    &["code", "codes", "promo code", "promocode", "discount code"],
    &["coupon", "coupons"],
    &["promo", "promotion", "promotions", "promotional"],
    &["voucher", "vouchers"],
    &[
        "off your",
        "off everything",
        "off all",
        "off sitewide",
        "off site wide",
        "percent off",
    ],
    &[
        "free shipping",
        "free delivery",
        "ships free",
        "shipping is free",
        "free standard shipping",
        "free express shipping",
    ],
    &[
        "free returns",
        "free return",
        "free exchanges",
        "free exchange",
    ],
    &["free gift", "free gifts", "gift with purchase"],
    &["for free", "free of charge"],
    &["guarantee", "guarantees", "guaranteed"],
    &["warranty", "warranties"],
    &["sale", "sales", "on sale"],
    &["clearance"],
    &["deal", "deals"],
    &["bogo", "buy one get one", "two for one", "2 for 1"],
    &["limited time", "limited time only", "limited offer"],
    &["special offer", "exclusive offer", "offer ends"],
    &[
        "last chance",
        "ends tonight",
        "ends today",
        "ends soon",
        "today only",
        "while stocks last",
        "while supplies last",
    ],
    &["money back", "refund", "refunds", "refunded"],
    &["cashback", "cash back", "rebate", "rebates"],
    &[
        "price match",
        "lowest price",
        "lowest prices",
        "best price",
        "best prices",
    ],
    &["savings", "save up to", "save big"],
    &[
        "reward points",
        "loyalty points",
        "double points",
        "bonus points",
    ],
    &[
        "next day delivery",
        "same day delivery",
        "next day shipping",
        "same day shipping",
        "overnight shipping",
        "express delivery",
    ],
];

/// What the copy may refer to, precomputed from the brief and the candidates.
struct Grounds<'a> {
    ctx: &'a ValidationContext<'a>,
    brief_words: Vec<String>,
    /// Amounts in hundredths: candidate prices and every number in the brief.
    allowed_cents: HashSet<i64>,
    allowed_percents: HashSet<i64>,
    /// Candidate titles, then purchased titles: naming these is never foreign.
    known_title_words: Vec<Vec<String>>,
    /// Lowercased words of candidate titles and SKUs, for code-like tokens.
    candidate_words: HashSet<String>,
    promise_groups: Vec<Vec<Vec<String>>>,
}

impl<'a> Grounds<'a> {
    fn new(ctx: &'a ValidationContext<'a>) -> Self {
        let mut allowed_cents = HashSet::new();
        let mut allowed_percents = HashSet::new();
        for a in amounts(ctx.brief) {
            match a.kind {
                AmountKind::Percent => allowed_percents.insert(a.cents),
                _ => allowed_cents.insert(a.cents),
            };
        }
        let mut candidate_words = HashSet::new();
        let mut known_title_words = Vec::new();
        for (_, p) in &ctx.candidates {
            allowed_cents.extend(decimal_cents(&p.price_min.amount));
            allowed_cents.extend(decimal_cents(&p.price_max.amount));
            let tw = words(&p.title);
            candidate_words.extend(tw.iter().cloned());
            known_title_words.push(tw);
        }
        known_title_words.extend(ctx.purchased_titles.iter().map(|t| words(t)));
        Self {
            ctx,
            brief_words: words(ctx.brief),
            allowed_cents,
            allowed_percents,
            known_title_words,
            candidate_words,
            promise_groups: PROMISE_GROUPS
                .iter()
                .map(|g| g.iter().map(|p| words(p)).collect())
                .collect(),
        }
    }

    fn check(&self, slot: Slot, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let text_words = words(text);

        // Amounts: prices must be a candidate's or the brief's; percentages must be the brief's.
        for a in amounts(text) {
            match a.kind {
                AmountKind::Money if !self.allowed_cents.contains(&a.cents) => {
                    out.push(Finding::UngroundedPrice {
                        slot,
                        amount: a.text,
                    })
                }
                AmountKind::Percent if !self.allowed_percents.contains(&a.cents) => {
                    out.push(Finding::UngroundedPromise {
                        slot,
                        phrase: a.text,
                    })
                }
                _ => {}
            }
        }
        // A bare % sign without a number right before it ("up to half, %").
        if text.contains('%')
            && self.allowed_percents.is_empty()
            && !out
                .iter()
                .any(|f| matches!(f, Finding::UngroundedPromise { .. }))
        {
            out.push(Finding::UngroundedPromise {
                slot,
                phrase: "%".into(),
            });
        }

        // Promise vocabulary.
        for (group, source) in self.promise_groups.iter().zip(PROMISE_GROUPS) {
            if group.iter().any(|p| contains_words(&self.brief_words, p)) {
                continue;
            }
            if let Some(i) = group.iter().position(|p| contains_words(&text_words, p)) {
                out.push(Finding::UngroundedPromise {
                    slot,
                    phrase: source[i].to_owned(),
                });
            }
        }

        // Code-like tokens: upper-case letters and digits, e.g. WINTER20.
        for code in code_like(text) {
            let lower = code.to_lowercase();
            if !self.brief_words.contains(&lower) && !self.candidate_words.contains(&lower) {
                out.push(Finding::UngroundedCode { slot, code });
            }
        }

        // Other catalog products by title.
        if let Some(index) = self.ctx.catalog_titles {
            for (title_words, title) in index.mentioned(&text_words) {
                let is_known = self
                    .known_title_words
                    .iter()
                    .any(|c| contains_words(c, title_words));
                if !is_known && !contains_words(&self.brief_words, title_words) {
                    out.push(Finding::ForeignProduct {
                        slot,
                        title: title.to_owned(),
                    });
                }
            }
        }

        // Personal data beyond the first name.
        let person = &self.ctx.person;
        let first_words = person.first_name.map(words).unwrap_or_default();
        if let Some(last) = person.last_name {
            let last_words: Vec<String> = words(last)
                .into_iter()
                .filter(|w| w.chars().count() >= 2)
                .collect();
            // A last name that is also the first name, a candidate's title word or in the brief
            // ("Wood", "Rose") cannot be told apart from legitimate copy.
            let ambiguous = last_words.is_empty()
                || last_words == first_words
                || last_words
                    .iter()
                    .all(|w| self.candidate_words.contains(w) || self.brief_words.contains(w));
            if !ambiguous && contains_words(&text_words, &last_words) {
                out.push(Finding::PersonalData {
                    slot,
                    kind: PersonalKind::LastName,
                });
            }
        }
        let email_in_text = person.email.is_some_and(|e| {
            !e.trim().is_empty() && text.to_lowercase().contains(&e.trim().to_lowercase())
        });
        if email_in_text || looks_like_email(text) {
            out.push(Finding::PersonalData {
                slot,
                kind: PersonalKind::Email,
            });
        }
        let own_phone = person
            .phone_number
            .map(digits)
            .filter(|d| d.len() >= 7)
            .is_some_and(|d| digits(text).contains(&d));
        if own_phone || looks_like_phone(text) {
            out.push(Finding::PersonalData {
                slot,
                kind: PersonalKind::Phone,
            });
        }

        // Plain text only.
        if has_markup(text) {
            out.push(Finding::Markup { slot });
        }
        let lower = text.to_lowercase();
        if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
            out.push(Finding::Link { slot });
        }
        out
    }
}

/// Tokens of 4-20 ASCII upper-case letters and digits with at least two letters and a digit.
fn code_like(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| {
            (4..=20).contains(&t.len())
                && t.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && t.chars().filter(|c| c.is_ascii_uppercase()).count() >= 2
                && t.chars().any(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

fn looks_like_email(text: &str) -> bool {
    let local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    text.char_indices()
        .filter(|(_, c)| *c == '@')
        .any(|(at, _)| {
            let before = text[..at].chars().next_back().is_some_and(local);
            let domain: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            let domain = domain.trim_end_matches('.');
            before && domain.contains('.') && !domain.starts_with('.')
        })
}

/// A run of digits and phone punctuation holding 7 to 15 digits, not preceded by a currency
/// sign (so "$1,299.99" is a price, not a phone number).
fn looks_like_phone(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i].is_ascii_digit()
            || (chars[i] == '+' || chars[i] == '(')
                && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        {
            i += 1;
            continue;
        }
        let start = i;
        let mut digit_count = 0;
        let mut last_digit = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || " -.()+".contains(chars[i])) {
            if chars[i].is_ascii_digit() {
                digit_count += 1;
                last_digit = i;
            }
            i += 1;
        }
        let run: String = chars[start..=last_digit].iter().collect();
        let money_before = start > 0 && "$€£¥".contains(chars[start - 1]);
        let has_separator_or_plus = run.contains(['-', ' ', '(', '+', '.']) || digit_count >= 10;
        if (7..=15).contains(&digit_count) && !money_before && has_separator_or_plus {
            return true;
        }
        i = i.max(start + 1);
    }
    false
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// HTML tags and entities, template tags and the common Markdown markers.
fn has_markup(text: &str) -> bool {
    let b = text.as_bytes();
    let tag = b
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'));
    let entity = text.match_indices('&').any(|(i, _)| {
        let rest: String = text[i + 1..].chars().take(10).collect();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with(';')
    });
    let template = ["{{", "}}", "{%", "%}"].iter().any(|t| text.contains(t));
    let markdown = ["**", "__", "](", "```"].iter().any(|t| text.contains(t))
        || text
            .lines()
            .any(|l| l.trim_start().starts_with("# ") || l.trim_start().starts_with("## "));
    tag || entity || template || markdown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::personalize::settings::SlotLimit;

    fn product(n: u64, title: &str, price: &str) -> CatalogProduct {
        CatalogProduct {
            id: format!("gid://shopify/Product/{n}"),
            title: title.into(),
            description: String::new(),
            handle: format!("p{n}"),
            url: format!("https://shop.example/products/p{n}"),
            tags: vec![],
            product_type: "T".into(),
            vendor: "V".into(),
            price_min: Money {
                amount: price.into(),
                currency: "USD".into(),
            },
            price_max: Money {
                amount: price.into(),
                currency: "USD".into(),
            },
            image_url: Some(format!("https://cdn.example/{n}.jpg")),
            available: true,
            updated_at: String::new(),
        }
    }

    fn candidates() -> Vec<CatalogProduct> {
        vec![
            product(1, "Summit Down Jacket", "199.00"),
            product(2, "Wool Beanie", "29.00"),
        ]
    }

    fn settings() -> Settings {
        Settings {
            sign_off: String::new(),
            ..Settings::default()
        }
    }

    const BRIEF: &str = "Winter sale, free shipping over $50";

    fn person() -> PersonalData<'static> {
        PersonalData {
            first_name: Some("Ana"),
            last_name: Some("Kowalczyk"),
            email: Some("ana.k@example.com"),
            phone_number: Some("+1 415 555 0100"),
        }
    }

    fn good() -> GeneratedCopy {
        GeneratedCopy {
            subject: "Ana, ready for colder days?".into(),
            preheader: "A warm jacket and beanie picked for your next hike".into(),
            body: "Hi Ana, after your Alpine Jacket we think the Summit Down Jacket at $199.00 and the Wool Beanie \
                   will keep you warm on the trail this winter. Our winter sale is on, with free shipping over $50."
                .into(),
            product_refs: vec!["P1".into(), "P2".into()],
        }
    }

    fn check(copy: &GeneratedCopy) -> Result<ValidCopy, Vec<Finding>> {
        let (cands, st) = (candidates(), settings());
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        validate(copy, &ctx)
    }

    fn findings(copy: &GeneratedCopy) -> Vec<Finding> {
        check(copy).err().unwrap_or_default()
    }

    fn with_body(body: &str) -> GeneratedCopy {
        GeneratedCopy {
            body: format!(
                "{body} Plenty of warmth for the months ahead, picked with care for you."
            ),
            ..good()
        }
    }

    #[test]
    fn grounded_copy_passes_and_resolves_products() {
        let valid = check(&good()).unwrap();
        assert_eq!(valid.subject(), Some("Ana, ready for colder days?"));
        let titles: Vec<_> = valid.products().iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, vec!["Summit Down Jacket", "Wool Beanie"]);
        assert_eq!(valid.products()[0].price, "$199.00");
        assert_eq!(valid.products()[0].url, "https://shop.example/products/p1");
    }

    #[test]
    fn unknown_product_ref_is_a_finding() {
        let copy = GeneratedCopy {
            product_refs: vec!["P1".into(), "P9".into()],
            ..good()
        };
        assert_eq!(
            findings(&copy),
            vec![Finding::UnknownProduct {
                product_ref: "P9".into()
            }]
        );
    }

    #[test]
    fn duplicate_product_ref_is_a_finding() {
        let copy = GeneratedCopy {
            product_refs: vec!["P1".into(), "P1".into()],
            ..good()
        };
        assert_eq!(
            findings(&copy),
            vec![Finding::DuplicateProduct {
                product_ref: "P1".into()
            }]
        );
    }

    #[test]
    fn no_products_is_a_finding() {
        let copy = GeneratedCopy {
            product_refs: vec![],
            ..good()
        };
        assert_eq!(
            findings(&copy),
            vec![Finding::ProductCount { count: 0, max: 3 }]
        );
    }

    #[test]
    fn more_products_than_the_settings_allow_is_a_finding() {
        let (cands, mut st) = (candidates(), settings());
        st.slots.products = 1;
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        assert_eq!(
            validate(&good(), &ctx).unwrap_err(),
            vec![Finding::ProductCount { count: 2, max: 1 }]
        );
    }

    #[test]
    fn naming_a_catalog_product_that_is_not_a_candidate_is_a_finding() {
        let catalog = [
            candidates(),
            vec![
                product(3, "Alpine Jacket", "189.00"),
                product(4, "Rain Shell Pro", "120.00"),
            ],
        ]
        .concat();
        let titles = TitleIndex::new(&catalog);
        let (cands, st) = (candidates(), settings());
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person()).with_catalog_titles(&titles);
        let copy = with_body("Pair the Summit Down Jacket with our rain shell pro for wet days.");
        assert_eq!(
            validate(&copy, &ctx).unwrap_err(),
            vec![Finding::ForeignProduct {
                slot: Slot::Body,
                title: "Rain Shell Pro".into()
            }]
        );
    }

    #[test]
    fn naming_what_the_customer_bought_before_is_not_foreign() {
        use crate::personalize::orders::PurchasedItem;
        let catalog = [candidates(), vec![product(3, "Alpine Jacket", "189.00")]].concat();
        let titles = TitleIndex::new(&catalog);
        let history = PurchaseHistory {
            items: vec![PurchasedItem {
                title: Some("Alpine Jacket".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (cands, st) = (candidates(), settings());
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person()).with_catalog_titles(&titles);
        assert!(
            validate(&good(), &ctx).is_err(),
            "good() mentions the Alpine Jacket"
        );
        let ctx = ctx.with_purchases(&history);
        assert!(validate(&good(), &ctx).is_ok());
    }

    #[test]
    fn titles_inside_a_candidate_title_are_not_foreign() {
        let titles = TitleIndex::from_titles(["Down Jacket", "Summit Down Jacket"]);
        let (cands, st) = (candidates(), settings());
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person()).with_catalog_titles(&titles);
        assert!(validate(&with_body("The Summit Down Jacket is back."), &ctx).is_ok());
    }

    #[test]
    fn prices_must_be_a_candidate_price_or_in_the_brief() {
        let copy = with_body("The Summit Down Jacket is now $149.");
        assert_eq!(
            findings(&copy),
            vec![Finding::UngroundedPrice {
                slot: Slot::Body,
                amount: "$149".into()
            }]
        );
        for grounded in ["only $199", "just 199.00", "USD 29", "orders over $50"] {
            assert!(check(&with_body(grounded)).is_ok(), "{grounded}");
        }
        for invented in ["just 12.99", "USD 12", "€30", "100 dollars"] {
            assert!(
                findings(&with_body(invented))
                    .iter()
                    .any(|f| matches!(f, Finding::UngroundedPrice { .. })),
                "{invented}"
            );
        }
    }

    #[test]
    fn discounts_and_promises_must_come_from_the_brief() {
        for (text, phrase) in [
            ("Take 20% off today.", "20%"),
            ("Use code at checkout.", "code"),
            ("A coupon is waiting.", "coupon"),
            ("Enjoy a discount on us.", "discount"),
            ("Guaranteed to keep you dry.", "guaranteed"),
            ("Free returns on every order.", "free returns"),
            ("Last chance to grab it.", "last chance"),
        ] {
            assert!(
                findings(&with_body(text)).contains(&Finding::UngroundedPromise {
                    slot: Slot::Body,
                    phrase: phrase.into()
                }),
                "{text} → {:?}",
                findings(&with_body(text))
            );
        }
    }

    #[test]
    fn promises_the_brief_makes_are_allowed() {
        for text in [
            "Free shipping over $50.",
            "Free delivery on orders over $50.",
            "It is on sale now.",
            "Our winter sale is here.",
        ] {
            assert!(
                check(&with_body(text)).is_ok(),
                "{text}: {:?}",
                findings(&with_body(text))
            );
        }
    }

    #[test]
    fn percentages_must_match_the_brief() {
        let (cands, st) = (candidates(), settings());
        let brief = "20% off all outerwear";
        let ctx = ValidationContext::new(&cands, brief, &st, person());
        let ok = with_body("Take 20% off the Summit Down Jacket.");
        assert!(
            validate(&ok, &ctx).is_ok(),
            "{:?}",
            validate(&ok, &ctx).err()
        );
        let bad = with_body("Take 30% off the Summit Down Jacket.");
        assert_eq!(
            validate(&bad, &ctx).unwrap_err(),
            vec![Finding::UngroundedPromise {
                slot: Slot::Body,
                phrase: "30%".into()
            }]
        );
    }

    #[test]
    fn invented_discount_codes_are_findings() {
        assert!(
            findings(&with_body("Treat yourself with WINTER25 soon.")).contains(
                &Finding::UngroundedCode {
                    slot: Slot::Body,
                    code: "WINTER25".into()
                }
            )
        );
        let (cands, st) = (candidates(), settings());
        let ctx = ValidationContext::new(&cands, "Winter sale with code SNOW10", &st, person());
        assert!(validate(&with_body("Use code SNOW10 at checkout."), &ctx).is_ok());
    }

    #[test]
    fn empty_enabled_slot_is_a_finding() {
        let copy = GeneratedCopy {
            preheader: "   ".into(),
            ..good()
        };
        assert_eq!(
            findings(&copy),
            vec![Finding::SlotEmpty {
                slot: Slot::Preheader
            }]
        );
    }

    #[test]
    fn disabled_slots_are_ignored_and_not_written() {
        let (cands, mut st) = (candidates(), settings());
        st.slots.preheader = None;
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        let copy = GeneratedCopy {
            preheader: "<b>20% off</b>".into(),
            ..good()
        };
        assert_eq!(validate(&copy, &ctx).unwrap().preheader(), None);
    }

    #[test]
    fn slot_lengths_are_counted_in_characters() {
        let (cands, mut st) = (candidates(), settings());
        st.slots.subject = Some(SlotLimit { max_chars: 20 });
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        let fits = GeneratedCopy {
            subject: "é".repeat(20),
            ..good()
        };
        assert!(
            validate(&fits, &ctx).is_ok(),
            "20 two-byte characters fit a 20-character limit"
        );
        let long = GeneratedCopy {
            subject: "é".repeat(21),
            ..good()
        };
        assert_eq!(
            validate(&long, &ctx).unwrap_err(),
            vec![Finding::SlotTooLong {
                slot: Slot::Subject,
                chars: 21,
                max: 20
            }]
        );
    }

    #[test]
    fn the_sign_off_is_appended_and_counted() {
        let (cands, mut st) = (candidates(), settings());
        st.sign_off = "The Northwind team".into();
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        let valid = validate(&good(), &ctx).unwrap();
        assert!(valid
            .body()
            .unwrap()
            .ends_with("$50.\n\nThe Northwind team"));
        let signed = GeneratedCopy {
            body: format!("{}\nThe Northwind Team.", good().body),
            ..good()
        };
        assert!(
            !validate(&signed, &ctx)
                .unwrap()
                .body()
                .unwrap()
                .ends_with("\n\nThe Northwind team"),
            "not appended twice"
        );
        st.slots.body = Some(SlotLimit {
            max_chars: good().body.chars().count() as u16 + 5,
        });
        let ctx = ValidationContext::new(&cands, BRIEF, &st, person());
        assert!(matches!(
            validate(&good(), &ctx).unwrap_err()[..],
            [Finding::SlotTooLong {
                slot: Slot::Body,
                ..
            }]
        ));
    }

    #[test]
    fn subject_and_preheader_are_kept_on_one_line() {
        let copy = GeneratedCopy {
            subject: "Ana,\nready for   colder days?".into(),
            ..good()
        };
        assert_eq!(
            check(&copy).unwrap().subject(),
            Some("Ana, ready for colder days?")
        );
    }

    #[test]
    fn last_name_is_personal_data() {
        let f = findings(&GeneratedCopy {
            subject: "Ana Kowalczyk, ready for winter?".into(),
            ..good()
        });
        assert_eq!(
            f,
            vec![Finding::PersonalData {
                slot: Slot::Subject,
                kind: PersonalKind::LastName
            }]
        );
        assert!(
            !f[0].message().contains("Kowalczyk"),
            "messages never repeat personal data"
        );
    }

    #[test]
    fn a_last_name_that_is_an_ordinary_product_word_is_not_flagged() {
        let (cands, st) = (candidates(), settings());
        let p = PersonalData {
            last_name: Some("Wool"),
            ..person()
        };
        let ctx = ValidationContext::new(&cands, BRIEF, &st, p);
        assert!(validate(&good(), &ctx).is_ok());
    }

    #[test]
    fn emails_are_personal_data() {
        let own = findings(&with_body("We will write to ANA.K@example.com soon."));
        assert!(own.contains(&Finding::PersonalData {
            slot: Slot::Body,
            kind: PersonalKind::Email
        }));
        let any = findings(&with_body("Questions? help@shop.example.org"));
        assert!(any.contains(&Finding::PersonalData {
            slot: Slot::Body,
            kind: PersonalKind::Email
        }));
        assert!(check(&with_body("Meet us @ the trailhead.")).is_ok());
    }

    #[test]
    fn phone_numbers_are_personal_data() {
        for text in [
            "Call +1 (415) 555-0100 today.",
            "Text 415-555-0199.",
            "Reach us on 4155550100.",
        ] {
            assert!(
                findings(&with_body(text)).contains(&Finding::PersonalData {
                    slot: Slot::Body,
                    kind: PersonalKind::Phone
                }),
                "{text}"
            );
        }
        for not_phone in ["Rated 4.8 by 1200 hikers since 2019.", "It weighs 1,250 g."] {
            assert!(
                check(&with_body(not_phone)).is_ok(),
                "{not_phone}: {:?}",
                findings(&with_body(not_phone))
            );
        }
    }

    #[test]
    fn markup_is_a_finding() {
        for text in [
            "<p>Hi</p>",
            "Hi &amp; bye",
            "Hi {{ person.first_name }}",
            "**Hi** there",
            "[shop](x)",
            "{% if x %}",
        ] {
            assert!(
                findings(&with_body(text)).contains(&Finding::Markup { slot: Slot::Body }),
                "{text}"
            );
        }
        assert!(check(&with_body("Warm & dry, 3 < 4.")).is_ok());
    }

    #[test]
    fn links_are_a_finding() {
        let f = findings(&with_body("See www.shop.example now"));
        assert_eq!(f, vec![Finding::Link { slot: Slot::Body }]);
    }

    #[test]
    fn all_findings_are_reported_together() {
        let copy = GeneratedCopy {
            subject: String::new(),
            preheader: "Use code SAVE20 for 20% off".into(),
            body: "<b>Hi</b> Ana Kowalczyk".into(),
            product_refs: vec!["P7".into()],
        };
        let rules: Vec<&str> = findings(&copy).iter().map(Finding::rule).collect();
        for rule in [
            "unknown_product",
            "slot_empty",
            "ungrounded_code",
            "ungrounded_promise",
            "personal_data",
            "markup",
        ] {
            assert!(rules.contains(&rule), "{rule} missing from {rules:?}");
        }
    }

    #[test]
    fn repair_message_lists_each_finding() {
        let msg = repair_message(&[
            Finding::UnknownProduct {
                product_ref: "P9".into(),
            },
            Finding::SlotTooLong {
                slot: Slot::Subject,
                chars: 75,
                max: 60,
            },
        ]);
        assert_eq!(
            msg,
            "Your copy for this customer did not pass our checks:\n\
             - products lists P9, which is not one of this customer's products; use only the refs listed for them\n\
             - the subject is 75 characters long but the limit is 60; shorten it\n\
             Call emit_copy again for this customer only, fixing every point above and keeping to all the rules."
        );
    }

    #[test]
    fn findings_serialise_with_their_rule_name() {
        let f = Finding::UngroundedPrice {
            slot: Slot::Body,
            amount: "$149".into(),
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"rule": "ungrounded_price", "slot": "body", "amount": "$149"})
        );
        assert_eq!(f.rule(), "ungrounded_price");
    }
}
