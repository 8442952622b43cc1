//! The API's state file: the route changes made through the API, applied on top of the
//! config file at every start so that they survive a restart.
//!
//! Precedence: the config file's routes, minus the names in `deleted`, plus the routes in
//! `added` (as they were posted), then the pauses in `paused`. The merged set is validated
//! as one config file would be, so a route added to the config file by hand that collides
//! with an API-added one (same name, or a replication cycle) stops `kferry run` with an error
//! naming the state file. The file is rewritten atomically (a temporary file, fsync, rename).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kferry::config::{Config, RouteSection};
use serde::{Deserialize, Serialize};

/// The file name used when `api.state.file` is not set (beside the config file).
pub const DEFAULT_FILE: &str = "kferry-api-state.json";

/// What the API changed, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiState {
    /// Routes added through the API: each as posted (the keys of a `[[routes]]` entry), with
    /// its `name` filled in.
    #[serde(default)]
    pub added: Vec<serde_json::Value>,
    /// Config-file routes deleted through the API.
    #[serde(default)]
    pub deleted: BTreeSet<String>,
    /// Pauses, by route name.
    #[serde(default)]
    pub paused: BTreeMap<String, Paused>,
}

/// What is paused on one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paused {
    #[serde(default)]
    pub route: bool,
    #[serde(default)]
    pub topics: BTreeSet<String>,
}

/// Where the state file of the config file at `config_path` is.
pub fn state_path(config_path: &Path, config: &Config) -> PathBuf {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    match &config.api_state_file {
        Some(p) => dir.join(p),
        None => dir.join(DEFAULT_FILE),
    }
}

impl ApiState {
    /// Reads the state file; a missing file is no change.
    pub fn load(path: &Path) -> Result<ApiState, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("API state file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ApiState::default()),
            Err(e) => Err(format!("API state file {}: {e}", path.display())),
        }
    }

    /// Writes the state file atomically: a temporary file beside it, synced, then renamed.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("cannot write API state file {}: {e}", path.display()))
    }

    /// True when the state changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.deleted.is_empty() && self.paused.is_empty()
    }

    /// The config file with the API's route changes applied, validated as a whole.
    pub fn apply(&self, config: &Config) -> Result<Config, String> {
        let mut merged = config.clone();
        merged.routes.retain(|r| !self.deleted.contains(&config.route_name(r)));
        for value in &self.added {
            let section: RouteSection =
                serde_json::from_value(value.clone()).map_err(|e| format!("an added route ({value}): {e}"))?;
            merged.routes.push(section);
        }
        merged
            .validate()
            .map_err(|(key, message)| format!("{key}: {message}"))?;
        Ok(merged)
    }

    /// Starts paused what the state says is paused, so that nothing of it is fetched before
    /// the pause; routes no longer configured are logged and skipped.
    pub fn pause_at_start(&self, replicator: &mut kferry::Replicator) {
        for (route, paused) in &self.paused {
            let whole = paused.route.then_some(None);
            let topics = paused.topics.iter().map(|t| Some(t.as_str()));
            for topic in whole.into_iter().chain(topics) {
                if !replicator.pause_at_start(route, topic) {
                    tracing::warn!("API state: not paused: no route '{route}'");
                }
            }
        }
    }

    /// Records a route added through the API (`route` as posted, its name filled in).
    pub fn record_added(&mut self, name: &str, route: serde_json::Value) {
        self.added.retain(|r| route_name(r) != Some(name));
        self.added.push(route);
        self.paused.remove(name);
    }

    /// Records a deleted route; `in_config_file` when the config file defines it.
    pub fn record_deleted(&mut self, name: &str, in_config_file: bool) {
        self.added.retain(|r| route_name(r) != Some(name));
        if in_config_file {
            self.deleted.insert(name.to_string());
        }
        self.paused.remove(name);
    }

    /// Records a pause or resume of a route (`topic: None`) or of one of its topics.
    pub fn record_paused(&mut self, route: &str, topic: Option<&str>, paused: bool) {
        let entry = self.paused.entry(route.to_string()).or_default();
        match (topic, paused) {
            (None, p) => entry.route = p,
            (Some(t), true) => {
                entry.topics.insert(t.to_string());
            }
            (Some(t), false) => {
                entry.topics.remove(t);
            }
        }
        if !entry.route && entry.topics.is_empty() {
            self.paused.remove(route);
        }
    }
}

fn route_name(route: &serde_json::Value) -> Option<&str> {
    route.get("name").and_then(|n| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(routes: &str) -> Config {
        let text = format!(
            "\"api.address\" = \"127.0.0.1:1\"\n[clusters.a]\n\"bootstrap.servers\" = \"h:1\"\n\
             [clusters.b]\n\"bootstrap.servers\" = \"h:2\"\n{routes}"
        );
        let dir = std::env::temp_dir().join(format!("kferry-api-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A file per call: tests run in parallel and their texts may have the same length.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}.toml"));
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    const FILE_ROUTE: &str = "[[routes]]\nname = \"file\"\nsource = \"a\"\ntarget = \"b\"\ntopics = [\"f\"]\n";

    #[test]
    fn added_and_deleted_routes_apply_on_top_of_the_config_file() {
        let mut state = ApiState::default();
        state.record_added(
            "api",
            json!({"name": "api", "source": "a", "target": "b", "topics": ["x"]}),
        );
        state.record_deleted("file", true);
        let merged = state.apply(&config(FILE_ROUTE)).unwrap();
        let names: Vec<String> = merged.routes.iter().map(|r| merged.route_name(r)).collect();
        assert_eq!(names, ["api"]);
        assert_eq!(merged.route_configs()[0].include, ["x"]);
        // Deleting the API route leaves no trace of it; the file route stays deleted.
        state.record_deleted("api", false);
        assert!(state.apply(&config(FILE_ROUTE)).unwrap().routes.is_empty());
        assert_eq!(state.deleted.iter().collect::<Vec<_>>(), ["file"]);
    }

    #[test]
    fn a_collision_with_the_config_file_is_an_error() {
        let mut state = ApiState::default();
        state.record_added(
            "file",
            json!({"name": "file", "source": "a", "target": "b", "topics": ["x"]}),
        );
        let err = state.apply(&config(FILE_ROUTE)).unwrap_err();
        assert!(err.contains("duplicate route name 'file'"), "{err}");
        let mut state = ApiState::default();
        state.record_added(
            "back",
            json!({"name": "back", "source": "b", "target": "a", "topics": ["f"]}),
        );
        let err = state.apply(&config(FILE_ROUTE)).unwrap_err();
        assert!(err.contains("replication cycle"), "{err}");
        let mut state = ApiState::default();
        state.record_added(
            "bad",
            json!({"name": "bad", "source": "a", "target": "b", "topix": ["f"]}),
        );
        let err = state.apply(&config(FILE_ROUTE)).unwrap_err();
        assert!(err.contains("topix"), "{err}");
    }

    #[test]
    fn pauses_are_recorded_and_cleared() {
        let mut state = ApiState::default();
        state.record_paused("r", None, true);
        state.record_paused("r", Some("t"), true);
        assert_eq!(state.paused["r"].topics.len(), 1);
        state.record_paused("r", None, false);
        assert!(!state.paused["r"].route);
        state.record_paused("r", Some("t"), false);
        assert!(state.is_empty(), "{state:?}");
        state.record_paused("r", None, true);
        state.record_deleted("r", false);
        assert!(state.is_empty(), "{state:?}");
    }

    #[test]
    fn the_file_round_trips_and_is_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("kferry-api-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DEFAULT_FILE);
        let _ = std::fs::remove_file(&path);
        assert_eq!(ApiState::load(&path).unwrap(), ApiState::default());
        let mut state = ApiState::default();
        state.record_added(
            "api",
            json!({"name": "api", "source": "a", "target": "b", "topics": ["x"]}),
        );
        state.record_paused("api", Some("x"), true);
        state.save(&path).unwrap();
        assert_eq!(ApiState::load(&path).unwrap(), state);
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, "{\"addded\": []}").unwrap();
        assert!(ApiState::load(&path).unwrap_err().contains("addded"));
    }
}
