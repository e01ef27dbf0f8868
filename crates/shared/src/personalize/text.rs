//! Small regex-free text helpers shared by the prompt builder and the grounding gate: word
//! tokens, phrase search over tokens, decimal amounts and price rendering.

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
