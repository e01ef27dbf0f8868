//! Small helpers shared by the vendor emulations: clocks, time formats, ids, query strings.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use rand::Rng;
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Klaviyo renders datetimes as `2024-05-01T12:00:00+00:00`.
pub fn klaviyo_time(ts: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Shopify renders `DateTime` scalars as `2024-05-01T12:00:00Z`.
pub fn shopify_time(ts: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Parses the datetime forms clients put in filters: RFC 3339 (with `Z` or an offset),
/// or a bare `YYYY-MM-DD` date (midnight UTC).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let date_fmt = format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &date_fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// Start of the current UTC day. Seeded histories are laid out relative to it so "recent"
/// filters keep matching whatever day the sandbox runs, while staying stable within a day.
pub fn today_anchor() -> i64 {
    let now = now_unix();
    now - now.rem_euclid(86_400)
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random alphanumeric id (Klaviyo's short ids for lists, metrics, accounts).
pub fn alnum_id(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

pub fn random_hex(rng: &mut impl Rng, bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
    hex::encode(buf)
}

/// RFC 4122-looking v4 UUID string from the given rng.
pub fn uuid_like(rng: &mut impl Rng) -> String {
    let h = random_hex(rng, 16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Decoded `key=value` pairs of a raw query string, in order.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `http://host:port` as the client addressed us; used to build absolute links the way the
/// real APIs do (they echo the public host, which locally is the sandbox's own address).
pub fn request_base(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| fallback.to_string())
}
