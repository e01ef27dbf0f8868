//! Shopify: OAuth and HMAC, the Admin GraphQL client that paces itself by the cost throttle,
//! bulk operations, and the catalog reader that maps products to `CatalogProduct`.
//!
//! Production code talks to `https://{shop}`; only the base URL template differs in tests. Every
//! GraphQL document sent is a checked-in `queries/*.graphql` file (validated against the pinned
//! schema and the `read_products` scope by `tests/fidelity/test_shopify_documents.py`).

pub mod admin;
pub mod bulk;
pub mod catalog;
pub mod error;
pub mod graphql;
pub mod oauth;
pub mod tokens;
pub mod uninstall;

pub use admin::{ShopifyAdmin, ShopifyApp};
pub use catalog::{fetch_catalog, fetch_catalog_with, fetch_product, CatalogOptions};
pub use error::ShopifyError;
pub use graphql::{ShopifyUsage, ThrottleStatus};
pub use tokens::{HeldTokens, ShopifyTokens, TokenVault, VaultError};
