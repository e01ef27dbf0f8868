//! The slice of the Admin GraphQL schema (2026-10) the sandbox serves. Used to validate
//! selections (unknown fields are errors, as on Shopify) and to price queries before running
//! them. Connection and edge types are synthesised as `Connection:<Node>` / `Edge:<Node>`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Scalar,
    Object(&'static str),
    /// A plain list of objects (not a connection).
    List(&'static str),
    Connection(&'static str),
}

use Ty::*;

/// Field type of `parent.field`, or None if the field doesn't exist on that type.
pub fn field_type(parent: &str, field: &str) -> Option<Ty> {
    if field == "__typename" {
        return Some(Scalar);
    }
    if let Some(node) = parent.strip_prefix("Connection:") {
        return match field {
            "edges" => Some(List(edge_type(node))),
            "nodes" => Some(List(static_name(node)?)),
            "pageInfo" => Some(Object("PageInfo")),
            _ => None,
        };
    }
    if let Some(node) = parent.strip_prefix("Edge:") {
        return match field {
            "node" => Some(Object(static_name(node)?)),
            "cursor" => Some(Scalar),
            _ => None,
        };
    }
    let t = match (parent, field) {
        ("QueryRoot", "products") => Connection("Product"),
        ("QueryRoot", "product") => Object("Product"),
        ("QueryRoot", "productByHandle") => Object("Product"),
        ("QueryRoot", "productsCount") => Object("Count"),
        ("QueryRoot", "shop") => Object("Shop"),
        ("QueryRoot", "nodes") => List("Node"),
        ("QueryRoot", "node") => Object("Node"),
        ("QueryRoot", "bulkOperation") => Object("BulkOperation"),
        ("QueryRoot", "currentBulkOperation") => Object("BulkOperation"),
        ("QueryRoot", "bulkOperations") => Connection("BulkOperation"),

        ("Mutation", "bulkOperationRunQuery") => Object("BulkOperationRunQueryPayload"),
        ("Mutation", "appUninstall") => Object("AppUninstallPayload"),
        ("Mutation", "bulkOperationCancel") => Object("BulkOperationCancelPayload"),
        ("BulkOperationCancelPayload", "bulkOperation") => Object("BulkOperation"),
        ("BulkOperationCancelPayload", "userErrors") => List("UserError"),
        ("UserError", "field" | "message") => Scalar,
        ("AppUninstallPayload", "app") => Object("App"),
        ("AppUninstallPayload", "userErrors") => List("AppUninstallAppUninstallError"),
        ("AppUninstallAppUninstallError", "field" | "message" | "code") => Scalar,
        ("App", "id" | "title" | "handle" | "apiKey") => Scalar,
        ("BulkOperationRunQueryPayload", "bulkOperation") => Object("BulkOperation"),
        ("BulkOperationRunQueryPayload", "userErrors") => List("BulkOperationUserError"),
        ("BulkOperationUserError", "field" | "message" | "code") => Scalar,
        (
            "BulkOperation",
            "completedAt" | "createdAt" | "errorCode" | "fileSize" | "id" | "objectCount"
            | "partialDataUrl" | "query" | "rootObjectCount" | "status" | "type" | "url",
        ) => Scalar,

        (
            "Product",
            "id"
            | "legacyResourceId"
            | "title"
            | "handle"
            | "description"
            | "descriptionHtml"
            | "productType"
            | "vendor"
            | "tags"
            | "status"
            | "onlineStoreUrl"
            | "onlineStorePreviewUrl"
            | "createdAt"
            | "updatedAt"
            | "publishedAt"
            | "totalInventory"
            | "totalVariants"
            | "hasOnlyDefaultVariant"
            | "hasOutOfStockVariants"
            | "tracksInventory"
            | "isGiftCard"
            | "templateSuffix"
            | "bodyHtml",
        ) => Scalar,
        ("Product", "featuredMedia") => Object("Media"),
        ("Product", "featuredImage") => Object("Image"),
        ("Product", "priceRangeV2") => Object("ProductPriceRangeV2"),
        ("Product", "priceRange") => Object("ProductPriceRange"),
        ("Product", "compareAtPriceRange") => Object("ProductCompareAtPriceRange"),
        ("Product", "seo") => Object("SEO"),
        ("Product", "variantsCount" | "mediaCount") => Object("Count"),
        ("Product", "variants") => Connection("ProductVariant"),
        ("Product", "media") => Connection("Media"),
        ("Product", "options") => List("ProductOption"),

        (
            "ProductVariant",
            "id" | "legacyResourceId" | "title" | "displayName" | "sku" | "barcode" | "price"
            | "compareAtPrice" | "availableForSale" | "inventoryQuantity" | "position"
            | "createdAt" | "updatedAt" | "taxable" | "inventoryPolicy",
        ) => Scalar,
        ("ProductVariant", "image") => Object("Image"),
        ("ProductVariant", "product") => Object("Product"),
        ("ProductVariant", "selectedOptions") => List("SelectedOption"),
        ("SelectedOption", "name" | "value") => Scalar,
        ("ProductOption", "id" | "name" | "position" | "values") => Scalar,

        ("Media" | "MediaImage", "alt" | "id" | "mediaContentType" | "status") => Scalar,
        ("Media" | "MediaImage", "preview") => Object("MediaPreviewImage"),
        ("MediaImage", "mimeType" | "createdAt" | "updatedAt") => Scalar,
        ("MediaImage", "image") => Object("Image"),
        ("MediaPreviewImage", "status") => Scalar,
        ("MediaPreviewImage", "image") => Object("Image"),
        (
            "Image",
            "id" | "url" | "altText" | "width" | "height" | "src" | "originalSrc"
            | "transformedSrc",
        ) => Scalar,

        ("ProductPriceRangeV2", "minVariantPrice" | "maxVariantPrice") => Object("MoneyV2"),
        ("ProductPriceRange", "minVariantPrice" | "maxVariantPrice") => Object("MoneyV2"),
        ("ProductCompareAtPriceRange", "minVariantCompareAtPrice" | "maxVariantCompareAtPrice") => {
            Object("MoneyV2")
        }
        ("MoneyV2", "amount" | "currencyCode") => Scalar,
        ("SEO", "title" | "description") => Scalar,
        ("Count", "count" | "precision") => Scalar,

        (
            "Shop",
            "id" | "name" | "email" | "contactEmail" | "currencyCode" | "myshopifyDomain"
            | "ianaTimezone" | "description" | "url",
        ) => Scalar,
        ("Shop", "primaryDomain") => Object("Domain"),
        ("Domain", "id" | "host" | "url" | "sslEnabled") => Scalar,

        ("Node", "id") => Scalar,
        ("PageInfo", "hasNextPage" | "hasPreviousPage" | "startCursor" | "endCursor") => Scalar,
        _ => {
            // Concrete node types answer every field of the interfaces they implement.
            if parent != "Node" && field == "id" && implements(parent, "Node") {
                return Some(Scalar);
            }
            return None;
        }
    };
    Some(t)
}

fn static_name(name: &str) -> Option<&'static str> {
    KNOWN_TYPES.iter().copied().find(|t| *t == name)
}

fn edge_type(node: &str) -> &'static str {
    match node {
        "Product" => "Edge:Product",
        "ProductVariant" => "Edge:ProductVariant",
        "Media" => "Edge:Media",
        "BulkOperation" => "Edge:BulkOperation",
        _ => "Edge:Unknown",
    }
}

const KNOWN_TYPES: &[&str] = &[
    "QueryRoot",
    "Mutation",
    "Product",
    "ProductVariant",
    "Media",
    "MediaImage",
    "Video",
    "ExternalVideo",
    "Model3d",
    "MediaPreviewImage",
    "Image",
    "ProductPriceRangeV2",
    "ProductPriceRange",
    "ProductCompareAtPriceRange",
    "MoneyV2",
    "SEO",
    "Count",
    "Shop",
    "Domain",
    "Node",
    "PageInfo",
    "SelectedOption",
    "ProductOption",
    "BulkOperation",
    "BulkOperationRunQueryPayload",
    "BulkOperationUserError",
    "BulkOperationCancelPayload",
    "UserError",
    "AppUninstallPayload",
    "AppUninstallAppUninstallError",
    "App",
];

pub fn type_exists(name: &str) -> bool {
    static_name(name).is_some()
}

/// Whether `concrete` is `abstract_` or implements it.
pub fn implements(concrete: &str, abstract_: &str) -> bool {
    concrete == abstract_
        || match abstract_ {
            "Media" => matches!(
                concrete,
                "MediaImage" | "Video" | "ExternalVideo" | "Model3d"
            ),
            "Node" => matches!(
                concrete,
                "Product"
                    | "ProductVariant"
                    | "MediaImage"
                    | "BulkOperation"
                    | "Shop"
                    | "Domain"
                    | "Image"
                    | "ProductOption"
            ),
            _ => false,
        }
}

/// Whether a fragment on `condition` may be spread inside a selection on `parent`.
pub fn fragment_applies_statically(parent: &str, condition: &str) -> bool {
    implements(parent, condition) || implements(condition, parent)
}

/// The GraphQL name users see for a (possibly synthesised) type.
pub fn display_name(t: &str) -> String {
    if let Some(n) = t.strip_prefix("Connection:") {
        format!("{n}Connection")
    } else if let Some(n) = t.strip_prefix("Edge:") {
        format!("{n}Edge")
    } else {
        t.to_string()
    }
}
