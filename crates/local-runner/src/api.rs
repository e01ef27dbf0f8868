//! API Gateway HTTP API, locally: template routes, the JWT authorizer, payload format 2.0 events
//! built the way AWS builds them, and the function's response mapped back to HTTP.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::{claims_as_strings, scopes, Claims, JwtAuthorizer};
use crate::invoker::Invoker;
use crate::template::{HttpRouteDef, RouteAuth};

pub const PROBLEM_BASE: &str = "https://sendpersonal.app/problems/";
/// Requests with a larger body are refused with 413 before any function runs: API Gateway HTTP
/// API's payload quota, 10 MB (it answers "HTTP content length exceeded 10485760 bytes").
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Lambda's limit on a synchronous invocation's request (6 MiB): a body under
/// [`MAX_BODY_BYTES`] whose event (headers, context, the body escaped as a JSON string or
/// base64-encoded) is larger never reaches the function, and API Gateway answers 413.
pub const LAMBDA_REQUEST_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{proxy+}`: one or more remaining segments.
    Greedy(String),
}

#[derive(Clone, Debug)]
pub struct Route {
    pub function: String,
    pub method: String,
    pub route_key: String,
    pub auth: RouteAuth,
    segments: Vec<Segment>,
    is_default: bool,
}

impl Route {
    pub fn new(function: &str, def: &HttpRouteDef) -> Self {
        let is_default = def.path == "$default";
        let segments = if is_default {
            Vec::new()
        } else {
            def.path
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(p) => match p.strip_suffix('+') {
                            Some(g) => Segment::Greedy(g.to_owned()),
                            None => Segment::Param(p.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect()
        };
        let route_key = if is_default {
            "$default".to_owned()
        } else {
            def.route_key()
        };
        Self {
            function: function.to_owned(),
            method: def.method.clone(),
            route_key,
            auth: def.auth.clone(),
            segments,
            is_default,
        }
    }

    /// Path parameters and a specificity score when the path matches.
    fn matches(&self, path: &str) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut params = BTreeMap::new();
        let mut score = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Literal(l) => {
                    if parts.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                    score.push(3);
                }
                Segment::Param(name) => {
                    let value = parts.get(i).filter(|v| !v.is_empty())?;
                    params.insert(name.clone(), percent_decode(value));
                    score.push(2);
                }
                Segment::Greedy(name) => {
                    let rest = parts
                        .get(i..)
                        .filter(|r| !r.is_empty() && !r[0].is_empty())?
                        .join("/");
                    params.insert(name.clone(), percent_decode(&rest));
                    score.push(1);
                    return Some((score, params));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some((score, params))
    }
}

/// Path parameters by name.
pub type PathParams = BTreeMap<String, String>;

/// How well a route matches: specificity per path segment, then method (exact beats ANY).
type RouteRank = (Vec<u8>, u8);

/// The route API Gateway would pick: most specific path, exact method over `ANY`, `$default` last.
pub fn select<'a>(
    routes: &'a [Route],
    method: &str,
    path: &str,
) -> Option<(&'a Route, BTreeMap<String, String>)> {
    // (specificity per segment, method rank): the highest wins.
    let mut best: Option<(RouteRank, &Route, PathParams)> = None;
    for route in routes.iter().filter(|r| !r.is_default) {
        let method_rank = if route.method == method {
            2
        } else if route.method == "ANY" {
            1
        } else {
            continue;
        };
        if let Some((score, params)) = route.matches(path) {
            let key = (score, method_rank);
            if best.as_ref().is_none_or(|(k, _, _)| key > *k) {
                best = Some((key, route, params));
            }
        }
    }
    best.map(|(_, r, p)| (r, p)).or_else(|| {
        routes
            .iter()
            .find(|r| r.is_default)
            .map(|r| (r, BTreeMap::new()))
    })
}

/// The HTTP API's `CorsConfiguration`: API Gateway answers preflights itself and sets the CORS
/// headers on every response to an allowed origin (whatever the function returned).
#[derive(Clone, Debug, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

impl Cors {
    fn allowed(&self, origin: &str) -> Option<HeaderValue> {
        if self.allow_origins.iter().any(|o| o == "*") {
            Some(HeaderValue::from_static("*"))
        } else if self
            .allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
        {
            HeaderValue::from_str(origin).ok()
        } else {
            None
        }
    }

    fn preflight(&self, origin: &str) -> Response {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(allowed) = self.allowed(origin) {
            let h = resp.headers_mut();
            h.insert("access-control-allow-origin", allowed);
            let join = |v: &[String]| HeaderValue::from_str(&v.join(",")).ok();
            if let Some(v) = join(&self.allow_methods) {
                h.insert("access-control-allow-methods", v);
            }
            if let Some(v) = join(&self.allow_headers) {
                h.insert("access-control-allow-headers", v);
            }
            if let Some(age) = self.max_age {
                h.insert("access-control-max-age", HeaderValue::from(age));
            }
            if self.allow_credentials {
                h.insert(
                    "access-control-allow-credentials",
                    HeaderValue::from_static("true"),
                );
            }
        }
        resp
    }

    fn decorate(&self, resp: &mut Response, origin: &str) {
        if let Some(allowed) = self.allowed(origin) {
            let h = resp.headers_mut();
            h.insert("access-control-allow-origin", allowed);
            if let Ok(v) = HeaderValue::from_str(&self.expose_headers.join(",")) {
                if !self.expose_headers.is_empty() {
                    h.insert("access-control-expose-headers", v);
                }
            }
            if self.allow_credentials {
                h.insert(
                    "access-control-allow-credentials",
                    HeaderValue::from_static("true"),
                );
            }
        }
    }
}

pub(crate) struct Api {
    pub cors: Option<Cors>,
    pub routes: Vec<Route>,
    pub authorizer: Arc<JwtAuthorizer>,
    pub invoker: Arc<Invoker>,
}

pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new().fallback(handle).with_state(api)
}

async fn handle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let origin = req
        .headers()
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let (Some(cors), Some(origin)) = (&api.cors, origin) else {
        return dispatch(&api, peer, req).await;
    };
    let preflight = req.method() == axum::http::Method::OPTIONS
        && req.headers().contains_key("access-control-request-method")
        && select(&api.routes, "OPTIONS", req.uri().path())
            .is_none_or(|(r, _)| r.method != "OPTIONS");
    if preflight {
        return cors.preflight(&origin);
    }
    let mut resp = dispatch(&api, peer, req).await;
    cors.decorate(&mut resp, &origin);
    resp
}

async fn dispatch(api: &Api, peer: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();

    let Some((route, path_params)) = select(&api.routes, &method, &raw_path) else {
        return problem(
            StatusCode::NOT_FOUND,
            "route-not-found",
            "Route not found",
            format!("no route matches {method} {raw_path}"),
        );
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
        }
    };

    let claims = match &route.auth {
        RouteAuth::Public => None,
        RouteAuth::Jwt {
            scopes: required, ..
        } => {
            let header = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match api.authorizer.verify(header).await {
                Ok(claims) => {
                    if !required.is_empty() && !scopes(&claims).iter().any(|s| required.contains(s))
                    {
                        return problem(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            "Forbidden",
                            format!("the token lacks one of the scopes {}", required.join(", ")),
                        );
                    }
                    Some(claims)
                }
                Err(detail) => {
                    let mut resp = problem(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "Unauthenticated",
                        detail,
                    );
                    resp.headers_mut()
                        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
                    return resp;
                }
            }
        }
    };

    let incoming = Incoming {
        method: &method,
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &parts.headers,
        body: &body,
        source_ip: peer.ip().to_string(),
        protocol: format!("{:?}", parts.version),
    };
    let event = build_event(&incoming, route, &path_params, claims.as_ref());
    let event_bytes = invocation_bytes(&event);
    if event_bytes > LAMBDA_REQUEST_PAYLOAD_BYTES {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!(
                "the request's event ({event_bytes} bytes) exceeds Lambda's \
                 {LAMBDA_REQUEST_PAYLOAD_BYTES}-byte invocation payload"
            ),
        );
    }
    match api.invoker.invoke(&route.function, event).await {
        Ok(output) => to_http(output).unwrap_or_else(|detail| {
            tracing::error!(function = %route.function, %detail, "malformed function response");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
                "the function returned a malformed response".into(),
            )
        }),
        Err(crate::StackError::FunctionTimeout { .. }) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "integration-timeout",
            "Service Unavailable",
            "the function did not answer in time".into(),
        ),
        Err(e) => {
            tracing::error!(function = %route.function, error = %e, "invocation failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
                "the function failed".into(),
            )
        }
    }
}

pub(crate) fn problem(status: StatusCode, slug: &str, title: &str, detail: String) -> Response {
    let body = json!({
        "type": format!("{PROBLEM_BASE}{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

pub struct Incoming<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
    /// `HTTP/1.1`
    pub protocol: String,
}

/// The size of the invocation request Lambda would receive for `event` (its JSON text).
pub fn invocation_bytes(event: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, event);
    count.0
}

/// The payload format 2.0 event API Gateway sends for this request.
pub fn build_event(
    inc: &Incoming<'_>,
    route: &Route,
    path_params: &BTreeMap<String, String>,
    claims: Option<&Claims>,
) -> Value {
    // Lower-cased names, repeated headers joined by commas; cookies go to their own field.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in inc.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name.as_str() == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let domain_name = host.split(':').next().unwrap_or("localhost").to_owned();
    let domain_prefix = domain_name.split('.').next().unwrap_or("local").to_owned();
    headers
        .entry("x-forwarded-for".into())
        .or_insert_with(|| inc.source_ip.clone());
    headers
        .entry("x-forwarded-proto".into())
        .or_insert_with(|| "http".into());
    if let Some(port) = host.split(':').nth(1) {
        headers
            .entry("x-forwarded-port".into())
            .or_insert_with(|| port.to_owned());
    }
    let now = time::OffsetDateTime::now_utc();
    let epoch_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    headers
        .entry("x-amzn-trace-id".into())
        .or_insert_with(|| format!("Root=1-{:08x}-{}", now.unix_timestamp(), random_hex(12)));

    let mut query: BTreeMap<String, String> = BTreeMap::new();
    if !inc.raw_query.is_empty() {
        for (k, v) in url::form_urlencoded::parse(inc.raw_query.as_bytes()) {
            query
                .entry(k.into_owned())
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }
    }

    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let time_fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let mut context = json!({
        "accountId": crate::intrinsics::ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain_name,
        "domainPrefix": domain_prefix,
        "http": {
            "method": inc.method,
            "path": inc.raw_path,
            "protocol": inc.protocol,
            "sourceIp": inc.source_ip,
            "userAgent": user_agent,
        },
        "requestId": uuid_v4(),
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.format(&time_fmt).unwrap_or_default(),
        "timeEpoch": epoch_ms,
    });
    if let Some(claims) = claims {
        let token_scopes = scopes(claims);
        context["authorizer"] = json!({
            "jwt": {
                "claims": claims_as_strings(claims),
                "scopes": if token_scopes.is_empty() { Value::Null } else { json!(token_scopes) },
            }
        });
    }

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route.route_key));
    event.insert("rawPath".into(), json!(inc.raw_path));
    event.insert("rawQueryString".into(), json!(inc.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    if !path_params.is_empty() {
        event.insert("pathParameters".into(), json!(path_params));
    }
    event.insert("requestContext".into(), context);
    let mut is_base64 = false;
    if !inc.body.is_empty() {
        let body = match std::str::from_utf8(inc.body) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                is_base64 = true;
                base64::engine::general_purpose::STANDARD.encode(inc.body)
            }
        };
        event.insert("body".into(), json!(body));
    }
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// The function's result as HTTP, per payload format 2.0: a `statusCode` object is a structured
/// response; any other JSON is a 200 `application/json` body, as API Gateway infers it.
pub fn to_http(output: Value) -> Result<Response, String> {
    let structured = output.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(o) = structured else {
        let mut resp = (StatusCode::OK, output.to_string()).into_response();
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return Ok(resp);
    };
    let status = match &o["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .and_then(|s| StatusCode::from_u16(s).ok())
    .ok_or("statusCode is not an HTTP status")?;
    let is_base64 = o
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body: Bytes = match o.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if is_base64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| "isBase64Encoded but the body is not base64")?
            .into(),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let header = |name: &str| {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))
    };
    let value = |v: &Value| {
        let s = v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        HeaderValue::from_str(&s).map_err(|_| format!("bad header value {s:?}"))
    };
    if let Some(Value::Object(multi)) = o.get("multiValueHeaders") {
        for (name, values) in multi {
            for v in values.as_array().into_iter().flatten() {
                h.append(header(name)?, value(v)?);
            }
        }
    }
    if let Some(Value::Object(single)) = o.get("headers") {
        for (name, v) in single {
            h.insert(header(name)?, value(v)?);
        }
    }
    if let Some(Value::Array(cookies)) = o.get("cookies") {
        for c in cookies {
            h.append("set-cookie", value(c)?);
        }
    }
    Ok(resp)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn uuid_v4() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

    fn route(method: &str, path: &str, auth: RouteAuth) -> Route {
        Route::new(
            "F",
            &HttpRouteDef {
                event_name: "E".into(),
                method: method.into(),
                path: path.into(),
                auth,
                api_id: None,
            },
        )
    }

    #[test]
    fn literal_routes_beat_parameters_and_exact_methods_beat_any() {
        let routes = vec![
            route("GET", "/connections/{vendor}", RouteAuth::Public),
            route("GET", "/connections/shopify", RouteAuth::Public),
            route("ANY", "/connections/klaviyo", RouteAuth::Public),
            route("PUT", "/connections/klaviyo", RouteAuth::Public),
            route("GET", "/files/{path+}", RouteAuth::Public),
        ];
        let (r, p) = select(&routes, "GET", "/connections/shopify").unwrap();
        assert_eq!(
            (r.route_key.as_str(), p.len()),
            ("GET /connections/shopify", 0)
        );
        let (r, p) = select(&routes, "GET", "/connections/other%20x").unwrap();
        assert_eq!(r.route_key, "GET /connections/{vendor}");
        assert_eq!(p["vendor"], "other x");
        assert_eq!(
            select(&routes, "PUT", "/connections/klaviyo")
                .unwrap()
                .0
                .route_key,
            "PUT /connections/klaviyo"
        );
        assert_eq!(
            select(&routes, "DELETE", "/connections/klaviyo")
                .unwrap()
                .0
                .route_key,
            "ANY /connections/klaviyo"
        );
        assert_eq!(
            select(&routes, "GET", "/files/a/b").unwrap().1["path"],
            "a/b"
        );
        assert!(select(&routes, "GET", "/connections").is_none());
        assert!(select(&routes, "GET", "/connections/a/b").is_none());
    }

    #[test]
    fn event_round_trips_into_the_lambda_events_type() {
        let r = route(
            "GET",
            "/connections/{vendor}",
            RouteAuth::Jwt {
                authorizer: None,
                scopes: vec![],
            },
        );
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let inc = Incoming {
            method: "GET",
            raw_path: "/connections/klaviyo",
            raw_query: "x=1&x=2&y=a%20b",
            headers: &headers,
            body: &[0xff, 0xfe],
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
        };
        let claims: Claims =
            serde_json::from_value(json!({"sub": "m-1", "exp": 123, "scope": "a b"})).unwrap();
        let params = BTreeMap::from([("vendor".to_owned(), "klaviyo".to_owned())]);
        let event = build_event(&inc, &r, &params, Some(&claims));
        assert_eq!(event["rawQueryString"], "x=1&x=2&y=a%20b");
        assert_eq!(event["queryStringParameters"]["x"], "1,2");
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["exp"],
            "123"
        );
        assert_eq!(event["isBase64Encoded"], true);

        let typed: ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
        assert_eq!(
            typed.route_key.as_deref(),
            Some("GET /connections/{vendor}")
        );
        assert_eq!(typed.path_parameters["vendor"], "klaviyo");
        assert_eq!(typed.query_string_parameters.first("y"), Some("a b"));
        let jwt = typed.request_context.authorizer.unwrap().jwt.unwrap();
        assert_eq!(jwt.claims["sub"], "m-1");
        assert_eq!(typed.request_context.http.method, "GET");
    }

    #[tokio::test]
    async fn structured_responses_keep_status_headers_cookies_and_binary_bodies() {
        let resp = to_http(json!({
            "statusCode": 302,
            "headers": {"location": "https://x", "x-n": 1},
            "multiValueHeaders": {"x-m": ["a", "b"]},
            "cookies": ["s=1; HttpOnly"],
            "body": "aGk=",
            "isBase64Encoded": true
        }))
        .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "https://x");
        assert_eq!(resp.headers()["x-n"], "1");
        assert_eq!(resp.headers().get_all("x-m").iter().count(), 2);
        assert_eq!(resp.headers()["set-cookie"], "s=1; HttpOnly");
        let body = axum::body::to_bytes(resp.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"hi");
    }

    #[test]
    fn an_event_counts_its_body_as_lambda_receives_it_escaped_or_base64_encoded() {
        let r = route("POST", "/webhooks/shopify", RouteAuth::Public);
        let headers = HeaderMap::new();
        let event_of = |body: &[u8]| {
            let inc = Incoming {
                method: "POST",
                raw_path: "/webhooks/shopify",
                raw_query: "",
                headers: &headers,
                body,
                source_ip: "127.0.0.1".into(),
                protocol: "HTTP/1.1".into(),
            };
            invocation_bytes(&build_event(&inc, &r, &BTreeMap::new(), None))
        };
        let plain = vec![b'x'; 3_000_000];
        assert_eq!(event_of(&plain) - event_of(b"x"), plain.len() - 1);
        // Every quote is escaped: a 3.5 MB body of quotes is a 7 MB event, over Lambda's limit.
        let quotes = vec![b'"'; 3_500_000];
        assert!(event_of(&quotes) > LAMBDA_REQUEST_PAYLOAD_BYTES);
        // Not UTF-8: base64, 4 bytes for 3.
        let binary = vec![0xff; 3_000_000];
        assert_eq!(event_of(&binary) - event_of(&[0xff; 3]), 4_000_000 - 4);
    }

    #[test]
    fn plain_json_is_a_200_json_response() {
        let resp = to_http(json!({"ok": true})).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
    }
}
