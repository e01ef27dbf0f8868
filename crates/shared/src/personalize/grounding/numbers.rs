//! Every number in the copy, read the way the copy's language writes numbers.
//!
//! Numbers carry most invented claims in any language ("20 Prozent", "only 3 left", "2-day",
//! "buy 2 get 1", "ends 31.12."), so the gate needs no words for them: each number must be one
//! the offer states, a product's own description or title gives, or a date part of the offer's
//! end. Amounts are parsed with the language's separators, so "1.299,00 €" is 1299.00 in German
//! and malformed in English, and "$1,299.00" in German copy is a wrong format.

/// A currency as ISO 4217, from a symbol, code or word next to a number.
pub type Currency = &'static str;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Next to a currency sign, code or word.
    Money(Currency),
    /// Followed by `%` or the language's word for percent.
    Percent,
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// As written (folded), with its unit when there is one, for messages.
    pub text: String,
    pub unit: Unit,
    /// The value in hundredths under the language's separators; `None` when malformed there.
    pub cents: Option<i64>,
    /// The runs of digits, for dates and plain counts ("24.12.2026" → 24, 12, 2026).
    pub groups: Vec<u64>,
    /// Written with a decimal part ("129,00"): an amount even without a currency.
    pub has_decimals: bool,
    /// Separated by `/` or with more groups than a number has: a date or a range.
    pub date_like: bool,
}

const CURRENCY_BEFORE: &[(&str, Currency)] = &[
    ("r$", "BRL"),
    ("us$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("chf", "CHF"),
    ("eur", "EUR"),
    ("usd", "USD"),
    ("sek", "SEK"),
    ("pln", "PLN"),
    ("jpy", "JPY"),
    ("brl", "BRL"),
    ("gbp", "GBP"),
];

const CURRENCY_AFTER: &[(&str, Currency)] = &[
    ("€", "EUR"),
    ("$", "USD"),
    ("円", "JPY"),
    ("¥", "JPY"),
    ("zł", "PLN"),
    ("zl", "PLN"),
    ("kr", "SEK"),
    ("kronor", "SEK"),
    ("eur", "EUR"),
    ("euro", "EUR"),
    ("euros", "EUR"),
    ("usd", "USD"),
    ("dollar", "USD"),
    ("dollars", "USD"),
    ("bucks", "USD"),
    ("sek", "SEK"),
    ("pln", "PLN"),
    ("złotych", "PLN"),
    ("zlotych", "PLN"),
    ("jpy", "JPY"),
    ("yen", "JPY"),
    ("brl", "BRL"),
    ("reais", "BRL"),
    ("gbp", "GBP"),
    ("pounds", "GBP"),
    ("chf", "CHF"),
];

const PERCENT_WORDS: &[&str] = &[
    "%",
    "percent",
    "per cent",
    "prozent",
    "pour cent",
    "pourcent",
    "por ciento",
    "per cento",
    "procent",
    "por cento",
    "パーセント",
];

/// Whether the language writes a decimal comma (and groups thousands with `.` or a space).
pub fn decimal_comma(language: &str) -> bool {
    matches!(
        super::lexicon::primary(language).as_str(),
        "de" | "fr" | "es" | "it" | "nl" | "pt" | "sv" | "pl" | "da" | "nb" | "fi" | "cs"
    )
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | ',' | '\'' | ' ' | '\u{a0}' | '\u{202f}' | '/')
}

/// Every number in folded text.
pub fn scan(folded: &str, language: &str) -> Vec<Number> {
    let comma = decimal_comma(language);
    let chars: Vec<char> = folded.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit()
            || (i > 0 && chars[i - 1].is_alphabetic() && !is_cjk_or_kana(chars[i - 1]))
        {
            // Digits glued to letters ("snow25", "gore-tex 3l") are codes or names: `codes` reads them.
            if chars[i].is_ascii_digit() {
                while i < chars.len() && (chars[i].is_alphanumeric()) {
                    i += 1;
                }
            } else {
                i += 1;
            }
            continue;
        }
        let start = i;
        let mut end = i;
        while end < chars.len() {
            let c = chars[end];
            let continues = c.is_ascii_digit()
                || is_separator(c)
                    && chars.get(end + 1).is_some_and(char::is_ascii_digit)
                    && (c != ' ' || space_groups(&chars, end + 1));
            if !continues {
                break;
            }
            end += 1;
        }
        let raw: String = chars[start..end].iter().collect();
        let before: String = chars[start.saturating_sub(5)..start].iter().collect();
        let after: String = chars[end..(end + 12).min(chars.len())].iter().collect();
        let unit = unit_of(before.trim_end(), after.trim_start());
        let groups: Vec<u64> = raw
            .split(|c: char| !c.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .filter_map(|g| g.parse().ok())
            .collect();
        let cents = parse_amount(&raw, comma);
        // "5,000" is the one number 5000, not 5 and 0.
        let groups = match cents {
            Some(c) if !raw.contains('/') && c % 100 == 0 => vec![(c / 100) as u64],
            _ => groups,
        };
        let decimal = if comma { ',' } else { '.' };
        let has_decimals = raw
            .rfind(decimal)
            .is_some_and(|at| (1..=2).contains(&raw[at + 1..].len()) && cents.is_some());
        let date_like = raw.contains('/') || cents.is_none() && groups.len() >= 2;
        let text = match unit {
            Unit::Money(c) => format!("{raw} {c}"),
            Unit::Percent => format!("{raw}%"),
            Unit::Plain => raw.clone(),
        };
        out.push(Number {
            text,
            unit,
            cents,
            groups,
            has_decimals,
            date_like,
        });
        i = end;
    }
    out
}

fn is_cjk_or_kana(c: char) -> bool {
    super::normalize::is_cjk(c)
}

/// A space groups thousands only when exactly three digits follow it ("3 400 kr").
fn space_groups(chars: &[char], from: usize) -> bool {
    let digits = chars[from..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    digits == 3
}

fn unit_of(before: &str, after: &str) -> Unit {
    for (sign, c) in CURRENCY_BEFORE {
        if before.ends_with(sign) {
            return Unit::Money(c);
        }
    }
    for word in PERCENT_WORDS {
        if after.starts_with(word) {
            return Unit::Percent;
        }
    }
    for (sign, c) in CURRENCY_AFTER {
        if let Some(rest) = after.strip_prefix(sign) {
            let ends_word = sign
                .chars()
                .all(|ch| !ch.is_alphabetic() || super::normalize::is_cjk(ch))
                || rest.chars().next().is_none_or(|ch| !ch.is_alphanumeric());
            if ends_word {
                return Unit::Money(c);
            }
        }
    }
    Unit::Plain
}

/// "1.299,00" with a decimal comma → 129900; "1,299.00" with a decimal point → 129900; a
/// number that breaks the language's grouping (a 2-digit group, a second decimal mark) → None.
pub fn parse_amount(raw: &str, decimal_comma: bool) -> Option<i64> {
    if raw.contains('/') {
        return None;
    }
    let decimal = if decimal_comma { ',' } else { '.' };
    let (int_part, frac) = match raw.rfind(decimal) {
        Some(at) => (&raw[..at], Some(&raw[at + 1..])),
        None => (raw, None),
    };
    if let Some(f) = frac {
        if !(1..=2).contains(&f.len()) || !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let groups: Vec<&str> = int_part.split(|c: char| !c.is_ascii_digit()).collect();
    if groups.iter().any(|g| g.is_empty()) {
        return None;
    }
    if groups.len() > 1 && (groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3)) {
        return None;
    }
    let int: i64 = groups.concat().parse().ok()?;
    let frac_cents = match frac {
        Some(f) if f.len() == 1 => f.parse::<i64>().ok()? * 10,
        Some(f) => f.parse::<i64>().ok()?,
        None => 0,
    };
    int.checked_mul(100)?.checked_add(frac_cents)
}

/// The ISO code a shop's `Money.currency` means, upper-cased.
pub fn iso(currency: &str) -> String {
    currency.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, lang: &str) -> Number {
        let all = scan(text, lang);
        assert_eq!(all.len(), 1, "{text}: {all:?}");
        all.into_iter().next().unwrap()
    }

    #[test]
    fn german_amounts_use_a_decimal_comma() {
        let n = one("ab 1.299,00 € versandkostenfrei", "de");
        assert_eq!((n.unit, n.cents), (Unit::Money("EUR"), Some(129_900)));
        assert!(n.has_decimals);
        // An English-style amount in German copy is malformed there.
        assert_eq!(one("nur $1,299.00", "de").cents, None);
    }

    #[test]
    fn english_amounts_use_a_decimal_point() {
        let n = one("only $1,299.00 today", "en");
        assert_eq!((n.unit, n.cents), (Unit::Money("USD"), Some(129_900)));
    }

    #[test]
    fn percentages_in_any_language() {
        for (text, lang) in [
            ("20% off", "en"),
            ("20 prozent rabatt", "de"),
            ("20 % de remise", "fr"),
            ("20 por ciento", "es"),
            ("20%オフ", "ja"),
        ] {
            let n = one(text, lang);
            assert_eq!(
                (n.unit, n.groups.clone()),
                (Unit::Percent, vec![20]),
                "{text}"
            );
        }
    }

    #[test]
    fn currencies_after_the_number() {
        assert_eq!(one("100 kr", "sv").unit, Unit::Money("SEK"));
        assert_eq!(one("50 zł", "pl").unit, Unit::Money("PLN"));
        assert_eq!(one("1,000円", "ja").cents, Some(100_000));
        assert_eq!(one("3 400 kr", "sv").cents, Some(340_000));
    }

    #[test]
    fn dates_split_into_their_parts() {
        let n = one("bis 24.12.2026", "de");
        assert!(n.date_like);
        assert_eq!(n.groups, vec![24, 12, 2026]);
        assert_eq!(scan("until 2026-12-24", "en").len(), 3);
        assert!(one("ends 12/24", "en").date_like);
    }

    #[test]
    fn digits_glued_to_letters_are_not_numbers() {
        assert!(scan("use snow25 at checkout", "en").is_empty());
        assert_eq!(scan("free 2-day shipping", "en").len(), 1);
    }
}
