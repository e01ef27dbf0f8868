//! catalog-sync: reads a merchant's active, published products from Shopify and replaces the
//! cached catalog whole. Triggered by the sync queue (on connect and `POST /catalog/sync`) and by
//! the EventBridge schedule, which queues one sync per connected shop.
//!
//! Products stream into the new generation chunk by chunk as Shopify delivers them (a page, or
//! a bulk export's JSONL as it downloads), so memory stays flat whatever the store's size. A
//! queued sync runs against the invocation's time budget; one that gives up (an error, the poll
//! limit, the budget) cancels its bulk export at Shopify and deletes what it wrote.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use serde_json::Value;
use shared::aws::catalog_store::CatalogStore;
use shared::aws::dynamo::AppStore;
use shared::aws::token_vault::AwsTokenVault;
use shared::aws::{queue::Queue, secrets::SecretStore, AwsError};
use shared::domain::CatalogProduct;
use shared::domain::{
    now_unix, ConnectionStatus, MerchantId, SyncMessage, SyncReason, SyncRequest, Vendor,
};
use shared::edge::{function::parse_event, sqs, Function, FunctionError};
use shared::shopify::catalog::{self, CatalogOptions, CatalogRead, CatalogSink, ReadError};
use shared::shopify::{ShopifyAdmin, ShopifyApp, ShopifyError, ShopifyUsage};
use shared::Config;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod product_events;
pub use product_events::ProductOutcome;

pub struct Handler {
    config: Config,
    store: AppStore,
    catalog: CatalogStore,
    secrets: SecretStore,
    sync_queue: Queue,
    http: reqwest::Client,
    app: ShopifyApp,
}

/// How often a running sync writes its progress to the connection record.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How long the syncs of one invocation may run: the function's 900 s timeout (template.yaml)
/// less room to cancel an abandoned export, delete a partial generation and record the error.
pub const SYNC_TIME_BUDGET: Duration = Duration::from_secs(780);
/// A queued sync does not start with less than this left of the budget: it goes back to the
/// queue instead of being abandoned half-way.
pub const MIN_TIME_TO_START: Duration = Duration::from_secs(120);

/// What one sync did and what it cost: the benchmark prints these.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub outcome: SyncOutcome,
    pub shopify: ShopifyUsage,
    pub ddb_requests: u64,
    pub elapsed: Duration,
    /// How the catalog was read (paged or bulk, products read and kept).
    pub read: CatalogRead,
}

impl SyncReport {
    fn new(outcome: SyncOutcome) -> Self {
        Self {
            outcome,
            shopify: ShopifyUsage::default(),
            ddb_requests: 0,
            elapsed: Duration::ZERO,
            read: CatalogRead::default(),
        }
    }
}

/// Writes a sync's products into its new generation as they are read.
struct GenerationWriter<'a> {
    catalog: &'a CatalogStore,
    merchant: &'a MerchantId,
    generation: &'a str,
}

#[async_trait]
impl CatalogSink for GenerationWriter<'_> {
    type Error = AwsError;
    async fn accept(&mut self, products: Vec<CatalogProduct>) -> Result<(), AwsError> {
        self.catalog
            .write_generation(self.merchant, self.generation, &products)
            .await
    }
}

/// How one sync ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    Replaced {
        generation: String,
        products: usize,
    },
    /// The merchant disconnected (or never connected): nothing to do, nothing to retry.
    NotConnected,
    /// Another sync swapped in first; ours was discarded.
    Superseded,
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        let secrets = SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone());
        let client_secret = secrets.shopify_client_secret(&config);
        Ok(Self {
            store: AppStore::from_sdk(&aws, &config.app_table),
            catalog: CatalogStore::from_sdk(&aws, &config.catalog_table),
            sync_queue: Queue::from_sdk(&aws, &config.sync_queue_url),
            secrets,
            http: shared::http_client(),
            app: ShopifyApp::from_config(&config, client_secret),
            config,
        })
    }

    /// The catalog store, for reading the cached generation (tests, benchmarks).
    pub fn catalog(&self) -> &CatalogStore {
        &self.catalog
    }

    /// A Shopify Admin session for the merchant's shop, its tokens kept fresh through the vault.
    pub(crate) fn admin_for(
        &self,
        merchant: &MerchantId,
        shop: &shared::domain::ShopDomain,
    ) -> ShopifyAdmin {
        let vault = AwsTokenVault::new(
            self.secrets.clone(),
            self.store.clone(),
            self.config.secret_name(merchant, Vendor::Shopify),
            shop,
        );
        ShopifyAdmin::new(
            self.http.clone(),
            self.app.clone(),
            shop.clone(),
            Arc::new(vault),
        )
    }

    /// Sync one merchant's catalog: write a new generation, swap it in, delete the old one.
    /// On failure the old generation stays live and the error shows on the connection.
    pub async fn sync(&self, merchant: &MerchantId) -> Result<SyncReport, FunctionError> {
        self.sync_with(merchant, &CatalogOptions::default()).await
    }

    /// Sync with explicit read options (the queue handler sets the invocation's deadline; the
    /// benchmark forces the paged read).
    pub async fn sync_with(
        &self,
        merchant: &MerchantId,
        options: &CatalogOptions,
    ) -> Result<SyncReport, FunctionError> {
        let started = Instant::now();
        let ddb_before = self.catalog.requests();
        let connection = match self.store.shopify(merchant).await? {
            Some(c) if c.status == ConnectionStatus::Connected => c,
            _ => return Ok(SyncReport::new(SyncOutcome::NotConnected)),
        };
        let admin = self.admin_for(merchant, &connection.shop);
        let generation = ulid::Ulid::new().to_string();

        let mut writer = GenerationWriter {
            catalog: &self.catalog,
            merchant,
            generation: &generation,
        };
        let read = self
            .read_showing_progress(merchant, &admin, options, &mut writer)
            .await;
        let mut report = SyncReport::new(SyncOutcome::NotConnected);
        report.shopify = admin.usage();
        let read = match read {
            Ok(read) => read,
            Err(err) => {
                // Part of the new generation may be written: invisible to readers, so remove it.
                self.discard(merchant, &generation).await;
                let (message, err): (String, FunctionError) = match err {
                    ReadError::Shopify(err) => (sync_error_message(&err), Box::new(err)),
                    ReadError::Sink(err) => (
                        "could not store the catalog; it will be retried".to_owned(),
                        Box::new(err),
                    ),
                };
                self.store
                    .record_sync_error(merchant, &message, now_unix())
                    .await?;
                tracing::warn!(merchant = merchant.as_str(), error = %err, "catalog sync failed; previous catalog kept");
                return Err(err);
            }
        };
        let products = read.kept;
        report.read = read;
        let old = connection.catalog_generation.as_deref();
        let swapped = self
            .store
            .swap_catalog_generation(merchant, old, &generation, products as u64, now_unix())
            .await?;
        report.outcome = if swapped {
            if let Some(old) = old {
                self.discard(merchant, old).await;
            }
            tracing::info!(
                merchant = merchant.as_str(),
                products,
                bulk = report.read.bulk,
                "catalog replaced"
            );
            SyncOutcome::Replaced {
                generation,
                products,
            }
        } else {
            self.discard(merchant, &generation).await;
            SyncOutcome::Superseded
        };
        report.ddb_requests = self.catalog.requests() - ddb_before;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Read the catalog into `sink` while a ticker shows the count read so far on the
    /// connection record.
    async fn read_showing_progress<S: CatalogSink>(
        &self,
        merchant: &MerchantId,
        admin: &ShopifyAdmin,
        options: &CatalogOptions,
        sink: &mut S,
    ) -> Result<CatalogRead, ReadError<S::Error>> {
        let read = AtomicUsize::new(0);
        let progress = |n: usize| read.store(n, Ordering::Relaxed);
        let fetch = catalog::read_catalog(admin, options, &progress, sink);
        tokio::pin!(fetch);
        let started_at = now_unix();
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tokio::select! {
                result = &mut fetch => return result,
                _ = ticker.tick() => {
                    let n = read.load(Ordering::Relaxed) as u64;
                    if let Err(err) = self.store.record_sync_progress(merchant, started_at, n).await {
                        tracing::warn!(error = %err, "could not record sync progress");
                    }
                }
            }
        }
    }

    /// Best effort: an orphaned generation is invisible to readers; the next sync's cleanup or
    /// the purge removes it.
    async fn discard(&self, merchant: &MerchantId, generation: &str) {
        if let Err(err) = self.catalog.delete_generation(merchant, generation).await {
            tracing::warn!(merchant = merchant.as_str(), error = %err, "could not delete a catalog generation");
        }
    }

    /// The schedule: queue one sync per connected shop, so each runs (and fails) on its own.
    pub async fn queue_scheduled_syncs(&self) -> Result<usize, AwsError> {
        let requests: Vec<SyncRequest> = self
            .store
            .merchants_with_connected_shop()
            .await?
            .into_iter()
            .map(|merchant_id| SyncRequest {
                merchant_id,
                reason: SyncReason::Scheduled,
            })
            .collect();
        self.sync_queue.send_all(&requests).await?;
        Ok(requests.len())
    }

    /// One queued message; `deadline` ends the invocation's time budget.
    async fn handle_record(
        &self,
        record: SqsMessage,
        deadline: Instant,
    ) -> Result<(), FunctionError> {
        let message: SyncMessage = serde_json::from_str(record.body.as_deref().unwrap_or_default())
            .map_err(|e| {
                format!("sync queue body is not a SyncRequest or a product signal: {e}")
            })?;
        let request = match message {
            SyncMessage::Full(request) => request,
            SyncMessage::Product(signal) => return self.handle_product_signal(&signal).await,
        };
        if deadline.saturating_duration_since(Instant::now()) < MIN_TIME_TO_START {
            // Earlier syncs of this batch used the time: SQS delivers this one again.
            return Err(
                "too little of the invocation's time budget is left to start a sync".into(),
            );
        }
        let options = CatalogOptions {
            deadline: Some(deadline),
            ..CatalogOptions::default()
        };
        let started = Instant::now();
        let outcome = self.sync_with(&request.merchant_id, &options).await;
        emit_sync_metrics(&outcome, started.elapsed());
        match outcome {
            Ok(_) => Ok(()),
            // Permanent failures are shown on the connection; redelivery would not help.
            Err(err) if is_permanent(err.as_ref()) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// One EMF document per sync (the runs dashboard's catalog widgets).
fn emit_sync_metrics(outcome: &Result<SyncReport, FunctionError>, elapsed: std::time::Duration) {
    match outcome {
        Ok(report) => {
            let (name, products) = match &report.outcome {
                SyncOutcome::Replaced { products, .. } => ("replaced", *products as u64),
                SyncOutcome::NotConnected => ("not_connected", 0),
                SyncOutcome::Superseded => ("superseded", 0),
            };
            shared::metrics::catalog_sync(
                name,
                products,
                &report.shopify,
                report.ddb_requests,
                elapsed,
            );
        }
        Err(_) => shared::metrics::catalog_sync("failed", 0, &Default::default(), 0, elapsed),
    }
}

fn is_permanent(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        err.downcast_ref::<ShopifyError>(),
        Some(
            ShopifyError::Unauthorized | ShopifyError::InvalidGrant | ShopifyError::ScopeNotGranted
        )
    )
}

/// What the merchant sees on `GET /connections`: what went wrong and what to do, no internals.
fn sync_error_message(err: &ShopifyError) -> String {
    match err {
        ShopifyError::Unauthorized | ShopifyError::InvalidGrant => {
            "Shopify rejected our access; reconnect the shop".to_owned()
        }
        ShopifyError::ScopeNotGranted => {
            "the read_products permission was not granted; reconnect the shop".to_owned()
        }
        ShopifyError::Throttled { .. } => {
            "Shopify rate limited the sync; it will be retried".to_owned()
        }
        ShopifyError::Bulk(_) => {
            "Shopify's catalog export failed or took too long; it will be retried".to_owned()
        }
        _ => "Shopify was unavailable during the sync; it will be retried".to_owned(),
    }
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        if event.get("Records").is_some() {
            let deadline = Instant::now() + SYNC_TIME_BUDGET;
            let event: SqsEvent = parse_event(event, "SQS")?;
            // One sync at a time per container: each one is already paced against Shopify.
            let response =
                sqs::for_each_record(event, 1, |record| self.handle_record(record, deadline)).await;
            return Ok(serde_json::to_value(response)?);
        }
        if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            let queued = self.queue_scheduled_syncs().await?;
            tracing::info!(queued, "scheduled catalog syncs queued");
            return Ok(serde_json::json!({ "queued": queued }));
        }
        Err("expected an SQS event or an EventBridge Scheduled Event".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_that_failed_or_ran_out_of_time_is_shown_as_retried_without_internals() {
        let message = sync_error_message(&ShopifyError::Bulk(
            "bulk operation still RUNNING after 720s".into(),
        ));
        assert!(message.contains("will be retried"), "{message}");
        assert!(!message.contains("RUNNING"), "{message}");
    }

    #[test]
    fn only_rejected_access_is_permanent() {
        assert!(is_permanent(&ShopifyError::Unauthorized));
        assert!(is_permanent(&ShopifyError::ScopeNotGranted));
        assert!(!is_permanent(&ShopifyError::Bulk("export canceled".into())));
        assert!(!is_permanent(&ShopifyError::Transient("stalled".into())));
    }

    /// The budget must end early enough that a sync giving up can still cancel its export and
    /// delete its partial generation before Lambda stops the invocation.
    #[test]
    fn the_sync_budget_ends_well_before_the_function_timeout() {
        let template = include_str!("../../../template.yaml");
        let section = &template[template
            .find("\n  CatalogSyncFunction:")
            .expect("the function is declared")..];
        let timeout: u64 = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("Timeout:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("the function declares its timeout");
        let cleanup = shared::shopify::bulk::CANCEL_WITHIN + Duration::from_secs(60);
        assert!(
            SYNC_TIME_BUDGET + cleanup <= Duration::from_secs(timeout),
            "budget {SYNC_TIME_BUDGET:?} + cleanup {cleanup:?} > timeout {timeout} s"
        );
        assert!(MIN_TIME_TO_START < SYNC_TIME_BUDGET);
    }
}
