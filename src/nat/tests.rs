//! NAT core behaviour, driven by byte-level packets and stepped time.

use super::config::{EspConfig, Filtering, NatConfig, Relations};
use super::events::{NatDrop, NatEvents, Proto};
use super::{Millis, Nat};
use crate::spi::Layout;
use crate::wire::build;
use crate::wire::tcp::flags;
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;

const H1: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
const H2: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 3);
const G: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const R: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);
const R2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 70);
const SEC: Millis = 1000;

fn nat_with(cfg: NatConfig, esp: EspConfig) -> Nat {
    Nat::new(cfg, esp, vec![G], 7).unwrap()
}

fn nat() -> Nat {
    nat_with(NatConfig::default(), EspConfig::default())
}

fn src_of(p: &[u8]) -> (Ipv4Addr, u16) {
    let ip = ipv4::Packet::new_checked(p).unwrap();
    let port = u16::from_be_bytes([ip.payload()[0], ip.payload()[1]]);
    (ip.src(), port)
}

fn dst_of(p: &[u8]) -> (Ipv4Addr, u16) {
    let ip = ipv4::Packet::new_checked(p).unwrap();
    let port = u16::from_be_bytes([ip.payload()[2], ip.payload()[3]]);
    (ip.dst(), port)
}

fn assert_checksums(p: &[u8]) {
    let ip = ipv4::Packet::new_checked(p).unwrap();
    assert!(ip.verify_checksum(), "ip checksum");
    match ip.protocol() {
        6 => assert!(
            tcp::Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(ip.src(), ip.dst()),
            "tcp checksum"
        ),
        17 => assert!(
            udp::Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(ip.src(), ip.dst()),
            "udp checksum"
        ),
        1 => assert!(
            icmp::Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(),
            "icmp checksum"
        ),
        _ => {}
    }
}

#[test]
fn udp_round_trip_with_endpoint_independent_mapping() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut a = build::udp(H1, 5000, R, 53, b"q1");
    n.outbound(&mut a, 0, &mut ev).unwrap();
    let (gip, gport) = src_of(&a);
    assert_eq!(gip, G);
    assert!(gport >= 1024);
    assert_checksums(&a);
    // Same inside endpoint to another remote: same external port (RFC 4787 REQ-1).
    let mut b = build::udp(H1, 5000, R2, 53, b"q2");
    n.outbound(&mut b, 0, &mut ev).unwrap();
    assert_eq!(src_of(&b), (G, gport));
    // Reply comes back to the inside endpoint.
    let mut r = build::udp(R, 53, G, gport, b"answer");
    n.inbound(&mut r, SEC, &mut ev).unwrap();
    assert_eq!(dst_of(&r), (H1, 5000));
    assert_checksums(&r);
    assert_eq!(ev.created[Proto::Udp as usize], 2);
    assert_eq!(n.table.mapping_count(), 1);
    assert_eq!(n.table.session_count(), 2);
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut a = build::udp(H1, 5000, R, 53, b"q");
    a[26] = 0;
    a[27] = 0;
    n.outbound(&mut a, 0, &mut ev).unwrap();
    assert_eq!(&a[26..28], &[0, 0]);
}

#[test]
fn filtering_modes() {
    for (mode, same_ip_other_port, other_ip) in [
        (Filtering::EndpointIndependent, true, true),
        (Filtering::AddressDependent, true, false),
        (Filtering::AddressAndPortDependent, false, false),
    ] {
        let n = nat_with(
            NatConfig {
                filtering: mode,
                ..NatConfig::default()
            },
            EspConfig::default(),
        );
        let mut ev = NatEvents::default();
        let mut a = build::udp(H1, 5000, R, 53, b"q");
        n.outbound(&mut a, 0, &mut ev).unwrap();
        let gport = src_of(&a).1;
        let mut p1 = build::udp(R, 54, G, gport, b"x");
        assert_eq!(
            n.inbound(&mut p1, 0, &mut ev).is_ok(),
            same_ip_other_port,
            "{mode:?} same ip"
        );
        let mut p2 = build::udp(R2, 53, G, gport, b"x");
        assert_eq!(
            n.inbound(&mut p2, 0, &mut ev).is_ok(),
            other_ip,
            "{mode:?} other ip"
        );
    }
}

#[test]
fn unknown_inbound_is_dropped_and_counted() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut p = build::udp(R, 53, G, 40000, b"x");
    assert_eq!(n.inbound(&mut p, 0, &mut ev), Err(NatDrop::NoMapping));
    assert_eq!(ev.drops[NatDrop::NoMapping as usize], 1);
}

#[test]
fn udp_session_expires_after_timeout_and_port_is_freed() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut a = build::udp(H1, 5000, R, 53, b"q");
    n.outbound(&mut a, 0, &mut ev).unwrap();
    let gport = src_of(&a).1;
    n.expire(299 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 1, "still alive before 300 s");
    n.expire(300 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0);
    assert_eq!(n.table.mapping_count(), 0);
    assert_eq!(ev.expired[Proto::Udp as usize], 1);
    let mut r = build::udp(R, 53, G, gport, b"late");
    assert_eq!(
        n.inbound(&mut r, 301 * SEC, &mut ev),
        Err(NatDrop::NoMapping)
    );
}

#[test]
fn tcp_established_uses_long_timeout_and_fin_short() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut syn = build::tcp(H1, 40000, R, 80, flags::SYN, b"");
    n.outbound(&mut syn, 0, &mut ev).unwrap();
    let gport = src_of(&syn).1;
    assert_checksums(&syn);
    let mut synack = build::tcp(R, 80, G, gport, flags::SYN | flags::ACK, b"");
    n.inbound(&mut synack, 0, &mut ev).unwrap();
    assert_checksums(&synack);
    let mut ack = build::tcp(H1, 40000, R, 80, flags::ACK, b"GET /");
    n.outbound(&mut ack, 0, &mut ev).unwrap();
    n.expire(7439 * SEC, &mut ev);
    assert_eq!(
        n.table.session_count(),
        1,
        "established survives 2 h 3 min 59 s"
    );
    let mut fin = build::tcp(H1, 40000, R, 80, flags::FIN | flags::ACK, b"");
    n.outbound(&mut fin, 7439 * SEC, &mut ev).unwrap();
    n.expire((7439 + 239) * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 1);
    n.expire((7439 + 240) * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0);
}

#[test]
fn tcp_half_open_expires_at_transitory_timeout() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut syn = build::tcp(H1, 40000, R, 80, flags::SYN, b"");
    n.outbound(&mut syn, 0, &mut ev).unwrap();
    n.expire(240 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0);
}

#[test]
fn icmp_echo_identifier_translated_both_ways() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut a = build::echo(H1, R, false, 0x0102, 1);
    let mut b = build::echo(H2, R, false, 0x0102, 1);
    n.outbound(&mut a, 0, &mut ev).unwrap();
    n.outbound(&mut b, 0, &mut ev).unwrap();
    let ida = icmp::Packet::new_checked(&a[20..]).unwrap().echo_ident();
    let idb = icmp::Packet::new_checked(&b[20..]).unwrap().echo_ident();
    assert_ne!(
        ida, idb,
        "two hosts with the same identifier get distinct external ones"
    );
    assert_checksums(&a);
    let mut ra = build::echo(R, G, true, ida, 1);
    n.inbound(&mut ra, 0, &mut ev).unwrap();
    assert_eq!(ipv4::Packet::new_checked(&ra[..]).unwrap().dst(), H1);
    assert_eq!(
        icmp::Packet::new_checked(&ra[20..]).unwrap().echo_ident(),
        0x0102
    );
    assert_checksums(&ra);
    n.expire(60 * SEC, &mut ev);
    assert_eq!(n.table.session_count(), 0, "ICMP timeout 60 s");
}

#[test]
fn inbound_icmp_error_quote_is_translated_back() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut probe = build::udp(H1, 33434, R, 33435, b"trace");
    n.outbound(&mut probe, 0, &mut ev).unwrap();
    let gport = src_of(&probe).1;
    // A WAN hop reports time exceeded about the translated probe.
    let hop = Ipv4Addr::new(203, 0, 113, 1);
    let mut err = build::icmp_error(hop, G, icmp::kind::TIME_EXCEEDED, 0, &probe);
    n.inbound(&mut err, 0, &mut ev).unwrap();
    let ip = ipv4::Packet::new_checked(&err[..]).unwrap();
    assert_eq!(ip.dst(), H1);
    assert_checksums(&err);
    let quote = ipv4::Packet::new_header_checked(&err[28..]).unwrap();
    assert!(quote.verify_checksum());
    assert_eq!(quote.src(), H1);
    assert_eq!(u16::from_be_bytes([err[48], err[49]]), 33434);
    assert_ne!(gport, 0);
    // The quoted UDP checksum matches the restored pseudo-header.
    let mut orig = build::udp(H1, 33434, R, 33435, b"trace");
    orig.truncate(28);
    assert_eq!(&err[48..56], &orig[20..28]);
    assert_eq!(ev.icmp_errors_translated, 1);
}

#[test]
fn outbound_icmp_error_quote_is_translated() {
    let n = nat_with(
        NatConfig {
            filtering: Filtering::EndpointIndependent,
            ..NatConfig::default()
        },
        EspConfig::default(),
    );
    let mut ev = NatEvents::default();
    let mut a = build::udp(H1, 5000, R, 53, b"q");
    n.outbound(&mut a, 0, &mut ev).unwrap();
    let gport = src_of(&a).1;
    let mut inb = build::udp(R, 53, G, gport, b"r");
    n.inbound(&mut inb, 0, &mut ev).unwrap();
    // Inside host says port unreachable about the delivered packet.
    let mut err = build::icmp_error(H1, R, icmp::kind::DEST_UNREACHABLE, 3, &inb);
    n.outbound(&mut err, 0, &mut ev).unwrap();
    assert_eq!(ipv4::Packet::new_checked(&err[..]).unwrap().src(), G);
    let quote = ipv4::Packet::new_header_checked(&err[28..]).unwrap();
    assert_eq!(quote.dst(), G);
    assert_eq!(u16::from_be_bytes([err[50], err[51]]), gport);
    assert_checksums(&err);
}

#[test]
fn icmp_error_without_mapping_is_dropped() {
    let n = nat();
    let mut ev = NatEvents::default();
    let stray = build::udp(G, 40000, R, 53, b"x");
    let mut err = build::icmp_error(R, G, icmp::kind::DEST_UNREACHABLE, 3, &stray);
    assert_eq!(
        n.inbound(&mut err, 0, &mut ev),
        Err(NatDrop::IcmpErrorNoMapping)
    );
}

#[test]
fn ike_source_port_500_preserved_when_free() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut a = build::udp(H1, 500, R, 500, b"ike");
    n.outbound(&mut a, 0, &mut ev).unwrap();
    assert_eq!(src_of(&a), (G, 500));
    // Second host's IKE cannot also have 500: ordinary NAPT port.
    let mut b = build::udp(H2, 500, R, 500, b"ike");
    n.outbound(&mut b, 0, &mut ev).unwrap();
    assert_ne!(src_of(&b).1, 500);
    // 4500 is ordinary NAPT.
    let mut c = build::udp(H1, 4500, R, 4500, b"natt");
    n.outbound(&mut c, 0, &mut ev).unwrap();
    assert!(src_of(&c).1 >= 1024);
    // Once H1's IKE session expires, 500 is free again.
    n.expire(300 * SEC, &mut ev);
    let mut d = build::udp(H2, 500, R, 500, b"ike");
    n.outbound(&mut d, 301 * SEC, &mut ev).unwrap();
    assert_eq!(src_of(&d), (G, 500));
}

#[test]
fn per_host_limit_does_not_starve_other_hosts() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_sessions_per_host = 100;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    let mut ok = 0;
    for port in 0..500u16 {
        let mut p = build::udp(H1, 10000 + port, R, 9, b"flood");
        if n.outbound(&mut p, 0, &mut ev).is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 100);
    assert_eq!(ev.drops[NatDrop::HostLimit as usize], 400);
    let mut other = build::udp(H2, 5000, R, 53, b"q");
    n.outbound(&mut other, 0, &mut ev).unwrap();
}

#[test]
fn rate_limit_refills_over_time() {
    let mut cfg = NatConfig::default();
    cfg.limits.new_sessions_per_sec_per_host = 10;
    cfg.limits.new_sessions_burst = 10;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    let mut ok = 0;
    for port in 0..20u16 {
        let mut p = build::udp(H1, 10000 + port, R, 9, b"x");
        ok += usize::from(n.outbound(&mut p, 0, &mut ev).is_ok());
    }
    assert_eq!(ok, 10);
    assert_eq!(ev.drops[NatDrop::RateLimited as usize], 10);
    let mut p = build::udp(H1, 20000, R, 9, b"x");
    n.outbound(&mut p, SEC, &mut ev).unwrap();
}

#[test]
fn table_full_is_defined() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_sessions = 3;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    for (h, port) in [(H1, 1u16), (H1, 2), (H2, 3), (H2, 4)] {
        let mut p = build::udp(h, 10000 + port, R, 9, b"x");
        let _ = n.outbound(&mut p, 0, &mut ev);
    }
    assert_eq!(n.table.session_count(), 3);
    assert_eq!(ev.drops[NatDrop::TableFull as usize], 1);
}

#[test]
fn ports_exhausted_is_counted() {
    let cfg = NatConfig {
        port_min: 2000,
        port_max: 2001,
        ..NatConfig::default()
    };
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    for port in 0..3u16 {
        let mut p = build::udp(H1, 10000 + port, R, 9, b"x");
        let _ = n.outbound(&mut p, 0, &mut ev);
    }
    assert_eq!(ev.drops[NatDrop::PortsExhausted as usize], 1);
    assert_eq!(n.table.session_count(), 2);
}

#[test]
fn unsupported_and_malformed_l4() {
    let n = nat();
    let mut ev = NatEvents::default();
    let mut gre = build::udp(H1, 1, R, 2, b"x");
    gre[9] = 47;
    assert_eq!(
        n.outbound(&mut gre, 0, &mut ev),
        Err(NatDrop::UnsupportedProtocol)
    );
    let mut short = build::udp(H1, 1, R, 2, b"");
    short.truncate(24);
    short[3] = 24;
    assert_eq!(
        n.outbound(&mut short, 0, &mut ev),
        Err(NatDrop::MalformedL4)
    );
    let mut ts = build::echo(H1, R, false, 1, 1);
    ts[20] = 13; // timestamp request
    assert_eq!(
        n.outbound(&mut ts, 0, &mut ev),
        Err(NatDrop::UnsupportedIcmp)
    );
}

// ---- ESP demultiplexing ------------------------------------------------------

const L: Layout = Layout {
    tag_len: 2,
    spi_offset: 2,
    digest_offset: 0,
};

fn esp_out(n: &Nat, h: Ipv4Addr, spi: u32, now: Millis, ev: &mut NatEvents) -> Result<(), NatDrop> {
    esp_out_to(n, h, R, spi, now, ev)
}

fn esp_out_to(
    n: &Nat,
    h: Ipv4Addr,
    r: Ipv4Addr,
    spi: u32,
    now: Millis,
    ev: &mut NatEvents,
) -> Result<(), NatDrop> {
    let mut p = build::esp(h, r, spi, 1, b"ciphertext");
    n.outbound(&mut p, now, ev)?;
    assert_eq!(ipv4::Packet::new_checked(&p[..]).unwrap().src(), G);
    Ok(())
}

fn esp_in(n: &Nat, spi: u32, now: Millis, ev: &mut NatEvents) -> Result<Ipv4Addr, NatDrop> {
    esp_in_from(n, R, spi, now, ev)
}

fn esp_in_from(
    n: &Nat,
    r: Ipv4Addr,
    spi: u32,
    now: Millis,
    ev: &mut NatEvents,
) -> Result<Ipv4Addr, NatDrop> {
    let mut p = build::esp(r, G, spi, 1, b"ciphertext");
    n.inbound(&mut p, now, ev)?;
    let ip = ipv4::Packet::new_checked(&p[..]).unwrap();
    assert!(ip.verify_checksum());
    Ok(ip.dst())
}

#[test]
fn seed_scenario_two_hosts_same_responder() {
    let n = nat();
    let mut ev = NatEvents::default();
    // Each host chose its inbound SPI; the responder derived its own from it.
    let (s_o1, s_o2) = (0xD456_0CA1u32, 0xB728_5662u32);
    let s_r1 = L.derive_with(s_o1, 0x1111_0000);
    let s_r2 = L.derive_with(s_o2, 0x2222_0000);
    esp_out(&n, H1, s_r1, 0, &mut ev).unwrap();
    esp_out(&n, H2, s_r2, 0, &mut ev).unwrap();
    for round in 0..3 {
        assert_eq!(esp_in(&n, s_o2, round * SEC, &mut ev), Ok(H2));
        assert_eq!(esp_in(&n, s_o1, round * SEC, &mut ev), Ok(H1));
    }
    assert_eq!(ev.esp.matched_responder_derived, 2);
    assert_eq!(ev.esp.bound_packets, 4);
    assert_eq!(n.esp.binding_count(), 2);
    // Rekey: new SPI pairs bind the same way.
    let (n_o1, n_o2) = (0x0A0B_0C0Du32, 0x7777_1234u32);
    esp_out(&n, H1, L.derive_with(n_o1, 0x3333_0000), 5 * SEC, &mut ev).unwrap();
    esp_out(&n, H2, L.derive_with(n_o2, 0x4444_0000), 5 * SEC, &mut ev).unwrap();
    assert_eq!(esp_in(&n, n_o1, 5 * SEC, &mut ev), Ok(H1));
    assert_eq!(esp_in(&n, n_o2, 5 * SEC, &mut ev), Ok(H2));
    assert_eq!(ev.esp.matched_responder_derived, 4);
}

#[test]
fn mirror_relation_inside_host_derives() {
    let n = nat();
    let mut ev = NatEvents::default();
    // The responder chose S_R; the inside host derived S_O from it.
    let s_r = 0xCAFE_F00Du32;
    let s_o = L.derive_with(s_r, 0x5555_0000);
    esp_out(&n, H1, s_r, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
    assert_eq!(ev.esp.matched_inside_derived, 1);
}

#[test]
fn relation_setting_restricts_matching() {
    let cfg = EspConfig {
        relations: Relations::ResponderDerives,
        ..EspConfig::default()
    };
    let n = nat_with(NatConfig::default(), cfg);
    let mut ev = NatEvents::default();
    let s_r = 0xCAFE_F00Du32;
    esp_out(&n, H1, s_r, 0, &mut ev).unwrap();
    assert_eq!(
        esp_in(&n, L.derive_with(s_r, 0x5555_0000), 0, &mut ev),
        Err(NatDrop::EspUnmatched)
    );
}

#[test]
fn colliding_pair_is_dropped_never_guessed() {
    let n = nat();
    let mut ev = NatEvents::default();
    let s_o = 0xD456_0CA1u32;
    // Both hosts' outbound SPIs carry the tag of the same inbound SPI.
    esp_out(&n, H1, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    esp_out(&n, H2, L.derive_with(s_o, 0x2222_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Err(NatDrop::EspCollision));
    assert_eq!(ev.drops[NatDrop::EspCollision as usize], 1);
    assert_eq!(n.esp.binding_count(), 0);
}

#[test]
fn unmatched_dropped_unless_single_pending_fallback() {
    let n = nat();
    let mut ev = NatEvents::default();
    esp_out(&n, H1, 0x1234_5678, 0, &mut ev).unwrap();
    assert_eq!(
        esp_in(&n, 0x0BAD_0BAD, 0, &mut ev),
        Err(NatDrop::EspUnmatched)
    );
    assert_eq!(ev.drops[NatDrop::EspUnmatched as usize], 1);

    let f = nat_with(
        NatConfig::default(),
        EspConfig {
            single_pending_fallback: true,
            ..EspConfig::default()
        },
    );
    esp_out(&f, H1, 0x1234_5678, 0, &mut ev).unwrap();
    assert_eq!(esp_in(&f, 0x0BAD_0BAD, 0, &mut ev), Ok(H1));
    assert_eq!(ev.esp.fallback_binds, 1);
    // With two hosts pending the fallback does not apply.
    esp_out(&f, H1, 0x1234_0001, 0, &mut ev).unwrap();
    esp_out(&f, H2, 0x2345_6789, 0, &mut ev).unwrap();
    assert_eq!(
        esp_in(&f, 0x0BAD_0BAE, 0, &mut ev),
        Err(NatDrop::EspUnmatched)
    );
}

#[test]
fn spi_conflict_between_hosts_is_refused() {
    let n = nat();
    let mut ev = NatEvents::default();
    esp_out(&n, H1, 0x1234_5678, 0, &mut ev).unwrap();
    assert_eq!(
        esp_out(&n, H2, 0x1234_5678, 0, &mut ev),
        Err(NatDrop::EspSpiConflict)
    );
}

#[test]
fn esp_state_expires_when_idle() {
    let n = nat();
    let mut ev = NatEvents::default();
    let s_o = 0xD456_0CA1u32;
    esp_out(&n, H1, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
    n.expire(600 * SEC, &mut ev);
    assert_eq!(n.esp.binding_count(), 0);
    assert_eq!(n.esp.recorded_count(), 0);
    assert_eq!(ev.esp.bindings_expired, 1);
    assert_eq!(ev.esp.spis_expired, 1);
    // Nothing left for R: dropped by the pre-filter, before any MD5.
    assert_eq!(
        esp_in(&n, s_o, 601 * SEC, &mut ev),
        Err(NatDrop::EspNoPending)
    );
    n.check_invariants().unwrap();
    assert!(n.is_empty());
}

#[test]
fn esp_per_host_spi_limit() {
    let mut cfg = NatConfig::default();
    cfg.limits.max_esp_spis_per_host = 2;
    let n = nat_with(cfg, EspConfig::default());
    let mut ev = NatEvents::default();
    esp_out(&n, H1, 0x1000, 0, &mut ev).unwrap();
    esp_out(&n, H1, 0x2000, 0, &mut ev).unwrap();
    assert_eq!(
        esp_out(&n, H1, 0x3000, 0, &mut ev),
        Err(NatDrop::EspHostLimit)
    );
    esp_out(&n, H2, 0x3000, 0, &mut ev).unwrap();
}

#[test]
fn esp_match_with_many_pending_entries() {
    let n = nat_with(
        {
            let mut c = NatConfig::default();
            c.limits.max_esp_spis_per_host = 100_000;
            c
        },
        EspConfig::default(),
    );
    let mut ev = NatEvents::default();
    // 20k hosts' worth of unrelated SPIs toward other responders do not disturb a match with R.
    for i in 0..20_000u32 {
        let h = Ipv4Addr::from(0x0a07_0000 + i);
        let mut p = build::esp(
            h,
            Ipv4Addr::new(198, 51, 100, 100),
            0x0001_0000 + i,
            1,
            b"x",
        );
        n.outbound(&mut p, 0, &mut ev).unwrap();
    }
    let s_o = 0xD456_0CA1u32;
    esp_out(&n, H1, L.derive_with(s_o, 0x1111_0000), 0, &mut ev).unwrap();
    assert_eq!(esp_in(&n, s_o, 0, &mut ev), Ok(H1));
}

/// Turns the packet's TCP/UDP checksum into the partial form an offloading
/// sender hands over: the pseudo-header sum only, not complemented.
fn make_partial(p: &mut [u8]) {
    use crate::wire::checksum::{fold, pseudo_header};
    let ip = ipv4::Packet::new_checked(&*p).unwrap();
    let (src, dst, proto, l4_len) = (ip.src(), ip.dst(), ip.protocol(), ip.payload().len());
    let at = 20 + if proto == 6 { 16 } else { 6 };
    let s = fold(pseudo_header(src, dst, proto, l4_len as u16));
    p[at..at + 2].copy_from_slice(&s.to_be_bytes());
}

/// What the NIC (or software GSO) does with a partial checksum.
fn complete_partial(p: &mut [u8]) {
    use crate::wire::checksum::{fold, sum};
    let proto = p[9];
    let at = 20 + if proto == 6 { 16 } else { 6 };
    let c = !fold(sum(&p[20..]));
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn partial_checksums_stay_partial_and_complete_correctly() {
    use super::L4Checksum::Partial;
    let n = nat();
    let mut ev = NatEvents::default();
    for mut out in [
        build::udp(H1, 5000, R, 4500, &[7u8; 1400]),
        build::tcp(H1, 40000, R, 443, flags::SYN, &[9u8; 1000]),
    ] {
        make_partial(&mut out);
        n.outbound_with(&mut out, Partial, 0, &mut ev).unwrap();
        let (g, gport) = src_of(&out);
        assert_eq!(g, G);
        // The field still holds the pseudo-header sum, now of the new addresses.
        let mut expect = out.clone();
        make_partial(&mut expect);
        assert_eq!(out, expect, "partial sum updated for the new source");
        complete_partial(&mut out);
        assert_checksums(&out);

        let proto = out[9];
        let mut back = if proto == 6 {
            build::tcp(R, 443, G, gport, flags::ACK, &[1u8; 1400])
        } else {
            build::udp(R, 4500, G, gport, &[3u8; 1300])
        };
        make_partial(&mut back);
        n.inbound_with(&mut back, Partial, SEC, &mut ev).unwrap();
        assert_eq!(dst_of(&back).0, H1);
        complete_partial(&mut back);
        assert_checksums(&back);
    }
}

mod bounds;
mod live;
