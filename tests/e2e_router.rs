//! End-to-end: the spimux router in the namespace testbed with real tools
//! (ping, curl, socat, iperf3, traceroute, raw ESP peers, scapy).

mod support;

use spimux::spi::Layout;
use support::*;

fn mac_of(bed: &Bed, host: &str, link: &str) -> String {
    let out = bed.ok(
        host,
        &["cat", &format!("/sys/class/net/{}{link}/address", bed.p)],
    );
    out.trim().to_string()
}

#[test]
fn forwards_ping_tcp_udp_and_answers_ttl_expiry() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    // ping from both inside hosts, and to the router itself.
    for h in ["h1", "h2"] {
        bed.ok(h, &["ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER]);
        bed.ok(h, &["ping", "-c", "1", "-W", "2", "10.6.1.1"]);
    }
    // The server can ping the public address (the router answers).
    bed.ok("srv", &["ping", "-c", "1", "-W", "2", PUBLIC]);
    // TCP: a 3 MB file over HTTP, checksum-exact, from both hosts.
    let blob = bed.dir.join("blob");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&blob, &data).unwrap();
    let dir = bed.dir.to_str().unwrap().to_string();
    bed.spawn(
        "srv",
        &[
            PY,
            "-m",
            "http.server",
            "8080",
            "--bind",
            SERVER,
            "--directory",
            &dir,
        ],
    );
    bed.wait_listening("srv", "t", 8080);
    let want = bed
        .ok("srv", &["sha256sum", blob.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    for h in ["h1", "h2"] {
        let out = bed.ok(
            h,
            &[
                "sh",
                "-c",
                &format!("curl -sf -m 20 http://{SERVER}:8080/blob | sha256sum"),
            ],
        );
        assert_eq!(
            out.split_whitespace().next().unwrap(),
            want,
            "{h} download intact"
        );
    }
    // UDP request/response through socat.
    bed.udp_echo_server();
    for h in ["h1", "h2"] {
        assert_eq!(bed.udp_echo(h, &format!("hello-{h}")), format!("hello-{h}"));
    }
    // Traceroute: hop 1 is the router (TTL expiry answered by spimux), hop 2 the WAN
    // router (its ICMP error translated back through the NAT), hop 3 the server.
    let tr = bed.ok(
        "h1",
        &["traceroute", "-n", "-q", "1", "-w", "2", "-m", "3", SERVER],
    );
    let hops: Vec<&str> = tr
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(hops, ["10.6.1.1", "203.0.113.1", SERVER], "{tr}");
    // iperf3 TCP for a few seconds.
    bed.spawn("srv", &["iperf3", "-s", "-1", "-B", SERVER]);
    bed.wait_listening("srv", "t", 5201);
    let ip = bed.ok("h2", &["iperf3", "-c", SERVER, "-t", "3", "-J"]);
    assert!(ip.contains("\"sum_received\""), "iperf3 finished");
    let m = bed.metrics();
    assert!(metric_in(&m, "spimux_nat_sessions_created_total{protocol=\"tcp\"}") >= 3.0);
    assert!(metric_in(&m, "spimux_nat_sessions_created_total{protocol=\"udp\"}") >= 2.0);
    assert!(metric_in(&m, "spimux_nat_sessions_created_total{protocol=\"icmp\"}") >= 2.0);
    assert!(metric_in(&m, "spimux_drops_total{reason=\"ttl_exceeded\"}") >= 1.0);
    assert!(metric_in(&m, "spimux_nat_icmp_errors_translated_total") >= 1.0);
    assert!(bed.stop_router(), "clean exit on SIGTERM");
}

struct Round {
    h1: EspResult,
    h2: EspResult,
}

/// Both inside hosts run plain ESP to the server at once; the server answers
/// each on the host's own inbound SPI.
fn esp_round(bed: &Bed, s_o: [u32; 2], salt: u32) -> Round {
    let l = Layout::default();
    let s_r = [
        l.derive_with(s_o[0], salt),
        l.derive_with(s_o[1], salt.rotate_left(16)),
    ];
    let script = format!("{ROOT}/testbed/esp_peer.py");
    let ready = bed.dir.join(format!("responder-ready-{salt:x}"));
    let pairs = format!("{:#x}:{:#x},{:#x}:{:#x}", s_r[0], s_o[0], s_r[1], s_o[1]);
    let mut resp = bed
        .cmd(
            "srv",
            &[
                "timeout",
                "20",
                PY,
                &script,
                "responder",
                "--bind",
                SERVER,
                "--pairs",
                &pairs,
                "--seconds",
                "8",
                "--ready",
                ready.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
    bed.wait_file(&ready);
    let host = |h: &str, i: usize| {
        bed.cmd(
            h,
            &[
                "timeout",
                "20",
                PY,
                &script,
                "host",
                "--dst",
                SERVER,
                "--spi-out",
                &format!("{:#x}", s_r[i]),
                "--spi-in",
                &format!("{:#x}", s_o[i]),
                "--count",
                "20",
                "--interval",
                "0.02",
                "--timeout",
                "4",
                "--tag",
                h,
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (c1, c2) = (host("h1", 0), host("h2", 1));
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    let _ = resp.kill();
    let _ = resp.wait();
    Round {
        h1: parse_esp(&String::from_utf8_lossy(&o1.stdout)),
        h2: parse_esp(&String::from_utf8_lossy(&o2.stdout)),
    }
}

#[test]
fn esp_seed_scenario_spimux_delivers_where_kernel_masquerade_fails() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let rounds = [
        ([0xD456_0CA1u32, 0xB728_5662u32], 0x1357_0000u32),
        // "Rekey": fresh SPI pairs on both hosts.
        ([0x0A0B_0C0D, 0x7777_1234], 0x2468_0000),
    ];
    let mut spimux_rounds = Vec::new();
    for (s_o, salt) in rounds {
        let r = esp_round(&bed, s_o, salt);
        for (h, res) in [("h1", r.h1), ("h2", r.h2)] {
            assert_eq!(res.sent, 20, "{h} sent");
            assert_eq!(
                res.own, 20,
                "{h}: every reply on its own SPI reached it: {res:?}"
            );
            assert_eq!(res.foreign, 0, "{h}: nothing misdelivered: {res:?}");
        }
        spimux_rounds.push(r);
    }
    bed.wait_metric(
        "spimux_esp_matches_total{relation=\"responder_derived\"}",
        4.0,
    );
    assert_eq!(
        bed.metric("spimux_esp_matches_total{relation=\"responder_derived\"}"),
        4.0
    );
    assert_eq!(bed.metric("spimux_esp_collisions_total"), 0.0);
    assert!(bed.stop_router());

    // Same scenario, same testbed, Linux nft masquerade instead of spimux.
    bed.topology(&["kernel-nat", "on"]);
    let k = esp_round(&bed, [0x1111_2222, 0x3333_4444], 0x5555_0000);
    bed.topology(&["kernel-nat", "off"]);
    println!("ESP seed scenario, 20 packets per host per round (own = replies on the host's SPI):");
    for (i, r) in spimux_rounds.iter().enumerate() {
        println!("  spimux round {i}: h1 {:?}  h2 {:?}", r.h1, r.h2);
    }
    println!("  nft masquerade: h1 {:?}  h2 {:?}", k.h1, k.h2);
    let kernel_ok = |r: EspResult| r.own == r.sent && r.foreign == 0;
    assert!(
        !(kernel_ok(k.h1) && kernel_ok(k.h2)),
        "expected Linux masquerade to drop or misdeliver one host's ESP: {:?} {:?}",
        k.h1,
        k.h2
    );
}

#[test]
fn esp_collision_and_unmatched_are_dropped_and_counted() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let l = Layout::default();
    let s_o = 0xD456_0CA1u32;
    // Crafted pair: both hosts' outbound SPIs carry the tag of the same inbound SPI.
    for (h, salt) in [("h1", 0x1111_0000u32), ("h2", 0x2222_0000)] {
        bed.esp_send(h, SERVER, l.derive_with(s_o, salt), 3);
    }
    bed.esp_send("srv", PUBLIC, s_o, 3);
    // An SPI that matches nobody.
    bed.esp_send("srv", PUBLIC, 0x0bad_f00d, 2);
    bed.wait_metric("spimux_esp_unmatched_total", 2.0);
    bed.wait_metric("spimux_esp_collisions_total", 3.0);
    let m = bed.metrics();
    assert_eq!(metric_in(&m, "spimux_esp_collisions_total"), 3.0);
    assert_eq!(
        metric_in(&m, "spimux_drops_total{reason=\"esp_collision\"}"),
        3.0
    );
    assert_eq!(metric_in(&m, "spimux_esp_unmatched_total"), 2.0);
    assert_eq!(metric_in(&m, "spimux_esp_bindings"), 0.0);
    assert_eq!(metric_in(&m, "spimux_esp_recorded_spis"), 2.0);
}

#[test]
fn malformed_input_is_counted_and_forwarding_continues() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let script = format!("{ROOT}/testbed/malformed.py");
    let in_mac = mac_of(&bed, "rt", "ri");
    let out_mac = mac_of(&bed, "rt", "ro");
    let from_inside = bed.ok(
        "h1",
        &[
            PY,
            &script,
            &format!("{}a", bed.p),
            &in_mac,
            "10.6.1.2",
            SERVER,
        ],
    );
    let from_outside = bed.ok(
        "wan",
        &[
            PY,
            &script,
            &format!("{}wr", bed.p),
            &out_mac,
            "203.0.113.1",
            PUBLIC,
        ],
    );
    // The last case each side sends is a frame for another MAC.
    bed.wait_metric("spimux_drops_total{reason=\"not_for_us\"}", 6.0);
    assert!(bed.router_alive(), "router survived: {}", bed.router_log());
    let m = bed.metrics();
    let mut reasons: Vec<String> = Vec::new();
    for out in [from_inside, from_outside] {
        for part in out.trim().trim_matches(['{', '}']).split(", ") {
            if let Some((_, r)) = part.split_once(": ") {
                reasons.push(r.trim_matches('"').to_string());
            }
        }
    }
    reasons.sort();
    reasons.dedup();
    let expected = [
        "arp_malformed",
        "fragment",
        "ip_bad_checksum",
        "ip_malformed",
        "ip_truncated",
        "malformed_l4",
        "non_ipv4",
        "not_for_us",
        "ttl_exceeded",
        "unsupported_protocol",
        "vlan",
    ];
    assert_eq!(reasons, expected, "the generator covers every case");
    for r in &reasons {
        let v = metric_in(&m, &format!("spimux_drops_total{{reason=\"{r}\"}}"));
        assert!(v >= 3.0, "drop reason {r} counted: {v}\n{m}");
    }
    // Forwarding continues for well-formed traffic from both hosts.
    for h in ["h1", "h2"] {
        bed.ok(h, &["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER]);
    }
}

#[test]
fn per_host_limit_stops_a_flood_without_starving_the_other_host() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router(
        "[nat.limits]\nmax_sessions_per_host = 200\nnew_sessions_per_sec_per_host = 100000\nnew_sessions_burst = 100000\n",
    );
    // Resolve the router's MAC up front without creating a session for h1: while ARP is
    // pending, h1's kernel would queue only a few hundred of the flood's packets.
    let rt_mac = mac_of(&bed, "rt", "ri");
    let link = format!("{}a", bed.p);
    bed.ok(
        "h1",
        &[
            "ip",
            "neigh",
            "replace",
            "10.6.1.1",
            "lladdr",
            &rt_mac,
            "dev",
            &link,
            "nud",
            "permanent",
        ],
    );
    // 3000 new UDP flows from h1, each from a fresh source port.
    let flood = format!(
        "import socket\nfor i in range(3000):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n s.sendto(b'x',('{SERVER}',9))\n s.close()\n"
    );
    bed.ok("h1", &[PY, "-c", &flood]);
    bed.wait_metric("spimux_drops_total{reason=\"host_limit\"}", 2800.0);
    let m = bed.metrics();
    assert_eq!(
        metric_in(&m, "spimux_nat_sessions_created_total{protocol=\"udp\"}"),
        200.0
    );
    assert!(metric_in(&m, "spimux_drops_total{reason=\"host_limit\"}") >= 2700.0);
    // The other host still gets new mappings.
    bed.ok("h2", &["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER]);
    bed.udp_echo_server();
    assert_eq!(bed.udp_echo("h2", "still-here"), "still-here");
}

#[test]
fn offloaded_frames_keep_their_offload_state_through_the_router() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    // The testbed's links offload (OFFLOADS=on): h1's TCP reaches the router as TSO
    // super-frames and its UDP with partial checksums. The WAN router's link to the
    // server finishes checksums in software (tx off), and the server verifies every
    // one (rx off): a wrong partial sum after translation shows up as InCsumErrors.
    bed.ok(
        "wan",
        &["ethtool", "-K", &format!("{}ws", bed.p), "tx", "off"],
    );
    bed.udp_echo_server();
    let data: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
        .collect();
    assert_eq!(bed.udp_echo("h1", "partial"), "partial");
    upload_intact(&mut bed, "h1", &data, 7000, "upload intact");
    let nstat = bed.ok(
        "srv",
        &["nstat", "-az", "TcpInCsumErrors", "UdpInCsumErrors"],
    );
    let errors: u64 = nstat
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(errors, 0, "server saw checksum errors:\n{nstat}");
    // Counters reach /metrics up to a publish interval after the packets.
    bed.wait_metric("spimux_offload_frames_total{kind=\"gso\"}", 1.0);
    let gso = bed.metric("spimux_offload_frames_total{kind=\"gso\"}");
    let segments = bed.metric("spimux_gso_segments_total");
    let partial = bed.metric("spimux_offload_frames_total{kind=\"partial_checksum\"}");
    println!("forwarded: {gso} GSO super-frames ({segments} segments), {partial} partial-checksum frames");
    assert!(segments > gso, "super-frames stand for several segments");
    assert!(
        partial >= 1.0,
        "the UDP echo left h1 with a partial checksum"
    );
    assert_eq!(
        bed.metric("spimux_drops_total{reason=\"offload_mismatch\"}"),
        0.0
    );
    assert_eq!(
        bed.metric("spimux_drops_total{reason=\"mtu_exceeded\"}"),
        0.0
    );
}

#[test]
fn oversize_packets_get_fragmentation_needed_and_tcp_adapts() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    // A smaller MTU on the WAN side (read by spimux at start), as behind a PPPoE or tunnel uplink.
    bed.ok(
        "rt",
        &["ip", "link", "set", &format!("{}ro", bed.p), "mtu", "1280"],
    );
    bed.start_router("");
    // DF ping larger than the WAN MTU: spimux answers RFC 1191 "fragmentation needed", MTU 1280.
    let o = bed.run(
        "h1",
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", SERVER,
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("Frag needed") && text.contains("mtu = 1280"),
        "ping output: {text}"
    );
    // TCP (DF set, TSO super-frames) learns the path MTU and gets through intact.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| ((i * 7) >> 3) as u8).collect();
    upload_intact(
        &mut bed,
        "h1",
        &data,
        7000,
        "upload intact over the smaller MTU",
    );
    bed.wait_metric("spimux_drops_total{reason=\"mtu_exceeded\"}", 1.0);
    assert!(bed.metric("spimux_drops_total{reason=\"mtu_exceeded\"}") >= 1.0);
    assert!(bed.metric("spimux_icmp_sent_total") >= 1.0);
}

/// Uploads `data` from `host` to the server over TCP (socat) and asserts it
/// arrived bit-exact (sha256 on the server side).
fn upload_intact(bed: &mut Bed, host: &str, data: &[u8], port: u16, what: &str) {
    let u = bed.upload_sink(&format!("{port}"), data, SERVER, port);
    bed.socat_upload(host, &u, SERVER, port, None);
    bed.assert_uploaded(&u, what);
}
