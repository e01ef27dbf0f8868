//! The grounding gate: nothing invented reaches a customer. Copy passes only when every product
//! it recommends is one of that customer's candidates, it names no other catalog product, every
//! number, amount, code and promise in it is grounded in the stated offer or in that product's
//! own title and description (the brief grants nothing), it names this customer by first name
//! or not at all, it is in the requested language, each slot fits its limit, and it holds no
//! personal data, link or markup. Text is compared after NFKC, in every language we write.
//! Every rule is a `Finding` whose message can go straight into the one repair prompt (it never
//! repeats personal data).

mod language;
mod lexicon;
mod names;
mod normalize;
mod numbers;

pub use lexicon::{primary as primary_language, Concept};

use super::copy::{GeneratedCopy, ValidCopy};
use super::offer::{Offer, OfferKind};
use super::orders::PurchaseHistory;
use super::prompt::product_ref;
use super::settings::Settings;
use super::text::{contains_words, decimal_cents, words};
use crate::domain::CatalogProduct;
use lexicon::Hit;
use names::{NameProblem, People};
use numbers::Unit;
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
    /// A number the offer, the product facts and the offer's end date do not give.
    UngroundedNumber {
        slot: Slot,
        number: String,
    },
    /// Addressed by a name that is not this customer's first name.
    WrongName {
        slot: Slot,
    },
    /// Addressed by name although the first name is unknown.
    NameWhenUnknown {
        slot: Slot,
    },
    /// Another customer of the same request is named.
    OtherCustomer {
        slot: Slot,
    },
    /// The copy is not in the language the settings ask for.
    WrongLanguage {
        detected: String,
        expected: String,
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
            Self::UngroundedNumber { .. } => "ungrounded_number",
            Self::WrongName { .. } => "wrong_name",
            Self::NameWhenUnknown { .. } => "name_when_unknown",
            Self::OtherCustomer { .. } => "other_customer",
            Self::WrongLanguage { .. } => "wrong_language",
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
                "the {slot} mentions the amount \"{amount}\", which is not an amount of the stated offer in the shop's currency, written the way the language writes it; remove it (the email shows each product's price)"
            ),
            Self::UngroundedPromise { slot, phrase } => format!(
                "the {slot} states {phrase}, which neither the stated offer nor the product's description gives; remove it (state the offer exactly as given, and nothing else)"
            ),
            Self::UngroundedCode { slot, code } => format!(
                "the {slot} contains \"{code}\", which looks like a code the offer does not give; remove it"
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
                format!("the {slot} contains a link or a web address; leave them out, the email shows the product links")
            }
            Self::UngroundedNumber { slot, number } => format!(
                "the {slot} contains the number \"{number}\", which neither the stated offer nor the product facts give; remove it (no counts, stock levels, delivery times or dates of your own)"
            ),
            Self::WrongName { slot } => format!(
                "the {slot} addresses the customer by a name that is not their first name; use only the first_name given for them"
            ),
            Self::NameWhenUnknown { slot } => format!(
                "the {slot} addresses the customer by name, but their first_name is null; address no one by name"
            ),
            Self::OtherCustomer { slot } => format!(
                "the {slot} names another customer of this request; write for this customer only"
            ),
            Self::WrongLanguage { detected, expected } => format!(
                "the copy is in \"{detected}\" but must be in \"{expected}\"; write every slot in \"{expected}\""
            ),
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
    /// The merchant's brief: it grants nothing; its words only keep a surname that is also a
    /// word of the campaign from being read as a name.
    pub brief: &'a str,
    /// The only offer the copy may state.
    pub offer: &'a Offer,
    pub settings: &'a Settings,
    pub person: PersonalData<'a>,
    /// First names of the other customers who shared the request.
    pub other_first_names: Vec<String>,
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
        offer: &'a Offer,
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
            offer,
            settings,
            person,
            other_first_names: Vec::new(),
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

    /// The first names of the request's other customers (never written anywhere).
    pub fn with_others(mut self, first_names: impl IntoIterator<Item = String>) -> Self {
        self.other_first_names = first_names.into_iter().collect();
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

    // The copy as a whole: its language (one slot alone is often too short to tell), and the
    // offer's conditions wherever the offer is stated.
    let all_text: Vec<&str> = [&subject, &preheader, &body]
        .into_iter()
        .flatten()
        .map(|(_, t, _)| t.as_str())
        .collect();
    let all_text = all_text.join("\n");
    for f in [grounds.language(&all_text), grounds.conditions(&all_text)]
        .into_iter()
        .flatten()
    {
        push(f, &mut findings);
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

/// What the copy may refer to, precomputed from the offer and the candidates.
struct Grounds<'a> {
    ctx: &'a ValidationContext<'a>,
    language: String,
    /// The shop's currency (from the candidates' prices), when known.
    currency: Option<String>,
    /// Phrases the copy may use verbatim and whose words are no claim: product titles, the code.
    verbatim: Vec<String>,
    /// Amounts in hundredths: the offer's. A product's price is the catalog's, shown by the
    /// email next to the copy; the copy never states one.
    allowed_cents: HashSet<i64>,
    /// Decimals the product facts give ("4,2 kg"), allowed as plain numbers.
    fact_cents: HashSet<i64>,
    allowed_percents: HashSet<u64>,
    /// Plain numbers: the offer's, its end date's parts, and the product facts'.
    allowed_numbers: HashSet<u64>,
    /// Concepts each candidate's own description or title states ("lifetime warranty"), in
    /// candidate order (the first entries of `verbatim`).
    described: Vec<HashSet<Concept>>,
    /// Folded words of titles, descriptions and the brief.
    known_words: HashSet<String>,
    /// Candidate titles, then purchased titles: naming these is never foreign.
    known_title_words: Vec<Vec<String>>,
}

const DOMAINS: &[&str] = &[
    "com", "net", "org", "shop", "store", "io", "co", "de", "fr", "es", "it", "nl", "pt", "se",
    "pl", "jp", "uk", "eu", "at", "ch", "be", "br", "us", "info", "biz", "online", "app", "dk",
    "no", "fi", "ie", "ca", "au",
];

impl<'a> Grounds<'a> {
    fn new(ctx: &'a ValidationContext<'a>) -> Self {
        let language = lexicon::primary(&ctx.settings.language);
        let offer = ctx.offer;
        let allowed_cents: HashSet<i64> = offer.amounts_cents().into_iter().collect();
        let mut fact_cents = HashSet::new();
        let mut allowed_percents = HashSet::new();
        let mut allowed_numbers = HashSet::new();
        if offer.kind == OfferKind::PercentOff {
            if let Some(p) = offer.percent {
                allowed_percents.insert(u64::from(p));
                allowed_numbers.insert(u64::from(p));
            }
        }
        for c in offer.amounts_cents() {
            allowed_numbers.insert((c / 100) as u64);
        }
        if let Some(d) = offer.end_date() {
            let year = d.year() as u64;
            allowed_numbers.extend([
                u64::from(d.day()),
                u64::from(u8::from(d.month())),
                year,
                year % 100,
            ]);
        }
        let mut verbatim: Vec<String> = ctx
            .candidates
            .iter()
            .map(|(_, p)| p.title.clone())
            .chain(ctx.purchased_titles.iter().cloned())
            .collect();
        verbatim.extend(offer.code.clone());
        let mut described = Vec::new();
        let mut known_words = HashSet::new();
        let mut currency = None;
        for (_, p) in &ctx.candidates {
            currency.get_or_insert_with(|| numbers::iso(&p.price_min.currency));
            let facts = normalize::fold(&format!("{}\n{}", p.title, p.description));
            for n in numbers::scan(&facts, &language) {
                allowed_numbers.extend(n.groups.iter().copied());
                fact_cents.extend(n.cents);
                if n.unit == Unit::Percent {
                    allowed_percents.extend(n.groups.iter().copied());
                }
            }
            for t in lexicon::tokens(&facts) {
                known_words.insert(t);
            }
            described.push(
                lexicon::find(&facts, &language)
                    .into_iter()
                    .map(|h| h.concept)
                    .collect(),
            );
        }
        // The brand the products are sold under may sign the copy ("the Sol Nascente team").
        let vendors = ctx.candidates.iter().map(|(_, p)| p.vendor.clone());
        let others: Vec<String> = [ctx.brief.to_owned(), ctx.settings.sign_off.clone()]
            .into_iter()
            .chain(vendors)
            .collect();
        for t in ctx.purchased_titles.iter().chain(&others) {
            known_words.extend(lexicon::tokens(&normalize::fold(t)));
        }
        let mut known_title_words: Vec<Vec<String>> = ctx
            .candidates
            .iter()
            .map(|(_, p)| words(&p.title))
            .collect();
        known_title_words.extend(ctx.purchased_titles.iter().map(|t| words(t)));
        Self {
            ctx,
            language,
            currency: currency.filter(|c| !c.is_empty()),
            verbatim,
            allowed_cents,
            fact_cents,
            allowed_percents,
            allowed_numbers,
            described,
            known_words,
            known_title_words,
        }
    }

    fn masked(&self, text: &str) -> String {
        normalize::mask(
            &normalize::fold(text),
            self.verbatim.iter().map(String::as_str),
        )
    }

    fn check(&self, slot: Slot, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let masked = self.masked(text);
        let hits = lexicon::find(&masked, &self.language);
        self.check_numbers(slot, &masked, &mut out);
        self.check_codes(slot, text, &masked, &mut out);
        self.check_promises(slot, &masked, &hits, &mut out);

        // Other catalog products by title.
        let text_words = words(text);
        if let Some(index) = self.ctx.catalog_titles {
            for (title_words, title) in index.mentioned(&text_words) {
                let is_known = self
                    .known_title_words
                    .iter()
                    .any(|c| contains_words(c, title_words));
                if !is_known {
                    out.push(Finding::ForeignProduct {
                        slot,
                        title: title.to_owned(),
                    });
                }
            }
        }

        // Product-like names that are no product of theirs ("our new Trailhead Merino Beanie").
        if self.language != "ja" {
            let unmasked = mask_case_kept(text, &self.verbatim);
            for name in unknown_names(&unmasked, &self.known_words) {
                out.push(Finding::ForeignProduct { slot, title: name });
            }
        }

        // Names: this customer's first name or none.
        let person = &self.ctx.person;
        let people = People {
            first: person.first_name,
            last: person.last_name,
            others: &self.ctx.other_first_names,
            language: &self.language,
            exempt: &self.known_words,
        };
        for problem in names::check(
            &normalize::nfkc(&mask_case_kept(text, &self.verbatim)),
            &people,
        ) {
            out.push(match problem {
                NameProblem::Surname => Finding::PersonalData {
                    slot,
                    kind: PersonalKind::LastName,
                },
                NameProblem::WrongName => Finding::WrongName { slot },
                NameProblem::NameWhenUnknown => Finding::NameWhenUnknown { slot },
                NameProblem::OtherCustomer => Finding::OtherCustomer { slot },
            });
        }

        // Contact data.
        let email_in_text = person
            .email
            .is_some_and(|e| !e.trim().is_empty() && masked.contains(&normalize::fold(e.trim())));
        if email_in_text || looks_like_email(&masked) {
            out.push(Finding::PersonalData {
                slot,
                kind: PersonalKind::Email,
            });
        }
        let own_phone = person
            .phone_number
            .map(digits)
            .filter(|d| d.len() >= 7)
            .is_some_and(|d| digits(&masked).contains(&d));
        if own_phone || looks_like_phone(&masked) {
            out.push(Finding::PersonalData {
                slot,
                kind: PersonalKind::Phone,
            });
        }

        // Plain text only.
        if has_markup(text) {
            out.push(Finding::Markup { slot });
        }
        if has_link(&masked) {
            out.push(Finding::Link { slot });
        }
        out
    }

    /// Amounts must be the offer's or a candidate's price, in the shop's currency and the
    /// language's format; percentages the offer's or a product fact's; other numbers the
    /// offer's, its end date's or a product fact's.
    fn check_numbers(&self, slot: Slot, masked: &str, out: &mut Vec<Finding>) {
        for sentence in lexicon::sentences(masked) {
            // A product's own price, written right, beside its name is no invention.
            let prices: HashSet<i64> = self
                .named_candidates(sentence)
                .iter()
                .flat_map(|&i| {
                    let p = self.ctx.candidates[i].1;
                    [&p.price_min.amount, &p.price_max.amount]
                })
                .filter_map(|a| decimal_cents(a))
                .collect();
            self.check_sentence_numbers(slot, sentence, &prices, out);
        }
    }

    /// Candidates (by index) whose titles the masked sentence names.
    fn named_candidates(&self, masked_sentence: &str) -> Vec<usize> {
        masked_sentence
            .chars()
            .filter_map(normalize::marked)
            .filter(|&i| i < self.ctx.candidates.len())
            .collect()
    }

    fn check_sentence_numbers(
        &self,
        slot: Slot,
        masked: &str,
        prices: &HashSet<i64>,
        out: &mut Vec<Finding>,
    ) {
        for n in numbers::scan(masked, &self.language) {
            let fact = n.cents.is_some_and(|c| self.fact_cents.contains(&c));
            let money = match n.unit {
                Unit::Money(c) => Some(Some(c)),
                Unit::Plain if n.has_decimals && !fact => Some(None),
                _ => None,
            };
            if let Some(currency) = money {
                let wrong_currency =
                    matches!((currency, &self.currency), (Some(c), Some(shop)) if c != shop);
                let grounded = n
                    .cents
                    .is_some_and(|c| self.allowed_cents.contains(&c) || prices.contains(&c));
                if wrong_currency || !grounded {
                    out.push(Finding::UngroundedPrice {
                        slot,
                        amount: n.text,
                    });
                }
                continue;
            }
            if n.unit == Unit::Percent {
                let value = n.groups.last().copied().unwrap_or_default();
                if n.groups.len() > 1 || !self.allowed_percents.contains(&value) {
                    out.push(Finding::UngroundedPromise {
                        slot,
                        phrase: format!("\"{}\"", n.text),
                    });
                }
                continue;
            }
            if n.groups.iter().any(|g| !self.allowed_numbers.contains(g)) {
                out.push(Finding::UngroundedNumber {
                    slot,
                    number: n.text,
                });
            }
        }
    }

    /// Codes: tokens mixing letters and digits ("snow25", "SNOW-25") that no product fact
    /// holds, and shouted words ("WELCOME") that no product fact holds. The offer's own code
    /// was masked out.
    fn check_codes(&self, slot: Slot, text: &str, masked: &str, out: &mut Vec<Finding>) {
        // Codes are written in Latin letters and digits: kana and ideographs separate tokens.
        let latin = masked.replace(normalize::is_cjk, " ");
        // Shouted letters with digits ("MIJOTE-15", "SNOW25") are codes however hyphenated;
        // the offer's own code was masked out, so a variant of it is one too.
        let shouted: HashSet<String> = normalize::nfkc(text)
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .filter(|w| {
                w.chars().filter(char::is_ascii_uppercase).count() >= 2
                    && w.chars().any(|c| c.is_ascii_digit())
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            })
            .map(normalize::fold)
            .collect();
        for t in lexicon::tokens(&latin) {
            if shouted.contains(&t) && !self.known_words.contains(&t) {
                out.push(Finding::UngroundedCode { slot, code: t });
                continue;
            }
            let letters = t.chars().filter(|c| c.is_alphabetic()).count();
            let has_digit = t.chars().any(|c| c.is_ascii_digit());
            if !has_digit || letters == 0 || self.known_words.contains(&t) {
                continue;
            }
            let grounded = |n: &str| {
                n.parse()
                    .is_ok_and(|n: u64| self.allowed_numbers.contains(&n))
            };
            // Hyphenated words with a number ("3-jahreszeiten-modell", "2-day", "snow-25"):
            // the number is what must be grounded.
            let segments: Vec<&str> = t.split('-').collect();
            let mixed = segments.iter().any(|g| {
                g.chars().any(|c| c.is_ascii_digit()) && g.chars().any(char::is_alphabetic)
            });
            if segments.len() > 1 && !mixed {
                let ungrounded = segments
                    .iter()
                    .filter(|g| g.chars().all(|c| c.is_ascii_digit()))
                    .any(|n| !grounded(n));
                if ungrounded {
                    out.push(Finding::UngroundedNumber { slot, number: t });
                }
                continue;
            }
            // A number with a short unit ("30l", "450g", "250ml"): its number must be grounded.
            let number: String = t.chars().take_while(char::is_ascii_digit).collect();
            let unit = &t[number.len()..];
            if !number.is_empty()
                && unit.chars().all(char::is_alphabetic)
                && unit.chars().count() <= 4
            {
                if !grounded(&number) {
                    out.push(Finding::UngroundedNumber { slot, number: t });
                }
                continue;
            }
            if letters >= 2 {
                out.push(Finding::UngroundedCode { slot, code: t });
            }
        }
        let masked_tokens: HashSet<String> = lexicon::tokens(masked).into_iter().collect();
        for word in text.split(|c: char| !c.is_alphanumeric() && c != '-') {
            let shouted = word.chars().filter(char::is_ascii_uppercase).count() >= 5
                && word.chars().all(|c| c.is_ascii_uppercase() || c == '-');
            let folded = normalize::fold(word);
            if shouted
                && masked_tokens.contains(&folded)
                && !self.known_words.contains(&folded)
                && lexicon::find(&folded, &self.language).is_empty()
            {
                out.push(Finding::UngroundedCode {
                    slot,
                    code: word.to_owned(),
                });
            }
        }
    }

    /// Promises: each concept must be one the offer states or the product's description gives.
    fn check_promises(&self, slot: Slot, masked: &str, hits: &[Hit], out: &mut Vec<Finding>) {
        let offer = self.ctx.offer;
        let discount_offer = matches!(offer.kind, OfferKind::PercentOff | OfferKind::AmountOff);
        let sentences = lexicon::sentences(masked);
        let in_sentence = |sentence: usize, concept: Concept| {
            hits.iter()
                .any(|h| h.sentence == sentence && h.concept == concept)
        };
        for hit in hits {
            // A product claim must be that product's: the products the sentence names, or any
            // candidate when it names none.
            let named = sentences
                .get(hit.sentence)
                .map(|s| self.named_candidates(s))
                .unwrap_or_default();
            let described = if named.is_empty() {
                self.described.iter().any(|d| d.contains(&hit.concept))
            } else {
                named
                    .iter()
                    .any(|&i| self.described[i].contains(&hit.concept))
            };
            if described {
                continue;
            }
            let grounded = match hit.concept {
                Concept::Discount => discount_offer,
                Concept::HalfPrice => {
                    offer.kind == OfferKind::PercentOff && offer.percent == Some(50)
                }
                Concept::Free => {
                    offer.kind == OfferKind::FreeShipping
                        && in_sentence(hit.sentence, Concept::Shipping)
                }
                Concept::Shipping => true,
                Concept::FreeShipping => offer.kind == OfferKind::FreeShipping,
                Concept::Code => offer.code.is_some(),
                Concept::Deadline => offer.ends_on.is_some(),
                Concept::Scarcity | Concept::Guarantee | Concept::Bundle => false,
                Concept::Everything => {
                    // "Everything" widens only a scoped offer, and only where the offer is said.
                    let said_here = [Concept::Discount, Concept::Free, Concept::FreeShipping]
                        .into_iter()
                        .any(|c| in_sentence(hit.sentence, c))
                        || sentences.get(hit.sentence).is_some_and(|s| {
                            numbers::scan(s, &self.language)
                                .iter()
                                .any(|n| n.unit != Unit::Plain)
                        });
                    offer.scope.is_none() || !said_here
                }
            };
            if !grounded {
                let phrase = format!("{} (\"{}\")", hit.concept.name(), hit.phrase.trim());
                let f = Finding::UngroundedPromise { slot, phrase };
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    }

    /// The offer's conditions go with it: copy that states an offer with a minimum spend names
    /// that minimum somewhere.
    fn conditions(&self, all_text: &str) -> Option<Finding> {
        let offer = self.ctx.offer;
        let min = offer.min_spend.as_deref().and_then(decimal_cents)?;
        let masked = self.masked(all_text);
        let states_offer = lexicon::find(&masked, &self.language).iter().any(|h| {
            matches!(
                h.concept,
                Concept::Discount | Concept::Free | Concept::FreeShipping
            )
        });
        let names_min = numbers::scan(&masked, &self.language)
            .iter()
            .any(|n| n.cents == Some(min));
        (states_offer && !names_min).then(|| Finding::UngroundedPromise {
            slot: Slot::Body,
            phrase: "the offer without its minimum spend".into(),
        })
    }

    fn language(&self, all_text: &str) -> Option<Finding> {
        let masked = self.masked(all_text);
        let detected = language::detect(&masked)?;
        (detected != self.language).then(|| Finding::WrongLanguage {
            detected: detected.to_owned(),
            expected: self.language.clone(),
        })
    }
}

/// Runs of two or more capitalised words inside a sentence that the product facts, titles and
/// brief do not hold: the shape of a product name the model made up. Greetings and the
/// customer's names are the names check's business.
fn unknown_names(text: &str, known: &HashSet<String>) -> Vec<String> {
    const HOLIDAYS: &[&str] = &[
        "black friday",
        "cyber monday",
        "new year",
        "mother's day",
        "father's day",
    ];
    let mut out = Vec::new();
    for sentence in text.split(['.', '!', '?', '\n', ':', ';', '¡', '¿', '–', '—']) {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        let mut run: Vec<&str> = Vec::new();
        let mut flush = |run: &mut Vec<&str>| {
            let unknown = run.iter().any(|w| !is_known_word(w, known));
            let phrase = run.join(" ");
            let holiday = HOLIDAYS.contains(&normalize::fold(&phrase).as_str());
            if run.len() >= 2 && unknown && !holiday {
                out.push(phrase);
            }
            run.clear();
        };
        for (i, raw) in words.iter().enumerate() {
            let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
            let ends_clause = raw.ends_with([',', ')', '"', '»', '”']);
            let capitalised = i > 0 && word.chars().next().is_some_and(char::is_uppercase);
            if capitalised && !GREETING_OR_TITLE.contains(&normalize::fold(word).as_str()) {
                run.push(word);
            } else {
                flush(&mut run);
            }
            if ends_clause {
                flush(&mut run);
            }
        }
        flush(&mut run);
    }
    out
}

/// A word of the facts, also inflected ("Zielonego Ogrodu" of "Zielony Ogród"): it agrees
/// with a known word, accents aside, up to its last two letters.
fn is_known_word(word: &str, known: &HashSet<String>) -> bool {
    let folded = normalize::fold(word);
    if known.contains(&folded) {
        return true;
    }
    let bare = normalize::strip_accents(&folded);
    let n = bare.chars().count();
    n >= 4
        && known.iter().any(|k| {
            let k = normalize::strip_accents(k);
            let common = bare
                .chars()
                .zip(k.chars())
                .take_while(|(a, b)| a == b)
                .count();
            let m = k.chars().count();
            common >= 4 && common + 2 >= n.min(m) && n.abs_diff(m) <= 3
        })
}

/// Words that open an address rather than name a product.
const GREETING_OR_TITLE: &[&str] = &[
    "mr", "mrs", "ms", "dr", "herr", "frau", "monsieur", "madame", "señor", "señora", "signor",
    "signora", "senhor", "senhora", "pan", "pani",
];

/// `text` with the verbatim phrases (titles) blanked, case kept, for the name check.
fn mask_case_kept(text: &str, phrases: &[String]) -> String {
    let mut out = text.to_owned();
    for p in phrases.iter().filter(|p| p.chars().count() >= 2) {
        let lower = out.to_lowercase();
        let needle = p.to_lowercase();
        if lower.len() != out.len() {
            continue; // case folding changed byte offsets: leave this text as it is
        }
        let mut result = String::with_capacity(out.len());
        let mut last = 0;
        for (at, _) in lower.match_indices(&needle) {
            result.push_str(&out[last..at]);
            result.push_str(normalize::MASK);
            last = at + needle.len();
        }
        result.push_str(&out[last..]);
        out = result;
    }
    out
}

/// A URL, `www.`, or a bare domain ("northwind.com/sale").
fn has_link(folded: &str) -> bool {
    if folded.contains("://") || folded.contains("www.") {
        return true;
    }
    let chars: Vec<char> = folded.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        if c != '.' || i == 0 || !chars[i - 1].is_alphanumeric() {
            return false;
        }
        let tld: String = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let after = chars.get(i + 1 + tld.len());
        DOMAINS.contains(&tld.as_str()) && after.is_none_or(|a| !a.is_alphanumeric())
    })
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
        // Size runs ("36-38-40-42") and dates ("2026-12-24", "24.12.2026") are not phones.
        let groups: Vec<usize> = run
            .split(|c: char| !c.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .map(str::len)
            .collect();
        let size_run = groups.iter().all(|&g| g <= 2);
        let date = matches!(
            groups[..],
            [4, 2, 2] | [2, 2, 4] | [1, 2, 4] | [2, 1, 4] | [1, 1, 4]
        );
        if (7..=15).contains(&digit_count)
            && !money_before
            && has_separator_or_plus
            && !size_run
            && !date
        {
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

    const BRIEF: &str = "Winter warmth for the trail. No discounts this time.";

    fn offer() -> Offer {
        Offer {
            kind: OfferKind::FreeShipping,
            min_spend: Some("50.00".into()),
            ..Offer::default()
        }
    }

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
            body: "Hi Ana, after your last trip we think the Summit Down Jacket at $199.00 and the Wool Beanie \
                   will keep you warm on the trail this winter. Shipping is free on orders over $50."
                .into(),
            product_refs: vec!["P1".into(), "P2".into()],
        }
    }

    fn check(copy: &GeneratedCopy) -> Result<ValidCopy, Vec<Finding>> {
        let (cands, st, offer) = (candidates(), settings(), offer());
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person())
            .with_catalog_titles(&titles);
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person())
            .with_catalog_titles(&titles);
        let copy = with_body("Your Alpine Jacket will love the company.");
        assert!(
            validate(&copy, &ctx).is_err(),
            "the Alpine Jacket is not theirs"
        );
        let ctx = ctx.with_purchases(&history);
        assert!(validate(&copy, &ctx).is_ok(), "{:?}", validate(&copy, &ctx));
    }

    #[test]
    fn titles_inside_a_candidate_title_are_not_foreign() {
        let titles = TitleIndex::from_titles(["Down Jacket", "Summit Down Jacket"]);
        let (cands, st) = (candidates(), settings());
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person())
            .with_catalog_titles(&titles);
        assert!(validate(&with_body("The Summit Down Jacket is back."), &ctx).is_ok());
    }

    fn check_with(offer: &Offer, copy: &GeneratedCopy, language: &str) -> Vec<Finding> {
        let cands = candidates();
        let st = Settings {
            language: language.into(),
            ..settings()
        };
        let ctx = ValidationContext::new(&cands, BRIEF, offer, &st, person());
        validate(copy, &ctx).err().unwrap_or_default()
    }

    #[test]
    fn prices_must_be_a_candidate_price_or_an_offer_amount() {
        let copy = with_body("The Summit Down Jacket is now $149.");
        assert_eq!(
            findings(&copy),
            vec![Finding::UngroundedPrice {
                slot: Slot::Body,
                amount: "149 USD".into()
            }]
        );
        // A product's own price, beside its name, and the offer's amounts.
        for grounded in [
            "The Summit Down Jacket is only $199.",
            "The Wool Beanie is USD 29.",
            "Free shipping on orders over $50.",
        ] {
            assert!(
                check(&with_body(grounded)).is_ok(),
                "{grounded}: {:?}",
                findings(&with_body(grounded))
            );
        }
        for invented in [
            "just 12.99",
            "USD 12",
            "The Summit Down Jacket is €199.",
            "The Wool Beanie is $199.",
            "100 dollars",
        ] {
            assert!(
                findings(&with_body(invented))
                    .iter()
                    .any(|f| matches!(f, Finding::UngroundedPrice { .. })),
                "{invented}"
            );
        }
    }

    #[test]
    fn the_brief_grants_nothing() {
        // "No discounts this time" in the brief does not unlock "discount".
        assert!(!findings(&with_body("Enjoy a discount today.")).is_empty());
        let none = Offer::none();
        assert!(!check_with(&none, &with_body("Free shipping over $50."), "en").is_empty());
    }

    #[test]
    fn promises_the_offer_does_not_make_are_findings_however_phrased() {
        for text in [
            "Take 20% off today.",
            "Use code at checkout.",
            "A coupon is waiting.",
            "Enjoy a discount on us.",
            "Free returns on every order.",
            "Last chance to grab it.",
            "Only 3 left in your size.",
            "Back in stock and ready.",
            "Buy one, get another one this week.",
            "Half price for members.",
            "Free 2-day shipping.",
        ] {
            assert!(
                !check_with(&Offer::none(), &with_body(text), "en").is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn the_stated_offer_may_be_rendered() {
        for text in [
            "Free shipping on orders over $50.",
            "Shipping's on us when you spend $50.",
        ] {
            assert_eq!(findings(&with_body(text)), vec![], "{text}");
        }
        // Without its minimum spend, the offer is promised wider than stated.
        assert!(!findings(&with_body("Free shipping on everything.")).is_empty());
    }

    #[test]
    fn percentages_must_be_the_offers() {
        let offer = Offer {
            kind: OfferKind::PercentOff,
            percent: Some(20),
            scope: Some("outerwear".into()),
            ..Offer::default()
        };
        let ok = with_body("Take 20% off the Summit Down Jacket.");
        assert_eq!(check_with(&offer, &ok, "en"), vec![]);
        let bad = with_body("Take 30% off the Summit Down Jacket.");
        assert_eq!(
            check_with(&offer, &bad, "en"),
            vec![Finding::UngroundedPromise {
                slot: Slot::Body,
                phrase: "\"30%\"".into()
            }]
        );
        let wider = with_body("Take 20% off everything in the store.");
        assert!(!check_with(&offer, &wider, "en").is_empty());
    }

    #[test]
    fn invented_codes_are_findings_in_any_case() {
        for text in [
            "Treat yourself with WINTER25 soon.",
            "Use snow25 today.",
            "Try SNOW-25.",
        ] {
            assert!(
                findings(&with_body(text)).iter().any(|f| matches!(
                    f,
                    Finding::UngroundedCode { .. } | Finding::UngroundedNumber { .. }
                )),
                "{text}"
            );
        }
        let offer = Offer {
            kind: OfferKind::PercentOff,
            percent: Some(10),
            code: Some("SNOW10".into()),
            ..Offer::default()
        };
        assert_eq!(
            check_with(&offer, &with_body("Use code SNOW10 for 10% off."), "en"),
            vec![]
        );
    }

    #[test]
    fn full_width_text_is_read_as_ascii() {
        assert!(!findings(&with_body("Now ２０％ off.")).is_empty());
    }

    #[test]
    fn bare_domains_are_links() {
        assert!(findings(&with_body("See northwind.com/sale for more."))
            .contains(&Finding::Link { slot: Slot::Body }));
        assert!(findings(&with_body("Ready when you are. Warm hands.")).is_empty());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, person());
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
        let offer = offer();
        let ctx = ValidationContext::new(&cands, BRIEF, &offer, &st, p);
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
        for not_phone in [
            "Rated 4.8 by 1200 hikers since 2019.",
            "It weighs 1,250 g.",
            "Sizes 36-38-40-42-44 in stock.",
            "Until 2026-12-24.",
        ] {
            assert!(
                !findings(&with_body(not_phone))
                    .iter()
                    .any(|f| matches!(f, Finding::PersonalData { .. })),
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
        assert!(!findings(&with_body("Warm & dry, 3 < 4."))
            .contains(&Finding::Markup { slot: Slot::Body }));
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
