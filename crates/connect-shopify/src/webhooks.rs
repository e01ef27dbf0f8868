//! `POST /webhooks/shopify`: Shopify's deliveries, verified before anything else.
//!
//! Order of checks, each answering at once:
//! 1. `X-Shopify-Hmac-Sha256` over the raw body bytes (constant time), with the app's client
//!    secret or, during a rotation's grace, the previous one → 401 problem+json.
//! 2. Size: a signed body over [`MAX_WEBHOOK_BODY_BYTES`] → 413 problem+json (not processed;
//!    the 6-hourly catalog re-sync covers a product change). Then UTF-8 and one complete JSON
//!    object → 400 problem+json (a signed but broken delivery).
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
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use shared::api::WebhookAck;
use shared::domain::{
    now_unix, product_gid, MerchantId, ProductSignal, ProductSignalKind, PurgeReason, PurgeRequest,
    ShopDomain, WebhookTopic,
};
use shared::edge::http;
use shared::error::ApiError;
use shared::shopify::oauth;

/// Lambda's limit on a synchronous invocation's request: the whole API Gateway event (6 MiB;
/// API Gateway's own body limit, 10 MB, is higher, so this one binds).
pub const LAMBDA_REQUEST_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// What the event spends besides the body: headers, request context, JSON framing.
pub const EVENT_ENVELOPE_BYTES: usize = 64 * 1024;
/// Our limit for a webhook body: the largest whose API Gateway event still fits a Lambda
/// invocation when the body travels base64-encoded (4 bytes for every 3), 4,669,440 bytes. As
/// text the same limit holds while at most a third of the bytes are quotes or backslashes (JSON
/// escapes those in the event); Shopify's REST JSON has about a ninth. A product at Shopify's
/// variant limit (2,048 variants, with options and `variant_gids`) is about 1.3 MB, so this
/// leaves room for long descriptions, metafields and media lists.
pub const MAX_WEBHOOK_BODY_BYTES: usize =
    (LAMBDA_REQUEST_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES) / 4 * 3;
const _: () = assert!(
    MAX_WEBHOOK_BODY_BYTES.div_ceil(3) * 4 + EVENT_ENVELOPE_BYTES <= LAMBDA_REQUEST_PAYLOAD_BYTES
);
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

/// What the handler reads of a delivery: that the body is one complete JSON object, and its
/// top-level numeric `id` (products). Everything else streams past unread, so a product of
/// several megabytes is checked without building a tree of it.
#[derive(Debug, PartialEq)]
struct Payload {
    id: Option<u64>,
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectWithId;
        impl<'de> Visitor<'de> for ObjectWithId {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "id" && id.is_none() {
                        id = map.next_value::<serde_json::Value>()?.as_u64();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Payload { id })
            }
        }
        deserializer.deserialize_map(ObjectWithId)
    }
}

/// The body as a [`Payload`], or why it is not one.
fn parse_payload(raw: &[u8]) -> Result<Payload, ApiError> {
    std::str::from_utf8(raw).map_err(|_| bad_body("the body is not UTF-8"))?;
    serde_json::from_slice(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad_body("the body is not a JSON object"),
        _ => bad_body("the body is not a complete JSON document"),
    })
}

impl Handler {
    pub(crate) async fn webhook(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        // 1. The signature, over the exact bytes, before anything is parsed or trusted: the
        //    client secret, or the one it replaced while that rotation's grace lasts.
        let signature = header(req, "x-shopify-hmac-sha256").unwrap_or_default();
        let Some(raw) = raw_body(req) else {
            return Err(ApiError::InvalidWebhookSignature);
        };
        let signed_with = match signature {
            "" => None,
            given => {
                let secrets = self
                    .client_secret
                    .accepted_at(now_unix(), self.config.shopify_secret_grace_secs)
                    .await?;
                oauth::verify_webhook_hmac_any(secrets.iter().map(|s| s.expose()), &raw, given)
            }
        };
        let Some(signed_with) = signed_with else {
            tracing::warn!("webhook rejected: missing or invalid X-Shopify-Hmac-Sha256");
            return Err(ApiError::InvalidWebhookSignature);
        };
        if signed_with > 0 {
            tracing::info!("webhook signed with the previous client secret (rotation grace)");
        }

        // 2. A signed body must still be one we take and can read.
        if raw.len() > MAX_WEBHOOK_BODY_BYTES {
            tracing::warn!(
                topic = header(req, "x-shopify-topic")
                    .and_then(WebhookTopic::parse)
                    .map_or("unknown", WebhookTopic::as_str),
                bytes = raw.len(),
                limit = MAX_WEBHOOK_BODY_BYTES,
                "signed webhook over the body limit refused with 413"
            );
            // Shopify retries it (8 times over 4 h) and then drops the event; the 6-hourly
            // re-sync brings the catalog up to date.
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_WEBHOOK_BODY_BYTES,
                bytes: raw.len(),
            });
        }
        let payload = parse_payload(&raw)?;

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
        payload: &Payload,
        triggered_at_ms: i64,
    ) -> Result<(), ApiError> {
        let product = |kind| -> Result<ProductSignal, ApiError> {
            let id = payload
                .id
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_complete_json_object_is_a_payload_and_its_numeric_id_is_read() {
        let ok = |body: &str| parse_payload(body.as_bytes()).unwrap();
        assert_eq!(
            ok(r#"{"id": 7, "variants": [{"id": 9}]}"#),
            Payload { id: Some(7) }
        );
        assert_eq!(
            ok(r#"{"variants": [{"id": 9}], "id": 7}"#),
            Payload { id: Some(7) }
        );
        assert_eq!(ok(r#"{"shop_id": 1}"#), Payload { id: None });
        assert_eq!(ok(r#"{"id": "7"}"#), Payload { id: None });
        for (body, detail) in [
            (&b"[1, 2]"[..], "not a JSON object"),
            (b"\"text\"", "not a JSON object"),
            (br#"{"id": 7"#, "not a complete JSON document"),
            (br#"{"id": 7} {}"#, "not a complete JSON document"),
            (b"{\"t\": \"Caf\xe9\"}", "not UTF-8"),
        ] {
            let err = parse_payload(body).unwrap_err();
            assert!(err.to_string().contains(detail), "{err} for {body:?}");
        }
    }

    #[test]
    fn an_oversized_body_is_answered_with_a_413_problem_naming_the_limit() {
        let resp = http::problem(&ApiError::PayloadTooLarge {
            limit: MAX_WEBHOOK_BODY_BYTES,
            bytes: MAX_WEBHOOK_BODY_BYTES + 1,
        });
        assert_eq!(resp.status_code, 413);
        assert_eq!(resp.headers["content-type"], "application/problem+json");
        let body = match resp.body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => t,
            other => panic!("a text body, not {other:?}"),
        };
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            problem["type"],
            "https://sendpersonal.app/problems/payload-too-large"
        );
        assert_eq!(problem["status"], 413);
        assert!(problem["detail"].as_str().unwrap().contains("4669440"));
    }
}
