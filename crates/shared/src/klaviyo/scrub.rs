//! Removing personal data from text Klaviyo sends back (import error details can echo the
//! payload): anything that looks like an email address or a phone number is replaced.

pub const EMAIL_MARK: &str = "[email]";
pub const PHONE_MARK: &str = "[phone]";

/// Characters that end a token around an `@` (whitespace, quotes, brackets, separators).
fn breaks_token(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';'
        )
}

fn phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '+' | '/')
}

/// Replaces emails (any token containing `@` with text on both sides) and phone-like runs
/// (7 or more digits, with `+ - . ( ) /` or spaces between them, not glued to letters, so ids
/// such as ULIDs survive) by markers.
pub fn scrub_personal_data(text: &str) -> String {
    scrub_phones(&scrub_emails(text))
}

fn scrub_emails(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // The token starting here: up to the next break.
        if breaks_token(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !breaks_token(chars[i]) {
            i += 1;
        }
        let token = &chars[start..i];
        let looks_like_email = token
            .iter()
            .position(|&c| c == '@')
            .is_some_and(|at| at > 0 && token[at + 1..].iter().any(|c| c.is_alphanumeric()));
        if looks_like_email {
            out.push_str(EMAIL_MARK);
            // Keep sentence punctuation that followed the address.
            let trailing: String = token
                .iter()
                .rev()
                .take_while(|c| matches!(c, '.' | ':' | '!' | '?'))
                .collect();
            out.extend(trailing.chars().rev());
        } else {
            out.extend(token.iter());
        }
    }
    out
}

fn scrub_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let glued_before = i > 0 && chars[i - 1].is_alphanumeric();
        if (c.is_ascii_digit() || c == '+' || c == '(') && !glued_before {
            let mut end = i;
            while end < chars.len() && phone_char(chars[end]) {
                end += 1;
            }
            // The run ends at its last digit.
            while end > i && !chars[end - 1].is_ascii_digit() {
                end -= 1;
            }
            let digits = chars[i..end].iter().filter(|c| c.is_ascii_digit()).count();
            let glued_after = end < chars.len() && chars[end].is_alphanumeric();
            if digits >= 7 && !glued_after {
                out.push_str(PHONE_MARK);
                i = end;
                continue;
            }
            // Not a phone: copy the whole digit run so its tail is not retried as a start.
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_replaced_and_the_rest_kept() {
        assert_eq!(
            scrub_personal_data("Invalid email address: jane.doe@localhost."),
            "Invalid email address: [email]."
        );
        assert_eq!(
            scrub_personal_data("'bob+x@example.co.uk' is taken"),
            "'[email]' is taken"
        );
        assert_eq!(scrub_personal_data("email=\"a@b\""), "email=\"[email]\"");
        assert_eq!(
            scrub_personal_data("no at-sign here @ all"),
            "no at-sign here @ all"
        );
    }

    #[test]
    fn phone_numbers_are_replaced_but_ids_and_small_numbers_survive() {
        assert_eq!(
            scrub_personal_data("Invalid phone number +1 (555) 123-4567."),
            "Invalid phone number [phone]."
        );
        assert_eq!(
            scrub_personal_data("phone 07700900123 rejected"),
            "phone [phone] rejected"
        );
        assert_eq!(scrub_personal_data("+447700900123"), "[phone]");
        let ulid = "A profile with id 01J0000000000000000000000Z does not exist.";
        assert_eq!(scrub_personal_data(ulid), ulid);
        assert_eq!(
            scrub_personal_data("at most 10000 profiles, 100 KB"),
            "at most 10000 profiles, 100 KB"
        );
        assert_eq!(
            scrub_personal_data("profile 12 of 150"),
            "profile 12 of 150"
        );
    }
}
