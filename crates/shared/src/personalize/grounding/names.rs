//! Names in the copy: the customer's own first name, or none.
//!
//! Eight customers share a request, so the model can swap them; it can greet by the last name,
//! or invent a name for a customer whose first name we do not know. Names are told apart from
//! ordinary words by position and case: the word after a greeting or a title is a name; another
//! customer's first name or this customer's last name counts where it is capitalised as a name
//! is, not where it is the ordinary word ("rose-gold", German "für den Winter").

use super::normalize::{fold, is_cjk};
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    /// Addressed by a name that is not this customer's first name.
    WrongName,
    /// Addressed by a name although we know none.
    NameWhenUnknown,
    /// Another customer of the request is named.
    OtherCustomer,
    /// This customer's last name is used.
    Surname,
}

pub struct People<'a> {
    pub first: Option<&'a str>,
    pub last: Option<&'a str>,
    pub others: &'a [String],
    pub language: &'a str,
    /// Folded words of product titles, descriptions and the brief: capitalised there, they
    /// are not a surname in the copy ("Winter Parka").
    pub exempt: &'a HashSet<String>,
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "dear",
    "welcome",
    "thanks",
    "congrats",
    "congratulations",
    "hallo",
    "liebe",
    "lieber",
    "servus",
    "moin",
    "willkommen",
    "danke",
    "bonjour",
    "bonsoir",
    "salut",
    "cher",
    "chère",
    "coucou",
    "merci",
    "hola",
    "querido",
    "querida",
    "estimado",
    "estimada",
    "gracias",
    "ciao",
    "caro",
    "cara",
    "gentile",
    "salve",
    "grazie",
    "hoi",
    "beste",
    "dag",
    "bedankt",
    "olá",
    "oi",
    "obrigado",
    "obrigada",
    "hej",
    "hejsan",
    "hallå",
    "kära",
    "tack",
    "cześć",
    "witaj",
    "witamy",
    "drogi",
    "droga",
    "dziękujemy",
];

const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "herr", "frau", "monsieur", "madame", "mme", "mlle", "señor",
    "señora", "sr", "sra", "signor", "signora", "sig", "dhr", "mevr", "meneer", "mevrouw",
    "senhor", "senhora", "pan", "pani", "panie", "dr", "prof",
];

/// Words after a greeting that address no one in particular.
const NOT_NAMES: &[&str] = &[
    "there",
    "friend",
    "friends",
    "everyone",
    "all",
    "again",
    "team",
    "you",
    "zusammen",
    "du",
    "ihr",
    "toi",
    "vous",
    "amigo",
    "amiga",
    "amici",
    "tutti",
    "allemaal",
    "jij",
    "você",
    "vocês",
    "allihop",
    "du",
    "wszystkim",
];

const JA_HONORIFICS: &[&str] = &["さん", "様", "さま", "くん", "ちゃん", "殿"];
const JA_GENERIC: &[&str] = &[
    "お客",
    "皆",
    "みな",
    "みんな",
    "ご家族",
    "皆様",
    "ファン",
    "会員",
];

struct Token {
    text: String,
    folded: String,
    capitalised: bool,
    sentence_start: bool,
    /// Only spaces since the previous token ("Hallo Lena", not "Hallo, wir").
    joined: bool,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut sentence_start = true;
    let mut next_starts = true;
    let mut punctuated = false;
    let mut joined = false;
    let chars: Vec<char> = text.chars().collect();
    let push = |current: &mut String, starts: bool, joined: bool, out: &mut Vec<Token>| {
        if !current.is_empty() {
            let text = std::mem::take(current);
            out.push(Token {
                folded: fold(&text),
                capitalised: text.chars().next().is_some_and(char::is_uppercase),
                sentence_start: starts,
                joined,
                text,
            });
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let joiner = matches!(c, '-' | '\'' | '’')
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        if c.is_alphanumeric() || joiner {
            if current.is_empty() {
                sentence_start = next_starts;
                next_starts = false;
                joined = !punctuated;
                punctuated = false;
            }
            current.push(c);
        } else {
            let was_word = !current.is_empty();
            push(&mut current, sentence_start, joined, &mut out);
            // "Mr. Frost", "Sra. Rosa": a title's period ends no sentence.
            let title_dot = c == '.'
                && was_word
                && out
                    .last()
                    .is_some_and(|t| TITLES.contains(&t.folded.as_str()));
            if !title_dot {
                punctuated |= !c.is_whitespace();
                if matches!(c, '.' | '!' | '?' | '\n' | '¡' | '¿' | ':') {
                    next_starts = true;
                }
            }
        }
    }
    push(&mut current, sentence_start, joined, &mut out);
    out
}

fn same(a: &str, b: &str) -> bool {
    fold(a) == fold(b)
}

/// The same first name, also in another grammatical case ("Anna" addressed as "Anno",
/// "Piotr" as "Piotrze"): the stem before the case ending agrees.
fn same_first_name(a: &str, b: &str) -> bool {
    let (a, b) = (fold(a), fold(b));
    if a == b {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let shorter = a.len().min(b.len());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    shorter >= 3 && a.len().abs_diff(b.len()) <= 2 && common >= 3 && common + 1 >= shorter
}

/// Every name problem in one slot's text (NFKC, case kept).
pub fn check(text: &str, people: &People) -> Vec<NameProblem> {
    let mut out = Vec::new();
    let first = people.first.map(str::trim).filter(|f| !f.is_empty());
    let last_words: Vec<String> = people
        .last
        .map(|l| {
            tokens(l)
                .into_iter()
                .map(|t| t.text)
                .filter(|w| w.chars().count() >= 2)
                .filter(|w| first.is_none_or(|f| !same(w, f)))
                .collect()
        })
        .unwrap_or_default();
    let others: Vec<&str> = people
        .others
        .iter()
        .map(|o| o.trim())
        .filter(|o| o.chars().count() >= 2)
        .filter(|o| first.is_none_or(|f| !same(o, f)))
        .filter(|o| !people.exempt.contains(&fold(o)))
        .collect();
    if super::lexicon::primary(people.language) == "ja" || text.chars().any(is_cjk) {
        check_ja(text, first, &last_words, &others, &mut out);
    }
    let toks = tokens(text);
    for (i, t) in toks.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        let after_greeting = t.joined
            && prev.is_some_and(|p| {
                GREETINGS.contains(&p.folded.as_str()) || TITLES.contains(&p.folded.as_str())
            });
        let after_first =
            t.joined && prev.is_some_and(|p| first.is_some_and(|f| same_first_name(&p.text, f)));
        if after_greeting && t.capitalised && !NOT_NAMES.contains(&t.folded.as_str()) {
            let is_title = TITLES.contains(&t.folded.as_str());
            if !is_title {
                let problem = if first.is_some_and(|f| same_first_name(&t.text, f)) {
                    None
                } else if last_words.iter().any(|l| same(l, &t.text)) {
                    Some(NameProblem::Surname)
                } else if others.iter().any(|o| same_first_name(o, &t.text)) {
                    Some(NameProblem::OtherCustomer)
                } else if first.is_none() {
                    Some(NameProblem::NameWhenUnknown)
                } else {
                    Some(NameProblem::WrongName)
                };
                out.extend(problem);
                continue;
            }
        }
        if !t.capitalised {
            continue;
        }
        if others.iter().any(|o| same_first_name(o, &t.text)) {
            out.push(NameProblem::OtherCustomer);
        }
        if last_words.iter().any(|l| same(l, &t.text)) {
            let german = super::lexicon::primary(people.language) == "de";
            let as_a_name = after_first
                || after_greeting
                || (!german && !t.sentence_start && !people.exempt.contains(&t.folded));
            if as_a_name {
                out.push(NameProblem::Surname);
            }
        } else if after_first && !people.exempt.contains(&t.folded) {
            // "Ava Thompson": a surname we never gave the model is a made-up one.
            out.push(NameProblem::WrongName);
        }
    }
    out.sort_by_key(|p| *p as u8);
    out.dedup();
    out
}

fn check_ja(
    text: &str,
    first: Option<&str>,
    last_words: &[String],
    others: &[&str],
    out: &mut Vec<NameProblem>,
) {
    for honorific in JA_HONORIFICS {
        for (at, _) in text.match_indices(honorific) {
            let run: String = text[..at]
                .chars()
                .rev()
                .take_while(|c| is_cjk(*c) || c.is_alphabetic())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if run.is_empty() || JA_GENERIC.iter().any(|g| run.ends_with(g)) {
                continue;
            }
            if last_words.iter().any(|l| run.contains(l.as_str())) {
                out.push(NameProblem::Surname);
            } else if others.iter().any(|o| run.ends_with(o)) {
                out.push(NameProblem::OtherCustomer);
            } else if let Some(f) = first {
                if !run.ends_with(f) {
                    out.push(NameProblem::WrongName);
                }
            } else {
                out.push(NameProblem::NameWhenUnknown);
            }
        }
    }
    if others
        .iter()
        .any(|o| o.chars().any(is_cjk) && text.contains(o))
    {
        out.push(NameProblem::OtherCustomer);
    }
    if let Some(f) = first {
        for l in last_words.iter().filter(|l| l.chars().any(is_cjk)) {
            if text.contains(&format!("{l}{f}")) || text.contains(&format!("{l} {f}")) {
                out.push(NameProblem::Surname);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(
        text: &str,
        first: Option<&str>,
        last: Option<&str>,
        lang: &str,
    ) -> Vec<NameProblem> {
        let exempt = HashSet::from(["winter".to_owned()]);
        let others = vec!["Mia".to_owned(), "Lukas".to_owned()];
        check(
            text,
            &People {
                first,
                last,
                others: &others,
                language: lang,
                exempt: &exempt,
            },
        )
    }

    #[test]
    fn the_customers_own_first_name_passes() {
        assert_eq!(
            problems(
                "Hi Jonas, here's your pick.",
                Some("Jonas"),
                Some("Wolf"),
                "en"
            ),
            vec![]
        );
    }

    #[test]
    fn another_customers_name_is_caught() {
        assert_eq!(
            problems("Hallo Mia, schau mal.", Some("Jonas"), None, "de"),
            vec![NameProblem::OtherCustomer]
        );
        assert_eq!(
            problems("Jonas, Mia would love this too.", Some("Jonas"), None, "en"),
            vec![NameProblem::OtherCustomer]
        );
    }

    #[test]
    fn a_name_when_none_is_known_is_caught() {
        assert_eq!(
            problems("Hola Carmen, mira esto.", None, None, "es"),
            vec![NameProblem::NameWhenUnknown]
        );
        assert_eq!(problems("Hola, mira esto.", None, None, "es"), vec![]);
    }

    #[test]
    fn the_surname_as_a_name_is_caught_and_as_a_word_is_not() {
        assert_eq!(
            problems("Hi Jonas Rose!", Some("Jonas"), Some("Rose"), "en"),
            vec![NameProblem::Surname]
        );
        assert_eq!(
            problems("Dear Ms Rose,", Some("Jonas"), Some("Rose"), "en"),
            vec![NameProblem::Surname]
        );
        assert_eq!(
            problems(
                "A rose-gold finish for you.",
                Some("Jonas"),
                Some("Rose"),
                "en"
            ),
            vec![]
        );
        assert_eq!(
            problems(
                "Warm durch den Winter, Jonas.",
                Some("Jonas"),
                Some("Winter"),
                "de"
            ),
            vec![]
        );
    }

    #[test]
    fn a_made_up_surname_after_the_first_name_is_caught() {
        assert_eq!(
            problems(
                "Jonas Thompson, good to see you.",
                Some("Jonas"),
                None,
                "en"
            ),
            vec![NameProblem::WrongName]
        );
        assert_eq!(
            problems("Jonas, good to see you.", Some("Jonas"), None, "en"),
            vec![]
        );
    }

    #[test]
    fn japanese_honorifics_name_the_person() {
        assert_eq!(
            problems("美咲さん、こんにちは。", Some("美咲"), Some("山田"), "ja"),
            vec![]
        );
        assert_eq!(
            problems("山田さん、こんにちは。", Some("美咲"), Some("山田"), "ja"),
            vec![NameProblem::Surname]
        );
        assert_eq!(
            problems("花子さん、こんにちは。", None, None, "ja"),
            vec![NameProblem::NameWhenUnknown]
        );
        assert_eq!(problems("お客様、こんにちは。", None, None, "ja"), vec![]);
    }
}
