//! `kferry status`: each partition's lag behind its source, read from the clusters (works
//! whether or not a kferry daemon is running).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kferry::config::Config;
use kferry::replicate::status::{read::read_route, table, StatusRow};
use kferry::wire::Cluster;

use crate::CliError;

/// Prints the status of every route of the config (or of `route`), as a table or as one
/// JSON array of rows.
pub async fn status(path: &Path, route: Option<&str>, json: bool) -> Result<(), CliError> {
    let config = Config::load(path).map_err(CliError::usage)?;
    let mut routes = config.route_configs();
    if let Some(name) = route {
        if !routes.iter().any(|r| r.name == name) {
            let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
            return Err(CliError::usage(format!(
                "unknown route '{name}'; {} has: {}",
                path.display(),
                names.join(", ")
            )));
        }
        routes.retain(|r| r.name == name);
    }
    let clusters: HashMap<String, Arc<Cluster>> = config
        .cluster_configs()
        .into_iter()
        .map(|c| (c.name.clone(), Arc::new(Cluster::new(c))))
        .collect();
    let cluster = |name: &str| {
        clusters
            .get(name)
            .cloned()
            .ok_or_else(|| CliError::usage(format!("unknown cluster '{name}'")))
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut rows: Vec<StatusRow> = Vec::new();
    let mut empty = Vec::new();
    for r in &routes {
        let (source, target) = (cluster(&r.source)?, cluster(&r.target)?);
        let route_rows = read_route(r, source, &target, now_ms).await.map_err(CliError::failed)?;
        if route_rows.is_empty() {
            empty.push(format!(
                "route '{}': no topic on '{}' matches {:?}",
                r.name, r.source, r.include
            ));
        }
        rows.extend(route_rows);
    }
    if json {
        let text = serde_json::to_string_pretty(&rows).map_err(CliError::failed)?;
        println!("{text}");
        return Ok(());
    }
    print!("{}", table::render(&rows));
    for line in empty {
        println!("{line}");
    }
    Ok(())
}
