//! `GET /catalog`: the merchant's cached catalog as a recommendation sees it, a page at a time.

use crate::domain::{CatalogProduct, Money};
use crate::error::Problem;
use crate::personalize::{ineligibility, Ineligibility};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// Products per page unless `limit` says otherwise, and the most `limit` may ask for.
pub const CATALOG_PAGE_DEFAULT: usize = 50;
pub const CATALOG_PAGE_MAX: usize = 100;
/// How much of a product's description a page shows.
pub const DESCRIPTION_EXCERPT_CHARS: usize = 200;
/// The longest cursor we hand out (a base64url product GID) or accept.
pub const MAX_CURSOR_CHARS: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogPage {
    pub products: Vec<CatalogItem>,
    /// Pass as `?cursor=` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
    /// Live products in the cached catalog (all pages).
    pub catalog_size: u64,
    /// RFC 3339: when the catalog was last synced in full.
    pub last_sync_at: Option<String>,
}

/// One cached product and whether a recommendation may pick it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogItem {
    /// Shopify GID, e.g. `gid://shopify/Product/123`.
    pub id: String,
    pub title: String,
    pub handle: String,
    pub url: String,
    /// The lowest variant price (what the email shows).
    pub price: Money,
    pub price_max: Money,
    pub product_type: String,
    pub vendor: String,
    pub tags: Vec<String>,
    pub image_url: Option<String>,
    /// The start of the plain-text description, at most 200 characters (with `…` when cut).
    pub description_excerpt: String,
    /// Some variant can be bought now.
    pub available: bool,
    /// A recommendation may pick it: `ineligible_reasons` is empty.
    pub eligible: bool,
    pub ineligible_reasons: Vec<Ineligibility>,
}

impl From<&CatalogProduct> for CatalogItem {
    fn from(p: &CatalogProduct) -> Self {
        let reasons = ineligibility(p);
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            handle: p.handle.clone(),
            url: p.url.clone(),
            price: p.price_min.clone(),
            price_max: p.price_max.clone(),
            product_type: p.product_type.clone(),
            vendor: p.vendor.clone(),
            tags: p.tags.clone(),
            image_url: p.image_url.clone(),
            description_excerpt: excerpt(&p.description, DESCRIPTION_EXCERPT_CHARS),
            available: p.available,
            eligible: reasons.is_empty(),
            ineligible_reasons: reasons,
        }
    }
}

fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max_chars - 1).collect();
    format!("{}…", cut.trim_end())
}

const CURSOR: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// The opaque cursor after product `id`.
pub fn catalog_cursor(id: &str) -> String {
    CURSOR.encode(id)
}

/// The position a cursor names; `None` when it does not match the documented cursor pattern
/// (base64url without padding; every string of that shape decodes, since a length of 4n+1 is
/// excluded). Any such string is a position: pages go on after it in product-id order.
pub fn catalog_position(cursor: &str) -> Option<String> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return None;
    }
    let bytes = CURSOR.decode(cursor).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[utoipa::path(get, path = "/catalog", tag = "catalog",
    description = "The cached catalog as a recommendation sees it, in product-id order: every cached (active, published) product with whether a recommendation may pick it and why not.",
    params(
        ("cursor" = Option<String>, Query, description = "from next_cursor", max_length = 256, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"),
        ("limit" = Option<u8>, Query, description = "products per page (default 50)", minimum = 1, maximum = 100),
        ("eligible" = Option<bool>, Query, description = "only the products a recommendation may pick (`true`) or only those it may not (`false`); absent: all")),
    responses(
        (status = 200, body = CatalogPage),
        (status = 400, description = "malformed cursor, limit or eligible", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no catalog synced yet (`catalog-not-synced`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Shopify not connected", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_catalog() {}

#[derive(OpenApi)]
#[openapi(paths(get_catalog))]
pub(super) struct CatalogDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_every_patterned_string_is_a_position() {
        let id = "gid://shopify/Product/8123";
        assert_eq!(catalog_position(&catalog_cursor(id)).as_deref(), Some(id));
        // The documented pattern: base64url characters, any length but 4n+1.
        for len in (0..=16).filter(|n| n % 4 != 1) {
            let s: String = "_Zz9-".chars().cycle().take(len).collect();
            assert!(catalog_position(&s).is_some(), "{s:?} decodes");
        }
        assert!(catalog_position(&"A".repeat(MAX_CURSOR_CHARS + 3)).is_none());
    }

    #[test]
    fn excerpts_cut_at_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = excerpt(&long, 200);
        assert_eq!(cut.chars().count(), 200);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(" short ", 200), "short");
    }
}
