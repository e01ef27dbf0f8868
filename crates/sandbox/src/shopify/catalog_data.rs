//! Deterministic product catalog generator. The Klaviyo seed uses the same generator so that
//! order history references real products of the default shop (same numeric ids and handles).

use std::collections::HashMap;

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::util::{shopify_time, today_anchor};

/// First numeric product id; variant and media ids are derived from product ids so every
/// GID is stable for a given seed.
const PRODUCT_ID_BASE: u64 = 8_100_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductStatus {
    Active,
    Draft,
    Archived,
    Unlisted,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Draft => "DRAFT",
            Self::Archived => "ARCHIVED",
            Self::Unlisted => "UNLISTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE" => Some(Self::Active),
            "DRAFT" => Some(Self::Draft),
            "ARCHIVED" => Some(Self::Archived),
            "UNLISTED" => Some(Self::Unlisted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub id: u64,
    pub title: String,
    pub option_name: &'static str,
    pub sku: String,
    pub price_cents: u64,
    pub compare_at_cents: Option<u64>,
    pub inventory: i64,
    pub available: bool,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub description: String,
    pub description_html: String,
    pub product_type: String,
    pub vendor: String,
    pub tags: Vec<String>,
    pub status: ProductStatus,
    pub published: bool,
    pub has_image: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub variants: Vec<Variant>,
}

impl Product {
    pub fn gid(&self) -> String {
        format!("gid://shopify/Product/{}", self.id)
    }

    pub fn image_url(&self) -> Option<String> {
        self.has_image.then(|| {
            format!(
                "https://cdn.shopify.com/s/files/1/0000/0001/products/{}.jpg",
                self.handle_path()
            )
        })
    }

    /// Storefront URL; null (None) unless ACTIVE and published, like Shopify's `onlineStoreUrl`.
    pub fn online_store_url(&self, shop: &str) -> Option<String> {
        (self.status == ProductStatus::Active && self.published)
            .then(|| format!("{}/products/{}", storefront_base(shop), self.handle_path()))
    }

    /// The handle as a URL path segment: percent-encoded when it holds non-ASCII letters
    /// (a Japanese title's handle), unchanged otherwise.
    pub fn handle_path(&self) -> String {
        let mut out = String::with_capacity(self.handle.len());
        for b in self.handle.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub fn total_inventory(&self) -> i64 {
        self.variants.iter().map(|v| v.inventory).sum()
    }

    pub fn min_price_cents(&self) -> u64 {
        self.variants
            .iter()
            .map(|v| v.price_cents)
            .min()
            .unwrap_or(0)
    }

    pub fn max_price_cents(&self) -> u64 {
        self.variants
            .iter()
            .map(|v| v.price_cents)
            .max()
            .unwrap_or(0)
    }

    pub fn updated_at_str(&self) -> String {
        shopify_time(self.updated_at)
    }
}

/// `https://demo-store.example` for `demo-store.myshopify.com`.
pub fn storefront_base(shop: &str) -> String {
    let name = shop.strip_suffix(".myshopify.com").unwrap_or(shop);
    format!("https://{name}.example")
}

/// Money as Shopify's decimal string (`"49.0"` style is what the API returns for `Decimal`;
/// we use two decimals which clients parse the same way).
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

struct Department {
    product_type: &'static str,
    nouns: &'static [&'static str],
    materials: &'static [&'static str],
    price_range: (u64, u64),
    option: &'static str,
    values: &'static [&'static str],
    collection: &'static str,
}

const DEPARTMENTS: &[Department] = &[
    Department {
        product_type: "Jackets",
        nouns: &[
            "Rain Jacket",
            "Down Parka",
            "Softshell Jacket",
            "Insulated Vest",
            "Wind Shell",
            "Fleece Jacket",
        ],
        materials: &["Recycled Nylon", "Down", "Softshell", "Ripstop", "Sherpa"],
        price_range: (89, 449),
        option: "Size",
        values: &["XS", "S", "M", "L", "XL"],
        collection: "Outerwear",
    },
    Department {
        product_type: "Tops",
        nouns: &[
            "Base Layer",
            "Flannel Shirt",
            "Hoodie",
            "Crew Tee",
            "Quarter-Zip",
            "Sun Hoodie",
        ],
        materials: &["Merino", "Organic Cotton", "Hemp", "Bamboo", "Fleece"],
        price_range: (28, 129),
        option: "Size",
        values: &["S", "M", "L", "XL"],
        collection: "Apparel",
    },
    Department {
        product_type: "Footwear",
        nouns: &[
            "Hiking Boot",
            "Trail Runner",
            "Camp Sandal",
            "Approach Shoe",
            "Wool Sock",
        ],
        materials: &["Leather", "Mesh", "Vibram", "Suede", "Wool"],
        price_range: (18, 239),
        option: "Size",
        values: &["7", "8", "9", "10", "11", "12"],
        collection: "Footwear",
    },
    Department {
        product_type: "Camping Gear",
        nouns: &[
            "Two-Person Tent",
            "Sleeping Bag",
            "Sleeping Pad",
            "Camp Stove",
            "Hammock",
            "Headlamp",
            "Camp Chair",
        ],
        materials: &["Ultralight", "Ripstop", "Titanium", "Aluminum", "Canvas"],
        price_range: (24, 599),
        option: "Color",
        values: &["Forest", "Slate", "Ember", "Sand"],
        collection: "Camp",
    },
    Department {
        product_type: "Packs & Bags",
        nouns: &[
            "Daypack",
            "Backpacking Pack",
            "Duffel",
            "Hip Pack",
            "Dry Bag",
            "Tote",
        ],
        materials: &["Waxed Canvas", "Recycled Nylon", "Cordura", "Dyneema"],
        price_range: (29, 329),
        option: "Color",
        values: &["Black", "Olive", "Rust", "Navy"],
        collection: "Packs",
    },
    Department {
        product_type: "Home & Kitchen",
        nouns: &[
            "Enamel Mug",
            "Camp Blanket",
            "Soy Candle",
            "Pour-Over Set",
            "Cast Iron Skillet",
            "Insulated Bottle",
        ],
        materials: &["Enamel", "Wool", "Cedar", "Stainless", "Stoneware"],
        price_range: (14, 159),
        option: "Color",
        values: &["Cream", "Charcoal", "Pine", "Clay"],
        collection: "Home",
    },
    Department {
        product_type: "Accessories",
        nouns: &[
            "Beanie",
            "Trucker Hat",
            "Neck Gaiter",
            "Trekking Poles",
            "Sunglasses",
            "Gloves",
        ],
        materials: &["Merino", "Cotton", "Carbon", "Polarized", "Fleece"],
        price_range: (12, 149),
        option: "Color",
        values: &["Black", "Heather Grey", "Moss", "Orange"],
        collection: "Accessories",
    },
];

const PREFIXES: &[&str] = &[
    "Alpine",
    "Summit",
    "Ridgeline",
    "Coastal",
    "Canyon",
    "Timberline",
    "Glacier",
    "Basecamp",
    "Sierra",
    "Northwind",
    "Cascade",
    "Juniper",
    "Granite",
    "Backcountry",
    "Meadow",
    "Tundra",
    "Switchback",
    "Redwood",
    "Lakeside",
    "Driftwood",
];

const VENDORS: &[&str] = &[
    "Demo Outdoor Co.",
    "Northwind Supply",
    "Trailhead Goods",
    "Granite & Pine",
    "Cascade Works",
];

const FEATURES: &[&str] = &[
    "Built for long days on the trail",
    "Packs down small for travel",
    "Made with recycled materials",
    "Backed by our lifetime guarantee",
    "Designed and tested in the Pacific Northwest",
    "Weather-resistant finish",
    "Breathable and quick drying",
    "Lightweight without giving up durability",
    "Easy care: machine washable",
    "Reinforced at every stress point",
];

const EXTRA_TAGS: &[&str] = &[
    "new-arrival",
    "bestseller",
    "gift-idea",
    "sustainable",
    "sale",
    "staff-pick",
    "limited-edition",
];

/// Generates `count` products for `shop` deterministically from `seed`.
pub fn generate_catalog(seed: u64, count: usize) -> Vec<Product> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5107_1f1e_cafe_0001);
    let anchor = today_anchor();
    let mut handles: HashMap<String, u32> = HashMap::new();
    let mut products = Vec::with_capacity(count);

    for i in 0..count {
        let dept = &DEPARTMENTS[rng.gen_range(0..DEPARTMENTS.len())];
        let prefix = PREFIXES[rng.gen_range(0..PREFIXES.len())];
        let material = dept.materials[rng.gen_range(0..dept.materials.len())];
        let noun = dept.nouns[rng.gen_range(0..dept.nouns.len())];
        let title = format!("{prefix} {material} {noun}");

        let base_handle = slugify(&title);
        let seen = handles.entry(base_handle.clone()).or_insert(0);
        *seen += 1;
        let handle = if *seen == 1 {
            base_handle
        } else {
            format!("{base_handle}-{seen}")
        };

        let status = match rng.gen_range(0..100) {
            0..=84 => ProductStatus::Active,
            85..=90 => ProductStatus::Draft,
            91..=96 => ProductStatus::Archived,
            _ => ProductStatus::Unlisted,
        };
        let published = rng.gen_range(0..100) >= 5;
        let has_image = rng.gen_range(0..100) >= 5;
        let sold_out = rng.gen_range(0..100) < 8;

        let id = PRODUCT_ID_BASE + (i as u64) * 7 + 1;
        let vendor = VENDORS[rng.gen_range(0..VENDORS.len())];
        let base_price = rng.gen_range(dept.price_range.0..=dept.price_range.1) * 100
            + [0u64, 0, 95, 99, 50][rng.gen_range(0..5)];
        let on_sale = rng.gen_range(0..100) < 25;

        let n_variants = rng.gen_range(1..=4usize).min(dept.values.len());
        let start = rng.gen_range(0..=dept.values.len() - n_variants);
        let sku_stem: String = handle
            .split('-')
            .filter_map(|w| w.chars().next())
            .collect::<String>()
            .to_ascii_uppercase();
        let variants = (0..n_variants)
            .map(|v| {
                let value = dept.values[start + v];
                let price_cents = base_price + (v as u64) * 500 * u64::from(rng.gen_bool(0.3));
                let inventory = if sold_out { 0 } else { rng.gen_range(0..120) };
                Variant {
                    id: id * 100 + v as u64 + 1,
                    title: if n_variants == 1 {
                        "Default Title".to_string()
                    } else {
                        value.to_string()
                    },
                    option_name: dept.option,
                    sku: format!(
                        "{sku_stem}-{}-{}",
                        i + 1,
                        value.replace(' ', "").to_uppercase()
                    ),
                    price_cents,
                    compare_at_cents: on_sale
                        .then(|| (price_cents * rng.gen_range(120..=150) / 100) / 100 * 100),
                    inventory,
                    available: inventory > 0,
                }
            })
            .collect();

        let mut features: Vec<&str> = Vec::with_capacity(3);
        while features.len() < 3 {
            let f = FEATURES[rng.gen_range(0..FEATURES.len())];
            if !features.contains(&f) {
                features.push(f);
            }
        }
        let lead = format!(
            "The {title} is our take on the classic {} in {}.",
            noun.to_lowercase(),
            material.to_lowercase()
        );
        let description_html = format!(
            "<p>{lead}</p><ul>{}</ul>",
            features
                .iter()
                .map(|f| format!("<li>{f}</li>"))
                .collect::<String>()
        );
        let description = format!("{lead} {}", features.join(". ") + ".");

        let mut tags = vec![
            dept.collection.to_lowercase(),
            material.to_lowercase().replace(' ', "-"),
        ];
        if rng.gen_bool(0.5) {
            tags.push(EXTRA_TAGS[rng.gen_range(0..EXTRA_TAGS.len())].to_string());
        }

        let created_at = anchor - rng.gen_range(30..900) * 86_400 - rng.gen_range(0..86_400);
        // Fractional draw: rng consumption must not depend on today's date.
        let updated_at =
            created_at + (rng.gen::<f64>() * (anchor - 3_600 - created_at).max(0) as f64) as i64;

        products.push(Product {
            id,
            title,
            handle,
            description,
            description_html,
            product_type: dept.product_type.to_string(),
            vendor: vendor.to_string(),
            tags,
            status,
            published,
            has_image,
            created_at,
            updated_at,
            variants,
        });
    }
    products
}

/// The storefront collection a product type belongs to (used for Klaviyo "Collections").
pub fn collection_for(product_type: &str) -> &'static str {
    DEPARTMENTS
        .iter()
        .find(|d| d.product_type == product_type)
        .map(|d| d.collection)
        .unwrap_or("All")
}

/// First numeric id of a shop's own catalog (`POST /_sandbox/shopify/shops` with `catalog`):
/// above every generated id, and distinct per shop (see [`custom_catalog`]).
const CUSTOM_PRODUCT_ID_BASE: u64 = 8_200_000_000_000;
/// Most products a shop's own catalog may list (ids leave room for 142 per shop).
pub const MAX_CUSTOM_PRODUCTS: usize = 100;

/// One product of a shop's own catalog, as the seeding control takes it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub title: String,
    pub description: String,
    pub price_cents: u64,
    pub product_type: String,
    pub vendor: Option<String>,
    pub handle: Option<String>,
    pub tags: Vec<String>,
}

/// Exactly `entries` as products of the shop `shop_id` (its numeric id) sold by `default_vendor`
/// when an entry names none: ACTIVE, published, with an image and one available variant at the
/// entry's price. Ids are `8_200_000_000_000 + (shop_id % 1_000_000) * 1000 + 7i + 1`, so two
/// shops' catalogs never share an id; handles come from the titles when not given
/// ([`handle_from_title`]), made unique with `-2`, `-3`… Errors name the offending entry.
pub fn custom_catalog(
    shop_id: u64,
    default_vendor: &str,
    entries: &[CatalogEntry],
) -> Result<Vec<Product>, String> {
    if entries.len() > MAX_CUSTOM_PRODUCTS {
        return Err(format!(
            "'catalog' may list at most {MAX_CUSTOM_PRODUCTS} products"
        ));
    }
    let anchor = today_anchor();
    let base = CUSTOM_PRODUCT_ID_BASE + (shop_id % 1_000_000) * 1_000;
    let mut handles: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut products = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let handle = match &e.handle {
            Some(h) if !handles.insert(h.clone()) => {
                return Err(format!("catalog[{i}]: handle '{h}' is used twice"));
            }
            Some(h) => h.clone(),
            None => {
                let stem = Some(handle_from_title(&e.title))
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "product".to_string());
                let (mut handle, mut n) = (stem.clone(), 1);
                while handles.contains(&handle) {
                    n += 1;
                    handle = format!("{stem}-{n}");
                }
                handles.insert(handle.clone());
                handle
            }
        };
        let id = base + (i as u64) * 7 + 1;
        // Older products first, all created before today and untouched since the day after.
        let created_at = anchor - (60 + (entries.len() - i) as i64) * 86_400;
        let description_html = format!("<p>{}</p>", html_escape(&e.description));
        products.push(Product {
            id,
            title: e.title.clone(),
            handle,
            description: e.description.clone(),
            description_html,
            product_type: e.product_type.clone(),
            vendor: e
                .vendor
                .clone()
                .unwrap_or_else(|| default_vendor.to_string()),
            tags: e.tags.clone(),
            status: ProductStatus::Active,
            published: true,
            has_image: true,
            created_at,
            updated_at: created_at + 86_400,
            variants: vec![Variant {
                id: id * 100 + 1,
                title: "Default Title".to_string(),
                option_name: "Title",
                sku: format!("SP-{}-{}", shop_id % 1_000_000, i + 1),
                price_cents: e.price_cents,
                compare_at_cents: None,
                inventory: 50,
                available: true,
            }],
        });
    }
    Ok(products)
}

/// A price as a merchant types it (`"68.00"`, `"68"`, `"68.5"`) in cents; `None` unless it is a
/// non-negative decimal with at most two places.
/// A price given in a control's JSON body, as a decimal string ("68.00") or a number.
pub fn json_price_cents(v: Option<&serde_json::Value>) -> Option<u64> {
    match v {
        Some(serde_json::Value::String(s)) => parse_price_cents(s),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| (v * 100.0).round() as u64),
        _ => None,
    }
}

pub fn parse_price_cents(s: &str) -> Option<u64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// Shopify's handle for a title: lower case, Latin letters without their accents (`Crème` →
/// `creme`, `Straße` → `strasse`, `Łódź` → `lodz`), letters and digits of other scripts kept
/// as they are (a Japanese title keeps its characters), every other run of characters one `-`.
pub fn handle_from_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for c in title.chars().flat_map(char::to_lowercase) {
        let folded = fold_latin(c);
        if !folded.is_empty() {
            out.push_str(folded);
        } else if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// ASCII for an ASCII letter or digit and for the accented Latin letters of the European
/// languages; empty for anything else.
fn fold_latin(c: char) -> &'static str {
    const ASCII: &str = "0123456789abcdefghijklmnopqrstuvwxyz";
    if c.is_ascii_alphanumeric() {
        let i = ASCII.find(c.to_ascii_lowercase()).unwrap_or(0);
        return &ASCII[i..i + 1];
    }
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' | 'ĝ' | 'ġ' | 'ģ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' | 'ļ' => "l",
        'ñ' | 'ń' | 'ň' | 'ņ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ř' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => "",
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_deterministic_and_handles_unique() {
        let a = generate_catalog(7, 2000);
        let b = generate_catalog(7, 2000);
        assert_eq!(a.len(), 2000);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.id == y.id && x.handle == y.handle));
        let handles: std::collections::HashSet<_> = a.iter().map(|p| &p.handle).collect();
        assert_eq!(handles.len(), a.len());
        assert!(a.iter().any(|p| p.status == ProductStatus::Draft));
        assert!(a.iter().any(|p| p.variants.iter().all(|v| !v.available)));
    }

    #[test]
    fn handles_fold_latin_accents_and_keep_other_scripts() {
        assert_eq!(handle_from_title("Crème Brûlée Set"), "creme-brulee-set");
        assert_eq!(
            handle_from_title("Straßen-Läufer 2.0"),
            "strassen-laufer-2-0"
        );
        assert_eq!(handle_from_title("Łódź Koszula"), "lodz-koszula");
        assert_eq!(
            handle_from_title("  ウールの靴下 (Grau) "),
            "ウールの靴下-grau"
        );
        assert_eq!(handle_from_title("!!!"), "");
    }

    #[test]
    fn prices_parse_as_merchants_type_them() {
        assert_eq!(parse_price_cents("68.00"), Some(6800));
        assert_eq!(parse_price_cents("68"), Some(6800));
        assert_eq!(parse_price_cents("68.5"), Some(6850));
        assert_eq!(parse_price_cents("0.99"), Some(99));
        for bad in ["", "-1", "1.999", "abc", "1,00", ".5"] {
            assert_eq!(parse_price_cents(bad), None, "{bad}");
        }
    }

    #[test]
    fn custom_catalog_is_exact_with_unique_handles() {
        let entry = |title: &str| CatalogEntry {
            title: title.to_string(),
            description: "Soft & warm <wool>.".to_string(),
            price_cents: 6800,
            product_type: "Socks".to_string(),
            vendor: None,
            handle: None,
            tags: vec![],
        };
        let ps = custom_catalog(
            60_000_123_456,
            "Shop",
            &[entry("Wool Sock"), entry("Wool Sock"), entry("Wool Sock")],
        )
        .unwrap();
        let handles: Vec<&str> = ps.iter().map(|p| p.handle.as_str()).collect();
        assert_eq!(handles, ["wool-sock", "wool-sock-2", "wool-sock-3"]);
        assert_eq!(ps[0].id, 8_200_000_000_000 + 123_456_000 + 1);
        assert!(ps.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(
            ps[0].description_html,
            "<p>Soft &amp; warm &lt;wool&gt;.</p>"
        );
        assert!(ps
            .iter()
            .all(|p| p.vendor == "Shop" && p.variants.len() == 1));
    }
}
