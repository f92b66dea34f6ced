//! End-to-end: `spimux responder` crashes (SIGKILL) in the middle of TCP
//! uploads from two `spimux client`s behind the spimux router (plain ESP,
//! keys from IKE) and is started again with the same configuration. The
//! clients notice (liveness check unanswered), set up new IKE SAs and
//! CHILD_SAs with fresh keys, and the uploads arrive bit-exact. Both sides
//! write the key log; tshark decrypts the capture of the outside link with
//! it (IKE payloads; ESP with its ICV checked), which shows that no
//! (SPI, sequence) pair was sent twice under one key; old captured packets
//! sent again are dropped and counted at every receiver. Needs root; never
//! skipped in CI.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::endpoint::{key_log, tshark, tshark_tables, EspSa};
use support::*;

const GW_INNER: &str = "10.99.0.1";
/// (host, inner address, IKE proposal, ESP proposal): h1
/// with AES-GCM, h2 with AES-CBC + HMAC-SHA2-256, so tshark reads both key
/// log forms. No ESN: tshark 4.0 leaves the high sequence bits out of its
/// ICV check.
const HOSTS: [(&str, &str, &str, &str); 2] = [
    (
        "h1",
        "10.98.0.2",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16-noesn",
    ),
    (
        "h2",
        "10.98.0.3",
        "aes128-sha256-prfsha256-x25519",
        "aes128-sha256-noesn",
    ),
];
/// The restarted gateway's name in the bed.
const GW: &str = "responder-restarted";
/// Timers short enough that a dead gateway is noticed within about 2 s.
const FAST_IKE: &str =
    "retransmit_ms = 100\nretransmit_max_ms = 200\nretransmit_tries = 3\nrestart_delay_ms = 100";

fn write(bed: &Bed, name: &str, text: &str) -> PathBuf {
    let path = bed.dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The gateway: config/responder.toml's h1 and h2, no NAT detection (plain
/// ESP through the router), key log on.
fn responder_config(bed: &Bed, key_log: &Path) -> PathBuf {
    let mut t = format!(
        "[tun]\nname = \"spx0\"\naddress = \"{GW_INNER}/24\"\nmtu = 1400\n\
         [outer]\nlocal = \"{SERVER}\"\nudp_port = 4500\n\
         [spi_layout]\ntag_len = 2\nspi_offset = 2\ndigest_offset = 0\n\
         [metrics]\nlisten = \"127.0.0.1:9781\"\n\
         [ike]\n{FAST_IKE}\nkey_log = \"{}\"\n",
        key_log.display()
    );
    for (h, inner, _, _) in HOSTS {
        t += &format!(
            "[[peers]]\nname = \"{h}\"\ninner = [\"{inner}/32\"]\n\
             [peers.ike]\nlocal_id = \"gw\"\nremote_id = \"{h}\"\npsk = \"spimux-test-only-psk\"\n\
             nat_detection = \"off\"\n"
        );
    }
    write(bed, "responder.toml", &t)
}

/// A client like config/client-h1.toml with its own proposals, a
/// liveness check every second and the key log on.
fn client_config(bed: &Bed, host: usize, key_log: &Path) -> PathBuf {
    let (h, inner, ike, esp) = HOSTS[host];
    let t = format!(
        "[tun]\nname = \"spx0\"\naddress = \"{inner}/32\"\nmtu = 1400\n\
         [outer]\nlocal = \"0.0.0.0\"\nudp_port = 4500\n\
         [spi_layout]\ntag_len = 2\nspi_offset = 2\ndigest_offset = 0\n\
         [metrics]\nlisten = \"127.0.0.1:9782\"\n\
         [ike]\n{FAST_IKE}\nkey_log = \"{}\"\n\
         [[peers]]\nname = \"gateway\"\ninner = [\"10.99.0.0/24\"]\nremote = \"{SERVER}\"\n\
         [peers.ike]\nlocal_id = \"{h}\"\nremote_id = \"gw\"\npsk = \"spimux-test-only-psk\"\n\
         proposals = [\"{ike}\"]\nesp_proposals = [\"{esp}\"]\ndpd_secs = 1\n",
        key_log.display()
    );
    write(bed, &format!("client-{h}.toml"), &t)
}

/// Starts `testbed/slow_upload.py` from `host` (its inner address) to the
/// gateway, spread over 8 s.
fn start_slow_upload(bed: &Bed, host: &str, inner: &str, u: &Upload, port: u16) -> Child {
    let script = format!("{ROOT}/testbed/slow_upload.py");
    let (port, file) = (port.to_string(), u.file.to_str().unwrap());
    bed.cmd(
        host,
        &[
            "timeout", "60", PY, &script, file, GW_INNER, &port, inner, "8",
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap()
}

/// An ESP packet of the capture as tshark decrypted it.
#[derive(Debug)]
struct EspFrame {
    frame: u32,
    sa: EspSa,
    seq: u32,
    /// tshark recomputed the ICV and it matched.
    icv_good: bool,
    /// Inner destination and protocol number, when decrypted.
    inner: Option<(String, String)>,
}

fn esp_frames(conf: &Path, pcap: &Path) -> Vec<EspFrame> {
    let fields = [
        "frame.number",
        "ip.src",
        "ip.dst",
        "esp.spi",
        "esp.sequence",
        "esp.icv_good",
        "ip.proto",
    ];
    let mut args = vec!["-Y", "esp", "-T", "fields", "-E", "aggregator=;"];
    for f in fields {
        args.extend(["-e", f]);
    }
    tshark(conf, pcap, &args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // Outer header first, then the decrypted inner one.
            let part = |i: usize, j: usize| f.get(i).and_then(|v| v.split(';').nth(j));
            let spi = u32::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap();
            EspFrame {
                frame: f[0].parse().unwrap(),
                sa: (part(1, 0).unwrap().into(), part(2, 0).unwrap().into(), spi),
                seq: f[4].parse().unwrap(),
                icv_good: matches!(f[5], "1" | "True"),
                inner: part(2, 1)
                    .zip(part(6, 1))
                    .map(|(d, p)| (d.into(), p.into())),
            }
        })
        .collect()
}

/// What the crash run left: the bed with the restarted gateway, the
/// capture, the key logs and how many responder key log lines the crashed
/// process wrote.
struct Crash {
    bed: Bed,
    pcap: PathBuf,
    keys_r: PathBuf,
    keys_c: Vec<PathBuf>,
    lines_before: usize,
}

/// Clients up, capture on, 2 MB uploads from both; SIGKILL the gateway 3 s
/// in and start it again. Asserts the clients come back on new SAs and the
/// uploads arrive bit-exact (TCP retransmits across the gap).
fn crash_mid_transfer() -> Crash {
    let mut bed = Bed::up();
    bed.start_router("");
    let keys_r = bed.dir.join("keys-responder.txt");
    let r = responder_config(&bed, &keys_r);
    bed.start_endpoint("responder", "srv", "responder", &r, 9781);
    // The outside link, gateway side, from the clients' first IKE_SA_INIT on.
    let pcap = bed.dir.join("outside.pcap");
    let filter = "esp or udp port 500 or udp port 4500";
    let mut cap = bed.capture("wan", &format!("{}ws", bed.p), filter, None, "outside.pcap");
    let keys_c: Vec<PathBuf> = HOSTS
        .iter()
        .map(|(h, ..)| bed.dir.join(format!("keys-{h}.txt")))
        .collect();
    for (i, (h, ..)) in HOSTS.iter().enumerate() {
        let c = client_config(&bed, i, &keys_c[i]);
        bed.start_endpoint(h, h, "client", &c, 9782);
    }
    let ping = ["ping", "-c", "2", "-i", "0.2", "-W", "2", GW_INNER];
    for (h, ..) in HOSTS {
        bed.wait_endpoint_metric(h, "spimux_ike_child_sas{state=\"installed\"}", 1.0);
        bed.ok(h, &ping);
    }
    let uploads: Vec<Upload> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, (h, ..))| {
            let data = test_bytes(2 << 20, 0x5EED_0000 ^ i as u32);
            bed.upload_sink(&format!("restart-{h}"), &data, GW_INNER, 7201 + i as u16)
        })
        .collect();
    let senders: Vec<Child> = HOSTS
        .iter()
        .zip(&uploads)
        .enumerate()
        .map(|(i, ((h, inner, ..), u))| start_slow_upload(&bed, h, inner, u, 7201 + i as u16))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let lines_before = std::fs::read_to_string(&keys_r).unwrap().lines().count();
    let killed_at = Instant::now();
    bed.kill_endpoint("responder");
    // The TUN device goes with the process; the new one takes its name.
    while bed
        .run("srv", &["ip", "link", "show", "spx0"])
        .status
        .success()
    {
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "spx0 outlived the responder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    bed.start_endpoint(GW, "srv", "responder", &r, 9781);
    let auth_i =
        "spimux_ike_exchanges_total{exchange=\"ike_auth\",role=\"initiator\",result=\"ok\"}";
    for (h, ..) in HOSTS {
        bed.wait_endpoint_metric(h, "spimux_ike_dead_peers_total", 1.0);
        bed.wait_endpoint_metric(h, auth_i, 2.0);
    }
    println!(
        "clients back on new SAs {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    for ((h, ..), (u, mut s)) in HOSTS.iter().zip(uploads.iter().zip(senders)) {
        assert!(s.wait().unwrap().success(), "{h}: slow upload failed");
        let what = format!("{h}: 2 MB upload across the gateway's restart arrived bit-exact");
        bed.assert_uploaded(u, &what);
        bed.ok(h, &ping);
    }
    // tcpdump gets packets in blocks the kernel hands over after at most 1 s.
    std::thread::sleep(Duration::from_millis(1500));
    terminate(&mut cap);

    let m = bed.endpoint_metrics(GW);
    println!(
        "the restarted gateway dropped {} IKE messages of the old SAs (unknown SPI)",
        metric_in(&m, "spimux_ike_drops_total{reason=\"unknown_spi\"}")
    );
    let auth_r =
        "spimux_ike_exchanges_total{exchange=\"ike_auth\",role=\"responder\",result=\"ok\"}";
    assert_eq!(metric_in(&m, auth_r), 2.0, "{m}");
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        2.0,
        "{m}"
    );
    for (h, ..) in HOSTS {
        let c = bed.endpoint_metrics(h);
        assert_eq!(metric_in(&c, auth_i), 2.0, "{h}: a second IKE SA\n{c}");
        assert_eq!(
            metric_in(&c, "spimux_ike_dead_peers_total"),
            1.0,
            "{h}\n{c}"
        );
        let log = bed.log(h);
        assert!(
            log.contains("IKE SA down") && log.contains("dead_peer"),
            "{log}"
        );
    }
    Crash {
        bed,
        pcap,
        keys_r,
        keys_c,
        lines_before,
    }
}

/// What the key logs say about the ESP SAs.
struct Keys {
    /// Each SA (addresses as the gateway sees them) and its keys.
    esp: HashMap<EspSa, String>,
    /// The SAs of the crashed gateway.
    pre: BTreeSet<EspSa>,
    /// The daemon receiving on each SPI.
    receiver: HashMap<u32, &'static str>,
}

/// Both ends logged the same keys; after the restart every SPI and key is new.
fn check_key_logs(c: &Crash) -> Keys {
    let text = std::fs::read_to_string(&c.keys_r).unwrap();
    let gw = key_log(&text);
    let first: Vec<&str> = text.lines().take(c.lines_before).collect();
    let pre = key_log(&first.join("\n")).esp;
    let (mut ike_c, mut esp_c) = (BTreeSet::new(), BTreeSet::new());
    let mut receiver: HashMap<u32, &'static str> = HashMap::new();
    for ((_, _, spi), _) in gw.esp.iter().filter(|(sa, _)| sa.0 == PUBLIC) {
        receiver.insert(*spi, GW);
    }
    for ((h, ..), p) in HOSTS.iter().zip(&c.keys_c) {
        let l = key_log(&std::fs::read_to_string(p).unwrap());
        ike_c.extend(l.ike);
        for ((_, _, spi), _) in l.esp.iter().filter(|(sa, _)| sa.0 == SERVER) {
            receiver.insert(*spi, h);
        }
        // Each side logs addresses as it sees them (the router translates).
        esp_c.extend(l.esp.into_iter().map(|((_, _, spi), k)| (spi, k)));
    }
    assert_eq!(gw.ike, ike_c, "IKE keys: gateway and clients agree");
    let esp_gw: BTreeSet<(u32, String)> = gw.esp.iter().map(|(sa, k)| (sa.2, k.clone())).collect();
    assert_eq!(esp_gw, esp_c, "ESP keys: gateway and clients agree");
    assert_eq!(gw.ike.len(), 4, "two IKE SAs per client, before and after");
    assert_eq!(
        gw.esp.len(),
        8,
        "two CHILD_SAs per client, two directions each"
    );
    assert_eq!(pre.len(), 4, "the crashed gateway logged both clients' SAs");
    for ((_, _, spi), k) in &gw.esp[pre.len()..] {
        assert!(
            pre.iter().all(|((_, _, s), old)| s != spi && old != k),
            "SPI {spi:#010x} or its key reused after the restart"
        );
    }
    Keys {
        esp: gw.esp.into_iter().collect(),
        pre: pre.into_iter().map(|(sa, _)| sa).collect(),
        receiver,
    }
}

/// tshark decrypts every IKE message after IKE_SA_INIT with the key log;
/// each client's two IKE_AUTH requests show IDi, IDr and the PSK AUTH.
fn check_ike_in_capture(conf: &Path, pcap: &Path) {
    let hidden = "isakmp.exchangetype != 34 && !isakmp.enc.decrypted";
    let undecrypted = tshark(conf, pcap, &["-Y", hidden]);
    assert_eq!(undecrypted, "", "IKE messages tshark did not decrypt");
    let auth = tshark(
        conf,
        pcap,
        &[
            "-Y",
            "isakmp.exchangetype == 35 && isakmp.flags == 0x08",
            "-T",
            "fields",
            "-E",
            "aggregator=;",
            "-e",
            "isakmp.id.data.fqdn",
            "-e",
            "isakmp.auth.method",
        ],
    );
    for (h, ..) in HOSTS {
        let want = format!("{h};gw\t2");
        let n = auth.lines().filter(|l| *l == want).count();
        assert_eq!(
            n, 2,
            "{h}: decrypted IKE_AUTH requests (IDi;IDr AUTH method):\n{auth}"
        );
    }
}

/// tshark decrypts every ESP packet with the key log and its ICV checks;
/// no (SPI, sequence) pair appears twice under one key, and each SA's
/// numbers start at 1. Returns the packets.
fn check_esp_in_capture(conf: &Path, pcap: &Path, k: &Keys) -> Vec<EspFrame> {
    let (keys, pre) = (&k.esp, &k.pre);
    let frames = esp_frames(conf, pcap);
    let mut seqs: BTreeMap<(&EspSa, &String), Vec<u32>> = BTreeMap::new();
    for f in &frames {
        assert!(f.icv_good, "tshark's ICV check: {f:?}");
        let key = keys
            .get(&f.sa)
            .unwrap_or_else(|| panic!("ESP without a key log line: {f:?}"));
        seqs.entry((&f.sa, key)).or_default().push(f.seq);
    }
    for proto in [("1", "ICMP"), ("6", "TCP")] {
        for era in [true, false] {
            let seen = frames.iter().any(|f| {
                f.sa.0 == PUBLIC
                    && pre.contains(&f.sa) == era
                    && f.inner == Some((GW_INNER.into(), proto.0.into()))
            });
            let when = if era { "before" } else { "after" };
            assert!(
                seen,
                "decrypted {} to {GW_INNER} {when} the restart",
                proto.1
            );
        }
    }
    println!(
        "{:<14} {:<14} {:>10} {:>7} {:>7}  era",
        "src", "dst", "SPI", "packets", "seq max"
    );
    for ((sa, _), s) in &seqs {
        let era = if pre.contains(*sa) { "before" } else { "after" };
        let (src, dst, spi) = sa;
        let max = s.iter().max().copied().unwrap_or(0);
        println!(
            "{src:<14} {dst:<14} {spi:#010x} {:>7} {max:>7}  {era}",
            s.len()
        );
        let unique: BTreeSet<u32> = s.iter().copied().collect();
        assert_eq!(
            unique.len(),
            s.len(),
            "{sa:?}: a sequence number twice under one key"
        );
        assert_eq!(unique.first(), Some(&1), "{sa:?}: a fresh counter");
    }
    assert_eq!(seqs.len(), keys.len(), "ESP on every SA of the key log");
    frames
}

/// ESP datagrams received by each of `m`.
fn outer_rx(m: &[String]) -> Vec<f64> {
    m.iter()
        .map(|t| metric_in(t, "spimux_outer_rx_packets_total"))
        .collect()
}

/// Metrics of every receiver once they received `at_least` more ESP
/// datagrams than in `since` (in total) and their counters stopped moving.
fn settled(bed: &Bed, names: &[&str], since: &[String], at_least: usize) -> Vec<String> {
    let base: f64 = outer_rx(since).iter().sum();
    let mut last = Vec::new();
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(200));
        let m: Vec<String> = names.iter().map(|n| bed.endpoint_metrics(n)).collect();
        let now = outer_rx(&m);
        if now == outer_rx(&last) && now.iter().sum::<f64>() - base >= at_least as f64 {
            return m;
        }
        last = m;
    }
    panic!("{names:?}: not {at_least} more ESP datagrams, or they kept coming");
}

/// Sends old captured ESP packets again from the WAN, each toward its
/// original receiver: of every SA from before the restart its last two
/// (unknown SPIs now); of every SA after it its first two and last two
/// (already seen). Each receiver drops all of them, counted by reason, and
/// delivers none to its TUN device.
fn check_replays(bed: &Bed, pcap: &Path, frames: &[EspFrame], k: &Keys) {
    let mut by_sa: BTreeMap<&EspSa, Vec<&EspFrame>> = BTreeMap::new();
    for f in frames {
        by_sa.entry(&f.sa).or_default().push(f);
    }
    // receiver → (expected unknown SPI drops, expected replay drops)
    let mut want: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut replay: Vec<&EspFrame> = Vec::new();
    for (sa, fs) in &by_sa {
        assert!(fs.len() > 4, "{sa:?}: {} packets", fs.len());
        let to = k.receiver.get(&sa.2).copied();
        let w = want.entry(to.expect("receiver in a key log")).or_default();
        if k.pre.contains(*sa) {
            replay.extend(&fs[fs.len() - 2..]);
            w.0 += 2.0;
        } else {
            replay.extend(&fs[..2]);
            replay.extend(&fs[fs.len() - 2..]);
            w.1 += 4.0;
        }
    }
    let names: Vec<&str> = want.keys().copied().collect();
    assert_eq!(
        names.len(),
        3,
        "the gateway and both clients receive replays"
    );
    let before = settled(bed, &names, &[], 0);
    let script = format!("{ROOT}/testbed/pcap_replay.py");
    let mut args = vec![PY.to_string(), script, pcap.to_str().unwrap().into()];
    args.extend(replay.iter().map(|f| f.frame.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sent = bed.ok("wan", &args);
    assert_eq!(sent.trim(), replay.len().to_string(), "frames sent again");
    let after = settled(bed, &names, &before, replay.len());
    for (i, (name, (unknown, replayed))) in want.iter().enumerate() {
        let delta = |s: &str| metric_in(&after[i], s) - metric_in(&before[i], s);
        let drop = |r: &str| delta(&format!("spimux_tunnel_drops_total{{reason=\"{r}\"}}"));
        let (old, window) = (drop("unknown_spi"), drop("replay"));
        let too_old = drop("replay_too_old");
        println!(
            "{name}: {unknown} pre-restart packets → unknown_spi +{old}; \
             {replayed} post-restart packets → replay +{window}, replay_too_old +{too_old}"
        );
        assert_eq!(old, *unknown, "{name}: pre-restart SPIs are unknown");
        assert_eq!(window + too_old, *replayed, "{name}: anti-replay window");
        assert_eq!(
            delta("spimux_tun_tx_packets_total"),
            0.0,
            "{name}: nothing to the TUN"
        );
    }
}

#[test]
fn responder_restart_mid_transfer_fresh_keys_no_nonce_reuse_replays_dropped() {
    if !require_root() {
        return;
    }
    let c = crash_mid_transfer();
    let keys = check_key_logs(&c);
    let conf = c.bed.dir.join("tshark");
    tshark_tables(&conf, &c.keys_r);
    check_ike_in_capture(&conf, &c.pcap);
    let frames = check_esp_in_capture(&conf, &c.pcap, &keys);
    check_replays(&c.bed, &c.pcap, &frames, &keys);
}
