//! `cargo run -p local-runner --bin local-runner -- [--port 8080] [--schedules]`
//!
//! Starts the whole stack on this machine (local API Gateway, SQS pollers, the sandbox vendors)
//! against moto at `AWS_ENDPOINT_URL`, prints where everything is and a bearer token for a demo
//! merchant, and runs until Ctrl-C.

use local_runner::{LocalStack, StackOptions};

const USAGE: &str = "usage: local-runner [--port PORT] [--schedules] [--prefix PREFIX] [--template PATH]

  --port PORT       port of the local API Gateway on 127.0.0.1 (default: any free port)
  --schedules       also fire every rate(...) Schedule event of template.yaml on its interval
  --prefix PREFIX   resource name prefix in moto (default: random, like \"t3k9x-\")
  --template PATH   template to serve (default: the workspace's template.yaml)

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
            "--prefix" => options.prefix = parse_or_exit(args.next(), "--prefix"),
            "--template" => options.template_path = parse_or_exit(args.next(), "--template"),
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
