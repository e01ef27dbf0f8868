mod common;

use common::*;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

async fn mint(sb: &sandbox::Sandbox, body: Value) -> Value {
    client()
        .post(format!("{}/token", sb.cognito_issuer()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn decoding_key(sb: &sandbox::Sandbox, kid: &str) -> DecodingKey {
    let jwks: Value = client()
        .get(sb.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid published in JWKS");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kty"], "RSA");
    DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn jwks_verifies_minted_access_and_id_tokens() {
    let sb = start(small_config()).await;
    let tokens = mint(
        &sb,
        json!({ "sub": "user-123", "email": "owner@demo.example" }),
    )
    .await;
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    let header = decode_header(access).unwrap();
    let key = decoding_key(&sb, header.kid.as_deref().unwrap()).await;

    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[sb.cognito_issuer()]);
    v.validate_aud = false;
    let claims = decode::<Value>(access, &key, &v).unwrap().claims;
    assert_eq!(claims["sub"], "user-123");
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["client_id"], sandbox::COGNITO_APP_CLIENT_ID);
    for c in ["scope", "auth_time", "iat", "exp", "jti", "username"] {
        assert!(claims.get(c).is_some(), "missing {c}");
    }

    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[sb.cognito_issuer()]);
    v.set_audience(&[sandbox::COGNITO_APP_CLIENT_ID]);
    let id = decode::<Value>(tokens["id_token"].as_str().unwrap(), &key, &v)
        .unwrap()
        .claims;
    assert_eq!(id["email"], "owner@demo.example");
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["email_verified"], true);
}

#[tokio::test]
async fn negative_expiry_mints_an_expired_token() {
    let sb = start(small_config()).await;
    let tokens = mint(
        &sb,
        json!({ "sub": "u", "email": "u@x.example", "expires_in": -120 }),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let key = decoding_key(&sb, decode_header(access).unwrap().kid.as_deref().unwrap()).await;
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = 0;
    v.validate_aud = false;
    let err = decode::<Value>(access, &key, &v).unwrap_err();
    assert!(matches!(
        err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    ));
}
