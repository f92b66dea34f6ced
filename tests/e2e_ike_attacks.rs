//! End-to-end hostile and broken IKEv2 input against `spimux responder`
//! (issue 9): a wrong PSK, malformed and truncated messages on UDP 500 and
//! 4500, unknown critical payloads, bad SK integrity, and a spoofed
//! IKE_SA_INIT flood. Each is answered as RFC 7296 says or dropped, counted
//! by reason, and the responder stays up for an honest `spimux client`.
//! The hostile peer is `testbed/ike_attack.py`, an independent minimal IKEv2
//! initiator in the `wan` namespace. Needs root; never skipped in CI.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::endpoint::*;
use support::*;

const GW_INNER: &str = "10.99.0.1";
/// The driver's identity, key and inner address (a third peer of the responder).
const PROBE_ID: &str = "probe";
const PROBE_PSK: &str = "probe-test-only-psk-0001";
const PROBE_INNER: &str = "10.98.0.9/32";
/// Spoofed flood sources: answers to them are blackholed in `wan`.
const SPOOFED: &str = "203.0.113.128/25";
const COOKIE_THRESHOLD: i64 = 16;
const MAX_HALF_OPEN: i64 = 64;

/// config/responder.toml with NAT detection on, a `probe` peer and `[ike]`
/// overrides, in the bed's directory.
fn responder_config(bed: &Bed, ike: &[(&str, i64)]) -> PathBuf {
    edited(bed, "responder.toml", |t| {
        for i in 0..2 {
            peer_ike(t, i).insert("nat_detection".into(), "auto".into());
        }
        let peers = t["peers"].as_array_mut().unwrap();
        let mut probe = peers[1].as_table().unwrap().clone();
        probe.insert("name".into(), PROBE_ID.into());
        probe.insert("inner".into(), toml::Value::Array(vec![PROBE_INNER.into()]));
        let pike = probe["ike"].as_table_mut().unwrap();
        pike.insert("remote_id".into(), PROBE_ID.into());
        pike.insert("psk".into(), PROBE_PSK.into());
        peers.push(toml::Value::Table(probe));
        let section = t["ike"].as_table_mut().unwrap();
        for (k, v) in ike {
            section.insert((*k).into(), toml::Value::Integer(*v));
        }
    })
}

/// config/client-h1.toml, with another PSK when given, restarting after 500 ms.
fn client_config(bed: &Bed, psk: Option<&str>) -> PathBuf {
    edited(bed, "client-h1.toml", |t| {
        if let Some(psk) = psk {
            peer_ike(t, 0).insert("psk".into(), psk.into());
        }
        let mut ike = toml::Table::new();
        ike.insert("restart_delay_ms".into(), toml::Value::Integer(500));
        t.insert("ike".into(), toml::Value::Table(ike));
    })
}

/// Bed with the router and the responder up, and the responder's PID.
fn bed_with_responder(ike: &[(&str, i64)]) -> (Bed, u32) {
    let mut bed = Bed::up();
    bed.start_router("");
    let cfg = responder_config(&bed, ike);
    bed.start_endpoint("responder", "srv", "responder", &cfg, 9781);
    let pid = bed.daemon_pid("srv");
    (bed, pid)
}

/// Runs the driver in `wan` (it checks every answer itself; non-zero exit
/// means the responder answered wrongly) and returns its JSON line.
fn driver(bed: &Bed, args: &[&str]) -> String {
    let mut full = vec![
        PY,
        concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/ike_attack.py"),
    ];
    full.extend_from_slice(args);
    let out = bed.ok("wan", &full);
    println!("ike_attack.py {}: {}", args[0], out.trim());
    out
}

/// The `"key": number` pairs of a flat JSON object.
fn pairs(json: &str) -> Vec<(String, f64)> {
    json.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((
                k.trim().trim_matches('"').to_string(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// The number under `key` in the driver's report.
fn field(json: &str, key: &str) -> f64 {
    pairs(json)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} not in {json}"))
        .1
}

/// The metrics sample a driver key stands for: `drop.R` → IKE drops by
/// reason R, `sent.N` → answers with error notification N, `tunnel.R` →
/// the endpoint's drops by reason R.
fn sample(key: &str) -> String {
    let (kind, label) = key.split_once('.').unwrap();
    match kind {
        "drop" => format!("spimux_ike_drops_total{{reason=\"{label}\"}}"),
        "sent" => format!("spimux_ike_errors_sent_total{{notify=\"{label}\"}}"),
        "tunnel" => format!("spimux_tunnel_drops_total{{reason=\"{label}\"}}"),
        _ => panic!("unknown driver key {key}"),
    }
}

/// Asserts the responder counted exactly what the driver expects, by
/// reason, since the metrics `before` (they are published every 100 ms).
fn assert_counted(bed: &Bed, before: &str, expected: &str) {
    for (key, want) in pairs(expected) {
        let s = sample(&key);
        let base = metric_in(before, &s);
        let got = bed.wait_endpoint_metric("responder", &s, base + want) - base;
        assert_eq!(got, want, "{s}:\n{}", bed.endpoint_metrics("responder"));
    }
}

/// Runs the driver and asserts the responder counted, by reason, exactly
/// what it expects; returns the responder's metrics from before and the
/// driver's report.
fn drive_and_count(bed: &Bed, args: &[&str]) -> (String, String) {
    let before = bed.endpoint_metrics("responder");
    let expected = driver(bed, args);
    assert_counted(bed, &before, &expected);
    (before, expected)
}

/// UDP datagrams `host`'s kernel dropped because a socket buffer was full.
fn udp_rcvbuf_errors(bed: &Bed, host: &str) -> f64 {
    let snmp = bed.ok(host, &["cat", "/proc/net/snmp"]);
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap()
}

/// The responder is the same process as at the start, it answers, and it never panicked.
fn assert_alive(bed: &Bed, pid: u32) {
    assert_eq!(
        bed.daemon_pid("srv"),
        pid,
        "the responder was not restarted"
    );
    assert!(bed.try_metrics_of("srv", 9781).is_some(), "metrics answer");
    let log = bed.log("responder");
    assert!(!log.contains("panicked"), "{log}");
}

/// Polls the responder's metrics (at most `secs`) until `sample` reaches `at_least`.
fn wait_responder(bed: &Bed, sample: &str, at_least: f64, secs: u64) -> f64 {
    wait_endpoint(bed, "responder", sample, at_least, secs)
}

/// Polls endpoint `name`'s metrics (at most `secs`) until `sample` reaches
/// `at_least`; the last value. An endpoint publishes its IKE counters every
/// 100 ms, so one read right after the other side counted can be behind.
fn wait_endpoint(bed: &Bed, name: &str, sample: &str, at_least: f64, secs: u64) -> f64 {
    let t0 = Instant::now();
    loop {
        let v = metric_in(&bed.endpoint_metrics(name), sample);
        if v >= at_least || t0.elapsed() > Duration::from_secs(secs) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the honest h1 client and waits (at most 20 s) for its CHILD_SA.
fn honest_client(bed: &mut Bed) {
    let cfg = client_config(bed, None);
    bed.start_endpoint("h1", "h1", "client", &cfg, 9782);
    let t0 = Instant::now();
    let installed = "spimux_ike_child_sas{state=\"installed\"}";
    while metric_in(&bed.endpoint_metrics("h1"), installed) < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "honest client did not connect:\n{}",
            bed.log("h1")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ping and a TCP upload through the honest client's tunnel.
fn honest_traffic(bed: &mut Bed, port: u16) {
    bed.ok("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", GW_INNER]);
    let u = bed.upload_sink("h1", &test_bytes(1 << 20, u32::from(port)), GW_INNER, port);
    bed.socat_upload("h1", &u, GW_INNER, port, None);
    bed.assert_uploaded(
        &u,
        "1 MB through the honest client's tunnel arrived bit-exact",
    );
}

#[test]
fn wrong_psk_is_answered_with_authentication_failed_and_installs_nothing() {
    if !require_root() {
        return;
    }
    let (mut bed, pid) = bed_with_responder(&[]);
    // On the wire: the protected IKE_AUTH answer is AUTHENTICATION_FAILED
    // alone (RFC 7296 §2.21.2), and the responder forgets the SA.
    let (before, _) = drive_and_count(
        &bed,
        &[
            "wrongpsk",
            "--dst",
            SERVER,
            "--id",
            "h1",
            "--psk",
            "not-the-psk-of-h1-at-all",
        ],
    );
    let m = bed.endpoint_metrics("responder");
    assert_eq!(
        metric_in(&m, "spimux_ike_auth_failures_total")
            - metric_in(&before, "spimux_ike_auth_failures_total"),
        1.0
    );
    // A spimux client with the wrong key gives up each IKE SA and starts
    // again after restart_delay_ms (its policy); nothing is ever installed.
    let cfg = client_config(&bed, Some("wrong-psk-wrong-psk-wrong"));
    bed.start_endpoint("h1", "h1", "client", &cfg, 9782);
    let failures = wait_responder(&bed, "spimux_ike_auth_failures_total", 3.0, 15);
    assert!(failures >= 3.0, "the client retried:\n{}", bed.log("h1"));
    let seen = wait_endpoint(&bed, "h1", "spimux_ike_auth_failures_total", 2.0, 10);
    let c = bed.endpoint_metrics("h1");
    assert!(
        seen >= 2.0,
        "the client saw AUTHENTICATION_FAILED at least twice:\n{c}"
    );
    assert!(bed.log("h1").contains("auth_failed"), "{}", bed.log("h1"));
    let m = bed.endpoint_metrics("responder");
    for (who, text) in [("responder", &m), ("client", &c)] {
        assert_eq!(
            metric_in(text, "spimux_ike_child_sas{state=\"installed\"}"),
            0.0,
            "{who}"
        );
        assert_eq!(
            metric_in(text, "spimux_ike_sas{state=\"established\"}"),
            0.0,
            "{who}"
        );
    }
    assert!(
        metric_in(
            &m,
            "spimux_ike_errors_sent_total{notify=\"AUTHENTICATION_FAILED\"}"
        ) >= failures,
        "{m}"
    );
    assert!(!bed.log("responder").contains("CHILD_SA installed"));
    assert_alive(&bed, pid);
}

#[test]
fn malformed_truncated_critical_and_tampered_input_is_answered_or_dropped_and_counted() {
    if !require_root() {
        return;
    }
    let (mut bed, pid) = bed_with_responder(&[]);
    // Broken datagrams on 500 and 4500, unknown critical payloads (IKE_SA_INIT,
    // IKE_AUTH, INFORMATIONAL), bad SK integrity on a half-open and on an
    // established SA, stale message IDs; the driver checks each answer (or
    // its absence) and completes a real IKE_AUTH in between.
    let (_, expected) = drive_and_count(
        &bed,
        &[
            "hostile", "--dst", SERVER, "--id", PROBE_ID, "--psk", PROBE_PSK,
        ],
    );
    assert!(field(&expected, "drop.integrity") >= 4.0);
    assert!(field(&expected, "sent.UNSUPPORTED_CRITICAL_PAYLOAD") >= 4.0);
    let m = bed.endpoint_metrics("responder");
    // The driver's IKE SA survived everything; nothing is left half-open.
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(metric_in(&m, "spimux_ike_half_open_sas"), 0.0, "{m}");
    assert_eq!(
        metric_in(&m, "spimux_ike_drops_total{reason=\"internal\"}"),
        0.0,
        "{m}"
    );
    assert_alive(&bed, pid);
    // An honest client connects afterwards and carries traffic.
    honest_client(&mut bed);
    honest_traffic(&mut bed, 7201);
    let m = bed.endpoint_metrics("responder");
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        2.0,
        "{m}"
    );
    assert_alive(&bed, pid);
}

#[test]
fn spoofed_ike_sa_init_flood_turns_cookies_on_while_an_honest_client_connects() {
    if !require_root() {
        return;
    }
    let (mut bed, pid) = bed_with_responder(&[
        ("cookie_threshold", COOKIE_THRESHOLD),
        ("max_half_open", MAX_HALF_OPEN),
        // Longer than the test: the flood's half-open SAs stay while it runs.
        ("half_open_timeout_secs", 120),
    ]);
    let rss_before = rss_kib(pid);
    // Answers to the spoofed sources die in wan (no ARP storms, nothing reaches the router).
    bed.ok("wan", &["ip", "route", "add", "blackhole", SPOOFED]);
    let iface = format!("{}ws", bed.p);
    let stop = bed.dir.join("flood.stop");
    let out = bed.dir.join("flood.json");
    let flood = format!(
        "exec {PY} {ROOT}/testbed/ike_attack.py flood --dst {SERVER} --iface {iface} --net {SPOOFED} \
         --rate 2000 --min 6000 --max 60000 --stop {} >{} 2>&1",
        stop.display(),
        out.display()
    );
    bed.spawn("wan", &["sh", "-c", &flood]);
    // Cookies are on once the spoofed half-open SAs reach the threshold.
    let cookies = "spimux_ike_cookies_sent_total";
    assert!(
        wait_responder(&bed, cookies, 100.0, 20) >= 100.0,
        "cookies on:\n{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    // While the flood runs, an honest client connects (it echoes the cookie) and carries traffic.
    honest_client(&mut bed);
    let at_connect = metric_in(&bed.endpoint_metrics("responder"), cookies);
    honest_traffic(&mut bed, 7301);
    assert!(
        wait_responder(&bed, cookies, at_connect + 100.0, 20) >= at_connect + 100.0,
        "the flood went on after the client connected"
    );
    std::fs::write(&stop, b"").unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(&out).is_ok_and(|s| s.contains('}')) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "flood driver did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = std::fs::read_to_string(&out).unwrap();
    println!("ike_attack.py flood: {}", report.trim());
    let m = bed.endpoint_metrics("responder");
    let sent = field(&report, "sent");
    assert!(sent >= 6000.0, "{report}");
    // Blind spoofers got at most the threshold of half-open SAs; every other
    // request was answered with a COOKIE only (no state, no DH).
    let spoofed_sa = field(&report, "spoofed_sa");
    assert!(spoofed_sa <= COOKIE_THRESHOLD as f64, "{report}");
    // Every request is accounted for: answered, or dropped where it is counted
    // (the IKE thread's full queue, a full socket buffer on a busy machine).
    let queue_full = metric_in(&m, "spimux_ike_queue_full_total");
    let rcvbuf = udp_rcvbuf_errors(&bed, "srv");
    assert_eq!(
        field(&report, "spoofed_cookie") + spoofed_sa + queue_full + rcvbuf,
        sent,
        "every spoofed request answered, with a cookie past the threshold \
         (queue full {queue_full}, socket buffer full {rcvbuf}):\n{report}\n{m}"
    );
    assert!(
        field(&report, "other_cookie") >= 1.0,
        "the honest client was asked for a cookie: {report}"
    );
    assert!(
        metric_in(&m, cookies) >= field(&report, "spoofed_cookie"),
        "{m}"
    );
    // A COOKIE answer is neither a completed nor a failed exchange.
    let init = |result: &str| {
        metric_in(
            &m,
            &format!("spimux_ike_exchanges_total{{exchange=\"ike_sa_init\",role=\"responder\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(init("error"), 0.0, "{m}");
    assert_eq!(
        init("ok"),
        spoofed_sa + 1.0,
        "spoofed half-open SAs and the client's:\n{m}"
    );
    assert!(metric_in(&m, "spimux_ike_half_open_sas") <= COOKIE_THRESHOLD as f64 + 1.0);
    // A non-blind attacker (it sees the cookies and echoes them) fills the
    // half-open table up to max_half_open and no further.
    let before = m;
    let half_open = metric_in(&before, "spimux_ike_half_open_sas");
    let echo = driver(
        &bed,
        &[
            "echo", "--dst", SERVER, "--iface", &iface, "--net", SPOOFED, "--count", "200",
        ],
    );
    let (echoed, accepted) = (field(&echo, "echoed"), field(&echo, "accepted"));
    assert!(echoed >= 150.0, "the attacker saw cookies: {echo}");
    assert!(
        accepted >= 1.0 && accepted <= MAX_HALF_OPEN as f64 - half_open,
        "{echo}"
    );
    let limit = "spimux_ike_drops_total{reason=\"half_open_limit\"}";
    let dropped = wait_responder(&bed, limit, echoed - accepted, 5) - metric_in(&before, limit);
    assert_eq!(
        dropped + accepted,
        echoed,
        "each echo accepted or dropped by the limit"
    );
    let m = bed.endpoint_metrics("responder");
    assert!(
        metric_in(&m, "spimux_ike_half_open_sas") <= MAX_HALF_OPEN as f64,
        "{m}"
    );
    // The honest client's SA is untouched and still carries traffic.
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        1.0,
        "{m}"
    );
    bed.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", GW_INNER]);
    // Memory stayed bounded: thousands of spoofed requests left no state behind.
    let rss_after = rss_kib(pid);
    println!("responder RSS: {rss_before} KiB before, {rss_after} KiB after {sent} spoofed + {echoed} echoed requests");
    assert!(
        rss_after <= rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_alive(&bed, pid);
}
