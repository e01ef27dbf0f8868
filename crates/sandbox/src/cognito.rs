//! Cognito-like token issuer: an RS256 key with a JWKS document and a `/token` endpoint that
//! mints access and id tokens carrying Cognito's claim names.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rand::{rngs::StdRng, SeedableRng};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::state::AppState;
use crate::util::{b64url, now_unix, uuid_like};

pub const APP_CLIENT_ID: &str = "sandbox-app-client";

pub struct Signer {
    pub kid: String,
    key: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

static SIGNER: OnceLock<Signer> = OnceLock::new();

/// The process-wide signing key. Generating RSA keys is slow, so one key (from a fixed seed)
/// serves every sandbox in the process; call from a blocking context the first time.
pub fn signer() -> &'static Signer {
    SIGNER.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(0x5e_ed_c0_91);
        let private = RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .expect("PKCS#1 encoding of a fresh key");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("valid RSA PEM");
        let n = b64url(&private.n().to_bytes_be());
        let e = b64url(&private.e().to_bytes_be());
        // Cognito kids are opaque base64 strings; derive one from the modulus.
        let kid = base64_std(&Sha256::digest(n.as_bytes())[..24]);
        let jwk = json!({ "alg": "RS256", "e": e, "kid": kid, "kty": "RSA", "n": n, "use": "sig" });
        let decoding = DecodingKey::from_rsa_components(&n, &e).expect("valid RSA components");
        Signer {
            kid,
            key,
            decoding,
            jwk,
        }
    })
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn signer_async() -> &'static Signer {
    match SIGNER.get() {
        Some(s) => s,
        None => tokio::task::spawn_blocking(signer)
            .await
            .unwrap_or_else(|_| signer()),
    }
}

/// Who a token pair is for, and for which app client.
pub struct Claims {
    pub sub: String,
    pub username: String,
    pub email: String,
    pub client_id: String,
    pub scope: String,
    pub groups: Option<Value>,
    /// The `nonce` of the authorize request, echoed in the id token (OIDC).
    pub nonce: Option<String>,
}

/// Signs an access token and an id token carrying Cognito's claim names; `None` only if
/// signing fails. Negative `expires_in`: issued "in the past" so iat < exp still holds.
pub fn mint(
    signer: &Signer,
    base_url: &str,
    c: &Claims,
    expires_in: i64,
) -> Option<(String, String)> {
    let now = now_unix();
    let exp = now + expires_in;
    let iat = if expires_in > 0 { now } else { exp - 3600 };
    let issuer = format!("{base_url}/cognito");
    let mut rng = rand::thread_rng();
    let origin_jti = uuid_like(&mut rng);
    let event_id = uuid_like(&mut rng);
    let mut access = json!({
        "sub": c.sub, "iss": issuer, "client_id": c.client_id, "origin_jti": origin_jti,
        "event_id": event_id, "token_use": "access", "scope": c.scope, "auth_time": iat,
        "exp": exp, "iat": iat, "jti": uuid_like(&mut rng), "username": c.username,
    });
    let mut id = json!({
        "sub": c.sub, "aud": c.client_id, "email": c.email, "email_verified": true,
        "iss": issuer, "cognito:username": c.username, "origin_jti": origin_jti,
        "event_id": event_id, "token_use": "id", "auth_time": iat, "exp": exp, "iat": iat,
        "jti": uuid_like(&mut rng),
    });
    if let Some(g) = &c.groups {
        access["cognito:groups"] = g.clone();
        id["cognito:groups"] = g.clone();
    }
    if let Some(n) = &c.nonce {
        id["nonce"] = json!(n);
    }
    let mut jwt_header = Header::new(Algorithm::RS256);
    jwt_header.kid = Some(signer.kid.clone());
    let access = jsonwebtoken::encode(&jwt_header, &access, &signer.key).ok()?;
    let id = jsonwebtoken::encode(&jwt_header, &id, &signer.key).ok()?;
    Some((access, id))
}

/// Claims of an access token this issuer signed and that has not expired.
pub fn verify_access(signer: &Signer, base_url: &str, token: &str) -> Option<Value> {
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_issuer(&[format!("{base_url}/cognito")]);
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(token, &signer.decoding, &v).ok()?;
    (data.claims["token_use"] == "access").then_some(data.claims)
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cognito/.well-known/jwks.json", get(jwks))
        .route(
            "/cognito/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/cognito/token", post(token))
        .merge(crate::hosted_ui::router())
}

async fn jwks() -> Json<Value> {
    let s = signer_async().await;
    Json(json!({ "keys": [s.jwk] }))
}

async fn openid_configuration(State(st): State<Arc<AppState>>) -> Json<Value> {
    let issuer = format!("{}/cognito", st.base_url);
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userInfo"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
    }))
}

fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_request", "error_description": msg })),
    )
        .into_response()
}

async fn token(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    // Resolve the key before any non-Send state (the thread rng) exists in this future.
    let signer = signer_async().await;
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("body must be JSON: {e}")),
    };
    let Some(sub) = req
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return bad_request("'sub' is required");
    };
    let email = req.get("email").and_then(Value::as_str).unwrap_or("");
    let username = req.get("username").and_then(Value::as_str).unwrap_or(sub);
    let scope = req
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("aws.cognito.signin.user.admin");
    let expires_in = req
        .get("expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let groups = req.get("groups").cloned();

    let claims = Claims {
        sub: sub.to_owned(),
        username: username.to_owned(),
        email: email.to_owned(),
        client_id: APP_CLIENT_ID.to_owned(),
        scope: scope.to_owned(),
        groups,
        nonce: None,
    };
    let Some((access_jwt, id_jwt)) = mint(signer, &st.base_url, &claims, expires_in) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "token signing failed").into_response();
    };
    st.stats().cognito_tokens_issued += 1;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "access_token": access_jwt,
            "id_token": id_jwt,
            "token_type": "Bearer",
            "expires_in": expires_in,
        })
        .to_string(),
    )
        .into_response()
}
