//! End-to-end: a mobile spimux client keeps its tunnel to a spimux responder
//! while it moves between a direct access network and one behind Linux nft
//! masquerade (testbed/mobility.sh), with a numbered UDP stream running each
//! way through the tunnel. Then registration attacks from another address.
//! Needs root; never skipped in CI.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::endpoint::*;
use support::*;

const GW_INNER: &str = "10.99.0.1";
const MOBILE_INNER: &str = "10.98.0.5";
/// Stream: one packet per direction every 2 ms for this long.
const STREAM_SECS: f64 = 7.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// (seq → send time) and (seq → (send time, receive time)) of one direction.
struct Direction {
    sent: Vec<(u64, f64)>,
    received: HashMap<u64, f64>,
}

fn read_direction(bed: &Bed, sender: &str, receiver: &str) -> Direction {
    let read = |f: &str| {
        let path = bed.dir.join(f);
        bed.wait_file(&path);
        std::fs::read_to_string(path).unwrap()
    };
    let sent = read(&format!("{sender}.sent"))
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    let received = read(&format!("{receiver}.received"))
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            Some((v.first()?.parse().ok()?, v.get(2)?.parse().ok()?))
        })
        .collect();
    Direction { sent, received }
}

impl Direction {
    /// Time from `from` to the arrival of the first packet sent at or after it.
    fn resumed_after(&self, from: f64) -> Option<f64> {
        self.sent
            .iter()
            .filter(|(_, t)| *t >= from)
            .find_map(|(seq, _)| self.received.get(seq))
            .map(|r| (r - from).max(0.0))
    }

    /// Packets sent in [from, to) that never arrived.
    fn lost_between(&self, from: f64, to: f64) -> usize {
        self.sent
            .iter()
            .filter(|(seq, t)| *t >= from && *t < to && !self.received.contains_key(seq))
            .count()
    }
}

/// What happened on one move.
struct Move {
    to: &'static str,
    blocked: bool,
    /// Just before / after the `ip` commands that moved the address.
    t_before: f64,
    t_after: f64,
    rreq_tx: f64,
    rrep_rx: f64,
    encap: &'static str,
    nat: &'static str,
    fell_back: bool,
    /// Route change seen by the client / registration accepted (Unix time).
    seen: f64,
    registered: f64,
}

fn sample(bed: &Bed, who: &str, s: &str) -> f64 {
    metric_in(&bed.endpoint_metrics(who), s)
}

/// Waits (at most 5 s) until the client sends with `encap`.
fn wait_encap(bed: &Bed, encap: &str) {
    let s = format!("spimux_tunnel_encapsulation{{peer=\"gateway\",encap=\"{encap}\"}}");
    let v = bed.wait_endpoint_metric("mob", &s, 1.0);
    assert_eq!(
        v,
        1.0,
        "client never settled on {encap}:\n{}",
        bed.log("mob")
    );
}

fn gateway_view(bed: &Bed) -> String {
    bed.endpoint_metrics("gw")
        .lines()
        .find(|l| l.starts_with("spimux_sa_info{peer=\"m1\""))
        .unwrap_or_default()
        .to_string()
}

fn stream(bed: &mut Bed, host: &str, bind: &str, peer: &str) {
    let script = format!("{ROOT}/testbed/mobility_stream.py");
    let dir = bed.dir.clone();
    let f = |k: &str| {
        dir.join(format!("{host}.{k}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let (sent, received) = (f("sent"), f("received"));
    bed.spawn(
        host,
        &[
            PY,
            &script,
            "--bind",
            &format!("{bind}:7000"),
            "--peer",
            &format!("{peer}:7000"),
            "--interval-ms",
            "2",
            "--duration",
            &STREAM_SECS.to_string(),
            "--sent",
            &sent,
            "--received",
            &received,
        ],
    );
}

#[test]
fn mobile_endpoint_keeps_its_tunnel_across_moves_and_nat() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::mobility();
    // Keys from IKE; the gateway checks the mobile's liveness every second,
    // so its IKE SA has to follow every move (a registration moves it).
    let responder = edited(&bed, "responder.toml", |t| {
        peer_ike(t, 2).insert("dpd_secs".into(), toml::Value::Integer(1));
    });
    let mobile = std::path::PathBuf::from(format!("{ROOT}/config/mobile.toml"));
    bed.start_endpoint("gw", "gw", "responder", &responder, 9781);
    bed.topology(&["move", "direct"]);
    bed.start_endpoint("mob", "mob", "client", &mobile, 9782);
    bed.wait_endpoint_metric("mob", "spimux_ike_child_sas{state=\"installed\"}", 1.0);
    // First registration: a direct path, untranslated, passes protocol 50.
    wait_encap(&bed, "esp");
    let mut cap = bed.capture(
        "gw",
        &format!("{}g", bed.p),
        "udp port 4500",
        None,
        "gw.pcap",
    );
    stream(&mut bed, "mob", MOBILE_INNER, GW_INNER);
    stream(&mut bed, "gw", GW_INNER, MOBILE_INNER);
    let stream_end = now() + STREAM_SECS;
    std::thread::sleep(Duration::from_millis(600));

    let plan: [(&str, bool); 4] = [
        ("nat", false),
        ("direct", false),
        ("nat", false),
        ("direct", true),
    ];
    let mut moves = Vec::new();
    for (to, blocked) in plan {
        if blocked {
            bed.topology(&["block-esp", "on"]);
        }
        let m = |s: &str| sample(&bed, "mob", s);
        let rreq0 = m("spimux_mobility_messages_total{type=\"rreq\",direction=\"tx\"}");
        let rrep0 = m("spimux_mobility_messages_total{type=\"rrep\",direction=\"rx\"}");
        let acc0 = m("spimux_mobility_registrations_total{result=\"accepted\"}");
        let napt0 = m("spimux_mobility_nat_detected_total{kind=\"address_and_port\"}");
        let fb0 = m("spimux_mobility_fallbacks_total");
        let t_before = now();
        bed.topology(&["move", to]);
        let t_after = now();
        bed.wait_endpoint_metric(
            "mob",
            "spimux_mobility_registrations_total{result=\"accepted\"}",
            acc0 + 1.0,
        );
        let expect = match (to, blocked) {
            ("direct", false) => "esp",
            _ => "udp",
        };
        if blocked {
            bed.wait_endpoint_metric("mob", "spimux_mobility_fallbacks_total", fb0 + 1.0);
        }
        wait_encap(&bed, expect);
        // Let the stream run on the new path before the next move.
        std::thread::sleep(Duration::from_millis(700));
        let m = |s: &str| sample(&bed, "mob", s);
        moves.push(Move {
            to,
            blocked,
            t_before,
            t_after,
            rreq_tx: m("spimux_mobility_messages_total{type=\"rreq\",direction=\"tx\"}") - rreq0,
            rrep_rx: m("spimux_mobility_messages_total{type=\"rrep\",direction=\"rx\"}") - rrep0,
            encap: expect,
            nat: if m("spimux_mobility_nat_detected_total{kind=\"address_and_port\"}") > napt0 {
                "address_and_port"
            } else {
                "none"
            },
            fell_back: m("spimux_mobility_fallbacks_total") > fb0,
            seen: m("spimux_mobility_last_path_change_timestamp_seconds"),
            registered: m("spimux_mobility_last_registration_timestamp_seconds"),
        });
        // The gateway agrees on where and how to send.
        let view = gateway_view(&bed);
        assert!(
            view.contains(&format!("encap=\"{expect}\"")),
            "gateway after move to {to}: {view}"
        );
        let addr = if to == "direct" {
            "203.0.113.10:"
        } else {
            "203.0.113.66:"
        };
        assert!(view.contains(addr), "gateway after move to {to}: {view}");
        // The control sockets show the same registration from both ends, and
        // the gateway's IKE SA at the new address.
        let c = bed.endpoint_show("mob", &["show", "mobility"]);
        assert_eq!(
            (c["mobility"].as_str(), c["state"]["encap"].as_str()),
            (Some("client"), Some(expect)),
            "{c}"
        );
        assert_eq!(c["state"]["registered"], true, "{c}");
        let g = bed.endpoint_show("gw", &["show", "mobility", "--peer", "m1"]);
        let reg = &g["registrations"][0];
        assert_eq!(reg["source"].as_str(), addr.strip_suffix(':'), "{g}");
        assert!(reg["last_id"].as_u64().is_some(), "{g}");
        let ike = bed.endpoint_show("gw", &["show", "ike", "--peer", "m1"]);
        assert!(
            ike["ike_sas"][0]["remote"]
                .as_str()
                .is_some_and(|r| r.starts_with(addr)),
            "{ike}"
        );
    }
    assert!(
        now() < stream_end,
        "the moves outlasted the stream; raise STREAM_SECS"
    );
    // The IKE SA moved with the registrations: the gateway's liveness checks
    // keep being answered at the mobile's latest address, none timed out.
    let dpd_ok =
        "spimux_ike_exchanges_total{exchange=\"informational\",role=\"initiator\",result=\"ok\"}";
    let dpd_timeout = "spimux_ike_exchanges_total{exchange=\"informational\",role=\"initiator\",result=\"timeout\"}";
    let ok0 = sample(&bed, "gw", dpd_ok);
    let ok1 = bed.wait_endpoint_metric("gw", dpd_ok, ok0 + 2.0);
    assert!(
        ok1 >= ok0 + 2.0,
        "liveness checks answered: {ok0} → {ok1}\n{}",
        ["gw", "mob"]
            .map(|w| bed
                .endpoint_metrics(w)
                .lines()
                .filter(
                    |l| (l.starts_with("spimux_ike") || l.contains("drop")) && !l.ends_with(" 0")
                )
                .collect::<Vec<_>>()
                .join("\n"))
            .join("\n----\n")
    );
    assert_eq!(sample(&bed, "gw", dpd_timeout), 0.0);
    assert_eq!(sample(&bed, "gw", "spimux_ike_dead_peers_total"), 0.0);
    let moved = bed
        .log("gw")
        .matches("IKE SA moved with the registration")
        .count();
    assert!(
        moved >= plan.len(),
        "IKE SA moved {moved} times:\n{}",
        bed.log("gw")
    );
    println!(
        "gateway liveness checks after the moves: ok {ok0} → {ok1}, IKE SA moved {moved} times"
    );

    // Wait for both streams to finish and write their logs.
    while now() < stream_end + 1.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = read_direction(&bed, "mob", "gw");
    let down = read_direction(&bed, "gw", "mob");
    println!("Per move. ip: duration of the `ip -batch` that moved the address (its start is t0).");
    println!("seen: t0 → client saw the route change (rtnetlink; upper bound of the notice time).");
    println!("reg: change seen → registration reply in. up/down: address usable (end of ip) →");
    println!(
        "first packet sent after it arrives, client→server / server→client. lost: whole move."
    );
    println!(
        "{:<30} {:>4} {:>4} {:>5} {:>16} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5}",
        "move",
        "RREQ",
        "RREP",
        "encap",
        "NAT",
        "ip ms",
        "seen",
        "reg",
        "up",
        "down",
        "lost↑",
        "lost↓"
    );
    for (i, m) in moves.iter().enumerate() {
        let until = moves.get(i + 1).map_or(stream_end, |n| n.t_before);
        let resumed_up = up.resumed_after(m.t_after);
        let resumed_down = down.resumed_after(m.t_after);
        let label = format!(
            "→ {}{}{}",
            m.to,
            if m.blocked { " (ESP blocked)" } else { "" },
            if m.fell_back { " fallback" } else { "" }
        );
        let ms = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{:.2}", s * 1000.0));
        println!(
            "{:<30} {:>4} {:>4} {:>5} {:>16} {:>6.2} {:>6.2} {:>6.2} {:>6} {:>6} {:>5} {:>5}",
            label,
            m.rreq_tx,
            m.rrep_rx,
            m.encap,
            m.nat,
            (m.t_after - m.t_before) * 1000.0,
            (m.seen - m.t_before) * 1000.0,
            (m.registered - m.seen) * 1000.0,
            ms(resumed_up),
            ms(resumed_down),
            up.lost_between(m.t_before, until),
            down.lost_between(m.t_before, until),
        );
        assert!(
            m.seen >= m.t_before && m.registered >= m.seen,
            "{label}: the client saw this move and registered after it"
        );
        assert!(
            resumed_up.is_some(),
            "client→server never resumed after {label}"
        );
        assert!(
            resumed_down.is_some(),
            "server→client never resumed after {label}"
        );
        if m.to == "nat" {
            assert_eq!(m.nat, "address_and_port", "{label}: NAPT reported");
        } else {
            assert_eq!(m.nat, "none", "{label}: direct path untranslated");
        }
        assert_eq!(
            m.fell_back, m.blocked,
            "{label}: fallback exactly when ESP is blocked"
        );
        // Not a timing assertion: once the reply is in, nothing is lost.
        let settled = m.t_after + 0.3;
        println!(
            "    server→client packets lost after the path settled (t+300 ms): {}",
            down.lost_between(settled, until)
        );
    }

    // Attacks from another address (the core router's 203.0.113.1).
    // SIGTERM reaches tcpdump through `timeout`: it flushes the capture and exits.
    terminate(&mut cap);
    let before_view = gateway_view(&bed);
    // The gateway's inbound SPI for the mobile, as IKE negotiated it.
    let (gw_spi, _, _) = sa_info(&bed.endpoint_metrics("gw"), "m1");
    let g = |s: &str| sample(&bed, "gw", s);
    let replay0 = g("spimux_tunnel_replay_drops_total{peer=\"m1\"}");
    let auth0 = g("spimux_tunnel_auth_failures_total{peer=\"m1\"}");
    let accepted0 = g("spimux_mobility_registrations_total{result=\"accepted\"}");
    let script = format!("{ROOT}/testbed/mobility_attack.py");
    let pcap = bed.dir.join("gw.pcap");
    let attack = |mode: &str, extra: &[&str]| {
        let mut args = vec![
            PY,
            &script,
            mode,
            "--spi",
            &gw_spi,
            "--src",
            "203.0.113.1",
            "--dst",
            "198.51.100.69",
        ];
        args.extend_from_slice(extra);
        bed.ok("core", &args)
    };
    let out = attack("replay", &["--pcap", pcap.to_str().unwrap()]);
    println!("replay of a captured RREQ from 203.0.113.1: {}", out.trim());
    assert!(out.contains("\"replayed\": true"), "{out}");
    let out = attack("forge", &[]);
    assert!(out.contains("\"forged\": true"), "{out}");
    // The forged request fails its ICV. The replayed one is below the replay
    // window: without ESN it is a replay drop; with ESN (negotiated here) an
    // old sequence number reads as the next 2^32 epoch's and fails the ICV
    // instead (RFC 4303 Appendix A2.2). Either way both are dropped, counted.
    let dropped = || {
        g("spimux_tunnel_replay_drops_total{peer=\"m1\"}")
            + g("spimux_tunnel_auth_failures_total{peer=\"m1\"}")
    };
    let t0 = std::time::Instant::now();
    while dropped() < replay0 + auth0 + 2.0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let replay = g("spimux_tunnel_replay_drops_total{peer=\"m1\"}");
    let auth = g("spimux_tunnel_auth_failures_total{peer=\"m1\"}");
    println!(
        "gateway: replayed + forged RREQ → replay drops {replay0} → {replay}, auth failures {auth0} → {auth}"
    );
    assert_eq!(replay + auth, replay0 + auth0 + 2.0);
    assert!(auth > auth0, "the forged request failed its ICV");
    assert_eq!(gateway_view(&bed), before_view, "the SA did not move");
    assert_eq!(
        g("spimux_mobility_registrations_total{result=\"accepted\"}"),
        accepted0
    );
    // And the tunnel still carries traffic.
    let ping = bed.ok(
        "mob",
        &["ping", "-c", "3", "-i", "0.1", "-W", "2", GW_INNER],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}");

    forged_replies_from_other_inner_hosts_are_dropped(&bed, &script);
    raced_registration_moves_only_the_budget(&mut bed, &script, &gw_spi);
}

/// Registration replies inside the tunnel from another host behind the
/// gateway, or from the gateway's address but another port, are dropped by
/// the client and counted; nothing changes.
fn forged_replies_from_other_inner_hosts_are_dropped(bed: &Bed, script: &str) {
    let dropped = "spimux_mobility_dropped_total{reason=\"reply_source\"}";
    let accepted = "spimux_mobility_registrations_total{result=\"accepted\"}";
    let (d0, a0) = (sample(bed, "mob", dropped), sample(bed, "mob", accepted));
    bed.ok("gw", &["ip", "addr", "add", "10.99.0.7/32", "dev", "lo"]);
    for (src, sport) in [("10.99.0.7", "434"), (GW_INNER, "4343")] {
        let out = bed.ok(
            "gw",
            &[
                PY,
                script,
                "reply",
                "--src",
                src,
                "--sport",
                sport,
                "--dst",
                MOBILE_INNER,
            ],
        );
        assert!(out.contains("\"reply_sent\": true"), "{out}");
    }
    let d = bed.wait_endpoint_metric("mob", dropped, d0 + 2.0);
    println!("forged replies from 10.99.0.7:434 and {GW_INNER}:4343: dropped {d0} → {d}");
    assert_eq!(d, d0 + 2.0);
    assert_eq!(sample(bed, "mob", accepted), a0);
}

/// Polls the gateway's view of the mobile (at most 15 s) until it names `addr`.
fn wait_gateway_at(bed: &Bed, addr: &str) -> String {
    let t0 = std::time::Instant::now();
    loop {
        let v = gateway_view(bed);
        if v.contains(addr) || t0.elapsed() > Duration::from_secs(15) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An attacker on the direct path holds back the mobile's fresh request and
/// sends it from 203.0.113.1 first: it is authenticated and not a replay, so
/// the gateway moves — but sends the new address only its budget of data
/// until that address proves itself, which it never does. Once the path
/// clears, the mobile's own retransmission (a fresh identification) takes
/// the tunnel back, proven, and traffic flows again.
fn raced_registration_moves_only_the_budget(bed: &mut Bed, script: &str, gw_spi: &str) {
    let p = bed.p.clone();
    let ev = |e: &str| format!("spimux_mobility_unproven_total{{event=\"{e}\"}}");
    let acc = "spimux_mobility_registrations_total{result=\"accepted\"}";
    // Start from the NAT path; the attacker sits on the direct network.
    let a0 = sample(bed, "mob", acc);
    bed.topology(&["move", "nat"]);
    bed.wait_endpoint_metric("mob", acc, a0 + 1.0);
    wait_encap(bed, "udp");
    assert!(wait_gateway_at(bed, "203.0.113.66:").contains("203.0.113.66:"));
    let block = format!(
        "nft add table inet {p}race && nft add chain inet {p}race f '{{ type filter hook input priority filter; }}' \
         && nft add rule inet {p}race f ip saddr 203.0.113.10 drop"
    );
    // Dropped on the gateway's input, after the capture there saw it.
    bed.ok("gw", &["sh", "-c", &block]);
    let mut cap = bed.capture("gw", &format!("{p}g"), "udp port 4500", None, "race.pcap");
    std::thread::sleep(Duration::from_millis(300));
    let g = |s: &str| sample(bed, "gw", s);
    let (moved0, capped0, sent0, proven0) = (
        g(&ev("moved")),
        g(&ev("capped")),
        g(&ev("sent")),
        g(&ev("proven")),
    );
    let rreq = "spimux_mobility_messages_total{type=\"rreq\",direction=\"tx\"}";
    let r0 = sample(bed, "mob", rreq);
    bed.topology(&["move", "direct"]);
    // The request and its first retransmissions leave and are held back
    // (long enough for a freshly started tcpdump to have seen them).
    std::thread::sleep(Duration::from_millis(1500));
    println!(
        "requests sent while held back: {}",
        sample(bed, "mob", rreq) - r0
    );
    terminate(&mut cap);
    let pcap = bed.dir.join("race.pcap");
    let out = bed.ok(
        "core",
        &[
            PY,
            script,
            "replay",
            "--spi",
            gw_spi,
            "--src",
            "203.0.113.1",
            "--dst",
            "198.51.100.69",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    println!("raced registration: {}", out.trim());
    assert!(out.contains("\"replayed\": true"), "{out}\n{}", {
        let o = bed.run("core", &["tcpdump", "-nvr", pcap.to_str().unwrap()]);
        format!(
            "{}{}\nmob: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            bed.endpoint_metrics("mob")
                .lines()
                .filter(|l| l.starts_with("spimux_mobility_messages"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    });
    let moved = bed.wait_endpoint_metric("gw", &ev("moved"), moved0 + 1.0);
    assert_eq!(
        moved,
        moved0 + 1.0,
        "the fresh request moved the peer, unproven"
    );
    let view = gateway_view(bed);
    assert!(view.contains("203.0.113.1:4500"), "{view}");
    // Downlink toward the unproven address: the budget, then nothing.
    let _ = bed.run(
        "gw",
        &[
            "ping",
            "-c",
            "300",
            "-i",
            "0.002",
            "-W",
            "1",
            "-q",
            MOBILE_INNER,
        ],
    );
    let (capped, sent) = (g(&ev("capped")), g(&ev("sent")));
    println!(
        "toward 203.0.113.1: sent {} (budget 128), capped {}",
        sent - sent0,
        capped - capped0
    );
    assert!(
        sent - sent0 <= 128.0,
        "no more than the budget: {}",
        sent - sent0
    );
    assert!(capped > capped0, "the rest was capped");
    assert_eq!(
        g(&ev("proven")),
        proven0,
        "nothing proved the attacker's address"
    );
    // The path clears: the mobile's next retransmission wins, and proves itself.
    bed.ok(
        "gw",
        &["nft", "delete", "table", "inet", &format!("{p}race")],
    );
    let view = wait_gateway_at(bed, "203.0.113.10:");
    assert!(
        view.contains("203.0.113.10:"),
        "the mobile took its tunnel back: {view}"
    );
    let proven = bed.wait_endpoint_metric("gw", &ev("proven"), proven0 + 1.0);
    assert!(proven > proven0, "the mobile's address was proven");
    let ping = bed.ok(
        "mob",
        &["ping", "-c", "3", "-i", "0.1", "-W", "2", GW_INNER],
    );
    assert!(ping.contains(" 0% packet loss"), "{ping}");
}
