//! Run benchmarks against vendors that take real time (the sandbox's defaults: Bedrock latency
//! from time to first token and output speed, Bedrock's quota reservation and 5× output
//! burndown, Klaviyo's real tiers, import jobs that queue and process), with the template's
//! budget shares and containers:
//! - a 20,000-profile run and the binding ceiling derived from every limit that applies;
//! - a second merchant's 200-profile run alone, then started 10 s after a 20,000-profile run;
//! - a 200,000-profile fan-out (no generation): ids enqueued once, memory, seconds.
//!
//! Each part ends with one JSON line.

use local_runner::{LocalStack, StackOptions};
use reqwest::redirect;
use serde_json::{json, Value};
use shared::edge::FunctionError;
use shared::klaviyo::Tier;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

const MERCHANT_A: &str = "c4c2b8d3-6e7f-4a81-9b02-c3d4e5f6a701";
const MERCHANT_B: &str = "d5d3c9e4-7f80-4b92-8c13-d4e5f6a7b802";
const SHOP_B: &str = "second-store.myshopify.com";
const BIG_RUN: u64 = 20_000;
const SMALL_RUN: u64 = 200;
const FANOUT_PROFILES: u64 = 200_000;

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    sandbox: String,
}

impl Api {
    pub(crate) fn new(stack: &LocalStack) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("http client"),
            base: stack.api_url.clone(),
            sandbox: stack.sandbox.base_url.clone(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, FunctionError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {v}").into());
        }
        Ok(v)
    }

    pub(crate) async fn stats(&self) -> Result<Value, FunctionError> {
        Ok(self
            .http
            .get(format!("{}/_sandbox/stats", self.sandbox))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Klaviyo connection with `key` and Shopify through the real OAuth flow.
    pub(crate) async fn connect(
        &self,
        stack: &LocalStack,
        merchant: &str,
        key: &str,
        shop: &str,
    ) -> Result<String, FunctionError> {
        let token = stack.token(merchant).await;
        stack
            .connect_merchant(&self.http, &token, Some(key), shop)
            .await?;
        Ok(token)
    }

    pub(crate) async fn segment(&self, token: &str, name: &str) -> Result<Value, FunctionError> {
        let audiences = self
            .call(reqwest::Method::GET, "/audiences", token, None)
            .await?;
        audiences["audiences"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["name"] == name))
            .cloned()
            .ok_or_else(|| format!("no audience {name}").into())
    }

    async fn start_run(
        &self,
        token: &str,
        audience: &Value,
        cap: u64,
    ) -> Result<String, FunctionError> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/runs",
                token,
                Some(
                    json!({ "audience": { "kind": audience["kind"], "id": audience["id"] },
                    "brief": "Warm layers for the first cold weekends", "holdout_percent": 0,
                    "profile_cap": cap, "review": false }),
                ),
            )
            .await?;
        Ok(created["run"]["run_id"]
            .as_str()
            .ok_or("run created")?
            .to_owned())
    }

    async fn run(&self, token: &str, run_id: &str) -> Result<Value, FunctionError> {
        self.call(
            reqwest::Method::GET,
            &format!("/runs/{run_id}"),
            token,
            None,
        )
        .await
    }

    async fn wait_run(
        &self,
        token: &str,
        run_id: &str,
        limit: Duration,
    ) -> Result<Value, FunctionError> {
        let started = Instant::now();
        loop {
            let run = self.run(token, run_id).await?;
            if matches!(
                run["state"].as_str(),
                Some("completed" | "cancelled" | "failed")
            ) {
                return Ok(run);
            }
            if started.elapsed() > limit {
                return Err(format!("run {run_id} did not finish in {limit:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn sum(m: &Value) -> u64 {
    m.as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum())
}

fn accounted(run: &Value) -> u64 {
    let c = &run["counts"];
    c["written"].as_u64().unwrap_or(0)
        + c["holdout"].as_u64().unwrap_or(0)
        + sum(&c["skipped"])
        + sum(&c["failed"])
}

pub(crate) fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The least time `n` requests take under `per_second` in any second and `per_minute` in any
/// minute (Klaviyo's two windows; Bedrock's per-minute quota).
pub(crate) fn window_floor(n: f64, per_second: f64, per_minute: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    let full_minutes = ((n - 1.0) / per_minute).floor();
    let rest = (n - 1.0) - full_minutes * per_minute;
    full_minutes * 60.0 + rest / per_second
}

/// Klaviyo's tier of a sandbox route (NOTES §1.2).
pub(crate) fn klaviyo_tier(route: &str) -> Tier {
    match route {
        r if r.contains("/api/events") => Tier::XL,
        r if r.contains("profile-bulk-import-jobs") || r.contains("/api/metrics") => Tier::M,
        r if r.contains("/api/accounts") => Tier::XS,
        _ => Tier::L,
    }
}

/// Requests the sandbox served between two stats readings, by route.
pub(crate) fn klaviyo_delta(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let before = &before["klaviyo"]["requests"];
    after["klaviyo"]["requests"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0),
                    )
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// The sandbox with the vendors' real behaviour; the account's Bedrock quota is the template's
/// default (5M tokens, 2,000 requests per minute).
pub(crate) fn realistic(profiles: usize) -> StackOptions {
    let mut options = StackOptions::default();
    options.sandbox.klaviyo_profiles = profiles;
    options.sandbox.klaviyo_limits = sandbox::RateLimits::Real;
    options.sandbox.bedrock_rpm = 2_000;
    options.sandbox.bedrock_tpm = 5_000_000;
    options
}

struct Limit {
    name: String,
    seconds: f64,
    how: String,
}

/// Part 1 and 2: the 20,000-profile run, then fairness between two merchants, on one stack.
pub async fn personalization_run() -> Result<(), FunctionError> {
    let options = realistic(24_500);
    let (rpm, tpm) = (
        f64::from(options.sandbox.bedrock_rpm),
        options.sandbox.bedrock_tpm as f64,
    );
    let burndown = options.sandbox.bedrock_output_burndown;
    let stack = LocalStack::start(options).await?;
    let api = Api::new(&stack);
    let key = stack.sandbox.full_access_klaviyo_key();
    let token = api
        .connect(&stack, MERCHANT_A, &key, "demo-store.myshopify.com")
        .await?;
    stack.drain(Duration::from_secs(600)).await?;
    let segment = api.segment(&token, "VIP + Engaged").await?;
    let worker = stack.config("PersonalizeWorkerFunction");
    let fanout = stack.config("PersonalizeFanoutFunction");
    let model = worker.bedrock_model_id.clone();

    println!(
        "Personalization run of {BIG_RUN} profiles (sandbox: Klaviyo's real tiers, import jobs that queue and process, Bedrock {rpm} requests and {tpm} tokens per minute, output × {burndown}, model latency from time to first token and output speed; model {model})"
    );
    let before = api.stats().await?;
    let started = Instant::now();
    let run_id = api.start_run(&token, &segment, BIG_RUN).await?;
    let run = api
        .wait_run(&token, &run_id, Duration::from_secs(3600))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = api.stats().await?;

    let total = run["counts"]["total"].as_u64().unwrap_or(0);
    let lost = BIG_RUN.saturating_sub(accounted(&run)) + total.saturating_sub(accounted(&run));
    let profiles = total.max(1) as f64;
    let rate = profiles / seconds;
    let by_route = klaviyo_delta(&before, &after);
    let klaviyo_total: u64 = by_route.values().sum();

    // Every limit that applies, as the least time this run's requests need under it.
    let headroom = worker.klaviyo_budget_fraction;
    let mut limits = Vec::new();
    let mut per_tier: BTreeMap<(Tier, &str), u64> = BTreeMap::new();
    for (route, n) in &by_route {
        // The fan-out pages the audience (one continuation at a time); the worker does the rest.
        let who = if route.contains("relationships/profiles") {
            "fan-out"
        } else {
            "worker"
        };
        *per_tier.entry((klaviyo_tier(route), who)).or_default() += n;
    }
    // How many times a function's share counts: once if its containers pool it.
    let holders = |config: &shared::Config, containers: f64| {
        if config.vendor_budget_pool.is_some() {
            1.0
        } else {
            containers
        }
    };
    let work_containers = f64::from(
        stack.template.functions["PersonalizeWorkerFunction"]
            .reserved_concurrency
            .unwrap_or(1),
    );
    for ((tier, who), n) in &per_tier {
        let (containers, config) = if *who == "fan-out" {
            (1.0, &fanout)
        } else {
            (holders(&worker, work_containers), &worker)
        };
        let share = containers * config.klaviyo_limits().factor(*tier).unwrap_or(1.0);
        let (per_s, per_min) = tier.limits();
        let (per_s, per_min) = (f64::from(per_s) * share, f64::from(per_min) * share);
        limits.push(Limit {
            name: format!("Klaviyo {tier:?} tier ({who})"),
            seconds: window_floor(*n as f64, per_s, per_min),
            how: format!(
                "{n} requests at {:.3} of {}/s, {}/min ({containers} × the share of the {:.0}% we may use) = {per_s:.1}/s, {per_min:.0}/min",
                share,
                tier.limits().0,
                tier.limits().1,
                headroom * 100.0
            ),
        });
    }
    let tokens = &run["tokens"];
    let t = |k: &str| tokens[k].as_u64().unwrap_or(0) as f64;
    let calls = run["requests"]["bedrock_converse"].as_f64().unwrap_or(0.0);
    let bedrock_share = holders(&worker, work_containers) * worker.vendor_budget_share;
    let quota_tokens = t("input_tokens") + t("cache_write_tokens") + burndown * t("output_tokens");
    limits.push(Limit {
        name: "Bedrock requests/min".into(),
        seconds: window_floor(calls, f64::INFINITY, rpm * bedrock_share),
        how: format!("{calls} calls at {bedrock_share:.2} of {rpm}/min (the workers' share)"),
    });
    limits.push(Limit {
        name: "Bedrock tokens/min".into(),
        seconds: window_floor(quota_tokens, f64::INFINITY, tpm * bedrock_share),
        how: format!(
            "{quota_tokens:.0} quota tokens (input + cache writes + {burndown} × output) at {bedrock_share:.2} of {tpm}/min"
        ),
    });
    // Little's law: calls in flight = throughput × latency, and Bedrock lets in flight only what
    // the quota can hold reserved (input + cache + maxTokens each).
    let bedrock = &after["bedrock"];
    let latency_ms = |p: &str| bedrock["latency_ms"][p].as_f64();
    let mean_latency_s = latency_ms("mean").unwrap_or(0.0) / 1000.0;
    let max_tokens = mean_max_tokens(&api).await.unwrap_or(0.0);
    let reservation = (t("input_tokens") + t("cache_read_tokens") + t("cache_write_tokens"))
        / calls.max(1.0)
        + max_tokens;
    if mean_latency_s > 0.0 && reservation > 0.0 {
        let in_flight = tpm * bedrock_share / reservation;
        let calls_per_s = in_flight / mean_latency_s;
        limits.push(Limit {
            name: "Bedrock concurrency × latency".into(),
            seconds: calls / calls_per_s,
            how: format!(
                "the quota holds {in_flight:.0} calls reserved ({reservation:.0} tokens each) → {calls_per_s:.1} calls/s at {mean_latency_s:.2} s per call"
            ),
        });
    }
    limits.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let binding = &limits[0];
    let ceiling = profiles / binding.seconds.max(1e-9);
    let ratio = rate / ceiling;

    let prices = shared::personalize::ModelPrices::for_model(&model);
    let cost: shared::personalize::Cost =
        serde_json::from_value(tokens.clone()).unwrap_or_default();
    let written = run["counts"]["written"].as_u64().unwrap_or(0).max(1) as f64;
    let usd_per_1000 = cost.usd(&prices) / written * 1000.0;
    let cache = if t("cache_read_tokens") > 0.0 {
        "used"
    } else {
        "not used: the static prefix is below the model's minimum cacheable length"
    };

    println!(
        "  state                    {} ({} written, skipped {}, failed {})",
        run["state"], run["counts"]["written"], run["counts"]["skipped"], run["counts"]["failed"]
    );
    println!("  seconds                  {seconds:.1}  ({rate:.1} profiles/s)");
    println!("  limits (least time each allows; the longest binds):");
    for l in &limits {
        println!("    {:<38} {:>8.1} s  {}", l.name, l.seconds, l.how);
    }
    println!(
        "  binding ceiling          {ceiling:.1} profiles/s ({}) → ratio {ratio:.2}",
        binding.name
    );
    println!(
        "  Klaviyo requests         {klaviyo_total} ({:.3}/profile)",
        klaviyo_total as f64 / profiles
    );
    for (route, n) in &by_route {
        println!(
            "    {route:<58} {n:>7}  {:.3}/profile",
            *n as f64 / profiles
        );
    }
    println!(
        "  Bedrock                  {calls} calls ({:.2} profiles/call), latency p50 {:?} ms, p95 {:?} ms, {} throttled",
        profiles / calls.max(1.0),
        latency_ms("p50"),
        latency_ms("p95"),
        bedrock["throttled"]
    );
    println!(
        "  tokens per profile       {:.0} in, {:.0} out, {:.0} cache read, {:.0} cache write; prompt cache {cache}",
        t("input_tokens") / profiles,
        t("output_tokens") / profiles,
        t("cache_read_tokens") / profiles,
        t("cache_write_tokens") / profiles
    );
    println!("  cost                     ${usd_per_1000:.3} per 1,000 profiles written at {model} list prices");
    let hours_1m = 1_000_000.0 / rate / 3600.0;
    println!(
        "  1,000,000 profiles       ≈ {hours_1m:.1} h and ${:.0} at this rate and cost",
        usd_per_1000 * 1000.0
    );
    println!("  lost profiles            {lost}");
    println!(
        "{}",
        json!({
            "bench": "personalization_run",
            "profiles": total,
            "seconds": round(seconds, 1),
            "profiles_per_s": round(rate, 2),
            "ceiling_profiles_per_s": round(ceiling, 2),
            "binding": binding.name,
            "ceiling_derivation": limits.iter().map(|l| json!({"limit": l.name, "seconds": round(l.seconds, 1), "how": l.how})).collect::<Vec<_>>(),
            "ceiling_ratio": round(ratio, 3),
            "lost": lost,
            "klaviyo_requests_per_profile": round(klaviyo_total as f64 / profiles, 3),
            "input_tokens_per_profile": round(t("input_tokens") / profiles, 1),
            "output_tokens_per_profile": round(t("output_tokens") / profiles, 1),
            "cache_read_tokens_per_profile": round(t("cache_read_tokens") / profiles, 1),
            "prompt_cache": cache,
            "model": model,
            "usd_per_1000_profiles": round(usd_per_1000, 4),
            "model_latency_ms_p50": latency_ms("p50"),
            "model_latency_ms_p95": latency_ms("p95"),
            "bedrock_throttled": bedrock["throttled"],
            "projection_1m_profiles": {"hours": round(hours_1m, 1), "usd": round(usd_per_1000 * 1000.0, 0)},
        })
    );

    println!();
    fairness_on(&stack, &api, &token, &segment).await?;
    stack.shutdown().await;
    Ok(())
}

/// The mean `maxTokens` of the Converse requests the sandbox saw last.
async fn mean_max_tokens(api: &Api) -> Result<f64, FunctionError> {
    let recent: Value = api
        .http
        .get(format!("{}/_sandbox/bedrock/requests?last=50", api.sandbox))
        .send()
        .await?
        .json()
        .await?;
    let values: Vec<f64> = recent["requests"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["body"]["inferenceConfig"]["maxTokens"].as_f64())
                .collect()
        })
        .unwrap_or_default();
    Ok(values.iter().sum::<f64>() / values.len().max(1) as f64)
}

/// Part 2 (the same stack): a second merchant's small run alone, then 10 s after a big run.
/// Merchant B has a Klaviyo account (rate limits, import-job slots) of its own; the work queue,
/// the worker containers and the account's Bedrock quota are shared.
async fn fairness_on(
    stack: &LocalStack,
    api: &Api,
    token_a: &str,
    segment: &Value,
) -> Result<(), FunctionError> {
    let fail = |e: reqwest::Error| -> FunctionError { Box::new(e) };
    api.http
        .post(format!("{}/_sandbox/shopify/shops", api.sandbox))
        .json(&json!({ "shop": SHOP_B, "products": 1200, "seed": 7 }))
        .send()
        .await
        .map_err(fail)?
        .error_for_status()
        .map_err(fail)?;
    // Merchant B has a Klaviyo account of its own (its own rate limits), as every merchant does.
    api.http
        .post(format!("{}/_sandbox/klaviyo/accounts", api.sandbox))
        .json(&json!({ "id": "merchantb", "name": "Second Store" }))
        .send()
        .await
        .map_err(fail)?
        .error_for_status()
        .map_err(fail)?;
    let created: Value = api
        .http
        .post(format!("{}/_sandbox/klaviyo/keys", api.sandbox))
        .json(&json!({ "account": "merchantb", "scopes": ["accounts:read", "lists:read", "segments:read",
            "profiles:read", "events:read", "metrics:read", "profiles:write", "lists:write"] }))
        .send()
        .await
        .map_err(fail)?
        .json()
        .await
        .map_err(fail)?;
    let key_b = created["key"].as_str().ok_or("a key for merchant B")?;
    let token_b = api.connect(stack, MERCHANT_B, key_b, SHOP_B).await?;
    stack.drain(Duration::from_secs(600)).await?;
    println!("Fairness: merchant B's {SMALL_RUN}-profile run alone, then started 10 s after merchant A's {BIG_RUN}-profile run");

    let started = Instant::now();
    let alone = api.start_run(&token_b, segment, SMALL_RUN).await?;
    api.wait_run(&token_b, &alone, Duration::from_secs(900))
        .await?;
    let alone_s = started.elapsed().as_secs_f64();

    let big = api.start_run(token_a, segment, BIG_RUN).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let started = Instant::now();
    let beside = api.start_run(&token_b, segment, SMALL_RUN).await?;
    let small = api
        .wait_run(&token_b, &beside, Duration::from_secs(1800))
        .await?;
    let beside_s = started.elapsed().as_secs_f64();
    let big_progress = api.run(token_a, &big).await?;
    api.call(
        reqwest::Method::POST,
        &format!("/runs/{big}/cancel"),
        token_a,
        None,
    )
    .await?;
    let ratio = beside_s / alone_s;
    println!("  alone                    {alone_s:.1} s");
    println!(
        "  beside the big run       {beside_s:.1} s (big run had {} of {BIG_RUN} accounted by then) → ratio {ratio:.2} (target ≤ 2)",
        accounted(&big_progress)
    );
    println!(
        "{}",
        json!({
            "bench": "fairness",
            "small_run_profiles": SMALL_RUN,
            "alone_seconds": round(alone_s, 1),
            "beside_big_run_seconds": round(beside_s, 1),
            "ratio": round(ratio, 2),
            "small_run_lost": SMALL_RUN.saturating_sub(accounted(&small)),
            "big_run_accounted_meanwhile": accounted(&big_progress),
        })
    );
    // Let the cancelled run's batches drain before the stack stops.
    stack.drain(Duration::from_secs(900)).await.ok();
    Ok(())
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Part 3: a 200,000-profile fan-out, generation skipped (no queue is polled): every id
/// enqueued exactly once, memory flat, at the full L tier (the client paces to 100% of it, so
/// the time is Klaviyo's own floor of 750 pages a minute plus our overhead).
pub async fn fanout_at_scale() -> Result<(), FunctionError> {
    let mut options = realistic(240_000);
    options.run_queues = false;
    for (k, v) in [
        ("FANOUT_WINDOW_PROFILES", "0"),
        ("KLAVIYO_TIER_SHARES", "L=1"),
        ("KLAVIYO_BUDGET_PERCENT", "100"),
    ] {
        options.env_overrides.insert(k.into(), v.into());
    }
    let stack = LocalStack::start(options).await?;
    let api = Api::new(&stack);
    let key = stack.sandbox.full_access_klaviyo_key();
    let token = api
        .connect(&stack, MERCHANT_A, &key, "demo-store.myshopify.com")
        .await?;
    let merchant = shared::domain::MerchantId::parse(MERCHANT_A)?;
    catalog_sync::Handler::init(stack.config("CatalogSyncFunction"))
        .await?
        .sync(&merchant)
        .await?;
    let segment = api.segment(&token, "VIP + Engaged").await?;
    println!("Fan-out of {FANOUT_PROFILES} profiles (generation skipped; Klaviyo's real L tier, all of it)");
    let fanout =
        personalize_fanout::Handler::init(stack.config("PersonalizeFanoutFunction")).await?;
    let rss_before = rss_mb();
    let started = Instant::now();
    let run_id = api.start_run(&token, &segment, FANOUT_PROFILES).await?;
    let mut rss_peak = rss_before;
    loop {
        fanout
            .fan_out(&shared::personalize::run::FanoutRequest {
                merchant_id: merchant.clone(),
                run_id: run_id.clone(),
                cursor: None,
            })
            .await?;
        rss_peak = rss_peak.max(rss_mb());
        let run = api.run(&token, &run_id).await?;
        if run["state"].as_str() != Some("fanning") {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let run = api.run(&token, &run_id).await?;

    // Read the work queue back: every id once.
    let sqs = stack.aws.sqs();
    let url = stack
        .mappings()
        .iter()
        .find(|m| m.queue_logical_id == "WorkQueue")
        .map(|m| m.queue_url.clone())
        .ok_or("work queue")?;
    let mut seen = HashSet::new();
    let mut duplicates = 0u64;
    let mut messages = 0u64;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await?;
        let batch = out.messages.unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        for m in batch {
            messages += 1;
            let body: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
            for id in body["profile_ids"].as_array().into_iter().flatten() {
                if !seen.insert(id.as_str().unwrap_or_default().to_owned()) {
                    duplicates += 1;
                }
            }
        }
    }
    let enqueued = seen.len() as u64 + duplicates;
    let total = run["counts"]["total"].as_u64().unwrap_or(0);
    println!(
        "  seconds                  {seconds:.1} ({:.0} ids/s)",
        enqueued as f64 / seconds
    );
    println!("  enqueued                 {enqueued} ids in {messages} batches; {duplicates} duplicates; run total {total}");
    println!(
        "  memory                   RSS {rss_before:.0} MB before, peak {rss_peak:.0} MB during (sandbox included): growth {:.1} MB",
        rss_peak - rss_before
    );
    println!(
        "{}",
        json!({
            "bench": "fanout_200k",
            "profiles": enqueued,
            "seconds": round(seconds, 1),
            "batches": messages,
            "duplicates": duplicates,
            "missing": FANOUT_PROFILES.saturating_sub(seen.len() as u64),
            "run_total": total,
            "rss_before_mb": round(rss_before, 1),
            "rss_peak_mb": round(rss_peak, 1),
            "rss_growth_mb": round(rss_peak - rss_before, 1),
        })
    );
    stack.shutdown().await;
    Ok(())
}
