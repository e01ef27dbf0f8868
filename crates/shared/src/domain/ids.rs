use super::Invalid;
use serde::{Deserialize, Serialize};

/// The merchant, as the verified JWT's `sub` names them. Never taken from a request body.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MerchantId(String);

impl MerchantId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid(
                "merchant id must be 1-128 characters of letters, digits, '-' or '_'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MerchantId {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<MerchantId> for String {
    fn from(value: MerchantId) -> Self {
        value.0
    }
}

/// A shop's permanent `*.myshopify.com` domain, lowercased. Shopify's security review requires
/// the anchored pattern `^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopDomain(String);

impl ShopDomain {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let lower = raw.trim().to_ascii_lowercase();
        let Some(name) = lower.strip_suffix(".myshopify.com") else {
            return Err(Invalid("shop must be a *.myshopify.com domain"));
        };
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
        if first_ok && rest_ok && lower.len() <= 255 {
            Ok(Self(lower))
        } else {
            Err(Invalid("shop must be a *.myshopify.com domain"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShopDomain {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<ShopDomain> for String {
    fn from(value: ShopDomain) -> Self {
        value.0
    }
}

/// The two vendors a merchant connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Klaviyo,
    Shopify,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Klaviyo => "klaviyo",
            Vendor::Shopify => "shopify",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases_a_myshopify_domain() {
        assert_eq!(
            ShopDomain::parse("Demo-Store.myshopify.com")
                .unwrap()
                .as_str(),
            "demo-store.myshopify.com"
        );
    }

    #[test]
    fn rejects_shop_outside_myshopify() {
        for bad in [
            "evil.com",
            "demo.myshopify.com.evil.com",
            "-demo.myshopify.com",
            ".myshopify.com",
            "demo_store.myshopify.com",
            "a/b.myshopify.com",
            "evil.com?.myshopify.com",
        ] {
            assert!(ShopDomain::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn merchant_id_rejects_path_tricks() {
        assert!(MerchantId::parse("0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21").is_ok());
        assert!(MerchantId::parse("../other").is_err());
        assert!(MerchantId::parse("").is_err());
    }
}
