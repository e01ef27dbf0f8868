//! Full JSON object model of the Shopify types the sandbox serves. GraphQL selections are
//! projected onto these objects; connection fields hold plain arrays of node models.

use serde_json::{json, Value};

use super::catalog_data::{money, Product, ProductStatus};
use super::Shop;
use crate::util::shopify_time;

fn money_v2(cents: u64, currency: &str) -> Value {
    json!({ "__typename": "MoneyV2", "amount": money(cents), "currencyCode": currency })
}

fn image_model(p: &Product, url: &str) -> Value {
    json!({
        "__typename": "Image",
        "id": format!("gid://shopify/ImageSource/{}", p.id * 3),
        "url": url, "src": url, "originalSrc": url, "transformedSrc": url,
        "altText": p.title,
        "width": 2048, "height": 2048,
    })
}

/// Sentences a long description is padded with (see [`Shop::description_padding`]).
const FILLER: &[&str] = &[
    "Every seam is taped and every zipper is tested before it leaves the workshop.",
    "We source our fabrics from mills that publish their water and energy use.",
    "Care: wash cold, hang dry, and it will outlast most of the trips you plan.",
    "Sizing runs true; if you are between sizes, choose the larger one for layering.",
    "Repairs are free for the life of the product at any of our partner shops.",
];

/// `extra` bytes of deterministic prose (ASCII), as a merchant's long description would add.
fn filler(extra: usize) -> String {
    let mut out = String::with_capacity(extra);
    for sentence in FILLER.iter().cycle() {
        if out.len() + 1 >= extra {
            break;
        }
        out.push(' ');
        out.push_str(sentence);
    }
    out.truncate(extra);
    out
}

/// The product as the API returns it. `description_padding` extra bytes are appended to its
/// description (and, as a paragraph, to its HTML), generated here on every read so a shop of
/// long descriptions costs no memory. Money is in `currency`, the shop's currency code.
pub fn product_model(p: &Product, shop: &str, description_padding: usize, currency: &str) -> Value {
    let (description, description_html) = if description_padding == 0 {
        (p.description.clone(), p.description_html.clone())
    } else {
        let extra = filler(description_padding);
        (
            format!("{}{extra}", p.description),
            format!("{}<p>{}</p>", p.description_html, extra.trim_start()),
        )
    };
    let image = p.image_url().map(|url| image_model(p, &url));
    let media = image.as_ref().map(|img| {
        json!({
            "__typename": "MediaImage",
            "id": format!("gid://shopify/MediaImage/{}", p.id * 3),
            "alt": p.title,
            "mediaContentType": "IMAGE",
            "status": "READY",
            "mimeType": "image/jpeg",
            "createdAt": shopify_time(p.created_at),
            "updatedAt": shopify_time(p.updated_at),
            "image": img,
            "preview": { "__typename": "MediaPreviewImage", "status": "READY", "image": img },
        })
    });
    let min_compare = p.variants.iter().filter_map(|v| v.compare_at_cents).min();
    let max_compare = p.variants.iter().filter_map(|v| v.compare_at_cents).max();
    let variants: Vec<Value> = p
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "__typename": "ProductVariant",
                "id": format!("gid://shopify/ProductVariant/{}", v.id),
                "legacyResourceId": v.id.to_string(),
                "title": v.title,
                "displayName": format!("{} - {}", p.title, v.title),
                "sku": v.sku,
                "barcode": null,
                "price": money(v.price_cents),
                "compareAtPrice": v.compare_at_cents.map(money),
                "availableForSale": v.available && p.status == ProductStatus::Active,
                "inventoryQuantity": v.inventory,
                "position": i + 1,
                "createdAt": shopify_time(p.created_at),
                "updatedAt": shopify_time(p.updated_at),
                "taxable": true,
                "inventoryPolicy": "DENY",
                "image": null,
                "selectedOptions": [{ "__typename": "SelectedOption", "name": v.option_name, "value": v.title }],
            })
        })
        .collect();
    let option_values: Vec<&str> = p.variants.iter().map(|v| v.title.as_str()).collect();
    json!({
        "__typename": "Product",
        "id": p.gid(),
        "legacyResourceId": p.id.to_string(),
        "title": p.title,
        "handle": p.handle,
        "description": description,
        "bodyHtml": description_html,
        "descriptionHtml": description_html,
        "productType": p.product_type,
        "vendor": p.vendor,
        "tags": p.tags,
        "status": p.status.as_str(),
        "onlineStoreUrl": p.online_store_url(shop),
        "onlineStorePreviewUrl": format!("{}/products/{}", super::catalog_data::storefront_base(shop), p.handle_path()),
        "createdAt": shopify_time(p.created_at),
        "updatedAt": shopify_time(p.updated_at),
        "publishedAt": (p.status == ProductStatus::Active && p.published).then(|| shopify_time(p.created_at)),
        "totalInventory": p.total_inventory(),
        "totalVariants": p.variants.len(),
        "hasOnlyDefaultVariant": p.variants.len() == 1,
        "hasOutOfStockVariants": p.variants.iter().any(|v| v.inventory <= 0),
        "tracksInventory": true,
        "isGiftCard": false,
        "templateSuffix": null,
        "featuredMedia": media,
        "featuredImage": image,
        "priceRangeV2": {
            "__typename": "ProductPriceRangeV2",
            "minVariantPrice": money_v2(p.min_price_cents(), currency),
            "maxVariantPrice": money_v2(p.max_price_cents(), currency),
        },
        "priceRange": {
            "__typename": "ProductPriceRange",
            "minVariantPrice": money_v2(p.min_price_cents(), currency),
            "maxVariantPrice": money_v2(p.max_price_cents(), currency),
        },
        "compareAtPriceRange": min_compare.zip(max_compare).map(|(lo, hi)| json!({
            "__typename": "ProductCompareAtPriceRange",
            "minVariantCompareAtPrice": money_v2(lo, currency),
            "maxVariantCompareAtPrice": money_v2(hi, currency),
        })),
        "seo": { "__typename": "SEO", "title": null, "description": null },
        "variantsCount": { "__typename": "Count", "count": p.variants.len(), "precision": "EXACT" },
        "mediaCount": { "__typename": "Count", "count": usize::from(p.has_image), "precision": "EXACT" },
        "variants": variants,
        "media": media.into_iter().collect::<Vec<_>>(),
        "options": [{
            "__typename": "ProductOption",
            "id": format!("gid://shopify/ProductOption/{}", p.id * 5),
            "name": p.variants.first().map(|v| v.option_name).unwrap_or("Title"),
            "position": 1,
            "values": option_values,
        }],
    })
}

pub fn shop_model(shop: &Shop) -> Value {
    let host = format!(
        "{}.example",
        shop.domain
            .strip_suffix(".myshopify.com")
            .unwrap_or(&shop.domain)
    );
    json!({
        "__typename": "Shop",
        "id": format!("gid://shopify/Shop/{}", shop.id),
        "name": shop.name,
        "email": format!("owner@{host}"),
        "contactEmail": format!("hello@{host}"),
        "currencyCode": shop.currency,
        "myshopifyDomain": shop.domain,
        "ianaTimezone": "America/Los_Angeles",
        "description": format!("{} sells outdoor apparel, gear and home goods.", shop.name),
        "url": format!("https://{host}"),
        "primaryDomain": {
            "__typename": "Domain",
            "id": format!("gid://shopify/Domain/{}", shop.id),
            "host": host, "url": format!("https://{host}"), "sslEnabled": true,
        },
    })
}

/// Numeric tail of a GID (`gid://shopify/Product/123` → 123).
pub fn gid_number(gid: &str) -> Option<u64> {
    gid.rsplit('/').next().and_then(|n| n.parse().ok())
}
