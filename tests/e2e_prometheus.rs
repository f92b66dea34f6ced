//! Prometheus for real (config/prometheus/, config/grafana/): promtool checks
//! and unit-tests the alert rules; in the namespace testbed, every metric the
//! Grafana dashboard and the rules name is in a live scrape of the router,
//! the responder and a client, and Debian's `prometheus`, run in a monitoring
//! namespace with config/prometheus/prometheus.yml, scrapes all three,
//! evaluates every rule and holds the values the daemons serve. Needs root
//! (the testbed) and promtool/prometheus (testbed/install-deps.sh); never
//! skipped in CI.

mod monitor;
mod support;

use monitor::names::*;
use monitor::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use support::endpoint::sa_label;
use support::*;

const RULES: &str = "config/prometheus/spimux.rules.yml";
const DASHBOARD: &str = "config/grafana/spimux.json";
/// The gateway's inner address (config/responder.toml).
const GW_INNER: &str = "10.99.0.1";
/// Echo requests sent through the tunnel and to the server.
const TUNNEL_PINGS: u32 = 20;
const PLAIN_PINGS: u32 = 5;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn promtool(args: &[&str]) -> String {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian package prometheus, testbed/install-deps.sh): {e}")
        });
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {args:?}:\n{out}");
    out
}

/// The rules file split into its alerting rules (name, text up to the next rule).
fn alerts(rules: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in rules.lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push((name.trim().to_string(), String::new()));
        } else if t.starts_with("- record:") || t.starts_with("- name:") {
            out.push((String::new(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(t);
            last.1.push('\n');
        }
    }
    out.retain(|a| !a.0.is_empty());
    out
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    assert!(promtool(&["check", "rules", RULES]).contains("SUCCESS"));
    let out = promtool(&["test", "rules", "config/prometheus/spimux.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    promtool(&["check", "config", "config/prometheus/prometheus.yml"]);
    // Every alert waits (`for:`), says how bad and what to check, and has a unit test.
    let tests = read("config/prometheus/spimux.rules.test.yml");
    let alerts = alerts(&read(RULES));
    assert!(alerts.len() >= 10, "alerts found: {alerts:?}");
    for (name, text) in &alerts {
        for key in ["for:", "severity:", "summary:", "description:"] {
            assert!(text.contains(key), "{name} has no {key}");
        }
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "{name}: no unit test that fires it"
        );
    }
}

/// Every `spimux_` metric the dashboard queries and the rules name is
/// exported by a daemon in `scrapes`; every recorded name they use is
/// recorded by the rules file. Returns the dashboard's panel expressions.
fn check_names(scrapes: &[(&str, String)]) -> Vec<String> {
    let fams: BTreeMap<String, String> = scrapes.iter().flat_map(|(_, s)| families(s)).collect();
    let rules = read(RULES);
    let recorded = recorded(&rules);
    let dash: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard is JSON");
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 40, "dashboard queries found: {queries:?}");
    let mut missing = Vec::new();
    let mut named = BTreeSet::new();
    for q in &queries {
        let (metrics, rec) = promql_names(q);
        assert!(
            !metrics.is_empty() || q.starts_with("up") || q == "prometheus",
            "dashboard query names no spimux metric: {q}"
        );
        for m in metrics.iter().filter(|m| !exported(m, &fams)) {
            missing.push(format!("dashboard: {m} (in {q})"));
        }
        for r in rec.iter().filter(|r| !recorded.contains(*r)) {
            missing.push(format!("dashboard: {r} is recorded by no rule (in {q})"));
        }
        named.extend(metrics);
    }
    for id in identifiers(&rules) {
        if id.starts_with("spimux_") && !exported(&id, &fams) {
            missing.push(format!("rules: {id}"));
        }
        if id.contains(":spimux_") && !recorded.contains(&id) {
            missing.push(format!("rules: {id} is recorded by no rule"));
        }
        if id.starts_with("spimux_") {
            named.insert(id);
        }
    }
    assert!(
        missing.is_empty(),
        "named but not exported by the router, responder or client:\n{}",
        missing.join("\n")
    );
    eprintln!(
        "dashboard and rules name {} spimux metrics, all exported ({} families scraped)",
        named.len(),
        fams.len()
    );
    queries
        .into_iter()
        .filter(|q| !q.starts_with("label_values(") && q != "prometheus")
        .collect()
}

/// The router's limit gauges equal config/router.toml (the testbed runs it as is).
fn check_limits(router: &str) {
    let cfg = toml::Value::Table(read("config/router.toml").parse().unwrap());
    let key = |path: &str| {
        path.split('.')
            .try_fold(&cfg, |v, k| v.get(k))
            .and_then(toml::Value::as_integer)
            .unwrap_or_else(|| panic!("config/router.toml has no {path}")) as f64
    };
    let ports = key("nat.port_max") - key("nat.port_min") + 1.0;
    for (sample, want) in [
        ("spimux_nat_sessions_limit", key("nat.limits.max_sessions")),
        ("spimux_nat_inside_hosts_limit", key("nat.limits.max_hosts")),
        (
            "spimux_nat_host_ports_limit",
            key("nat.limits.max_ports_per_host"),
        ),
        ("spimux_nat_ports_limit{protocol=\"udp\"}", ports),
        ("spimux_esp_bindings_limit", key("esp.max_bindings")),
        (
            "spimux_esp_responder_bindings_limit",
            key("esp.max_bindings_per_responder"),
        ),
        ("spimux_esp_recorded_spis_limit", key("esp.max_spis")),
    ] {
        assert_eq!(metric_in(router, sample), want, "{sample}");
    }
}

/// Waits until Prometheus holds exactly what `direct` reads from a daemon now
/// (the traffic is over, so both settle); returns the value.
fn settles(bed: &Bed, promql: &str, direct: impl Fn() -> f64) -> f64 {
    eventually(&format!("{promql} reaches the daemon's own value"), || {
        let want = direct();
        let seen = single(bed, promql)?;
        (seen == want)
            .then_some(seen)
            .ok_or(format!("prometheus {seen}, daemon {want}"))
    })
}

/// Every panel expression runs on the live Prometheus (variables set to
/// "all"); those without a comparison filter return series.
fn check_dashboard_live(bed: &Bed, exprs: &[String]) {
    let mut bad = Vec::new();
    for e in exprs {
        let q = e
            .replace("$router", ".*")
            .replace("$endpoint", ".*")
            .replace("$__rate_interval", "1m");
        match try_query(bed, &q) {
            Err(err) => bad.push(format!("{q}: {err}")),
            Ok(r) if r.is_empty() && !q.contains('>') && !q.contains("==") => {
                bad.push(format!("{q}: no series"))
            }
            Ok(_) => {}
        }
    }
    assert!(bad.is_empty(), "dashboard queries:\n{}", bad.join("\n"));
    // The template variables list the router and the two endpoints.
    for (label_of, want) in [
        ("spimux_workers", vec![format!("{}:9780", address("rt"))]),
        (
            "spimux_tun_rx_packets_total",
            vec![
                format!("{}:9782", address("h1")),
                format!("{}:9781", address("srv")),
            ],
        ),
    ] {
        let v = api(
            bed,
            "/api/v1/label/instance/values",
            &[("match[]", label_of)],
        )
        .unwrap();
        let got: Vec<String> = serde_json::from_value(v).unwrap();
        assert_eq!(got, want, "instances of {label_of}");
    }
}

/// `/api/v1/rules` lists both groups with every rule of the file, each
/// evaluated without error.
fn check_rules_loaded(bed: &Bed) {
    let rules = read(RULES);
    let count = rules
        .lines()
        .filter(|l| l.trim().starts_with("- record:") || l.trim().starts_with("- alert:"))
        .count();
    eventually("every rule evaluated with health ok", || {
        let data = api(bed, "/api/v1/rules", &[])?;
        let groups = data["groups"].as_array().cloned().unwrap_or_default();
        let names: BTreeSet<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
        if names != BTreeSet::from(["spimux-alerts", "spimux-recording"]) {
            return Err(format!("groups {names:?}"));
        }
        let all: Vec<&Value> = groups
            .iter()
            .filter_map(|g| g["rules"].as_array())
            .flatten()
            .collect();
        let unhealthy: Vec<String> = all
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        match (all.len() == count, unhealthy.is_empty()) {
            (true, true) => Ok(()),
            _ => Err(format!(
                "{} of {count} rules; not ok: {unhealthy:?}",
                all.len()
            )),
        }
    });
}

/// Packets `ping` reports received.
fn received(ping: &str) -> f64 {
    ping.split(',')
        .find_map(|p| p.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("ping summary: {ping}"))
}

#[test]
fn prometheus_scrapes_the_testbed_and_holds_the_daemons_values() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    let _net = Net::up(&bed, &["rt", "h1", "srv"]);
    bed.start_router("[metrics]\nlisten = \"0.0.0.0:9780\"\n");
    let mut d = Daemons::default();
    d.endpoint(&bed, "srv", "responder", "responder.toml", 9781);
    d.endpoint(&bed, "h1", "client", "client-h1.toml", 9782);
    let responder = || bed.try_metrics_of("srv", 9781).expect("responder metrics");
    let client = || bed.try_metrics_of("h1", 9782).expect("client metrics");
    eventually("the client installs its CHILD_SA", || {
        let n = metric_in(&client(), "spimux_ike_child_sas{state=\"installed\"}");
        (n >= 1.0).then_some(()).ok_or(format!("{n} installed"))
    });

    start(&bed, &mut d, &config(&bed));
    eventually(
        "up == 1 for the router, the responder and the client",
        || {
            let up: BTreeMap<String, f64> = query(&bed, "up")
                .iter()
                .map(|s| {
                    (
                        s["metric"]["job"].as_str().unwrap_or("").to_string(),
                        value(s),
                    )
                })
                .collect();
            let want: BTreeMap<String, f64> =
                ["spimux-client", "spimux-responder", "spimux-router"]
                    .map(|j| (j.to_string(), 1.0))
                    .into();
            (up == want).then_some(()).ok_or(format!("{up:?}"))
        },
    );

    // Traffic while Prometheus scrapes: through the tunnel (ESP through the
    // router's NAT) and plain to the server.
    let n = |c: u32| c.to_string();
    let tunnel = bed.ok(
        "h1",
        &[
            "ping",
            "-c",
            &n(TUNNEL_PINGS),
            "-i",
            "0.05",
            "-W",
            "2",
            GW_INNER,
        ],
    );
    bed.ok(
        "h1",
        &[
            "ping",
            "-c",
            &n(PLAIN_PINGS),
            "-i",
            "0.05",
            "-W",
            "2",
            SERVER,
        ],
    );
    bed.wait_metric(
        "spimux_tx_packets_total{interface=\"outside\"}",
        f64::from(TUNNEL_PINGS + PLAIN_PINGS),
    );

    // (b) Every metric the dashboard and the rules name is in a live scrape.
    let scrapes = [
        ("router", bed.metrics()),
        ("responder", responder()),
        ("client", client()),
    ];
    let exprs = check_names(&scrapes);
    check_limits(&scrapes[0].1);

    // (c) Prometheus holds the values the daemons serve.
    let out = settles(
        &bed,
        "spimux_tx_packets_total{job=\"spimux-router\",interface=\"outside\"}",
        || bed.metric("spimux_tx_packets_total{interface=\"outside\"}"),
    );
    assert!(
        out >= f64::from(TUNNEL_PINGS + PLAIN_PINGS),
        "router sent {out} frames outside for {TUNNEL_PINGS} + {PLAIN_PINGS} echo requests"
    );
    let rx = settles(
        &bed,
        "spimux_tunnel_rx_packets_total{job=\"spimux-responder\",peer=\"h1\"}",
        || metric_in(&responder(), "spimux_tunnel_rx_packets_total{peer=\"h1\"}"),
    );
    assert!(
        rx >= received(&tunnel),
        "responder authenticated {rx} from h1: {tunnel}"
    );
    let bindings = settles(&bed, "spimux_esp_bindings{job=\"spimux-router\"}", || {
        bed.metric("spimux_esp_bindings")
    });
    assert!(bindings >= 1.0, "the router bound the responder's SPI");
    // The client's SA as Prometheus has it: peer label, SPIs and encapsulation
    // as the client serves them, and the responder's view of the same SA.
    let sa = query(&bed, "spimux_sa_info{job=\"spimux-client\"}");
    assert_eq!(sa.len(), 1, "one tunnel on the client: {sa:?}");
    let labels = &sa[0]["metric"];
    assert_eq!(labels["peer"], "gateway");
    let c = client();
    for k in ["local_spi", "remote_spi", "encap", "remote"] {
        assert_eq!(labels[k], sa_label(&c, "gateway", k).as_str(), "{k}");
    }
    assert_ne!(labels["encap"], "none");
    let gw = query(&bed, "spimux_sa_info{job=\"spimux-responder\",peer=\"h1\"}");
    assert_eq!(gw.len(), 1, "{gw:?}");
    assert_eq!(gw[0]["metric"]["remote_spi"], labels["local_spi"]);
    assert_eq!(gw[0]["metric"]["local_spi"], labels["remote_spi"]);

    // The rules: loaded, evaluated on live data, nothing pending or firing.
    check_rules_loaded(&bed);
    settles(
        &bed,
        "instance:spimux_nat_sessions:ratio{job=\"spimux-router\"}",
        || bed.metric("spimux_nat_sessions") / bed.metric("spimux_nat_sessions_limit"),
    );
    check_dashboard_live(&bed, &exprs);
    eventually("no alert pending or firing in the healthy testbed", || {
        let a = query(&bed, "ALERTS");
        a.is_empty().then_some(()).ok_or(format!("{a:?}"))
    });

    // A scrape target going away raises SpimuxMetricsDown (pending for its 2 m).
    assert!(d.stop("client"), "client stops cleanly");
    eventually("SpimuxMetricsDown pending for the stopped client", || {
        let a = query(&bed, "ALERTS");
        let names: Vec<String> = a
            .iter()
            .map(|s| {
                let m = &s["metric"];
                format!("{} {} {}", m["alertname"], m["alertstate"], m["job"])
            })
            .collect();
        (names == ["\"SpimuxMetricsDown\" \"pending\" \"spimux-client\""])
            .then_some(())
            .ok_or(format!("{names:?}"))
    });
}
