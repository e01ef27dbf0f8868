//! `POST /webhooks/shopify`: Shopify's deliveries, verified before anything else.
//!
//! Order of checks, each answering at once:
//! 1. `X-Shopify-Hmac-Sha256` over the raw body bytes (constant time) → 401 problem+json.
//! 2. Body size, UTF-8 and JSON → 400 problem+json (a signed but broken delivery).
//! 3. Topic: the compliance topics about customers are acknowledged (we hold no customer data);
//!    an unknown topic is acknowledged and ignored (a non-2xx only makes Shopify retry for 4 h).
//! 4. Shop: a shop no merchant owns gets 200 and nothing happens (so Shopify stops retrying);
//!    `shop/redact` is queued for the purge whoever owns the shop (it erases what is left).
//! 5. Dedupe on `X-Shopify-Event-Id` (a conditional put with a TTL): a duplicate answers 200.
//! 6. Queue ids-only work (products → sync queue, app/uninstalled and shop/redact → purge queue)
//!    and answer well within Shopify's 5 s budget.
//!
//! Nothing from a payload is logged or stored: only the topic and, once verified, the shop.

use super::{internal, Handler};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use shared::api::WebhookAck;
use shared::domain::{
    now_unix, product_gid, MerchantId, ProductSignal, ProductSignalKind, PurgeReason, PurgeRequest,
    ShopDomain, WebhookTopic,
};
use shared::edge::http;
use shared::error::ApiError;
use shared::shopify::oauth;

/// Our limit for a webhook body (API Gateway's own is 1 MB). Product payloads with many
/// variants are the largest we subscribe to; they stay far below this.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 256 * 1024;
/// How long a delivery's event id is remembered: longer than Shopify's 4 h of retries, with room
/// for a manual re-send from the Dev Dashboard.
pub const DEDUPE_TTL_SECS: i64 = 3 * 24 * 3600;

fn ack(status: &str, detail: &str) -> ApiGatewayV2httpResponse {
    http::json(
        200,
        &WebhookAck {
            status: status.to_owned(),
            detail: detail.to_owned(),
        },
    )
}

fn header<'r>(req: &'r ApiGatewayV2httpRequest, name: &str) -> Option<&'r str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The raw body as Shopify sent it (API Gateway base64-encodes bodies it does not take for text).
fn raw_body(req: &ApiGatewayV2httpRequest) -> Option<Vec<u8>> {
    let body = req.body.as_deref().unwrap_or_default();
    if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD.decode(body).ok()
    } else {
        Some(body.as_bytes().to_vec())
    }
}

/// Shopify's event id: letters, digits and dashes (a UUID today).
fn event_id(req: &ApiGatewayV2httpRequest) -> Option<String> {
    let id = header(req, "x-shopify-event-id")
        .or_else(|| header(req, "x-shopify-webhook-id"))?
        .trim();
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| id.to_owned())
}

/// `X-Shopify-Triggered-At` (RFC 3339) in milliseconds; now when absent or unreadable.
fn triggered_at_ms(req: &ApiGatewayV2httpRequest) -> i64 {
    header(req, "x-shopify-triggered-at")
        .and_then(|t| {
            time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_else(|| now_unix() * 1000)
}

fn bad_body(detail: &str) -> ApiError {
    ApiError::InvalidWebhookBody(detail.to_owned())
}

impl Handler {
    pub(crate) async fn webhook(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        // 1. The signature, over the exact bytes, before anything is parsed or trusted.
        let signature = header(req, "x-shopify-hmac-sha256").unwrap_or_default();
        let Some(raw) = raw_body(req) else {
            return Err(ApiError::InvalidWebhookSignature);
        };
        if signature.is_empty()
            || !oauth::verify_webhook_hmac(
                self.client_secret.get().await?.expose(),
                &raw,
                signature,
            )
        {
            tracing::warn!("webhook rejected: missing or invalid X-Shopify-Hmac-Sha256");
            return Err(ApiError::InvalidWebhookSignature);
        }

        // 2. A signed body must still be one we can read.
        if raw.len() > MAX_WEBHOOK_BODY_BYTES {
            return Err(bad_body(&format!(
                "the body exceeds {MAX_WEBHOOK_BODY_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&raw).map_err(|_| bad_body("the body is not UTF-8"))?;
        let payload: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| bad_body("the body is not a complete JSON document"))?;
        if !payload.is_object() {
            return Err(bad_body("the body is not a JSON object"));
        }

        // 3. Topic and shop.
        let topic_header =
            header(req, "x-shopify-topic").ok_or_else(|| bad_body("X-Shopify-Topic is missing"))?;
        let shop = header(req, "x-shopify-shop-domain")
            .and_then(|s| ShopDomain::parse(s).ok())
            .ok_or_else(|| {
                bad_body("X-Shopify-Shop-Domain is missing or not a *.myshopify.com domain")
            })?;
        let Some(topic) = WebhookTopic::parse(topic_header) else {
            tracing::info!(
                shop = shop.as_str(),
                "webhook of a topic we do not subscribe to; ignored"
            );
            return Ok(ack(
                "ignored",
                "SendPersonal does not subscribe to this topic",
            ));
        };
        if topic.is_customer_compliance() {
            tracing::info!(
                topic = topic.as_str(),
                shop = shop.as_str(),
                "compliance webhook acknowledged"
            );
            return Ok(ack(
                "acknowledged",
                "SendPersonal stores no customer data: Klaviyo profiles are processed in memory and never kept, \
                 so there is nothing to report or redact for this customer",
            ));
        }

        // shop/redact (about 48 h after uninstall) needs no tenant: the purge finds whatever is
        // left for the shop, and purging twice is harmless, so it is queued as it comes.
        if topic == WebhookTopic::ShopRedact {
            let request = PurgeRequest {
                shop: shop.clone(),
                reason: PurgeReason::ShopRedact,
                requested_at: now_unix(),
            };
            self.purge_queue()?.send(&request).await.map_err(internal)?;
            tracing::info!(
                topic = topic.as_str(),
                shop = shop.as_str(),
                "shop redaction queued"
            );
            return Ok(ack("queued", "anything left for this shop will be erased"));
        }

        // 4. The tenant: the merchant who owns the shop.
        let Some(merchant) = self.store.shop_owner(&shop).await.map_err(internal)? else {
            tracing::info!(
                topic = topic.as_str(),
                shop = shop.as_str(),
                "webhook for a shop that is not connected; nothing to do"
            );
            return Ok(ack("ignored", "this shop is not connected to SendPersonal"));
        };

        // 5. Deliveries are at least once: the first one wins.
        let event =
            event_id(req).ok_or_else(|| bad_body("X-Shopify-Event-Id is missing or malformed"))?;
        if !self
            .store
            .mark_webhook_seen(&event, DEDUPE_TTL_SECS)
            .await
            .map_err(internal)?
        {
            tracing::info!(
                topic = topic.as_str(),
                shop = shop.as_str(),
                "duplicate webhook delivery ignored"
            );
            return Ok(ack("duplicate", "this event was already received"));
        }

        // 6. Hand the work to a queue; if that fails, forget the event so Shopify's retry counts.
        let queued = self
            .queue_webhook_work(topic, &merchant, &shop, &payload, triggered_at_ms(req))
            .await;
        if let Err(err) = queued {
            if let Err(forget) = self.store.forget_webhook(&event).await {
                tracing::warn!(error = %forget, "could not forget a webhook event after a queueing failure");
            }
            return Err(err);
        }
        tracing::info!(
            topic = topic.as_str(),
            shop = shop.as_str(),
            merchant = merchant.as_str(),
            "webhook queued"
        );
        Ok(ack("queued", "the event was accepted"))
    }

    async fn queue_webhook_work(
        &self,
        topic: WebhookTopic,
        merchant: &MerchantId,
        shop: &ShopDomain,
        payload: &serde_json::Value,
        triggered_at_ms: i64,
    ) -> Result<(), ApiError> {
        let product = |kind| -> Result<ProductSignal, ApiError> {
            let id = payload
                .get("id")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| bad_body("a product webhook needs a numeric id"))?;
            Ok(ProductSignal {
                kind,
                merchant_id: merchant.clone(),
                product_gid: product_gid(id),
                triggered_at_ms,
            })
        };
        let purge = |reason| PurgeRequest {
            shop: shop.clone(),
            reason,
            requested_at: now_unix(),
        };
        match topic {
            // The shop is the fair-queue tenant: one shop's burst of product edits does not
            // delay other shops' updates or scheduled syncs.
            WebhookTopic::ProductsCreate | WebhookTopic::ProductsUpdate => {
                let signal = product(ProductSignalKind::ProductChanged)?;
                self.sync_queue
                    .send_with(&signal, Some(shop.as_str()), 0)
                    .await
                    .map_err(internal)
            }
            WebhookTopic::ProductsDelete => {
                let signal = product(ProductSignalKind::ProductDeleted)?;
                self.sync_queue
                    .send_with(&signal, Some(shop.as_str()), 0)
                    .await
                    .map_err(internal)
            }
            WebhookTopic::AppUninstalled => self
                .purge_queue()?
                .send(&purge(PurgeReason::AppUninstalled))
                .await
                .map_err(internal),
            WebhookTopic::ShopRedact
            | WebhookTopic::CustomersDataRequest
            | WebhookTopic::CustomersRedact => Ok(()),
        }
    }

    fn purge_queue(&self) -> Result<&shared::aws::queue::Queue, ApiError> {
        self.purge_queue
            .as_ref()
            .ok_or_else(|| ApiError::Internal("PURGE_QUEUE_URL is not configured".into()))
    }
}
