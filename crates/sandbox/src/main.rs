//! `sandbox --port P [--seed S] [--products N] [--profiles N] [--limits real|relaxed]`

use std::process::ExitCode;

use sandbox::{serve, RateLimits, SandboxConfig};

const USAGE: &str =
    "usage: sandbox --port P [--seed S] [--products N] [--profiles N] [--limits real|relaxed]";

fn parse_args() -> Result<(u16, SandboxConfig), String> {
    let mut port = None;
    let mut config = SandboxConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |_| format!("invalid value for {flag}: {value}");
        match flag.as_str() {
            "--port" => port = Some(value.parse().map_err(bad)?),
            "--seed" => config.seed = value.parse().map_err(bad)?,
            "--products" => config.default_shop_products = value.parse().map_err(bad)?,
            "--profiles" => config.klaviyo_profiles = value.parse().map_err(bad)?,
            "--limits" => {
                config.klaviyo_limits = match value.as_str() {
                    "real" => RateLimits::Real,
                    "relaxed" => RateLimits::Relaxed,
                    _ => return Err(format!("--limits must be real or relaxed\n{USAGE}")),
                }
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    let port = port.ok_or_else(|| USAGE.to_string())?;
    Ok((port, config))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let (port, config) = match parse_args() {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot bind 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    let sandbox = serve(listener, config).await;
    println!("sandbox listening on {}", sandbox.base_url);
    // Runs until killed.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
