//! The purges themselves. Each step deletes what exists and counts it; a second run finds
//! nothing and counts 0, so every purge can be retried from the start after a crash.

use super::Handler;
use shared::api::{AccountExport, CatalogSummary, PurgeReport, SecretPresence};
use shared::aws::audit::{merchant_subject, AuditEntry};
use shared::aws::dynamo::DELETED_ACCOUNT_TTL_SECS;
use shared::aws::purge::{connection_sk, key_of, merchant_pk, refresh_lock_key};
use shared::aws::token_vault::AwsTokenVault;
use shared::aws::AwsError;
use shared::domain::{
    now_unix, rfc3339, MerchantId, PurgeReason, PurgeRequest, ShopDomain, Vendor,
};
use shared::shopify::{uninstall::uninstall_app, ShopifyAdmin};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What started a purge (recorded in the audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The merchant, through the HTTP API.
    Api,
    /// Shopify, through a webhook (app/uninstalled, shop/redact).
    Webhook,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Webhook => "webhook",
        }
    }
}

#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    grant_revoked: Option<bool>,
}

impl Tally {
    fn add(&mut self, kind: &'static str, n: u64) {
        if n > 0 {
            *self.counts.entry(kind).or_default() += n;
        }
    }
    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.grant_revoked.is_none()
    }
}

pub struct Purge<'h> {
    pub(crate) handler: &'h Handler,
}

impl Purge<'_> {
    /// `DELETE /connections/klaviyo`: live runs are cancelled (reason `klaviyo_disconnected`)
    /// before the key goes, so no worker starts on a key that is about to vanish.
    pub async fn klaviyo(
        &self,
        merchant: &MerchantId,
        trigger: Trigger,
    ) -> Result<PurgeReport, AwsError> {
        self.handler.audit.ready().await?;
        let mut tally = Tally::default();
        let started = self.klaviyo_steps(merchant, &mut tally).await?;
        self.finish(merchant, "disconnect_klaviyo", trigger, started, tally)
            .await
    }

    /// `DELETE /connections/shopify` (revoke = true) and app/uninstalled (revoke = false: the
    /// token is already dead).
    pub async fn shopify(
        &self,
        merchant: &MerchantId,
        revoke: bool,
        trigger: Trigger,
    ) -> Result<PurgeReport, AwsError> {
        self.handler.audit.ready().await?;
        let mut tally = Tally::default();
        let started = self.shopify_steps(merchant, revoke, &mut tally).await?;
        self.finish(merchant, "disconnect_shopify", trigger, started, tally)
            .await
    }

    /// `DELETE /account`: first the tombstone that makes every route refuse the merchant's
    /// still-valid tokens (so nothing new is written while, or after, everything goes), then
    /// every Cognito session is signed out (no new tokens), then both sides, every record under
    /// the merchant (settings, runs and their batch markers), and last the Cognito user, so a
    /// crash leaves a user who can retry. An account that turns out not to exist keeps no
    /// tombstone: nothing to delete changes nothing.
    pub async fn account(
        &self,
        merchant: &MerchantId,
        username: &str,
    ) -> Result<PurgeReport, AwsError> {
        let h = self.handler;
        h.audit.ready().await?;
        let tombstoned = h
            .store
            .mark_account_deleted(merchant, DELETED_ACCOUNT_TTL_SECS)
            .await?;
        let mut tally = Tally::default();
        if let Some(users) = &h.users {
            tally.add("session", u64::from(users.sign_out(username).await?));
        }
        let started_shopify = self.shopify_steps(merchant, true, &mut tally).await?;
        let started_klaviyo = self.klaviyo_steps(merchant, &mut tally).await?;
        let mut keys = Vec::new();
        for item in h.store.partition_items(&merchant_pk(merchant)).await? {
            let Some((pk, sk)) = key_of(&item) else {
                continue;
            };
            if let Some(run_id) = sk.strip_prefix("RUN#") {
                let batches = h
                    .store
                    .partition_items(&format!("RUNBATCH#{run_id}"))
                    .await?;
                tally.add(
                    "run_batch",
                    h.store
                        .delete_keys(batches.iter().filter_map(key_of).collect())
                        .await?,
                );
                // The watchdog's entry of a run not yet over names the merchant.
                h.store
                    .delete_keys(vec![shared::aws::runs::live_run_key(merchant, run_id)])
                    .await?;
            }
            if let Some(trigger_id) = sk.strip_prefix("FLOWTRIGGER#") {
                // A flow trigger's own partition: the trigger (with its secret hashes), its day
                // counters and its replay marks (which name Klaviyo profile ids).
                let items = h
                    .store
                    .partition_items(&format!("FLOWTRIGGER#{trigger_id}"))
                    .await?;
                tally.add(
                    "flow_trigger_item",
                    h.store
                        .delete_keys(items.iter().filter_map(key_of).collect())
                        .await?,
                );
            }
            keys.push((pk, sk));
        }
        let runs = keys.iter().filter(|(_, sk)| sk.starts_with("RUN#")).count() as u64;
        let deleted = h.store.delete_keys(keys).await?;
        tally.add("run", runs.min(deleted));
        tally.add("record", deleted.saturating_sub(runs));
        if let Some(users) = &h.users {
            tally.add("user", u64::from(users.delete_user(username).await?));
        }
        if tally.is_empty() && tombstoned {
            h.store.unmark_account_deleted(merchant).await?;
        }
        let started = started_shopify.min(started_klaviyo);
        self.finish(merchant, "delete_account", Trigger::Api, started, tally)
            .await
    }

    /// PurgeQueue: app/uninstalled or shop/redact for a shop. The shop → merchant map finds the
    /// merchant; for shop/redact, when the map is gone already, a connection record still naming
    /// the shop does. A shop nobody holds anything for is a no-op.
    ///
    /// Only a merchant whose Shopify connection is this shop loses their Shopify side. A merchant
    /// the map still names who has moved on to another shop (a mapping left by a shop switch)
    /// keeps their current shop's token, catalog and connection: only the mapping goes.
    pub async fn shop(&self, request: &PurgeRequest) -> Result<Vec<PurgeReport>, AwsError> {
        let h = self.handler;
        let mut merchants: Vec<MerchantId> = h
            .store
            .shop_owner(&request.shop)
            .await?
            .into_iter()
            .collect();
        if merchants.is_empty() && request.reason == PurgeReason::ShopRedact {
            merchants = h.store.merchants_naming_shop(&request.shop).await?;
        }
        let action = match request.reason {
            PurgeReason::AppUninstalled => "app_uninstalled",
            PurgeReason::ShopRedact => "shop_redact",
        };
        if !merchants.is_empty() {
            h.audit.ready().await?;
        }
        let mut reports = Vec::new();
        for merchant in &merchants {
            let mut tally = Tally::default();
            let on_this_shop = h
                .store
                .shopify(merchant)
                .await?
                .is_some_and(|c| c.shop == request.shop);
            let started = if on_this_shop {
                self.shopify_steps(merchant, false, &mut tally).await?
            } else {
                tally.add(
                    "shop_mapping",
                    u64::from(h.store.release_shop(&request.shop, merchant).await?),
                );
                tracing::info!(
                    action,
                    shop = request.shop.as_str(),
                    "the merchant this shop maps to is not connected to it now; only the mapping is deleted"
                );
                now_unix()
            };
            reports.push(
                self.finish(merchant, action, Trigger::Webhook, started, tally)
                    .await?,
            );
        }
        // The refresh lock is keyed by shop; it expires by itself, but need not linger.
        let (lock_pk, lock_sk) = refresh_lock_key(&request.shop);
        h.store.delete_key(&lock_pk, &lock_sk).await?;
        if merchants.is_empty() {
            tracing::info!(
                action,
                shop = request.shop.as_str(),
                "nothing held for this shop"
            );
        }
        Ok(reports)
    }

    async fn klaviyo_steps(
        &self,
        merchant: &MerchantId,
        tally: &mut Tally,
    ) -> Result<i64, AwsError> {
        let h = self.handler;
        let started = h
            .store
            .mark_disconnecting(merchant, Vendor::Klaviyo)
            .await?
            .unwrap_or_else(now_unix);
        tally.add(
            "run_cancelled",
            h.store
                .cancel_live_runs(merchant, "klaviyo_disconnected")
                .await?,
        );
        tally.add(
            "secret",
            self.delete_secret(merchant, Vendor::Klaviyo).await?,
        );
        tally.add(
            "connection",
            u64::from(
                h.store
                    .delete_key(&merchant_pk(merchant), &connection_sk(Vendor::Klaviyo))
                    .await?,
            ),
        );
        Ok(started)
    }

    async fn shopify_steps(
        &self,
        merchant: &MerchantId,
        revoke: bool,
        tally: &mut Tally,
    ) -> Result<i64, AwsError> {
        let h = self.handler;
        let connection = h.store.shopify(merchant).await?;
        // 1. Stop syncs and swaps from writing (they require `connected`).
        let started = h
            .store
            .mark_disconnecting(merchant, Vendor::Shopify)
            .await?
            .unwrap_or_else(now_unix);
        // 2. Revoke the grant while the token still works (merchant-initiated only).
        if let (true, Some(conn)) = (revoke, connection.as_ref()) {
            tally.grant_revoked = Some(self.revoke_grant(merchant, &conn.shop).await);
        }
        // 3. The token pair.
        tally.add(
            "secret",
            self.delete_secret(merchant, Vendor::Shopify).await?,
        );
        // 4. The cached catalog: every generation (live, orphaned) with its tombstones.
        let mut generations = h.catalog.merchant_generations(merchant).await?;
        generations.extend(
            connection
                .as_ref()
                .and_then(|c| c.catalog_generation.clone()),
        );
        generations.sort();
        generations.dedup();
        for generation in generations {
            tally.add(
                "catalog_item",
                h.catalog.delete_generation(merchant, &generation).await?,
            );
        }
        // 5. The shop's mapping and refresh lock, and OAuth states still pending.
        if let Some(conn) = connection.as_ref() {
            tally.add(
                "shop_mapping",
                u64::from(h.store.release_shop(&conn.shop, merchant).await?),
            );
            let (lock_pk, lock_sk) = refresh_lock_key(&conn.shop);
            tally.add(
                "lock",
                u64::from(h.store.delete_key(&lock_pk, &lock_sk).await?),
            );
        }
        tally.add(
            "oauth_state",
            h.store
                .delete_keys(h.store.oauth_state_keys(merchant).await?)
                .await?,
        );
        // 6. Last, the record that says a purge is pending.
        tally.add(
            "connection",
            u64::from(
                h.store
                    .delete_key(&merchant_pk(merchant), &connection_sk(Vendor::Shopify))
                    .await?,
            ),
        );
        Ok(started)
    }

    /// `appUninstall` with the shop's token. Any failure (token already revoked, Shopify down)
    /// is reported, not fatal: the token is deleted next either way.
    async fn revoke_grant(&self, merchant: &MerchantId, shop: &ShopDomain) -> bool {
        let h = self.handler;
        let secret_name = h.config.secret_name(merchant, Vendor::Shopify);
        let vault = AwsTokenVault::new(h.secrets.clone(), h.store.clone(), secret_name, shop);
        let admin = ShopifyAdmin::new(h.http.clone(), h.app.clone(), shop.clone(), Arc::new(vault));
        match uninstall_app(&admin).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(merchant = merchant.as_str(), error = %err, "could not revoke the Shopify grant; deleting the token anyway");
                false
            }
        }
    }

    async fn delete_secret(&self, merchant: &MerchantId, vendor: Vendor) -> Result<u64, AwsError> {
        let h = self.handler;
        let name = h.config.secret_name(merchant, vendor);
        let existed = h.secrets.stored_at(&name).await?.is_some();
        h.secrets.delete(&name).await?;
        Ok(u64::from(existed))
    }

    async fn finish(
        &self,
        merchant: &MerchantId,
        action: &'static str,
        trigger: Trigger,
        started: i64,
        tally: Tally,
    ) -> Result<PurgeReport, AwsError> {
        let deleted: BTreeMap<String, u64> = tally
            .counts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        if tally.is_empty() {
            tracing::info!(
                action,
                trigger = trigger.as_str(),
                "purge found nothing to delete"
            );
            return Ok(PurgeReport {
                status: "nothing_to_delete".into(),
                deleted,
                grant_revoked: None,
            });
        }
        let entry = AuditEntry {
            action,
            trigger: trigger.as_str(),
            deleted: tally.counts.clone(),
            at: started,
        };
        self.handler
            .audit
            .record(&merchant_subject(merchant), &entry)
            .await?;
        tracing::info!(merchant = merchant.as_str(), action, trigger = trigger.as_str(), deleted = ?tally.counts, "purge complete");
        Ok(PurgeReport {
            status: "deleted".into(),
            deleted,
            grant_revoked: tally.grant_revoked,
        })
    }

    /// `GET /account/export`.
    pub async fn export(&self, merchant: &MerchantId) -> Result<AccountExport, AwsError> {
        let h = self.handler;
        let records = h.store.merchant_records(merchant).await?;
        let mut secrets = Vec::new();
        for (vendor, kind) in [
            (Vendor::Klaviyo, "private API key"),
            (Vendor::Shopify, "access and refresh token pair"),
        ] {
            if let Some(at) = h
                .secrets
                .stored_at(&h.config.secret_name(merchant, vendor))
                .await?
            {
                secrets.push(SecretPresence {
                    vendor: vendor.as_str().into(),
                    kind: kind.into(),
                    stored_at: rfc3339(at),
                });
            }
        }
        let connection = h.store.shopify(merchant).await?;
        let mut shop = None;
        let mut catalog = CatalogSummary::default();
        if let Some(conn) = connection {
            if h.store.shop_owner(&conn.shop).await?.as_ref() == Some(merchant) {
                shop = Some(conn.shop.as_str().to_owned());
            }
            if let Some(generation) = conn.catalog_generation {
                catalog.products = h
                    .catalog
                    .read_generation(merchant, &generation)
                    .await?
                    .len() as u64;
                catalog.generation = Some(generation);
            }
        }
        Ok(AccountExport {
            merchant_id: merchant.as_str().to_owned(),
            exported_at: rfc3339(now_unix()),
            records,
            secrets,
            shop,
            catalog,
            customer_data:
                "none: Klaviyo profiles and orders are processed in memory and never stored".into(),
        })
    }
}
