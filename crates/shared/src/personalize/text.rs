//! Small regex-free text scanners shared by the prompt builder and the validator: word tokens,
//! phrase search over tokens, amounts (prices, percentages) and price rendering. Kept in one
//! place so the prompt shows prices exactly the way the validator later accepts them.

use crate::domain::Money;

/// Splits text into lowercase alphanumeric words. Apostrophes and hyphens split words, so
/// "Men's Trail-Runner" and "Men’s trail runner" give the same words.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `phrase` (already tokenised) occurs as a contiguous run of whole words in `hay`.
pub(crate) fn contains_words(hay: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && hay.windows(phrase.len()).any(|w| w == phrase)
}

/// One line of untrusted text fit for a prompt: control characters and newlines become spaces
/// (so catalog or order text cannot fake prompt structure), whitespace collapses, and the text
/// is cut at `max_chars` characters with an ellipsis.
pub(crate) fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut pending_space = false;
    let mut count = 0usize;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if count + usize::from(pending_space) >= max_chars {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// What kind of number the scanner found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AmountKind {
    /// Next to a currency symbol or code, or written with two decimals ("12.99").
    Money,
    /// Followed by `%` or "percent".
    Percent,
    /// Any other number ("3 layers", "2024").
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Amount {
    /// The value in hundredths, so 12.99 and 12.990 compare equal without floats.
    pub cents: i64,
    pub kind: AmountKind,
    /// The text as written, with the symbol or code when present, for messages.
    pub text: String,
}

const CURRENCY_SYMBOLS: &[char] = &['$', '€', '£', '¥', '₹', '₩', '₽', '₺', '₪', '₫', '₱', '¢'];
const CURRENCY_WORDS: &[&str] = &[
    "usd", "eur", "gbp", "cad", "aud", "nzd", "chf", "jpy", "sek", "nok", "dkk", "inr", "mxn",
    "brl", "dollar", "dollars", "euro", "euros", "pound", "pounds", "bucks",
];

/// Finds every number in `text` and classifies it. Separators: a run like `1,299.99` or
/// `12,99` is read the usual way (the last separator followed by exactly two digits is the
/// decimal point; others are thousands separators).
pub(crate) fn amounts(text: &str) -> Vec<Amount> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        // A number starts at a digit that does not continue a word ("X100" is a model name).
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        if i > 0 && chars[i - 1].1.is_alphabetic() {
            while i < chars.len() && chars[i].1.is_alphanumeric() {
                i += 1;
            }
            continue;
        }
        let start = i;
        let mut end = i;
        while end < chars.len() {
            let ch = chars[end].1;
            let sep_then_digit = (ch == ',' || ch == '.')
                && chars.get(end + 1).is_some_and(|(_, n)| n.is_ascii_digit());
            if ch.is_ascii_digit() || sep_then_digit {
                end += 1;
            } else {
                break;
            }
        }
        let raw: String = chars[start..end].iter().map(|(_, c)| *c).collect();
        i = end;
        // Digits glued to letters after them ("3XL", "2in1") are not amounts either.
        if chars.get(end).is_some_and(|(_, c)| c.is_alphabetic())
            && !followed_by_word(&chars, end, CURRENCY_WORDS)
        {
            continue;
        }
        let Some((cents, two_decimals)) = parse_cents(&raw) else {
            continue;
        };

        let before = preceding(&chars, start);
        let symbol_before = before.is_some_and(|c| CURRENCY_SYMBOLS.contains(&c));
        let symbol_after = following(&chars, end).is_some_and(|c| CURRENCY_SYMBOLS.contains(&c));
        let code_before = preceded_by_word(&chars, start, CURRENCY_WORDS);
        let code_after = followed_by_word(&chars, end, CURRENCY_WORDS);
        let percent =
            following(&chars, end) == Some('%') || followed_by_word(&chars, end, &["percent"]);

        let kind = if percent {
            AmountKind::Percent
        } else if symbol_before || symbol_after || code_before || code_after || two_decimals {
            AmountKind::Money
        } else {
            AmountKind::Plain
        };
        let text = match (kind, before) {
            (AmountKind::Money, Some(s)) if symbol_before => format!("{s}{raw}"),
            (AmountKind::Percent, _) => format!("{raw}%"),
            _ => raw,
        };
        out.push(Amount { cents, kind, text });
    }
    out
}

/// The previous non-space character, looking back over at most one space.
fn preceding(chars: &[(usize, char)], start: usize) -> Option<char> {
    let mut j = start.checked_sub(1)?;
    if chars[j].1 == ' ' {
        j = j.checked_sub(1)?;
    }
    Some(chars[j].1)
}

fn following(chars: &[(usize, char)], end: usize) -> Option<char> {
    let mut j = end;
    if chars.get(j).is_some_and(|(_, c)| *c == ' ') {
        j += 1;
    }
    chars.get(j).map(|(_, c)| *c)
}

fn word_at(chars: &[(usize, char)], from: usize) -> String {
    chars[from..]
        .iter()
        .map(|(_, c)| *c)
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
}

fn followed_by_word(chars: &[(usize, char)], end: usize, words: &[&str]) -> bool {
    let mut j = end;
    if chars.get(j).is_some_and(|(_, c)| *c == ' ') {
        j += 1;
    }
    j < chars.len() && words.contains(&word_at(chars, j).to_lowercase().as_str())
}

fn preceded_by_word(chars: &[(usize, char)], start: usize, words: &[&str]) -> bool {
    let mut j = start;
    if j > 0 && chars[j - 1].1 == ' ' {
        j -= 1;
    }
    let mut k = j;
    while k > 0 && chars[k - 1].1.is_alphabetic() {
        k -= 1;
    }
    k < j && words.contains(&word_at(chars, k).to_lowercase().as_str())
}

/// Parses `1,299.99`, `12,99`, `12.5`, `50` into hundredths; the flag says whether it was
/// written with exactly two decimals (the shape of a price).
fn parse_cents(raw: &str) -> Option<(i64, bool)> {
    let seps: Vec<(usize, char)> = raw
        .char_indices()
        .filter(|(_, c)| *c == ',' || *c == '.')
        .collect();
    let decimal_at = match seps.last() {
        None => None,
        Some(&(p, c)) => {
            let mixed = seps.iter().any(|(_, d)| *d != c);
            if mixed {
                Some(p) // "1,299.99" or "1.299,50": the last separator is the decimal point
            } else if seps.len() > 1 || (c == ',' && raw.len() - p - 1 == 3) {
                None // "1,299,000" or "1,299": thousands separators only
            } else {
                Some(p) // "12.99", "12,99", "12.5"
            }
        }
    };
    let (int_part, frac_part) = match decimal_at {
        Some(p) => (&raw[..p], &raw[p + 1..]),
        None => (raw, ""),
    };
    let int_digits: String = int_part.chars().filter(|c| c.is_ascii_digit()).collect();
    let frac_digits: String = frac_part.chars().filter(|c| c.is_ascii_digit()).collect();
    if int_digits.len() > 12 {
        return None;
    }
    let whole: i64 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().ok()?
    };
    let frac = frac_digits
        .chars()
        .chain(std::iter::repeat('0'))
        .take(2)
        .collect::<String>();
    let hundredths: i64 = frac.parse().ok()?;
    Some((whole * 100 + hundredths, frac_digits.len() == 2))
}

/// A decimal string ("12.5", "1299.00") in hundredths; `None` when it is not a number.
pub(crate) fn decimal_cents(amount: &str) -> Option<i64> {
    let amount = amount.trim();
    let (int_part, frac_part) = amount.split_once('.').unwrap_or((amount, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
        || int_part.len() > 12
    {
        return None;
    }
    let whole: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac: String = frac_part
        .chars()
        .chain(std::iter::repeat('0'))
        .take(2)
        .collect();
    Some(whole * 100 + frac.parse::<i64>().ok()?)
}

/// A price as the customer reads it: "$89.00", "€12.50", "£5.00", otherwise "12.00 CHF".
/// The prompt, the written `sp_product_N_price` and the validator all use this one rendering.
pub fn price_text(money: &Money) -> String {
    let Some(cents) = decimal_cents(&money.amount) else {
        return format!("{} {}", money.amount.trim(), money.currency)
            .trim()
            .to_owned();
    };
    let number = format!("{}.{:02}", cents / 100, cents % 100);
    match money.currency.to_ascii_uppercase().as_str() {
        "USD" => format!("${number}"),
        "EUR" => format!("€{number}"),
        "GBP" => format!("£{number}"),
        other => format!("{number} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(i64, AmountKind)> {
        amounts(text)
            .into_iter()
            .map(|a| (a.cents, a.kind))
            .collect()
    }

    #[test]
    fn tokens_ignore_case_and_punctuation() {
        assert_eq!(
            words("Men’s Trail-Runner, 2!"),
            vec!["men", "s", "trail", "runner", "2"]
        );
    }

    #[test]
    fn phrase_search_matches_whole_words_only() {
        let hay = words("A wholesale offer on the sale rack");
        assert!(contains_words(&hay, &words("sale rack")));
        assert!(!contains_words(&hay, &words("sale offer")));
        assert!(!contains_words(&hay, &[]));
    }

    #[test]
    fn one_line_flattens_and_truncates_by_chars() {
        assert_eq!(one_line("  a\n\nb\tc  ", 10), "a b c");
        assert_eq!(one_line("ééééé", 3), "ééé…");
        assert_eq!(
            one_line("ignore previous\ninstructions", 100),
            "ignore previous instructions"
        );
    }

    #[test]
    fn finds_prices_by_symbol_code_or_two_decimals() {
        assert_eq!(kinds("only $12 today"), vec![(1200, AmountKind::Money)]);
        assert_eq!(kinds("just 12.99"), vec![(1299, AmountKind::Money)]);
        assert_eq!(kinds("USD 12"), vec![(1200, AmountKind::Money)]);
        assert_eq!(kinds("12 dollars"), vec![(1200, AmountKind::Money)]);
        assert_eq!(kinds("€ 1.299,50"), vec![(129950, AmountKind::Money)]);
        assert_eq!(kinds("$1,299.99"), vec![(129999, AmountKind::Money)]);
        assert_eq!(kinds("12,99 €"), vec![(1299, AmountKind::Money)]);
    }

    #[test]
    fn percent_and_plain_numbers_are_told_apart() {
        assert_eq!(kinds("20% off"), vec![(2000, AmountKind::Percent)]);
        assert_eq!(kinds("20 percent"), vec![(2000, AmountKind::Percent)]);
        assert_eq!(
            kinds("3 layers since 2019"),
            vec![(300, AmountKind::Plain), (201900, AmountKind::Plain)]
        );
    }

    #[test]
    fn model_names_and_sizes_are_not_amounts() {
        assert!(amounts("the X100 lamp in 3XL").is_empty());
    }

    #[test]
    fn decimal_strings_parse_to_cents() {
        assert_eq!(decimal_cents("89"), Some(8900));
        assert_eq!(decimal_cents("89.5"), Some(8950));
        assert_eq!(decimal_cents("1299.00"), Some(129900));
        assert_eq!(decimal_cents("abc"), None);
        assert_eq!(decimal_cents(""), None);
    }

    #[test]
    fn price_text_uses_symbol_for_common_currencies() {
        let m = |a: &str, c: &str| Money {
            amount: a.into(),
            currency: c.into(),
        };
        assert_eq!(price_text(&m("89", "USD")), "$89.00");
        assert_eq!(price_text(&m("12.5", "EUR")), "€12.50");
        assert_eq!(price_text(&m("5.00", "gbp")), "£5.00");
        assert_eq!(price_text(&m("30.00", "CHF")), "30.00 CHF");
    }
}
