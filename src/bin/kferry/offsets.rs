//! `kferry offsets translate`: a consumer group's committed source offsets, translated to the
//! target with the route's persisted offset maps. Reads only Kafka (the offset-map topic on
//! the target, the group's offsets on the source); no kferry needs to be running.

use std::path::PathBuf;

use clap::Subcommand;
use kferry::config::Config;
use kferry::offsets::{translate_group, GroupOffset, MapTopic, OffsetMaps};
use kferry::wire::Cluster;

use crate::CliError;

#[derive(Subcommand)]
pub enum OffsetsCommand {
    /// Print, per partition, a group's committed source offset and its target offset.
    Translate {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The route (its `name`, or `<source>-to-<target>`).
        #[arg(long)]
        route: String,
        /// The consumer group on the source cluster.
        #[arg(long)]
        group: String,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn offsets(command: OffsetsCommand) -> Result<(), CliError> {
    match command {
        OffsetsCommand::Translate {
            config,
            route,
            group,
            json,
        } => translate(&config, &route, &group, json).await,
    }
}

async fn translate(path: &std::path::Path, route: &str, group: &str, json: bool) -> Result<(), CliError> {
    let config = Config::load(path).map_err(CliError::usage)?;
    let routes = config.route_configs();
    let Some(rc) = routes.iter().find(|r| r.name == route) else {
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "no route '{route}' in {} (routes: {names:?})",
            path.display()
        )));
    };
    let cluster = |name: &str| {
        config
            .cluster_configs()
            .into_iter()
            .find(|c| c.name == name)
            .map(Cluster::new)
            .ok_or_else(|| CliError::usage(format!("unknown cluster '{name}'")))
    };
    let (source, target) = (cluster(&rc.source)?, std::sync::Arc::new(cluster(&rc.target)?));
    let failed = |e: kferry::WireError| CliError::failed(format!("route '{route}': {e}"));
    let meta = source.refresh_metadata(None).await.map_err(failed)?;
    let filter = rc.topic_filter().map_err(CliError::usage)?;
    let topics = filter.select(meta.topics.values().filter(|t| !t.internal).map(|t| &t.name));
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| meta.topics[t].partitions.iter().map(move |p| (t.clone(), p.partition)))
        .collect();
    let map_topic = MapTopic {
        target,
        topic: rc.offset_map_topic.clone(),
        route: rc.name.clone(),
        source_cluster: rc.source.clone(),
    };
    let maps = OffsetMaps::from_maps(map_topic.load().await.map_err(failed)?);
    let rows = translate_group(&source, group, &partitions, &maps)
        .await
        .map_err(failed)?;
    match json {
        true => println!("{}", to_json(route, group, &rows)),
        false => print_table(&rows),
    }
    Ok(())
}

fn to_json(route: &str, group: &str, rows: &[GroupOffset]) -> serde_json::Value {
    let partitions: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "topic": r.topic,
                "partition": r.partition,
                "source_offset": r.source_offset,
                "target_offset": r.translation.target(),
                "exact": r.translation.is_exact(),
                "kind": r.kind(),
                "translation": r.translation,
            })
        })
        .collect();
    serde_json::json!({ "route": route, "group": group, "partitions": partitions })
}

fn print_table(rows: &[GroupOffset]) {
    if rows.is_empty() {
        println!("(the group has no committed offset on the route's topics)");
        return;
    }
    let width = rows.iter().map(|r| r.topic.len()).max().unwrap_or(5).max(5);
    println!("{:width$}  PARTITION  SOURCE-OFFSET  TARGET-OFFSET  KIND", "TOPIC");
    for r in rows {
        let target = r.translation.target().map_or("-".to_string(), |t| t.to_string());
        println!(
            "{:width$}  {:>9}  {:>13}  {:>13}  {}",
            r.topic,
            r.partition,
            r.source_offset,
            target,
            r.kind()
        );
    }
}
