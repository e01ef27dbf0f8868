//! Authorization-code grant with expiring offline tokens. The sandbox plays the merchant who
//! clicks "Install": `authorize` immediately redirects back with a signed callback query.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use super::{AccessToken, AuthCode, RefreshToken, ShopifyStore};
use crate::state::{AppState, Stats};
use crate::util::{now_unix, query_pairs, random_hex};

const CODE_TTL: Duration = Duration::from_secs(60);
const REFRESH_TTL_SECS: u64 = 7_776_000;

fn html_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!DOCTYPE html><html><body><h1>Oauth error</h1><p>{message}</p></body></html>"),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({ "error": error, "error_description": description }).to_string(),
    )
        .into_response()
}

/// `host` callback parameter: base64 of the shop's admin URL, as Shopify sends it.
fn host_param(shop: &str) -> String {
    let name = shop.strip_suffix(".myshopify.com").unwrap_or(shop);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(format!("admin.shopify.com/store/{name}"))
}

pub async fn authorize(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    {
        let mut stats = st.stats();
        Stats::bump(&mut stats.shopify_requests, "GET oauth/authorize");
    }
    let params: HashMap<String, String> = query_pairs(q.as_deref()).into_iter().collect();
    let mut store = st.shopify();
    if !store.shops.contains_key(&shop) {
        return html_error(
            StatusCode::NOT_FOUND,
            "There's no longer a store at this address.",
        );
    }
    if params.get("client_id") != Some(&st.config.shopify_client_id) {
        return html_error(
            StatusCode::BAD_REQUEST,
            "invalid_request: The client_id is missing or invalid.",
        );
    }
    let Some(redirect) = params
        .get("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "invalid_request: The redirect_uri is missing or not whitelisted.",
        );
    };
    let scope = params.get("scope").cloned().unwrap_or_default();
    let code = random_hex(&mut store.rng, 16);
    store.codes.insert(
        code.clone(),
        AuthCode {
            shop: shop.clone(),
            scope,
            issued: Instant::now(),
            used: false,
        },
    );
    drop(store);

    let mut callback: Vec<(String, String)> = vec![
        ("code".into(), code),
        ("host".into(), host_param(&shop)),
        ("shop".into(), shop.clone()),
    ];
    if let Some(state) = params.get("state") {
        callback.push(("state".into(), state.clone()));
    }
    callback.push(("timestamp".into(), now_unix().to_string()));
    let hmac = crate::shopify_query_hmac(&st.config.shopify_client_secret, &callback);
    let mut location = redirect;
    {
        let mut qp = location.query_pairs_mut();
        qp.append_pair("code", &callback[0].1);
        qp.append_pair("hmac", &hmac);
        for (k, v) in &callback[1..] {
            qp.append_pair(k, v);
        }
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// Token endpoint parameters, from a JSON or form body (plus the query string).
fn token_params(headers: &HeaderMap, body: &[u8], query: Option<&str>) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = query_pairs(query).into_iter().collect();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                let s = match v {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                params.insert(k, s);
            }
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            params.insert(k.into_owned(), v.into_owned());
        }
    }
    params
}

fn issue_pair(
    st: &AppState,
    store: &mut ShopifyStore,
    shop: &str,
    scope: &str,
    predecessor: Option<String>,
) -> Value {
    let access = format!("shpat_{}", random_hex(&mut store.rng, 16));
    let refresh = format!("shprt_{}", random_hex(&mut store.rng, 16));
    let ttl = st.config.shopify_access_token_ttl_secs;
    store.access_tokens.insert(
        access.clone(),
        AccessToken {
            shop: shop.to_string(),
            scope: scope.to_string(),
            expires_at: Some(Instant::now() + Duration::from_secs(ttl)),
        },
    );
    store.refresh_tokens.insert(
        refresh.clone(),
        RefreshToken {
            shop: shop.to_string(),
            scope: scope.to_string(),
            expires_at: Instant::now() + Duration::from_secs(REFRESH_TTL_SECS),
            revoked: false,
            predecessor,
        },
    );
    json!({
        "access_token": access,
        "scope": scope,
        "expires_in": ttl,
        "refresh_token": refresh,
        "refresh_token_expires_in": REFRESH_TTL_SECS,
    })
}

pub async fn access_token(
    State(st): State<Arc<AppState>>,
    Path(shop): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut stats = st.stats();
        Stats::bump(&mut stats.shopify_requests, "POST oauth/access_token");
    }
    let params = token_params(&headers, &body, q.as_deref());
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != st.config.shopify_client_id
        || get("client_secret") != st.config.shopify_client_secret
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    let mut store = st.shopify();
    if !store.shops.contains_key(&shop) {
        return oauth_error(StatusCode::NOT_FOUND, "not_found", "Shop not found.");
    }

    if get("grant_type") == "refresh_token" {
        let token = get("refresh_token").to_string();
        let now = Instant::now();
        let valid = store
            .refresh_tokens
            .get(&token)
            .filter(|t| t.shop == shop && !t.revoked && now < t.expires_at)
            .map(|t| (t.scope.clone(), t.predecessor.clone()));
        let Some((scope, predecessor)) = valid else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            );
        };
        // First use of a rotated token retires the one it replaced.
        if let Some(prev) = predecessor.and_then(|p| store.refresh_tokens.get_mut(&p)) {
            prev.revoked = true;
        }
        if let Some(t) = store.refresh_tokens.get_mut(&token) {
            t.predecessor = None;
        }
        let body = issue_pair(&st, &mut store, &shop, &scope, Some(token));
        drop(store);
        Stats::bump(&mut st.stats().shopify_token_refreshes, &shop);
        return Json200(body).into_response();
    }

    let code = get("code").to_string();
    let granted = match store.codes.get_mut(&code) {
        Some(c) if !c.used && c.shop == shop && c.issued.elapsed() < CODE_TTL => {
            c.used = true;
            Some(c.scope.clone())
        }
        _ => None,
    };
    let Some(scope) = granted else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The authorization code was not found or was already used.",
        );
    };
    let expiring = matches!(get("expiring"), "1" | "true");
    if expiring {
        let body = issue_pair(&st, &mut store, &shop, &scope, None);
        return Json200(body).into_response();
    }
    // Legacy non-expiring offline token.
    let access = format!("shpat_{}", random_hex(&mut store.rng, 16));
    store.access_tokens.insert(
        access.clone(),
        AccessToken {
            shop: shop.clone(),
            scope: scope.clone(),
            expires_at: None,
        },
    );
    Json200(json!({ "access_token": access, "scope": scope })).into_response()
}

struct Json200(Value);

impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// The granted scope of a live access token for `shop`, if any.
pub fn check_access_token(store: &ShopifyStore, shop: &str, token: &str) -> Option<String> {
    let t = store.access_tokens.get(token)?;
    let live = t.expires_at.is_none_or(|exp| Instant::now() < exp);
    (t.shop == shop && live).then(|| t.scope.clone())
}

/// Expires every access token of `shop` now (control endpoint).
pub fn expire_access_tokens(store: &mut ShopifyStore, shop: &str) -> usize {
    let now = Instant::now();
    let mut n = 0;
    for t in store.access_tokens.values_mut().filter(|t| t.shop == shop) {
        t.expires_at = Some(now);
        n += 1;
    }
    n
}
