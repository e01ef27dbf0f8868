//! The model's answer and what we write. `GeneratedCopy` is what the `emit_copy` tool input
//! said (untrusted); `ValidCopy` exists only after the validator passed it, and only it can be
//! rendered into Klaviyo profile properties.

use super::accounting::Group;
use super::text::price_text;
use crate::domain::{rfc3339, CatalogProduct};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
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

/// Property keys we own on a profile. Writing all of them every time (null when unused)
/// clears what an earlier run left in a slot this run does not fill.
pub const COPY_KEYS: [&str; 15] = [
    "sp_subject",
    "sp_preheader",
    "sp_body",
    "sp_product_1_title",
    "sp_product_1_url",
    "sp_product_1_image_url",
    "sp_product_1_price",
    "sp_product_2_title",
    "sp_product_2_url",
    "sp_product_2_image_url",
    "sp_product_2_price",
    "sp_product_3_title",
    "sp_product_3_url",
    "sp_product_3_image_url",
    "sp_product_3_price",
];

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

    /// The flat `sp_` properties for the profile: every key of `COPY_KEYS` (null when this run
    /// does not fill it), plus `sp_run_id`, `sp_generated_at` (RFC 3339) and `sp_group`.
    pub fn to_properties(
        &self,
        run_id: &str,
        generated_at: i64,
        group: Group,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        let text = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        m.insert("sp_subject".into(), text(&self.subject));
        m.insert("sp_preheader".into(), text(&self.preheader));
        m.insert("sp_body".into(), text(&self.body));
        for n in 1..=MAX_PRODUCT_SLOTS {
            let p = self.products.get(n - 1);
            let field = |f: fn(&RenderedProduct) -> &String| {
                p.map(|p| Value::String(f(p).clone()))
                    .unwrap_or(Value::Null)
            };
            m.insert(format!("sp_product_{n}_title"), field(|p| &p.title));
            m.insert(format!("sp_product_{n}_url"), field(|p| &p.url));
            m.insert(format!("sp_product_{n}_image_url"), field(|p| &p.image_url));
            m.insert(format!("sp_product_{n}_price"), field(|p| &p.price));
        }
        run_keys(&mut m, run_id, generated_at, group);
        m
    }
}

/// The properties for a holdout profile: no copy (earlier copy cleared, so a template's
/// `|default:''` shows nothing personal), but the run and group so uplift can be measured.
pub fn holdout_properties(run_id: &str, generated_at: i64) -> Map<String, Value> {
    let mut m: Map<String, Value> = COPY_KEYS
        .iter()
        .map(|k| ((*k).to_owned(), Value::Null))
        .collect();
    run_keys(&mut m, run_id, generated_at, Group::Holdout);
    m
}

fn run_keys(m: &mut Map<String, Value>, run_id: &str, generated_at: i64, group: Group) {
    m.insert("sp_run_id".into(), Value::String(run_id.to_owned()));
    m.insert(
        "sp_generated_at".into(),
        Value::String(rfc3339(generated_at)),
    );
    m.insert("sp_group".into(), Value::String(group.as_str().to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
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

    fn product(n: u64) -> CatalogProduct {
        CatalogProduct {
            id: format!("gid://shopify/Product/{n}"),
            title: format!("Product {n}"),
            description: String::new(),
            handle: format!("product-{n}"),
            url: format!("https://shop.example/products/product-{n}"),
            tags: vec![],
            product_type: "T".into(),
            vendor: "V".into(),
            price_min: Money {
                amount: "19.5".into(),
                currency: "USD".into(),
            },
            price_max: Money {
                amount: "19.5".into(),
                currency: "USD".into(),
            },
            image_url: Some(format!("https://cdn.example/{n}.jpg")),
            available: true,
            updated_at: String::new(),
        }
    }

    #[test]
    fn valid_copy_renders_flat_sp_properties() {
        let (a, b) = (product(1), product(2));
        let copy = ValidCopy::new(Some("Subject".into()), None, Some("Body".into()), &[&a, &b]);
        let props = copy.to_properties("01JRUN", 1_767_225_600, Group::Personalized);
        assert_eq!(props["sp_subject"], "Subject");
        assert_eq!(
            props["sp_preheader"],
            Value::Null,
            "a disabled slot is cleared"
        );
        assert_eq!(props["sp_body"], "Body");
        assert_eq!(props["sp_product_1_title"], "Product 1");
        assert_eq!(
            props["sp_product_1_url"],
            "https://shop.example/products/product-1"
        );
        assert_eq!(props["sp_product_1_image_url"], "https://cdn.example/1.jpg");
        assert_eq!(props["sp_product_1_price"], "$19.50");
        assert_eq!(props["sp_product_2_title"], "Product 2");
        assert_eq!(props["sp_product_3_title"], Value::Null);
        assert_eq!(props["sp_run_id"], "01JRUN");
        assert_eq!(props["sp_generated_at"], "2026-01-01T00:00:00Z");
        assert_eq!(props["sp_group"], "personalized");
        assert_eq!(props.len(), COPY_KEYS.len() + 3);
        assert!(COPY_KEYS.iter().all(|k| props.contains_key(*k)));
        assert!(props
            .keys()
            .all(|k| k.starts_with("sp_") && !k.contains(' ')));
    }

    #[test]
    fn holdout_properties_clear_copy_and_mark_the_group() {
        let props = holdout_properties("01JRUN", 0);
        assert_eq!(props["sp_group"], "holdout");
        assert_eq!(props["sp_run_id"], "01JRUN");
        assert!(COPY_KEYS.iter().all(|k| props[*k].is_null()));
    }
}
