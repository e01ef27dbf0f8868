//! JSON Schema the derive cannot say on its own: item rules of lists, the slot ranges, and the
//! offer's per-kind fields. Built from the same constants the server's checks use, so the
//! document and the checks cannot drift apart (tests/e2e/api_fuzz.rs sends schema-valid
//! requests and fails on any refused for its shape).

use crate::personalize::settings::{
    BODY_CHARS, MAX_DESCRIPTORS, MAX_DESCRIPTOR_CHARS, MAX_RULES, MAX_RULE_CHARS, PREHEADER_CHARS,
    SUBJECT_CHARS,
};
use serde_json::{json, Value};
use std::ops::RangeInclusive;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// One line with something besides spaces in it (the server trims before it counts).
pub const ONE_LINE_NOT_BLANK: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";
/// A positive decimal of at most 7 whole digits and 2 decimals, e.g. "10" or "75.50".
pub const POSITIVE_DECIMAL: &str =
    r"^(?:[1-9][0-9]{0,6}(?:\.[0-9]{1,2})?|0?\.(?:[1-9][0-9]?|0[1-9]))$";
/// An offer code.
pub const OFFER_CODE: &str = r"^[A-Za-z0-9_-]{3,32}$";
/// A Klaviyo list, segment or profile id.
pub const KLAVIYO_ID: &str = r"^[A-Za-z0-9]{1,64}$";

/// A schema from its JSON form (a literal the tests load, so a typo fails them).
pub fn from_json(value: Value) -> RefOr<Schema> {
    match value.get("oneOf") {
        Some(items) => {
            let mut one_of = utoipa::openapi::schema::OneOfBuilder::new();
            for item in items.as_array().into_iter().flatten() {
                one_of = one_of.item(from_json(item.clone()));
            }
            if let Some(d) = value.get("description").and_then(Value::as_str) {
                one_of = one_of.description(Some(d));
            }
            RefOr::T(Schema::OneOf(one_of.build()))
        }
        None => serde_json::from_value(value).expect("a valid schema literal"),
    }
}

fn slot(range: RangeInclusive<u16>) -> RefOr<Schema> {
    // `null` (the slot is not written) or a limit; a type list rather than a oneOf keeps the
    // schema flat for generators.
    from_json(
        json!({"type": ["object", "null"], "required": ["max_chars"], "properties": {
        "max_chars": {"type": "integer", "minimum": range.start(), "maximum": range.end()}}}),
    )
}

pub fn subject_slot() -> RefOr<Schema> {
    slot(SUBJECT_CHARS)
}
pub fn preheader_slot() -> RefOr<Schema> {
    slot(PREHEADER_CHARS)
}
pub fn body_slot() -> RefOr<Schema> {
    slot(BODY_CHARS)
}

fn lines(max_items: usize, max_chars: usize, description: &str) -> RefOr<Schema> {
    from_json(json!({
        "type": "array", "maxItems": max_items, "description": description,
        "items": {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": ONE_LINE_NOT_BLANK}
    }))
}

pub fn descriptors() -> RefOr<Schema> {
    lines(
        MAX_DESCRIPTORS,
        MAX_DESCRIPTOR_CHARS,
        "Short adjectives, e.g. \"warm\", \"outdoorsy\".",
    )
}
pub fn writing_rules() -> RefOr<Schema> {
    lines(
        MAX_RULES,
        MAX_RULE_CHARS,
        "Concrete rules, e.g. \"no exclamation marks\".",
    )
}

/// `POST /preview`'s profiles: Klaviyo profile ids or email addresses, 1 to 10.
pub fn preview_profiles() -> RefOr<Schema> {
    from_json(json!({
        "type": "array", "minItems": 1, "maxItems": super::MAX_PREVIEW_PROFILES,
        "description": "1 to 10 Klaviyo profile ids or email addresses.",
        "items": {"oneOf": [
            {"type": "string", "pattern": KLAVIYO_ID},
            {"type": "string", "format": "email", "maxLength": 254}
        ]}
    }))
}

/// The offer, one branch per kind: each names the fields its kind allows (and requires), as
/// `Offer::validate` checks them.
pub fn offer() -> RefOr<Schema> {
    let common = json!({
        "min_spend": {"type": "string", "pattern": POSITIVE_DECIMAL,
            "description": "The least order value the offer needs (for free shipping: the threshold)."},
        "scope": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": ONE_LINE_NOT_BLANK,
            "description": "What the offer covers, in the merchant's words (\"outerwear\"); absent: everything."},
        "ends_on": {"type": "string", "format": "date", "description": "The last day of the offer, `YYYY-MM-DD`."},
        "code": {"type": "string", "pattern": OFFER_CODE, "description": "The code that redeems it."}
    });
    let branch = |kind: &str, required: &[&str], own: Value| {
        let mut properties = common.as_object().cloned().unwrap_or_default();
        properties.insert("kind".into(), json!({"type": "string", "enum": [kind]}));
        properties.extend(own.as_object().cloned().unwrap_or_default());
        json!({"type": "object", "title": kind, "required": required,
               "properties": properties, "additionalProperties": false})
    };
    from_json(json!({
        "description": "What the merchant offers; the copy may state this offer and no other. `kind: none` (the default, also when absent) states none and has no other fields.",
        "oneOf": [
            {"type": "object", "title": "none", "additionalProperties": false,
             "properties": {"kind": {"type": "string", "enum": ["none"]}}},
            branch("percent_off", &["kind", "percent"],
                json!({"percent": {"type": "integer", "minimum": 1, "maximum": 90}})),
            branch("amount_off", &["kind", "amount"],
                json!({"amount": {"type": "string", "pattern": POSITIVE_DECIMAL,
                    "description": "The amount in the shop's currency, a decimal string such as \"10.00\"."}})),
            branch("free_shipping", &["kind"], json!({})),
        ]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personalize::Offer;

    #[test]
    fn every_positive_decimal_the_pattern_allows_is_one_the_offer_accepts() {
        for amount in ["1", "10.00", "9999999.99", "0.01", ".5", "0.5", "12.3"] {
            let offer: Offer = serde_json::from_value(
                json!({"kind": "amount_off", "amount": amount, "min_spend": amount}),
            )
            .unwrap();
            assert_eq!(offer.validate(), Ok(()), "{amount}");
        }
    }

    #[test]
    fn the_schema_literals_load() {
        for schema in [offer(), descriptors(), subject_slot()] {
            let text = serde_json::to_string(&schema).unwrap();
            assert!(text.len() > 50, "{text}");
        }
        let offer = serde_json::to_value(offer()).unwrap();
        assert_eq!(offer["oneOf"].as_array().map(Vec::len), Some(4), "{offer}");
        assert_eq!(offer["oneOf"][1]["additionalProperties"], false);
        assert_eq!(
            offer["oneOf"][2]["properties"]["amount"]["pattern"],
            POSITIVE_DECIMAL
        );
        assert_eq!(offer["oneOf"][3]["properties"]["ends_on"]["format"], "date");
    }
}
