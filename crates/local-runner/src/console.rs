//! The merchant console, served as CloudFront serves it when deployed: the static build in
//! `console/dist`, every unknown path answered with `index.html` (the console routes with the
//! History API), the same security headers, and a `/config.json` written from the running stack.

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Where the build is by default: `console/dist` of the workspace.
pub fn default_dist_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../console/dist"))
}

/// Options of the console server, set on [`crate::StackOptions::console`].
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// The console's build (`npm run build` in `console/`).
    pub dist_dir: PathBuf,
    /// Port on 127.0.0.1 (0 = any free port).
    pub port: u16,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            dist_dir: default_dist_dir(),
            port: 0,
        }
    }
}

/// What the console reads at run time from `/config.json` (the same keys `make deploy` writes).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleConfig {
    pub api_url: String,
    pub cognito_domain: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub logout_uri: String,
}

impl ConsoleConfig {
    pub fn new(origin: &str, api_url: &str, cognito_domain: &str, client_id: &str) -> Self {
        Self {
            api_url: api_url.to_owned(),
            cognito_domain: cognito_domain.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: format!("{origin}/auth/callback"),
            logout_uri: format!("{origin}/"),
        }
    }
}

struct Console {
    dist: PathBuf,
    config: ConsoleConfig,
    /// The deployed distribution's security headers (`console_headers`), on every response.
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The console's routes: `/config.json`, the build's files, `index.html` for everything else.
pub fn router(dist: PathBuf, config: ConsoleConfig, headers: Vec<(String, String)>) -> Router {
    let headers = headers
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(&v).ok()?,
            ))
        })
        .collect();
    Router::new().fallback(serve).with_state(Arc::new(Console {
        dist,
        config,
        headers,
    }))
}

async fn serve(State(console): State<Arc<Console>>, req: Request) -> Response {
    let path = req.uri().path();
    let mut resp = if path == "/config.json" {
        let mut r = axum::Json(json!(console.config)).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    } else {
        match static_file(&console.dist, path).await {
            Some((bytes, kind, immutable)) => {
                let mut r = (StatusCode::OK, bytes).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
                let cache = if immutable {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
                r
            }
            None => (
                StatusCode::NOT_FOUND,
                "the console is not built: run `npm ci && npm run build` in console/",
            )
                .into_response(),
        }
    };
    let h = resp.headers_mut();
    for (name, value) in &console.headers {
        h.insert(name.clone(), value.clone());
    }
    resp
}

/// A file of the build for `path`, else `index.html` for paths without an extension (console
/// routes). Hashed assets are immutable. Paths that climb out of the build are not served.
async fn static_file(dist: &Path, path: &str) -> Option<(Vec<u8>, &'static str, bool)> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let file = dist.join(rel);
    if !path.ends_with('/') {
        if let Ok(bytes) = tokio::fs::read(&file).await {
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            return Some((bytes, content_type(ext), path.starts_with("/assets/")));
        }
    }
    if rel.extension().is_some() {
        return None;
    }
    let index = tokio::fs::read(dist.join("index.html")).await.ok()?;
    Some((index, "text/html; charset=utf-8", false))
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("console-dist-{}", crate::random_prefix()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>index").unwrap();
        std::fs::write(dir.join("assets/app-1a2b.js"), "console.log(1)").unwrap();
        dir
    }

    #[tokio::test]
    async fn serves_files_routes_fall_back_to_the_index_and_nothing_outside_the_build() {
        let dist = dist();
        let (js, kind, immutable) = static_file(&dist, "/assets/app-1a2b.js").await.unwrap();
        assert_eq!(
            (js.as_slice(), kind, immutable),
            (
                &b"console.log(1)"[..],
                "text/javascript; charset=utf-8",
                true
            )
        );
        for route in ["/", "/runs/01HX", "/connections", "/auth/callback"] {
            let (html, kind, immutable) = static_file(&dist, route).await.unwrap();
            assert_eq!(html, b"<!doctype html>index", "{route}");
            assert_eq!((kind, immutable), ("text/html; charset=utf-8", false));
        }
        // A missing asset is a 404, not the index; climbing out of the build serves nothing.
        assert!(static_file(&dist, "/assets/gone.js").await.is_none());
        assert!(static_file(&dist, "/../Cargo.toml").await.is_none());
        assert!(static_file(&dist, "/assets/../../etc/passwd")
            .await
            .is_none());
        std::fs::remove_dir_all(dist).unwrap();
    }
}
