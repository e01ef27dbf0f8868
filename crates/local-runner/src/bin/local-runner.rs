//! `cargo run -p local-runner --bin local-runner -- [--port 8080] [--schedules] [--console]`
//!
//! Starts the whole stack on this machine (local API Gateway, SQS pollers, the sandbox vendors,
//! with `--console` the merchant console) against moto at `AWS_ENDPOINT_URL`, prints where
//! everything is, a bearer token for a demo merchant and the sandbox's demo accounts, and runs
//! until Ctrl-C.

use local_runner::{LocalStack, StackOptions};

const USAGE: &str = "usage: local-runner [--port PORT] [--schedules] [--prefix PREFIX] [--template PATH]
                    [--console] [--console-port PORT] [--openapi]

  --port PORT       port of the local API Gateway on 127.0.0.1 (default: any free port)
  --schedules       also fire every rate(...) Schedule event of template.yaml on its interval
  --prefix PREFIX   resource name prefix in moto (default: random, like \"t3k9x-\")
  --template PATH   template to serve (default: the workspace's template.yaml)
  --console         also serve the merchant console (console/dist, built by `make console`)
  --console-port P  port of the console on 127.0.0.1 (default: any free port)
  --openapi         print the API's OpenAPI document (what GET /openapi.json serves) and exit

Needs moto: AWS_ENDPOINT_URL (e.g. http://127.0.0.1:5055), AWS_REGION, AWS credentials (\"testing\").";

#[tokio::main]
async fn main() {
    // Human-readable logs: this runs in a terminal, not CloudWatch.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let mut options = StackOptions::default();
    let mut schedules = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => options.api_port = parse_or_exit(args.next(), "--port"),
            "--schedules" => schedules = true,
            "--console" => {
                options.console.get_or_insert_with(Default::default);
            }
            "--console-port" => {
                options.console.get_or_insert_with(Default::default).port =
                    parse_or_exit(args.next(), "--console-port")
            }
            "--prefix" => options.prefix = parse_or_exit(args.next(), "--prefix"),
            "--template" => options.template_path = parse_or_exit(args.next(), "--template"),
            "--openapi" => {
                // The console generates its API types from this (make console-api).
                match serde_json::to_string_pretty(&shared::api::openapi()) {
                    Ok(doc) => println!("{doc}"),
                    Err(e) => {
                        eprintln!("cannot serialise the OpenAPI document: {e}");
                        std::process::exit(1);
                    }
                }
                return;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    let stack = match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("local-runner: {e}");
            std::process::exit(1);
        }
    };
    if schedules {
        stack.spawn_schedules();
    }
    let merchant = "demo-merchant";
    let token = stack.token(merchant).await;
    println!("API Gateway   {}", stack.api_url);
    println!("Sandbox       {}", stack.sandbox.base_url);
    println!("Moto prefix   {}", stack.prefix);
    for (id, f) in &stack.template.functions {
        for r in &f.http_routes {
            println!("  {:<8} {:<40} -> {id}", r.method, r.path);
        }
        for m in &f.sqs {
            println!("  SQS      {:<40} -> {id}", m.queue);
        }
        for s in &f.schedules {
            let mode = if schedules {
                "on interval"
            } else {
                "on demand"
            };
            println!("  Schedule {:<40} -> {id} ({mode})", s.expression);
        }
    }
    println!("Bearer token for merchant {merchant} (1 hour):\n{token}");

    println!(
        "\ncurl -H 'Authorization: Bearer {token}' {}/connections",
        stack.api_url
    );
    if let Some(console) = &stack.console_url {
        print_console_accounts(&stack, console).await;
    }
    println!("\nCtrl-C to stop.");

    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cannot listen for Ctrl-C: {e}");
    }
    stack.shutdown().await;
}

fn parse_or_exit<T: std::str::FromStr>(value: Option<String>, flag: &str) -> T {
    match value.as_deref().map(str::parse) {
        Some(Ok(v)) => v,
        _ => {
            eprintln!("{flag} needs a valid value\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// The console and what a person needs to walk through it against the sandbox.
async fn print_console_accounts(stack: &LocalStack, console: &str) {
    let sandbox = &stack.sandbox.base_url;
    // A key lacking one read scope, to see the console name what is missing.
    let scopes: Vec<&str> = shared::klaviyo::limits::SCOPES
        .iter()
        .copied()
        .filter(|s| *s != "events:read")
        .collect();
    let limited = match reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/klaviyo/keys"))
        .json(&serde_json::json!({ "scopes": scopes }))
        .send()
        .await
    {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["key"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    println!();
    println!("\x1b[1mConsole       {console}\x1b[0m");
    println!("  Sign up with any email and a password as the pool's policy asks (12+ characters: upper and lower case, digit, symbol);");
    println!("  the confirmation code \"emailed\" is at {sandbox}/_sandbox/cognito/codes?email=<your email>");
    println!(
        "  Klaviyo private key (demo account, all scopes): {}",
        stack.sandbox.full_access_klaviyo_key()
    );
    if !limited.is_empty() {
        println!("  Klaviyo private key missing events:read (to see the error): {limited}");
    }
    println!("  Shopify shop: demo-store.myshopify.com (the sandbox approves the install at once)");
}
