//! API Gateway's JWT authorizer, locally: the token comes from the `Authorization` header (with or
//! without `Bearer `), is verified RS256 against the issuer's JWKS (by `kid`), and must carry the
//! configured issuer, an unexpired `exp`, a passed `nbf`, and an `aud` or `client_id` of the app
//! client. Only then is the function invoked, with the claims in `requestContext.authorizer.jwt`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::error::StackError;

pub type Claims = Map<String, Value>;

pub struct JwtAuthorizer {
    issuer: String,
    audience: Vec<String>,
    jwks_url: String,
    keys: RwLock<JwkSet>,
    http: reqwest::Client,
}

impl JwtAuthorizer {
    /// Fetches the JWKS once; an unknown `kid` later triggers one refetch (key rotation).
    pub async fn new(
        issuer: String,
        jwks_url: String,
        audience: Vec<String>,
    ) -> Result<Self, StackError> {
        let http = reqwest::Client::new();
        let keys = fetch_jwks(&http, &jwks_url).await?;
        Ok(Self {
            issuer,
            audience,
            jwks_url,
            keys: RwLock::new(keys),
            http,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The verified claims, or the reason (safe to show the caller) the token is refused.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Claims, String> {
        let raw = authorization
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or("the Authorization header is missing")?;
        let token = match raw.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => raw,
        };
        let header =
            decode_header(token).map_err(|_| "the bearer token is not a JWT".to_owned())?;
        if header.alg != Algorithm::RS256 {
            return Err(format!(
                "the token is signed with {:?}; RS256 is required",
                header.alg
            ));
        }
        let kid = header.kid.ok_or("the token has no kid")?;
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                if let Ok(fresh) = fetch_jwks(&self.http, &self.jwks_url).await {
                    *self.keys.write().await = fresh;
                }
                self.key(&kid)
                    .await
                    .ok_or("the token's signing key is not in the issuer's JWKS")?
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                match e.kind() {
                    ExpiredSignature => "the token has expired".to_owned(),
                    ImmatureSignature => "the token is not valid yet".to_owned(),
                    InvalidIssuer => "the token was issued by another issuer".to_owned(),
                    InvalidSignature => "the token signature is invalid".to_owned(),
                    MissingRequiredClaim(c) => format!("the token has no {c} claim"),
                    _ => "the token is invalid".to_owned(),
                }
            })?
            .claims;
        let audience_ok = ["aud", "client_id"]
            .iter()
            .any(|claim| match claims.get(*claim) {
                Some(Value::String(s)) => self.audience.contains(s),
                Some(Value::Array(items)) => items.iter().any(|i| {
                    i.as_str()
                        .is_some_and(|s| self.audience.contains(&s.to_owned()))
                }),
                _ => false,
            });
        if !audience_ok {
            return Err("the token was not issued to this app client".into());
        }
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().await;
        keys.find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    }
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<JwkSet, StackError> {
    let fail = |e: String| StackError::Sandbox(format!("cannot fetch the JWKS at {url}: {e}"));
    http.get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| fail(e.to_string()))?
        .json::<JwkSet>()
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Claims the way API Gateway passes them to the function: every value a string, arrays as
/// `[a b]`, objects as JSON text.
pub fn claims_as_strings(claims: &Claims) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => {
                    let parts: Vec<String> = items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect();
                    format!("[{}]", parts.join(" "))
                }
                other => other.to_string(),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

/// The token's `scope` claim, split.
pub fn scopes(claims: &Claims) -> Vec<String> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}
