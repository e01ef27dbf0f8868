use super::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret string: serialisable (it has to reach Secrets Manager) but never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A Klaviyo private API key (`pk_` followed by letters and digits).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KlaviyoApiKey(Secret);

impl KlaviyoApiKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let body = raw
            .strip_prefix("pk_")
            .ok_or(Invalid("a Klaviyo private API key starts with pk_"))?;
        if (20..=80).contains(&body.len()) && body.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(Secret::new(raw)))
        } else {
            Err(Invalid(
                "a Klaviyo private API key is pk_ followed by 20 to 80 letters or digits",
            ))
        }
    }
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for KlaviyoApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KlaviyoApiKey([redacted])")
    }
}

impl TryFrom<String> for KlaviyoApiKey {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<KlaviyoApiKey> for String {
    fn from(value: KlaviyoApiKey) -> Self {
        value.0 .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = KlaviyoApiKey::parse("pk_abcdefghijklmnopqrstuvwxyz0123").unwrap();
        assert!(!format!("{key:?}").contains("abcdef"));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "abc",
            "pk_short",
            "sk_abcdefghijklmnopqrstuvwxyz0123",
            "pk_abcdefghijklmnopqrst uvwxyz",
        ] {
            assert!(
                KlaviyoApiKey::parse(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }
}
