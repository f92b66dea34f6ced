//! End-to-end operations on the namespace testbed (issue 11): the show
//! commands list what a scenario created while traffic flows, and a reload
//! changes a limit during a transfer (SIGHUP and `spimux router reload`),
//! refusing invalid and restart-only files whole. Needs root.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Bed, SERVER};

const H1: &str = "10.6.1.2";
const H2: &str = "10.6.1.3";

/// `spimux router ARGS --json`, parsed; panics with stderr on failure.
fn show(bed: &Bed, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (ok, out, err) = bed.router_ctl(&a);
    assert!(ok, "spimux router {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn rows<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A UDP request from `host`'s source port `sport` to the echo server;
/// the answer, or "" when none came.
fn echo_from(bed: &Bed, host: &str, sport: u16, msg: &str) -> String {
    let o = bed.run(
        host,
        &[
            "sh",
            "-c",
            &format!("echo {msg} | socat -t 1 - UDP:{SERVER}:5353,sourceport={sport}"),
        ],
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// iperf3 client in `host` with `args`, running in the background (JSON out).
fn iperf(bed: &Bed, host: &str, args: &[&str]) -> std::process::Child {
    let mut full = vec!["timeout", "60", "iperf3", "-c", SERVER, "-J"];
    full.extend_from_slice(args);
    bed.cmd(host, &full)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn iperf_result(c: std::process::Child) -> Value {
    let o = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "iperf3: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn show_commands_list_what_the_scenario_created_under_load() {
    if !support::require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    bed.udp_echo_server();
    bed.spawn("srv", &["iperf3", "-s", "-1", "-B", SERVER]);
    bed.wait_listening("srv", "t", 5201);
    // Forwarding load while the tables are read: UDP at a fixed rate, so
    // any loss would show in iperf3's count.
    let load = iperf(&bed, "h2", &["-u", "-b", "20M", "-t", "4", "-l", "1000"]);
    assert_eq!(echo_from(&bed, "h1", 7001, "one"), "one");
    assert_eq!(echo_from(&bed, "h1", 7002, "two"), "two");
    let spi = 0x5eed_0001u32;
    bed.esp_send("h1", SERVER, spi, 3);
    let drops_before = bed.metric("spimux_drops_total{reason=\"tx_error\"}");
    let t0 = Instant::now();
    let mut reads = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        show(&bed, &["show", "translations"]);
        show(&bed, &["show", "hosts"]);
        show(&bed, &["show", "esp"]);
        show(&bed, &["show", "limits"]);
        reads += 4;
    }
    let r = iperf_result(load);
    let sum = &r["end"]["sum"];
    assert_eq!(
        sum["lost_packets"], 0,
        "no loss while {reads} reads ran: {sum}"
    );
    assert!(sum["packets"].as_u64().unwrap() > 1000, "{sum}");
    assert_eq!(
        bed.metric("spimux_drops_total{reason=\"tx_error\"}"),
        drops_before
    );

    // The two UDP flows of h1, filtered by host and protocol, as sent.
    let t = show(
        &bed,
        &["show", "translations", "--host", H1, "--proto", "udp"],
    );
    let mine = rows(&t, "translations");
    let ports: Vec<u64> = mine
        .iter()
        .map(|r| r["inside"]["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![7001, 7002], "{t}");
    for r in mine {
        assert_eq!(r["inside"]["ip"], H1);
        assert_eq!(r["external"]["ip"], support::PUBLIC);
        assert_eq!(
            r["remote"],
            serde_json::json!({ "ip": SERVER, "port": 5353 })
        );
        assert!(r["expires_in"].as_u64().unwrap() > 200, "{r}");
    }
    // h2's iperf3 control connection: TCP, and its state tracked.
    let t = show(
        &bed,
        &["show", "translations", "--host", H2, "--proto", "tcp"],
    );
    let tcp = rows(&t, "translations");
    assert!(
        tcp.iter()
            .any(|r| r["remote"]["port"] == 5201 && r["state"].is_string()),
        "{t}"
    );
    // The ESP SPI h1 sent, recorded for h1 toward the server, unpaired.
    let e = show(&bed, &["show", "esp", "--host", H1]);
    let spis = rows(&e, "recorded_spis");
    assert_eq!(spis.len(), 1, "{e}");
    assert_eq!(spis[0]["spi"], format!("{spi:#010x}"));
    assert_eq!(spis[0]["responder"], SERVER);
    assert!(spis[0].get("paired_with").is_none());
    // Per host: h1 holds its two UDP sessions and one SPI.
    let h = show(&bed, &["show", "hosts", "--host", H1]);
    let hosts = rows(&h, "hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["ports"]["udp"], 2);
    assert_eq!(hosts[0]["esp_spis"], 1);
    // ARP: both inside hosts and the outside gateway.
    let a = show(&bed, &["show", "arp"]);
    let inside: Vec<&str> = rows(&a, "neighbours_inside")
        .iter()
        .map(|r| r["ip"].as_str().unwrap())
        .collect();
    assert!(inside.contains(&H1) && inside.contains(&H2), "{a}");
    assert!(rows(&a, "neighbours_outside")
        .iter()
        .any(|r| r["ip"] == "203.0.113.1"));
    // Limits: the sessions in use, against the configured maximum.
    let l = show(&bed, &["show", "limits"]);
    let sessions = rows(&l, "limits")
        .iter()
        .find(|r| r["limit"] == "nat.limits.max_sessions")
        .unwrap();
    assert_eq!(sessions["max"], 262_144);
    assert!(sessions["in_use"].as_u64().unwrap() >= 3, "{l}");
    // The text form an operator reads.
    let (ok, text, _) = bed.router_ctl(&["show", "translations", "--host", H1]);
    assert!(ok);
    assert!(
        text.contains("PROTO") && text.contains(&format!("{H1}:7001")),
        "{text}"
    );
    // A filter that does not parse is refused, naming the argument.
    let (ok, _, err) = bed.router_ctl(&["show", "translations", "--host", "10.6.1"]);
    assert!(!ok && err.contains("host"), "{err}");
}

#[test]
fn reload_halves_the_host_limit_during_a_transfer() {
    if !support::require_root() {
        return;
    }
    let mut bed = Bed::up();
    let limits = |n: u32| format!("[nat.limits]\nmax_sessions_per_host = {n}\n");
    let cfg = bed.config(&limits(8));
    bed.start_router_args(&cfg, &["--log-format", "json"]);
    bed.udp_echo_server();
    bed.spawn("srv", &["iperf3", "-s", "-1", "-B", SERVER]);
    bed.wait_listening("srv", "t", 5201);
    // h1: a TCP transfer (control + data connection) and two UDP flows.
    let transfer = iperf(&bed, "h1", &["-t", "6", "-b", "200M"]);
    std::thread::sleep(Duration::from_millis(800));
    for p in [7001, 7002] {
        assert_eq!(echo_from(&bed, "h1", p, "before"), "before");
    }
    let refused = "spimux_drops_total{reason=\"host_limit\"}";
    assert_eq!(bed.metric(refused), 0.0);

    // Halve the limit to 4 (h1 holds 4): `spimux router reload`.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(bed.config(&limits(4))).unwrap(),
    )
    .unwrap();
    let (ok, out, err) = bed.router_ctl(&["reload"]);
    assert!(ok, "{err}");
    assert!(out.contains("applied") && out.contains("nat"), "{out}");
    // A new flow of h1 is refused and counted; its old flows and h2 go on.
    assert_eq!(echo_from(&bed, "h1", 7003, "new"), "");
    bed.wait_metric(refused, 1.0);
    assert!(bed.metric(refused) >= 1.0);
    assert_eq!(echo_from(&bed, "h1", 7001, "old"), "old");
    assert_eq!(echo_from(&bed, "h2", 7003, "other"), "other");

    // An invalid file changes nothing and says why.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("max_sessions_per_host = 4", "max_sessions_per_host = 0"),
    )
    .unwrap();
    let (ok, _, err) = bed.router_ctl(&["reload"]);
    assert!(
        !ok && err.contains("nat.limits.max_sessions_per_host"),
        "{err}"
    );
    assert_eq!(
        bed.metric("spimux_config_reloads_total{result=\"invalid\"}"),
        1.0
    );
    assert_eq!(
        echo_from(&bed, "h1", 7004, "still"),
        "",
        "the limit of 4 stays"
    );
    // A restart-only change is refused whole (its limit change too).
    let moved = good
        .replace("10.6.1.1/24", "10.6.1.254/24")
        .replace("max_sessions_per_host = 4", "max_sessions_per_host = 16");
    std::fs::write(&cfg, moved).unwrap();
    let (ok, _, err) = bed.router_ctl(&["reload"]);
    assert!(!ok && err.contains("[inside]"), "{err}");
    assert_eq!(echo_from(&bed, "h1", 7005, "still"), "");

    // SIGHUP applies a raised limit: h1 opens new flows again.
    std::fs::write(
        &cfg,
        good.replace("max_sessions_per_host = 4", "max_sessions_per_host = 16"),
    )
    .unwrap();
    let pid = bed.router_pid().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    bed.wait_metric("spimux_config_reloads_total{result=\"applied\"}", 2.0);
    assert_eq!(
        bed.metric("spimux_config_reloads_total{result=\"applied\"}"),
        2.0
    );
    assert_eq!(echo_from(&bed, "h1", 7006, "again"), "again");

    // The transfer went on through all of it: data in every interval.
    let r = iperf_result(transfer);
    let intervals = r["intervals"].as_array().unwrap();
    assert!(intervals.len() >= 5, "{}", intervals.len());
    for i in intervals {
        assert!(
            i["sum"]["bytes"].as_u64().unwrap() > 0,
            "a stalled second: {i}"
        );
    }
    assert!(bed.router_alive());
    // JSON log lines, the reloads among them.
    let log = bed.router_log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "configuration reloaded"),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("max_sessions_per_host"))),
        "{log}"
    );
}
