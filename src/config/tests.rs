//! Tests of config loading and validation.
use super::*;

fn load_str(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("kferry-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A file per call: tests run in parallel and their texts may have the same length.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{n}-{}.toml", text.len()));
    std::fs::write(&path, text).unwrap();
    Config::load(&path)
}

const GOOD: &str = r#"
[clusters.a]
"bootstrap.servers" = "127.0.0.1:9092"
[clusters.b]
"bootstrap.servers" = "127.0.0.1:9093, 127.0.0.1:9094"
[[routes]]
source = "a"
target = "b"
topics = ["orders.*"]
"#;

fn two_way(a_topics: &str, b_topics: &str) -> String {
    format!(
        "[clusters.a]\n\"bootstrap.servers\" = \"h:1\"\n[clusters.b]\n\"bootstrap.servers\" = \"h:2\"\n\
         [clusters.c]\n\"bootstrap.servers\" = \"h:3\"\n\
         [[routes]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [{a_topics}]\n\
         [[routes]]\nsource = \"b\"\ntarget = \"c\"\ntopics = [{b_topics}]\n\
         [[routes]]\nsource = \"c\"\ntarget = \"a\"\ntopics = [\".*\"]\n"
    )
}

#[test]
fn a_replication_cycle_is_refused_and_named() {
    let err = load_str(&two_way("\"orders\"", "\"orders\", \"payments\"")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("replication cycle"), "{text}");
    assert!(
        text.contains("route 'a-to-b' (a -> b), then route 'b-to-c' (b -> c), then route 'c-to-a' (c -> a)"),
        "{text}"
    );
    assert!(
        text.contains("topic 'orders' would be copied back to cluster 'a'"),
        "{text}"
    );
    // Patterns only: a shared topic cannot be ruled out.
    let err = load_str(&two_way("\"orders.*\"", "\".*\"")).unwrap_err();
    assert!(err.to_string().contains("could select the same topic"), "{err}");
}

#[test]
fn routes_that_never_share_a_topic_are_no_cycle() {
    // a -> b copies 'orders', b -> c copies only 'payments': nothing goes around.
    load_str(&two_way("\"orders\"", "\"payments\"")).unwrap();
    // An exclude that removes the only shared name also breaks the cycle.
    let text = two_way("\"orders\"", "\".*\"").replace(
        "topics = [\".*\"]\n[[routes]]\nsource = \"c\"",
        "topics = [\".*\"]\n\"topics.exclude\" = [\"orders\"]\n[[routes]]\nsource = \"c\"",
    );
    load_str(&text).unwrap();
}

fn active_active(a_to_b: &str, b_to_a: &str) -> String {
    format!(
        "[clusters.a]\n\"bootstrap.servers\" = \"h:1\"\n[clusters.b]\n\"bootstrap.servers\" = \"h:2\"\n\
         [[routes]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\".*\"]\n{a_to_b}\n\
         [[routes]]\nsource = \"b\"\ntarget = \"a\"\ntopics = [\".*\"]\n{b_to_a}\n"
    )
}

#[test]
fn prefix_routes_both_ways_are_no_cycle_identity_ones_are() {
    let prefix = "\"rename.policy\" = \"prefix\"";
    let config = load_str(&active_active(prefix, prefix)).unwrap();
    let routes = config.route_configs();
    assert_eq!(routes[0].topic_rename().target_topic("orders").unwrap(), "a.orders");
    assert_eq!(routes[1].topic_rename().target_topic("orders").unwrap(), "b.orders");
    // One prefixing route is enough to stop names going around.
    load_str(&active_active(prefix, "")).unwrap();
    let template = "\"rename.policy\" = \"template\"\n\"rename.template\" = \"agg.{source}.{topic}\"";
    load_str(&active_active(template, "")).unwrap();
    // Identity both ways: every record would go around forever.
    let err = load_str(&active_active("", "")).unwrap_err().to_string();
    assert!(err.contains("replication cycle"), "{err}");
    // A rename without the alias grows names forever (agg.agg.orders...): still a cycle.
    let grows = "\"rename.policy\" = \"template\"\n\"rename.template\" = \"agg.{topic}\"";
    let err = load_str(&active_active(grows, "")).unwrap_err().to_string();
    assert!(err.contains("replication cycle"), "{err}");
}

#[test]
fn rename_and_topic_sync_keys_parse_and_validate() {
    let text = GOOD.replace(
        "topics = [\"orders.*\"]",
        "topics = [\"orders.*\"]\n\"rename.policy\" = \"prefix\"\n\"rename.separator\" = \"-\"\n\
         \"metadata.max.age.ms\" = 1000\n\"sync.topic.configs.interval.seconds\" = 5\n\
         \"config.properties.exclude\" = [\"retention\\\\..*\"]\n\"replication.factor\" = 3",
    );
    let route = load_str(&text).unwrap().route_configs().remove(0);
    assert_eq!(route.topic_rename().target_topic("orders").unwrap(), "a-orders");
    assert_eq!(route.metadata_max_age, Duration::from_secs(1));
    assert_eq!(route.sync_topic_configs, Some(Duration::from_secs(5)));
    assert_eq!(route.config_exclude, vec!["retention\\..*".to_string()]);
    assert_eq!(route.replication_factor, 3);
    let defaults = load_str(GOOD).unwrap().route_configs().remove(0);
    assert_eq!(defaults.rename, RenamePolicy::Identity);
    assert_eq!(defaults.metadata_max_age, Duration::from_secs(300));
    assert_eq!(defaults.replication_factor, -1);
    for (bad, key) in [
        ("\"rename.policy\" = \"mirror\"", "rename.policy"),
        ("\"rename.policy\" = \"template\"", "rename.policy"),
        ("\"replication.factor\" = 0", "replication.factor"),
        ("\"metadata.max.age.ms\" = 0", "metadata.max.age.ms"),
        ("\"config.properties.exclude\" = [\"(\"]", "config.properties.exclude"),
    ] {
        let text = GOOD.replace("topics = [\"orders.*\"]", &format!("topics = [\"orders.*\"]\n{bad}"));
        let err = load_str(&text).unwrap_err();
        assert!(err.to_string().contains(&format!("routes[0].{key}")), "{bad}: {err}");
    }
}

#[test]
fn sizes_take_units() {
    assert_eq!(parse_bytes("268435456"), Ok(268_435_456));
    assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
    assert_eq!(parse_bytes("1.5 GB"), Ok(1_500_000_000));
    assert_eq!(parse_bytes("64kib"), Ok(64 << 10));
    assert!(parse_bytes("12 parsecs").unwrap_err().contains("unknown unit"));
    assert!(parse_bytes("MiB").is_err());
}

#[test]
fn metrics_address_is_a_top_level_host_port() {
    let c = load_str(&format!("\"metrics.address\" = \"127.0.0.1:9464\"\n{GOOD}")).unwrap();
    assert_eq!(c.metrics_address.as_deref(), Some("127.0.0.1:9464"));
    assert_eq!(load_str(GOOD).unwrap().metrics_address, None);
    let err = load_str(&format!("\"metrics.address\" = \"9464\"\n{GOOD}")).unwrap_err();
    assert!(err.to_string().contains("metrics.address"), "{err}");
}

#[test]
fn api_keys_are_top_level_and_allow_a_file_without_routes() {
    let text =
        "\"api.address\" = \"127.0.0.1:9470\"\n\"api.token\" = \"s3cret\"\n\"api.state.file\" = \"state.json\"\n";
    let c = load_str(&format!("{text}{GOOD}")).unwrap();
    assert_eq!(c.api_address.as_deref(), Some("127.0.0.1:9470"));
    assert_eq!(c.api_token.as_deref(), Some("s3cret"));
    assert_eq!(c.api_state_file.as_deref(), Some(Path::new("state.json")));
    let clusters_only = GOOD.split("[[routes]]").next().unwrap();
    let c = load_str(&format!("{text}{clusters_only}")).unwrap();
    assert!(c.routes.is_empty());
    let e = load_str(clusters_only).unwrap_err();
    assert_eq!(e.key, "routes");
    let e = load_str(&format!("\"api.address\" = \"nowhere\"\n{GOOD}")).unwrap_err();
    assert_eq!(e.key, "api.address");
}

#[test]
fn heartbeats_are_on_by_default_and_configurable() {
    let h = load_str(GOOD).unwrap().heartbeat_config().unwrap();
    assert_eq!(h.topic, "heartbeats");
    assert_eq!(h.interval, Duration::from_secs(1));
    let text = format!("\"heartbeats.topic\" = \"kferry.hb\"\n\"heartbeats.interval.ms\" = 250\n{GOOD}");
    let h = load_str(&text).unwrap().heartbeat_config().unwrap();
    assert_eq!(
        (h.topic.as_str(), h.interval),
        ("kferry.hb", Duration::from_millis(250))
    );
    let off = load_str(&format!("\"heartbeats.enabled\" = false\n{GOOD}")).unwrap();
    assert_eq!(off.heartbeat_config(), None);
    let e = load_str(&format!("\"heartbeats.interval.ms\" = 0\n{GOOD}")).unwrap_err();
    assert_eq!(e.key, "heartbeats.interval.ms");
    for bad in ["", "a b", "__hb", "."] {
        let e = load_str(&format!("\"heartbeats.topic\" = \"{bad}\"\n{GOOD}")).unwrap_err();
        assert_eq!(e.key, "heartbeats.topic", "{bad:?}");
    }
    let e = load_str(&format!("\"heartbeats.enabled\" = \"yes\"\n{GOOD}")).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn memory_caps_per_route_and_for_the_process() {
    let text = format!("\"buffer.memory\" = \"512MiB\"\n{GOOD}\"buffer.memory\" = \"64MiB\"\n[[routes]]\nname = \"second\"\nsource = \"b\"\ntarget = \"a\"\ntopics = [\"x\"]\n\"buffer.memory\" = 33554432\n");
    let c = load_str(&text).unwrap();
    assert_eq!(c.buffer_memory, Some(512 << 20));
    let routes = c.route_configs();
    assert_eq!(routes[0].buffer_memory, 64 << 20);
    assert_eq!(routes[1].buffer_memory, 32 << 20);
    let (a, b) = (
        routes[0].process_memory_cap.as_ref(),
        routes[1].process_memory_cap.as_ref(),
    );
    assert_eq!(a.map(|c| c.bytes()), Some(512 << 20));
    assert_eq!(b.map(|c| c.bytes()), Some(512 << 20));
    assert!(load_str(GOOD).unwrap().route_configs()[0].process_memory_cap.is_none());
    let bad = load_str(&format!("{GOOD}\"buffer.memory\" = \"lots\"\n")).unwrap_err();
    assert!(bad.to_string().contains("lots"), "{bad}");
}

#[test]
fn offset_map_topic_has_a_default_and_must_not_be_empty() {
    assert_eq!(
        load_str(GOOD).unwrap().route_configs()[0].offset_map_topic,
        "kferry-offset-maps"
    );
    let named = load_str(&format!("{GOOD}\"offset.map.topic\" = \"route-maps\"\n")).unwrap();
    assert_eq!(named.route_configs()[0].offset_map_topic, "route-maps");
    let e = load_str(&format!("{GOOD}\"offset.map.topic\" = \"\"\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].offset.map.topic");
}

#[test]
fn good_config_loads_with_defaults() {
    let c = load_str(GOOD).unwrap();
    let routes = c.route_configs();
    assert_eq!(routes[0].name, "a-to-b");
    assert_eq!(routes[0].group_id, "kferry-a-to-b");
    assert_eq!(c.cluster_configs()[1].bootstrap_servers.len(), 2);
    assert_eq!(c.cluster_configs()[0].client_rack, "", "no rack: fetch from leaders");
    let racked = GOOD.replace("[clusters.b]", "\"client.rack\" = \"use1-az1\"\n[clusters.b]");
    assert_eq!(load_str(&racked).unwrap().cluster_configs()[0].client_rack, "use1-az1");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = load_str(&GOOD.replace("topics = [", "topix = 1\ntopics = [")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("config file"), "{msg}");
    assert!(msg.contains("topix"), "{msg}");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn unknown_cluster_is_named() {
    let e = load_str(&GOOD.replace("target = \"b\"", "target = \"c\"")).unwrap_err();
    assert_eq!(e.key, "routes[0].target");
    assert!(e.message.contains("unknown cluster 'c'"), "{}", e.message);
}

#[test]
fn self_loop_and_out_of_range_values_are_rejected() {
    let e = load_str(&GOOD.replace("target = \"b\"", "target = \"a\"")).unwrap_err();
    assert_eq!(e.key, "routes[0].target");
    let e = load_str(&format!("{GOOD}\"fetch.max.bytes\" = 4294967295\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].fetch.max.bytes");
    let e = load_str(&format!("{GOOD}\"commit.interval.ms\" = 0\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].commit.interval.ms");
    let e = load_str(&format!("{GOOD}\"fetch.max.wait.ms\" = 40000\n")).unwrap_err();
    assert_eq!(e.key, "clusters.a.request.timeout.ms");
}

#[test]
fn slow_path_options_parse() {
    let c = load_str(&format!(
        "{GOOD}compression = \"zstd\"\noversize = \"fail\"\n\"corrupt.batch\" = \"skip\"\n"
    ))
    .unwrap();
    let r = &c.route_configs()[0];
    assert_eq!(r.compression, Some(Compression::Zstd));
    assert_eq!(r.oversize, OversizePolicy::Fail);
    assert_eq!(r.corrupt, CorruptPolicy::Skip);
    assert!(r.check_crcs);
    let e = load_str(&format!("{GOOD}compression = \"brotli\"\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].compression");
}

#[test]
fn byte_rate_limit_takes_units() {
    assert_eq!(load_str(GOOD).unwrap().route_configs()[0].byte_rate_limit, None);
    let c = load_str(&format!("{GOOD}\"byte.rate.limit\" = \"10MiB\"\n")).unwrap();
    assert_eq!(c.route_configs()[0].byte_rate_limit, Some(10 << 20));
    let e = load_str(&format!("{GOOD}\"byte.rate.limit\" = 0\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].byte.rate.limit");
}

#[test]
fn on_data_loss_parses() {
    assert_eq!(
        load_str(GOOD).unwrap().route_configs()[0].on_data_loss,
        DataLossPolicy::Fail
    );
    let c = load_str(&format!("{GOOD}\"on.data.loss\" = \"resume-earliest\"\n")).unwrap();
    assert_eq!(c.route_configs()[0].on_data_loss, DataLossPolicy::ResumeEarliest);
    let e = load_str(&format!("{GOOD}\"on.data.loss\" = \"skip\"\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].on.data.loss");
}

#[test]
fn group_offset_sync_keys() {
    let r = &load_str(GOOD).unwrap().route_configs()[0];
    assert_eq!(r.group_sync, GroupSyncConfig::default());
    assert!(!r.group_sync.enabled);
    let text = format!(
        "{GOOD}\"sync.group.offsets.enabled\" = true\n\"sync.group.offsets.interval.ms\" = 500\n\
         groups = [\"app-.*\"]\n\"groups.exclude\" = [\"app-test\"]\n\"sync.group.offsets.allow.rewind\" = true\n"
    );
    let r = &load_str(&text).unwrap().route_configs()[0];
    let expected = GroupSyncConfig {
        enabled: true,
        interval: Duration::from_millis(500),
        groups: vec!["app-.*".to_string()],
        groups_exclude: vec!["app-test".to_string()],
        allow_rewind: true,
    };
    assert_eq!(r.group_sync, expected);
    let e = load_str(&format!("{GOOD}groups = [\"app(\"]\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].groups");
    let e = load_str(&format!("{GOOD}\"sync.group.offsets.interval.ms\" = 0\n")).unwrap_err();
    assert_eq!(e.key, "routes[0].sync.group.offsets.interval.ms");
    let by_key = format!("{GOOD}\"sync.group.offsets.enabled\" = true\n\"partition.mapping\" = \"by-key\"\n");
    assert_eq!(
        load_str(&by_key).unwrap_err().key,
        "routes[0].sync.group.offsets.enabled"
    );
}

#[test]
fn bad_regex_and_servers_are_rejected() {
    let e = load_str(&GOOD.replace("orders.*", "orders(")).unwrap_err();
    assert_eq!(e.key, "routes[0].topics");
    let e = load_str(&GOOD.replace("127.0.0.1:9092", "nohost")).unwrap_err();
    assert_eq!(e.key, "clusters.a.bootstrap.servers");
}
