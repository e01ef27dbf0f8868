//! The catalog reader: count active products, then page them (small shops) or export them with a
//! bulk operation (large shops). Both paths map through [`to_catalog_product`], so a product
//! looks the same whichever way it was read. Only ACTIVE products with an online-store URL
//! (published) are kept.
//!
//! Products are handed to a [`CatalogSink`] in chunks as they are read, so memory stays flat
//! whatever the size of the store: a page at a time, or, for a bulk export, the JSONL streamed
//! line by line ([`BulkAssembler`] keeps a short window of products so their variant lines can
//! still arrive). A bulk export the read gives up on is canceled.

use super::admin::ShopifyAdmin;
use super::bulk::{self, BulkDownload, BulkPolling, JsonlLines};
use super::error::ShopifyError;
use crate::domain::{CatalogProduct, Money};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;

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
/// Products handed to the sink at once (a multiple of DynamoDB's 25-item batches).
pub const CHUNK_SIZE: usize = 400;
/// Products of a bulk export held back until this many more have arrived, so that variant
/// lines following their product (not necessarily at once: `groupObjects: false`) decide its
/// availability before it is written.
pub const BULK_WINDOW: usize = 256;

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

/// Knobs for [`read_catalog`]; [`fetch_catalog`] uses the defaults.
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    pub bulk_threshold: u64,
    pub page_size: u32,
    pub variants_per_product: u32,
    pub bulk_polling: BulkPolling,
    pub bulk_download: BulkDownload,
    /// Products per [`CatalogSink::accept`] call.
    pub chunk_size: usize,
    /// Products of a bulk export held back for their variant lines ([`BULK_WINDOW`]).
    pub bulk_window: usize,
    /// Give up at this instant (a Lambda's time budget): the read fails with
    /// `ShopifyError::Bulk` and a bulk export still running is canceled.
    pub deadline: Option<Instant>,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            bulk_threshold: BULK_THRESHOLD,
            page_size: PAGE_SIZE,
            variants_per_product: VARIANTS_PER_PRODUCT,
            bulk_polling: BulkPolling::default(),
            bulk_download: BulkDownload::default(),
            chunk_size: CHUNK_SIZE,
            bulk_window: BULK_WINDOW,
            deadline: None,
        }
    }
}

/// Where a catalog read puts its products, chunk by chunk (a new DynamoDB generation; a `Vec`
/// for [`fetch_catalog`]).
#[async_trait]
pub trait CatalogSink: Send {
    type Error: std::error::Error + Send + Sync + 'static;
    async fn accept(&mut self, products: Vec<CatalogProduct>) -> Result<(), Self::Error>;
}

#[async_trait]
impl CatalogSink for Vec<CatalogProduct> {
    type Error = Infallible;
    async fn accept(&mut self, products: Vec<CatalogProduct>) -> Result<(), Infallible> {
        self.extend(products);
        Ok(())
    }
}

/// Why a catalog read failed: Shopify, or the sink.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    #[error(transparent)]
    Shopify(#[from] ShopifyError),
    #[error("could not store the catalog: {0}")]
    Sink(E),
}

/// What a catalog read did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogRead {
    /// Products read from Shopify (before filtering).
    pub read: usize,
    /// Products handed to the sink (active, published).
    pub kept: usize,
    /// Read with a bulk export (else paged).
    pub bulk: bool,
    /// The bulk export was one a dead sync left running.
    pub adopted: bool,
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
    // Collapse only as far as matters: max + 1 characters say whether and where to cut.
    let mut collapsed = String::with_capacity(text.len().min(max * 4 + 8));
    let mut chars = 0usize;
    for word in text.split_whitespace() {
        if chars > max {
            break;
        }
        if !collapsed.is_empty() {
            collapsed.push(' ');
            chars += 1;
        }
        collapsed.push_str(word);
        chars += word.chars().count();
    }
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

/// Read the whole active, published catalog into memory with default options (small stores,
/// tests; a sync streams with [`read_catalog`] instead).
pub async fn fetch_catalog(
    admin: &ShopifyAdmin,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    fetch_catalog_with(admin, &CatalogOptions::default(), progress).await
}

/// [`read_catalog`] into a `Vec`.
pub async fn fetch_catalog_with(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<CatalogProduct>, ShopifyError> {
    let mut products = Vec::new();
    match read_catalog(admin, options, progress, &mut products).await {
        Ok(_) => Ok(products),
        Err(ReadError::Shopify(err)) => Err(err),
        Err(ReadError::Sink(never)) => match never {},
    }
}

/// Read the whole active, published catalog into `sink`, chunk by chunk: paged when the shop
/// has at most `options.bulk_threshold` active products, else through one bulk export (adopted
/// if a dead sync left ours running). `progress` gets the number of products read so far
/// (before filtering). Past `options.deadline` the read fails, canceling its bulk export.
pub async fn read_catalog<S: CatalogSink>(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
    sink: &mut S,
) -> Result<CatalogRead, ReadError<S::Error>> {
    let count = within(options.deadline, count_active_products(admin)).await?;
    tracing::info!(
        shop = admin.shop().as_str(),
        count,
        "reading the Shopify catalog"
    );
    if count > options.bulk_threshold {
        read_bulk(admin, options, progress, sink).await
    } else {
        within(options.deadline, read_paged(admin, options, progress, sink)).await
    }
}

/// `work`, unless the deadline passes first.
async fn within<T, E>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<ShopifyError>,
{
    let Some(deadline) = deadline else {
        return work.await;
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(result) => result,
        Err(_) => Err(ShopifyError::Bulk(
            "the catalog read ran out of time; it will be retried".into(),
        )
        .into()),
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

async fn read_paged<S: CatalogSink>(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
    sink: &mut S,
) -> Result<CatalogRead, ReadError<S::Error>> {
    let mut outcome = CatalogRead::default();
    let mut after: Option<String> = None;
    let mut chunk = Vec::new();
    loop {
        let variables = json!({
            "first": options.page_size,
            "after": after,
            "variantsFirst": options.variants_per_product,
        });
        let page: PageData = admin.query(PRODUCTS_PAGE, variables).await?;
        outcome.read += page.products.nodes.len();
        for mut node in page.products.nodes {
            let variants = node.variants.take();
            if node.status != "ACTIVE" || node.online_store_url.is_none() {
                continue;
            }
            let available = any_for_sale(admin, &node.id, variants.as_ref()).await?;
            chunk.extend(to_catalog_product(node, available));
        }
        progress(outcome.read);
        if chunk.len() >= options.chunk_size {
            outcome.kept += chunk.len();
            sink.accept(std::mem::take(&mut chunk))
                .await
                .map_err(ReadError::Sink)?;
        }
        match page.products.page_info {
            PageInfo {
                has_next_page: true,
                end_cursor: Some(cursor),
            } => after = Some(cursor),
            _ => break,
        }
    }
    if !chunk.is_empty() {
        outcome.kept += chunk.len();
        sink.accept(chunk).await.map_err(ReadError::Sink)?;
    }
    Ok(outcome)
}

/// One export: adopt or start it, wait for it (canceling it if we stop waiting), then stream
/// its lines into the sink. Everything runs against the deadline.
async fn read_bulk<S: CatalogSink>(
    admin: &ShopifyAdmin,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
    sink: &mut S,
) -> Result<CatalogRead, ReadError<S::Error>> {
    let export = within(options.deadline, bulk::start_or_adopt(admin, BULK_PRODUCTS)).await?;
    let waited = within(
        options.deadline,
        bulk::wait(admin, &export.id, &options.bulk_polling),
    )
    .await;
    let op = match waited {
        Ok(op) => op,
        Err(err) => {
            // Not finished, and we stop waiting: free the shop's slot.
            bulk::abandon(admin, &export.id).await;
            return Err(err.into());
        }
    };
    let mut outcome = CatalogRead {
        bulk: true,
        adopted: export.adopted,
        ..CatalogRead::default()
    };
    let Some(url) = op.url else {
        // COMPLETED with no objects: Shopify gives no URL.
        progress(0);
        return Ok(outcome);
    };
    // COMPLETED: nothing left to cancel; the download and the writes still race the deadline.
    let stream = stream_bulk(&url, options, progress, sink, &mut outcome);
    within(options.deadline, stream).await?;
    Ok(outcome)
}

async fn stream_bulk<S: CatalogSink>(
    url: &str,
    options: &CatalogOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
    sink: &mut S,
    outcome: &mut CatalogRead,
) -> Result<(), ReadError<S::Error>> {
    let mut lines = JsonlLines::open(url, &options.bulk_download).await?;
    let mut assembler = BulkAssembler::new(options.bulk_window);
    while let Some(line) = lines.next::<Value>().await? {
        if let Some(parent) = line.get("__parentId").and_then(Value::as_str) {
            let for_sale = line
                .get("availableForSale")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            assembler.variant(parent, for_sale);
            continue;
        }
        let node: ProductNode = serde_json::from_value(line)
            .map_err(|e| ShopifyError::Bulk(format!("unexpected product line: {e}")))?;
        outcome.read += 1;
        if outcome.read.is_multiple_of(250) {
            progress(outcome.read);
        }
        assembler.product(node);
        if let Some(chunk) = assembler.take_ready(options.chunk_size) {
            outcome.kept += chunk.len();
            sink.accept(chunk).await.map_err(ReadError::Sink)?;
        }
    }
    progress(outcome.read);
    for chunk in assembler.finish().chunks(options.chunk_size.max(1)) {
        outcome.kept += chunk.len();
        sink.accept(chunk.to_vec()).await.map_err(ReadError::Sink)?;
    }
    Ok(())
}

/// A product's key in the assembler: the GID's number (or a hash for any other GID form).
fn gid_key(gid: &str) -> u64 {
    match gid.rsplit('/').next().and_then(|n| n.parse().ok()) {
        Some(n) => n,
        None => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            gid.hash(&mut hasher);
            hasher.finish()
        }
    }
}

/// Turns the lines of a bulk export into catalog products as they arrive. Without grouping,
/// a product's variant lines come after it but not necessarily right after, and whether one is
/// for sale decides the product's `available`. So each product (already mapped: its long
/// description cut) waits in a window of the last `window` products; one leaving the window
/// with a variant for sale is ready to write, one without is held until the end (sold out, or
/// its variants still to come). Memory: the window, the products held, and one flag per
/// product seen.
pub struct BulkAssembler {
    window_size: usize,
    window: VecDeque<(u64, CatalogProduct)>,
    held: Vec<(u64, CatalogProduct)>,
    ready: Vec<CatalogProduct>,
    /// Per product: whether a variant for sale was seen (variants may come before the product).
    for_sale: HashMap<u64, bool>,
}

impl BulkAssembler {
    pub fn new(window_size: usize) -> Self {
        Self {
            window_size,
            window: VecDeque::new(),
            held: Vec::new(),
            ready: Vec::new(),
            for_sale: HashMap::new(),
        }
    }

    /// A product line. Inactive and unpublished products are dropped at once.
    pub fn product(&mut self, node: ProductNode) {
        let key = gid_key(&node.id);
        self.for_sale.entry(key).or_insert(false);
        let Some(product) = to_catalog_product(node, false) else {
            return;
        };
        self.window.push_back((key, product));
        while self.window.len() > self.window_size {
            if let Some(entry) = self.window.pop_front() {
                self.settle(entry);
            }
        }
    }

    /// A variant line of product `parent`.
    pub fn variant(&mut self, parent: &str, available_for_sale: bool) {
        let seen = self.for_sale.entry(gid_key(parent)).or_insert(false);
        *seen = *seen || available_for_sale;
    }

    fn settle(&mut self, (key, mut product): (u64, CatalogProduct)) {
        if self.for_sale.get(&key).copied().unwrap_or(false) {
            product.available = true;
            self.ready.push(product);
        } else {
            self.held.push((key, product));
        }
    }

    /// The products ready to write, once there are at least `min`.
    pub fn take_ready(&mut self, min: usize) -> Option<Vec<CatalogProduct>> {
        (self.ready.len() >= min.max(1)).then(|| std::mem::take(&mut self.ready))
    }

    /// At the end of the file: every product not written yet, availability now final.
    pub fn finish(mut self) -> Vec<CatalogProduct> {
        let mut rest = std::mem::take(&mut self.ready);
        for (key, mut product) in self.window.drain(..).chain(self.held.drain(..)) {
            product.available = self.for_sale.get(&key).copied().unwrap_or(false);
            rest.push(product);
        }
        rest
    }
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

    fn bulk_node(n: u64) -> ProductNode {
        let mut node = node("ACTIVE", Some("https://x/p"));
        node.id = format!("gid://shopify/Product/{n}");
        node
    }

    fn variant_of(n: u64) -> String {
        format!("gid://shopify/Product/{n}")
    }

    fn availability(products: &[CatalogProduct]) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = products
            .iter()
            .map(|p| (p.id.clone(), p.available))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn variants_decide_availability_wherever_they_arrive_within_the_window() {
        let mut assembler = BulkAssembler::new(2);
        assembler.variant(&variant_of(1), true); // before its product
        assembler.product(bulk_node(1));
        assembler.product(bulk_node(2));
        assembler.product(bulk_node(3));
        assembler.variant(&variant_of(2), false);
        assembler.variant(&variant_of(2), true); // one of several, a product later
        assembler.product(bulk_node(4));
        assembler.variant(&variant_of(4), false);
        let ready = assembler.take_ready(1).unwrap();
        assert_eq!(
            availability(&ready),
            vec![(variant_of(1), true), (variant_of(2), true)],
            "products leave the window once for sale"
        );
        assert_eq!(
            availability(&assembler.finish()),
            vec![(variant_of(3), false), (variant_of(4), false)]
        );
    }

    #[test]
    fn a_product_without_a_variant_for_sale_waits_for_late_variants() {
        let mut assembler = BulkAssembler::new(1);
        assembler.product(bulk_node(1));
        assembler.product(bulk_node(2)); // 1 leaves the window with nothing for sale: held
        assembler.product(bulk_node(3));
        assert!(
            assembler.take_ready(1).is_none(),
            "nothing ready: none for sale yet"
        );
        assembler.variant(&variant_of(1), true); // far behind its product
        assert_eq!(
            availability(&assembler.finish()),
            vec![
                (variant_of(1), true),
                (variant_of(2), false),
                (variant_of(3), false)
            ]
        );
    }

    #[test]
    fn ready_products_wait_for_a_full_chunk() {
        let mut assembler = BulkAssembler::new(0);
        for n in 1..=3 {
            assembler.variant(&variant_of(n), true);
            assembler.product(bulk_node(n));
        }
        assert!(assembler.take_ready(4).is_none());
        assert_eq!(assembler.take_ready(3).map(|c| c.len()), Some(3));
        assert!(assembler.finish().is_empty());
    }

    #[test]
    fn inactive_or_unpublished_bulk_products_are_dropped() {
        let mut assembler = BulkAssembler::new(0);
        let mut draft = bulk_node(1);
        draft.status = "DRAFT".into();
        let mut unpublished = bulk_node(2);
        unpublished.online_store_url = None;
        assembler.product(draft);
        assembler.product(unpublished);
        assert!(assembler.finish().is_empty());
    }

    #[test]
    fn a_very_long_description_is_cut_after_collapsing_its_whitespace() {
        let long = format!("Soft   linen.\n{}", "Breathable and light. ".repeat(5000));
        let cut = trim_description(&long, DESCRIPTION_MAX_CHARS);
        assert!(
            cut.starts_with("Soft linen. Breathable and light. Breathable"),
            "{cut}"
        );
        assert!(
            cut.ends_with("light.…") || cut.ends_with("and…") || cut.ends_with("Breathable…"),
            "{cut}"
        );
        let chars = cut.chars().count();
        assert!(
            chars <= DESCRIPTION_MAX_CHARS && chars > DESCRIPTION_MAX_CHARS - 25,
            "{chars}"
        );
        assert!(!cut.contains("  "));
    }

    /// A bulk export still running at the deadline: the read fails and the export is canceled.
    #[tokio::test]
    async fn a_read_past_its_deadline_cancels_its_running_export() {
        let shop = crate::shopify::bulk::tests::Shop::start(30).await;
        shop.control("bulk-settings", json!({ "run_secs": 60 }))
            .await;
        let options = CatalogOptions {
            bulk_threshold: 0,
            deadline: Some(Instant::now() + std::time::Duration::from_millis(800)),
            ..CatalogOptions::default()
        };
        let mut sink: Vec<CatalogProduct> = Vec::new();

        let result = read_catalog(&shop.admin, &options, &|_| {}, &mut sink).await;

        assert!(
            matches!(&result, Err(ReadError::Shopify(ShopifyError::Bulk(m))) if m.contains("out of time")),
            "{result:?}"
        );
        let ops = shop.settled_operations().await;
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0].1, "CANCELED");
    }

    /// A failed poll (Shopify answering 500s) abandons the export: it is canceled, not left to
    /// hold one of the shop's slots.
    #[tokio::test]
    async fn a_read_whose_polling_fails_cancels_its_export() {
        let shop = crate::shopify::bulk::tests::Shop::start(30).await;
        shop.control(
            "bulk-settings",
            json!({ "run_secs": 60, "status_errors": 1000 }),
        )
        .await;
        let options = CatalogOptions {
            bulk_threshold: 0,
            ..CatalogOptions::default()
        };
        let mut sink: Vec<CatalogProduct> = Vec::new();

        let result = read_catalog(&shop.admin, &options, &|_| {}, &mut sink).await;

        assert!(
            matches!(&result, Err(ReadError::Shopify(ShopifyError::Transient(_)))),
            "{result:?}"
        );
        let ops = shop.settled_operations().await;
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0].1, "CANCELED");
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
