//! End-to-end: real ESP tunnels (spimux client on both inside hosts, spimux
//! responder on the server host) through the router, over plain ESP and UDP
//! encapsulation; nft masquerade for comparison; interop with tshark and
//! scapy; hostile packets on the wire. Needs root; never skipped in CI.

mod support;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use support::*;

/// The gateway's inner address (protected network 10.99.0.0/24 on its TUN).
const GW_INNER: &str = "10.99.0.1";
const HOSTS: [(&str, &str); 2] = [("h1", "10.98.0.2"), ("h2", "10.98.0.3")];
/// SPIs and keys of config/*.toml: (SPI, key+salt) for every SA on the wire.
const SAS: [(&str, &str); 4] = [
    ("0x759346e0", "1e7fc61de7e6446f12f70b6a2cd875fd862d686a"), // h1 → gateway
    ("0xd4560ca1", "d32fb68d2c38bf5c3386f80078bbd68b5742a6bd"), // gateway → h1
    ("0x8d6ea072", "4e37f6e205394d5f1e5cdb7a954413d258660ec4"), // h2 → gateway
    ("0x5eed0002", "9e5685a684f36e4ef9c8f454125d909bdb00154a"), // gateway → h2
];

/// config/<file> with every peer's `encap` set, written into the bed's directory.
fn endpoint_config(bed: &Bed, file: &str, encap: &str) -> PathBuf {
    let mut t: toml::Table = std::fs::read_to_string(format!("{ROOT}/config/{file}"))
        .unwrap()
        .parse()
        .unwrap();
    if let Some(toml::Value::Array(peers)) = t.get_mut("peers") {
        for p in peers.iter_mut().filter_map(|p| p.as_table_mut()) {
            if p.contains_key("remote") {
                p.insert("encap".into(), toml::Value::String(encap.into()));
            }
        }
    }
    let path = bed.dir.join(format!("{encap}-{file}"));
    std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
    path
}

/// Responder on the server host, clients on both inside hosts.
fn start_tunnels(bed: &mut Bed, encap: &str) {
    let r = endpoint_config(bed, "responder.toml", encap);
    bed.start_endpoint("responder", "srv", "responder", &r, 9781);
    for (h, _) in HOSTS {
        let c = endpoint_config(bed, &format!("client-{h}.toml"), encap);
        bed.start_endpoint(h, h, "client", &c, 9782);
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

/// Decrypts a capture with tshark and the configured keys; returns
/// (packets with a good ICV per SPI, packets with a bad ICV, inner ICMP count).
fn tshark_decrypt(bed: &Bed, file: &str, extra: &[&str]) -> (Vec<(String, usize)>, usize, usize) {
    let mut args: Vec<String> = vec![
        "-r".into(),
        bed.dir.join(file).to_str().unwrap().into(),
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "-o".into(),
        "esp.enable_authentication_check:TRUE".into(),
    ];
    for (spi, key) in SAS {
        args.push("-o".into());
        args.push(format!(
            "uat:esp_sa:\"IPv4\",\"*\",\"*\",\"{spi}\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{key}\",\"NULL\",\"\""
        ));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        [
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
        ]
        .map(String::from),
    );
    let o = std::process::Command::new("tshark")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut good: Vec<(String, usize)> = SAS.iter().map(|(s, _)| (s.to_string(), 0)).collect();
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
    // Every packet on the wire was plain ESP with the configured SPIs, and
    // tshark (an independent implementation) verifies and decrypts all of them.
    let (good, bad, icmp) = tshark_decrypt(&bed, "esp.pcap", &[]);
    println!("tshark, 80 captured ESP packets: ICV good per SPI {good:?}, ICV bad {bad}, inner ICMP {icmp}");
    assert_eq!(bad, 0);
    assert_eq!(good.iter().map(|g| g.1).sum::<usize>(), 80);
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
    assert!(m.contains("encap=\"esp\",remote=\"203.0.113.10:0\""), "{m}");
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
    // h1 runs the spimux client; the gateway is scapy's SecurityAssociation.
    let c = endpoint_config(&bed, "client-h1.toml", "none");
    bed.start_endpoint("h1", "h1", "client", &c, 9782);
    let gw = interop(
        &bed,
        &[
            "gateway",
            "--spi-in",
            SAS[0].0,
            "--key-in",
            SAS[0].1,
            "--spi-out",
            SAS[1].0,
            "--key-out",
            SAS[1].1,
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
    let atk = interop(&bed, &["attack", "--spi-in", SAS[0].0, "--dst", SERVER]);
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
