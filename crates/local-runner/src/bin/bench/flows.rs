//! Flow burst: `BENCH_FLOW_EVENTS` (default 2,000) abandoned checkouts fired through the
//! sandbox's Klaviyo flow at the webhook we give the merchant, against vendors with their own
//! timings (Klaviyo's real tiers, Bedrock's latency and quota) and the template's flow worker
//! (its containers, its pooled share). Reports webhook-to-written latency percentiles (the
//! trigger's own histogram), throughput against the binding ceiling derived from every Klaviyo
//! tier the jobs used at the flow worker's share, and the webhook route's p99 as Klaviyo saw it.

use crate::runs::{klaviyo_delta, klaviyo_tier, realistic, round, window_floor, Api};
use serde_json::{json, Value};
use shared::edge::FunctionError;
use shared::klaviyo::{AudienceKind, KlaviyoClient};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const MERCHANT: &str = "e6e4d0f5-8091-4ca3-9d24-e5f6a7b8c903";
/// Checkouts fired per wave, and the pause between waves (a burst over a few seconds).
const WAVE: usize = 100;
const WAVE_GAP: Duration = Duration::from_millis(500);
/// Vendor seconds until Klaviyo makes the triggering event readable (unpublished; "a few
/// minutes" is reported for some accounts: see the README).
const EVENT_READABLE_AFTER: f64 = 10.0;

fn events_wanted() -> usize {
    std::env::var("BENCH_FLOW_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub async fn flow_burst() -> Result<(), FunctionError> {
    let n = events_wanted();
    let stack = local_runner::LocalStack::start(realistic(n.max(2_500) + 500)).await?;
    let api = Api::new(&stack);
    let key = stack.sandbox.full_access_klaviyo_key();
    let token = api
        .connect(&stack, MERCHANT, &key, "demo-store.myshopify.com")
        .await?;
    stack.drain(Duration::from_secs(600)).await?;
    let flow_cfg = stack.config("FlowWorkerFunction");

    // Profiles: members of the account's audiences, first come.
    let audiences = api
        .call(reqwest::Method::GET, "/audiences", &token, None)
        .await?;
    let client = KlaviyoClient::new(
        reqwest::Client::new(),
        stack.sandbox.klaviyo_base_url(),
        "2026-07-15".into(),
    );
    let k = shared::domain::KlaviyoApiKey::parse(&key)?;
    let mut ids: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for a in audiences["audiences"].as_array().into_iter().flatten() {
        let kind = if a["kind"] == "list" {
            AudienceKind::List
        } else {
            AudienceKind::Segment
        };
        let mut cursor: Option<String> = None;
        while ids.len() < n {
            let (page, next) = client
                .audience_page(
                    &k,
                    kind,
                    a["id"].as_str().unwrap_or_default(),
                    cursor.as_deref(),
                )
                .await?;
            ids.extend(page.into_iter().filter(|id| seen.insert(id.clone())));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    ids.truncate(n);
    let n = ids.len();

    let created = api
        .call(
            reqwest::Method::POST,
            "/flows/triggers",
            &token,
            Some(
                json!({"name": "Abandoned checkout", "kind": "checkout_abandoned",
                        "brief": "What goes with the cart they left", "property_set": "cart",
                        "deadline_seconds": 3600}),
            ),
        )
        .await?;
    let trigger_id = created["trigger"]["trigger_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let webhook = &created["webhook"];
    let http = reqwest::Client::new();
    let control = |method: reqwest::Method, path: String, body: Value| {
        let http = http.clone();
        let url = format!("{}{path}", stack.sandbox.base_url);
        let key = key.clone();
        async move {
            let resp = http
                .request(method, url)
                .header("Authorization", format!("Klaviyo-API-Key {key}"))
                .json(&body)
                .send()
                .await?;
            let v: Value = resp.json().await?;
            Ok::<Value, FunctionError>(v)
        }
    };
    let flow = control(
        reqwest::Method::POST,
        "/_sandbox/klaviyo/flows".into(),
        json!({"name": "Abandoned checkout", "trigger_metric": "Checkout Started",
               "webhook": {"url": webhook["url"], "headers": {"Authorization": webhook["header_value"]},
                           "body": webhook["body"]},
               "time_scale": 1.0, "event_readable_after_seconds": EVENT_READABLE_AFTER}),
    )
    .await?;
    let flow_id = flow["id"].as_str().unwrap_or_default().to_owned();
    let catalog = stack_catalog(&stack).await?;

    println!(
        "Flow burst: {n} abandoned checkouts in waves of {WAVE} every {} ms (sandbox: Klaviyo's real tiers, Bedrock's latency and quota; the event readable {EVENT_READABLE_AFTER} s after tracking; model {})",
        WAVE_GAP.as_millis(),
        flow_cfg.bedrock_model_id
    );
    let before = api.stats().await?;
    let started = Instant::now();
    for (w, wave) in ids.chunks(WAVE).enumerate() {
        let entries: Vec<Value> = wave
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let j = w * WAVE + i;
                let (pa, ta) = &catalog[(j * 7) % catalog.len()];
                let (pb, tb) = &catalog[(j * 7 + 3) % catalog.len()];
                json!({"profile_id": id, "event": {"$event_id": format!("bench-{j}"), "$value": 50.0,
                       "$extra": {"line_items": [
                           {"product_id": pa, "title": ta, "quantity": 1, "line_price": 25.0},
                           {"product_id": pb, "title": tb, "quantity": 1, "line_price": 25.0}]}}})
            })
            .collect();
        control(
            reqwest::Method::POST,
            format!("/_sandbox/klaviyo/flows/{flow_id}/fire"),
            json!({ "profiles": entries }),
        )
        .await?;
        tokio::time::sleep(WAVE_GAP).await;
    }
    let fired_in = started.elapsed().as_secs_f64();
    // Every job ends counted; wait for the counts to add up.
    let mut view = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut finished_at = started.elapsed().as_secs_f64();
    while Instant::now() < deadline {
        view = api
            .call(
                reqwest::Method::GET,
                &format!("/flows/triggers/{trigger_id}"),
                &token,
                None,
            )
            .await?;
        let c = &view["last_30_days"];
        let sum = |k: &str| {
            c[k].as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
                .unwrap_or(0)
        };
        let ended = c["written"].as_u64().unwrap_or(0)
            + sum("skipped")
            + sum("failed")
            + c["too_late"].as_u64().unwrap_or(0);
        if ended as usize >= n {
            finished_at = started.elapsed().as_secs_f64();
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = api.stats().await?;
    let deliveries = control(
        reqwest::Method::GET,
        format!("/_sandbox/klaviyo/flows/{flow_id}/deliveries?wait_secs=60"),
        Value::Null,
    )
    .await?;
    let mut hook_ms: Vec<u64> = deliveries["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["webhook"]["attempts"].as_array()?.last()?["elapsed_ms"].as_u64())
        .collect();
    hook_ms.sort_unstable();
    let retried = deliveries["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["webhook"]["attempts"]
                .as_array()
                .is_some_and(|a| a.len() > 1)
        })
        .count();

    // The ceiling: the least time each Klaviyo tier allows the requests the jobs made, at the
    // flow worker's pooled share; the longest binds.
    let by_route = klaviyo_delta(&before, &after);
    let mut per_tier = std::collections::BTreeMap::new();
    for (route, count) in &by_route {
        *per_tier.entry(klaviyo_tier(route)).or_insert(0u64) += count;
    }
    let mut binding = ("none".to_owned(), 0.0f64);
    println!(
        "  Klaviyo requests by tier, and the least time each allows at the flow worker's share:"
    );
    for (tier, count) in &per_tier {
        let share = flow_cfg.klaviyo_limits().factor(*tier).unwrap_or(1.0);
        let (ps, pm) = tier.limits();
        let floor = window_floor(*count as f64, f64::from(ps) * share, f64::from(pm) * share);
        println!("    {tier:?}: {count} requests at {share:.3} of {ps}/s, {pm}/min → {floor:.1} s");
        if floor > binding.1 {
            binding = (format!("Klaviyo {tier:?} tier"), floor);
        }
    }
    let c = &view["last_30_days"];
    let written = c["written"].as_u64().unwrap_or(0);
    let throughput = written as f64 / finished_at.max(0.001);
    let ceiling = n as f64 / binding.1.max(0.001);
    let lat = &view["latency_30_days"];
    println!("  fired in {fired_in:.1} s; every job counted after {finished_at:.1} s");
    println!("  counts {c}");
    println!("  webhook → written latency {lat}");
    println!(
        "  throughput {throughput:.2} written/s; ceiling {ceiling:.2}/s ({}); ratio {:.2}",
        binding.0,
        throughput / ceiling
    );
    println!(
        "  webhook route as Klaviyo saw it: p50 {} ms, p99 {} ms, max {} ms; {retried} deliveries needed a retry",
        pct(&hook_ms, 0.5),
        pct(&hook_ms, 0.99),
        hook_ms.last().copied().unwrap_or(0)
    );
    let line = json!({
        "bench": "flows",
        "events": n,
        "written": written,
        "counts": c,
        "latency_ms": {"p50": lat["p50_ms"], "p95": lat["p95_ms"], "p99": lat["p99_ms"]},
        "seconds": round(finished_at, 1),
        "throughput_per_s": round(throughput, 2),
        "ceiling_per_s": round(ceiling, 2),
        "binding_limit": binding.0,
        "ceiling_ratio": round(throughput / ceiling, 2),
        "webhook_p99_ms": pct(&hook_ms, 0.99),
        "webhook_retried": retried,
    });
    println!("{line}");
    stack.shutdown().await;
    Ok(())
}

/// `(numeric product id, title)` of the merchant's cached catalog, read from the sandbox shop.
async fn stack_catalog(
    stack: &local_runner::LocalStack,
) -> Result<Vec<(String, String)>, FunctionError> {
    let config = stack.config("FlowWorkerFunction");
    let aws = shared::aws::Aws::load().await;
    let store = shared::aws::dynamo::AppStore::from_sdk(&aws, &config.app_table);
    let merchant = shared::domain::MerchantId::parse(MERCHANT)?;
    let generation = store
        .shopify(&merchant)
        .await?
        .and_then(|c| c.catalog_generation)
        .ok_or("no catalog")?;
    let catalog = shared::aws::catalog_store::CatalogStore::from_sdk(&aws, &config.catalog_table);
    Ok(catalog
        .read_generation(&merchant, &generation)
        .await?
        .into_iter()
        .map(|p| {
            (
                p.id.rsplit('/').next().unwrap_or_default().to_owned(),
                p.title,
            )
        })
        .collect())
}
