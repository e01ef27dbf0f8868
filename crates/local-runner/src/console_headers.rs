//! The response headers CloudFront adds to the console (template.yaml's
//! `AWS::CloudFront::ResponseHeadersPolicy`), for whoever serves the console locally, so a
//! browser test runs under the deployed Content-Security-Policy and catches what it would block.
//! Only the hosts that differ locally change: the CSP's `connect-src` and `form-action` name
//! the local API and the sandbox's Cognito instead of execute-api and amazoncognito.com.
//! HSTS is left out: the local console is plain HTTP, where browsers ignore it.

use serde_yaml::Value;

use crate::error::StackError;
use crate::intrinsics::Resolver;

/// `(name, value)` pairs for every response of the local console.
///
/// `api_origin` and `cognito_origin` are `scheme://host:port` of the local API and of the
/// sandbox serving Cognito's endpoints.
pub fn console_headers(
    resolver: &Resolver<'_>,
    api_origin: &str,
    cognito_origin: &str,
) -> Result<Vec<(String, String)>, StackError> {
    let policies: Vec<&Value> = resolver
        .template
        .resources
        .values()
        .filter(|r| r.kind == "AWS::CloudFront::ResponseHeadersPolicy")
        .map(|r| &r.properties["ResponseHeadersPolicyConfig"])
        .collect();
    let [config] = policies[..] else {
        return Err(StackError::Template(format!(
            "expected one AWS::CloudFront::ResponseHeadersPolicy for the console, found {}",
            policies.len()
        )));
    };
    let security = &config["SecurityHeadersConfig"];
    let mut headers = Vec::new();
    if let Some(csp) = security["ContentSecurityPolicy"]
        .get("ContentSecurityPolicy")
        .map(|v| resolver.resolve(v))
        .transpose()?
        .flatten()
    {
        headers.push((
            "content-security-policy".to_owned(),
            localise_csp(&csp, api_origin, cognito_origin),
        ));
    }
    if !security["ContentTypeOptions"].is_null() {
        headers.push(("x-content-type-options".to_owned(), "nosniff".to_owned()));
    }
    if let Some(option) = security["FrameOptions"]["FrameOption"].as_str() {
        headers.push(("x-frame-options".to_owned(), option.to_owned()));
    }
    if let Some(policy) = security["ReferrerPolicy"]["ReferrerPolicy"].as_str() {
        headers.push(("referrer-policy".to_owned(), policy.to_owned()));
    }
    for item in config["CustomHeadersConfig"]["Items"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(value)) =
            (item["Header"].as_str(), resolver.resolve(&item["Value"])?)
        {
            headers.push((name.to_ascii_lowercase(), value));
        }
    }
    Ok(headers)
}

/// The deployed CSP with `connect-src` and `form-action` pointing at the local hosts.
fn localise_csp(csp: &str, api_origin: &str, cognito_origin: &str) -> String {
    csp.split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|directive| {
            let name = directive.split_whitespace().next().unwrap_or_default();
            let local: &[&str] = match name {
                "connect-src" => &[api_origin, cognito_origin],
                "form-action" => &[cognito_origin],
                _ => return directive.to_owned(),
            };
            // Keep the keywords ('self', 'none'), replace the hosts.
            let mut sources: Vec<&str> = directive
                .split_whitespace()
                .skip(1)
                .filter(|s| s.starts_with('\''))
                .collect();
            sources.extend(local);
            format!("{name} {}", sources.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;
    use crate::template::Template;
    use std::collections::HashMap;

    #[test]
    fn the_workspace_templates_headers_with_local_hosts() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template = Template::load(&path).unwrap();
        let parameters: HashMap<String, String> = template
            .parameters
            .iter()
            .filter_map(|(k, p)| p.default.clone().map(|d| (k.clone(), d)))
            .collect();
        let mut resources = Resources::default();
        for (id, r) in &template.resources {
            resources.insert(id, Resources::placeholder("", id, &r.kind, "us-east-1"));
        }
        let resolver = Resolver {
            template: &template,
            parameters: &parameters,
            resources: &resources,
            region: "us-east-1",
            stack_name: "local",
        };
        let headers: HashMap<String, String> =
            console_headers(&resolver, "http://127.0.0.1:4000", "http://127.0.0.1:4001")
                .unwrap()
                .into_iter()
                .collect();
        let csp = &headers["content-security-policy"];
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:4000 http://127.0.0.1:4001;"),
            "{csp}"
        );
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:4001;"),
            "{csp}"
        );
        assert!(
            !csp.contains("amazonaws.com") && !csp.contains("amazoncognito"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(headers["permissions-policy"].contains("camera=()"));
        assert!(!headers.contains_key("strict-transport-security"));
    }
}
