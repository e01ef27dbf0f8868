//! The model's answer and what we write. `GeneratedCopy` is what the `emit_copy` tool input
//! said (untrusted); `ValidCopy` exists only after the validator passed it, and only it can be
//! rendered into Klaviyo profile properties.

use super::text::price_text;
use crate::domain::CatalogProduct;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// One customer's copy as the model returned it. A slot the model left out is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeneratedCopy {
    pub subject: String,
    pub preheader: String,
    pub body: String,
    pub product_refs: Vec<String>,
}

/// The tool input was not the shape we asked for. Messages name refs and fields only, never
/// the copy itself, so they are safe to log and to send back in a repair prompt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("the tool input must be an object with a `copies` array")]
    NoCopies,
    #[error("copies[{index}] must be an object")]
    EntryNotObject { index: usize },
    #[error("copies[{index}] has no profile_ref")]
    MissingProfileRef { index: usize },
    #[error("copies[{index}] names customer {profile_ref}, who is not in this request")]
    UnknownProfile { index: usize, profile_ref: String },
    #[error("customer {profile_ref} appears more than once in copies")]
    DuplicateProfile { profile_ref: String },
    #[error("the entry for {profile_ref} has `{field}` that is not {expected}")]
    WrongType {
        profile_ref: String,
        field: &'static str,
        expected: &'static str,
    },
}

/// Parses `emit_copy`'s input. Lenient where it costs nothing (a bare array, a single entry,
/// product refs given as plain strings, a missing slot), strict where a guess could attach copy
/// to the wrong customer (unknown or duplicate profile refs). Customers the model left out are
/// simply absent from the result; `missing_profiles` lists them.
pub fn parse_tool_output(
    input: &Value,
    expected_refs: &[String],
) -> Result<Vec<(String, GeneratedCopy)>, OutputError> {
    let entries: Vec<&Value> = match input {
        Value::Object(o) => match o.get("copies") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(_) => return Err(OutputError::NoCopies),
            None if o.contains_key("profile_ref") => vec![input],
            None => return Err(OutputError::NoCopies),
        },
        Value::Array(a) => a.iter().collect(),
        _ => return Err(OutputError::NoCopies),
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let obj = entry
            .as_object()
            .ok_or(OutputError::EntryNotObject { index })?;
        let profile_ref = obj
            .get("profile_ref")
            .and_then(Value::as_str)
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .ok_or(OutputError::MissingProfileRef { index })?;
        if !expected_refs.contains(&profile_ref) {
            return Err(OutputError::UnknownProfile { index, profile_ref });
        }
        if !seen.insert(profile_ref.clone()) {
            return Err(OutputError::DuplicateProfile { profile_ref });
        }
        let slot = |field: &'static str| -> Result<String, OutputError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(OutputError::WrongType {
                    profile_ref: profile_ref.clone(),
                    field,
                    expected: "a string",
                }),
            }
        };
        let copy = GeneratedCopy {
            subject: slot("subject")?,
            preheader: slot("preheader")?,
            body: slot("body")?,
            product_refs: product_refs(obj.get("products"), &profile_ref)?,
        };
        out.push((profile_ref, copy));
    }
    Ok(out)
}

fn product_refs(value: Option<&Value>, profile_ref: &str) -> Result<Vec<String>, OutputError> {
    let wrong = || OutputError::WrongType {
        profile_ref: profile_ref.to_owned(),
        field: "products",
        expected: "a list of {product_ref}",
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.trim().to_owned()),
                Value::Object(o) => o
                    .get("product_ref")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(wrong),
                _ => Err(wrong()),
            })
            .collect(),
        Some(_) => Err(wrong()),
    }
}

/// Expected customers the tool output did not answer for.
pub fn missing_profiles(
    parsed: &[(String, GeneratedCopy)],
    expected_refs: &[String],
) -> Vec<String> {
    expected_refs
        .iter()
        .filter(|r| !parsed.iter().any(|(p, _)| p == *r))
        .cloned()
        .collect()
}

/// The most recommended products a profile can carry.
pub const MAX_PRODUCT_SLOTS: usize = 3;

/// Copy that passed every validator rule, with its products resolved from the catalog. Only
/// the validator constructs it, so nothing unvalidated can reach `to_properties`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidCopy {
    subject: Option<String>,
    preheader: Option<String>,
    body: Option<String>,
    products: Vec<RenderedProduct>,
}

/// A recommended product exactly as it is written: catalog title, URL, image and price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RenderedProduct {
    pub title: String,
    pub url: String,
    pub image_url: String,
    pub price: String,
}

impl RenderedProduct {
    pub fn from_catalog(p: &CatalogProduct) -> Self {
        Self {
            title: p.title.clone(),
            url: p.url.clone(),
            image_url: p.image_url.clone().unwrap_or_default(),
            price: price_text(&p.price_min),
        }
    }
}

impl ValidCopy {
    pub(super) fn new(
        subject: Option<String>,
        preheader: Option<String>,
        body: Option<String>,
        products: &[&CatalogProduct],
    ) -> Self {
        Self {
            subject,
            preheader,
            body,
            products: products
                .iter()
                .take(MAX_PRODUCT_SLOTS)
                .map(|p| RenderedProduct::from_catalog(p))
                .collect(),
        }
    }

    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    pub fn preheader(&self) -> Option<&str> {
        self.preheader.as_deref()
    }
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
    pub fn products(&self) -> &[RenderedProduct] {
        &self.products
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_a_batch_of_copies() {
        let input = json!({"copies": [
            {"profile_ref": "C1", "subject": "S1", "preheader": "P1", "body": "B1", "products": [{"product_ref": "P2"}, {"product_ref": "P1"}]},
            {"profile_ref": "C2", "subject": "S2", "preheader": "P2", "body": "B2", "products": [{"product_ref": "P1"}]}
        ]});
        let out = parse_tool_output(&input, &refs(&["C1", "C2"])).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            (
                "C1".to_owned(),
                GeneratedCopy {
                    subject: "S1".into(),
                    preheader: "P1".into(),
                    body: "B1".into(),
                    product_refs: refs(&["P2", "P1"])
                }
            )
        );
    }

    #[test]
    fn accepts_a_single_entry_or_a_bare_array_and_string_refs() {
        let single = json!({"profile_ref": "C1", "body": "B", "products": ["P1"]});
        let out = parse_tool_output(&single, &refs(&["C1"])).unwrap();
        assert_eq!(out[0].1.product_refs, refs(&["P1"]));
        assert_eq!(
            out[0].1.subject, "",
            "a missing slot is empty, for the validator to judge"
        );
        let bare = json!([{"profile_ref": "C1", "products": []}]);
        assert_eq!(parse_tool_output(&bare, &refs(&["C1"])).unwrap().len(), 1);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let expected = refs(&["C1"]);
        let cases = [
            (json!(null), OutputError::NoCopies),
            (json!("copy"), OutputError::NoCopies),
            (json!({"copies": "nope"}), OutputError::NoCopies),
            (json!({"text": "hi"}), OutputError::NoCopies),
            (
                json!({"copies": [5]}),
                OutputError::EntryNotObject { index: 0 },
            ),
            (
                json!({"copies": [{"subject": "x"}]}),
                OutputError::MissingProfileRef { index: 0 },
            ),
            (
                json!({"copies": [{"profile_ref": 1}]}),
                OutputError::MissingProfileRef { index: 0 },
            ),
            (
                json!({"copies": [{"profile_ref": "C1", "subject": 5}]}),
                OutputError::WrongType {
                    profile_ref: "C1".into(),
                    field: "subject",
                    expected: "a string",
                },
            ),
            (
                json!({"copies": [{"profile_ref": "C1", "products": "P1"}]}),
                OutputError::WrongType {
                    profile_ref: "C1".into(),
                    field: "products",
                    expected: "a list of {product_ref}",
                },
            ),
            (
                json!({"copies": [{"profile_ref": "C1", "products": [{"ref": "P1"}]}]}),
                OutputError::WrongType {
                    profile_ref: "C1".into(),
                    field: "products",
                    expected: "a list of {product_ref}",
                },
            ),
        ];
        for (input, err) in cases {
            assert_eq!(parse_tool_output(&input, &expected), Err(err), "{input}");
        }
    }

    #[test]
    fn unknown_or_repeated_customers_are_rejected() {
        let unknown = json!({"copies": [{"profile_ref": "C7"}]});
        assert_eq!(
            parse_tool_output(&unknown, &refs(&["C1"])),
            Err(OutputError::UnknownProfile {
                index: 0,
                profile_ref: "C7".into()
            })
        );
        let twice = json!({"copies": [{"profile_ref": "C1"}, {"profile_ref": "C1"}]});
        assert_eq!(
            parse_tool_output(&twice, &refs(&["C1"])),
            Err(OutputError::DuplicateProfile {
                profile_ref: "C1".into()
            })
        );
    }

    #[test]
    fn customers_left_out_are_reported_missing() {
        let input = json!({"copies": [{"profile_ref": "C2"}]});
        let expected = refs(&["C1", "C2", "C3"]);
        let out = parse_tool_output(&input, &expected).unwrap();
        assert_eq!(missing_profiles(&out, &expected), refs(&["C1", "C3"]));
    }
}
