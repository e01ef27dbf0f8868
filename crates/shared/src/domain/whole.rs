//! Whole numbers as JSON Schema means them: `integer` includes `3.0`, which serde's integer
//! types refuse. Request fields documented as integers read both, so a request the OpenAPI
//! document calls valid is never refused for writing 3 as 3.0.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

fn whole<E: Error, T: TryFrom<u64>>(n: serde_json::Number) -> Result<T, E> {
    let value = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    value
        .and_then(|u| T::try_from(u).ok())
        .ok_or_else(|| E::custom(format!("expected a whole number in range, got {n}")))
}

/// `#[serde(deserialize_with = "crate::domain::whole::number")]`
pub fn number<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    whole(serde_json::Number::deserialize(d)?)
}

/// The same for an optional field (`null` or absent is `None`; pair with `#[serde(default)]`).
pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole)
        .transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Probe {
        #[serde(deserialize_with = "super::number")]
        n: u8,
        #[serde(default, deserialize_with = "super::optional")]
        o: Option<u32>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_floats_read_as_integers_and_nothing_else_does() {
        assert_eq!(
            probe(r#"{"n": 3.0, "o": 240.0}"#).unwrap(),
            Probe { n: 3, o: Some(240) }
        );
        assert_eq!(probe(r#"{"n": 3}"#).unwrap(), Probe { n: 3, o: None });
        assert_eq!(probe(r#"{"n": 3, "o": null}"#).unwrap().o, None);
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 256}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(probe(bad).is_err(), "{bad}");
        }
    }
}
