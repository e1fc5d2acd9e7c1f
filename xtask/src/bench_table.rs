//! Renders criterion's saved estimates (`target/criterion/**/new/estimates.json`) as a
//! Markdown table: benchmark, median time, and throughput when the benchmark declared one.

use std::fs;
use std::path::Path;

use serde_json::Value;

/// One row: the benchmark id, its median in nanoseconds, and its throughput if declared.
#[derive(Debug, PartialEq)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) median_ns: f64,
    pub(crate) throughput: Option<String>,
}

pub(crate) fn render(dir: &Path) -> Result<String, String> {
    let mut rows = Vec::new();
    collect(dir, dir, &mut rows)?;
    if rows.is_empty() {
        return Err(format!("no criterion results under {}", dir.display()));
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = String::from("| benchmark | median | throughput |\n|---|---:|---:|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.id,
            human_time(r.median_ns),
            r.throughput.as_deref().unwrap_or("")
        ));
    }
    Ok(out)
}

fn collect(base: &Path, dir: &Path, rows: &mut Vec<Row>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || path.file_name().is_some_and(|n| n == "report") {
            continue;
        }
        let estimates = path.join("new").join("estimates.json");
        if estimates.is_file() {
            let id = path
                .strip_prefix(base)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if let Some(row) = read_row(&id, &path.join("new"))? {
                rows.push(row);
            }
        } else {
            collect(base, &path, rows)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_row(id: &str, dir: &Path) -> Result<Option<Row>, String> {
    let est = read_json(&dir.join("estimates.json"))?;
    let Some(median_ns) = est["median"]["point_estimate"].as_f64() else {
        return Ok(None);
    };
    let bench = read_json(&dir.join("benchmark.json")).unwrap_or(Value::Null);
    Ok(Some(Row {
        id: id.to_owned(),
        median_ns,
        throughput: throughput(&bench["throughput"], median_ns),
    }))
}

fn throughput(t: &Value, median_ns: f64) -> Option<String> {
    if median_ns <= 0.0 {
        return None;
    }
    let per_sec = |n: f64| n / (median_ns / 1e9);
    if let Some(bytes) = t["Bytes"].as_f64().or_else(|| t["BytesDecimal"].as_f64()) {
        return Some(format!("{:.1} MB/s", per_sec(bytes) / 1e6));
    }
    t["Elements"]
        .as_f64()
        .map(|n| format!("{:.0} elem/s", per_sec(n)))
}

pub(crate) fn human_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_the_right_unit() {
        assert_eq!(human_time(12.0), "12.0 ns");
        assert_eq!(human_time(1_500.0), "1.50 µs");
        assert_eq!(human_time(2_000_000.0), "2.00 ms");
        assert_eq!(human_time(3e9), "3.00 s");
    }

    #[test]
    fn throughput_comes_from_the_declared_amount() {
        let bytes = serde_json::json!({"Bytes": 1_000_000});
        assert_eq!(throughput(&bytes, 1e9).as_deref(), Some("1.0 MB/s"));
        let elems = serde_json::json!({"Elements": 500});
        assert_eq!(throughput(&elems, 1e6).as_deref(), Some("500000 elem/s"));
        assert_eq!(throughput(&Value::Null, 1e6), None);
    }

    #[test]
    fn a_saved_result_tree_renders_as_a_table() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let new = dir.join("group").join("case").join("new");
        fs::create_dir_all(&new).unwrap();
        fs::write(
            new.join("estimates.json"),
            r#"{"median": {"point_estimate": 2500.0}}"#,
        )
        .unwrap();
        fs::write(
            new.join("benchmark.json"),
            r#"{"throughput": {"Elements": 10}}"#,
        )
        .unwrap();
        let table = render(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            table.contains("| group/case | 2.50 µs | 4000000 elem/s |"),
            "{table}"
        );
    }
}
