//! API Gateway HTTP API (payload v2) requests and responses.

use crate::domain::MerchantId;
use crate::error::ApiError;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use serde::{de::DeserializeOwned, Serialize};

/// Bodies larger than this are refused before parsing; no route of ours needs more.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// `"GET /connections"`: the route key API Gateway matched (`$default` when none did).
pub fn route_key(req: &ApiGatewayV2httpRequest) -> &str {
    req.route_key.as_deref().unwrap_or("$default")
}

/// The merchant named by the verified JWT. API Gateway's authorizer verified the token; we only
/// read its `sub` claim, never anything from the body.
pub fn merchant(req: &ApiGatewayV2httpRequest) -> Result<MerchantId, ApiError> {
    let sub = req
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .ok_or(ApiError::Unauthenticated)?;
    MerchantId::parse(sub).map_err(|_| ApiError::Unauthenticated)
}

/// The merchant named by the verified JWT, refused with [`ApiError::AccountDeleted`] when their
/// account was deleted: a token outlives the account (API Gateway checks only its signature and
/// expiry), so every authenticated route asks for this, one consistent GetItem, before it reads
/// or writes anything.
#[cfg(feature = "dynamodb")]
pub async fn live_merchant(
    req: &ApiGatewayV2httpRequest,
    store: &crate::aws::dynamo::AppStore,
) -> Result<MerchantId, ApiError> {
    let merchant = merchant(req)?;
    refuse_deleted(store, &merchant).await?;
    Ok(merchant)
}

/// [`ApiError::AccountDeleted`] when `merchant`'s account was deleted. For requests that act for
/// a merchant without their token (the OAuth callback), and for a second look just before a
/// write that followed slow vendor calls.
#[cfg(feature = "dynamodb")]
pub async fn refuse_deleted(
    store: &crate::aws::dynamo::AppStore,
    merchant: &MerchantId,
) -> Result<(), ApiError> {
    match store.account_deleted(merchant).await {
        Ok(false) => Ok(()),
        Ok(true) => {
            tracing::info!("request for a deleted account refused");
            Err(ApiError::AccountDeleted)
        }
        Err(err) => Err(ApiError::Internal(err.to_string())),
    }
}

pub fn body_bytes(req: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    let Some(body) = req.body.as_deref() else {
        return Ok(Vec::new());
    };
    let bytes = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| ApiError::InvalidRequest("body is not valid base64".into()))?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(bytes)
}

pub fn json_body<T: DeserializeOwned>(req: &ApiGatewayV2httpRequest) -> Result<T, ApiError> {
    let bytes = body_bytes(req)?;
    if bytes.is_empty() {
        return Err(ApiError::InvalidRequest("a JSON body is required".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message names the field and position, not the value.
        ApiError::InvalidRequest(format!("body is not the expected JSON: {e}"))
    })
}

/// The query string as decoded key/value pairs in their original order (HMAC checks need all).
pub fn query_pairs(req: &ApiGatewayV2httpRequest) -> Vec<(String, String)> {
    match req.raw_query_string.as_deref() {
        Some(raw) if !raw.is_empty() => url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect(),
        _ => req
            .query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

pub fn json<T: Serialize>(status: u16, body: &T) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    response(status, "application/json", text)
}

pub fn problem(err: &ApiError) -> ApiGatewayV2httpResponse {
    if let ApiError::Internal(cause) = err {
        tracing::error!(error = %cause, "request failed");
    }
    let text = serde_json::to_string(&err.problem()).unwrap_or_default();
    let mut resp = response(err.status(), "application/problem+json", text);
    if let Some(secs) = err.retry_after_secs() {
        resp.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

pub fn redirect(location: &str) -> ApiGatewayV2httpResponse {
    let mut resp = response(302, "text/plain", String::new());
    if let Ok(value) = HeaderValue::from_str(location) {
        resp.headers.insert(header::LOCATION, value);
    }
    resp
}

pub fn response(status: u16, content_type: &str, body: String) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut resp = ApiGatewayV2httpResponse::default();
    resp.status_code = i64::from(status);
    resp.headers = headers;
    resp.body = Some(Body::Text(body));
    resp
}

/// Map a handler's outcome to a response.
pub fn respond(result: Result<ApiGatewayV2httpResponse, ApiError>) -> ApiGatewayV2httpResponse {
    result.unwrap_or_else(|err| problem(&err))
}
