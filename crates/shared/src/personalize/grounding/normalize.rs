//! Text as the gate compares it: NFKC (full-width "２０％" is "20%", ligatures split), lower
//! case, and the phrases the copy may use verbatim (product titles, the offer's code) masked
//! out so their words ("Sale Creek Flannel", "SNOW20") are never read as claims.

use unicode_normalization::UnicodeNormalization;

/// What a phrase masked for the name check leaves behind.
pub const MASK: &str = " ◊ ";

pub fn fold(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

/// Letters without their accents ("ogród" → "ogrod"), to compare inflected forms.
pub fn strip_accents(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// NFKC only, case kept (names are told apart by their capital letter).
pub fn nfkc(text: &str) -> String {
    text.nfkc().collect()
}

/// The marker a masked phrase leaves: a private-use character per phrase index, which no check
/// reads as a word or a number, but which tells which product a sentence names.
pub fn marker(index: usize) -> char {
    char::from_u32(0xE000 + index.min(0x17FF) as u32).unwrap_or('\u{E000}')
}

/// The phrase index a marker stands for.
pub fn marked(c: char) -> Option<usize> {
    (0xE000..0xF800)
        .contains(&(c as u32))
        .then(|| c as usize - 0xE000)
}

/// `folded` with every occurrence of each phrase (folded the same way) replaced by its
/// `marker`; longer phrases first, so a title inside another title does not split it.
/// Occurrences must start and end on word boundaries.
pub fn mask<'a>(folded: &str, phrases: impl IntoIterator<Item = &'a str>) -> String {
    let mut phrases: Vec<(usize, String)> = phrases
        .into_iter()
        .map(fold)
        .map(|p| p.trim().to_owned())
        .enumerate()
        .filter(|(_, p)| p.chars().count() >= 2)
        .collect();
    phrases.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    let mut out = folded.to_owned();
    for (index, phrase) in phrases {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&phrase) {
            let end = at + phrase.len();
            let starts_word = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() || is_cjk(c));
            let ends_word = rest[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() || is_cjk(c));
            result.push_str(&rest[..at]);
            if starts_word && ends_word {
                result.push(' ');
                result.push(marker(index));
                result.push(' ');
            } else {
                result.push_str(&phrase);
            }
            rest = &rest[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Kana and CJK ideographs: scripts without spaces, where any position is a word boundary.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xFF66..=0xFF9F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_digits_and_signs_fold_to_ascii() {
        assert_eq!(fold("２０％ ＯＦＦ"), "20% off");
    }

    #[test]
    fn titles_are_masked_on_word_boundaries_only() {
        let folded = fold("The Sale Creek Flannel is back. Wholesale prices!");
        let masked = mask(&folded, ["Sale Creek Flannel", "sale"]);
        assert!(masked.contains("wholesale"), "{masked}");
        assert!(!masked.contains("creek"), "{masked}");
    }

    #[test]
    fn japanese_titles_are_masked_inside_running_text() {
        let masked = mask(
            &fold("新しい山岳ジャケットはいかがですか"),
            ["山岳ジャケット"],
        );
        assert!(!masked.contains("山岳"), "{masked}");
    }
}
