//! How a merchant's browser signs in and installs, over real HTTP:
//! - Cognito's managed login in the sandbox, backed by the stack's user pool (moto): sign-up
//!   under the template's password policy, the emailed code, the authorization code flow with
//!   PKCE, refresh, userInfo, logout, and `DELETE /account` ending both sign-in and refresh;
//! - Shopify's app URL, launched from the Shopify admin (the sandbox signs the launch);
//! - the install bound to the browser that started it: an attacker's install link followed by
//!   the shop owner's browser is refused and links nothing.

use base64::Engine;
use e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const EMAIL: &str = "new.merchant@example.org";
const PASSWORD: &str = "Correct-Horse-42-battery";

/// A browser: follows nothing by itself, keeps cookies per host (name → value; a `Max-Age=0`
/// answer removes one), sends them back to the same host.
struct Browser {
    http: reqwest::Client,
    jar: Vec<(String, String, String)>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    text: String,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Vec::new(),
        }
    }

    fn host(url: &str) -> String {
        let u = url::Url::parse(url).unwrap();
        format!(
            "{}:{}",
            u.host_str().unwrap(),
            u.port_or_known_default().unwrap()
        )
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Page {
        let host = Self::host(url);
        let cookie = self
            .jar
            .iter()
            .filter(|(h, _, _)| *h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let resp = req.send().await.expect("the server answers");
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            self.jar.retain(|(h, n, _)| !(*h == host && n == name));
            if !set.contains("Max-Age=0") {
                self.jar
                    .push((host.clone(), name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(req, url).await
    }

    async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(req, url).await
    }

    /// Opens the page, fills its form's fields and submits it (with its hidden `_csrf`).
    async fn submit(&mut self, page_url: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(page_url).await;
        let attr = |name: &str| {
            let start = page
                .text
                .find(name)
                .unwrap_or_else(|| panic!("{name} in {}", page.text));
            let rest = &page.text[start + name.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        };
        let action = attr(r#"<form method="post" action=""#);
        let csrf = attr(r#"name="_csrf" value=""#);
        let mut form = fields.to_vec();
        form.push(("_csrf", &csrf));
        self.post_form(&action, &form).await
    }
}

fn pkce() -> (String, String) {
    let verifier = format!("{}{}", hex::encode(rand_bytes()), hex::encode(rand_bytes()));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 16] {
    rand::random()
}

/// The console's view of the stack: its app client, callback and sign-out URLs.
struct Console {
    cognito: String,
    client_id: String,
    app: String,
    redirect_uri: String,
}

impl Console {
    fn of(world: &World) -> Self {
        let app = world.stack.parameter("AppBaseUrl").unwrap().to_owned();
        Self {
            cognito: world.stack.cognito_domain(),
            client_id: world
                .stack
                .cognito_client_id()
                .expect("the template's UserPoolClient"),
            redirect_uri: format!("{app}/auth/callback"),
            app,
        }
    }

    fn authorize_url(&self, challenge: &str, method: &str, redirect_uri: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", "console-state-1")
            .append_pair("scope", "openid email")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", method)
            .finish();
        format!("{}/oauth2/authorize?{q}", self.cognito)
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        // The console's fetch, from its own origin: the answer must be readable there.
        let resp = reqwest::Client::new()
            .post(format!("{}/oauth2/token", self.cognito))
            .header("origin", &self.app)
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some(self.app.as_str())
        );
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}

/// The `code` of a redirect to the console's callback (asserting the state came back).
fn code_of(page: &Page, console: &Console) -> String {
    let location = page.location.clone().unwrap_or_else(|| {
        panic!(
            "expected a redirect to the console, got {}: {}",
            page.status, page.text
        )
    });
    assert!(location.starts_with(&console.redirect_uri), "{location}");
    let q = query_of(&location);
    assert!(
        q.contains(&("state".into(), "console-state-1".into())),
        "{location}"
    );
    q.into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no code in {location}"))
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Signs in on the hosted page the authorize request led to; returns the callback redirect.
async fn sign_in(browser: &mut Browser, login_url: &str, email: &str, password: &str) -> Page {
    browser
        .submit(login_url, &[("username", email), ("password", password)])
        .await
}

#[tokio::test]
async fn managed_login_from_sign_up_to_account_deletion() {
    let world = World::start().await;
    let console = Console::of(&world);
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();

    // No session yet: the authorize request shows the sign-in page.
    let authorize = console.authorize_url(&challenge, "S256", &console.redirect_uri);
    let to_login = browser.get(&authorize).await;
    assert_eq!(to_login.status, StatusCode::FOUND);
    let login_url = to_login.location.unwrap();
    assert!(login_url.contains("/cognito/login?"), "{login_url}");
    let login = browser.get(&login_url).await;
    assert_eq!(login.status, StatusCode::OK);
    for needle in [
        r#"name="username""#,
        r#"name="password""#,
        ">Sign in</button>",
        ">Sign up</a>",
    ] {
        assert!(login.text.contains(needle), "{needle} on the sign-in page");
    }
    let signup_url = login_url.replace("/cognito/login?", "/cognito/signup?");
    let signup = browser.get(&signup_url).await;
    assert!(signup.text.contains(">Sign up</button>"));

    // The pool's policy (template.yaml: 12 characters, upper, lower, number, symbol).
    let weak = browser
        .submit(
            &signup_url,
            &[("username", EMAIL), ("password", "Short-1a")],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(
        weak.text.contains("at least 12 characters"),
        "{}",
        weak.text
    );
    let weak = browser
        .submit(
            &signup_url,
            &[("username", EMAIL), ("password", "no-uppercase-here-42")],
        )
        .await;
    assert!(weak.text.contains("uppercase"), "{}", weak.text);

    let signed_up = browser
        .submit(&signup_url, &[("username", EMAIL), ("password", PASSWORD)])
        .await;
    assert_eq!(signed_up.status, StatusCode::FOUND, "{}", signed_up.text);
    let confirm_url = signed_up.location.unwrap();
    assert!(confirm_url.contains("/cognito/confirm?"), "{confirm_url}");
    let confirm = browser.get(&confirm_url).await;
    assert!(
        confirm.text.contains(r#"name="code""#)
            && confirm.text.contains(">Confirm account</button>")
    );

    // Not confirmed yet: signing in leads to the confirm page, never to a code.
    let early = sign_in(&mut browser, &login_url, EMAIL, PASSWORD).await;
    assert!(
        early
            .location
            .as_deref()
            .unwrap_or_default()
            .contains("/cognito/confirm?"),
        "{:?}",
        early.location
    );

    let code: Value = world
        .http
        .get(format!(
            "{}/_sandbox/cognito/codes?email={}",
            world.stack.sandbox.base_url, EMAIL
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = code["code"].as_str().unwrap().to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = browser.submit(&confirm_url, &[("code", wrong)]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.text.contains("Invalid verification code"));
    let confirmed = browser.submit(&confirm_url, &[("code", &code)]).await;
    assert_eq!(confirmed.status, StatusCode::FOUND, "{}", confirmed.text);
    assert!(confirmed.location.unwrap().contains("/cognito/login?"));

    // Wrong password and unknown user: one message, no code.
    for (email, password) in [
        (EMAIL, "Wrong-Password-42"),
        ("nobody@example.org", PASSWORD),
    ] {
        let page = sign_in(&mut browser, &login_url, email, password).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.text.contains("Incorrect username or password."));
    }

    // A sign-in form posted from another site (no anti-forgery pair) is refused.
    let forged = Browser::new()
        .post_form(&login_url, &[("username", EMAIL), ("password", PASSWORD)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.location.is_none());

    let signed_in = sign_in(&mut browser, &login_url, EMAIL, PASSWORD).await;
    let first_code = code_of(&signed_in, &console);

    // A wrong verifier is refused, and spends the code.
    let (status, body) = console.exchange(&first_code, &pkce().0).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}))
    );
    let (status, _) = console.exchange(&first_code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code works once");

    // The hosted-UI session answers the next authorize without the form.
    let again = browser.get(&authorize).await;
    let code = code_of(&again, &console);
    let (status, tokens) = console.exchange(&code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body) = console.exchange(&code, &verifier).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}))
    );

    // The tokens name the pool's user: sub and username as AdminGetUser reports them.
    let pool = world.stack.resources.get("UserPool").unwrap().name.clone();
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(world.stack.aws.config());
    let user = cognito
        .admin_get_user()
        .user_pool_id(&pool)
        .username(EMAIL)
        .send()
        .await
        .unwrap();
    let sub = user
        .user_attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap()
        .to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_claims = claims(&access);
    assert_eq!(access_claims["sub"], sub);
    assert_eq!(access_claims["username"], user.username());
    assert_eq!(access_claims["client_id"], console.client_id);
    assert_eq!(access_claims["token_use"], "access");
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["aud"],
        console.client_id
    );

    // The API takes the access token.
    let resp = world
        .call(Method::GET, "/connections", Some(&access), None)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    let info: Value = reqwest::Client::new()
        .get(format!("{}/oauth2/userInfo", console.cognito))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], sub);

    // Refresh: new access and id tokens, the refresh token is kept (none returned).
    let (status, refreshed) = console.refresh(&refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let resp = world
        .call(Method::GET, "/connections", Some(&access), None)
        .await;
    assert_eq!(resp.status, StatusCode::OK);

    // Revoked (sign-out in the console): that refresh token no longer works.
    let revoked = reqwest::Client::new()
        .post(format!("{}/oauth2/revoke", console.cognito))
        .form(&[
            ("token", refresh_token.as_str()),
            ("client_id", &console.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let (status, body) = console.refresh(&refresh_token).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}))
    );

    // Refused requests: unregistered redirect (an error page, never a redirect), no or plain
    // PKCE (reported to the registered redirect), unknown grant.
    let foreign = browser
        .get(&console.authorize_url(&challenge, "S256", "https://evil.example/auth/callback"))
        .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(foreign.location.is_none());
    let plain = browser
        .get(&console.authorize_url(&verifier, "plain", &console.redirect_uri))
        .await;
    let location = plain.location.unwrap();
    assert!(
        location.starts_with(&console.redirect_uri) && location.contains("error=invalid_request"),
        "{location}"
    );
    let (status, body) = console
        .token(&[
            ("grant_type", "password"),
            ("client_id", &console.client_id),
        ])
        .await;
    assert_eq!(
        (status, &body),
        (
            StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type"})
        )
    );

    // A code for another redirect_uri than the exchange names is refused.
    let code = code_of(&browser.get(&authorize).await, &console);
    let (status, _) = console
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &console.client_id),
            ("code", &code),
            ("redirect_uri", &format!("{}/elsewhere", console.app)),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Logout: only to a registered sign-out URL; it ends the hosted-UI session.
    let logout = |uri: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &console.client_id)
            .append_pair("logout_uri", uri)
            .finish();
        format!("{}/logout?{q}", console.cognito)
    };
    let bad = browser.get(&logout("https://evil.example/")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.location.is_none());
    let out = browser.get(&logout(&format!("{}/", console.app))).await;
    assert_eq!(
        out.location.as_deref(),
        Some(format!("{}/", console.app).as_str())
    );
    let after = browser.get(&authorize).await;
    assert!(
        after.location.unwrap().contains("/cognito/login?"),
        "signed out: the form again"
    );

    // Signed in again (a live session), then the account is deleted through the API.
    let code = code_of(
        &sign_in(&mut browser, &login_url, EMAIL, PASSWORD).await,
        &console,
    );
    let (_, tokens) = console.exchange(&code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let deleted = world
        .call(Method::DELETE, "/account", Some(&access), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["deleted"]["user"], 1, "{:?}", deleted.body);

    let (status, body) = console.refresh(&refresh_token).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}))
    );
    let after = browser.get(&authorize).await;
    assert!(
        after.location.unwrap().contains("/cognito/login?"),
        "the deleted user's session cookie signs nobody in"
    );
    let page = sign_in(&mut browser, &login_url, EMAIL, PASSWORD).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text.contains("Incorrect username or password."));
    let info = reqwest::Client::new()
        .get(format!("{}/oauth2/userInfo", console.cognito))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        info.status(),
        StatusCode::UNAUTHORIZED,
        "no user, no userInfo"
    );
}

/// Shopify's admin opens our app URL signed; a forged or stale launch is refused.
#[tokio::test]
async fn installing_from_the_shopify_admin_lands_on_the_console() {
    let world = World::start().await;
    let app = world.stack.parameter("AppBaseUrl").unwrap().to_owned();
    let launch = world
        .sandbox(
            Method::POST,
            "/_sandbox/shopify/launch",
            json!({ "shop": DEMO_SHOP, "app_url": world.url("/shopify/app") }),
        )
        .await["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = world.get_url(&launch).await;
    assert_eq!(resp.status, StatusCode::FOUND, "{:?}", resp.body);
    assert_eq!(
        resp.location.as_deref(),
        Some(format!("{app}/install?shop={DEMO_SHOP}").as_str())
    );

    let forged = launch.replace("shop=demo-store", "shop=other-store");
    let resp = world.get_url(&forged).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(resp.problem_type().ends_with("/invalid-shopify-launch"));

    // Correctly signed, but from an hour ago.
    let mut query = query_of(&launch);
    for (k, v) in query.iter_mut() {
        if k == "timestamp" {
            *v = (v.parse::<i64>().unwrap() - 3600).to_string();
        }
    }
    let stale = with_query(&launch, &resign(&query, SANDBOX_CLIENT_SECRET));
    let resp = world.get_url(&stale).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(resp.problem_type().ends_with("/invalid-shopify-launch"));

    // Once installed, the launch opens the console's connections.
    let merchant = world.merchant("owner-of-demo").await;
    assert_eq!(
        merchant.connect_shopify(DEMO_SHOP).await.install_outcome(),
        "connected"
    );
    let resp = world.get_url(&launch).await;
    assert_eq!(
        resp.location.as_deref(),
        Some(format!("{app}/connections").as_str())
    );
}

/// The attack the browser binding stops: the attacker starts an install and sends the shop
/// owner the authorize link; the owner's browser (which never began this install) approves on
/// Shopify and lands on our callback without the state cookie.
#[tokio::test]
async fn an_install_link_followed_in_another_browser_links_nothing() {
    let world = World::start().await;
    let app = world.stack.parameter("AppBaseUrl").unwrap().to_owned();
    let attacker = world.merchant("attacker").await;
    let start = attacker
        .post("/connections/shopify", json!({ "shop": DEMO_SHOP }))
        .await;
    let begin_url = start.body["authorize_url"].as_str().unwrap().to_owned();
    // The attacker's own browser begins (and holds the cookie)...
    let begin = world.get_url(&begin_url).await;
    let shopify_authorize = begin.location.unwrap();
    assert!(
        begin.set_cookies[0].contains("HttpOnly") && begin.set_cookies[0].contains("SameSite=Lax")
    );

    // ...and the victim's browser follows the link.
    let mut victim = Browser::new();
    let approved = victim.get(&shopify_authorize).await;
    let callback = approved
        .location
        .expect("Shopify redirects to the callback");
    let landed = victim.get(&callback).await;
    assert_eq!(landed.status, StatusCode::FOUND);
    assert_eq!(
        landed.location.as_deref(),
        Some(format!("{app}/connections?shopify=error&type=oauth-browser-mismatch").as_str())
    );
    assert!(attacker.connections().await["shopify"].is_null());

    // A begin ticket works once.
    let reused = world.get_url(&begin_url).await;
    assert_eq!(reused.install_outcome(), "invalid-oauth-state");
    assert!(
        reused.set_cookies.is_empty(),
        "no state cookie for a spent ticket"
    );

    // The owner's own install, started in their browser, ends on the console, connected.
    let owner = world.merchant("owner").await;
    let resp = owner.connect_shopify(DEMO_SHOP).await;
    assert_eq!(
        resp.location.as_deref(),
        Some(format!("{app}/connections?shopify=connected").as_str())
    );
    assert_eq!(owner.connections().await["shopify"]["shop"], DEMO_SHOP);
}
