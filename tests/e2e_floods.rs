//! End-to-end hardening: the router under floods from outside and inside
//! (spoofed random-SPI ESP, new flows from one host, ARP from random senders,
//! TTL 1, idle connections on the metrics port) while an established TCP
//! stream and an established plain-ESP pair keep flowing. Afterwards every
//! table is within its configured bound, the ESP replies all reached the
//! right host, RSS stayed bounded and the metrics still answer.

mod support;

use spimux::spi::Layout;
use support::*;

/// Small caps so every flood reaches its limit.
const LIMITS: &str = "\
[arp]
max_entries = 64
[icmp]
errors_per_sec = 100
errors_burst = 10
[nat.limits]
max_sessions_per_host = 2000
new_sessions_per_sec_per_host = 500
new_sessions_burst = 500
";

const STREAM_SECS: u32 = 40;

fn flood(bed: &Bed, kind: &str, count: u32) {
    let script = format!("{ROOT}/testbed/flood.sh");
    let out = std::process::Command::new("bash")
        .args([&script, kind, &bed.p, &count.to_string(), "50000pps"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{kind} flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens `n` TCP connections to the router's metrics port from inside its
/// namespace and holds them, idle, for `secs`; creates `ready` once all are open.
fn idle_connections(bed: &Bed, n: u32, secs: u32, ready: &std::path::Path) -> std::process::Child {
    let script = format!(
        "import resource, socket, time\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))\n\
         conns = []\n\
         for _ in range({n}):\n\
         \x20   s = socket.socket()\n\
         \x20   s.settimeout(2)\n\
         \x20   try:\n\
         \x20       s.connect(('127.0.0.1', 9780))\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         \x20   conns.append(s)\n\
         open('{}', 'w').close()\n\
         time.sleep({secs})\n",
        ready.display()
    );
    bed.cmd(
        "rt",
        &["timeout", &(secs + 60).to_string(), PY, "-c", &script],
    )
    .spawn()
    .unwrap()
}

#[test]
fn floods_leave_established_flows_running_and_state_bounded() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router(LIMITS);
    let pid = bed.daemon_pid("rt");
    for h in ["h1", "h2"] {
        bed.ok(h, &["ping", "-c", "1", "-W", "2", SERVER]);
    }
    let rss_before = rss_kib(pid);

    // Established TCP stream h1 → server, rate-capped so the floods get CPU too.
    bed.spawn("srv", &["iperf3", "-s", "-1", "-B", SERVER, "-p", "5201"]);
    bed.wait_listening("srv", "t", 5201);
    let secs = STREAM_SECS.to_string();
    let iperf = bed
        .cmd(
            "h1",
            &[
                "timeout", "90", "iperf3", "-c", SERVER, "-p", "5201", "-t", &secs, "-b", "200M",
                "-J",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Established plain-ESP pair h2 ↔ server (the responder derives its SPI).
    let l = Layout::default();
    let (s_o, salt) = (0x0A0B_0C0Du32, 0x1357_0000u32);
    let s_r = l.derive_with(s_o, salt);
    let peer = format!("{ROOT}/testbed/esp_peer.py");
    let ready = bed.dir.join("esp-ready");
    let count = (STREAM_SECS * 20).to_string();
    let mut responder = bed
        .cmd(
            "srv",
            &[
                "timeout",
                "90",
                PY,
                &peer,
                "responder",
                "--bind",
                SERVER,
                "--pairs",
                &format!("{s_r:#x}:{s_o:#x}"),
                "--seconds",
                &(STREAM_SECS + 10).to_string(),
                "--ready",
                ready.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
    bed.wait_file(&ready);
    let esp_host = bed
        .cmd(
            "h2",
            &[
                "timeout",
                "90",
                PY,
                &peer,
                "host",
                "--dst",
                SERVER,
                "--spi-out",
                &format!("{s_r:#x}"),
                "--spi-in",
                &format!("{s_o:#x}"),
                "--count",
                &count,
                "--interval",
                "0.05",
                "--timeout",
                &(STREAM_SECS + 5).to_string(),
                "--tag",
                "h2",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    bed.wait_metric(
        "spimux_esp_matches_total{relation=\"responder_derived\"}",
        1.0,
    );

    // h1 records an outbound SPI the responder never answers: the spoofed
    // flood then meets a pending SPI and goes through the rate-limited match.
    bed.esp_send("h1", SERVER, 0x5555_0001, 1);
    // The floods, one after another, while both keep flowing.
    flood(&bed, "esp-spi", 100_000);
    flood(&bed, "new-flows", 50_000);
    flood(&bed, "arp", 50_000);
    flood(&bed, "ttl1", 50_000);
    let held = bed.dir.join("conns-ready");
    let mut conns = idle_connections(&bed, 1000, 10, &held);
    bed.wait_file(&held);
    let during = bed.try_metrics();
    let _ = conns.wait();
    assert!(
        during.is_some(),
        "metrics answer while 1000 idle connections are open"
    );

    // The established flows kept flowing.
    let out = iperf.wait_with_output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    let intervals = iperf_interval_bytes(&json);
    println!("TCP stream per-second bytes: {intervals:?}");
    assert!(
        intervals.len() >= STREAM_SECS as usize - 1,
        "iperf3 ran its whole time: {json}"
    );
    assert!(
        intervals.iter().all(|b| *b > 0),
        "the stream moved data in every second: {intervals:?}"
    );
    let esp = parse_esp(&String::from_utf8_lossy(
        &esp_host.wait_with_output().unwrap().stdout,
    ));
    let _ = responder.kill();
    let _ = responder.wait();
    println!("ESP pair through the floods: {esp:?}");
    assert_eq!(esp.foreign, 0, "no reply reached h2 on a foreign SPI");
    assert!(
        esp.own * 10 >= esp.sent * 9,
        "at least 90 % of h2's ESP answered on its own SPI: {esp:?}"
    );

    // Every table within its bound; every limit that bit was counted.
    let m = bed.metrics();
    let v = |s: &str| metric_in(&m, s);
    println!(
        "after the floods: sessions {} hosts {} bindings {} recorded {} arp inside {} outside {}",
        v("spimux_nat_sessions"),
        v("spimux_nat_inside_hosts"),
        v("spimux_esp_bindings"),
        v("spimux_esp_recorded_spis"),
        v("spimux_arp_cache_entries{interface=\"inside\"}"),
        v("spimux_arp_cache_entries{interface=\"outside\"}"),
    );
    // The honest pair's binding, plus at most the few spoofed SPIs whose tag
    // matched h1's pending SPI within the resolution budget.
    assert!(v("spimux_esp_bindings") <= 3.0, "bindings stay bounded");
    let esp_refused: f64 = [
        "esp_unmatched",
        "esp_no_pending",
        "esp_already_paired",
        "esp_resolve_rate_limited",
    ]
    .iter()
    .map(|r| v(&format!("spimux_drops_total{{reason=\"{r}\"}}")))
    .sum();
    assert!(
        esp_refused >= 90_000.0,
        "the spoofed flood was refused: {esp_refused}"
    );
    assert!(v("spimux_nat_sessions") <= 2000.0 + 10.0);
    assert!(
        v("spimux_drops_total{reason=\"rate_limited\"}")
            + v("spimux_drops_total{reason=\"host_limit\"}")
            > 0.0
    );
    assert!(v("spimux_arp_cache_entries{interface=\"inside\"}") <= 64.0);
    assert!(v("spimux_arp_cache_full_total") > 0.0);
    assert!(v("spimux_drops_total{reason=\"arp_bad_sender\"}") > 0.0);
    assert!(v("spimux_icmp_errors_suppressed_total{reason=\"rate_limited\"}") > 0.0);
    assert!(
        v("spimux_icmp_sent_total") < 10_000.0,
        "ICMP errors stay within the rate limit"
    );
    let rss_after = rss_kib(pid);
    println!("router RSS: {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(bed.router_alive(), "router survived");
}

/// Bytes per reporting interval from `iperf3 -J` output (parsed by python's json).
fn iperf_interval_bytes(json: &str) -> Vec<u64> {
    use std::io::Write;
    let mut py = std::process::Command::new(PY)
        .args([
            "-c",
            "import json,sys\nfor i in json.load(sys.stdin).get('intervals', []): print(i['sum']['bytes'])",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = py.stdin.take().unwrap().write_all(json.as_bytes());
    let out = py.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|b| b as u64)
        .collect()
}
