//! `make demo`: start the whole local stack (moto for AWS, the sandbox for Klaviyo, Shopify and
//! the token issuer, the local API Gateway) and walk a merchant's first journey over real HTTP:
//! sign in, connect Klaviyo, install on Shopify, watch the catalog sync, read the result.

use local_runner::{LocalStack, StackOptions};
use reqwest::{redirect, Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

const MERCHANT: &str = "0f6e2a3c-1b4d-4e5f-8a9b-7c6d5e4f3a21";
const SHOP: &str = "demo-store.myshopify.com";

struct Demo {
    stack: LocalStack,
    http: reqwest::Client,
    token: String,
    step: usize,
}

impl Demo {
    fn step(&mut self, what: &str) {
        self.step += 1;
        println!("\n\x1b[1m{}. {what}\x1b[0m", self.step);
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.stack.api_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the local API answers");
        let status = resp.status();
        let body = resp.json().await.unwrap_or(Value::Null);
        println!("   {method} {path} → {status}");
        (status, body)
    }
}

fn show(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines() {
        println!("   │ {line}");
    }
}

#[tokio::main]
async fn main() -> Result<(), shared::edge::FunctionError> {
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_target(false)
        .init();
    println!(
        "SendPersonal demo: a merchant connects Klaviyo and Shopify and gets a cached catalog."
    );
    println!(
        "AWS is moto at {}; Klaviyo, Shopify and Cognito are the project's sandbox.",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );

    let started = Instant::now();
    let stack = LocalStack::start(StackOptions {
        prefix: local_runner::random_prefix(),
        ..StackOptions::default()
    })
    .await?;
    println!(
        "Local API Gateway at {} (routes and JWT authorizer read from template.yaml)",
        stack.api_url
    );
    println!("Sandbox vendors at {}", stack.sandbox.base_url);
    let token = stack.token(MERCHANT).await;
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let mut demo = Demo {
        stack,
        http,
        token,
        step: 0,
    };

    demo.step("The merchant signs in (a Cognito-shaped RS256 JWT) and has no connections yet");
    let (_, body) = demo.call(Method::GET, "/connections", None).await;
    show(&body);

    demo.step("Without a token, the API refuses with a problem document");
    let resp = demo
        .http
        .get(format!("{}/connections", demo.stack.api_url))
        .send()
        .await?;
    println!("   GET /connections (no token) → {}", resp.status());
    show(&resp.json::<Value>().await.unwrap_or_default());

    demo.step("Connect Klaviyo: a malformed key is refused before anything is stored");
    let (_, body) = demo
        .call(
            Method::PUT,
            "/connections/klaviyo",
            Some(json!({ "api_key": "pk_oops" })),
        )
        .await;
    show(&body);

    demo.step("Connect Klaviyo with a private key: validated against Klaviyo, scopes probed, kept only in Secrets Manager");
    let key = demo.stack.sandbox.full_access_klaviyo_key();
    let (status, body) = demo
        .call(
            Method::PUT,
            "/connections/klaviyo",
            Some(json!({ "api_key": key })),
        )
        .await;
    show(&body);
    assert_eq!(status, StatusCode::OK, "Klaviyo connects");

    demo.step("Install on Shopify: the API returns the authorize URL (scope read_products, one-time state)");
    let (status, body) = demo
        .call(
            Method::POST,
            "/connections/shopify",
            Some(json!({ "shop": SHOP })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let authorize_url = body["authorize_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("   authorize URL: {authorize_url}");

    demo.step(
        "The browser opens it (the API sets the install's state cookie), the merchant approves in Shopify, which redirects to our callback; the callback sends the browser back to the console",
    );
    let outcome = local_runner::install_in_browser(&authorize_url).await?;
    println!("   callback → 302 {outcome}");

    demo.step("The first catalog sync runs from the sync queue (paged GraphQL, cost-throttled)");
    let sync_started = Instant::now();
    loop {
        let resp = demo
            .http
            .get(format!("{}/connections", demo.stack.api_url))
            .bearer_auth(&demo.token)
            .send()
            .await?;
        let view: Value = resp.json().await?;
        let shopify = &view["shopify"];
        let read = shopify["sync_in_progress"]["products_read"].as_u64();
        if let Some(read) = read {
            const SPIN: [char; 4] = ['|', '/', '-', '\\'];
            let frame = SPIN[(sync_started.elapsed().as_millis() / 200) as usize % SPIN.len()];
            print!(
                "\r   {frame} {read} products read, {:.1} s",
                sync_started.elapsed().as_secs_f64()
            );
            std::io::stdout().flush().ok();
        }
        if shopify["last_sync_at"].is_string() || shopify["last_sync_error"].is_string() {
            println!(
                "\r   sync finished in {:.1} s: {} products cached{}",
                sync_started.elapsed().as_secs_f64(),
                shopify["catalog_size"],
                " ".repeat(30)
            );
            break;
        }
        if sync_started.elapsed() > Duration::from_secs(300) {
            return Err("the sync did not finish in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    demo.step("What the catalog cache holds (active, published products only; what a recommendation needs)");
    let config = demo.stack.config("CatalogSyncFunction");
    let merchant = shared::domain::MerchantId::parse(MERCHANT)?;
    let store = shared::aws::dynamo::AppStore::from_sdk(&demo.stack.aws, &config.app_table);
    let catalog =
        shared::aws::catalog_store::CatalogStore::from_sdk(&demo.stack.aws, &config.catalog_table);
    let generation = store
        .shopify(&merchant)
        .await?
        .and_then(|c| c.catalog_generation)
        .unwrap_or_default();
    let products = catalog.read_generation(&merchant, &generation).await?;
    for p in products.iter().take(3) {
        println!(
            "   • {} — {} {} — {} — {}",
            p.title,
            p.price_min.amount,
            p.price_min.currency,
            if p.available { "in stock" } else { "sold out" },
            p.url
        );
    }
    println!(
        "   … {} products in generation {generation}",
        products.len()
    );

    demo.step("The merchant's connections now (no key, no token, ever)");
    let (_, body) = demo.call(Method::GET, "/connections", None).await;
    show(&body);

    demo.step("A re-sync on demand replaces the cache whole");
    let (status, body) = demo.call(Method::POST, "/catalog/sync", None).await;
    show(&body);
    assert_eq!(status, StatusCode::ACCEPTED);
    demo.stack.drain(Duration::from_secs(300)).await?;
    let new_generation = store
        .shopify(&merchant)
        .await?
        .and_then(|c| c.catalog_generation)
        .unwrap_or_default();
    println!("   generation {generation} → {new_generation}; the old one is deleted");

    personalize(&mut demo).await?;

    println!(
        "\nDemo finished in {:.1} s. Run `make test` for the test suite.",
        started.elapsed().as_secs_f64()
    );
    demo.stack.shutdown().await;
    Ok(())
}

const BRIEF: &str = "Warm layers for the first cold weekends";

/// Wrap `text` to `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Print a preview as two columns: what we knew about the customer | what was written.
fn show_preview(p: &Value) {
    const LEFT: usize = 44;
    const RIGHT: usize = 56;
    let mut left = vec![format!(
        "{} ({})",
        p["first_name"].as_str().unwrap_or("no first name"),
        p["profile_id"].as_str().unwrap_or("")
    )];
    left.extend(wrap(
        &format!("bought: {}", p["history"].as_str().unwrap_or("")),
        LEFT,
    ));
    left.push("candidates:".into());
    for c in p["candidates"].as_array().into_iter().flatten() {
        left.extend(wrap(
            &format!(
                "• {} {}",
                c["title"].as_str().unwrap_or(""),
                c["price"].as_str().unwrap_or("")
            ),
            LEFT,
        ));
    }
    let copy = &p["copy"];
    let mut right = Vec::new();
    if copy.is_object() {
        right.extend(wrap(
            &format!("Subject: {}", copy["subject"].as_str().unwrap_or("")),
            RIGHT,
        ));
        right.extend(wrap(
            &format!("Preheader: {}", copy["preheader"].as_str().unwrap_or("")),
            RIGHT,
        ));
        right.push(String::new());
        right.extend(wrap(copy["body"].as_str().unwrap_or(""), RIGHT));
        for product in copy["products"].as_array().into_iter().flatten() {
            right.extend(wrap(
                &format!(
                    "→ {} {}",
                    product["title"].as_str().unwrap_or(""),
                    product["price"].as_str().unwrap_or("")
                ),
                RIGHT,
            ));
        }
    } else {
        right.push(format!("{}: {}", p["outcome"], p["reason"]));
    }
    right.push(format!(
        "grounding: {}{}",
        if p["grounding"]["passed"].as_bool().unwrap_or(false) {
            "passed"
        } else {
            "failed"
        },
        if p["grounding"]["repaired"].as_bool().unwrap_or(false) {
            " after one repair"
        } else {
            ""
        }
    ));
    println!("   ┌{}┬{}┐", "─".repeat(LEFT + 2), "─".repeat(RIGHT + 2));
    for i in 0..left.len().max(right.len()) {
        let l = left.get(i).map(String::as_str).unwrap_or("");
        let r = right.get(i).map(String::as_str).unwrap_or("");
        println!("   │ {l:<LEFT$} │ {r:<RIGHT$} │");
    }
    println!("   └{}┴{}┘", "─".repeat(LEFT + 2), "─".repeat(RIGHT + 2));
}

async fn personalize(demo: &mut Demo) -> Result<(), shared::edge::FunctionError> {
    demo.step("Brand voice and slots for the copy");
    let settings = json!({
        "brand_voice": { "descriptors": ["warm", "outdoorsy", "plain-spoken"], "writing_rules": ["no exclamation marks"] },
        "language": "en",
        "slots": { "subject": { "max_chars": 60 }, "preheader": { "max_chars": 100 }, "body": { "max_chars": 500 }, "products": 2 },
        "sign_off": "The Demo Outdoor team"
    });
    let (status, _) = demo.call(Method::PUT, "/settings", Some(settings)).await;
    assert_eq!(status, StatusCode::OK);

    demo.step("The merchant's Klaviyo audiences");
    let (_, body) = demo.call(Method::GET, "/audiences", None).await;
    for a in body["audiences"].as_array().into_iter().flatten() {
        println!(
            "   • {:<8} {:<24} {}",
            a["kind"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["id"].as_str().unwrap_or("")
        );
    }
    let find = |name: &str| {
        body["audiences"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["name"] == name))
            .cloned()
    };
    let segment = find("VIP + Engaged").ok_or("the sample account has a VIP + Engaged segment")?;
    let preview_list = find("Preview List").unwrap_or_else(|| segment.clone());

    demo.step(&format!(
        "Preview three customers for the brief \"{BRIEF}\" (nothing is written or stored)"
    ));
    let key = shared::domain::KlaviyoApiKey::parse(&demo.stack.sandbox.full_access_klaviyo_key())?;
    let klaviyo = shared::klaviyo::KlaviyoClient::new(
        reqwest::Client::new(),
        demo.stack.sandbox.klaviyo_base_url(),
        "2026-07-15".into(),
    );
    let kind_of = |a: &Value| {
        if a["kind"] == "list" {
            shared::klaviyo::AudienceKind::List
        } else {
            shared::klaviyo::AudienceKind::Segment
        }
    };
    let (ids, _) = klaviyo
        .audience_page(
            &key,
            kind_of(&preview_list),
            preview_list["id"].as_str().unwrap_or_default(),
            None,
        )
        .await?;
    let sample: Vec<String> = ids.into_iter().take(3).collect();
    let (status, body) = demo
        .call(
            Method::POST,
            "/preview",
            Some(json!({ "brief": BRIEF, "profiles": sample })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for p in body["profiles"].as_array().into_iter().flatten() {
        show_preview(p);
    }
    println!(
        "   preview cost: {} tokens in, {} out, ${:.5}",
        body["tokens"]["input_tokens"],
        body["tokens"]["output_tokens"],
        body["estimated_cost_usd"].as_f64().unwrap_or(0.0)
    );

    demo.step(&format!(
        "Run the \"{}\" segment with a 10% holdout, reviewing samples first",
        segment["name"].as_str().unwrap_or("")
    ));
    let request = json!({ "audience": { "kind": segment["kind"], "id": segment["id"] }, "brief": BRIEF, "holdout_percent": 10, "review": true });
    let (status, body) = demo.call(Method::POST, "/runs", Some(request)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run_id = body["run"]["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, samples) = demo
        .call(Method::GET, &format!("/runs/{run_id}/samples"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{samples}");
    println!(
        "   run {run_id} is {} with {} samples to review; the merchant approves",
        body["run"]["state"],
        samples["samples"].as_array().map_or(0, Vec::len)
    );
    let (status, _) = demo
        .call(Method::POST, &format!("/runs/{run_id}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let started = Instant::now();
    let run = loop {
        let resp = demo
            .http
            .get(format!("{}/runs/{run_id}", demo.stack.api_url))
            .bearer_auth(&demo.token)
            .send()
            .await?;
        let run: Value = resp.json().await?;
        let c = &run["counts"];
        let sum = |m: &Value| {
            m.as_object()
                .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>())
        };
        let (written, holdout, skipped, failed) = (
            c["written"].as_u64().unwrap_or(0),
            c["holdout"].as_u64().unwrap_or(0),
            sum(&c["skipped"]),
            sum(&c["failed"]),
        );
        let total = c["total"].as_u64().unwrap_or(0).max(1);
        let done = written + holdout + skipped + failed;
        let width = 40;
        let filled = (done as usize * width / total as usize).min(width);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        print!(
            "\r   [{}{}] {done}/{total}  written {written}  holdout {holdout}  skipped {skipped}  failed {failed}  {rate:.0} profiles/s   ",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        std::io::stdout().flush().ok();
        if matches!(
            run["state"].as_str().unwrap_or_default(),
            "completed" | "cancelled" | "failed"
        ) {
            println!();
            break run;
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err("the run did not finish in 15 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    demo.step("Run summary (GET /runs/{id}): every profile written, held out, skipped or failed with a reason");
    show(&json!({
        "state": run["state"], "counts": run["counts"], "tokens": run["tokens"],
        "estimated_cost_usd": run["estimated_cost_usd"], "requests": run["requests"],
        "profiles_per_second": run["profiles_per_second"], "started_at": run["started_at"], "finished_at": run["finished_at"],
    }));
    std::fs::create_dir_all("target/demo")?;
    std::fs::write("target/demo/run.json", serde_json::to_string_pretty(&run)?)?;
    println!("   the full document is in target/demo/run.json");

    demo.step("Three written profiles read back from Klaviyo");
    println!(
        "   a template shows this run's copy and nothing older with\n   {}",
        run["template_snippet"].as_str().unwrap_or_default()
    );
    let (ids, _) = klaviyo
        .audience_page(
            &key,
            kind_of(&segment),
            segment["id"].as_str().unwrap_or_default(),
            None,
        )
        .await?;
    let profiles = klaviyo.get_profiles(&key, &ids).await?;
    let written = profiles.iter().filter(|p| {
        let props = &p["attributes"]["properties"];
        props["sp_campaign_run_id"] == run_id.as_str()
            && props["sp_campaign_outcome"] == "personalized"
    });
    for p in written.take(3) {
        let props = &p["attributes"]["properties"];
        println!("   ── profile {}", p["id"].as_str().unwrap_or(""));
        for key in [
            "sp_campaign_subject",
            "sp_campaign_preheader",
            "sp_campaign_body",
            "sp_campaign_product_1_title",
            "sp_campaign_product_1_price",
            "sp_campaign_product_1_url",
            "sp_campaign_outcome",
            "sp_campaign_run_id",
            "sp_campaign_generated_at",
        ] {
            let lines = wrap(props[key].as_str().unwrap_or(""), 90);
            println!(
                "   {key:<29} {}",
                lines.first().map(String::as_str).unwrap_or("")
            );
            for line in lines.iter().skip(1) {
                println!("   {:<29} {line}", "");
            }
        }
    }
    Ok(())
}
