//! The management API of `kferry run` against two tansu brokers: a route added at run time
//! replicates; paused, it lets nothing new reach the target; resumed, the rest arrives
//! exactly once; a single topic pauses on its own; deleted, it stops. Every change survives
//! a restart of the daemon (SIGTERM, start again), and a request without the token is
//! refused.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, kclient, Broker};
use kferry::replicate::HeartbeatConfig;
use kferry::{ClusterConfig, ManageError, Replicator, RouteConfig};
use support::daemon::{
    assert_exact, create_topic, signal, start_kferry, tempdir, total, verify, wait_replicated, Guarded, PARTITIONS,
};

const TOKEN: &str = "t0ken-for-tests";
/// Longer than two fetch intervals (`fetch.max.wait.ms` = 500) and a commit interval.
const QUIET: Duration = Duration::from_secs(3);

#[test]
fn routes_changed_through_the_api_replicate_pause_resume_and_survive_restarts() {
    let (src, dst) = (Broker::start_memory("api-src"), Broker::start_memory("api-dst"));
    let (s, d) = (src.bootstrap(), dst.bootstrap());
    for topic in ["orders", "audit", "base"] {
        create_topic(&s, topic, PARTITIONS);
    }
    let dir = tempdir("management-api");
    let _ = std::fs::remove_file(dir.join("kferry-api-state.json"));
    let api = format!("127.0.0.1:{}", free_port());
    let config = write_config(&dir, &s, &d, &api);
    let mut kferry = start(&config, &api, "api-run-1");

    // Authentication and refusals.
    assert_eq!(request(&api, "GET", "/routes", None, None).0, 401);
    assert_eq!(request(&api, "GET", "/routes", Some("wrong"), None).0, 401);
    let (status, body) = call(
        &api,
        "POST",
        "/routes",
        Some(r#"{"source": "src", "target": "nowhere", "topics": ["orders"]}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unknown cluster 'nowhere'"),
        "{body}"
    );
    let back = r#"{"name": "back", "source": "dst", "target": "src", "topics": ["base"]}"#;
    let (status, body) = call(&api, "POST", "/routes", Some(back));
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("replication cycle"), "{body}");
    assert_eq!(call(&api, "GET", "/routes/nope", None).0, 404);
    let (status, doc) = call(&api, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["paths"]["/routes/{name}/pause"].is_object(), "{doc}");

    // Add a route; it replicates.
    let live = r#"{"name": "live", "source": "src", "target": "dst", "topics": ["orders", "audit"], "commit.interval.ms": 200}"#;
    let (status, body) = call(&api, "POST", "/routes", Some(live));
    assert_eq!(status, 201, "{body}");
    assert_eq!(call(&api, "POST", "/routes", Some(live)).0, 409, "a second 'live'");
    produce(&s, "orders", 0, 1000);
    wait_replicated(&s, &d, "orders", Duration::from_secs(60));
    let status = wait_for(&api, "/routes/live", |b| b["records_out"] == 1000);
    assert_eq!(
        status["partitions"].as_array().unwrap().len(),
        2 * PARTITIONS as usize,
        "{status}"
    );
    assert_eq!(status["source"], "src");

    // Paused: nothing new arrives. Resumed: the rest arrives, exactly once.
    let (code, body) = call(&api, "POST", "/routes/live/pause", None);
    assert_eq!((code, &body["paused"]), (200, &serde_json::json!(true)), "{body}");
    assert_eq!(route(&api, "live")["state"], "paused");
    produce(&s, "orders", 1000, 1000);
    std::thread::sleep(QUIET);
    assert_eq!(total(&d, "orders"), 1000, "records arrived while the route was paused");
    assert_eq!(call(&api, "POST", "/routes/live/resume", None).0, 200);
    wait_replicated(&s, &d, "orders", Duration::from_secs(60));
    assert_exact(&verify(&s, &d, "orders"), 2000);

    // One topic paused; the other keeps replicating.
    let (code, body) = call(&api, "POST", "/routes/live/topics/audit/pause", None);
    assert_eq!(
        (code, &body["paused_topics"]),
        (200, &serde_json::json!(["audit"])),
        "{body}"
    );
    assert_eq!(call(&api, "POST", "/routes/live/topics/nope/pause", None).0, 404);
    produce(&s, "audit", 0, 500);
    produce(&s, "orders", 2000, 500);
    wait_replicated(&s, &d, "orders", Duration::from_secs(60));
    std::thread::sleep(QUIET);
    assert_eq!(total(&d, "audit"), 0, "records of a paused topic arrived");

    // Delete the config file's route.
    assert_eq!(call(&api, "DELETE", "/routes/base", None).0, 204);
    assert_eq!(call(&api, "GET", "/routes/base", None).0, 404);

    // Restart: 'live' is back with 'audit' still paused, 'base' stays deleted.
    kferry = restart(kferry, &config, &api, "api-run-2");
    assert_eq!(names(&api), ["live"]);
    let live_route = route(&api, "live");
    assert_eq!(
        live_route["paused_topics"],
        serde_json::json!(["audit"]),
        "{live_route}"
    );
    assert_eq!(live_route["state"], "running");
    produce(&s, "base", 0, 100);
    std::thread::sleep(QUIET);
    assert_eq!(total(&d, "audit"), 0, "a paused topic replicated after the restart");
    assert_eq!(total(&d, "base"), 0, "a deleted route replicated after the restart");
    assert_eq!(call(&api, "POST", "/routes/live/topics/audit/resume", None).0, 200);
    wait_replicated(&s, &d, "audit", Duration::from_secs(60));
    assert_exact(&verify(&s, &d, "audit"), 500);

    // A paused route stays paused across a restart.
    assert_eq!(call(&api, "POST", "/routes/live/pause", None).0, 200);
    kferry = restart(kferry, &config, &api, "api-run-3");
    assert_eq!(route(&api, "live")["state"], "paused");
    produce(&s, "orders", 2500, 500);
    std::thread::sleep(QUIET);
    assert_eq!(total(&d, "orders"), 2500, "a paused route replicated after the restart");
    assert_eq!(call(&api, "POST", "/routes/live/resume", None).0, 200);
    wait_replicated(&s, &d, "orders", Duration::from_secs(60));
    assert_exact(&verify(&s, &d, "orders"), 3000);

    // Deleted: it stops, and stays gone after a restart.
    assert_eq!(call(&api, "DELETE", "/routes/live", None).0, 204);
    assert_eq!(call(&api, "DELETE", "/routes/live", None).0, 404);
    produce(&s, "orders", 3000, 200);
    kferry = restart(kferry, &config, &api, "api-run-4");
    assert!(names(&api).is_empty(), "{:?}", names(&api));
    std::thread::sleep(QUIET);
    assert_eq!(total(&d, "orders"), 3000, "a deleted route replicated");
    stop(kferry);
}

/// The library side: a route added to a running replicator with heartbeats gets its source's
/// heartbeats (the topic created and a writer started for a cluster that was no source yet),
/// and routes are checked against the running ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_at_run_time_is_checked_and_times_heartbeats() {
    let (a, b) = (Broker::start_memory("api-lib-a"), Broker::start_memory("api-lib-b"));
    create_topic(&a.bootstrap(), "t", 1);
    let running = Replicator::builder()
        .cluster(ClusterConfig::new("a", vec![a.bootstrap()]))
        .cluster(ClusterConfig::new("b", vec![b.bootstrap()]))
        .heartbeats(HeartbeatConfig {
            topic: "heartbeats".to_string(),
            interval: Duration::from_millis(200),
        })
        .build()
        .unwrap()
        .start()
        .await
        .expect("starts with no route");
    assert!(running.routes().is_empty());
    let mut ab = RouteConfig::new("ab", "a", "b").include(&["t"]);
    ab.fetch_max_wait_ms = 50;
    running.add_route(ab.clone()).await.expect("route added");
    let err = running.add_route(ab).await.unwrap_err();
    assert!(matches!(err, ManageError::Duplicate(_)), "{err}");
    let err = running
        .add_route(RouteConfig::new("ba", "b", "a").include(&["t"]))
        .await
        .unwrap_err();
    assert!(matches!(err, ManageError::Cycle { .. }), "{err}");
    let err = running
        .add_route(RouteConfig::new("ac", "a", "c").include(&["t"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown cluster 'c'"), "{err}");

    let deadline = Instant::now() + Duration::from_secs(20);
    while running.routes()[0].heartbeat_latency().is_none() {
        assert!(
            Instant::now() < deadline,
            "no heartbeat replicated on the added route within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.pause_topic("ab", "t").unwrap();
    assert_eq!(running.pause_state("ab").unwrap().topics, ["t"]);
    assert!(matches!(
        running.pause_topic("ab", "nope"),
        Err(ManageError::UnknownTopic { .. })
    ));
    running.remove_route("ab").await.expect("clean removal");
    assert!(running.routes().is_empty());
    assert!(matches!(
        running.remove_route("ab").await,
        Err(ManageError::UnknownRoute(_))
    ));
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");
}

fn write_config(dir: &Path, src: &str, dst: &str, api: &str) -> std::path::PathBuf {
    let path = dir.join("kferry.toml");
    let text = format!(
        r#""heartbeats.enabled" = false
"api.address" = "{api}"
"api.token" = "{TOKEN}"
[clusters.src]
"bootstrap.servers" = "{src}"
[clusters.dst]
"bootstrap.servers" = "{dst}"
[[routes]]
name = "base"
source = "src"
target = "dst"
topics = ["base"]
"commit.interval.ms" = 200
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the daemon and waits until its API answers.
fn start(config: &Path, api: &str, log: &str) -> Guarded {
    let mut child = start_kferry(config, log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(api, "GET", "/routes", Some(TOKEN), None).0 != 200 {
        assert!(child.try_wait().unwrap().is_none(), "kferry exited; see the log {log}");
        assert!(Instant::now() < deadline, "the API did not answer within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

fn stop(mut kferry: Guarded) {
    signal(&kferry, "-TERM");
    assert!(kferry.0.wait().unwrap().success(), "kferry did not stop cleanly");
}

fn restart(kferry: Guarded, config: &Path, api: &str, log: &str) -> Guarded {
    stop(kferry);
    start(config, api, log)
}

fn produce(bootstrap: &str, topic: &str, start: u64, count: u64) {
    kclient(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
        "--start",
        &start.to_string(),
        "--count",
        &count.to_string(),
        "--idempotent",
        "--codec",
        "lz4",
        "--linger-ms",
        "5",
    ]);
}

/// The route's entry in `GET /routes`.
fn route(api: &str, name: &str) -> serde_json::Value {
    let (status, body) = call(api, "GET", "/routes", None);
    assert_eq!(status, 200, "{body}");
    let routes = body["routes"].as_array().unwrap();
    routes
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no route '{name}' in {body}"))
}

fn names(api: &str) -> Vec<String> {
    let (_, body) = call(api, "GET", "/routes", None);
    let routes = body["routes"].as_array().unwrap();
    routes.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

/// Polls `GET path` until `done` holds for its body (30 s at most).
fn wait_for(api: &str, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(api, "GET", path, None);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "GET {path}: {status} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A request with the token.
fn call(api: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    request(api, method, path, Some(TOKEN), body)
}

/// One HTTP/1.1 request; the status and the JSON body (null when empty). Status 0 when the
/// server cannot be reached.
fn request(api: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, serde_json::Value) {
    let Ok(mut stream) = TcpStream::connect(api) else {
        return (0, serde_json::Value::Null);
    };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, text) = response.split_once("\r\n\r\n").expect("response head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let json = match text.is_empty() {
        true => serde_json::Value::Null,
        false => serde_json::from_str(text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}")),
    };
    (status, json)
}
