//! Shopify OAuth (authorization-code grant with expiring offline tokens) and HMAC checks for the
//! install/callback query and for webhooks. See NOTES §2.2–2.4.

use super::error::ShopifyError;
use super::tokens::ShopifyTokens;
use crate::domain::{now_unix, Secret};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The scope the app asks for and must be granted.
pub const REQUIRED_SCOPE: &str = "read_products";

/// How old a signed callback may be. Shopify stamps the redirect when it issues it; the merchant's
/// browser then follows it (possibly over a slow network, possibly after a cold Lambda start), so a
/// few seconds to a minute of age is normal. Five minutes bounds replay of a leaked callback URL
/// (whose `code` is single-use anyway and whose `state` is bound to a ~60 s cookie).
pub const CALLBACK_MAX_AGE_SECS: i64 = 300;
/// How far in the future a timestamp may be: clock skew between Shopify and us only (the ±90 s
/// Shopify's own Node library allows).
pub const CALLBACK_MAX_SKEW_SECS: i64 = 90;

/// How long after a client-secret rotation (`rotated_at` in the app secret, see
/// [`crate::domain::AppSecret`]) a webhook or OAuth callback signed with the previous
/// secret is still accepted, unless the rotation sets its own `grace_secs`. Shopify signs
/// webhooks with the app's oldest unrevoked secret and retries a failed delivery for 4 h with the
/// original payload, so deliveries signed before the old secret was revoked keep arriving for
/// that long; a day covers them and a revocation done later the same day.
pub const DEFAULT_SECRET_GRACE_SECS: i64 = 24 * 3600;

/// The exact message Shopify signs for a query: every pair except `hmac` and `signature`, sorted
/// by key, `k=v` joined with `&`; `%` and `&` escaped in keys and values, `=` also in keys.
pub fn query_hmac_message(pairs: &[(String, String)]) -> String {
    fn escape(s: &str, is_key: bool) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '%' => out.push_str("%25"),
                '&' => out.push_str("%26"),
                '=' if is_key => out.push_str("%3D"),
                c => out.push(c),
            }
        }
        out
    }
    let mut kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| (escape(k, true), escape(v, false)))
        .collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Hex HMAC-SHA256 of `message` under `secret`.
pub fn hex_hmac(secret: &str, message: &str) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Verify the `hmac` parameter of an install or callback query (decoded pairs, any order).
/// Exactly one `hmac` pair must be present; the comparison is constant-time.
pub fn verify_query_hmac(client_secret: &str, pairs: &[(String, String)]) -> bool {
    verify_query_hmac_any([client_secret], pairs).is_some()
}

/// [`verify_query_hmac`] with each secret that may have signed the query (the current client
/// secret, and the previous one during a rotation's grace): the position of the one that did.
/// Every secret is checked, each comparison constant-time.
pub fn verify_query_hmac_any<'s>(
    secrets: impl IntoIterator<Item = &'s str>,
    pairs: &[(String, String)],
) -> Option<usize> {
    let mut given = pairs.iter().filter(|(k, _)| k == "hmac");
    let (Some((_, given_hex)), None) = (given.next(), given.next()) else {
        return None;
    };
    let given_bytes = hex::decode(given_hex.trim()).ok()?;
    let message = query_hmac_message(pairs);
    first_match(secrets, message.as_bytes(), &given_bytes)
}

/// Verify `X-Shopify-Hmac-Sha256` (base64) over the raw request body, before any parsing.
pub fn verify_webhook_hmac(secret: &str, raw_body: &[u8], header_b64: &str) -> bool {
    verify_webhook_hmac_any([secret], raw_body, header_b64).is_some()
}

/// [`verify_webhook_hmac`] with each secret that may have signed the body (the current client
/// secret, and the previous one during a rotation's grace): the position of the one that did.
/// Every secret is checked, each comparison constant-time.
pub fn verify_webhook_hmac_any<'s>(
    secrets: impl IntoIterator<Item = &'s str>,
    raw_body: &[u8],
    header_b64: &str,
) -> Option<usize> {
    let given = base64::engine::general_purpose::STANDARD
        .decode(header_b64.trim())
        .ok()?;
    first_match(secrets, raw_body, &given)
}

/// The position of the first secret whose HMAC-SHA256 of `message` is `given`. No early exit:
/// how long the check takes does not depend on which secret matched, or whether one did.
fn first_match<'s>(
    secrets: impl IntoIterator<Item = &'s str>,
    message: &[u8],
    given: &[u8],
) -> Option<usize> {
    let mut found = None;
    for (i, secret) in secrets.into_iter().enumerate() {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
        mac.update(message);
        let matches = mac.verify_slice(given).is_ok();
        if matches && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// The browser binding of an install: `{nonce}.{hex HMAC}` under the app's client secret, with
/// a purpose prefix so this MAC can never stand in for one of Shopify's.
pub fn state_cookie_value(secret: &str, nonce: &str) -> String {
    format!(
        "{nonce}.{}",
        hex_hmac(secret, &format!("shopify-oauth-state:{nonce}"))
    )
}

/// The nonce a state cookie carries, if one of `secrets` signed it (constant-time, every
/// secret checked).
pub fn verify_state_cookie<'s>(
    secrets: impl IntoIterator<Item = &'s str>,
    value: &str,
) -> Option<String> {
    let (nonce, mac_hex) = value.split_once('.')?;
    let given = hex::decode(mac_hex).ok()?;
    let message = format!("shopify-oauth-state:{nonce}");
    first_match(secrets, message.as_bytes(), &given).map(|_| nonce.to_owned())
}

/// Whether a signed query's `timestamp` (unix seconds) is recent enough: at most
/// [`CALLBACK_MAX_AGE_SECS`] old and at most [`CALLBACK_MAX_SKEW_SECS`] ahead of `now`.
pub fn timestamp_is_fresh(ts: i64, now: i64) -> bool {
    let age = now.saturating_sub(ts);
    (-CALLBACK_MAX_SKEW_SECS..=CALLBACK_MAX_AGE_SECS).contains(&age)
}

/// The URL to send the merchant to: `{base}/admin/oauth/authorize?client_id&scope&redirect_uri&state`.
/// No `grant_options[]`, so Shopify issues an offline token.
pub fn authorize_url(
    base_url: &str,
    client_id: &str,
    scope: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("scope", scope)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .finish();
    format!(
        "{}/admin/oauth/authorize?{query}",
        base_url.trim_end_matches('/')
    )
}

/// Whether a granted scope list (comma-separated, as Shopify returns it) covers `read_products`.
/// Shopify omits implied scopes, so `write_products` alone also covers it.
pub fn scope_covers_read_products(granted: &str) -> bool {
    granted
        .split(',')
        .map(str::trim)
        .any(|s| s == REQUIRED_SCOPE || s == "write_products")
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    scope: String,
    expires_in: i64,
    refresh_token: String,
    refresh_token_expires_in: i64,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    #[serde(default)]
    error: String,
}

/// Trade the callback's `code` for an expiring offline token pair (`expiring=1`).
pub async fn exchange_code(
    http: &reqwest::Client,
    base_url: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
) -> Result<ShopifyTokens, ShopifyError> {
    let form = [
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("code", code),
        ("expiring", "1"),
    ];
    let tokens = token_request(http, base_url, &form).await?;
    if !scope_covers_read_products(&tokens.scope) {
        return Err(ShopifyError::ScopeNotGranted);
    }
    Ok(tokens)
}

/// Spend a refresh token for a new pair. The returned refresh token replaces the old one: persist
/// the pair before using it.
pub async fn refresh_tokens(
    http: &reqwest::Client,
    base_url: &str,
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
) -> Result<ShopifyTokens, ShopifyError> {
    let form = [
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_request(http, base_url, &form).await
}

async fn token_request(
    http: &reqwest::Client,
    base_url: &str,
    form: &[(&str, &str)],
) -> Result<ShopifyTokens, ShopifyError> {
    let url = format!(
        "{}/admin/oauth/access_token",
        base_url.trim_end_matches('/')
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let response = http
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(ShopifyError::network)?;
    let status = response.status();
    let retry_after = super::graphql::retry_after(response.headers());
    let text = response.text().await.map_err(ShopifyError::network)?;
    if status.is_success() {
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|_| {
            ShopifyError::Transient("unexpected token response from Shopify".into())
        })?;
        let now = now_unix();
        return Ok(ShopifyTokens {
            access_token: Secret::new(parsed.access_token),
            access_expires_at: now + parsed.expires_in,
            refresh_token: Secret::new(parsed.refresh_token),
            refresh_expires_at: now + parsed.refresh_token_expires_in,
            scope: parsed.scope,
        });
    }
    match status.as_u16() {
        429 => Err(ShopifyError::Throttled {
            retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(2)),
        }),
        s if s >= 500 => Err(ShopifyError::Transient(format!(
            "token endpoint returned HTTP {s}"
        ))),
        s => {
            let code = serde_json::from_str::<OAuthErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or_default();
            tracing::warn!(status = s, error = %code, "Shopify token request rejected");
            Err(ShopifyError::InvalidGrant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_cookie_verifies_only_as_signed_and_only_for_its_nonce() {
        let value = state_cookie_value("hush", "abc123");
        assert_eq!(
            verify_state_cookie(["old", "hush"], &value).as_deref(),
            Some("abc123")
        );
        assert_eq!(verify_state_cookie(["other"], &value), None);
        let swapped = value.replacen("abc123", "abc124", 1);
        assert_eq!(verify_state_cookie(["hush"], &swapped), None);
        assert_eq!(verify_state_cookie(["hush"], "abc123"), None, "unsigned");
        // Shopify's query HMAC of the same nonce is not a cookie signature.
        let query_mac = hex_hmac("hush", "abc123");
        assert_eq!(
            verify_state_cookie(["hush"], &format!("abc123.{query_mac}")),
            None
        );
    }

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const Q1_HEX: &str = "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf";
    const Q3_HEX: &str = "2cb1a277650a659f1b11e92a4a64275b128e037f2c3390e3c8fd2d8721dac9e2";

    #[test]
    fn q1_message_signs_to_the_published_digest() {
        let msg = "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173";
        assert_eq!(hex_hmac("hush", msg), Q1_HEX);
    }

    #[test]
    fn q3_message_signs_to_the_published_digest() {
        let msg = "code=a94a110d86d2452eb3e2af4cfb8a3828&shop=some-shop.myshopify.com&timestamp=1337178173";
        assert_eq!(hex_hmac("hush", msg), Q3_HEX);
    }

    #[test]
    fn q1_pairs_in_any_order_verify() {
        let shuffled = pairs(&[
            ("timestamp", "1337178173"),
            ("hmac", Q1_HEX),
            ("state", "0.6784241404160823"),
            ("shop", "some-shop.myshopify.com"),
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
        ]);
        assert!(verify_query_hmac("hush", &shuffled));
    }

    #[test]
    fn q3_pairs_verify_and_signature_param_is_ignored() {
        let shuffled = pairs(&[
            ("shop", "some-shop.myshopify.com"),
            ("signature", "anything"),
            ("timestamp", "1337178173"),
            ("code", "a94a110d86d2452eb3e2af4cfb8a3828"),
            ("hmac", Q3_HEX),
        ]);
        assert!(verify_query_hmac("hush", &shuffled));
    }

    #[test]
    fn tampered_value_fails_verification() {
        let tampered = pairs(&[
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("hmac", Q1_HEX),
            ("shop", "evil-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ]);
        assert!(!verify_query_hmac("hush", &tampered));
    }

    #[test]
    fn wrong_secret_missing_or_duplicate_hmac_fail() {
        let good = pairs(&[
            ("code", "a94a110d86d2452eb3e2af4cfb8a3828"),
            ("shop", "some-shop.myshopify.com"),
            ("timestamp", "1337178173"),
            ("hmac", Q3_HEX),
        ]);
        assert!(!verify_query_hmac("not-hush", &good));
        assert!(!verify_query_hmac("hush", &good[..3]));
        let mut dup = good.clone();
        dup.push(("hmac".into(), "00".into()));
        assert!(!verify_query_hmac("hush", &dup));
        let mut garbage = good[..3].to_vec();
        garbage.push(("hmac".into(), "zz-not-hex".into()));
        assert!(!verify_query_hmac("hush", &garbage));
    }

    #[test]
    fn message_escapes_percent_ampersand_and_equals_in_keys() {
        let msg = query_hmac_message(&pairs(&[("b", "x&y%z"), ("a=1", "v=w"), ("hmac", "h")]));
        assert_eq!(msg, "a%3D1=v=w&b=x%26y%25z");
    }

    #[test]
    fn w1_webhook_body_verifies_on_exact_bytes_only() {
        let header = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        assert!(verify_webhook_hmac(
            "test_secret_key",
            br#"{"foo": "bar"}"#,
            header
        ));
        assert!(!verify_webhook_hmac(
            "test_secret_key",
            br#"{"foo":"bar"}"#,
            header
        ));
        assert!(!verify_webhook_hmac(
            "other_secret",
            br#"{"foo": "bar"}"#,
            header
        ));
        assert!(!verify_webhook_hmac(
            "test_secret_key",
            br#"{"foo": "bar"}"#,
            "not base64!"
        ));
    }

    #[test]
    fn w1_verifies_with_any_accepted_secret_and_names_the_one_that_signed() {
        let header = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        let body = br#"{"foo": "bar"}"#;
        assert_eq!(
            verify_webhook_hmac_any(["test_secret_key", "other"], body, header),
            Some(0)
        );
        assert_eq!(
            verify_webhook_hmac_any(["new_secret", "test_secret_key"], body, header),
            Some(1)
        );
        assert_eq!(verify_webhook_hmac_any(["a", "b"], body, header), None);
        assert_eq!(verify_webhook_hmac_any([], body, header), None);
        assert_eq!(
            verify_webhook_hmac_any(["test_secret_key"], br#"{"foo":"bar"}"#, header),
            None
        );
    }

    #[test]
    fn q1_verifies_with_the_previous_secret_when_it_is_still_accepted() {
        let q1 = pairs(&[
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("hmac", Q1_HEX),
            ("shop", "some-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ]);
        assert_eq!(verify_query_hmac_any(["new", "hush"], &q1), Some(1));
        assert_eq!(verify_query_hmac_any(["new"], &q1), None);
    }

    #[test]
    fn timestamps_within_five_minutes_past_or_ninety_seconds_ahead_are_fresh() {
        let now = 1_800_000_000;
        assert!(timestamp_is_fresh(now, now));
        assert!(timestamp_is_fresh(now - 300, now));
        assert!(!timestamp_is_fresh(now - 301, now));
        assert!(timestamp_is_fresh(now + 90, now));
        assert!(!timestamp_is_fresh(now + 91, now));
        assert!(!timestamp_is_fresh(1337178173, now));
    }

    #[test]
    fn authorize_url_asks_for_an_offline_token() {
        let url = authorize_url(
            "https://demo.myshopify.com/",
            "cid",
            "read_products",
            "https://api.example/cb?x=1",
            "abc123",
        );
        assert!(url.starts_with("https://demo.myshopify.com/admin/oauth/authorize?"));
        assert!(url.contains("client_id=cid"));
        assert!(url.contains("scope=read_products"));
        assert!(url.contains("redirect_uri=https%3A%2F%2Fapi.example%2Fcb%3Fx%3D1"));
        assert!(url.contains("state=abc123"));
        assert!(!url.contains("grant_options"));
    }

    #[test]
    fn write_products_implies_read_products() {
        assert!(scope_covers_read_products("read_products"));
        assert!(scope_covers_read_products("read_orders, write_products"));
        assert!(!scope_covers_read_products("read_orders"));
        assert!(!scope_covers_read_products("read_products_extra"));
    }
}
