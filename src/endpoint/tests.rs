//! The endpoint's packet path without I/O: a client and a responder built
//! from the legacy manual-key fixtures (`tests/data/endpoint/manual-*.toml`)
//! exchange packets through `seal_for`/`inbound`.

use super::config::{Encap, EndpointConfig, Role};
use super::datapath::{inbound, seal_for};
use super::prepare;
use super::state::Shared;
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

fn load(file: &str, role: Role) -> Shared {
    prepare(&fixture(file), role).expect("valid").shared
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
fn from_h1(c: &Shared, payload_src: &str) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let (n, peer) = seal_for(c, &ping(payload_src, "10.99.0.1"), &mut out, 0).unwrap();
    // Plain ESP has no port: the peer is the configured gateway address, port 0.
    assert_eq!(peer.addr, "198.51.100.69:0".parse().unwrap());
    assert_eq!(peer.encap, Encap::None);
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
        seal_for(&r, &ping("10.99.0.1", "10.98.0.2"), &mut out, 0).unwrap_err(),
        TunnelDrop::PeerUnknown
    );
    let esp = from_h1(&c, "10.98.0.2");
    let len = inbound(&r, &esp, NAT, Encap::None, &mut out).unwrap().len;
    assert_eq!(out[..len], ping("10.98.0.2", "10.99.0.1")[..]);
    // Now the reply goes to the learned address on h1's SPI, and h1 opens it.
    let (n, peer) = seal_for(&r, &ping("10.99.0.1", "10.98.0.2"), &mut out, 0).unwrap();
    assert_eq!(peer.addr.ip(), NAT.ip());
    assert_eq!(out[..4], 0xd456_0ca1u32.to_be_bytes());
    let reply = out[..n].to_vec();
    let len = inbound(
        &c,
        &reply,
        "198.51.100.69:0".parse().unwrap(),
        Encap::None,
        &mut out,
    )
    .unwrap()
    .len;
    assert_eq!(out[..len], ping("10.99.0.1", "10.98.0.2")[..]);
    // h2's traffic goes to h2's SA, which has no address yet.
    assert_eq!(
        seal_for(&r, &ping("10.99.0.1", "10.98.0.3"), &mut out, 0).unwrap_err(),
        TunnelDrop::PeerUnknown
    );
    assert_eq!(
        seal_for(&r, &ping("10.99.0.1", "10.97.0.1"), &mut out, 0).unwrap_err(),
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
        inbound(&r, &bad, NAT, Encap::None, &mut out),
        Err(TunnelDrop::Esp(EspError::AuthFailed))
    );
    inbound(&r, &good, NAT, Encap::None, &mut out).unwrap();
    assert_eq!(
        inbound(&r, &good, NAT, Encap::None, &mut out),
        Err(TunnelDrop::Esp(EspError::Replay))
    );
    assert_eq!(
        inbound(&r, &good[..20], NAT, Encap::None, &mut out),
        Err(TunnelDrop::Esp(EspError::Truncated))
    );
    assert_eq!(
        inbound(&r, &good[..5], NAT, Encap::None, &mut out),
        Err(TunnelDrop::Esp(EspError::Truncated))
    );
    let mut unknown = good.clone();
    unknown[..4].copy_from_slice(&0x0bad_f00du32.to_be_bytes());
    assert_eq!(
        inbound(&r, &unknown, NAT, Encap::None, &mut out),
        Err(TunnelDrop::UnknownSpi)
    );
    // h1 sending from h2's inner address: authenticated but refused by policy.
    let spoof = from_h1(&c, "10.98.0.3");
    assert_eq!(
        inbound(&r, &spoof, NAT, Encap::None, &mut out),
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
    inbound(&r, &from_h1(&c, "10.98.0.2"), NAT, Encap::None, &mut out).unwrap();
    let other = "198.51.100.7:4500".parse().unwrap();
    inbound(&r, &from_h1(&c, "10.98.0.2"), other, Encap::Udp, &mut out).unwrap();
    let t = &r.tunnels[0];
    assert_eq!(t.peer.read().unwrap().addr, NAT);
    assert_eq!(t.rx.lock().unexpected_source, 1);
}

/// Loads a fixture with the first peer switched to AES-256-CBC with
/// HMAC-SHA-512-256 (`key_in`/`key_out` swapped on the other side).
fn load_sha512(file: &str, role: Role, swap: bool) -> Shared {
    use super::config::EspTransform;
    let mut cfg = fixture(file);
    let (a, b) = ("11".repeat(32 + 64), "22".repeat(32 + 64));
    let m = cfg.peers[0].manual.as_mut().expect("manual peer");
    m.transform = EspTransform::AesCbcHmacSha512;
    (m.key_in, m.key_out) = if swap { (b, a) } else { (a, b) };
    prepare(&cfg, role).expect("valid").shared
}

#[test]
fn a_cbc_tunnel_carries_packets_both_ways() {
    let c = load_sha512("client-h1.toml", Role::Client, false);
    let r = load_sha512("responder.toml", Role::Responder, true);
    let mut out = vec![0u8; 2048];
    let esp = from_h1(&c, "10.98.0.2");
    // 8 header + 16 IV + (28 inner IPv4/UDP + 5 + 2, padded to 48) + 32 ICV.
    assert_eq!(esp.len(), 8 + 16 + 48 + 32);
    let len = inbound(&r, &esp, NAT, Encap::None, &mut out).unwrap().len;
    assert_eq!(out[..len], ping("10.98.0.2", "10.99.0.1")[..]);
    let (n, _) = seal_for(&r, &ping("10.99.0.1", "10.98.0.2"), &mut out, 0).unwrap();
    let reply = out[..n].to_vec();
    let from = "198.51.100.69:0".parse().unwrap();
    let len = inbound(&c, &reply, from, Encap::None, &mut out)
        .unwrap()
        .len;
    assert_eq!(out[..len], ping("10.99.0.1", "10.98.0.2")[..]);
    // A packet from a peer left on the fixture's SHA-256 keys is refused: its
    // 16-byte ICV leaves a ciphertext that is not a whole number of blocks
    // under the 32-byte ICV this SA expects.
    let old = load("client-h1.toml", Role::Client);
    let esp = from_h1(&old, "10.98.0.2");
    assert_eq!(esp.len(), 8 + 16 + 48 + 16);
    assert!(inbound(&r, &esp, NAT, Encap::None, &mut out).is_err());
    assert_eq!(r.tunnels[0].rx.lock().packets, 1);
}
