use serde::{Deserialize, Serialize};

/// A decimal amount as the vendor sent it (Shopify money is a decimal string) and its currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

/// What a recommendation needs of one product, and nothing more. Only active, published products
/// are cached; `available` says whether any variant can be bought now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogProduct {
    /// Shopify GID, e.g. `gid://shopify/Product/123`.
    pub id: String,
    pub title: String,
    /// Plain text, trimmed to a length fit for a prompt.
    pub description: String,
    pub handle: String,
    pub url: String,
    pub tags: Vec<String>,
    pub product_type: String,
    pub vendor: String,
    pub price_min: Money,
    pub price_max: Money,
    pub image_url: Option<String>,
    pub available: bool,
    pub updated_at: String,
}

impl CatalogProduct {
    /// The numeric part of the GID, which Klaviyo's Shopify events carry as `product.id`.
    pub fn numeric_id(&self) -> Option<&str> {
        self.id
            .rsplit('/')
            .next()
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    }
}
