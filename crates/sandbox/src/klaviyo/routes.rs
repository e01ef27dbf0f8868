//! Klaviyo route handlers and JSON:API rendering.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::data::{Group, GroupKind, ImportError, ImportJob, KlaviyoStore, Profile};
use super::filter::{self, Condition, FilterValue};
use super::limits::Tier;
use super::{authorize, ApiError, Ctx, RouteSpec};
use crate::state::AppState;
use crate::util::{
    alnum_id, b64url, b64url_decode, klaviyo_time, now_unix, parse_datetime, query_get, query_pairs,
};

type Result<T> = std::result::Result<T, ApiError>;

const MAX_PATCH_BYTES: usize = 100 * 1024;
const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
const MAX_IMPORT_PROFILES: usize = 10_000;
const MAX_ANY_VALUES: usize = 100;

/// Runs the common prologue (auth, revision, scopes, rate limit) then the handler body.
fn run(
    st: &AppState,
    headers: &HeaderMap,
    route: &RouteSpec,
    tier_override: Option<(&'static str, Tier)>,
    body: impl FnOnce(&Ctx) -> Result<(StatusCode, Value)>,
) -> Response {
    let bucket = tier_override.unwrap_or((route.key(), route.tier));
    // Import jobs take effect when they finish, whether or not anyone polls them.
    complete_due_jobs(&mut st.klaviyo());
    let ctx = match authorize(st, headers, route, bucket) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    match body(&ctx) {
        Ok((status, value)) => ctx.respond(status, value),
        Err(e) => e.into_response(),
    }
}

// ---------- paging, links, sparse fieldsets ----------

fn page_size(pairs: &[(String, String)], default: usize, max: usize) -> Result<usize> {
    match query_get(pairs, "page[size]") {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_param(
                "page[size]",
                format!("Page size must be an integer between 1 and {max}."),
            )),
        },
    }
}

fn cursor_offset(pairs: &[(String, String)]) -> Result<usize> {
    let Some(raw) = query_get(pairs, "page[cursor]") else {
        return Ok(0);
    };
    b64url_decode(raw)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("next::offset::").map(str::to_owned))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError::invalid_param("page[cursor]", "Invalid page cursor."))
}

fn encode_cursor(offset: usize) -> String {
    b64url(format!("next::offset::{offset}").as_bytes())
}

fn url_with(base: &str, path: &str, pairs: &[(String, String)], cursor: Option<usize>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "page[cursor]") {
        ser.append_pair(k, v);
    }
    if let Some(c) = cursor {
        ser.append_pair("page[cursor]", &encode_cursor(c));
    }
    let qs = ser.finish();
    if qs.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{qs}")
    }
}

/// `links` for one page: `self` always, `next`/`prev` only when they exist (the spec types
/// them as non-nullable strings, so they are omitted rather than null).
fn collection_links(
    ctx: &Ctx,
    path: &str,
    pairs: &[(String, String)],
    offset: usize,
    size: usize,
    total: usize,
) -> Value {
    let mut links = Map::new();
    let self_url = if query_get(pairs, "page[cursor]").is_some() {
        url_with(&ctx.base, path, pairs, Some(offset))
    } else {
        url_with(&ctx.base, path, pairs, None)
    };
    links.insert("self".into(), json!(self_url));
    if offset + size < total {
        links.insert(
            "next".into(),
            json!(url_with(&ctx.base, path, pairs, Some(offset + size))),
        );
    }
    if offset > 0 {
        links.insert(
            "prev".into(),
            json!(url_with(
                &ctx.base,
                path,
                pairs,
                Some(offset.saturating_sub(size))
            )),
        );
    }
    Value::Object(links)
}

fn page<T: Copy>(items: &[T], offset: usize, size: usize) -> Vec<T> {
    items.iter().skip(offset).take(size).copied().collect()
}

/// Applies `fields[<type>]=a,b` to a resource's attributes.
fn apply_sparse(resource: &mut Value, pairs: &[(String, String)], type_name: &str) {
    let Some(fields) = query_get(pairs, &format!("fields[{type_name}]")) else {
        return;
    };
    let keep: Vec<&str> = fields
        .split(',')
        .map(|f| f.trim().split('.').next().unwrap_or(""))
        .collect();
    if let Some(attrs) = resource
        .get_mut("attributes")
        .and_then(Value::as_object_mut)
    {
        attrs.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn parse_filter(pairs: &[(String, String)]) -> Result<Vec<Condition>> {
    match query_get(pairs, "filter") {
        None => Ok(Vec::new()),
        Some(f) => filter::parse(f).map_err(|e| {
            ApiError::invalid_param("filter", format!("Invalid filter provided: {e}"))
        }),
    }
}

fn unsupported_filter(c: &Condition) -> ApiError {
    ApiError::invalid_param(
        "filter",
        format!(
            "'{}' is not a valid operator for field '{}'.",
            c.op, c.field
        ),
    )
}

fn filter_strings(c: &Condition) -> Result<Vec<String>> {
    match (&*c.op, &c.value) {
        ("equals", v) => v
            .as_text()
            .map(|s| vec![s.to_string()])
            .ok_or_else(|| unsupported_filter(c)),
        ("any", FilterValue::List(items)) => {
            if items.len() > MAX_ANY_VALUES {
                return Err(ApiError::invalid_param(
                    "filter",
                    format!("'any' accepts at most {MAX_ANY_VALUES} values."),
                ));
            }
            Ok(items
                .iter()
                .filter_map(|v| v.as_text().map(str::to_owned))
                .collect())
        }
        _ => Err(unsupported_filter(c)),
    }
}

/// Evaluates a datetime comparison filter against `ts`.
fn time_matches(c: &Condition, ts: i64) -> Result<bool> {
    let bound = c.value.as_text().and_then(parse_datetime).ok_or_else(|| {
        ApiError::invalid_param(
            "filter",
            format!("Invalid datetime in filter for '{}'.", c.field),
        )
    })?;
    Ok(match c.op.as_str() {
        "greater-or-equal" => ts >= bound,
        "greater-than" => ts > bound,
        "less-than" => ts < bound,
        "less-or-equal" => ts <= bound,
        "equals" => ts == bound,
        _ => return Err(unsupported_filter(c)),
    })
}

fn rel_links(ctx: &Ctx, own: &str, rel: &str) -> Value {
    json!({
        "links": {
            "self": format!("{}{own}relationships/{rel}/", ctx.base),
            "related": format!("{}{own}{rel}/", ctx.base),
        }
    })
}

// ---------- accounts ----------

pub async fn get_accounts(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::ACCOUNTS, None, |ctx| {
        let store = st.klaviyo();
        let data: Vec<Value> = store
            .accounts
            .iter()
            .filter(|a| a.id == ctx.account_id)
            .map(|a| {
                let mut r = json!({
                    "type": "account",
                    "id": a.id,
                    "attributes": {
                        "test_account": false,
                        "contact_information": {
                            "default_sender_name": a.name,
                            "default_sender_email": "hello@demo-outdoor.example",
                            "website_url": "https://demo-store.example",
                            "organization_name": a.name,
                            "street_address": {
                                "address1": "100 Trailhead Way", "address2": null,
                                "city": "Portland", "region": "OR", "country": "US", "zip": "97205",
                            },
                        },
                        "industry": "Apparel & Accessories",
                        "timezone": "America/Los_Angeles",
                        "preferred_currency": "USD",
                        "public_api_key": a.public_api_key,
                        "locale": "en-US",
                    },
                    "links": { "self": format!("{}/api/accounts/{}/", ctx.base, a.id) },
                });
                apply_sparse(&mut r, &pairs, "account");
                r
            })
            .collect();
        Ok((
            StatusCode::OK,
            json!({ "data": data, "links": { "self": url_with(&ctx.base, "/api/accounts/", &pairs, None) } }),
        ))
    })
}

// ---------- lists & segments ----------

fn group_json(ctx: &Ctx, g: &Group, pairs: &[(String, String)]) -> Value {
    let (kind, path) = match g.kind {
        GroupKind::List => ("list", "lists"),
        GroupKind::Segment => ("segment", "segments"),
    };
    let own = format!("/api/{path}/{}/", g.id);
    let mut attributes = json!({
        "name": g.name,
        "created": klaviyo_time(g.created),
        "updated": klaviyo_time(g.updated),
    });
    if let Some(a) = attributes.as_object_mut() {
        match g.kind {
            GroupKind::List => {
                a.insert("opt_in_process".into(), json!("single_opt_in"));
            }
            GroupKind::Segment => {
                a.insert("is_active".into(), json!(true));
                a.insert("is_processing".into(), json!(false));
                a.insert("is_starred".into(), json!(false));
            }
        }
        let wants_count = query_get(pairs, &format!("additional-fields[{kind}]"))
            .is_some_and(|f| f.split(',').any(|x| x == "profile_count"));
        if wants_count {
            a.insert("profile_count".into(), json!(g.members.len()));
        }
    }
    let mut r = json!({
        "type": kind,
        "id": g.id,
        "attributes": attributes,
        "relationships": {
            "profiles": rel_links(ctx, &own, "profiles"),
            "tags": rel_links(ctx, &own, "tags"),
        },
        "links": { "self": format!("{}{own}", ctx.base) },
    });
    apply_sparse(&mut r, pairs, kind);
    r
}

fn group_collection(
    ctx: &Ctx,
    groups: &[Group],
    path: &str,
    pairs: &[(String, String)],
) -> Result<(StatusCode, Value)> {
    let size = page_size(pairs, 10, 10)?;
    let offset = cursor_offset(pairs)?;
    let conditions = parse_filter(pairs)?;
    let mut selected: Vec<&Group> = groups.iter().collect();
    for c in &conditions {
        let wanted = filter_strings(c)?;
        match c.field.as_str() {
            "name" => selected.retain(|g| wanted.contains(&g.name)),
            "id" => selected.retain(|g| wanted.contains(&g.id)),
            _ => return Err(unsupported_filter(c)),
        }
    }
    if let Some(sort) = query_get(pairs, "sort") {
        let (desc, field) = sort.strip_prefix('-').map_or((false, sort), |f| (true, f));
        match field {
            "id" => selected.sort_by(|a, b| a.id.cmp(&b.id)),
            "name" => selected.sort_by(|a, b| a.name.cmp(&b.name)),
            "created" => selected.sort_by_key(|g| g.created),
            "updated" => selected.sort_by_key(|g| g.updated),
            _ => {
                return Err(ApiError::invalid_param(
                    "sort",
                    format!("'{sort}' is not a valid sort field."),
                ))
            }
        }
        if desc {
            selected.reverse();
        }
    }
    let data: Vec<Value> = selected
        .iter()
        .skip(offset)
        .take(size)
        .map(|g| group_json(ctx, g, pairs))
        .collect();
    Ok((
        StatusCode::OK,
        json!({ "data": data, "links": collection_links(ctx, path, pairs, offset, size, selected.len()) }),
    ))
}

pub async fn get_lists(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::LISTS, None, |ctx| {
        group_collection(ctx, &st.klaviyo().lists, "/api/lists/", &pairs)
    })
}

pub async fn get_segments(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::SEGMENTS, None, |ctx| {
        group_collection(ctx, &st.klaviyo().segments, "/api/segments/", &pairs)
    })
}

fn group_members(
    ctx: &Ctx,
    store: &KlaviyoStore,
    kind: GroupKind,
    id: &str,
    pairs: &[(String, String)],
) -> Result<(StatusCode, Value)> {
    let (groups, path) = match kind {
        GroupKind::List => (&store.lists, "lists"),
        GroupKind::Segment => (&store.segments, "segments"),
    };
    let group = groups.iter().find(|g| g.id == id).ok_or_else(|| {
        ApiError::not_found(format!(
            "A {} with id {id} does not exist.",
            &path[..path.len() - 1]
        ))
    })?;
    let size = page_size(pairs, 20, 100)?;
    let offset = cursor_offset(pairs)?;
    let data: Vec<Value> = page(&group.members, offset, size)
        .into_iter()
        .map(|i| json!({ "type": "profile", "id": store.profiles[i].id }))
        .collect();
    let own = format!("/api/{path}/{id}/relationships/profiles/");
    Ok((
        StatusCode::OK,
        json!({ "data": data, "links": collection_links(ctx, &own, pairs, offset, size, group.members.len()) }),
    ))
}

pub async fn get_list_members(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::LIST_MEMBERS, None, |ctx| {
        group_members(ctx, &st.klaviyo(), GroupKind::List, &id, &pairs)
    })
}

pub async fn get_segment_members(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::SEGMENT_MEMBERS, None, |ctx| {
        group_members(ctx, &st.klaviyo(), GroupKind::Segment, &id, &pairs)
    })
}

// ---------- profiles ----------

struct ProfileExtras {
    predictive: bool,
    subscriptions: bool,
}

fn profile_extras(pairs: &[(String, String)]) -> Result<ProfileExtras> {
    let mut extras = ProfileExtras {
        predictive: false,
        subscriptions: false,
    };
    if let Some(raw) = query_get(pairs, "additional-fields[profile]") {
        for f in raw.split(',').map(str::trim) {
            match f {
                "predictive_analytics" => extras.predictive = true,
                "subscriptions" => extras.subscriptions = true,
                other => {
                    return Err(ApiError::invalid_param(
                        "additional-fields[profile]",
                        format!("'{other}' is not a valid field for the resource 'profile'."),
                    ))
                }
            }
        }
    }
    Ok(extras)
}

fn profile_json(
    ctx: &Ctx,
    p: &Profile,
    extras: &ProfileExtras,
    pairs: &[(String, String)],
) -> Value {
    let own = format!("/api/profiles/{}/", p.id);
    let mut attributes = json!({
        "email": p.email,
        "phone_number": p.phone_number,
        "external_id": p.external_id,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "organization": null,
        "locale": null,
        "title": null,
        "image": null,
        "created": klaviyo_time(p.created),
        "updated": klaviyo_time(p.updated),
        "last_event_date": p.last_event_date.map(klaviyo_time),
        "location": p.location,
        "properties": p.properties,
    });
    if let Some(a) = attributes.as_object_mut() {
        if extras.predictive {
            // Present for every profile; values are null unless Klaviyo could model them.
            let pa = match &p.predictive {
                Some(x) => json!({
                    "historic_clv": x.historic_clv,
                    "predicted_clv": x.predicted_clv,
                    "total_clv": ((x.historic_clv + x.predicted_clv) * 100.0).round() / 100.0,
                    "historic_number_of_orders": x.historic_orders,
                    "predicted_number_of_orders": x.predicted_orders,
                    "average_days_between_orders": x.avg_days_between,
                    "average_order_value": x.aov,
                    "churn_probability": x.churn,
                    "expected_date_of_next_order": klaviyo_time(x.next_order),
                    "ranked_channel_affinity": ["email", "sms"],
                }),
                None => json!({
                    "historic_clv": null, "predicted_clv": null, "total_clv": null,
                    "historic_number_of_orders": null, "predicted_number_of_orders": null,
                    "average_days_between_orders": null, "average_order_value": null,
                    "churn_probability": null, "expected_date_of_next_order": null,
                    "ranked_channel_affinity": null,
                }),
            };
            a.insert("predictive_analytics".into(), pa);
        }
        if extras.subscriptions {
            let subscribed = p
                .properties
                .get("Accepts Marketing")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            a.insert(
                "subscriptions".into(),
                json!({
                    "email": { "marketing": {
                        "can_receive_email_marketing": subscribed,
                        "consent": if subscribed { "SUBSCRIBED" } else { "UNSUBSCRIBED" },
                        "consent_timestamp": klaviyo_time(p.created),
                        "last_updated": klaviyo_time(p.created),
                        "method": "SHOPIFY", "method_detail": "",
                        "custom_method_detail": null, "double_optin": null,
                        "suppression": [], "list_suppressions": [],
                    }},
                }),
            );
        }
    }
    let mut r = json!({
        "type": "profile",
        "id": p.id,
        "attributes": attributes,
        "relationships": {
            "lists": rel_links(ctx, &own, "lists"),
            "segments": rel_links(ctx, &own, "segments"),
        },
        "links": { "self": format!("{}{own}", ctx.base) },
    });
    apply_sparse(&mut r, pairs, "profile");
    r
}

/// GET /api/profiles with predictive analytics runs on the lower M tier.
fn profiles_bucket(pairs: &[(String, String)]) -> Option<(&'static str, Tier)> {
    query_get(pairs, "additional-fields[profile]")
        .is_some_and(|f| f.contains("predictive_analytics"))
        .then_some(("/api/profiles#predictive_analytics", Tier::M))
}

pub async fn get_profiles(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(
        &st,
        &headers,
        &super::PROFILES,
        profiles_bucket(&pairs),
        |ctx| {
            let store = st.klaviyo();
            let size = page_size(&pairs, 20, 100)?;
            let offset = cursor_offset(&pairs)?;
            let extras = profile_extras(&pairs)?;
            let mut selected: Vec<usize> = (0..store.profiles.len()).collect();
            for c in parse_filter(&pairs)? {
                match c.field.as_str() {
                    "id" => {
                        let ids = filter_strings(&c)?;
                        let mut idx: Vec<usize> = ids
                            .iter()
                            .filter_map(|id| store.profile_index.get(id).copied())
                            .collect();
                        idx.sort_unstable();
                        idx.dedup();
                        selected.retain(|i| idx.binary_search(i).is_ok());
                    }
                    "email" | "phone_number" | "external_id" => {
                        let wanted = filter_strings(&c)?;
                        selected.retain(|&i| {
                            let p = &store.profiles[i];
                            let v = match c.field.as_str() {
                                "email" => &p.email,
                                "phone_number" => &p.phone_number,
                                _ => &p.external_id,
                            };
                            v.as_ref()
                                .is_some_and(|v| wanted.iter().any(|w| w.eq_ignore_ascii_case(v)))
                        });
                    }
                    "created" | "updated" => {
                        let mut keep = Vec::with_capacity(selected.len());
                        for &i in &selected {
                            let p = &store.profiles[i];
                            let ts = if c.field == "created" {
                                p.created
                            } else {
                                p.updated
                            };
                            if time_matches(&c, ts)? {
                                keep.push(i);
                            }
                        }
                        selected = keep;
                    }
                    _ => return Err(unsupported_filter(&c)),
                }
            }
            if let Some(sort) = query_get(&pairs, "sort") {
                let (desc, field) = sort.strip_prefix('-').map_or((false, sort), |f| (true, f));
                let p = &store.profiles;
                match field {
                    "id" => selected.sort_by(|a, b| p[*a].id.cmp(&p[*b].id)),
                    "created" => selected.sort_by_key(|i| p[*i].created),
                    "updated" => selected.sort_by_key(|i| p[*i].updated),
                    "email" => selected.sort_by(|a, b| p[*a].email.cmp(&p[*b].email)),
                    _ => {
                        return Err(ApiError::invalid_param(
                            "sort",
                            format!("'{sort}' is not a valid sort field."),
                        ))
                    }
                }
                if desc {
                    selected.reverse();
                }
            }
            let data: Vec<Value> = page(&selected, offset, size)
                .into_iter()
                .map(|i| profile_json(ctx, &store.profiles[i], &extras, &pairs))
                .collect();
            Ok((
                StatusCode::OK,
                json!({ "data": data, "links": collection_links(ctx, "/api/profiles/", &pairs, offset, size, selected.len()) }),
            ))
        },
    )
}

pub async fn get_profile(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(
        &st,
        &headers,
        &super::PROFILE,
        profiles_bucket(&pairs),
        |ctx| {
            let store = st.klaviyo();
            let extras = profile_extras(&pairs)?;
            let idx = store.profile_index.get(&id).copied().ok_or_else(|| {
                ApiError::not_found(format!("A profile with id {id} does not exist."))
            })?;
            Ok((
                StatusCode::OK,
                json!({
                    "data": profile_json(ctx, &store.profiles[idx], &extras, &pairs),
                    "links": { "self": format!("{}/api/profiles/{id}/", ctx.base) },
                }),
            ))
        },
    )
}

/// Merges `properties` like Klaviyo: keys present are set, `null` clears, others untouched.
fn merge_properties(target: &mut Map<String, Value>, incoming: &Map<String, Value>) {
    for (k, v) in incoming {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

fn apply_profile_attributes(p: &mut Profile, attrs: &Map<String, Value>) {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    for (k, v) in attrs {
        match k.as_str() {
            "email" => p.email = text(v),
            "phone_number" => p.phone_number = text(v),
            "external_id" => p.external_id = text(v),
            "first_name" => p.first_name = text(v),
            "last_name" => p.last_name = text(v),
            "location" => {
                if let (Some(loc), Some(new)) = (p.location.as_object_mut(), v.as_object()) {
                    for (lk, lv) in new {
                        loc.insert(lk.clone(), lv.clone());
                    }
                }
            }
            "properties" => {
                if let Some(props) = v.as_object() {
                    merge_properties(&mut p.properties, props);
                }
            }
            _ => {}
        }
    }
}

fn apply_unset(p: &mut Profile, meta: Option<&Value>) {
    let unset = meta
        .and_then(|m| m.get("patch_properties"))
        .and_then(|pp| pp.get("unset"));
    match unset {
        Some(Value::String(k)) => {
            p.properties.remove(k);
        }
        Some(Value::Array(keys)) => {
            for k in keys.iter().filter_map(Value::as_str) {
                p.properties.remove(k);
            }
        }
        _ => {}
    }
}

pub async fn patch_profile(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::PATCH_PROFILE, None, |ctx| {
        if body.len() > MAX_PATCH_BYTES {
            return Err(ApiError::too_large(
                "The request payload exceeds the maximum size of 100 KB.",
            ));
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_pointer("/data", format!("Malformed JSON: {e}")))?;
        let data = doc
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::invalid_pointer("/data", "'data' is a required object."))?;
        if data.get("type").and_then(Value::as_str) != Some("profile") {
            return Err(ApiError::invalid_pointer(
                "/data/type",
                "'type' must be 'profile'.",
            ));
        }
        match data.get("id").and_then(Value::as_str) {
            Some(body_id) if body_id == id => {}
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "Conflict.",
                    "The id in the body does not match the id in the URL.",
                ))
            }
            None => return Err(ApiError::invalid_pointer("/data/id", "'id' is required.")),
        }
        let attrs = data
            .get("attributes")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ApiError::invalid_pointer("/data/attributes", "'attributes' is a required object.")
            })?;
        if let Some(props) = attrs.get("properties") {
            if !props.is_object() && !props.is_null() {
                return Err(ApiError::invalid_pointer(
                    "/data/attributes/properties",
                    "'properties' must be an object.",
                ));
            }
        }
        let extras = profile_extras(&pairs)?;
        let mut store = st.klaviyo();
        let idx = store.profile_index.get(&id).copied().ok_or_else(|| {
            ApiError::not_found(format!("A profile with id {id} does not exist."))
        })?;
        let p = &mut store.profiles[idx];
        apply_profile_attributes(p, attrs);
        apply_unset(p, data.get("meta"));
        p.updated = now_unix();
        let out = profile_json(ctx, &store.profiles[idx], &extras, &pairs);
        Ok((
            StatusCode::OK,
            json!({ "data": out, "links": { "self": format!("{}/api/profiles/{id}/", ctx.base) } }),
        ))
    })
}

// ---------- metrics & events ----------

pub async fn get_metrics(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::METRICS, None, |ctx| {
        let store = st.klaviyo();
        let offset = cursor_offset(&pairs)?;
        let size = 200;
        let mut selected: Vec<usize> = (0..store.metrics.len()).collect();
        for c in parse_filter(&pairs)? {
            let key = match c.field.as_str() {
                "integration.name" => "name",
                "integration.category" => "category",
                _ => return Err(unsupported_filter(&c)),
            };
            let wanted = filter_strings(&c)?;
            selected.retain(|&i| {
                store.metrics[i]
                    .integration
                    .as_ref()
                    .and_then(|v| v.get(key))
                    .and_then(Value::as_str)
                    .is_some_and(|v| wanted.iter().any(|w| w == v))
            });
        }
        let data: Vec<Value> = page(&selected, offset, size)
            .into_iter()
            .map(|i| {
                let m = &store.metrics[i];
                let own = format!("/api/metrics/{}/", m.id);
                let mut r = json!({
                    "type": "metric",
                    "id": m.id,
                    "attributes": {
                        "name": m.name,
                        "created": klaviyo_time(m.created),
                        "updated": klaviyo_time(m.created),
                        "integration": m.integration,
                    },
                    "relationships": { "flow-triggers": rel_links(ctx, &own, "flow-triggers") },
                    "links": { "self": format!("{}{own}", ctx.base) },
                });
                apply_sparse(&mut r, &pairs, "metric");
                r
            })
            .collect();
        Ok((
            StatusCode::OK,
            json!({ "data": data, "links": collection_links(ctx, "/api/metrics/", &pairs, offset, size, selected.len()) }),
        ))
    })
}

pub async fn get_events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::EVENTS, None, |ctx| {
        let store = st.klaviyo();
        let size = page_size(&pairs, 200, 1000)?;
        let offset = cursor_offset(&pairs)?;
        let conditions = parse_filter(&pairs)?;
        let mut profile: Option<usize> = None;
        let mut profile_filtered = false;
        let mut metric_ids: Option<Vec<String>> = None;
        let mut time_conds = Vec::new();
        for c in conditions {
            match c.field.as_str() {
                "profile_id" => {
                    if c.op != "equals" {
                        return Err(unsupported_filter(&c));
                    }
                    let id = filter_strings(&c)?.pop().unwrap_or_default();
                    profile_filtered = true;
                    profile = store.profile_index.get(&id).copied();
                }
                "metric_id" => {
                    if c.op != "equals" {
                        return Err(unsupported_filter(&c));
                    }
                    metric_ids = Some(filter_strings(&c)?);
                }
                "datetime" | "timestamp" => time_conds.push(c),
                _ => return Err(unsupported_filter(&c)),
            }
        }
        let candidates: Vec<usize> = match (profile_filtered, profile) {
            (true, Some(p)) => store.events_by_profile[p].clone(),
            (true, None) => Vec::new(),
            (false, _) => (0..store.events.len()).collect(),
        };
        let metric_idx: Option<Vec<usize>> = metric_ids.map(|ids| {
            (0..store.metrics.len())
                .filter(|&i| ids.contains(&store.metrics[i].id))
                .collect()
        });
        let mut selected = Vec::with_capacity(candidates.len());
        let now = Instant::now();
        for ei in candidates {
            let e = &store.events[ei];
            // Freshly tracked events take a while to become readable (ingest lag).
            if e.readable_at.is_some_and(|at| at > now) {
                continue;
            }
            if metric_idx.as_ref().is_some_and(|m| !m.contains(&e.metric)) {
                continue;
            }
            let mut ok = true;
            for c in &time_conds {
                ok &= time_matches(c, e.ts)?;
            }
            if ok {
                selected.push(ei);
            }
        }
        match query_get(&pairs, "sort") {
            None | Some("datetime") | Some("timestamp") => {}
            Some("-datetime") | Some("-timestamp") => selected.reverse(),
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "sort",
                    format!("'{other}' is not a valid sort field."),
                ))
            }
        }
        let data: Vec<Value> = page(&selected, offset, size)
            .into_iter()
            .map(|ei| {
                let e = &store.events[ei];
                let pid = &store.profiles[e.profile].id;
                let mid = &store.metrics[e.metric].id;
                let own = format!("/api/events/{}/", e.id);
                let mut r = json!({
                    "type": "event",
                    "id": e.id,
                    "attributes": {
                        "timestamp": e.ts,
                        "event_properties": store.event_properties(e),
                        "datetime": klaviyo_time(e.ts),
                        "uuid": e.uuid,
                    },
                    "relationships": {
                        "profile": {
                            "data": { "type": "profile", "id": pid },
                            "links": {
                                "self": format!("{}{own}relationships/profile/", ctx.base),
                                "related": format!("{}{own}profile/", ctx.base),
                            },
                        },
                        "metric": {
                            "data": { "type": "metric", "id": mid },
                            "links": {
                                "self": format!("{}{own}relationships/metric/", ctx.base),
                                "related": format!("{}{own}metric/", ctx.base),
                            },
                        },
                    },
                    "links": { "self": format!("{}{own}", ctx.base) },
                });
                apply_sparse(&mut r, &pairs, "event");
                r
            })
            .collect();
        Ok((
            StatusCode::OK,
            json!({ "data": data, "links": collection_links(ctx, "/api/events/", &pairs, offset, size, selected.len()) }),
        ))
    })
}

// ---------- bulk import ----------

/// A job's state by the clock alone (polling does not hurry it): queued until its start, then
/// processing until its completion time.
fn job_status(job: &ImportJob) -> &'static str {
    let now = Instant::now();
    if job.completed_at.is_some() || now >= job.completes_at {
        "complete"
    } else if now >= job.starts_at {
        "processing"
    } else {
        "queued"
    }
}

/// Profiles processed so far: all when complete, a linear part while processing.
fn job_progress(job: &ImportJob) -> usize {
    let now = Instant::now();
    if job.completed_at.is_some() {
        return job.pending.len();
    }
    if now < job.starts_at {
        return 0;
    }
    let span = job
        .completes_at
        .saturating_duration_since(job.starts_at)
        .as_secs_f64();
    let done = now.saturating_duration_since(job.starts_at).as_secs_f64();
    if span <= 0.0 {
        return job.pending.len();
    }
    ((job.pending.len() as f64) * (done / span).min(1.0)) as usize
}

/// When a new job of `account` starts and finishes: at least `queued_secs` queued, longer while
/// the account's earlier jobs hold every processing slot (first come, first served); then
/// `base_secs + profiles / profiles_per_s`, all × the sandbox's vendor time scale.
fn schedule_job(
    store: &KlaviyoStore,
    account: &str,
    profiles: usize,
    timing: &crate::ImportTiming,
    scale: f64,
) -> (Instant, Instant) {
    let now = Instant::now();
    let secs = |s: f64| std::time::Duration::from_secs_f64((s * scale).max(0.0));
    let earliest = now + secs(timing.queued_secs);
    let mut busy: Vec<Instant> = store
        .jobs
        .values()
        .filter(|j| {
            j.account_id == account && j.completed_at.is_none() && j.completes_at > earliest
        })
        .map(|j| j.completes_at)
        .collect();
    busy.sort_unstable();
    let slots = timing.concurrent_jobs_per_account.max(1);
    let starts = if busy.len() < slots {
        earliest
    } else {
        busy[busy.len() - slots].max(earliest)
    };
    let processing = timing.base_secs + profiles as f64 / timing.profiles_per_s.max(0.001);
    (starts, starts + secs(processing))
}

/// Applies every job whose completion time has passed.
fn complete_due_jobs(store: &mut KlaviyoStore) {
    let now = Instant::now();
    let due: Vec<String> = store
        .jobs
        .iter()
        .filter(|(_, j)| j.completed_at.is_none() && now >= j.completes_at)
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        if let Some(j) = store.jobs.get_mut(&id) {
            j.started_at.get_or_insert_with(now_unix);
        }
        complete_job(store, &id);
    }
}

fn job_json(ctx: &Ctx, job: &ImportJob) -> Value {
    let status = job_status(job);
    let own = format!("/api/profile-bulk-import-jobs/{}/", job.id);
    let done = job.completed_at.is_some();
    let progress = job_progress(job);
    json!({
        "type": "profile-bulk-import-job",
        "id": job.id,
        "attributes": {
            "status": status,
            "created_at": klaviyo_time(job.created),
            "total_count": job.total,
            "completed_count": progress,
            "failed_count": if done { job.errors.len() } else { 0 },
            "completed_at": job.completed_at.map(klaviyo_time),
            "expires_at": klaviyo_time(job.created + 7 * 86_400),
            "started_at": job.started_at.map(klaviyo_time),
        },
        "relationships": {
            "lists": {
                "data": job.list_ids.iter().map(|id| json!({"type": "list", "id": id})).collect::<Vec<_>>(),
                "links": {
                    "self": format!("{}{own}relationships/lists/", ctx.base),
                    "related": format!("{}{own}lists/", ctx.base),
                },
            },
            "profiles": {
                "links": {
                    "self": format!("{}{own}relationships/profiles/", ctx.base),
                    "related": format!("{}{own}profiles/", ctx.base),
                },
            },
            "import-errors": { "links": { "related": format!("{}{own}import-errors/", ctx.base) } },
        },
        "links": { "self": format!("{}{own}", ctx.base) },
    })
}

/// `local@domain.tld`: one `@`, text before it, a dot inside the domain.
fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
        }
        None => false,
    }
}

fn has_identifier(attrs: &Map<String, Value>) -> bool {
    ["email", "phone_number", "external_id", "_kx"]
        .iter()
        .any(|k| {
            attrs
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
}

pub async fn create_import_job(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&st, &headers, &super::CREATE_IMPORT, None, |ctx| {
        if body.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::too_large(
                "The request payload exceeds the maximum size of 5 MB.",
            ));
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_pointer("/data", format!("Malformed JSON: {e}")))?;
        let data = doc
            .get("data")
            .ok_or_else(|| ApiError::invalid_pointer("/data", "'data' is required."))?;
        if data.get("type").and_then(Value::as_str) != Some("profile-bulk-import-job") {
            return Err(ApiError::invalid_pointer(
                "/data/type",
                "'type' must be 'profile-bulk-import-job'.",
            ));
        }
        let profiles = data
            .pointer("/attributes/profiles/data")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ApiError::invalid_pointer(
                    "/data/attributes/profiles/data",
                    "'profiles.data' must be an array.",
                )
            })?;
        if profiles.is_empty() || profiles.len() > MAX_IMPORT_PROFILES {
            return Err(ApiError::invalid_pointer(
                "/data/attributes/profiles/data",
                format!("A job must contain between 1 and {MAX_IMPORT_PROFILES} profiles."),
            ));
        }
        let list_ids: Vec<String> = data
            .pointer("/relationships/lists/data")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut store = st.klaviyo();
        if let Some(missing) = list_ids
            .iter()
            .find(|id| !store.lists.iter().any(|l| &l.id == *id))
        {
            return Err(ApiError::invalid_pointer(
                "/data/relationships/lists/data",
                format!("List {missing} does not exist."),
            ));
        }
        let mut pending = Vec::new();
        let mut errors = Vec::new();
        for (i, p) in profiles.iter().enumerate() {
            let pointer = format!("/data/attributes/profiles/data/{i}");
            let size = serde_json::to_vec(p).map(|v| v.len()).unwrap_or(0);
            let attrs = p.get("attributes").and_then(Value::as_object);
            let problem = if size > MAX_PATCH_BYTES {
                Some("Profile exceeds the maximum size of 100 KB.".to_string())
            } else if p.get("type").and_then(Value::as_str) != Some("profile") {
                Some("'type' must be 'profile'.".to_string())
            } else if let Some(attrs) = attrs {
                let id = p.get("id").and_then(Value::as_str);
                let invalid_email = attrs
                    .get("email")
                    .and_then(Value::as_str)
                    .filter(|e| !plausible_email(e));
                if id.is_none() && !has_identifier(attrs) {
                    Some("One of email, phone_number, external_id or id is required.".to_string())
                } else if let Some(id) = id.filter(|id| {
                    !store.profile_index.contains_key(*id) || store.vanish_import_profiles > 0
                }) {
                    // An id must name an existing profile (how live Klaviyo reports this is unverified).
                    store.vanish_import_profiles = store.vanish_import_profiles.saturating_sub(1);
                    Some(format!("A profile with id {id} does not exist."))
                } else {
                    // Echo the rejected address, as a live error detail may: clients must scrub details.
                    invalid_email.map(|e| format!("Invalid email address: {e}"))
                }
            } else {
                Some("'attributes' is required.".to_string())
            };
            match problem {
                None => pending.push(p.clone()),
                Some(detail) => errors.push(ImportError {
                    id: alnum_id(&mut store.rng, 20),
                    code: "invalid".into(),
                    title: "Invalid input.".into(),
                    detail,
                    pointer,
                    original_payload: p.clone(),
                }),
            }
        }
        let random_bits: u128 = rand::Rng::gen::<u128>(&mut store.rng) & ((1u128 << 80) - 1);
        let id = ulid::Ulid::from_parts(now_unix() as u64 * 1000, random_bits).to_string();
        let (starts_at, completes_at) = schedule_job(
            &store,
            &ctx.account_id,
            profiles.len(),
            &st.config.klaviyo_import,
            st.config.vendor_time_scale,
        );
        let job = ImportJob {
            id: id.clone(),
            account_id: ctx.account_id.clone(),
            created: now_unix(),
            created_instant: Instant::now(),
            starts_at,
            completes_at,
            polls: 0,
            total: profiles.len(),
            pending,
            list_ids,
            errors,
            completed_at: None,
            started_at: None,
        };
        let body = json!({
            "data": job_json(ctx, &job),
            "links": { "self": format!("{}/api/profile-bulk-import-jobs/", ctx.base) },
        });
        store.jobs.insert(id, job);
        if store.lose_import_responses > 0 {
            store.lose_import_responses -= 1;
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "error",
                "Bad gateway.",
                "The upstream response was lost.",
            ));
        }
        Ok((StatusCode::ACCEPTED, body))
    })
}

/// `GET /api/profile-bulk-import-jobs`: the account's jobs, filtered by status (`equals` or
/// `any`), sorted by `created_at` either way (default oldest first), paged.
pub async fn list_import_jobs(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::LIST_IMPORTS, None, |ctx| {
        let store = st.klaviyo();
        let size = page_size(&pairs, 20, 100)?;
        let offset = cursor_offset(&pairs)?;
        let mut statuses: Option<Vec<String>> = None;
        for c in parse_filter(&pairs)? {
            if c.field != "status" {
                return Err(unsupported_filter(&c));
            }
            statuses = Some(filter_strings(&c)?);
        }
        let newest_first = match query_get(&pairs, "sort") {
            None | Some("created_at") => false,
            Some("-created_at") => true,
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "sort",
                    format!("'{other}' is not a valid sort field."),
                ))
            }
        };
        let mut jobs: Vec<&ImportJob> = store
            .jobs
            .values()
            .filter(|j| j.account_id == ctx.account_id)
            .filter(|j| {
                statuses
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|s| s == job_status(j)))
            })
            .collect();
        jobs.sort_by(|a, b| (a.created_instant, &a.id).cmp(&(b.created_instant, &b.id)));
        if newest_first {
            jobs.reverse();
        }
        let total = jobs.len();
        let data: Vec<Value> = jobs
            .into_iter()
            .skip(offset)
            .take(size)
            .map(|j| job_json(ctx, j))
            .collect();
        Ok((
            StatusCode::OK,
            json!({ "data": data, "links": collection_links(ctx, "/api/profile-bulk-import-jobs/", &pairs, offset, size, total) }),
        ))
    })
}

/// Applies a finished job's profiles: match by id, then email / phone / external id, else create.
fn complete_job(store: &mut KlaviyoStore, job_id: &str) {
    let Some(job) = store.jobs.get(job_id).cloned() else {
        return;
    };
    let now = now_unix();
    let mut touched = Vec::new();
    for p in &job.pending {
        let empty = Map::new();
        let attrs = p
            .get("attributes")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let by_id = p
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| store.profile_index.get(id).copied());
        let by_email = || {
            attrs
                .get("email")
                .and_then(Value::as_str)
                .and_then(|e| store.find_profile_by_email(e))
        };
        let idx = match by_id.or_else(by_email) {
            Some(i) => i,
            None => {
                let random_bits: u128 =
                    rand::Rng::gen::<u128>(&mut store.rng) & ((1u128 << 80) - 1);
                let id = ulid::Ulid::from_parts(now as u64 * 1000, random_bits).to_string();
                store.profiles.push(Profile {
                    id: id.clone(),
                    email: None,
                    phone_number: None,
                    external_id: None,
                    first_name: None,
                    last_name: None,
                    location: json!({"address1": null, "address2": null, "city": null, "country": null,
                        "latitude": null, "longitude": null, "region": null, "zip": null, "timezone": null, "ip": null}),
                    properties: Map::new(),
                    created: now,
                    updated: now,
                    last_event_date: None,
                    predictive: None,
                });
                store.events_by_profile.push(Vec::new());
                let i = store.profiles.len() - 1;
                store.profile_index.insert(id, i);
                i
            }
        };
        let profile = &mut store.profiles[idx];
        apply_profile_attributes(profile, attrs);
        apply_unset(profile, p.get("meta"));
        profile.updated = now;
        let id = profile.id.clone();
        *store.imports_by_profile.entry(id).or_default() += 1;
        touched.push(idx);
    }
    for list_id in &job.list_ids {
        if let Some(list) = store.lists.iter_mut().find(|l| &l.id == list_id) {
            list.members.extend(&touched);
            list.members.sort_unstable();
            list.members.dedup();
        }
    }
    if let Some(j) = store.jobs.get_mut(job_id) {
        j.completed_at = Some(now);
    }
}

pub async fn get_import_job(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&st, &headers, &super::GET_IMPORT, None, |ctx| {
        let mut store = st.klaviyo();
        let job = store
            .jobs
            .get_mut(&id)
            .filter(|j| j.account_id == ctx.account_id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "A profile-bulk-import-job with id {id} does not exist."
                ))
            })?;
        job.polls += 1;
        let status = job_status(job);
        if status != "queued" && job.started_at.is_none() {
            job.started_at = Some(now_unix());
        }
        if status == "complete" && job.completed_at.is_none() {
            complete_job(&mut store, &id);
        }
        let job = &store.jobs[&id];
        Ok((
            StatusCode::OK,
            json!({ "data": job_json(ctx, job), "links": { "self": format!("{}/api/profile-bulk-import-jobs/{id}/", ctx.base) } }),
        ))
    })
}

pub async fn get_import_errors(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    run(&st, &headers, &super::IMPORT_ERRORS, None, |ctx| {
        let store = st.klaviyo();
        let size = page_size(&pairs, 20, 100)?;
        let offset = cursor_offset(&pairs)?;
        let job = store
            .jobs
            .get(&id)
            .filter(|j| j.account_id == ctx.account_id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "A profile-bulk-import-job with id {id} does not exist."
                ))
            })?;
        let data: Vec<Value> = job
            .errors
            .iter()
            .skip(offset)
            .take(size)
            .map(|e| {
                json!({
                    "type": "import-error",
                    "id": e.id,
                    "attributes": {
                        "code": e.code,
                        "title": e.title,
                        "detail": e.detail,
                        "source": { "pointer": e.pointer },
                        "original_payload": e.original_payload,
                    },
                })
            })
            .collect();
        let path = format!("/api/profile-bulk-import-jobs/{id}/import-errors/");
        Ok((
            StatusCode::OK,
            json!({ "data": data, "links": collection_links(ctx, &path, &pairs, offset, size, job.errors.len()) }),
        ))
    })
}
