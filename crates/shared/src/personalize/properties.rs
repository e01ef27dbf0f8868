//! The profile properties a run writes. Each run writes to a named *property set*
//! (`sp_<set>_subject`, `sp_<set>_body`, …) so campaigns can be live side by side, and every
//! profile of a run ends with the set either freshly written by this run or cleared, carrying
//! the run id and the profile's outcome: a template that guards on
//! `sp_<set>_run_id == '<run>' and sp_<set>_outcome == 'personalized'` can never show an older
//! run's copy.

use super::accounting::Outcome;
use super::copy::{ValidCopy, MAX_PRODUCT_SLOTS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The property set a run writes when the merchant names none.
pub const DEFAULT_PROPERTY_SET: &str = "campaign";
/// Set names are short: Klaviyo shows property names in its editor.
pub const MAX_PROPERTY_SET_CHARS: usize = 24;

/// A validated property-set name: lower-case ASCII letters, digits and `_`, starting with a
/// letter (so `sp_<set>_body` is a valid Django variable in a Klaviyo template).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PropertySet(String);

impl Default for PropertySet {
    fn default() -> Self {
        Self(DEFAULT_PROPERTY_SET.to_owned())
    }
}

impl TryFrom<String> for PropertySet {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= MAX_PROPERTY_SET_CHARS
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.ends_with('_');
        if ok {
            Ok(Self(name))
        } else {
            Err(format!(
                "property_set must be 1 to {MAX_PROPERTY_SET_CHARS} lower-case letters, digits or \
                 underscores, starting with a letter"
            ))
        }
    }
}

impl From<PropertySet> for String {
    fn from(set: PropertySet) -> String {
        set.0
    }
}

/// The outcome as a template reads it (`sp_<set>_outcome`).
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Written => "personalized",
        Outcome::Holdout => "holdout",
        Outcome::Skipped(_) => "skipped",
        Outcome::Failed(_) => "failed",
    }
}

impl PropertySet {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sp_<set>_<field>`.
    pub fn key(&self, field: &str) -> String {
        format!("sp_{}_{field}", self.0)
    }

    /// The copy fields of the set (cleared on every profile the run does not personalize).
    pub fn copy_keys(&self) -> Vec<String> {
        let mut keys = vec![self.key("subject"), self.key("preheader"), self.key("body")];
        for n in 1..=MAX_PRODUCT_SLOTS {
            for field in ["title", "url", "image_url", "price"] {
                keys.push(self.key(&format!("product_{n}_{field}")));
            }
        }
        keys
    }

    /// Every key the set owns, copy and bookkeeping.
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys = self.copy_keys();
        keys.extend(
            ["run_id", "outcome", "reason", "generated_at"]
                .iter()
                .map(|f| self.key(f)),
        );
        keys
    }

    /// The properties for a personalized profile: every copy key (null, which unsets it, where
    /// this run fills no slot) plus the run's bookkeeping.
    pub fn copy_properties(
        &self,
        copy: &ValidCopy,
        run_id: &str,
        generated_at: i64,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        let text = |v: Option<&str>| {
            v.map(|s| Value::String(s.to_owned()))
                .unwrap_or(Value::Null)
        };
        m.insert(self.key("subject"), text(copy.subject()));
        m.insert(self.key("preheader"), text(copy.preheader()));
        m.insert(self.key("body"), text(copy.body()));
        for n in 1..=MAX_PRODUCT_SLOTS {
            let p = copy.products().get(n - 1);
            let mut put = |field: &str, value: Option<&String>| {
                m.insert(
                    self.key(&format!("product_{n}_{field}")),
                    value
                        .map(|v| Value::String(v.clone()))
                        .unwrap_or(Value::Null),
                );
            };
            put("title", p.map(|p| &p.title));
            put("url", p.map(|p| &p.url));
            put("image_url", p.map(|p| &p.image_url));
            put("price", p.map(|p| &p.price));
        }
        self.bookkeeping(&mut m, run_id, generated_at, &Outcome::Written);
        m
    }

    /// The properties for a profile this run does not personalize (holdout, skipped, failed,
    /// cancelled): the copy keys cleared, the run id and the outcome with its reason.
    pub fn cleared_properties(
        &self,
        run_id: &str,
        generated_at: i64,
        outcome: &Outcome,
    ) -> Map<String, Value> {
        let mut m: Map<String, Value> = self
            .copy_keys()
            .into_iter()
            .map(|k| (k, Value::Null))
            .collect();
        self.bookkeeping(&mut m, run_id, generated_at, outcome);
        m
    }

    fn bookkeeping(
        &self,
        m: &mut Map<String, Value>,
        run_id: &str,
        generated_at: i64,
        outcome: &Outcome,
    ) {
        m.insert(self.key("run_id"), Value::String(run_id.to_owned()));
        m.insert(
            self.key("outcome"),
            Value::String(outcome_label(outcome).to_owned()),
        );
        m.insert(
            self.key("reason"),
            outcome
                .reason()
                .map(|r| Value::String(r.to_owned()))
                .unwrap_or(Value::Null),
        );
        m.insert(
            self.key("generated_at"),
            Value::String(crate::domain::rfc3339(generated_at)),
        );
    }

    /// The Klaviyo template snippet that shows this run's body, guarded so that nothing older
    /// (or another run's copy) is ever shown.
    pub fn template_guard(&self, run_id: &str) -> String {
        format!(
            "{{% if person.{run} == '{run_id}' and person.{outcome} == 'personalized' %}}\
             {{{{ person.{body} }}}}{{% endif %}}",
            run = self.key("run_id"),
            outcome = self.key("outcome"),
            body = self.key("body"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CatalogProduct, Money};
    use crate::personalize::accounting::{FailReason, SkipReason};

    fn set(name: &str) -> PropertySet {
        PropertySet::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn names_are_template_variables() {
        assert!(PropertySet::try_from("winter".to_owned()).is_ok());
        assert!(PropertySet::try_from("winter_2026".to_owned()).is_ok());
        for bad in [
            "",
            "Winter",
            "2winter",
            "win-ter",
            "winter_",
            "a b",
            "ü",
            &"x".repeat(25),
        ] {
            assert!(
                PropertySet::try_from(bad.to_owned()).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(PropertySet::default().key("body"), "sp_campaign_body");
    }

    #[test]
    fn every_outcome_clears_the_copy_and_names_run_and_reason() {
        let s = set("winter");
        for outcome in [
            Outcome::Holdout,
            Outcome::Skipped(SkipReason::ValidationFailed),
            Outcome::Failed(FailReason::Bedrock),
        ] {
            let m = s.cleared_properties("01JRUN", 0, &outcome);
            assert!(s.copy_keys().iter().all(|k| m[k].is_null()));
            assert_eq!(m["sp_winter_run_id"], "01JRUN");
            assert_eq!(m["sp_winter_outcome"], outcome_label(&outcome));
            assert_eq!(m.len(), s.all_keys().len());
        }
        let m = s.cleared_properties("r", 0, &Outcome::Skipped(SkipReason::Cancelled));
        assert_eq!(m["sp_winter_reason"], "cancelled");
        assert_eq!(m["sp_winter_outcome"], "skipped");
    }

    #[test]
    fn personalized_copy_fills_the_set_and_unsets_empty_slots() {
        let (a, b) = (product(1), product(2));
        let copy = ValidCopy::new(Some("Subject".into()), None, Some("Body".into()), &[&a, &b]);
        let s = set("winter");
        let props = s.copy_properties(&copy, "01JRUN", 1_767_225_600);
        assert_eq!(props["sp_winter_subject"], "Subject");
        assert_eq!(
            props["sp_winter_preheader"],
            Value::Null,
            "a disabled slot is cleared"
        );
        assert_eq!(props["sp_winter_body"], "Body");
        assert_eq!(props["sp_winter_product_1_title"], "Product 1");
        assert_eq!(
            props["sp_winter_product_1_url"],
            "https://shop.example/products/product-1"
        );
        assert_eq!(
            props["sp_winter_product_1_image_url"],
            "https://cdn.example/1.jpg"
        );
        assert_eq!(props["sp_winter_product_1_price"], "$19.50");
        assert_eq!(props["sp_winter_product_2_title"], "Product 2");
        assert_eq!(props["sp_winter_product_3_title"], Value::Null);
        assert_eq!(props["sp_winter_run_id"], "01JRUN");
        assert_eq!(props["sp_winter_outcome"], "personalized");
        assert_eq!(props["sp_winter_reason"], Value::Null);
        assert_eq!(props["sp_winter_generated_at"], "2026-01-01T00:00:00Z");
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        let mut all = s.all_keys();
        all.sort();
        assert_eq!(keys, all.iter().collect::<Vec<_>>());
    }

    #[test]
    fn sets_never_share_a_key() {
        let (a, b) = (set("winter"), set("winter_sale"));
        let a_keys = a.all_keys();
        assert!(b.all_keys().iter().all(|k| !a_keys.contains(k)));
    }

    #[test]
    fn the_guard_names_the_run_and_the_outcome() {
        let g = set("winter").template_guard("01JRUN");
        assert!(g.contains("person.sp_winter_run_id == '01JRUN'"));
        assert!(g.contains("person.sp_winter_outcome == 'personalized'"));
        assert!(g.contains("{{ person.sp_winter_body }}"));
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
}
