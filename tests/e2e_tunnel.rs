//! End-to-end: real ESP tunnels (spimux client on both inside hosts, spimux
//! responder on the server host) through the router, over plain ESP and UDP
//! encapsulation; nft masquerade for comparison; interop with tshark and
//! scapy; hostile packets on the wire. Needs root; never skipped in CI.

mod support;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use support::endpoint::*;
use support::*;

/// The gateway's inner address (protected network 10.99.0.0/24 on its TUN).
const GW_INNER: &str = "10.99.0.1";
const HOSTS: [(&str, &str); 2] = [("h1", "10.98.0.2"), ("h2", "10.98.0.3")];
/// The responder's key log (tshark tables) in the bed's directory.
fn key_log_path(bed: &Bed) -> PathBuf {
    bed.dir.join("responder-keys.txt")
}

/// Responder on the server host, IKE clients on both inside hosts; returns
/// once both CHILD_SAs are installed. `encap` "none": the responder answers
/// no NAT detection, so ESP stays plain through the spimux router; "udp": it
/// detects the router's NAT and both float to UDP 4500.
fn start_tunnels(bed: &mut Bed, encap: &str) {
    let nat_detection = if encap == "udp" { "auto" } else { "off" };
    let log = key_log_path(bed);
    let r = edited(bed, "responder.toml", |t| {
        ike_settings(t, nat_detection, &log);
        // tshark 4.0 checks ICVs without extended sequence numbers only.
        for i in 0..2 {
            peer_ike(t, i).insert(
                "esp_proposals".into(),
                toml::Value::Array(vec![toml::Value::String("aes128gcm16-noesn".into())]),
            );
        }
    });
    bed.start_endpoint("responder", "srv", "responder", &r, 9781);
    for (h, _) in HOSTS {
        let c = PathBuf::from(format!("{ROOT}/config/client-{h}.toml"));
        bed.start_endpoint(h, h, "client", &c, 9782);
    }
    for (h, _) in HOSTS {
        bed.wait_endpoint_metric(h, "spimux_ike_child_sas{state=\"installed\"}", 1.0);
    }
}

/// Pings the gateway's inner address from both hosts at once; returns the outputs.
fn ping_both(bed: &Bed, count: u32) -> [String; 2] {
    std::thread::scope(|s| {
        let j: Vec<_> = HOSTS
            .iter()
            .map(|(h, _)| {
                s.spawn(move || {
                    bed.ok(
                        h,
                        &[
                            "ping",
                            "-c",
                            &count.to_string(),
                            "-i",
                            "0.05",
                            "-W",
                            "2",
                            GW_INNER,
                        ],
                    )
                })
            })
            .collect();
        let mut it = j.into_iter().map(|j| j.join().unwrap());
        [it.next().unwrap(), it.next().unwrap()]
    })
}

/// Uploads `mb` MB of pseudo-random data from both hosts at once over TCP to
/// the protected network; asserts both arrive bit-exact (sha256).
fn upload_both(bed: &mut Bed, mb: usize) {
    let uploads: Vec<Upload> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            let data = test_bytes(mb << 20, 0x9E37_79B9 ^ i as u32);
            bed.upload_sink(h, &data, GW_INNER, 7001 + i as u16)
        })
        .collect();
    let bed_ref: &Bed = bed;
    std::thread::scope(|s| {
        for (i, ((h, _), u)) in HOSTS.iter().zip(&uploads).enumerate() {
            s.spawn(move || bed_ref.socat_upload(h, u, GW_INNER, 7001 + i as u16, None));
        }
    });
    for ((h, _), u) in HOSTS.iter().zip(&uploads) {
        bed.assert_uploaded(u, &format!("{h}: {mb} MB upload arrived bit-exact"));
    }
}

/// Decrypts a capture with tshark and the responder's key log, split into
/// tshark's tables the way docs/IKE.md tells operators to; returns
/// (packets with a good ICV per SPI of the log, packets with a bad ICV,
/// inner ICMP count).
fn tshark_decrypt(bed: &Bed, file: &str, extra: &[&str]) -> (Vec<(String, usize)>, usize, usize) {
    let conf = bed.dir.join(format!("tshark-{file}"));
    tshark_tables(&conf, &key_log_path(bed));
    let log = key_log(&std::fs::read_to_string(key_log_path(bed)).unwrap());
    let spis: Vec<String> = log
        .esp
        .iter()
        .map(|((_, _, spi), _)| format!("{spi:#010x}"))
        .collect();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend([
        "-T",
        "fields",
        "-e",
        "esp.spi",
        "-e",
        "esp.icv_good",
        "-e",
        "esp.icv_bad",
        "-e",
        "icmp.type",
    ]);
    let text = tshark(&conf, &bed.dir.join(file), &args);
    let mut good: Vec<(String, usize)> = spis.into_iter().map(|s| (s, 0)).collect();
    let (mut bad, mut icmp) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let (spi, ok, nok, ic) = (
            f[0],
            f.get(1).copied(),
            f.get(2).copied(),
            f.get(3).copied(),
        );
        if ok == Some("1") {
            if let Some(e) = good.iter_mut().find(|(s, _)| s == spi) {
                e.1 += 1;
            }
        }
        if nok == Some("1") {
            bad += 1;
        }
        if ic.is_some_and(|t| !t.is_empty()) {
            icmp += 1;
        }
    }
    (good, bad, icmp)
}

#[test]
fn plain_esp_tunnels_from_both_hosts_through_spimux() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    start_tunnels(&mut bed, "none");
    // Capture the outer packets between the router and the WAN for tshark.
    let mut cap = bed.capture("wan", &format!("{}wr", bed.p), "esp", Some(80), "esp.pcap");
    let pings = ping_both(&bed, 40);
    for (p, (h, _)) in pings.iter().zip(HOSTS) {
        assert!(p.contains(" 0% packet loss"), "{h}: {p}");
    }
    assert!(
        cap.wait().unwrap().success(),
        "tcpdump captured 80 ESP packets"
    );
    upload_both(&mut bed, 8);
    // Every packet on the wire was plain ESP on the SPIs IKE negotiated, and
    // tshark (an independent implementation) verifies and decrypts all of
    // them with the keys from the responder's key log.
    let (good, bad, icmp) = tshark_decrypt(&bed, "esp.pcap", &[]);
    println!("tshark, 80 captured ESP packets: ICV good per SPI {good:?}, ICV bad {bad}, inner ICMP {icmp}");
    assert_eq!(bad, 0);
    assert_eq!(good.iter().map(|g| g.1).sum::<usize>(), 80);
    assert_eq!(good.len(), 4, "two CHILD_SAs, two SAs each: {good:?}");
    assert!(good.iter().all(|g| g.1 > 0), "all four SAs seen: {good:?}");
    assert_eq!(icmp, 80, "every decrypted packet is the inner ICMP echo");
    // The router matched both responder SPIs by the hash relation.
    bed.wait_metric(
        "spimux_esp_matches_total{relation=\"responder_derived\"}",
        2.0,
    );
    assert_eq!(
        bed.metric("spimux_esp_matches_total{relation=\"responder_derived\"}"),
        2.0
    );
    assert_eq!(bed.metric("spimux_esp_collisions_total"), 0.0);
    let m = bed.endpoint_metrics("responder");
    for (h, _) in HOSTS {
        assert!(m.contains(&format!("peer=\"{h}\",local_spi=")), "{m}");
        assert!(metric_in(&m, &format!("spimux_tunnel_rx_bytes_total{{peer=\"{h}\"}}")) > 8e6);
        assert_eq!(
            metric_in(
                &m,
                &format!("spimux_tunnel_auth_failures_total{{peer=\"{h}\"}}")
            ),
            0.0
        );
    }
    assert_eq!(
        m.matches("encap=\"esp\",remote=\"203.0.113.10:").count(),
        2,
        "both peers on plain ESP behind the router's address: {m}"
    );
    for name in ["responder", "h1", "h2"] {
        assert!(bed.stop_endpoint(name), "{name} stopped cleanly");
    }
}

#[test]
fn udp_encapsulated_tunnels_from_both_hosts_through_spimux() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    start_tunnels(&mut bed, "udp");
    let mut cap = bed.capture(
        "wan",
        &format!("{}wr", bed.p),
        "udp port 4500",
        Some(40),
        "udp.pcap",
    );
    let pings = ping_both(&bed, 20);
    for (p, (h, _)) in pings.iter().zip(HOSTS) {
        assert!(p.contains(" 0% packet loss"), "{h}: {p}");
    }
    assert!(cap.wait().unwrap().success());
    upload_both(&mut bed, 8);
    let (good, bad, _) = tshark_decrypt(&bed, "udp.pcap", &["-d", "udp.port==4500,udpencap"]);
    println!("tshark, 40 captured UDP/4500 packets: ICV good per SPI {good:?}, ICV bad {bad}");
    assert_eq!(bad, 0);
    assert_eq!(good.iter().map(|g| g.1).sum::<usize>(), 40);
    // The router translated the two UDP flows like any other; no ESP state.
    let rm = bed.metrics();
    assert_eq!(metric_in(&rm, "spimux_esp_recorded_spis"), 0.0);
    // The uploads left each client as UDP GSO trains (TSO read from the TUN device,
    // sealed, one message per train), crossed the router as GSO super-frames and
    // reached the responder coalesced (UDP_GRO), per the testbed's OFFLOADS=on.
    let tx_trains = "spimux_udp_trains_total{direction=\"tx\"}";
    let rx_trains = "spimux_udp_trains_total{direction=\"rx\"}";
    for (h, _) in HOSTS {
        let t = bed.wait_endpoint_metric(h, tx_trains, 1.0);
        assert!(t >= 1.0, "{h} sent no UDP GSO train");
    }
    let r = bed.wait_endpoint_metric("responder", rx_trains, 1.0);
    assert!(r >= 1.0, "the responder received no coalesced train");
    bed.wait_metric("spimux_offload_frames_total{kind=\"gso\"}", 1.0);
    println!(
        "offloads: router forwarded {} GSO super-frames ({} segments); responder received {r} trains",
        metric_in(&rm, "spimux_offload_frames_total{kind=\"gso\"}"),
        metric_in(&rm, "spimux_gso_segments_total"),
    );
    let m = bed.endpoint_metrics("responder");
    let learned: Vec<&str> = m
        .lines()
        .filter(|l| {
            l.starts_with("spimux_sa_info") && l.contains("encap=\"udp\",remote=\"203.0.113.10:")
        })
        .collect();
    assert_eq!(learned.len(), 2, "both peers learned behind the NAPT: {m}");
    assert_ne!(
        learned[0].split("remote=").nth(1),
        learned[1].split("remote=").nth(1),
        "distinct ports"
    );
}

#[test]
fn plain_esp_through_nft_masquerade_fails_for_the_second_host() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    start_tunnels(&mut bed, "none");
    let spimux = ping_both(&bed, 5);
    assert!(bed.stop_router());
    for name in ["responder", "h1", "h2"] {
        bed.stop_endpoint(name);
    }
    // Same tunnels (fresh SAs), Linux nft masquerade instead of spimux.
    bed.topology(&["kernel-nat", "on"]);
    start_tunnels(&mut bed, "none");
    let loss = |h: &str| -> String {
        let o = bed.run(h, &["ping", "-c", "5", "-i", "0.1", "-W", "1", GW_INNER]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("no summary")
            .to_string()
    };
    // h1 first: the kernel's ESP conntrack entry (by addresses only) then belongs to h1.
    let k1 = loss("h1");
    let k2 = loss("h2");
    let summary = |p: &str| {
        p.lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("")
            .to_string()
    };
    println!("plain ESP tunnels, 5 pings per host to {GW_INNER}:");
    println!(
        "  spimux router:  h1 {} | h2 {}",
        summary(&spimux[0]),
        summary(&spimux[1])
    );
    println!("  nft masquerade: h1 {k1} | h2 {k2}");
    for p in &spimux {
        assert!(p.contains(" 0% packet loss"), "spimux: {p}");
    }
    assert!(
        k1.contains(" 0% packet loss"),
        "masquerade carries the first host: {k1}"
    );
    assert!(
        k2.contains("100% packet loss"),
        "masquerade fails the second host: {k2}"
    );
    let m = bed.endpoint_metrics("h2");
    assert_eq!(
        metric_in(&m, "spimux_tunnel_rx_packets_total{peer=\"gateway\"}"),
        0.0
    );
}

/// Starts testbed/esp_interop.py in the server namespace; returns once it listens.
fn interop(bed: &Bed, args: &[&str]) -> Child {
    let ready = bed.dir.join("interop.ready");
    let script = format!("{ROOT}/testbed/esp_interop.py");
    let mut full = vec!["timeout", "30", PY, &script];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--ready", ready.to_str().unwrap()]);
    let c = bed
        .cmd("srv", &full)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    bed.wait_file(&ready);
    c
}

#[test]
fn scapy_decrypts_ours_and_ours_accepts_scapys() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    // h1 runs the spimux client keyed by hand (the legacy mode: static keys
    // only with AES-CBC + HMAC-SHA-256); the gateway is scapy's
    // SecurityAssociation. AES-GCM interop is shown with IKE-negotiated keys
    // (tshark above, strongSwan in e2e_ike).
    let c = PathBuf::from(format!("{ROOT}/tests/data/endpoint/manual-client-h1.toml"));
    let t: toml::Table = std::fs::read_to_string(&c).unwrap().parse().unwrap();
    let m = &t["peers"][0]["manual"];
    let field = |k: &str| match &m[k] {
        toml::Value::Integer(i) => format!("{i:#010x}"),
        v => v.as_str().unwrap().to_string(),
    };
    let (spi_in, key_in) = (field("remote_spi"), field("key_out"));
    let (spi_out, key_out) = (field("local_spi"), field("key_in"));
    bed.start_endpoint("h1", "h1", "client", &c, 9782);
    let gw = interop(
        &bed,
        &[
            "gateway",
            "--spi-in",
            &spi_in,
            "--key-in",
            &key_in,
            "--spi-out",
            &spi_out,
            "--key-out",
            &key_out,
            "--peer-inner",
            HOSTS[0].1,
            "--gw-inner",
            GW_INNER,
        ],
    );
    // Ours → scapy: one UDP datagram through the tunnel; scapy's reply comes back through it.
    let answer = bed.ok(
        "h1",
        &[
            "sh",
            "-c",
            &format!("echo ours-to-scapy | socat -t 2 - UDP:{GW_INNER}:9999"),
        ],
    );
    let out = gw.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("scapy gateway: {report}");
    println!("spimux client received: {}", answer.trim());
    assert!(
        out.status.success(),
        "scapy decrypted the spimux client's ESP: {report}"
    );
    assert!(
        report.contains("\"payload\": \"ours-to-scapy\\n\""),
        "{report}"
    );
    assert_eq!(
        answer.trim(),
        "scapy-says-hi",
        "the spimux client accepted scapy's ESP"
    );
    let m = bed.endpoint_metrics("h1");
    assert_eq!(
        metric_in(&m, "spimux_tunnel_rx_packets_total{peer=\"gateway\"}"),
        1.0
    );
}

#[test]
fn tampered_replayed_truncated_and_unknown_spi_are_counted_and_the_tunnel_stays_up() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    start_tunnels(&mut bed, "none");
    // The responder's inbound SPI for h1, as IKE negotiated it.
    let (spi_in, _, _) = sa_info(&bed.endpoint_metrics("responder"), "h1");
    let atk = interop(&bed, &["attack", "--spi-in", &spi_in, "--dst", SERVER]);
    bed.ok("h1", &["ping", "-c", "1", "-W", "2", GW_INNER]);
    let out = atk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "attack driver: {report}");
    let r = "responder";
    let drops = |reason: &str| format!("spimux_tunnel_drops_total{{reason=\"{reason}\"}}");
    for reason in ["replay", "auth_failed", "truncated", "unknown_spi"] {
        assert_eq!(
            bed.wait_endpoint_metric(r, &drops(reason), 1.0),
            1.0,
            "{reason}"
        );
    }
    let m = bed.endpoint_metrics(r);
    assert_eq!(
        metric_in(&m, "spimux_tunnel_auth_failures_total{peer=\"h1\"}"),
        1.0
    );
    assert_eq!(
        metric_in(&m, "spimux_tunnel_replay_drops_total{peer=\"h1\"}"),
        1.0
    );
    println!("hostile packets at the responder: {report}");
    // The tunnel is still up in both directions.
    let p = bed.ok("h1", &["ping", "-c", "3", "-i", "0.1", "-W", "2", GW_INNER]);
    assert!(p.contains(" 0% packet loss"), "{p}");
}
