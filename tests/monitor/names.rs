//! Metric names in PromQL, in the dashboard and rules files, and in a
//! scrape: what the dashboard and the rules may name is what spimux exports.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `text` with the contents of its string literals ("...", '...', `...`) removed.
fn strip_strings(text: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(q) if c == '\\' && q != '`' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

/// Identifiers (`[A-Za-z_:][A-Za-z0-9_:]*`) of `text`; numbers and
/// durations (`0.8`, `5m`) are skipped whole.
pub fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        let ident = c.is_ascii_alphabetic() || c == '_' || c == ':';
        if ident || c.is_ascii_digit() {
            let mut word = String::new();
            while let Some(&d) = chars.peek() {
                let more = d.is_ascii_alphanumeric() || d == '_' || d == ':';
                if !(more || (!ident && d == '.')) {
                    break;
                }
                word.push(d);
                chars.next();
            }
            if ident {
                out.push(word);
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Metric names (`spimux_…`) and recording-rule names (`level:metric:ops`)
/// a PromQL expression refers to; label values and names are not among them.
pub fn promql_names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let ids = identifiers(&strip_strings(expr));
    let metrics = ids
        .iter()
        .filter(|i| i.starts_with("spimux_"))
        .cloned()
        .collect();
    let recorded = ids.into_iter().filter(|i| i.contains(':')).collect();
    (metrics, recorded)
}

/// Every query of a Grafana dashboard: panel targets (`expr`) and template
/// variable queries (`definition`, `query`).
pub fn dashboard_queries(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(dash, &mut out);
    out
}

fn walk(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => walk(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        _ => {}
    }
}

/// Metric families of a Prometheus text exposition: name → type.
pub fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// True when `name` is a family of `fams`, or a histogram's `_bucket`,
/// `_sum` or `_count` series.
pub fn exported(name: &str, fams: &BTreeMap<String, String>) -> bool {
    fams.contains_key(name)
        || ["_bucket", "_sum", "_count"].iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| fams.get(base).is_some_and(|t| t == "histogram"))
        })
}

/// Names recorded by `record:` lines of a rules file.
pub fn recorded(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn names_skip_labels_strings_numbers_and_variables() {
    let (m, r) = promql_names(
        r#"sum by (instance, reason) (rate(spimux_drops_total{instance=~"$router", reason!="spimux_x"}[$__rate_interval])) / on (job) group_left () instance:spimux_rx_packets:rate5m > 0.8e1 or histogram_quantile(0.9, rate(spimux_mobility_handover_seconds_bucket[5m]))"#,
    );
    let want: BTreeSet<String> = [
        "spimux_drops_total",
        "spimux_mobility_handover_seconds_bucket",
    ]
    .map(String::from)
    .into();
    assert_eq!(m, want);
    assert_eq!(r, ["instance:spimux_rx_packets:rate5m".to_string()].into());
    let fams = families(
        "# TYPE spimux_mobility_handover_seconds histogram\n# TYPE spimux_drops_total counter\n",
    );
    assert!(exported("spimux_mobility_handover_seconds_bucket", &fams));
    assert!(exported("spimux_drops_total", &fams));
    assert!(!exported("spimux_drops_total_count", &fams));
    assert!(!exported("spimux_drops", &fams));
}
