//! The `/routes` handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kferry::config::{Config, RouteSection};
use kferry::replicate::RouteHandle;
use kferry::{ManageError, RouteConfig, RouteError, Routes};
use serde_json::{json, Value};

use super::{error, Api};

/// `GET /routes`: every route with its state.
pub async fn list(State(api): State<Arc<Api>>) -> Response {
    let routes = api.running.routes();
    let routes: Vec<Value> = routes.iter().map(|r| summary(&routes, r)).collect();
    Json(json!({ "routes": routes })).into_response()
}

/// `GET /routes/{name}`: the route's counters, throughput, per-partition lag and errors.
pub async fn status(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Response {
    let routes = api.running.routes();
    let Some(route) = routes.iter().find(|r| r.name() == name) else {
        return error(StatusCode::NOT_FOUND, ManageError::UnknownRoute(name));
    };
    let mut body = summary(&routes, route);
    let pause = routes.pause_state(&name).unwrap_or_default();
    let partitions: Vec<Value> = route
        .status()
        .iter()
        .map(|p| {
            json!({
                "topic": p.source_topic,
                "partition": p.partition,
                "paused": pause.route || pause.topics.contains(&p.source_topic),
                "acked_offset": p.acked.source_next,
                "high_watermark": p.high_watermark,
                "lag": (p.high_watermark >= 0).then(|| (p.high_watermark - p.acked.source_next).max(0)),
                "time_lag_ms": p.lag.time_lag_ms,
                "bytes_behind": p.lag.bytes_behind,
                "records_out": p.records_out,
                "bytes_out": p.bytes_out,
                "error": p.error,
            })
        })
        .collect();
    body["throughput"] = json!(api.rates.get(&name));
    body["errors"] = json!(route.errors());
    body["partitions"] = Value::Array(partitions);
    Json(body).into_response()
}

/// Name, clusters, state and totals of a route.
fn summary(routes: &Routes<'_>, route: &RouteHandle) -> Value {
    let pause = routes.pause_state(route.name()).unwrap_or_default();
    let state = match (route.errors().is_empty(), pause.route) {
        (false, _) => "failed",
        (true, true) => "paused",
        (true, false) => "running",
    };
    let (records, bytes) = route.forwarded();
    json!({
        "name": route.name(),
        "source": route.source_cluster(),
        "target": route.target_cluster(),
        "state": state,
        "paused_topics": pause.topics,
        "records_out": records,
        "bytes_out": bytes,
    })
}

/// `POST /routes`: a `[[routes]]` entry as JSON. Started, then recorded in the state file.
pub async fn create(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    let (name, config, posted) = match parse_route(&body, &api.config) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // In a task of its own: a client that disconnects does not cancel a half-started route.
    let task = tokio::spawn(async move {
        let mut state = api.state.lock().await;
        api.running.add_route(config).await?;
        state.record_added(&name, posted);
        state.save(&api.state_path).map_err(Failure::Persist)?;
        Ok::<_, Failure>(name)
    });
    match task.await {
        Ok(Ok(name)) => (StatusCode::CREATED, Json(json!({ "name": name, "state": "running" }))).into_response(),
        Ok(Err(f)) => f.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `DELETE /routes/{name}`: drains and commits the route, then records its removal.
pub async fn delete(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Response {
    let task = tokio::spawn(async move {
        let mut state = api.state.lock().await;
        let removed = api.running.remove_route(&name).await;
        if let Err(ManageError::UnknownRoute(_)) = removed {
            return removed.map_err(Failure::Manage);
        }
        // Stopped even if its final commit failed: record it as gone either way.
        let in_file = api.config.routes.iter().any(|r| api.config.route_name(r) == name);
        state.record_deleted(&name, in_file);
        state.save(&api.state_path).map_err(Failure::Persist)?;
        removed.map_err(Failure::Manage)
    });
    match task.await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(f)) => f.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `POST /routes/{name}/pause`.
pub async fn pause(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Response {
    change_pause(api, name, None, true).await
}

/// `POST /routes/{name}/resume`.
pub async fn resume(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Response {
    change_pause(api, name, None, false).await
}

/// `POST /routes/{name}/topics/{topic}/pause`.
pub async fn pause_topic(State(api): State<Arc<Api>>, Path((name, topic)): Path<(String, String)>) -> Response {
    change_pause(api, name, Some(topic), true).await
}

/// `POST /routes/{name}/topics/{topic}/resume`.
pub async fn resume_topic(State(api): State<Arc<Api>>, Path((name, topic)): Path<(String, String)>) -> Response {
    change_pause(api, name, Some(topic), false).await
}

async fn change_pause(api: Arc<Api>, name: String, topic: Option<String>, paused: bool) -> Response {
    let mut state = api.state.lock().await;
    let running = &api.running;
    let changed = match (&topic, paused) {
        (None, true) => running.pause_route(&name),
        (None, false) => running.resume_route(&name),
        (Some(t), true) => running.pause_topic(&name, t),
        (Some(t), false) => running.resume_topic(&name, t),
    };
    if let Err(e) = changed {
        return Failure::Manage(e).into_response();
    }
    state.record_paused(&name, topic.as_deref(), paused);
    if let Err(e) = state.save(&api.state_path) {
        return Failure::Persist(e).into_response();
    }
    let pause = running.pause_state(&name).unwrap_or_default();
    Json(json!({ "name": name, "paused": pause.route, "paused_topics": pause.topics })).into_response()
}

/// Why a change failed.
enum Failure {
    Manage(ManageError),
    /// Applied, but the state file could not be written: lost on restart.
    Persist(String),
}

impl From<ManageError> for Failure {
    fn from(e: ManageError) -> Failure {
        Failure::Manage(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Persist(message) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("applied but not recorded (it will not survive a restart): {message}"),
            ),
            Failure::Manage(e) => {
                let status = match &e {
                    ManageError::UnknownRoute(_) | ManageError::UnknownTopic { .. } => StatusCode::NOT_FOUND,
                    ManageError::Duplicate(_) | ManageError::Cycle { .. } => StatusCode::CONFLICT,
                    ManageError::Route(RouteError::Wire { .. }) => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::BAD_REQUEST,
                };
                error(status, e)
            }
        }
    }
}

/// A posted route: its name, its library config, and the JSON to record (name filled in).
/// Checked as a `[[routes]]` entry of the config file is (same keys, same rules), against
/// the config file's clusters.
pub fn parse_route(body: &[u8], config: &Config) -> Result<(String, RouteConfig, Value), String> {
    let mut posted: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !posted.is_object() {
        return Err("the body must be a JSON object: a [[routes]] entry".to_string());
    }
    let section: RouteSection = serde_json::from_value(posted.clone()).map_err(|e| format!("route: {e}"))?;
    let mut alone = config.clone();
    alone.routes = vec![section];
    alone
        .validate()
        .map_err(|(key, message)| format!("{}: {message}", key.replace("routes[0].", "")))?;
    let name = alone.route_name(&alone.routes[0]);
    posted["name"] = Value::String(name.clone());
    let route = alone.route_configs().remove(0);
    Ok((name, route, posted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "\"api.address\" = \"127.0.0.1:1\"\n[clusters.a]\n\"bootstrap.servers\" = \"h:1\"\n\
                    [clusters.b]\n\"bootstrap.servers\" = \"h:2\"\n";
        let dir = std::env::temp_dir().join(format!("kferry-api-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A file per call: tests run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("kferry-{n}.toml"));
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn a_posted_route_takes_the_config_file_keys() {
        let body = br#"{"source": "a", "target": "b", "topics": ["orders"], "commit.interval.ms": 200, "buffer.memory": "64MiB"}"#;
        let (name, route, posted) = parse_route(body, &config()).unwrap();
        assert_eq!(name, "a-to-b");
        assert_eq!(posted["name"], "a-to-b");
        assert_eq!(route.include, ["orders"]);
        assert_eq!(route.commit_interval.as_millis(), 200);
        assert_eq!(route.buffer_memory, 64 << 20);
        assert_eq!(route.group_id, "kferry-a-to-b");
    }

    #[test]
    fn bad_routes_are_refused_with_the_key() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not JSON"),
            (b"[1]", "JSON object"),
            (br#"{"source": "a", "target": "b", "topix": ["x"]}"#, "topix"),
            (
                br#"{"source": "a", "target": "c", "topics": ["x"]}"#,
                "target: unknown cluster 'c'",
            ),
            (br#"{"source": "a", "target": "a", "topics": ["x"]}"#, "same cluster"),
            (br#"{"source": "a", "target": "b", "topics": ["x("]}"#, "topics:"),
        ];
        for (body, expected) in cases {
            let err = parse_route(body, &config()).unwrap_err();
            assert!(err.contains(expected), "{}: {err}", String::from_utf8_lossy(body));
        }
    }
}
