//! Cognito's managed login (hosted UI) and OAuth2 endpoints under `/cognito`:
//! `oauth2/authorize` (authorization code, PKCE S256 required), `oauth2/token`
//! (`authorization_code` with `code_verifier`, `refresh_token`), `oauth2/revoke`,
//! `oauth2/userInfo`, `logout`, and the sign-in, sign-up and confirm pages.
//!
//! Users live in the stack's Cognito user pool (moto locally): sign-up, confirmation, password
//! checks and refresh go through cognito-idp, so `AdminDeleteUser` / `AdminUserGlobalSignOut`
//! (account deletion) really end sign-in and refresh. The sandbox mints the JWTs the local API
//! verifies, with `sub` and `username` of the pool's user. App clients (their callback and
//! logout URLs, the pool's password policy) are registered by the local runner at stack start:
//! `POST /_sandbox/cognito/clients`. The code "emailed" on sign-up is at
//! `GET /_sandbox/cognito/codes?email=`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType};
use aws_sdk_cognitoidentityprovider::Client as Idp;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cognito::{mint, signer_async, verify_access, Claims};
use crate::state::AppState;
use crate::util::{b64url, now_unix, query_get, query_pairs, random_hex};

/// Cognito's authorization codes are valid for 5 minutes.
const CODE_TTL_SECS: i64 = 300;
/// The hosted UI's session cookie lasts an hour.
const SESSION_TTL_SECS: i64 = 3600;
/// Access and id tokens: the template's AccessTokenValidity / IdTokenValidity (1 hour).
const TOKEN_TTL_SECS: i64 = 3600;
const SESSION_COOKIE: &str = "cognito";
const CSRF_COOKIE: &str = "XSRF-TOKEN";
const ALLOWED_SCOPES: &[&str] = &[
    "openid",
    "email",
    "phone",
    "profile",
    "aws.cognito.signin.user.admin",
];

#[derive(Default)]
pub struct HostedUi {
    clients: HashMap<String, AppClient>,
    /// Lower-cased email → the confirmation code "emailed" to it.
    emailed: HashMap<String, String>,
    codes: HashMap<String, AuthCode>,
    sessions: HashMap<String, Session>,
    refresh: HashMap<String, Refresh>,
    idp: Option<Idp>,
}

#[derive(Clone, Deserialize)]
struct Registration {
    client_id: String,
    user_pool_id: String,
    callback_urls: Vec<String>,
    logout_urls: Vec<String>,
    #[serde(default)]
    password_policy: PasswordPolicy,
}

#[derive(Clone)]
struct AppClient {
    user_pool_id: String,
    callback_urls: Vec<String>,
    logout_urls: Vec<String>,
    policy: PasswordPolicy,
}

/// The pool's `Policies.PasswordPolicy`, in CloudFormation's names. Defaults: Cognito's.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PasswordPolicy {
    minimum_length: usize,
    require_uppercase: bool,
    require_lowercase: bool,
    require_numbers: bool,
    require_symbols: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
        }
    }
}

/// Cognito's special characters for the symbol rule.
const SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

impl PasswordPolicy {
    /// What the password lacks, in Cognito's words; empty when it conforms.
    fn failures(&self, password: &str) -> Vec<String> {
        let mut out = Vec::new();
        if password.chars().count() < self.minimum_length {
            out.push(format!(
                "Password not long enough (at least {} characters)",
                self.minimum_length
            ));
        }
        let has = |f: fn(char) -> bool| password.chars().any(f);
        if self.require_uppercase && !has(|c| c.is_ascii_uppercase()) {
            out.push("Password must have uppercase characters".into());
        }
        if self.require_lowercase && !has(|c| c.is_ascii_lowercase()) {
            out.push("Password must have lowercase characters".into());
        }
        if self.require_numbers && !has(|c| c.is_ascii_digit()) {
            out.push("Password must have numeric characters".into());
        }
        if self.require_symbols && !password.chars().any(|c| SYMBOLS.contains(c)) {
            out.push("Password must have symbol characters".into());
        }
        out
    }
}

#[derive(Clone)]
struct User {
    username: String,
    sub: String,
    email: String,
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
    user: User,
    pool_refresh: String,
    expires_at: i64,
}

struct Session {
    client_id: String,
    user: User,
    pool_refresh: String,
    expires_at: i64,
}

struct Refresh {
    client_id: String,
    scope: String,
    user: User,
    pool_refresh: String,
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cognito/oauth2/authorize", get(authorize))
        .route("/cognito/login", get(login_page).post(login))
        .route("/cognito/signup", get(signup_page).post(signup))
        .route("/cognito/confirm", get(confirm_page).post(confirm))
        // The console calls these from its own origin (fetch), as Cognito allows.
        .route(
            "/cognito/oauth2/token",
            post(
                |st: State<Arc<AppState>>, h: HeaderMap, b: Bytes| async move {
                    let origin = h.get(header::ORIGIN).cloned();
                    cors(origin, token(st, h, b).await)
                },
            )
            .options(preflight),
        )
        .route(
            "/cognito/oauth2/revoke",
            post(
                |st: State<Arc<AppState>>, h: HeaderMap, b: Bytes| async move {
                    let origin = h.get(header::ORIGIN).cloned();
                    cors(origin, revoke(st, h, b).await)
                },
            )
            .options(preflight),
        )
        .route(
            "/cognito/oauth2/userInfo",
            get(|st: State<Arc<AppState>>, h: HeaderMap| async move {
                let origin = h.get(header::ORIGIN).cloned();
                cors(origin, user_info(st, h).await)
            })
            .options(preflight),
        )
        .route("/cognito/logout", get(logout))
        .route("/_sandbox/cognito/clients", post(register))
        .route("/_sandbox/cognito/codes", get(emailed_code))
}

/// Lets the calling origin read the answer (the endpoints carry no cookies, only the form's
/// proof or a bearer token, so any origin may call them).
fn cors(origin: Option<axum::http::HeaderValue>, mut resp: Response) -> Response {
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, axum::http::HeaderValue::from_static("Origin"));
    }
    resp
}

async fn preflight(headers: HeaderMap) -> Response {
    let resp = (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response();
    cors(headers.get(header::ORIGIN).cloned(), resp)
}

// ---------------------------------------------------------------- controls

async fn register(State(st): State<Arc<AppState>>, Json(reg): Json<Registration>) -> Response {
    let existing = st.hosted_ui().idp.clone();
    let idp = match existing {
        Some(idp) => idp,
        None => {
            // The stack's AWS (AWS_ENDPOINT_URL: moto locally), as every other client.
            use aws_smithy_http_client::{tls, Builder};
            let http = Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(http)
                .load()
                .await;
            Idp::new(&config)
        }
    };
    let mut ui = st.hosted_ui();
    ui.idp = Some(idp);
    ui.clients.insert(
        reg.client_id,
        AppClient {
            user_pool_id: reg.user_pool_id,
            callback_urls: reg.callback_urls,
            logout_urls: reg.logout_urls,
            policy: reg.password_policy,
        },
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn emailed_code(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let email = query_get(&pairs, "email")
        .unwrap_or_default()
        .to_lowercase();
    match st.hosted_ui().emailed.get(&email) {
        Some(code) => Json(json!({ "code": code })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no code was sent to this address" })),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------- authorize request

/// The authorize request's parameters, carried through the hosted pages in their query.
struct AuthRequest {
    pairs: Vec<(String, String)>,
    client_id: String,
    client: AppClient,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    challenge: String,
    nonce: Option<String>,
}

impl AuthRequest {
    /// The authorize query, for links and form actions between the hosted pages.
    fn query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != "username") {
            s.append_pair(k, v);
        }
        s.finish()
    }

    fn redirect_with(&self, params: &[(&str, &str)]) -> Response {
        let mut url = match url::Url::parse(&self.redirect_uri) {
            Ok(u) => u,
            Err(_) => return error_page(StatusCode::BAD_REQUEST, "redirect_mismatch"),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(state) = &self.state {
                q.append_pair("state", state);
            }
        }
        found(url.as_str())
    }
}

/// Checks an authorize request as Cognito does: an unknown client or an unregistered
/// redirect_uri is answered with an error page (never a redirect to an unchecked URL); other
/// faults are reported to the (registered) redirect_uri.
fn parse_request(st: &AppState, raw: Option<&str>) -> Result<AuthRequest, Box<Response>> {
    let pairs = query_pairs(raw);
    let get = |k: &str| query_get(&pairs, k).map(str::to_owned);
    let client_id = get("client_id").unwrap_or_default();
    let Some(client) = st.hosted_ui().clients.get(&client_id).cloned() else {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client",
        )));
    };
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    if !client.callback_urls.contains(&redirect_uri) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_mismatch",
        )));
    }
    let req = AuthRequest {
        client_id,
        client,
        redirect_uri,
        state: get("state"),
        scope: get("scope").unwrap_or_else(|| "openid email".into()),
        challenge: get("code_challenge").unwrap_or_default(),
        nonce: get("nonce"),
        pairs: pairs.clone(),
    };
    if get("response_type").as_deref() != Some("code") {
        return Err(Box::new(
            req.redirect_with(&[("error", "unsupported_response_type")]),
        ));
    }
    // A public client must prove possession of the verifier: S256 only ("plain" leaks it).
    if req.challenge.len() < 43 || get("code_challenge_method").as_deref() != Some("S256") {
        return Err(Box::new(req.redirect_with(&[
            ("error", "invalid_request"),
            (
                "error_description",
                "code_challenge with code_challenge_method=S256 is required",
            ),
        ])));
    }
    if req
        .scope
        .split_whitespace()
        .any(|s| !ALLOWED_SCOPES.contains(&s))
    {
        return Err(Box::new(req.redirect_with(&[("error", "invalid_scope")])));
    }
    Ok(req)
}

async fn authorize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let req = match parse_request(&st, q.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    // A live hosted-UI session answers without the form, if the pool still honours it (the
    // user was not deleted or signed out everywhere since).
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let session = {
            let mut ui = st.hosted_ui();
            match ui.sessions.get(&id) {
                Some(s) if s.expires_at > now_unix() && s.client_id == req.client_id => {
                    Some((s.user.clone(), s.pool_refresh.clone()))
                }
                Some(_) => {
                    ui.sessions.remove(&id);
                    None
                }
                None => None,
            }
        };
        if let Some((user, pool_refresh)) = session {
            if pool_refresh_works(&st, &req.client_id, &pool_refresh).await {
                return issue_code(&st, &req, user, pool_refresh);
            }
            st.hosted_ui().sessions.remove(&id);
        }
    }
    found(&format!("{}/cognito/login?{}", st.base_url, req.query()))
}

fn issue_code(st: &AppState, req: &AuthRequest, user: User, pool_refresh: String) -> Response {
    let code = random_token();
    st.hosted_ui().codes.insert(
        code.clone(),
        AuthCode {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            challenge: req.challenge.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            user,
            pool_refresh,
            expires_at: now_unix() + CODE_TTL_SECS,
        },
    );
    req.redirect_with(&[("code", &code)])
}

// ---------------------------------------------------------------- pages

async fn login_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (csrf, fresh) = csrf_token(&headers);
    match parse_request(&st, q.as_deref()) {
        Ok(req) => {
            let pairs = query_pairs(q.as_deref());
            let notice = query_get(&pairs, "confirmed")
                .map(|_| "Your account is confirmed. Sign in.")
                .unwrap_or("");
            with_csrf(
                login_form(&st, &req, StatusCode::OK, "", notice, &csrf),
                fresh,
                &csrf,
            )
        }
        Err(resp) => *resp,
    }
}

fn login_form(
    st: &AppState,
    req: &AuthRequest,
    status: StatusCode,
    error: &str,
    notice: &str,
    csrf: &str,
) -> Response {
    let q = esc(&req.query());
    let base = &st.base_url;
    page(
        status,
        "Sign in",
        error,
        notice,
        &format!(
            r#"<form method="post" action="{base}/cognito/login?{q}">
<input type="hidden" name="_csrf" value="{csrf}">
<label for="username">Email</label>
<input id="username" name="username" type="email" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p>Need an account? <a href="{base}/cognito/signup?{q}">Sign up</a></p>"#
        ),
    )
}

async fn login(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let req = match parse_request(&st, q.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(csrf) = csrf_checked(&headers, &body) else {
        let fresh = random_token();
        let page = login_form_expired(&st, &req, q.as_deref(), &fresh);
        return with_csrf(page, true, &fresh);
    };
    let form = form(&body);
    let username = query_get(&form, "username").unwrap_or_default().trim();
    let password = query_get(&form, "password").unwrap_or_default();
    let Some(idp) = st.hosted_ui().idp.clone() else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "no user pool registered");
    };
    let out = idp
        .initiate_auth()
        .client_id(&req.client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await;
    let pool_refresh = match out {
        Ok(out) => out
            .authentication_result()
            .and_then(|r| r.refresh_token())
            .map(str::to_owned),
        Err(e) => {
            let code = service_code(&e);
            if code == "UserNotConfirmedException" {
                return found(&format!(
                    "{}/cognito/confirm?{}",
                    st.base_url,
                    with_username(&req, username)
                ));
            }
            // One message for a wrong password and an unknown user (PreventUserExistenceErrors).
            return login_form(
                &st,
                &req,
                StatusCode::BAD_REQUEST,
                "Incorrect username or password.",
                "",
                &csrf,
            );
        }
    };
    let (Some(pool_refresh), Some(user)) = (
        pool_refresh,
        pool_user(&idp, &req.client.user_pool_id, username).await,
    ) else {
        return login_form(
            &st,
            &req,
            StatusCode::BAD_REQUEST,
            "Incorrect username or password.",
            "",
            &csrf,
        );
    };
    let session = random_token();
    st.hosted_ui().sessions.insert(
        session.clone(),
        Session {
            client_id: req.client_id.clone(),
            user: user.clone(),
            pool_refresh: pool_refresh.clone(),
            expires_at: now_unix() + SESSION_TTL_SECS,
        },
    );
    let mut resp = issue_code(&st, &req, user, pool_refresh);
    if let Ok(v) = session_cookie(&st, &session, SESSION_TTL_SECS).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn signup_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (csrf, fresh) = csrf_token(&headers);
    match parse_request(&st, q.as_deref()) {
        Ok(req) => with_csrf(
            signup_form(&st, &req, StatusCode::OK, "", &csrf),
            fresh,
            &csrf,
        ),
        Err(resp) => *resp,
    }
}

fn signup_form(
    st: &AppState,
    req: &AuthRequest,
    status: StatusCode,
    error: &str,
    csrf: &str,
) -> Response {
    let q = esc(&req.query());
    let base = &st.base_url;
    let p = &req.client.policy;
    let rules = format!(
        "At least {} characters{}{}{}{}.",
        p.minimum_length,
        if p.require_uppercase {
            ", an uppercase letter"
        } else {
            ""
        },
        if p.require_lowercase {
            ", a lowercase letter"
        } else {
            ""
        },
        if p.require_numbers { ", a number" } else { "" },
        if p.require_symbols { ", a symbol" } else { "" },
    );
    page(
        status,
        "Sign up",
        error,
        "",
        &format!(
            r#"<form method="post" action="{base}/cognito/signup?{q}">
<input type="hidden" name="_csrf" value="{csrf}">
<label for="username">Email</label>
<input id="username" name="username" type="email" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" aria-describedby="rules" required>
<p id="rules">{rules}</p>
<button type="submit">Sign up</button>
</form>
<p>Already have an account? <a href="{base}/cognito/login?{q}">Sign in</a></p>"#
        ),
    )
}

async fn signup(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let req = match parse_request(&st, q.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(csrf) = csrf_checked(&headers, &body) else {
        let fresh = random_token();
        let page = signup_form_expired(&st, &req, q.as_deref(), &fresh);
        return with_csrf(page, true, &fresh);
    };
    let form = form(&body);
    let email = query_get(&form, "username").unwrap_or_default().trim();
    let password = query_get(&form, "password").unwrap_or_default();
    let failures = req.client.policy.failures(password);
    if !failures.is_empty() {
        return signup_form(
            &st,
            &req,
            StatusCode::BAD_REQUEST,
            &format!(
                "Password did not conform with policy: {}",
                failures.join("; ")
            ),
            &csrf,
        );
    }
    let Some(idp) = st.hosted_ui().idp.clone() else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "no user pool registered");
    };
    let attr = AttributeType::builder().name("email").value(email).build();
    let out = idp
        .sign_up()
        .client_id(&req.client_id)
        .username(email)
        .password(password)
        .set_user_attributes(attr.ok().map(|a| vec![a]))
        .send()
        .await;
    if let Err(e) = out {
        let message = match service_code(&e).as_str() {
            "UsernameExistsException" => "An account with the given email already exists.",
            "InvalidPasswordException" => "Password did not conform with policy.",
            "InvalidParameterException" => "Enter a valid email address.",
            _ => "Sign-up failed; try again.",
        };
        return signup_form(&st, &req, StatusCode::BAD_REQUEST, message, &csrf);
    }
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    st.hosted_ui().emailed.insert(email.to_lowercase(), code);
    found(&format!(
        "{}/cognito/confirm?{}",
        st.base_url,
        with_username(&req, email)
    ))
}

const EXPIRED: &str = "Your session has expired. Please try again.";

fn login_form_expired(st: &AppState, req: &AuthRequest, _: Option<&str>, csrf: &str) -> Response {
    login_form(st, req, StatusCode::FORBIDDEN, EXPIRED, "", csrf)
}

fn signup_form_expired(st: &AppState, req: &AuthRequest, _: Option<&str>, csrf: &str) -> Response {
    signup_form(st, req, StatusCode::FORBIDDEN, EXPIRED, csrf)
}

fn confirm_form_expired(
    st: &AppState,
    req: &AuthRequest,
    raw: Option<&str>,
    csrf: &str,
) -> Response {
    confirm_form(st, req, raw, StatusCode::FORBIDDEN, EXPIRED, csrf)
}

/// The hosted pages' anti-forgery token, as Cognito's (`XSRF-TOKEN` cookie and `_csrf` field):
/// the cookie's value, or a new one (`true`: to be set).
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) => (t, false),
        None => (random_token(), true),
    }
}

/// The token, when the form's `_csrf` is the browser's cookie: a form posted from another
/// site carries no such pair.
fn csrf_checked(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    let cookie = cookie(headers, CSRF_COOKIE)?;
    let form = form(body);
    (query_get(&form, "_csrf") == Some(cookie.as_str())).then_some(cookie)
}

fn with_csrf(mut resp: Response, set: bool, token: &str) -> Response {
    if set {
        let v = format!("{CSRF_COOKIE}={token}; Path=/cognito; HttpOnly; SameSite=Lax");
        if let Ok(v) = v.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn with_username(req: &AuthRequest, username: &str) -> String {
    let mut s = url::form_urlencoded::Serializer::new(req.query());
    s.append_pair("username", username);
    s.finish()
}

async fn confirm_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (csrf, fresh) = csrf_token(&headers);
    match parse_request(&st, q.as_deref()) {
        Ok(req) => with_csrf(
            confirm_form(&st, &req, q.as_deref(), StatusCode::OK, "", &csrf),
            fresh,
            &csrf,
        ),
        Err(resp) => *resp,
    }
}

fn confirm_form(
    st: &AppState,
    req: &AuthRequest,
    raw: Option<&str>,
    status: StatusCode,
    error: &str,
    csrf: &str,
) -> Response {
    let pairs = query_pairs(raw);
    let username = query_get(&pairs, "username").unwrap_or_default();
    let action = esc(&with_username(req, username));
    let base = &st.base_url;
    page(
        status,
        "Confirm your account",
        error,
        &format!("We have sent a code by email to {}.", esc(username)),
        &format!(
            r#"<form method="post" action="{base}/cognito/confirm?{action}">
<input type="hidden" name="_csrf" value="{csrf}">
<label for="code">Verification code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>
<button type="submit">Confirm account</button>
</form>"#
        ),
    )
}

async fn confirm(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let req = match parse_request(&st, q.as_deref()) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(csrf) = csrf_checked(&headers, &body) else {
        let fresh = random_token();
        let page = confirm_form_expired(&st, &req, q.as_deref(), &fresh);
        return with_csrf(page, true, &fresh);
    };
    let pairs = query_pairs(q.as_deref());
    let username = query_get(&pairs, "username").unwrap_or_default().to_owned();
    let form = form(&body);
    let code = query_get(&form, "code").unwrap_or_default().trim();
    let expected = st
        .hosted_ui()
        .emailed
        .get(&username.to_lowercase())
        .cloned();
    if expected.as_deref() != Some(code) || code.is_empty() {
        return confirm_form(
            &st,
            &req,
            q.as_deref(),
            StatusCode::BAD_REQUEST,
            "Invalid verification code provided, please try again.",
            &csrf,
        );
    }
    let Some(idp) = st.hosted_ui().idp.clone() else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "no user pool registered");
    };
    if idp
        .confirm_sign_up()
        .client_id(&req.client_id)
        .username(&username)
        .confirmation_code(code)
        .send()
        .await
        .is_err()
    {
        return confirm_form(
            &st,
            &req,
            q.as_deref(),
            StatusCode::BAD_REQUEST,
            "Invalid verification code provided, please try again.",
            &csrf,
        );
    }
    st.hosted_ui().emailed.remove(&username.to_lowercase());
    found(&format!(
        "{}/cognito/login?{}&confirmed=1",
        st.base_url,
        req.query()
    ))
}

async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let client_id = query_get(&pairs, "client_id").unwrap_or_default();
    let logout_uri = query_get(&pairs, "logout_uri").unwrap_or_default();
    let Some(client) = st.hosted_ui().clients.get(client_id).cloned() else {
        return error_page(StatusCode::BAD_REQUEST, "invalid_client");
    };
    // Only to a registered sign-out URL: anything else would be an open redirect.
    if !client.logout_urls.iter().any(|u| u == logout_uri) {
        return error_page(StatusCode::BAD_REQUEST, "redirect_mismatch");
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        st.hosted_ui().sessions.remove(&id);
    }
    let mut resp = found(logout_uri);
    if let Ok(v) = session_cookie(&st, "", 0).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

// ---------------------------------------------------------------- token endpoints

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error })),
    )
        .into_response()
}

/// The form body and the client: `client_id` in the body, or HTTP Basic as Cognito accepts.
fn token_request(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, Box<Response>> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )));
    }
    let mut form = form(body);
    if query_get(&form, "client_id").is_none() {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(id) = basic.as_deref().and_then(|b| b.split(':').next()) {
            form.push(("client_id".into(), id.to_owned()));
        }
    }
    Ok(form)
}

async fn token(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let signer = signer_async().await;
    let form = match token_request(&headers, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let get = |k: &str| query_get(&form, k).unwrap_or_default();
    let client_id = get("client_id");
    let Some(client) = st.hosted_ui().clients.get(client_id).cloned() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    };
    match get("grant_type") {
        "authorization_code" => {
            // One use only: the code is gone whether or not this exchange succeeds.
            let Some(code) = st.hosted_ui().codes.remove(get("code")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = get("code_verifier");
            let valid = code.expires_at > now_unix()
                && code.client_id == client_id
                && code.redirect_uri == get("redirect_uri")
                && (43..=128).contains(&verifier.len())
                && b64url(&Sha256::digest(verifier.as_bytes())) == code.challenge;
            if !valid {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let claims = claims(client_id, &code.user, &code.scope, code.nonce.clone());
            let Some((access, id)) = mint(signer, &st.base_url, &claims, TOKEN_TTL_SECS) else {
                return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
            };
            let refresh_token = random_token();
            st.hosted_ui().refresh.insert(
                refresh_token.clone(),
                Refresh {
                    client_id: client_id.to_owned(),
                    scope: code.scope,
                    user: code.user,
                    pool_refresh: code.pool_refresh,
                },
            );
            st.stats().cognito_tokens_issued += 1;
            token_answer(json!({
                "access_token": access, "id_token": id, "refresh_token": refresh_token,
                "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS,
            }))
        }
        "refresh_token" => {
            let found = {
                let ui = st.hosted_ui();
                ui.refresh
                    .get(get("refresh_token"))
                    .filter(|r| r.client_id == client_id)
                    .map(|r| (r.user.clone(), r.scope.clone(), r.pool_refresh.clone()))
            };
            let Some((user, scope, pool_refresh)) = found else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            // The pool decides: a user deleted or signed out everywhere has no valid refresh.
            let idp = st.hosted_ui().idp.clone();
            let live = pool_refresh_works(&st, client_id, &pool_refresh).await
                && match idp {
                    Some(idp) => pool_user(&idp, &client.user_pool_id, &user.username)
                        .await
                        .is_some(),
                    None => false,
                };
            if !live {
                st.hosted_ui().refresh.remove(get("refresh_token"));
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let claims = claims(client_id, &user, &scope, None);
            let Some((access, id)) = mint(signer, &st.base_url, &claims, TOKEN_TTL_SECS) else {
                return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
            };
            st.stats().cognito_tokens_issued += 1;
            // Cognito keeps the refresh token: none is returned on a refresh.
            token_answer(json!({
                "access_token": access, "id_token": id,
                "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS,
            }))
        }
        "" => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn claims(client_id: &str, user: &User, scope: &str, nonce: Option<String>) -> Claims {
    Claims {
        sub: user.sub.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        groups: None,
        nonce,
    }
}

fn token_answer(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn revoke(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match token_request(&headers, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let (Some(token), Some(client_id)) = (
        query_get(&form, "token").filter(|t| !t.is_empty()),
        query_get(&form, "client_id"),
    ) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let mut ui = st.hosted_ui();
    if !ui.clients.contains_key(client_id) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    match ui.refresh.get(token) {
        Some(r) if r.client_id != client_id => {
            oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client")
        }
        Some(_) => {
            ui.refresh.remove(token);
            StatusCode::OK.into_response()
        }
        // RFC 7009: an unknown token is not an error.
        None => StatusCode::OK.into_response(),
    }
}

async fn user_info(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let signer = signer_async().await;
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Bearer error="invalid_token", error_description="Access token is expired, disabled, or deleted, or the user has globally signed out.""#,
            )],
            Json(json!({
                "error": "invalid_token",
                "error_description": "Access token is expired, disabled, or deleted, or the user has globally signed out."
            })),
        )
            .into_response()
    };
    let Some(claims) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| verify_access(signer, &st.base_url, t))
    else {
        return unauthorized();
    };
    let client_id = claims["client_id"].as_str().unwrap_or_default();
    let username = claims["username"].as_str().unwrap_or_default();
    let (pool, idp) = {
        let ui = st.hosted_ui();
        (
            ui.clients.get(client_id).map(|c| c.user_pool_id.clone()),
            ui.idp.clone(),
        )
    };
    let (Some(pool), Some(idp)) = (pool, idp) else {
        return unauthorized();
    };
    match pool_user(&idp, &pool, username).await {
        Some(u) => Json(json!({
            "sub": u.sub, "email": u.email, "email_verified": "true", "username": u.username,
        }))
        .into_response(),
        None => unauthorized(),
    }
}

// ---------------------------------------------------------------- the pool

/// The pool's user (by email or username), if it exists and is enabled.
async fn pool_user(idp: &Idp, pool: &str, username: &str) -> Option<User> {
    let out = idp
        .admin_get_user()
        .user_pool_id(pool)
        .username(username)
        .send()
        .await
        .ok()?;
    if !out.enabled() {
        return None;
    }
    let attr = |name: &str| {
        out.user_attributes()
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value())
            .map(str::to_owned)
    };
    Some(User {
        username: out.username().to_owned(),
        sub: attr("sub")?,
        email: attr("email").unwrap_or_default(),
    })
}

/// Whether the pool still honours a refresh token it issued at sign-in (it does not once the
/// user is signed out everywhere or deleted).
async fn pool_refresh_works(st: &AppState, client_id: &str, pool_refresh: &str) -> bool {
    let Some(idp) = st.hosted_ui().idp.clone() else {
        return false;
    };
    idp.initiate_auth()
        .client_id(client_id)
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .auth_parameters("REFRESH_TOKEN", pool_refresh)
        .send()
        .await
        .is_ok()
}

fn service_code<E, R>(e: &aws_sdk_cognitoidentityprovider::error::SdkError<E, R>) -> String
where
    E: aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------- helpers

fn random_token() -> String {
    random_hex(&mut rand::thread_rng(), 32)
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn session_cookie(st: &AppState, value: &str, max_age: i64) -> String {
    let secure = if st.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={value}; Path=/cognito; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

fn found(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(status: StatusCode, error: &str) -> Response {
    page(
        status,
        "An error was encountered with the requested page",
        error,
        "",
        "",
    )
}

fn page(status: StatusCode, title: &str, error: &str, notice: &str, body: &str) -> Response {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(r#"<p role="alert" class="error">{}</p>"#, esc(error))
    };
    let notice = if notice.is_empty() {
        String::new()
    } else {
        format!(r#"<p role="status">{}</p>"#, esc(notice))
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}label,input,button{{display:block;width:100%;margin:.3rem 0;font-size:1rem}}input{{padding:.5rem;box-sizing:border-box}}button{{padding:.6rem;background:#0b5cad;color:#fff;border:0;border-radius:4px;cursor:pointer}}.error{{color:#a40000}}</style>
</head><body><main><h1>{title}</h1>{notice}{error}{body}</main></body></html>"#
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_policy_names_each_missing_class() {
        let policy = PasswordPolicy {
            minimum_length: 12,
            ..PasswordPolicy::default()
        };
        assert!(policy.failures("Correct-Horse-42-battery").is_empty());
        let weak = policy.failures("short");
        assert_eq!(weak.len(), 4, "{weak:?}");
        assert!(weak[0].contains("at least 12"));
        assert_eq!(
            policy.failures("NoSymbolsHere42"),
            vec!["Password must have symbol characters".to_owned()]
        );
    }
}
