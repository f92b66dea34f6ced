//! Prints a daemon's JSON answer as an operator reads it: each list of
//! records as an aligned table under its name, other values as
//! `name: value` lines. Address/port objects print as `ip:port`.

use serde_json::Value;

/// The text for `data` (an object of named sections).
pub fn render(data: &Value) -> String {
    let mut out = String::new();
    match data {
        Value::Object(m) => {
            for (name, v) in m {
                section(&mut out, name, v);
            }
        }
        other => {
            out.push_str(&cell(other));
            out.push('\n');
        }
    }
    out
}

fn section(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Array(rows) if rows.iter().all(Value::is_object) => {
            out.push_str(&format!("{name} ({}):\n", rows.len()));
            table(out, rows);
            out.push('\n');
        }
        other => out.push_str(&format!("{name}: {}\n", cell(other))),
    }
}

/// One value as a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => match (m.get("ip"), m.get("port")) {
            (Some(ip), Some(port)) if m.len() == 2 => format!("{}:{}", cell(ip), cell(port)),
            _ => m
                .iter()
                .map(|(k, v)| format!("{k}={}", cell(v)))
                .collect::<Vec<_>>()
                .join(" "),
        },
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn table(out: &mut String, rows: &[Value]) {
    // Columns in first-seen order across all rows (optional fields included).
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        if let Value::Object(m) = r {
            for k in m.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| r.get(c).map_or_else(|| "-".into(), cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, vals: &[String]| {
        let parts: Vec<String> = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(
        out,
        &cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
    );
    for r in &cells {
        line(out, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_become_aligned_tables_and_endpoints_ip_port() {
        let data = json!({
            "translations": [
                { "proto": "tcp", "inside": { "ip": "10.6.1.2", "port": 40000 }, "state": "established" },
                { "proto": "udp", "inside": { "ip": "10.6.1.20", "port": 53 } }
            ],
            "total": 2
        });
        let text = render(&data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "translations (2):");
        assert_eq!(lines[1], "PROTO  INSIDE          STATE");
        assert_eq!(lines[2], "tcp    10.6.1.2:40000  established");
        assert_eq!(lines[3], "udp    10.6.1.20:53    -");
        assert!(text.contains("total: 2"));
    }
}
