//! docs/grafana-dashboard.json: valid JSON, templated on route and topic, every query valid
//! PromQL (`promtool check rules` parses them) over metrics docs/metrics.md documents, and
//! every kind of metric issue 6 asks for on some panel.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn dashboard() -> Value {
    serde_json::from_str(&read("docs/grafana-dashboard.json")).expect("the dashboard is JSON")
}

/// Every panel, rows' nested panels included.
fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().expect("panels") {
        out.push(p);
        out.extend(panels_of_row(p));
    }
    out
}

fn panels_of_row(p: &Value) -> Vec<&Value> {
    p["panels"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// Every PromQL expression of the panels.
fn exprs(d: &Value) -> Vec<String> {
    panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().expect("a target has an expr").to_string())
        .collect()
}

/// `kferry_*` names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("kferry_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// Families documented in a table row of docs/metrics.md (`| `name` | type | ...`), with
/// their type.
fn documented() -> Vec<(String, String)> {
    read("docs/metrics.md")
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix("`kferry_")?.strip_suffix('`')?;
            Some((format!("kferry_{name}"), cells.get(2)?.to_string()))
        })
        .collect()
}

/// A name used in a query is a documented family, or a histogram's or summary's
/// `_bucket`/`_sum`/`_count` series of one.
fn is_documented(name: &str, docs: &[(String, String)]) -> bool {
    docs.iter().any(|(family, kind)| {
        name == family
            || match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")),
                "summary" => ["_sum", "_count"].iter().any(|s| name == format!("{family}{s}")),
                _ => false,
            }
    })
}

#[test]
fn dashboard_queries_use_documented_metrics() {
    let d = dashboard();
    let docs = documented();
    assert!(docs.len() >= 25, "docs/metrics.md tables: {docs:?}");
    let exprs = exprs(&d);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no kferry metric in {expr}");
        for name in names {
            assert!(
                is_documented(&name, &docs),
                "{name} (in {expr}) is not in docs/metrics.md"
            );
            used.insert(name);
        }
    }
    for wanted in [
        "kferry_records_out_total",
        "kferry_bytes_out_total",
        "kferry_path_bytes_total",
        "kferry_offset_lag",
        "kferry_time_lag_seconds",
        "kferry_bytes_behind",
        "kferry_replication_latency_seconds_bucket",
        "kferry_heartbeat_latency_seconds",
        "kferry_errors_total",
        "kferry_request_latency_seconds_bucket",
        "kferry_route_buffered_bytes",
    ] {
        assert!(used.contains(wanted), "no panel shows {wanted}");
    }
}

#[test]
fn dashboard_is_templated_on_route_and_topic() {
    let d = dashboard();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in ["datasource", "route", "topic"] {
        assert!(vars.contains(&name), "no ${name} variable: {vars:?}");
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            for name in metric_names(q) {
                assert!(is_documented(&name, &documented()), "variable query uses {name}");
            }
        }
    }
    let exprs = exprs(&d);
    assert!(exprs.iter().any(|e| e.contains("topic=~\"$topic\"")));
    assert!(exprs.iter().filter(|e| e.contains("route=~\"$route\"")).count() >= 10);
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        assert!(ids.insert(p["id"].as_i64().expect("panel id")), "duplicate panel id");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}

/// Every expression, with Grafana's variables replaced, as a recording rule: `promtool check
/// rules` parses the PromQL.
#[test]
fn dashboard_queries_are_valid_promql() {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs(&dashboard()).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$route", ".*")
            .replace("$topic", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let path = std::env::temp_dir().join(format!("kferry-dashboard-rules-{}.yml", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = match Command::new("promtool").arg("check").arg("rules").arg(&path).output() {
        Ok(out) => out,
        Err(_) => {
            // scripts/install-test-deps.sh installs it; CI must not pass without the check.
            assert!(std::env::var_os("CI").is_none(), "promtool is not installed");
            eprintln!("promtool not found: skipping the PromQL check");
            return;
        }
    };
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
