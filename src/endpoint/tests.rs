//! The endpoint core without I/O: a client and a responder built from the
//! legacy manual-key fixtures (`tests/data/endpoint/manual-*.toml`)
//! exchange packets through `Core::seal` / `Core::open`.

use super::config::{EndpointConfig, Role};
use super::core::{Core, Opened};
use super::prepare;
use super::tunnel::{Arrival, Encap};
use crate::esp::tunnel::TunnelDrop;
use crate::esp::EspError;
use crate::wire::build;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A manually keyed fixture config, parsed.
fn fixture(file: &str) -> EndpointConfig {
    let path = format!(
        "{}/tests/data/endpoint/manual-{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    toml::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("parses")
}

fn load(file: &str, role: Role) -> Core {
    prepare(&fixture(file), role).expect("valid").shared.core
}

/// Opens `esp` at `c` as if it came from `from` in `encap`.
fn inbound(
    c: &Core,
    esp: &[u8],
    from: SocketAddrV4,
    encap: Encap,
    out: &mut [u8],
) -> Result<Opened, TunnelDrop> {
    let arrival = Arrival {
        from,
        to: Ipv4Addr::new(198, 51, 100, 69),
        to_port: if encap == Encap::Udp { 4500 } else { 0 },
        encap,
    };
    c.open(esp, arrival, out)
}

fn ping(src: &str, dst: &str) -> Vec<u8> {
    build::udp(
        src.parse().unwrap(),
        4000,
        dst.parse().unwrap(),
        5000,
        b"inner",
    )
}

const NAT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 0);

/// Client h1 seals towards the gateway; returns the ESP packet.
fn from_h1(c: &Core, payload_src: &str) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let (n, peer) = c
        .seal(&ping(payload_src, "10.99.0.1"), &mut out, 0)
        .unwrap();
    // Plain ESP has no port: the peer is the configured gateway address, port 0.
    assert_eq!(peer.addr, "198.51.100.69:0".parse().unwrap());
    assert_eq!(peer.encap, Encap::Plain);
    out.truncate(n);
    out
}

#[test]
fn client_and_responder_talk_and_the_responder_learns_the_peer() {
    let c = load("client-h1.toml", Role::Client);
    let r = load("responder.toml", Role::Responder);
    let mut out = vec![0u8; 2048];
    // Before h1 spoke, the responder does not know where it is.
    assert_eq!(
        r.seal(&ping("10.99.0.1", "10.98.0.2"), &mut out, 0)
            .unwrap_err(),
        TunnelDrop::PeerUnknown
    );
    let esp = from_h1(&c, "10.98.0.2");
    let len = inbound(&r, &esp, NAT, Encap::Plain, &mut out).unwrap().len;
    assert_eq!(out[..len], ping("10.98.0.2", "10.99.0.1")[..]);
    // Now the reply goes to the learned address on h1's SPI, and h1 opens it.
    let (n, peer) = r
        .seal(&ping("10.99.0.1", "10.98.0.2"), &mut out, 0)
        .unwrap();
    assert_eq!(peer.addr.ip(), NAT.ip());
    assert_eq!(out[..4], 0xd456_0ca1u32.to_be_bytes());
    let reply = out[..n].to_vec();
    let len = inbound(
        &c,
        &reply,
        "198.51.100.69:0".parse().unwrap(),
        Encap::Plain,
        &mut out,
    )
    .unwrap()
    .len;
    assert_eq!(out[..len], ping("10.99.0.1", "10.98.0.2")[..]);
    // h2's traffic goes to h2's SA, which has no address yet.
    assert_eq!(
        r.seal(&ping("10.99.0.1", "10.98.0.3"), &mut out, 0)
            .unwrap_err(),
        TunnelDrop::PeerUnknown
    );
    assert_eq!(
        r.seal(&ping("10.99.0.1", "10.97.0.1"), &mut out, 0)
            .unwrap_err(),
        TunnelDrop::NoTunnel
    );
}

#[test]
fn tampered_replayed_truncated_unknown_and_spoofed_are_dropped_and_counted() {
    let c = load("client-h1.toml", Role::Client);
    let r = load("responder.toml", Role::Responder);
    let mut out = vec![0u8; 2048];
    let good = from_h1(&c, "10.98.0.2");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        inbound(&r, &bad, NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::Esp(EspError::AuthFailed))
    );
    inbound(&r, &good, NAT, Encap::Plain, &mut out).unwrap();
    assert_eq!(
        inbound(&r, &good, NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::Esp(EspError::Replay))
    );
    assert_eq!(
        inbound(&r, &good[..20], NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::Esp(EspError::Truncated))
    );
    assert_eq!(
        inbound(&r, &good[..5], NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::Esp(EspError::Truncated))
    );
    let mut unknown = good.clone();
    unknown[..4].copy_from_slice(&0x0bad_f00du32.to_be_bytes());
    assert_eq!(
        inbound(&r, &unknown, NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::UnknownSpi)
    );
    // h1 sending from h2's inner address: authenticated but refused by policy.
    let spoof = from_h1(&c, "10.98.0.3");
    assert_eq!(
        inbound(&r, &spoof, NAT, Encap::Plain, &mut out),
        Err(TunnelDrop::Policy)
    );
    let rx = r.tunnels[0].rx.lock();
    assert_eq!((rx.auth_failures, rx.replay_drops, rx.packets), (1, 1, 1));
}

#[test]
fn authenticated_packets_from_elsewhere_do_not_move_a_learned_peer() {
    let c = load("client-h1.toml", Role::Client);
    let r = load("responder.toml", Role::Responder);
    let mut out = vec![0u8; 2048];
    inbound(&r, &from_h1(&c, "10.98.0.2"), NAT, Encap::Plain, &mut out).unwrap();
    let other = "198.51.100.7:4500".parse().unwrap();
    inbound(&r, &from_h1(&c, "10.98.0.2"), other, Encap::Udp, &mut out).unwrap();
    let t = &r.tunnels[0];
    assert_eq!(t.peer.read().unwrap().addr, NAT);
    assert_eq!(t.rx.lock().unexpected_source, 1);
}

/// Loads a fixture with the first peer switched to AES-256-CBC with
/// HMAC-SHA-512-256 (`key_in`/`key_out` swapped on the other side).
fn load_sha512(file: &str, role: Role, swap: bool) -> Core {
    use super::config::EspTransform;
    let mut cfg = fixture(file);
    let (a, b) = ("11".repeat(32 + 64), "22".repeat(32 + 64));
    let m = cfg.peers[0].manual.as_mut().expect("manual peer");
    m.transform = EspTransform::AesCbcHmacSha512;
    (m.key_in, m.key_out) = if swap { (b, a) } else { (a, b) };
    prepare(&cfg, role).expect("valid").shared.core
}

#[test]
fn a_cbc_tunnel_carries_packets_both_ways() {
    let c = load_sha512("client-h1.toml", Role::Client, false);
    let r = load_sha512("responder.toml", Role::Responder, true);
    let mut out = vec![0u8; 2048];
    let esp = from_h1(&c, "10.98.0.2");
    // 8 header + 16 IV + (28 inner IPv4/UDP + 5 + 2, padded to 48) + 32 ICV.
    assert_eq!(esp.len(), 8 + 16 + 48 + 32);
    let len = inbound(&r, &esp, NAT, Encap::Plain, &mut out).unwrap().len;
    assert_eq!(out[..len], ping("10.98.0.2", "10.99.0.1")[..]);
    let (n, _) = r
        .seal(&ping("10.99.0.1", "10.98.0.2"), &mut out, 0)
        .unwrap();
    let reply = out[..n].to_vec();
    let from = "198.51.100.69:0".parse().unwrap();
    let len = inbound(&c, &reply, from, Encap::Plain, &mut out)
        .unwrap()
        .len;
    assert_eq!(out[..len], ping("10.99.0.1", "10.98.0.2")[..]);
    // A packet from a peer left on the fixture's SHA-256 keys is refused: its
    // 16-byte ICV leaves a ciphertext that is not a whole number of blocks
    // under the 32-byte ICV this SA expects.
    let old = load("client-h1.toml", Role::Client);
    let esp = from_h1(&old, "10.98.0.2");
    assert_eq!(esp.len(), 8 + 16 + 48 + 16);
    assert!(inbound(&r, &esp, NAT, Encap::Plain, &mut out).is_err());
    assert_eq!(r.tunnels[0].rx.lock().packets, 1);
}

/// A registration round trip through two cores in memory: what they ask
/// for comes back as `Action`s, which this test carries out itself.
#[test]
fn a_registration_round_trip_runs_through_the_cores_without_io() {
    use super::registration::{Action, SendKind};
    use crate::mobility::client::Path;
    let mut cfg = fixture("client-h1.toml");
    cfg.mobility.enabled = Some(true);
    cfg.mobility.gateway = Some(Ipv4Addr::new(10, 99, 0, 1));
    let c = prepare(&cfg, Role::Client).expect("valid").shared.core;
    let r = load("responder.toml", Role::Responder);
    let path = Path {
        src: Ipv4Addr::new(10, 6, 1, 2),
        oif: 2,
        via: None,
    };
    let mut actions = Vec::new();
    c.on_route(Some(path), 0, &mut actions);
    // A request over UDP and, offered by default, a plain-ESP copy.
    let sends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                packet,
                to,
                kind: SendKind::Request,
            } => Some((packet.clone(), *to)),
            _ => None,
        })
        .collect();
    assert!(!sends.is_empty(), "{actions:?}");
    let (req, to) = sends
        .iter()
        .find(|(_, to)| to.encap == Encap::Udp)
        .cloned()
        .expect("a request over UDP");
    assert_eq!(*to.addr.ip(), Ipv4Addr::new(198, 51, 100, 69));
    // The gateway gets it from behind a NAT, flags it as a registration,
    // moves the peer there and answers the way it came.
    let natted = SocketAddrV4::new(*NAT.ip(), 40_000);
    let mut out = vec![0u8; 2048];
    let o = inbound(&r, &req, natted, Encap::Udp, &mut out).unwrap();
    assert!(o.control);
    let arrival = Arrival {
        from: natted,
        to: Ipv4Addr::new(198, 51, 100, 69),
        to_port: 4500,
        encap: Encap::Udp,
    };
    let inner = out[..o.len].to_vec();
    let mut replies = Vec::new();
    r.on_control(o.tunnel, &inner, arrival, 5, &mut replies)
        .unwrap();
    let [Action::Send {
        packet: reply,
        to: back,
        kind: SendKind::Reply,
    }] = replies.as_slice()
    else {
        panic!("one reply, no IKE move for a manually keyed tunnel: {replies:?}");
    };
    assert_eq!((back.addr, back.encap), (natted, Encap::Udp));
    assert_eq!(r.tunnels[0].peer.read().unwrap().addr, natted);
    // The client takes the reply: registered, behind a NAT, stays on UDP.
    let from = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 69), 4500);
    let o = inbound(&c, reply, from, Encap::Udp, &mut out).unwrap();
    assert!(o.control);
    let inner = out[..o.len].to_vec();
    let arrival = Arrival {
        from,
        to: Ipv4Addr::new(10, 6, 1, 2),
        to_port: 4500,
        encap: Encap::Udp,
    };
    let mut more = Vec::new();
    c.on_control(o.tunnel, &inner, arrival, 10, &mut more)
        .unwrap();
    assert_eq!(c.mobility.stats.lock().accepted, 1);
    assert_eq!(c.tunnels[0].peer.read().unwrap().encap, Encap::Udp);
}

/// A mobile client core (fixture h1 with mobility on) and a responder core
/// whose unproven-address budget is `budget` packets.
fn mobile_pair(budget: u32, static_peer: bool) -> (Core, Core) {
    let mut cfg = fixture("client-h1.toml");
    cfg.mobility.enabled = Some(true);
    cfg.mobility.gateway = Some(Ipv4Addr::new(10, 99, 0, 1));
    let c = prepare(&cfg, Role::Client).expect("valid").shared.core;
    let mut rcfg = fixture("responder.toml");
    rcfg.mobility.unproven_packets = budget;
    if static_peer {
        rcfg.peers[0].remote = Some("203.0.113.10".into());
    }
    let r = prepare(&rcfg, Role::Responder).expect("valid").shared.core;
    (c, r)
}

fn arrival_at_gw(from: SocketAddrV4) -> Arrival {
    Arrival {
        from,
        to: Ipv4Addr::new(198, 51, 100, 69),
        to_port: 4500,
        encap: Encap::Udp,
    }
}

/// The client's UDP request after a route change.
fn request(c: &Core) -> Vec<u8> {
    use super::registration::{Action, SendKind};
    let path = crate::mobility::client::Path::from_src(Ipv4Addr::new(10, 6, 1, 2));
    let mut actions = Vec::new();
    c.on_route(Some(path), 0, &mut actions);
    actions
        .into_iter()
        .find_map(|a| match a {
            Action::Send {
                packet,
                to,
                kind: SendKind::Request,
            } if to.encap == Encap::Udp => Some(packet),
            _ => None,
        })
        .expect("a request over UDP")
}

/// The gateway handles `esp` (a request) arriving from `from`; returns its actions.
fn gateway_takes(r: &Core, esp: &[u8], from: SocketAddrV4) -> Vec<super::registration::Action> {
    let mut out = vec![0u8; 2048];
    let o = inbound(r, esp, from, Encap::Udp, &mut out).unwrap();
    assert!(o.control);
    let mut actions = Vec::new();
    r.on_control(
        o.tunnel,
        &out[..o.len],
        arrival_at_gw(from),
        5,
        &mut actions,
    )
    .unwrap();
    actions
}

fn downlink(r: &Core) -> Result<(usize, super::tunnel::Peer), TunnelDrop> {
    let mut out = vec![0u8; 2048];
    r.seal(&ping("10.99.0.1", "10.98.0.2"), &mut out, 0)
}

#[test]
fn a_request_re_sent_from_elsewhere_moves_only_a_small_budget_there() {
    let (c, r) = mobile_pair(3, false);
    let req = request(&c);
    // An attacker on the path re-sends the fresh request from 203.0.113.1
    // before the original arrives: authenticated, not a replay, so it moves.
    let elsewhere = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 4500);
    gateway_takes(&r, &req, elsewhere);
    let t = &r.tunnels[0];
    assert_eq!(t.peer.read().unwrap().addr, elsewhere);
    // Only the budget goes there.
    for _ in 0..3 {
        assert_eq!(downlink(&r).unwrap().1.addr, elsewhere);
    }
    for _ in 0..5 {
        assert_eq!(downlink(&r).unwrap_err(), TunnelDrop::UnprovenPeer);
    }
    let tx = t.tx.lock();
    assert_eq!((tx.unproven_sent, tx.unproven_capped), (3, 5));
    drop(tx);
    assert_eq!(r.mobility.stats.lock().unproven_moves, 1);
    // The original arrives late: a replay, dropped, nothing moves.
    let mut out = vec![0u8; 2048];
    let honest = SocketAddrV4::new(*NAT.ip(), 4500);
    assert_eq!(
        inbound(&r, &req, honest, Encap::Udp, &mut out),
        Err(TunnelDrop::Esp(EspError::Replay))
    );
    assert_eq!(t.peer.read().unwrap().addr, elsewhere);
}

#[test]
fn the_honest_client_proves_its_address_and_the_downlink_is_unlimited() {
    use super::registration::{Action, SendKind};
    let (c, r) = mobile_pair(1, false);
    let honest = SocketAddrV4::new(*NAT.ip(), 40_000);
    let replies = gateway_takes(&r, &request(&c), honest);
    // Half a round trip: the downlink already goes to the new address.
    assert_eq!(downlink(&r).unwrap().1.addr, honest);
    assert_eq!(downlink(&r).unwrap_err(), TunnelDrop::UnprovenPeer);
    // The client takes the reply and sends its proof (an ESP dummy packet).
    let [Action::Send { packet: reply, .. }] = replies.as_slice() else {
        panic!("{replies:?}")
    };
    let mut out = vec![0u8; 2048];
    let gw = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 69), 4500);
    let o = inbound(&c, reply, gw, Encap::Udp, &mut out).unwrap();
    let mut more = Vec::new();
    let at_client = Arrival {
        from: gw,
        to: Ipv4Addr::new(10, 6, 1, 2),
        to_port: 4500,
        encap: Encap::Udp,
    };
    c.on_control(o.tunnel, &out[..o.len], at_client, 10, &mut more)
        .unwrap();
    let proof = more
        .iter()
        .find_map(|a| match a {
            Action::Send {
                packet,
                kind: SendKind::Proof,
                ..
            } => Some(packet.clone()),
            _ => None,
        })
        .expect("a proof packet");
    // From another address it proves nothing (and is a dummy either way).
    assert_eq!(
        inbound(
            &r,
            &proof,
            SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 1), 4500),
            Encap::Udp,
            &mut out
        ),
        Err(TunnelDrop::Dummy)
    );
    assert_eq!(r.mobility.stats.lock().proofs, 0);
    // A second proof from the right address (the first was consumed by the replay window).
    let again = {
        let t = &c.tunnels[0];
        let mut b = vec![0u8; 256];
        let n = t.seal_dummy(&mut b, Encap::Udp, 12).unwrap();
        b.truncate(n);
        b
    };
    assert_eq!(
        inbound(&r, &again, honest, Encap::Udp, &mut out),
        Err(TunnelDrop::Dummy)
    );
    assert_eq!(r.mobility.stats.lock().proofs, 1);
    for _ in 0..10 {
        assert_eq!(downlink(&r).unwrap().1.addr, honest);
    }
}

#[test]
fn a_static_peer_is_never_moved_by_a_registration() {
    let (c, r) = mobile_pair(3, true);
    let configured = *r.tunnels[0].peer.read();
    let replies = gateway_takes(&r, &request(&c), SocketAddrV4::new(*NAT.ip(), 40_000));
    assert_eq!(*r.tunnels[0].peer.read(), configured);
    assert_eq!(replies.len(), 1, "refused, with a reply saying why");
    let s = r.mobility.stats.lock();
    let i = crate::mobility::gateway::Outcome::ALL
        .iter()
        .position(|o| *o == crate::mobility::gateway::Outcome::StaticPeer)
        .unwrap();
    assert_eq!(s.outcomes[i], 1);
    assert_eq!(s.unproven_moves, 0);
}

#[test]
fn the_client_drops_replies_from_another_inner_host() {
    use crate::mobility::{Code, Message, Rrep};
    let (c, r) = mobile_pair(3, false);
    request(&c);
    *r.tunnels[0].peer.write() = Some(super::tunnel::Peer::new(NAT, Encap::Plain));
    // Another host behind the gateway (10.99.0.7, inside the client's
    // selectors) sends an accepted reply for the pending identification.
    let rrep = Message::Rrep(Rrep {
        id: 0, // the source is checked before the identification
        code: Code::Accepted,
        observed: crate::mobility::OuterHeader {
            encap: Encap::Udp,
            src: *NAT.ip(),
            dst: Ipv4Addr::new(198, 51, 100, 69),
            sport: 4500,
            dport: 4500,
        },
        nat: Default::default(),
        use_encap: Some(Encap::Udp),
        keepalive_secs: 0,
        last_id: None,
    });
    let mut payload = [0u8; 128];
    let n = rrep.emit(&mut payload).unwrap();
    for (src, sport) in [("10.99.0.7", 434), ("10.99.0.1", 4343)] {
        let inner = build::udp(
            src.parse().unwrap(),
            sport,
            "10.98.0.2".parse().unwrap(),
            434,
            &payload[..n],
        );
        let mut out = vec![0u8; 2048];
        let (len, _) = r.seal(&inner, &mut out, 0).unwrap();
        let esp = out[..len].to_vec();
        let gw = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 69), 0);
        let o = inbound(&c, &esp, gw, Encap::Plain, &mut out).unwrap();
        assert!(o.control);
        let mut more = Vec::new();
        let at = Arrival {
            from: gw,
            to: Ipv4Addr::new(10, 6, 1, 2),
            to_port: 0,
            encap: Encap::Plain,
        };
        assert_eq!(
            c.on_control(o.tunnel, &out[..o.len], at, 10, &mut more),
            Err(TunnelDrop::ControlMalformed)
        );
        assert!(more.is_empty());
    }
    let s = c.mobility.stats.lock();
    assert_eq!((s.reply_wrong_source, s.rrep_rx, s.accepted), (2, 0, 0));
}
