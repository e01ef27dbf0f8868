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
    pub product_type: &'static str,
    pub vendor: &'static str,
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
                self.handle
            )
        })
    }

    /// Storefront URL; null (None) unless ACTIVE and published, like Shopify's `onlineStoreUrl`.
    pub fn online_store_url(&self, shop: &str) -> Option<String> {
        (self.status == ProductStatus::Active && self.published)
            .then(|| format!("{}/products/{}", storefront_base(shop), self.handle))
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
            product_type: dept.product_type,
            vendor,
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
}
