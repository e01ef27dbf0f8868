//! The catalog reader: count active products, then page them (small shops) or export them with a
//! bulk operation (large shops). Both paths map through [`to_catalog_product`], so a product
//! looks the same whichever way it was read. Only ACTIVE products with an online-store URL
//! (published) are kept.

use super::admin::ShopifyAdmin;
use super::bulk::{self, BulkPolling};
use super::error::ShopifyError;
use crate::domain::{CatalogProduct, Money};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const PRODUCTS_COUNT: &str = include_str!("queries/products_count.graphql");
pub const PRODUCTS_PAGE: &str = include_str!("queries/products_page.graphql");
pub const PRODUCT_BY_ID: &str = include_str!("queries/product_by_id.graphql");
pub const PRODUCT_VARIANTS: &str = include_str!("queries/product_variants.graphql");
pub const BULK_PRODUCTS: &str = include_str!("queries/bulk_products.graphql");

/// Above this many active products the catalog is exported with a bulk operation. Paging costs
/// about 10 points a product, so on the standard plan (100 points/s) 500 products already take
/// ~30 s of throttle; a bulk export costs a handful of points whatever the size.
pub const BULK_THRESHOLD: u64 = 500;
/// Shopify refuses a single query whose requested cost exceeds this.
pub const MAX_QUERY_COST: u32 = 1_000;
/// Variants read per product on a page: enough to see whether one is for sale.
pub const VARIANTS_PER_PRODUCT: u32 = 10;
/// Products per page, the largest that keeps [`page_cost`] under [`MAX_QUERY_COST`].
pub const PAGE_SIZE: u32 = max_page_size(VARIANTS_PER_PRODUCT);
/// Descriptions are cut to about this many characters (at a word boundary) for prompts.
pub const DESCRIPTION_MAX_CHARS: usize = 600;

/// Shopify's requested cost of `products_page.graphql`: a connection costs 2 plus `first` times
/// its node; objects cost 1, scalars 0. Per product: the product, featuredMedia, image,
/// priceRangeV2 and its two MoneyV2 (6), plus the variants connection (2 + variants) and its
/// pageInfo (1). The outer pageInfo adds 1.
pub const fn page_cost(first: u32, variants: u32) -> u32 {
    let per_product = 6 + (2 + variants) + 1;
    2 + first * per_product + 1
}

pub const fn max_page_size(variants: u32) -> u32 {
    let mut first = 250;
    while first > 1 && page_cost(first, variants) > MAX_QUERY_COST {
        first -= 1;
    }
    first
}

// Checked at compile time: a page stays under Shopify's single-query cost limit, and is the
// largest that does, and stays reasonably large.
const _: () = assert!(page_cost(PAGE_SIZE, VARIANTS_PER_PRODUCT) <= MAX_QUERY_COST);
const _: () = assert!(page_cost(PAGE_SIZE + 1, VARIANTS_PER_PRODUCT) > MAX_QUERY_COST);
const _: () = assert!(PAGE_SIZE >= 40);

/// Knobs for [`fetch_catalog_with`]; [`fetch_catalog`] uses the defaults.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    pub bulk_threshold: u64,
    pub page_size: u32,
    pub variants_per_product: u32,
    pub bulk_polling: BulkPolling,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            bulk_threshold: BULK_THRESHOLD,
            page_size: PAGE_SIZE,
            variants_per_product: VARIANTS_PER_PRODUCT,
            bulk_polling: BulkPolling::default(),
        }
    }
}

/// A product as both documents select it (page node, bulk line, `product(id:)`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductNode {
    pub id: String,
    pub title: String,
    pub handle: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub product_type: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub status: String,
    #[serde(default)]
    pub online_store_url: Option<String>,
    pub updated_at: String,
    #[serde(default)]
    pub featured_media: Option<FeaturedMedia>,
    pub price_range_v2: PriceRange,
    /// Present on pages and `product(id:)`; absent on bulk lines (variants come as child lines).
    #[serde(default)]
    pub variants: Option<VariantPage>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FeaturedMedia {
    /// Only a MediaImage has one (videos and 3D models select nothing).
    #[serde(default)]
    pub image: Option<ImageNode>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ImageNode {
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceRange {
    pub min_variant_price: MoneyNode,
    pub max_variant_price: MoneyNode,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyNode {
    pub amount: String,
    pub currency_code: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantPage {
    #[serde(default)]
    pub page_info: Option<PageInfo>,
    #[serde(default)]
    pub nodes: Vec<VariantNode>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantNode {
    #[serde(default)]
    pub available_for_sale: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    #[serde(default)]
    pub has_next_page: bool,
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// The one mapping from a Shopify product to what we cache. `None` when the product is not
/// ACTIVE or not published to the online store (no `onlineStoreUrl`, which also excludes
/// UNLISTED products).
pub fn to_catalog_product(node: ProductNode, any_variant_for_sale: bool) -> Option<CatalogProduct> {
    if node.status != "ACTIVE" {
        return None;
    }
    let url = node.online_store_url.filter(|u| !u.trim().is_empty())?;
    let money = |m: MoneyNode| Money {
        amount: m.amount,
        currency: m.currency_code,
    };
    Some(CatalogProduct {
        id: node.id,
        title: node.title.trim().to_owned(),
        description: trim_description(
            node.description.as_deref().unwrap_or(""),
            DESCRIPTION_MAX_CHARS,
        ),
        handle: node.handle,
        url,
        tags: node.tags,
        product_type: node.product_type.unwrap_or_default(),
        vendor: node.vendor.unwrap_or_default(),
        price_min: money(node.price_range_v2.min_variant_price),
        price_max: money(node.price_range_v2.max_variant_price),
        image_url: node
            .featured_media
            .and_then(|m| m.image)
            .and_then(|i| i.url),
        available: any_variant_for_sale,
        updated_at: node.updated_at,
    })
}

/// Collapse whitespace and cut to at most `max` characters, at a word boundary when there is one
/// in the second half, marking the cut with an ellipsis.
pub fn trim_description(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        return collapsed;
    }
    let budget = max.saturating_sub(1); // room for the ellipsis
    let cut: String = collapsed.chars().take(budget).collect();
    let next_is_space = collapsed
        .chars()
        .nth(budget)
        .is_some_and(char::is_whitespace);
    let mut kept = if next_is_space {
        cut.as_str()
    } else {
        match cut.rfind(' ') {
            Some(pos) if pos >= budget / 2 => &cut[..pos],
            _ => cut.as_str(),
        }
    }
    .trim_end()
    .to_owned();
    kept = kept.trim_end_matches([',', ';', ':', '-']).to_owned();
    kept.push('…');
    kept
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountData {
    products_count: Option<CountNode>,
}

#[derive(Deserialize)]
struct CountNode {
    count: u64,
}

#[derive(Deserialize)]
struct PageData {
    products: ProductPage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductPage {
    page_info: PageInfo,
    nodes: Vec<ProductNode>,
}

#[derive(Deserialize)]
struct ProductData {
    product: Option<ProductNode>,
}

#[derive(Deserialize)]
struct VariantsData {
    product: Option<VariantsOnly>,
}

#[derive(Deserialize)]
struct VariantsOnly {
    variants: VariantPage,
}

/// The number of active products (what decides paged vs bulk).
pub async fn count_active_products(admin: &ShopifyAdmin) -> Result<u64, ShopifyError> {
    let data: CountData = admin.query(PRODUCTS_COUNT, json!({})).await?;
    Ok(data.products_count.map(|c| c.count).unwrap_or(0))
}

/// Read the whole active, published catalog with default options.
pub async fn fetch_catalog(
    admin: &ShopifyAdmin,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    fetch_catalog_with(admin, &CatalogOptions::default(), progress).await
}

/// Read the whole active, published catalog: paged when the shop has at most
/// `options.bulk_threshold` active products, else through one bulk operation. `progress` gets
/// the number of products read so far (before filtering).
pub async fn fetch_catalog_with(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    let count = count_active_products(admin).await?;
    tracing::info!(
        shop = admin.shop().as_str(),
        count,
        "reading the Shopify catalog"
    );
    if count > options.bulk_threshold {
        fetch_bulk(admin, options, progress).await
    } else {
        fetch_paged(admin, options, progress).await
    }
}

async fn any_for_sale(
    admin: &ShopifyAdmin,
    id: &str,
    first_page: Option<&VariantPage>,
) -> Result<bool, ShopifyError> {
    let Some(page) = first_page else {
        return Ok(false);
    };
    if page.nodes.iter().any(|v| v.available_for_sale) {
        return Ok(true);
    }
    if !page.page_info.as_ref().is_some_and(|p| p.has_next_page) {
        return Ok(false);
    }
    // Rare: more variants than we read on the page and none of those for sale. Read the rest.
    let mut after: Option<String> = None;
    loop {
        let data: VariantsData = admin
            .query(PRODUCT_VARIANTS, json!({ "id": id, "after": after }))
            .await?;
        let Some(product) = data.product else {
            return Ok(false);
        };
        if product.variants.nodes.iter().any(|v| v.available_for_sale) {
            return Ok(true);
        }
        match product.variants.page_info {
            Some(PageInfo {
                has_next_page: true,
                end_cursor: Some(cursor),
            }) => after = Some(cursor),
            _ => return Ok(false),
        }
    }
}

async fn fetch_paged(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    let mut products = Vec::new();
    let mut after: Option<String> = None;
    let mut read = 0usize;
    loop {
        let variables = json!({
            "first": options.page_size,
            "after": after,
            "variantsFirst": options.variants_per_product,
        });
        let page: PageData = admin.query(PRODUCTS_PAGE, variables).await?;
        read += page.products.nodes.len();
        for mut node in page.products.nodes {
            let variants = node.variants.take();
            if node.status != "ACTIVE" || node.online_store_url.is_none() {
                continue;
            }
            let available = any_for_sale(admin, &node.id, variants.as_ref()).await?;
            products.extend(to_catalog_product(node, available));
        }
        progress(read);
        match page.products.page_info {
            PageInfo {
                has_next_page: true,
                end_cursor: Some(cursor),
            } => after = Some(cursor),
            _ => break,
        }
    }
    Ok(products)
}

async fn fetch_bulk(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    let id = bulk::start(admin, BULK_PRODUCTS).await?;
    let op = bulk::wait(admin, &id, &options.bulk_polling).await?;
    let Some(url) = op.url else {
        // COMPLETED with no objects: Shopify gives no URL.
        progress(0);
        return Ok(Vec::new());
    };
    // Lines come parent first, then its variants (`__parentId`); with groupObjects:false the
    // order is not guaranteed, so collect availability by parent and map at the end.
    let mut nodes: Vec<ProductNode> = Vec::new();
    let mut available: HashMap<String, bool> = HashMap::new();
    let mut read = 0usize;
    bulk::for_each_line(admin.http(), &url, |line| {
        if let Some(parent) = line.get("__parentId").and_then(Value::as_str) {
            let for_sale = line
                .get("availableForSale")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let entry = available.entry(parent.to_owned()).or_insert(false);
            *entry = *entry || for_sale;
            return Ok(());
        }
        let node: ProductNode = serde_json::from_value(line)
            .map_err(|e| ShopifyError::Bulk(format!("unexpected product line: {e}")))?;
        read += 1;
        if read.is_multiple_of(250) {
            progress(read);
        }
        if node.status == "ACTIVE" && node.online_store_url.is_some() {
            nodes.push(node);
        }
        Ok(())
    })
    .await?;
    progress(read);
    Ok(nodes
        .into_iter()
        .filter_map(|node| {
            let for_sale = available.get(&node.id).copied().unwrap_or(false);
            to_catalog_product(node, for_sale)
        })
        .collect())
}

/// Re-read one product by GID (webhooks are only signals). `None` when it no longer exists or is
/// not active and published.
pub async fn fetch_product(
    admin: &ShopifyAdmin,
    id: &str,
) -> Result<Option<CatalogProduct>, ShopifyError> {
    let data: ProductData = admin
        .query(
            PRODUCT_BY_ID,
            json!({ "id": id, "variantsFirst": VARIANTS_PER_PRODUCT }),
        )
        .await?;
    let Some(mut node) = data.product else {
        return Ok(None);
    };
    if node.status != "ACTIVE" || node.online_store_url.is_none() {
        return Ok(None);
    }
    let variants = node.variants.take();
    let available = any_for_sale(admin, &node.id, variants.as_ref()).await?;
    Ok(to_catalog_product(node, available))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, url: Option<&str>) -> ProductNode {
        serde_json::from_value(json!({
            "id": "gid://shopify/Product/1",
            "title": " Linen Shirt ",
            "handle": "linen-shirt",
            "description": "Soft   linen.\nBreathable.",
            "productType": "Shirts",
            "vendor": "Acme",
            "tags": ["summer", "linen"],
            "status": status,
            "onlineStoreUrl": url,
            "updatedAt": "2026-01-02T03:04:05Z",
            "featuredMedia": { "image": { "url": "https://cdn.example/1.jpg" } },
            "priceRangeV2": {
                "minVariantPrice": { "amount": "10.0", "currencyCode": "EUR" },
                "maxVariantPrice": { "amount": "12.5", "currencyCode": "EUR" }
            }
        }))
        .unwrap()
    }

    #[test]
    fn maps_an_active_published_product() {
        let product = to_catalog_product(
            node("ACTIVE", Some("https://shop.example/products/linen-shirt")),
            true,
        )
        .unwrap();
        assert_eq!(product.title, "Linen Shirt");
        assert_eq!(product.description, "Soft linen. Breathable.");
        assert_eq!(
            product.price_min,
            Money {
                amount: "10.0".into(),
                currency: "EUR".into()
            }
        );
        assert_eq!(product.price_max.amount, "12.5");
        assert_eq!(
            product.image_url.as_deref(),
            Some("https://cdn.example/1.jpg")
        );
        assert_eq!(product.tags, vec!["summer", "linen"]);
        assert!(product.available);
    }

    #[test]
    fn skips_drafts_archived_unlisted_and_unpublished_products() {
        assert!(to_catalog_product(node("DRAFT", Some("https://x/p")), true).is_none());
        assert!(to_catalog_product(node("ARCHIVED", Some("https://x/p")), true).is_none());
        assert!(to_catalog_product(node("UNLISTED", Some("https://x/p")), true).is_none());
        assert!(to_catalog_product(node("ACTIVE", None), true).is_none());
    }

    #[test]
    fn non_image_featured_media_gives_no_image() {
        let mut n = node("ACTIVE", Some("https://x/p"));
        n.featured_media = serde_json::from_value(json!({})).unwrap();
        assert_eq!(to_catalog_product(n, false).unwrap().image_url, None);
    }

    #[test]
    fn long_descriptions_are_cut_at_a_word_boundary() {
        let text = "word ".repeat(200);
        let cut = trim_description(&text, 600);
        assert!(cut.chars().count() <= 600);
        assert!(cut.ends_with("word…"), "{cut}");
        let short = trim_description("  short text ", 600);
        assert_eq!(short, "short text");
    }
}
