//! The text table of `kferry status`: one row per partition and a total line per route.

use super::{route_total, StatusRow};

/// Column headings; numbers are right-aligned.
const HEADINGS: [&str; 10] = [
    "ROUTE",
    "TOPIC",
    "PARTITION",
    "REPLICATED",
    "END",
    "LAG",
    "TIME LAG",
    "BYTES BEHIND",
    "RETENTION MARGIN",
    "STATE",
];
/// Which columns are left-aligned (text); the others are right-aligned.
const LEFT: [bool; 10] = [true, true, false, false, false, false, false, false, false, true];

/// A duration in ms, short: `0s`, `4.2s`, `3m10s`, `2h05m`, `3d04h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    match secs {
        0..=59 => {
            let s = format!("{:.1}", ms as f64 / 1000.0);
            format!("{}s", s.strip_suffix(".0").unwrap_or(&s))
        }
        60..=3599 => format!("{}m{}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A byte count, short and binary: `812 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An estimate: `~` and the bytes, `0 B` exactly for nothing, `?` when unknown.
fn estimate(bytes: Option<u64>) -> String {
    match bytes {
        Some(0) => "0 B".to_string(),
        Some(b) => format!("~{}", human_bytes(b)),
        None => "?".to_string(),
    }
}

/// The cells of one row.
fn cells(r: &StatusRow) -> [String; 10] {
    let margin = match (r.retention_margin, r.lost) {
        (_, Some(lost)) => format!("{lost} lost"),
        (Some(m), _) => match r.retention_margin_bytes {
            Some(b) if m > 0 => format!("{m} ({})", estimate(Some(b))),
            _ => m.to_string(),
        },
        (None, None) => "-".to_string(),
    };
    [
        r.route.clone(),
        r.topic.clone(),
        r.partition.to_string(),
        r.replicated.map_or_else(|| "-".to_string(), |o| o.to_string()),
        r.end.to_string(),
        r.lag.to_string(),
        r.time_lag_ms.map_or_else(|| "-".to_string(), human_duration),
        estimate(r.bytes_behind),
        margin,
        r.state.name().to_string(),
    ]
}

/// The total line of a route.
fn total_cells(route: &str, rows: &[StatusRow]) -> [String; 10] {
    let t = route_total(route, rows);
    [
        t.route,
        format!("total ({} partitions)", t.partitions),
        String::new(),
        String::new(),
        String::new(),
        t.lag.to_string(),
        t.max_time_lag_ms.map_or_else(|| "-".to_string(), human_duration),
        estimate(Some(t.bytes_behind)),
        t.min_retention_margin
            .map_or_else(|| "-".to_string(), |m| format!("min {m}")),
        t.worst.map_or("-", |s| s.name()).to_string(),
    ]
}

/// Renders `rows` (grouped by route, in order) as an aligned text table, each route followed
/// by its total line.
pub fn render(rows: &[StatusRow]) -> String {
    let mut lines: Vec<[String; 10]> = vec![HEADINGS.map(String::from)];
    let mut i = 0;
    while i < rows.len() {
        let route = rows[i].route.as_str();
        let n = rows[i..].iter().take_while(|r| r.route == route).count();
        lines.extend(rows[i..i + n].iter().map(cells));
        lines.push(total_cells(route, &rows[i..i + n]));
        i += n;
    }
    let widths: Vec<usize> = (0..HEADINGS.len())
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c > 0 {
                text.push_str("  ");
            }
            match LEFT[c] {
                true => text.push_str(&format!("{cell:<w$}", w = widths[c])),
                false => text.push_str(&format!("{cell:>w$}", w = widths[c])),
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}
