//! The offer a campaign or flow may state, as structured fields next to the brief.
//!
//! The brief is free text for theme and tone and grants nothing: a negated brief ("no discounts
//! this time") cannot unlock the word it negates, and a number in it is not a price. What the
//! copy may promise comes only from here, so the grounding gate can check copy in any language
//! against fields rather than against the brief's wording.

use serde::{Deserialize, Serialize};
use time::Date;

/// What the merchant offers. `kind: none` (the default) means the copy states no offer at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    #[serde(default)]
    pub kind: OfferKind,
    /// `percent_off`: the percentage, 1–90.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::whole::optional"
    )]
    pub percent: Option<u8>,
    /// `amount_off`: the amount in the shop's currency, a decimal string such as "10.00".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// The least order value the offer needs (for free shipping: the threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_spend: Option<String>,
    /// What the offer covers, in the merchant's words ("outerwear"); absent: everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The last day of the offer, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_on: Option<String>,
    /// The code that redeems it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Documented as one schema per kind (crate::api::schema::offer): which fields a kind allows
/// is more than the derive can say.
impl utoipa::PartialSchema for Offer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::api::schema::offer()
    }
}
impl utoipa::ToSchema for Offer {}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    #[default]
    None,
    PercentOff,
    AmountOff,
    FreeShipping,
}

const MAX_SCOPE_CHARS: usize = 80;

impl Offer {
    pub fn none() -> Self {
        Self::default()
    }

    /// Every rule broken, as sentences for a problem document.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let is = |k: OfferKind| self.kind == k;
        match (self.percent, is(OfferKind::PercentOff)) {
            (None, true) => errors.push("offer.percent is required for percent_off".into()),
            (Some(p), true) if !(1..=90).contains(&p) => {
                errors.push("offer.percent must be between 1 and 90".into())
            }
            (Some(_), false) => errors.push("offer.percent is only for percent_off".into()),
            _ => {}
        }
        match (&self.amount, is(OfferKind::AmountOff)) {
            (None, true) => errors.push("offer.amount is required for amount_off".into()),
            (Some(a), true) if cents(a).is_none_or(|c| c <= 0) => {
                errors.push("offer.amount must be a positive decimal such as 10.00".into())
            }
            (Some(_), false) => errors.push("offer.amount is only for amount_off".into()),
            _ => {}
        }
        if let Some(m) = &self.min_spend {
            if cents(m).is_none_or(|c| c <= 0) {
                errors.push("offer.min_spend must be a positive decimal such as 75.00".into());
            }
        }
        if is(OfferKind::None)
            && (self.min_spend.is_some()
                || self.scope.is_some()
                || self.ends_on.is_some()
                || self.code.is_some())
        {
            errors.push("an offer of kind none has no other fields".into());
        }
        if let Some(s) = &self.scope {
            let n = s.trim().chars().count();
            if n == 0 || n > MAX_SCOPE_CHARS || s.chars().any(char::is_control) {
                errors.push(format!(
                    "offer.scope must be 1 to {MAX_SCOPE_CHARS} characters on one line"
                ));
            }
        }
        if let Some(d) = &self.ends_on {
            if self.end_date().is_none() {
                errors.push(format!(
                    "offer.ends_on must be a date YYYY-MM-DD, got {d:?}"
                ));
            }
        }
        if let Some(c) = &self.code {
            let ok = (3..=32).contains(&c.len())
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !ok {
                errors.push("offer.code must be 3 to 32 letters, digits, - or _".into());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn is_none(&self) -> bool {
        self.kind == OfferKind::None
    }

    pub fn end_date(&self) -> Option<Date> {
        let d = self.ends_on.as_deref()?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(d, &format).ok()
    }

    /// Amounts the offer states, in hundredths of the shop's currency.
    pub fn amounts_cents(&self) -> Vec<i64> {
        [&self.amount, &self.min_spend]
            .into_iter()
            .flatten()
            .filter_map(|a| cents(a))
            .collect()
    }

    /// The offer as the model reads it: one JSON line after the brief, with the shop's currency
    /// so amounts are rendered in it.
    pub fn prompt_line(&self, currency: Option<&str>) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let (Some(c), Some(o)) = (currency, v.as_object_mut()) {
            if !self.is_none() {
                o.insert("currency".into(), c.into());
            }
        }
        v.to_string()
    }
}

/// "10.00" → 1000.
pub(crate) fn cents(amount: &str) -> Option<i64> {
    super::text::decimal_cents(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(p: u8) -> Offer {
        Offer {
            kind: OfferKind::PercentOff,
            percent: Some(p),
            ..Offer::default()
        }
    }

    #[test]
    fn no_offer_is_the_default_and_valid() {
        let o: Offer = serde_json::from_str("{}").unwrap();
        assert!(o.is_none());
        assert_eq!(o.validate(), Ok(()));
    }

    #[test]
    fn each_kind_needs_its_own_field_and_no_other() {
        assert!(percent(20).validate().is_ok());
        assert!(Offer {
            kind: OfferKind::PercentOff,
            ..Offer::default()
        }
        .validate()
        .is_err());
        assert!(percent(95).validate().is_err());
        let mut o = percent(20);
        o.amount = Some("10.00".into());
        assert!(o.validate().is_err());
        let amount = Offer {
            kind: OfferKind::AmountOff,
            amount: Some("10.00".into()),
            min_spend: Some("50".into()),
            ..Offer::default()
        };
        assert!(amount.validate().is_ok());
        assert_eq!(amount.amounts_cents(), vec![1000, 5000]);
    }

    #[test]
    fn dates_codes_and_scopes_are_checked() {
        let mut o = percent(20);
        o.ends_on = Some("2026-12-24".into());
        o.code = Some("SNOW20".into());
        o.scope = Some("outerwear".into());
        assert_eq!(o.validate(), Ok(()));
        o.ends_on = Some("24.12.2026".into());
        o.code = Some("SNOW 20".into());
        assert_eq!(o.validate().unwrap_err().len(), 2);
    }

    #[test]
    fn a_none_offer_carries_nothing() {
        let o = Offer {
            code: Some("SNOW20".into()),
            ..Offer::default()
        };
        assert!(o.validate().is_err());
    }

    #[test]
    fn the_prompt_line_is_json_with_the_currency() {
        let mut o = percent(20);
        o.code = Some("SNOW20".into());
        let line = o.prompt_line(Some("EUR"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "percent_off");
        assert_eq!(v["currency"], "EUR");
        assert_eq!(Offer::none().prompt_line(Some("EUR")), r#"{"kind":"none"}"#);
    }
}
