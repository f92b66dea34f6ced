//! End-to-end: the router's drop capture (`--capture-drops FILE`) read back
//! with tshark in the namespace testbed. Known drops are provoked (the
//! malformed-frame generator from both sides, unsolicited inbound UDP) and
//! every captured frame must carry its reason as the packet comment, on the
//! interface it came in on, as many as the router counted; a flood beyond
//! the rate limit is cut and counted.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Drops that never have a frame to capture (queued frames given up on, kernel send refusals).
const FRAMELESS: [&str; 2] = ["arp_unresolved", "tx_error"];

fn mac_of(bed: &Bed, link: &str) -> String {
    let path = format!("/sys/class/net/{}{link}/address", bed.p);
    bed.ok("rt", &["cat", &path]).trim().to_string()
}

/// `spimux_drops_total` by reason, only the frame-bearing reasons that occurred.
fn frame_drops(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("spimux_drops_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .filter(|(r, _)| !FRAMELESS.contains(r))
        .filter_map(|(r, v)| Some((r.to_string(), v.trim().parse::<f64>().ok()? as u64)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn capture_count(metrics: &str, result: &str) -> u64 {
    metric_in(
        metrics,
        &format!("spimux_capture_frames_total{{result=\"{result}\"}}"),
    ) as u64
}

/// Polls (at most 10 s) until every frame the router counted as a
/// frame-bearing drop has been written or refused; returns the metrics.
fn settled(bed: &Bed) -> String {
    let t0 = Instant::now();
    loop {
        let m = bed.metrics();
        let dropped: u64 = frame_drops(&m).values().sum();
        let accounted: u64 = ["written", "rate_limited", "queue_full"]
            .iter()
            .map(|r| capture_count(&m, r))
            .sum();
        if accounted == dropped || t0.elapsed() > Duration::from_secs(10) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (interface name, comment) -> frames, as tshark reads the file.
fn tshark_reasons(file: &Path) -> BTreeMap<(String, String), u64> {
    let o = Command::new("timeout")
        .args(["60", "tshark", "-r", file.to_str().unwrap(), "-T", "fields"])
        .args(["-e", "frame.interface_name", "-e", "frame.comment"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tshark reads the capture: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut by = BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let (iface, comment) = l.split_once('\t').expect("two fields per frame");
        *by.entry((iface.to_string(), comment.to_string()))
            .or_insert(0) += 1;
    }
    by
}

/// Sum of frames with `reason` over both interfaces.
fn frames_with(by: &BTreeMap<(String, String), u64>, reason: &str) -> u64 {
    by.iter()
        .filter(|((_, r), _)| r == reason)
        .map(|(_, n)| n)
        .sum()
}

/// Runs testbed/malformed.py from `host` through `link` toward the router's
/// interface `rt_link`; returns its case -> reason map's reasons.
fn malformed(
    bed: &Bed,
    host: &str,
    link: &str,
    rt_link: &str,
    src: &str,
    dst: &str,
) -> Vec<String> {
    let script = format!("{ROOT}/testbed/malformed.py");
    let iface = format!("{}{link}", bed.p);
    let out = bed.ok(
        host,
        &[PY, &script, &iface, &mac_of(bed, rt_link), src, dst],
    );
    out.trim()
        .trim_matches(['{', '}'])
        .split(", ")
        .filter_map(|part| part.split_once(": "))
        .map(|(_, r)| r.trim_matches('"').to_string())
        .collect()
}

#[test]
fn each_dropped_frame_shows_in_tshark_with_its_reason() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    let file = bed.dir.join("drops.pcapng");
    // Two receive threads, each with a budget of 500: nothing here is rate limited.
    let cfg = bed.config("[dataplane]\nworkers = 1\n[capture]\nmax_per_sec = 1000\nburst = 1000\n");
    bed.start_router_args(&cfg, &["--capture-drops", file.to_str().unwrap()]);
    let inside = malformed(&bed, "h1", "a", "ri", "10.6.1.2", SERVER);
    let outside = malformed(&bed, "wan", "wr", "ro", "203.0.113.1", PUBLIC);
    // Unsolicited inbound UDP: no NAT mapping.
    let unsolicited = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(3): s.sendto(b'x', ('{PUBLIC}', 40999))"
    );
    bed.ok("srv", &[PY, "-c", &unsolicited]);
    bed.wait_metric("spimux_drops_total{reason=\"no_mapping\"}", 3.0);
    bed.wait_metric("spimux_drops_total{reason=\"not_for_us\"}", 6.0);
    let m = settled(&bed);
    let drops = frame_drops(&m);
    assert_eq!(capture_count(&m, "rate_limited"), 0, "{m}");
    assert_eq!(capture_count(&m, "queue_full"), 0, "{m}");
    let written = capture_count(&m, "written");
    assert_eq!(
        written,
        drops.values().sum::<u64>(),
        "every drop written: {drops:?}"
    );
    assert!(bed.stop_router(), "clean exit on SIGTERM");
    let by = tshark_reasons(&file);
    eprintln!("tshark: frames by (interface, reason): {by:?}");
    assert_eq!(
        by.values().sum::<u64>(),
        written,
        "tshark reads every written frame"
    );
    // Per reason, as many frames as the router counted drops.
    for (reason, n) in &drops {
        assert_eq!(frames_with(&by, reason), *n, "{reason}");
    }
    // Each provoked reason shows on the side it was provoked on.
    let (ri, ro) = (format!("{}ri", bed.p), format!("{}ro", bed.p));
    let on = |iface: &str, reason: &str| by.get(&(iface.to_string(), reason.to_string())).copied();
    for reason in &inside {
        assert!(on(&ri, reason) >= Some(3), "{reason} on {ri}: {by:?}");
    }
    assert!(on(&ro, "no_mapping") >= Some(3), "{by:?}");
    assert!(outside.iter().any(|r| r == "ip_bad_checksum"));
    assert!(on(&ro, "ip_bad_checksum") >= Some(3), "{by:?}");
    assert!(on(&ro, "ttl_exceeded") >= Some(3), "{by:?}");
    assert!(by.keys().all(|(i, _)| *i == ri || *i == ro), "{by:?}");
}

#[test]
fn a_flood_beyond_the_rate_limit_is_cut_and_counted() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    let file = bed.dir.join("drops.pcapng");
    // Two receive threads: each gets 1 frame per second and a burst of 2.
    let extra = format!(
        "[dataplane]\nworkers = 1\n[capture]\ndrops_file = \"{}\"\nmax_per_sec = 2\nburst = 4\n",
        file.display()
    );
    let started = Instant::now();
    bed.start_router(&extra);
    const FLOOD: u64 = 300;
    let flood = format!(
        "from scapy.all import Ether, IP, UDP, Raw, conf, raw, sendp\nconf.verb = 0\n\
         b = bytearray(raw(IP(src='10.6.1.2', dst='{SERVER}') / UDP(sport=40000, dport=9) / Raw(b'x' * 16)))\n\
         b[10] ^= 0xFF\n\
         sendp(raw(Ether(dst='{}', type=0x0800)) + bytes(b), iface='{}a', count={FLOOD})",
        mac_of(&bed, "ri"),
        bed.p
    );
    bed.ok("h1", &[PY, "-c", &flood]);
    bed.wait_metric(
        "spimux_drops_total{reason=\"ip_bad_checksum\"}",
        FLOOD as f64,
    );
    let m = settled(&bed);
    let secs = started.elapsed().as_secs() + 1;
    let drops = frame_drops(&m);
    assert_eq!(drops.get("ip_bad_checksum"), Some(&FLOOD), "{drops:?}");
    let (written, limited) = (
        capture_count(&m, "written"),
        capture_count(&m, "rate_limited"),
    );
    assert_eq!(
        written + limited + capture_count(&m, "queue_full"),
        drops.values().sum::<u64>(),
        "every dropped frame accounted for"
    );
    assert!(limited > 0, "the rate limit bites: {m}");
    // Whatever the pace: at most both threads' bursts plus their rate over the run.
    assert!(
        written >= 1 && written <= 4 + 2 * secs,
        "{written} in {secs} s"
    );
    assert!(bed.stop_router());
    let by = tshark_reasons(&file);
    assert_eq!(by.values().sum::<u64>(), written);
    assert!(frames_with(&by, "ip_bad_checksum") >= 1, "{by:?}");
}
