//! `make deploy`'s console upload (infra/deploy-console.sh) against moto: the real AWS CLI reads
//! a stack's outputs from CloudFormation, writes config.json, uploads a built console to S3 with a
//! Content-Type and Cache-Control per kind of file, and invalidates CloudFront. Needs moto
//! (AWS_ENDPOINT_URL) and the CLI of .venv-deploy (`make test` installs it; AWS_CLI overrides).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn aws_cli() -> PathBuf {
    let cli = std::env::var_os("AWS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-deploy/bin/aws"));
    assert!(
        cli.exists(),
        "{} is missing: `make venv-deploy` installs the AWS CLI",
        cli.display()
    );
    cli
}

/// A command with the CLI's folder first on PATH, talking to moto only.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL (moto) must be set: the upload must never reach a real account");
    let bin = aws_cli().parent().unwrap().to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut c = Command::new(program);
    c.env("PATH", path)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("command runs");
    assert!(
        out.status.success(),
        "{c:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn aws(args: &[&str]) -> Value {
    let mut c = command(aws_cli());
    c.args(args).args(["--output", "json"]);
    let out = run(c);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn write(dir: &Path, rel: &str, body: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// A console build as Vite lays it out: hashed files under assets/, the rest at the root.
fn fake_build() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("console-dist"));
    write(
        &dir,
        "index.html",
        r#"<!doctype html><link rel="stylesheet" href="/assets/index-9f8e7d.css"><script type="module" src="/assets/index-1a2b3c.js"></script>"#,
    );
    write(&dir, "assets/index-1a2b3c.js", "export const a = 1;\n");
    write(&dir, "assets/index-9f8e7d.css", "body{margin:0}\n");
    write(
        &dir,
        "assets/logo-4d5e6f.svg",
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    );
    write(&dir, "assets/inter-0a0b0c.woff2", "wOF2");
    write(
        &dir,
        "favicon.svg",
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    );
    write(&dir, "robots.txt", "User-agent: *\nDisallow: /\n");
    dir
}

struct Deployed {
    stack: String,
    bucket: String,
    distribution: String,
}

/// A stack in moto's CloudFormation with the outputs `sam deploy` leaves, its bucket created
/// by the stack, its distribution a real (moto) CloudFront distribution.
fn deployed_stack() -> Deployed {
    let distribution = aws(&[
        "cloudfront",
        "create-distribution",
        "--origin-domain-name",
        "console.s3.us-east-1.amazonaws.com",
        "--default-root-object",
        "index.html",
    ])["Distribution"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let template = json!({
        "Resources": {"ConsoleBucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {
            "ConsoleBucketName": {"Value": {"Ref": "ConsoleBucket"}},
            "DistributionId": {"Value": distribution},
            "ConsoleUrl": {"Value": "https://d1234abcd.cloudfront.net"},
            "ConsoleApiUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com"},
            "CognitoDomainUrl": {"Value": "https://sendpersonal-123.auth.us-east-1.amazoncognito.com"},
            "UserPoolClientId": {"Value": "4f7b2client"},
            "ApiUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com"}
        }
    });
    let stack = unique("console");
    aws(&[
        "cloudformation",
        "create-stack",
        "--stack-name",
        &stack,
        "--template-body",
        &template.to_string(),
    ]);
    let outputs = aws(&["cloudformation", "describe-stacks", "--stack-name", &stack])["Stacks"][0]
        ["Outputs"]
        .clone();
    let bucket = outputs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["OutputKey"] == "ConsoleBucketName")
        .and_then(|o| o["OutputValue"].as_str())
        .unwrap()
        .to_owned();
    Deployed {
        stack,
        bucket,
        distribution,
    }
}

fn deploy_console(stack: &str, dist: Option<&Path>, console_dir: Option<&Path>) -> Output {
    let mut c = command("bash");
    c.arg(root().join("infra/deploy-console.sh"))
        .args(["--stack", stack]);
    if let Some(d) = dist {
        c.arg("--dist").arg(d);
    }
    if let Some(d) = console_dir {
        c.env("CONSOLE_DIR", d);
    }
    c.output().expect("bash runs")
}

#[test]
fn the_build_and_config_reach_the_bucket_with_their_types_and_cache_headers() {
    let d = deployed_stack();
    // An asset of the previous build: a browser still on the old index.html needs it.
    let old = std::env::temp_dir().join(unique("old-asset"));
    std::fs::write(&old, "export const old = 1;\n").unwrap();
    aws(&[
        "s3",
        "cp",
        old.to_str().unwrap(),
        &format!("s3://{}/assets/index-000000.js", d.bucket),
    ]);

    let dist = fake_build();
    let out = deploy_console(&d.stack, Some(&dist), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let immutable = "public, max-age=31536000, immutable";
    let expected = [
        ("index.html", "text/html; charset=utf-8", "no-cache"),
        ("config.json", "application/json", "no-cache"),
        (
            "assets/index-1a2b3c.js",
            "text/javascript; charset=utf-8",
            immutable,
        ),
        (
            "assets/index-9f8e7d.css",
            "text/css; charset=utf-8",
            immutable,
        ),
        ("assets/logo-4d5e6f.svg", "image/svg+xml", immutable),
        ("assets/inter-0a0b0c.woff2", "font/woff2", immutable),
        ("favicon.svg", "image/svg+xml", "public, max-age=3600"),
        (
            "robots.txt",
            "text/plain; charset=utf-8",
            "public, max-age=3600",
        ),
    ];
    // One CLI process per object, side by side (each starts a Python interpreter).
    let heads: Vec<Value> = std::thread::scope(|scope| {
        let running: Vec<_> = expected
            .iter()
            .map(|(key, _, _)| {
                let bucket = &d.bucket;
                scope
                    .spawn(move || aws(&["s3api", "head-object", "--bucket", bucket, "--key", key]))
            })
            .collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((key, content_type, cache), head) in expected.iter().zip(heads) {
        assert_eq!(head["ContentType"], *content_type, "{key}: {head}");
        assert_eq!(head["CacheControl"], *cache, "{key}: {head}");
        if *key != "config.json" {
            let body = std::fs::read(dist.join(key)).unwrap();
            assert_eq!(head["ContentLength"], body.len(), "{key}");
        }
    }
    let keys: Vec<String> = aws(&["s3api", "list-objects-v2", "--bucket", &d.bucket])["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert!(
        keys.contains(&"assets/index-000000.js".to_owned()),
        "{keys:?}"
    );

    // config.json: the console's runtime configuration, from the stack's outputs.
    let config_file = std::env::temp_dir().join(unique("config"));
    aws(&[
        "s3",
        "cp",
        &format!("s3://{}/config.json", d.bucket),
        config_file.to_str().unwrap(),
    ]);
    let config: Value = serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    assert_eq!(
        config,
        json!({
            "apiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
            "cognitoDomain": "https://sendpersonal-123.auth.us-east-1.amazoncognito.com",
            "clientId": "4f7b2client",
            "redirectUri": "https://d1234abcd.cloudfront.net/auth/callback",
            "logoutUri": "https://d1234abcd.cloudfront.net/"
        })
    );

    // What is not content-addressed is invalidated.
    let list = aws(&[
        "cloudfront",
        "list-invalidations",
        "--distribution-id",
        &d.distribution,
    ]);
    let ids: Vec<&str> = list["InvalidationList"]["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{list}");
    let invalidation = aws(&[
        "cloudfront",
        "get-invalidation",
        "--distribution-id",
        &d.distribution,
        "--id",
        ids[0],
    ]);
    let mut paths: Vec<&str> = invalidation["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/config.json", "/index.html"]);

    std::fs::remove_dir_all(&dist).ok();
    std::fs::remove_file(&old).ok();
    std::fs::remove_file(&config_file).ok();
}

#[test]
fn without_a_console_or_an_output_nothing_is_uploaded_and_the_reason_is_said() {
    let d = deployed_stack();
    let missing = std::env::temp_dir().join(unique("no-console"));
    let out = deploy_console(&d.stack, None, Some(&missing));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no console to build") && stderr.contains("package.json is missing"),
        "{stderr}"
    );

    // A stack without the Cognito outputs (deployed from an older template).
    let stack = unique("console-old");
    let template = json!({
        "Resources": {"ConsoleBucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {"ConsoleBucketName": {"Value": {"Ref": "ConsoleBucket"}},
                    "ConsoleApiUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com"}}
    });
    aws(&[
        "cloudformation",
        "create-stack",
        "--stack-name",
        &stack,
        "--template-body",
        &template.to_string(),
    ]);
    let dist = fake_build();
    let out = deploy_console(&stack, Some(&dist), None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("stack {stack} has no output CognitoDomainUrl")),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dist).ok();

    // Nothing reached the first stack's bucket.
    let listed = aws(&["s3api", "list-objects-v2", "--bucket", &d.bucket]);
    assert!(listed.get("Contents").is_none(), "{listed}");
}
