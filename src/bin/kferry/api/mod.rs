//! The management API (`api.address`): list, add, pause, resume and delete routes, and read
//! each route's status, as JSON over HTTP. Described by `docs/openapi.json` (served at
//! `GET /openapi.json`) and `docs/api.md`.
//!
//! Every request needs `Authorization: Bearer <token>` when a token is set (`api.token` or
//! `KFERRY_API_TOKEN`); the comparison takes the same time whatever the token sent. Changes
//! are recorded in the state file ([`state`]) before the response, so they survive a
//! restart.

mod routes;
pub mod state;

mod rates;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kferry::config::Config;
use kferry::Running;
use tokio::net::TcpListener;

use rates::Rates;
use state::ApiState;

/// The OpenAPI 3.0 document describing this API.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Every path the API serves (axum syntax; the OpenAPI document must describe each one).
pub const PATHS: [&str; 7] = [
    "/routes",
    "/routes/{name}",
    "/routes/{name}/pause",
    "/routes/{name}/resume",
    "/routes/{name}/topics/{topic}/pause",
    "/routes/{name}/topics/{topic}/resume",
    "/openapi.json",
];

/// What the handlers share.
pub struct Api {
    pub running: Arc<Running>,
    /// The config file as loaded (its clusters, and which routes it defines).
    pub config: Config,
    /// The state file and its contents; the lock serializes changes and their recording.
    pub state: tokio::sync::Mutex<ApiState>,
    pub state_path: PathBuf,
    token: Option<String>,
    rates: Rates,
}

impl Api {
    pub fn new(
        running: Arc<Running>,
        config: Config,
        state: ApiState,
        state_path: PathBuf,
        token: Option<String>,
    ) -> Api {
        Api {
            running,
            config,
            state: tokio::sync::Mutex::new(state),
            state_path,
            token: token.filter(|t| !t.is_empty()),
            rates: Rates::default(),
        }
    }
}

/// The token from `KFERRY_API_TOKEN`, else `api.token`.
pub fn token(config: &Config) -> Option<String> {
    std::env::var("KFERRY_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| config.api_token.clone())
}

/// Serves the API until the future is dropped (and samples throughput meanwhile).
pub async fn serve(listener: TcpListener, api: Arc<Api>) {
    let sampler = api.clone();
    let app = router(api);
    tokio::select! {
        r = axum::serve(listener, app) => {
            if let Err(e) = r {
                tracing::error!("management API stopped: {e}");
            }
        }
        _ = sampler.rates.run(&sampler.running) => {}
    }
}

fn router(api: Arc<Api>) -> Router {
    let [list, one, pause, resume, topic_pause, topic_resume, openapi] = PATHS;
    Router::new()
        .route(list, get(routes::list).post(routes::create))
        .route(one, get(routes::status).delete(routes::delete))
        .route(pause, post(routes::pause))
        .route(resume, post(routes::resume))
        .route(topic_pause, post(routes::pause_topic))
        .route(topic_resume, post(routes::resume_topic))
        .route(openapi, get(openapi_document))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint (see GET /openapi.json)") })
        .layer(axum::middleware::from_fn_with_state(api.clone(), authorize))
        .with_state(api)
}

async fn openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Refuses a request without the bearer token (when one is set).
async fn authorize(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let Some(token) = &api.token else {
        return next.run(request).await;
    };
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match sent.is_some_and(|s| same_secret(s.as_bytes(), token.as_bytes())) {
        true => next.run(request).await,
        false => {
            let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// A JSON error response: `{"error": message}`.
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": message.to_string() }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_path_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.0"),
            "{}",
            doc["openapi"]
        );
        let paths = doc["paths"].as_object().expect("paths");
        for path in PATHS {
            assert!(
                paths.contains_key(path),
                "{path} is served but not in docs/openapi.json"
            );
        }
        assert_eq!(paths.len(), PATHS.len(), "docs/openapi.json describes paths not served");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(same_secret(b"", b""));
    }
}
