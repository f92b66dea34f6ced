//! The engine against itself: an initiator and a responder exchanging
//! datagrams in memory, time stepped by hand, optionally through a NAT.

use super::crypto::{Encr, EspSuite, Group, IkeSuite, Integ, Prf};
use super::engine::{Datagram, DownReason, Engine, EngineConfig, Event, Transmit};
use super::policy::{
    parse_identity, ChildRekey, Lifetimes, LocalAuth, NatDetection, PeerPolicy, RemoteAuth,
};
use super::sa::IkeState;
use crate::spi::{Layout, SpiAllocator};
use crate::wire::ike::{Header, NotifyType, Payload};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

mod cert;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);

fn gcm_x25519() -> IkeSuite {
    IkeSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        prf: Prf::HmacSha256,
        group: Group::Curve25519,
    }
}

fn cbc_ecp256() -> IkeSuite {
    IkeSuite {
        encr: Encr::AesCbc { key_bits: 256 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha256,
        group: Group::Ecp256,
    }
}

fn esp_gcm() -> EspSuite {
    EspSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        esn: true,
    }
}

fn policy(client: bool, psk: &str) -> PeerPolicy {
    let key = Arc::new(psk.as_bytes().to_vec());
    let (local, remote) = if client { ("h1", "gw") } else { ("gw", "h1") };
    let (lts, rts) = if client {
        ("10.98.0.2/32", "10.99.0.0/24")
    } else {
        ("10.99.0.0/24", "10.98.0.2/32")
    };
    PeerPolicy {
        name: remote.into(),
        local_id: parse_identity(local).unwrap(),
        remote_id: Some(parse_identity(remote).unwrap()),
        local_auth: LocalAuth::Psk(key.clone()),
        remote_auth: RemoteAuth::Psk(key),
        ike_suites: vec![gcm_x25519(), cbc_ecp256()],
        esp_suites: vec![esp_gcm()],
        local_ts: vec![lts.parse().unwrap()],
        remote_ts: vec![rts.parse().unwrap()],
        nat: NatDetection::Auto,
        lifetimes: Lifetimes {
            ike_rekey_ms: 0,
            child_rekey_ms: 0,
            child_hard_ms: 0,
            jitter_ms: 0,
        },
        child_rekey: if client {
            ChildRekey::Both
        } else {
            ChildRekey::Initiator
        },
        dpd_ms: 0,
        remote: client.then(|| SocketAddrV4::new(GATEWAY, 500)),
        remote_addrs: Vec::new(),
        restart: client,
    }
}

fn engine(cfg: EngineConfig, p: PeerPolicy) -> Engine {
    Engine::new(
        cfg,
        vec![p],
        SpiAllocator::new(Layout::default()).unwrap(),
        Box::new(ring::rand::SystemRandom::new()),
        0,
    )
}

/// Both ends, the path between them and what each reported.
struct Bed {
    i: Engine,
    r: Engine,
    /// Source NAT on the initiator's side (public address, port offset).
    nat: bool,
    /// Datagrams to lose, counted down per direction (i→r, r→i).
    lose: (usize, usize),
    i_events: Vec<Event>,
    r_events: Vec<Event>,
    /// Every datagram that crossed, (from initiator, transmit).
    wire: Vec<(bool, Transmit)>,
}

impl Bed {
    fn new(i: Engine, r: Engine, nat: bool) -> Bed {
        Bed {
            i,
            r,
            nat,
            lose: (0, 0),
            i_events: Vec::new(),
            r_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn outside(&self, port: u16) -> SocketAddrV4 {
        if self.nat {
            SocketAddrV4::new(PUBLIC, port + 30000)
        } else {
            SocketAddrV4::new(CLIENT, port)
        }
    }

    /// Moves datagrams both ways until nothing is left (bounded).
    fn pump(&mut self, now: u64) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = self.i.poll_transmit() {
                moved = true;
                self.wire.push((true, t.clone()));
                if self.lose.0 > 0 {
                    self.lose.0 -= 1;
                    continue;
                }
                let d = Datagram {
                    local: t.remote,
                    remote: self.outside(t.local_port),
                    data: &t.data,
                };
                self.r.handle(now, d);
            }
            while let Some(t) = self.r.poll_transmit() {
                moved = true;
                self.wire.push((false, t.clone()));
                if self.lose.1 > 0 {
                    self.lose.1 -= 1;
                    continue;
                }
                let port = if self.nat {
                    t.remote.port() - 30000
                } else {
                    t.remote.port()
                };
                let d = Datagram {
                    local: SocketAddrV4::new(CLIENT, port),
                    remote: SocketAddrV4::new(GATEWAY, t.local_port),
                    data: &t.data,
                };
                self.i.handle(now, d);
            }
            while let Some(e) = self.i.poll_event() {
                self.i_events.push(e);
            }
            while let Some(e) = self.r.poll_event() {
                self.r_events.push(e);
            }
            self.check_tables();
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    /// Both SA tables' indexes agree with their SAs (timers, tasks, peers).
    fn check_tables(&self) {
        for e in [&self.i, &self.r] {
            e.sas.assert_consistent(|sa| e.next_timer(sa));
        }
    }

    /// Advances time to `now` in steps, firing timers on both sides.
    fn run_until(&mut self, from: u64, to: u64, step: u64) {
        let mut t = from;
        while t <= to {
            self.i.handle_timeout(t);
            self.r.handle_timeout(t);
            self.pump(t);
            t += step;
        }
    }

    fn connect(&mut self) {
        self.i.initiate(0, 0, Some(CLIENT)).unwrap();
        self.pump(0);
    }

    /// A client and a gateway with the same settings, connected directly.
    fn connected(cfg: EngineConfig) -> Bed {
        let mut b = Bed::new(
            engine(cfg.clone(), policy(true, "secret")),
            engine(cfg, policy(false, "secret")),
            false,
        );
        b.connect();
        b
    }
}

fn installs(events: &[Event]) -> Vec<&super::engine::ChildInstall> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildUp(c) => Some(c.as_ref()),
            _ => None,
        })
        .collect()
}

fn downs(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildDown { inbound_spi, .. } => Some(*inbound_spi),
            _ => None,
        })
        .collect()
}

fn established(e: &Engine) -> usize {
    e.sas().filter(|s| s.state == IkeState::Established).count()
}

#[test]
fn psk_setup_derives_the_responders_spi_and_mirrors_keys() {
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), policy(false, "secret")),
        false,
    );
    b.connect();
    assert_eq!((established(&b.i), established(&b.r)), (1, 1));
    let (ci, cr) = (installs(&b.i_events), installs(&b.r_events));
    assert_eq!((ci.len(), cr.len()), (1, 1));
    let (ci, cr) = (ci[0], cr[0]);
    assert_eq!(ci.inbound_spi, cr.outbound_spi);
    assert_eq!(cr.inbound_spi, ci.outbound_spi);
    assert!(cr.derived && !ci.derived);
    assert!(
        Layout::default().matches(cr.inbound_spi, ci.inbound_spi),
        "responder SPI carries the tag"
    );
    assert_eq!(ci.key_out.encr, cr.key_in.encr);
    assert_eq!(ci.key_in.encr, cr.key_out.encr);
    assert_eq!(ci.key_out.encr.len(), 16 + 4);
    assert!(!ci.udp && !cr.udp, "no NAT: plain ESP");
    assert_eq!(cr.remote_ts, vec!["10.98.0.2/32".parse().unwrap()]);
    assert_eq!(ci.remote_ts, vec!["10.99.0.0/24".parse().unwrap()]);
    assert_eq!(b.r.stats.spis_derived, 1);
    assert_eq!(
        (b.i.stats.peer_auths, b.r.stats.peer_auths),
        ([1, 0, 0], [1, 0, 0]),
        "PSK"
    );
    // Four datagrams: IKE_SA_INIT and IKE_AUTH, request and response each.
    assert_eq!(b.wire.len(), 4);
    assert_eq!(b.r.half_open(), 0);
}

/// (IKE, ESP) key log lines among `events`.
fn key_logs(events: &[Event]) -> (Vec<&str>, Vec<&str>) {
    let of = |want: super::engine::KeyLogTable| {
        events
            .iter()
            .filter_map(|e| match e {
                Event::KeyLog { table, line } if *table == want => Some(line.as_str()),
                _ => None,
            })
            .collect()
    };
    (
        of(super::engine::KeyLogTable::Ike),
        of(super::engine::KeyLogTable::Esp),
    )
}

#[test]
fn key_log_lines_only_when_asked_and_alike_on_both_ends() {
    let with = |key_log: bool| {
        let b = Bed::connected(EngineConfig {
            key_log,
            ..EngineConfig::default()
        });
        assert_eq!((established(&b.i), established(&b.r)), (1, 1));
        b
    };
    let b = with(EngineConfig::default().key_log);
    let none: (Vec<&str>, Vec<&str>) = (vec![], vec![]);
    assert_eq!(key_logs(&b.i_events), none, "off by default");
    assert_eq!(key_logs(&b.r_events), none, "off by default");
    let b = with(true);
    let ((ike_i, esp_i), (ike_r, esp_r)) = (key_logs(&b.i_events), key_logs(&b.r_events));
    assert_eq!(ike_i.len(), 1);
    assert_eq!(ike_i, ike_r, "one IKE SA, the same line on both ends");
    // Both directions of the CHILD_SA; no NAT, so the addresses agree too.
    assert_eq!(esp_i.len(), 2);
    let (mut a, mut r) = (esp_i.clone(), esp_r.clone());
    a.sort_unstable();
    r.sort_unstable();
    assert_eq!(a, r);
}

#[test]
fn nat_detected_floats_to_4500_and_encapsulates() {
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), policy(false, "secret")),
        true,
    );
    b.connect();
    let ci = installs(&b.i_events)[0];
    let cr = installs(&b.r_events)[0];
    assert!(ci.udp && cr.udp);
    assert!(
        ci.keepalive,
        "the side behind the NAT keeps the mapping open"
    );
    assert!(!cr.keepalive);
    assert_eq!(cr.remote, SocketAddrV4::new(PUBLIC, 4500 + 30000));
    assert_eq!(b.wire[2].1.local_port, 4500, "IKE_AUTH from 4500");
}

#[test]
fn nat_detection_off_keeps_plain_esp_behind_a_nat() {
    let mut r = policy(false, "secret");
    r.nat = NatDetection::Off;
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), r),
        true,
    );
    b.connect();
    let ci = installs(&b.i_events)[0];
    assert!(
        !ci.udp,
        "no NAT_DETECTION answer: the initiator stays on plain ESP"
    );
    let resp = &b.wire[1].1.data;
    let h = Header::new_checked(&resp[..]).unwrap();
    let chain = crate::wire::ike::parse_chain(h.next_payload(), &resp[28..]).unwrap();
    assert!(!chain
        .iter()
        .any(|p| matches!(p, Payload::Notify(n) if n.ty == NotifyType::NAT_DETECTION_SOURCE_IP)));
}

#[test]
fn invalid_ke_steers_the_group_and_cookies_are_echoed() {
    let mut i = policy(true, "secret");
    i.ike_suites = vec![cbc_ecp256(), gcm_x25519()];
    let mut r = policy(false, "secret");
    r.ike_suites = vec![gcm_x25519()];
    let cfg = EngineConfig {
        cookie_threshold: 0,
        ..EngineConfig::default()
    };
    let mut b = Bed::new(engine(EngineConfig::default(), i), engine(cfg, r), false);
    b.connect();
    assert_eq!(established(&b.r), 1);
    assert_eq!(b.r.stats.cookies_sent, 1);
    assert_eq!(b.r.stats.invalid_ke_sent, 1);
    // COOKIE, INVALID_KE, then the exchange proper.
    assert_eq!(b.wire.len(), 2 + 2 + 4);
}

#[test]
fn wrong_psk_fails_on_both_sides_and_counts() {
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), policy(false, "other")),
        false,
    );
    b.connect();
    assert_eq!(established(&b.i) + established(&b.r), 0);
    assert_eq!(b.r.stats.auth_failures, 1);
    assert_eq!(b.i.stats.auth_failures, 1);
    // Counted by the notification the responder answered with.
    let auth_failed = super::stats::ERRORS_SENT
        .iter()
        .position(|t| *t == NotifyType::AUTHENTICATION_FAILED)
        .unwrap();
    assert_eq!(b.r.stats.errors_sent[auth_failed], 1);
    assert_eq!(b.r.stats.errors_sent.iter().sum::<u64>(), 1);
    assert!(installs(&b.r_events).is_empty());
    assert!(b.i_events.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::AuthFailed,
            ..
        }
    )));
    assert_eq!(b.r.sas().count(), 0, "nothing left on the responder");
}

#[test]
fn rekeys_from_either_side_derive_on_the_answering_side() {
    let mut r = policy(false, "secret");
    r.child_rekey = ChildRekey::Both;
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), r),
        false,
    );
    b.connect();
    let first = installs(&b.i_events)[0].inbound_spi;
    // Client-started: the gateway answers and derives.
    assert!(b.i.rekey_child(10, first));
    b.pump(10);
    let ci = installs(&b.i_events);
    let cr = installs(&b.r_events);
    assert_eq!((ci.len(), cr.len()), (2, 2));
    assert_eq!(ci[1].replaces, Some(first));
    assert!(Layout::default().matches(cr[1].inbound_spi, ci[1].inbound_spi));
    assert_eq!(
        downs(&b.i_events),
        vec![first],
        "old CHILD_SA deleted after the rekey"
    );
    assert_eq!(downs(&b.r_events).len(), 1);
    // Gateway-started: the client answers and derives (inside-derives relation).
    let gw_spi = cr[1].inbound_spi;
    assert!(b.r.rekey_child(20, gw_spi));
    b.pump(20);
    let ci = installs(&b.i_events);
    let cr = installs(&b.r_events);
    assert_eq!((ci.len(), cr.len()), (3, 3));
    assert!(ci[2].derived && !cr[2].derived);
    assert!(
        Layout::default().matches(ci[2].inbound_spi, cr[2].inbound_spi),
        "client SPI carries the tag"
    );
    assert_eq!(ci[2].key_out.encr, cr[2].key_in.encr);
    assert_eq!(b.i.stats.child_rekeys, [1, 1]);
    assert_eq!(b.r.stats.child_rekeys, [1, 1]);
    // IKE SA rekey: CHILD_SAs move over, the old IKE SA is deleted.
    let old_spi = b.i.sas().next().unwrap().local_spi();
    assert!(b.i.rekey_ike(30, 0));
    b.pump(30);
    assert_eq!((b.i.sas().count(), b.r.sas().count()), (1, 1));
    let sa = b.i.sas().next().unwrap();
    assert_ne!(sa.local_spi(), old_spi);
    assert_eq!(sa.children.len(), 1);
    assert_eq!(b.r.sas().next().unwrap().children.len(), 1);
    assert_eq!(b.i.stats.ike_rekeys, [1, 0]);
    assert_eq!(b.r.stats.ike_rekeys, [0, 1]);
    // The moved CHILD_SA still rekeys on the new IKE SA.
    let spi = installs(&b.i_events)[2].inbound_spi;
    assert!(b.i.rekey_child(40, spi));
    b.pump(40);
    assert_eq!(installs(&b.i_events).len(), 4);
    assert!(downs(&b.i_events).contains(&spi));
}

#[test]
fn lost_datagrams_are_retransmitted_and_duplicates_answered_from_cache() {
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), policy(false, "secret")),
        false,
    );
    b.lose = (0, 2); // both responses of the responder, once each
    b.i.initiate(0, 0, Some(CLIENT)).unwrap();
    b.pump(0);
    assert_eq!(established(&b.i), 0);
    b.run_until(0, 5000, 100);
    assert_eq!((established(&b.i), established(&b.r)), (1, 1));
    assert!(b.i.stats.retransmits >= 2);
    assert!(
        b.r.stats.cached_responses >= 2,
        "repeated requests answered from cache"
    );
    assert_eq!(
        installs(&b.r_events).len(),
        1,
        "one CHILD_SA despite retransmissions"
    );
}

#[test]
fn dead_peer_is_detected_and_the_initiator_comes_back() {
    let mut i = policy(true, "secret");
    i.dpd_ms = 1000;
    let cfg = EngineConfig {
        retransmit_base_ms: 100,
        retransmit_max_ms: 200,
        retransmit_tries: 2,
        restart_delay_ms: 500,
        ..EngineConfig::default()
    };
    let mut b = Bed::new(
        engine(cfg.clone(), i),
        engine(cfg.clone(), policy(false, "secret")),
        false,
    );
    b.connect();
    // The responder restarts: a new engine without the SA.
    b.r = engine(cfg, policy(false, "secret"));
    b.run_until(0, 4000, 50);
    assert_eq!(b.i.stats.dead_peers, 1);
    assert!(b.i_events.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::Dead,
            ..
        }
    )));
    assert_eq!(
        (established(&b.i), established(&b.r)),
        (1, 1),
        "re-established with new keys"
    );
    let ci = installs(&b.i_events);
    assert_eq!(ci.len(), 2);
    assert_ne!(ci[0].key_out.encr, ci[1].key_out.encr);
    assert!(
        b.r.stats.drops[2] > 0,
        "the old SA's DPD hit an unknown SPI"
    );
}

#[test]
fn large_ike_auth_is_fragmented_and_reassembled() {
    let b = Bed::connected(EngineConfig {
        fragment_len: 200,
        ..EngineConfig::default()
    });
    assert_eq!((established(&b.i), established(&b.r)), (1, 1));
    assert!(b.wire.len() > 4, "IKE_AUTH went in several fragments");
    // IKE_SA_INIT cannot be fragmented; everything after it fits.
    assert!(b.wire.iter().skip(2).all(|(_, t)| t.data.len() <= 200));
}

#[test]
fn hostile_input_never_panics_and_is_counted() {
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(EngineConfig::default(), policy(false, "secret")),
        false,
    );
    b.i.initiate(0, 0, Some(CLIENT)).unwrap();
    let req = b.i.poll_transmit().unwrap();
    let from = SocketAddrV4::new(CLIENT, 500);
    let to = SocketAddrV4::new(GATEWAY, 500);
    for n in 0..req.data.len() {
        b.r.handle(
            0,
            Datagram {
                local: to,
                remote: from,
                data: &req.data[..n],
            },
        );
    }
    for i in 0..req.data.len() {
        let mut m = req.data.clone();
        m[i] ^= 0xff;
        b.r.handle(
            0,
            Datagram {
                local: to,
                remote: SocketAddrV4::new(CLIENT, 1000 + i as u16),
                data: &m,
            },
        );
    }
    let dropped: u64 = b.r.stats.drops.iter().sum();
    assert!(dropped >= req.data.len() as u64 - 1);
    // An unknown critical payload is answered with UNSUPPORTED_CRITICAL_PAYLOAD.
    let h = Header::new_checked(&req.data[..]).unwrap();
    let mut chain = crate::wire::ike::parse_chain(h.next_payload(), &req.data[28..]).unwrap();
    chain.push(Payload::Unknown {
        ty: crate::wire::ike::PayloadType(200),
        critical: true,
        body: vec![1, 2, 3],
    });
    let mut hdr = crate::wire::ike::HeaderRepr::parse(&h);
    hdr.spi_i ^= 1;
    let mut out = vec![0u8; 2000];
    let n = crate::wire::ike::emit_message(&hdr, &chain, &mut out).unwrap();
    while b.r.poll_transmit().is_some() {}
    let unsupported_before = b.r.stats.errors_sent[0];
    b.r.handle(
        0,
        Datagram {
            local: to,
            remote: SocketAddrV4::new(CLIENT, 7),
            data: &out[..n],
        },
    );
    let answer = b.r.poll_transmit().unwrap();
    let ah = Header::new_checked(&answer.data[..]).unwrap();
    let ap = crate::wire::ike::parse_chain(ah.next_payload(), &answer.data[28..]).unwrap();
    assert!(
        matches!(&ap[..], [Payload::Notify(n)] if n.ty == NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD && n.data == vec![200])
    );
    assert_eq!(
        b.r.stats.errors_sent[0],
        unsupported_before + 1,
        "counted as UNSUPPORTED_CRITICAL_PAYLOAD"
    );
    assert_eq!(
        super::stats::error_sent_label(0),
        "UNSUPPORTED_CRITICAL_PAYLOAD"
    );
}

#[test]
fn half_open_flood_turns_cookies_on_and_stays_bounded() {
    let cfg = EngineConfig {
        cookie_threshold: 4,
        max_half_open: 8,
        half_open_timeout_ms: 1000,
        ..EngineConfig::default()
    };
    let mut r = engine(cfg, policy(false, "secret"));
    let to = SocketAddrV4::new(GATEWAY, 500);
    // Spoofed initiators: fresh SPIs and sources, never answering.
    for k in 0..200u16 {
        let mut i = engine(EngineConfig::default(), policy(true, "secret"));
        i.initiate(0, 0, Some(CLIENT)).unwrap();
        let t = i.poll_transmit().unwrap();
        r.handle(
            0,
            Datagram {
                local: to,
                remote: SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, (k % 200) as u8 + 1), 500),
                data: &t.data,
            },
        );
    }
    assert_eq!(r.half_open(), 4, "cookies required from the threshold on");
    assert!(r.stats.cookies_sent >= 190);
    // A COOKIE answer is neither a completed nor a failed IKE_SA_INIT.
    assert_eq!(
        r.stats.answered[0],
        [4, 0, 0],
        "IKE_SA_INIT: 4 ok, no errors"
    );
    // An honest client still gets through (it echoes the cookie).
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        r,
        false,
    );
    b.connect();
    assert_eq!(established(&b.r), 1);
    // Half-open SAs expire.
    b.r.handle_timeout(2000);
    assert_eq!(b.r.half_open(), 0);
    assert_eq!(b.r.sas().count(), 1);
}

#[test]
fn the_per_peer_cap_replaces_the_oldest_ike_sas() {
    let cfg = EngineConfig {
        max_ike_sas_per_peer: 2,
        ..EngineConfig::default()
    };
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(cfg, policy(false, "secret")),
        false,
    );
    for t in [0, 10, 20, 30] {
        b.i.initiate(t, 0, Some(CLIENT)).unwrap();
        b.pump(t);
    }
    assert_eq!(b.r.stats.peer_limit, 2);
    let mut kept: Vec<u64> = b.r.sas().map(|s| s.created_at).collect();
    kept.sort_unstable();
    assert_eq!(kept, vec![20, 30], "the two newest stay");
    assert_eq!(established(&b.i), 4, "the initiator was not told");
    // The half-open expiries left the timer index with authentication (the
    // test policy has no lifetimes and no liveness checks).
    assert_eq!(b.r.poll_timeout(), None, "nothing scheduled on the gateway");
}

#[test]
fn child_sas_per_ike_sa_and_ike_sas_per_peer_are_capped() {
    let cfg = EngineConfig {
        max_child_sas: 1,
        max_ike_sas_per_peer: 1,
        ..EngineConfig::default()
    };
    let mut b = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        engine(cfg, policy(false, "secret")),
        false,
    );
    b.connect();
    // A further CHILD_SA (here a rekey, which overlaps the old one) is refused.
    let first = installs(&b.i_events)[0].inbound_spi;
    assert!(b.i.rekey_child(10, first));
    b.pump(10);
    assert_eq!(b.r.stats.child_limit, 1);
    assert_eq!(
        installs(&b.r_events).len(),
        1,
        "nothing installed over the cap"
    );
    assert_eq!(b.r.sas().next().unwrap().children.len(), 1);
    // A second IKE SA of the same peer (no INITIAL_CONTACT) replaces the first.
    b.i.initiate(20, 0, Some(CLIENT)).unwrap();
    b.pump(20);
    assert_eq!(b.r.stats.peer_limit, 1);
    assert_eq!(established(&b.r), 1);
    assert!(b.r_events.iter().any(|e| matches!(
        e,
        Event::IkeDown {
            reason: DownReason::Replaced,
            ..
        }
    )));
    assert_eq!(
        downs(&b.r_events),
        vec![first_responder_spi(&b)],
        "its CHILD_SA went with it"
    );
}

fn first_responder_spi(b: &Bed) -> u32 {
    installs(&b.r_events)[0].inbound_spi
}

#[test]
fn a_registration_moves_the_ike_sa_and_nat_t_answers_go_to_the_port_they_came_from() {
    let mut r = policy(false, "secret");
    r.dpd_ms = 1000;
    let cfg = EngineConfig::default();
    let mut b = Bed::new(
        engine(cfg.clone(), policy(true, "secret")),
        engine(cfg, r),
        false,
    );
    b.connect();
    assert_eq!((established(&b.i), established(&b.r)), (1, 1));
    assert!(
        b.r.sas().all(|sa| !sa.natt),
        "no NAT: IKE stays on port 500"
    );
    // The mobile moved behind a NAT; its registration arrived from this
    // mapping of its UDP-encapsulation port.
    let mapped = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 66), 41_000);
    assert_eq!(b.r.move_peer(0, mapped, true), 1);
    // The next liveness check goes there, from our NAT-T port.
    b.r.handle_timeout(1_500);
    let check = b.r.poll_transmit().expect("liveness check");
    assert_eq!((check.local_port, check.remote), (4500, mapped));
    // The client gets it on its NAT-T port and answers on the port it came
    // from (not on 500 with a non-ESP marker, which the gateway's IKE port
    // would drop as malformed).
    b.i.handle(
        1_500,
        Datagram {
            local: SocketAddrV4::new(CLIENT, 4500),
            remote: SocketAddrV4::new(GATEWAY, 4500),
            data: &check.data,
        },
    );
    let answer = b.i.poll_transmit().expect("answer");
    assert_eq!(
        (answer.local_port, answer.remote),
        (4500, SocketAddrV4::new(GATEWAY, 4500))
    );
    b.r.handle(
        1_500,
        Datagram {
            local: SocketAddrV4::new(GATEWAY, 4500),
            remote: mapped,
            data: &answer.data,
        },
    );
    let informational = super::stats::EXCHANGES
        .iter()
        .position(|e| *e == crate::wire::ike::ExchangeType::INFORMATIONAL)
        .unwrap();
    assert_eq!(b.r.stats.initiated[informational][0], 1, "answered: ok");
    // Moving back to plain ESP sends IKE to the address's IKE port again.
    let direct = SocketAddrV4::new(PUBLIC, 0);
    assert_eq!(b.r.move_peer(0, direct, false), 1);
    b.r.handle_timeout(3_000);
    let check = b.r.poll_transmit().expect("liveness check");
    assert_eq!(
        (check.local_port, check.remote),
        (500, SocketAddrV4::new(PUBLIC, 500))
    );
    assert_eq!(
        b.r.move_peer(7, direct, false),
        0,
        "unknown peer: nothing moves"
    );
}

#[test]
fn the_listing_shows_both_ends_of_the_sas_with_suites_and_selectors() {
    let mut b = Bed::connected(EngineConfig::default());
    let (ci, cr) = (installs(&b.i_events)[0], installs(&b.r_events)[0]);
    let (c_in, c_out) = (ci.inbound_spi, ci.outbound_spi);
    let now = 65_000;
    let l = b.i.listing(now, None);
    assert_eq!((l.ike_sas.len(), l.child_sas.len()), (1, 1));
    let sa = &l.ike_sas[0];
    assert_eq!(
        (sa.peer.as_str(), sa.role, sa.state),
        ("gw", "initiator", "established")
    );
    assert_eq!(sa.suite.as_deref(), Some("aes128gcm16-prfsha256-x25519"));
    assert_eq!(
        (sa.nat, sa.natt, sa.age, sa.child_sas),
        ("none", false, 65, 1)
    );
    assert_eq!(sa.remote, SocketAddrV4::new(GATEWAY, 500));
    let c = &l.child_sas[0];
    assert_eq!(c.inbound_spi, format!("{c_in:#010x}"));
    assert_eq!(c.outbound_spi, format!("{c_out:#010x}"));
    assert_eq!(
        (c.state, c.suite.as_str()),
        ("installed", "aes128gcm16-esn")
    );
    assert_eq!(c.local_ts, vec!["10.98.0.2/32"]);
    assert_eq!(c.remote_ts, vec!["10.99.0.0/24"]);
    assert_eq!(c.ike_spi, sa.spi_i);
    // The gateway lists the same pair the other way round.
    let g = b.r.listing(now, Some("h1"));
    assert_eq!(g.ike_sas[0].role, "responder");
    assert_eq!(
        (g.ike_sas[0].spi_i.as_str(), g.ike_sas[0].spi_r.as_str()),
        (sa.spi_i.as_str(), sa.spi_r.as_str())
    );
    assert_eq!(
        g.child_sas[0].inbound_spi,
        format!("{:#010x}", cr.inbound_spi)
    );
    assert_eq!(g.child_sas[0].outbound_spi, format!("{c_in:#010x}"));
    assert_eq!(b.r.listing(now, Some("nobody")), Default::default());
    // A half-open SA on the gateway has no peer yet.
    b.lose = (0, usize::MAX);
    b.i.initiate(70_000, 0, Some(CLIENT)).unwrap();
    b.pump(70_000);
    let g = b.r.listing(70_000, None);
    let half = g.ike_sas.iter().find(|s| s.state == "half_open").unwrap();
    assert_eq!((half.peer.as_str(), half.child_sas), ("-", 0));
    assert!(half.expires_in.is_some());
}

#[test]
fn a_reconfigured_engine_keeps_its_sas_and_authenticates_new_ones_with_the_new_policy() {
    let mut b = Bed::connected(EngineConfig::default());
    let spi = b.r.sas().next().unwrap().local_spi();
    // Renamed peers are refused and nothing changes.
    let mut renamed = policy(false, "secret");
    renamed.name = "h9".into();
    assert_eq!(
        b.r.reconfigure(EngineConfig::default(), vec![renamed]),
        Err(super::engine::ReconfigureError::PeersChanged)
    );
    assert_eq!(b.r.policies()[0].name, "h1");
    // A new PSK and a liveness check; the established SA stays and keeps answering.
    let mut rotated = policy(false, "rotated");
    rotated.dpd_ms = 5_000;
    let cfg = EngineConfig {
        max_half_open: 7,
        ..EngineConfig::default()
    };
    b.r.reconfigure(cfg, vec![rotated]).unwrap();
    assert_eq!(b.r.cfg.max_half_open, 7);
    b.check_tables();
    assert_eq!(
        b.r.poll_timeout(),
        Some(5_000),
        "DPD armed by the new policy"
    );
    b.run_until(0, 6_000, 1_000);
    assert!(b
        .r
        .sas
        .get(spi)
        .is_some_and(|s| s.state == IkeState::Established));
    assert_eq!(b.r.stats.auth_failures, 0);
    // A client still on the old key is refused; one with the new key gets in.
    let mut old = Bed::new(
        engine(EngineConfig::default(), policy(true, "secret")),
        std::mem::replace(
            &mut b.r,
            engine(EngineConfig::default(), policy(false, "x")),
        ),
        false,
    );
    old.connect();
    assert_eq!(old.r.stats.auth_failures, 1);
    let mut new = Bed::new(
        engine(EngineConfig::default(), policy(true, "rotated")),
        old.r,
        false,
    );
    new.connect();
    assert_eq!(established(&new.i), 1);
}
