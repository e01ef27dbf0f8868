//! The one place that knows which crate implements which `Metadata.BuildProperties.Binary`.
//! Handlers are the same `Handler` types the Lambda binaries run, built with the same `init`.

use shared::edge::{Function, FunctionError};
use shared::Config;
use std::sync::Arc;

/// The binaries this runner can host.
pub const BINARIES: &[&str] = &[
    "connect-klaviyo",
    "connect-shopify",
    "catalog-sync",
    "personalize-fanout",
    "personalize-worker",
    "disconnect-purge",
    "flow-hooks",
    "flow-worker",
];

/// Builds the handler of `binary` (`None` if no crate of the workspace implements it).
pub async fn init(
    binary: &str,
    config: Config,
) -> Option<Result<Arc<dyn Function>, FunctionError>> {
    async fn boxed<F: Function + 'static>(
        f: impl std::future::Future<Output = Result<F, FunctionError>>,
    ) -> Result<Arc<dyn Function>, FunctionError> {
        Ok(Arc::new(f.await?) as Arc<dyn Function>)
    }
    Some(match binary {
        "connect-klaviyo" => boxed(connect_klaviyo::Handler::init(config)).await,
        "connect-shopify" => boxed(connect_shopify::Handler::init(config)).await,
        "catalog-sync" => boxed(catalog_sync::Handler::init(config)).await,
        "personalize-fanout" => boxed(personalize_fanout::Handler::init(config)).await,
        "personalize-worker" => boxed(personalize_worker::Handler::init(config)).await,
        "disconnect-purge" => boxed(disconnect_purge::Handler::init(config)).await,
        "flow-hooks" => boxed(flow_hooks::Handler::init(config)).await,
        "flow-worker" => boxed(flow_worker::Handler::init(config)).await,
        _ => return None,
    })
}
