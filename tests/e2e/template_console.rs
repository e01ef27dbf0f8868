//! The console's hosting, read from template.yaml and evaluated with the local runner's
//! intrinsics: a private bucket only the stack's CloudFront distribution reads (origin access
//! control), security headers a browser enforces, TLS, and one console origin that the API's
//! CORS and every function's APP_BASE_URL resolve to, whichever way the stack is deployed.

use local_runner::intrinsics::{intrinsic, ref_target, Resolver};
use local_runner::{Resources, Template};
use serde_yaml::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn template_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(path).expect("template.yaml")
}

/// The template deployed with these parameters (over the defaults), its resources at the
/// placeholder names the local runner gives undeployed resources.
struct Deployed {
    template: Template,
    parameters: HashMap<String, String>,
    resources: Resources,
}

impl Deployed {
    fn new(text: &str, parameters: &[(&str, &str)]) -> Self {
        let template = Template::parse(text).expect("template parses");
        let mut values: HashMap<String, String> = template
            .parameters
            .iter()
            .filter_map(|(k, p)| p.default.clone().map(|d| (k.clone(), d)))
            .collect();
        values.insert("ShopifyClientId".into(), "client".into());
        for (k, v) in parameters {
            assert!(template.parameters.contains_key(*k), "no parameter {k}");
            values.insert((*k).into(), (*v).into());
        }
        let mut resources = Resources::default();
        for (id, r) in &template.resources {
            resources.insert(id, Resources::placeholder("", id, &r.kind, "us-east-1"));
        }
        Deployed {
            template,
            parameters: values,
            resources,
        }
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            template: &self.template,
            parameters: &self.parameters,
            resources: &self.resources,
            region: "us-east-1",
            stack_name: "sendpersonal",
        }
    }

    fn string(&self, v: &Value) -> String {
        self.resolver()
            .resolve(self.pick(v))
            .unwrap_or_else(|e| panic!("{v:?}: {e}"))
            .unwrap_or_default()
    }

    /// A value with its `!If`s decided (they may choose between mappings, which `resolve`
    /// does not take).
    fn pick<'a>(&self, v: &'a Value) -> &'a Value {
        match intrinsic(v) {
            Some((name, Value::Sequence(parts))) if name == "If" && parts.len() == 3 => {
                let condition = parts[0].as_str().expect("condition name");
                let holds = self.resolver().condition(condition).expect("condition");
                self.pick(&parts[if holds { 1 } else { 2 }])
            }
            _ => v,
        }
    }

    fn properties(&self, id: &str) -> &Value {
        &self.template.resources[id].properties
    }

    fn of_kind(&self, kind: &str) -> Vec<&str> {
        self.template
            .resources
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn only(&self, kind: &str) -> &str {
        let ids = self.of_kind(kind);
        assert_eq!(ids.len(), 1, "one {kind}: {ids:?}");
        ids[0]
    }

    fn output(&self, name: &str) -> String {
        self.string(&self.template.raw["Outputs"][name]["Value"])
    }

    /// The distribution's own https origin.
    fn distribution_origin(&self) -> String {
        let id = self.only("AWS::CloudFront::Distribution");
        format!(
            "https://{}",
            self.resources.get_att(id, "DomainName").unwrap()
        )
    }

    /// Directive → sources of the console's Content-Security-Policy.
    fn csp(&self) -> BTreeMap<String, Vec<String>> {
        let csp = &self.headers()["ContentSecurityPolicy"];
        assert_eq!(csp["Override"].as_bool(), Some(true), "CSP must override");
        self.string(&csp["ContentSecurityPolicy"])
            .split(';')
            .filter_map(|d| {
                let mut words = d.split_whitespace().map(str::to_owned);
                Some((words.next()?, words.collect()))
            })
            .collect()
    }

    fn headers(&self) -> &Value {
        let id = self.only("AWS::CloudFront::ResponseHeadersPolicy");
        &self.properties(id)["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    }

    fn distribution(&self) -> &Value {
        &self.properties(self.only("AWS::CloudFront::Distribution"))["DistributionConfig"]
    }
}

const DOMAIN: [(&str, &str); 2] = [
    ("ConsoleDomainName", "app.example.com"),
    (
        "ConsoleCertificateArn",
        "arn:aws:acm:us-east-1:123456789012:certificate/0f0f0f0f-1111-2222-3333-444455556666",
    ),
];

/// Everything that breaks the console's isolation, for the template as given.
fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_owned());
        }
    };
    let d = Deployed::new(text, &[]);

    // The bucket: nothing public, objects owned by the bucket owner, encrypted at rest.
    let bucket = d.only("AWS::S3::Bucket");
    let p = d.properties(bucket);
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        check(
            p["PublicAccessBlockConfiguration"][flag].as_bool() == Some(true),
            &format!("bucket {flag} is not true"),
        );
    }
    check(
        p["OwnershipControls"]["Rules"][0]["ObjectOwnership"].as_str()
            == Some("BucketOwnerEnforced"),
        "bucket ownership is not enforced (ACLs still apply)",
    );
    check(
        p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            .is_string(),
        "bucket has no default encryption",
    );
    check(
        p.get("WebsiteConfiguration").is_none(),
        "bucket is a public website endpoint",
    );

    // Its policy: the only Allow is s3:GetObject for CloudFront from this distribution.
    let policies: Vec<&str> = d
        .of_kind("AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|id| ref_target(&d.properties(id)["Bucket"]).as_deref() == Some(bucket))
        .collect();
    check(policies.len() == 1, "the console bucket needs one policy");
    let distribution = d.only("AWS::CloudFront::Distribution");
    let distribution_arn = format!(
        "arn:aws:cloudfront::123456789012:distribution/{}",
        d.resources.ref_value(distribution).unwrap()
    );
    let mut tls_only = false;
    for id in policies {
        let statements = d.properties(id)["PolicyDocument"]["Statement"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for s in &statements {
            let sid = s["Sid"].as_str().unwrap_or("?");
            match s["Effect"].as_str() {
                Some("Allow") => {
                    check(
                        s["Principal"]["Service"].as_str() == Some("cloudfront.amazonaws.com")
                            && s["Principal"].as_mapping().map(|m| m.len()) == Some(1),
                        &format!("{sid}: allows someone other than CloudFront"),
                    );
                    check(
                        s["Action"].as_str() == Some("s3:GetObject"),
                        &format!("{sid}: allows more than s3:GetObject"),
                    );
                    let source = &s["Condition"]["StringEquals"]["AWS:SourceArn"];
                    check(
                        !source.is_null() && d.string(source) == distribution_arn,
                        &format!("{sid}: not limited to this distribution (AWS:SourceArn)"),
                    );
                }
                Some("Deny") => {
                    tls_only |= s["Condition"]["Bool"]["aws:SecureTransport"].as_str()
                        == Some("false")
                        && s["Principal"].as_str() == Some("*");
                }
                _ => check(false, &format!("{sid}: no Effect")),
            }
        }
    }
    check(tls_only, "the bucket policy does not deny plain HTTP");

    // The distribution reads the bucket through a SigV4-signing origin access control only.
    let config = d.distribution();
    let origins = config["Origins"].as_sequence().cloned().unwrap_or_default();
    check(origins.len() == 1, "the distribution has one origin");
    for o in &origins {
        check(
            ref_target(&o["DomainName"]).as_deref() == Some(bucket),
            "the origin is not the console bucket",
        );
        check(
            o["S3OriginConfig"]["OriginAccessIdentity"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "the origin uses a legacy origin access identity",
        );
        let oac = ref_target(&o["OriginAccessControlId"]).unwrap_or_default();
        let oac = &d.properties(&oac)["OriginAccessControlConfig"];
        check(
            oac["OriginAccessControlOriginType"].as_str() == Some("s3")
                && oac["SigningBehavior"].as_str() == Some("always")
                && oac["SigningProtocol"].as_str() == Some("sigv4"),
            "the origin access control does not always sign (SigV4)",
        );
    }
    let behavior = &config["DefaultCacheBehavior"];
    check(
        matches!(
            behavior["ViewerProtocolPolicy"].as_str(),
            Some("redirect-to-https" | "https-only")
        ),
        "the console is served over plain HTTP",
    );
    check(
        behavior["Compress"].as_bool() == Some(true),
        "responses are not compressed",
    );
    check(
        ref_target(&behavior["ResponseHeadersPolicyId"]).as_deref()
            == Some(d.only("AWS::CloudFront::ResponseHeadersPolicy")),
        "the default behavior does not send the security headers",
    );
    check(
        config["HttpVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("http2")),
        "not HTTP/2",
    );
    check(
        config["DefaultRootObject"].as_str() == Some("index.html"),
        "no default root object",
    );

    // With a custom domain, TLS 1.2 or later (the cloudfront.net certificate's policy is
    // CloudFront's and cannot be raised).
    let custom = Deployed::new(text, &DOMAIN);
    let certificate = custom.pick(&custom.distribution()["ViewerCertificate"]);
    let min_tls = certificate["MinimumProtocolVersion"].as_str().unwrap_or("");
    check(
        min_tls.starts_with("TLSv1.2") || min_tls.starts_with("TLSv1.3"),
        &format!("custom domain minimum TLS is {min_tls:?}"),
    );
    check(
        certificate["SslSupportMethod"].as_str() == Some("sni-only"),
        "custom domain certificate is not SNI",
    );
    check(
        custom.string(&certificate["AcmCertificateArn"]) == DOMAIN[1].1,
        "custom domain does not use ConsoleCertificateArn",
    );
    let aliases = custom.pick(&custom.distribution()["Aliases"]);
    check(
        aliases
            .as_sequence()
            .is_some_and(|a| a.len() == 1 && custom.string(&a[0]) == DOMAIN[0].1),
        "custom domain is not the distribution's alias",
    );

    // Headers.
    let csp = d.csp();
    let sources = |directive: &str| csp.get(directive).cloned().unwrap_or_default();
    let script = sources("script-src");
    check(
        !script.is_empty(),
        "no script-src (default-src would decide)",
    );
    for bad in [
        "'unsafe-inline'",
        "'unsafe-eval'",
        "data:",
        "*",
        "https:",
        "http:",
    ] {
        check(
            !script.iter().any(|s| s == bad),
            &format!("script-src allows {bad}"),
        );
    }
    check(
        sources("frame-ancestors") == ["'none'"],
        "frame-ancestors is not 'none'",
    );
    check(
        sources("object-src") == ["'none'"],
        "object-src is not 'none'",
    );
    check(sources("base-uri") == ["'none'"], "base-uri is not 'none'");
    check(
        sources("default-src") == ["'self'"],
        "default-src is not 'self'",
    );
    for (directive, list) in &csp {
        check(
            !list.iter().any(|s| s == "*" || s == "'unsafe-inline'"),
            &format!("{directive} allows * or 'unsafe-inline'"),
        );
    }
    // The console talks to its API and Cognito's token endpoint, nothing else.
    let with_api = Deployed::new(
        text,
        &[(
            "ApiPublicUrl",
            "https://abc123.execute-api.us-east-1.amazonaws.com",
        )],
    );
    let connect = with_api.csp()["connect-src"].clone();
    check(
        connect.contains(&"https://abc123.execute-api.us-east-1.amazonaws.com/".to_owned()),
        &format!("connect-src {connect:?} does not name the API"),
    );
    check(
        connect.iter().any(|s| s.contains(".amazoncognito.com")),
        &format!("connect-src {connect:?} does not name Cognito"),
    );
    check(
        connect.len() == 3 && connect[0] == "'self'",
        &format!("connect-src {connect:?} allows more than the console, API and Cognito"),
    );

    let h = d.headers();
    let hsts = &h["StrictTransportSecurity"];
    check(
        hsts["AccessControlMaxAgeSec"]
            .as_u64()
            .is_some_and(|s| s >= 31_536_000)
            && hsts["IncludeSubdomains"].as_bool() == Some(true)
            && hsts["Override"].as_bool() == Some(true),
        "HSTS is shorter than a year or leaves out subdomains",
    );
    check(
        h["ContentTypeOptions"]["Override"].as_bool() == Some(true),
        "no X-Content-Type-Options",
    );
    check(
        h["FrameOptions"]["FrameOption"].as_str() == Some("DENY"),
        "X-Frame-Options is not DENY",
    );
    check(
        matches!(
            h["ReferrerPolicy"]["ReferrerPolicy"].as_str(),
            Some("no-referrer" | "strict-origin-when-cross-origin")
        ),
        "the referrer policy leaks paths",
    );
    let policy = &d.properties(d.only("AWS::CloudFront::ResponseHeadersPolicy"))
        ["ResponseHeadersPolicyConfig"];
    check(
        policy["CustomHeadersConfig"]["Items"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|i| {
                i["Header"].as_str() == Some("Permissions-Policy")
                    && i["Value"].as_str().is_some_and(|v| v.contains("camera=()"))
            }),
        "no Permissions-Policy",
    );
    problems
}

#[test]
fn the_console_bucket_is_private_and_served_with_security_headers() {
    let problems = problems(&template_text());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_public_bucket_or_an_inline_script_policy_is_caught() {
    let text = template_text();
    for (from, to, expect) in [
        (
            "BlockPublicPolicy: true",
            "BlockPublicPolicy: false",
            "bucket BlockPublicPolicy is not true",
        ),
        (
            "- script-src 'self'",
            "- script-src 'self' 'unsafe-inline'",
            "script-src allows 'unsafe-inline'",
        ),
        (
            "- frame-ancestors 'none'",
            "- frame-ancestors 'self'",
            "frame-ancestors is not 'none'",
        ),
        (
            "AccessControlMaxAgeSec: 63072000",
            "AccessControlMaxAgeSec: 86400",
            "HSTS is shorter than a year or leaves out subdomains",
        ),
        (
            "MinimumProtocolVersion: TLSv1.2_2021",
            "MinimumProtocolVersion: TLSv1_2016",
            "custom domain minimum TLS is \"TLSv1_2016\"",
        ),
        (
            "Service: cloudfront.amazonaws.com",
            "AWS: \"*\"",
            "ReadThroughThisDistributionOnly: allows someone other than CloudFront",
        ),
    ] {
        assert!(text.contains(from), "template no longer has {from:?}");
        let found = problems(&text.replacen(from, to, 1));
        assert!(
            found.iter().any(|p| p == expect),
            "{from} → {to}: {found:#?}"
        );
    }
}

#[test]
fn the_api_cors_origin_and_app_base_url_are_the_consoles_origin() {
    let text = template_text();
    let distribution = Deployed::new(&text, &[]).distribution_origin();
    for (parameters, origin) in [
        // Default: the distribution's domain, derived in the stack.
        (vec![], distribution),
        // A custom domain.
        (DOMAIN.to_vec(), "https://app.example.com".to_owned()),
        // Served elsewhere (the local runner).
        (
            vec![("AppBaseUrl", "http://localhost:5173")],
            "http://localhost:5173".to_owned(),
        ),
    ] {
        let d = Deployed::new(&text, &parameters);
        assert_eq!(d.output("ConsoleUrl"), origin, "{parameters:?}");
        let cors: Vec<String> = d
            .template
            .http_apis
            .keys()
            .flat_map(|id| {
                d.properties(id)["CorsConfiguration"]["AllowOrigins"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|o| d.string(o))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(!d.template.http_apis.is_empty());
        assert_eq!(cors, vec![origin.clone()], "{parameters:?}");
        for (id, f) in &d.template.functions {
            let app = f
                .environment
                .get("APP_BASE_URL")
                .unwrap_or_else(|| panic!("{id} has no APP_BASE_URL"));
            assert_eq!(d.string(app), origin, "{id} {parameters:?}");
        }
        // Cognito's managed login returns to the console too: every registered callback and
        // sign-out URL is on the console's origin.
        for id in d.of_kind("AWS::Cognito::UserPoolClient") {
            for (key, path) in [("CallbackURLs", "/auth/callback"), ("LogoutURLs", "/")] {
                for url in d.properties(id)[key].as_sequence().into_iter().flatten() {
                    let url = d.string(url);
                    assert_eq!(url, format!("{origin}{path}"), "{id} {key} {parameters:?}");
                }
            }
        }
    }
}

/// Whether a CSP host source (`https://*.example.com`, `https://api.example.com/`) allows `url`.
fn csp_allows(source: &str, url: &str) -> bool {
    let (Some((scheme, host)), Some((url_scheme, rest))) =
        (source.split_once("://"), url.split_once("://"))
    else {
        return false;
    };
    let url_host = rest.split('/').next().unwrap_or_default();
    let host = host.trim_end_matches('/');
    scheme == url_scheme
        && match host.strip_prefix("*.") {
            Some(suffix) => url_host.ends_with(&format!(".{suffix}")),
            None => url_host == host,
        }
}

#[test]
fn the_csp_lets_the_console_reach_the_cognito_domain_the_stack_outputs() {
    let d = Deployed::new(&template_text(), &[]);
    let csp = d.csp();
    // The Cognito domain the console is configured with (config.json cognitoDomain), once the
    // template declares one; until then the region's managed-login domains.
    let has_domain = !d.template.raw["Outputs"]["CognitoDomainUrl"].is_null();
    let cognito = if has_domain {
        d.output("CognitoDomainUrl")
    } else {
        "https://sendpersonal-example.auth.us-east-1.amazoncognito.com".to_owned()
    };
    for directive in ["connect-src", "form-action"] {
        assert!(
            csp[directive].iter().any(|s| csp_allows(s, &cognito)),
            "{directive} {:?} does not allow {cognito}",
            csp[directive]
        );
        assert!(
            !csp[directive]
                .iter()
                .any(|s| csp_allows(s, "https://attacker.example.com")),
            "{directive} {:?}",
            csp[directive]
        );
    }
    // Before ApiPublicUrl is set the API is reachable by its execute-api host.
    assert!(csp["connect-src"]
        .iter()
        .any(|s| csp_allows(s, "https://abc123.execute-api.us-east-1.amazonaws.com/runs")));
}

#[test]
fn client_routes_get_the_app_shell_and_missing_files_stay_missing() {
    let text = template_text();
    let d = Deployed::new(&text, &[]);
    let id = d.only("AWS::CloudFront::Function");
    let p = d.properties(id);
    assert_eq!(
        p["FunctionConfig"]["Runtime"].as_str(),
        Some("cloudfront-js-2.0")
    );
    let associations = d.distribution()["DefaultCacheBehavior"]["FunctionAssociations"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    assert!(
        associations
            .iter()
            .any(|a| a["EventType"].as_str() == Some("viewer-request")
                && ref_target(&a["FunctionARN"]).as_deref() == Some(id)),
        "{associations:?}"
    );
    // Run the function's own code on CloudFront's viewer-request event shape.
    let cases = [
        ("/", "/index.html"),
        ("/auth/callback", "/index.html"),
        ("/install", "/index.html"),
        ("/connections", "/index.html"),
        ("/runs/01JDX8W3Q4", "/index.html"),
        ("/runs/", "/index.html"),
        ("/index.html", "/index.html"),
        ("/config.json", "/config.json"),
        ("/assets/index-4f2a9c.js", "/assets/index-4f2a9c.js"),
        ("/assets/gone-000000.css", "/assets/gone-000000.css"),
        ("/favicon.svg", "/favicon.svg"),
    ];
    let code = p["FunctionCode"].as_str().expect("inline FunctionCode");
    let script = format!(
        "{code}\nconst uris = JSON.parse(process.argv[1]);\n\
         console.log(JSON.stringify(uris.map(u => handler({{request: {{method: 'GET', uri: u, querystring: {{}}, headers: {{}}, cookies: {{}}}}}}).uri)));"
    );
    let uris: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(&script)
        .arg(serde_json::to_string(&uris).unwrap())
        .output()
        .expect("node runs (installed with the console's toolchain)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<&str> = cases.iter().map(|c| c.1).collect();
    assert_eq!(got, want);
}
