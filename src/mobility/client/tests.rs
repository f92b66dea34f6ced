//! The client core against the gateway core over a simulated path: time is
//! stepped by hand, a path may translate or filter.

use super::*;
use crate::mobility::gateway::{self, Move, Policy, Registration};

const INNER: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 5);
const GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);
const DIRECT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const NAT_OUT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
/// One-way delay of the simulated path.
const HALF_RTT: u64 = 5;

const CFG: ClientConfig = ClientConfig {
    inner: INNER,
    gateway: GW,
    udp_port: 4500,
    offer_plain: true,
    initial_rto_ms: 200,
    max_rto_ms: 3200,
    min_probe_wait_ms: 50,
};

/// A path between client and gateway.
#[derive(Clone, Copy, Default)]
struct Link {
    /// NAPT to this address and port.
    napt: Option<(Ipv4Addr, u16)>,
    /// Protocol 50 dropped towards the gateway.
    plain_up_blocked: bool,
    /// Protocol 50 dropped towards the client.
    plain_down_blocked: bool,
    /// Requests dropped before anything passes.
    lose_first: usize,
}

struct Sim {
    client: Client,
    reg: Registration,
    gw_peer: Option<Move>,
    now: u64,
    events: Vec<Event>,
    sent: Vec<Rreq>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            client: Client::new(CFG, 1000),
            reg: Registration::default(),
            gw_peer: None,
            now: 0,
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Carries every pending request over `path`, then the replies back.
    fn exchange(&mut self, path: &mut Link) {
        let reqs: Vec<Rreq> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Send(r) => Some(*r),
                _ => None,
            })
            .collect();
        self.sent.extend(&reqs);
        self.events.retain(|e| !matches!(e, Event::Send(_)));
        self.now += HALF_RTT;
        let mut replies = Vec::new();
        for r in reqs {
            if path.lose_first > 0 {
                path.lose_first -= 1;
                continue;
            }
            if r.sent.encap == Encap::Plain && path.plain_up_blocked {
                continue;
            }
            let mut observed = r.sent;
            if let Some((a, port)) = path.napt {
                observed.src = a;
                if observed.encap == Encap::Udp {
                    observed.sport = port;
                }
            }
            let d = gateway::check(
                &mut self.reg,
                &r,
                observed,
                INNER,
                |a| a == INNER,
                Policy {
                    keepalive_secs: 20,
                    allow_plain: true,
                },
            );
            if let Some(m) = d.moved {
                self.gw_peer = Some(m);
            }
            if !(r.sent.encap == Encap::Plain && path.plain_down_blocked) {
                replies.push((d.reply, r.sent.encap));
            }
        }
        self.now += HALF_RTT;
        for (rrep, over) in replies {
            self.client
                .on_reply(self.now, &rrep, over, &mut self.events);
        }
    }

    fn move_to(&mut self, local: Ipv4Addr) {
        self.client.on_path(
            self.now,
            Some(super::Path::from_src(local)),
            &mut self.events,
        );
    }

    /// Steps time to the client's next deadline and polls.
    fn wait(&mut self) {
        if let Some(d) = self.client.deadline() {
            self.now = self.now.max(d);
        }
        self.client.poll(self.now, &mut self.events);
    }

    fn registered(&self) -> Vec<(bool, u64, NatKind)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Registered {
                    initial,
                    handover_ms,
                    nat,
                } => Some((*initial, *handover_ms, *nat)),
                _ => None,
            })
            .collect()
    }

    fn fell_back(&self) -> bool {
        self.events.contains(&Event::FellBack)
    }
}

#[test]
fn direct_path_ends_on_plain_esp_in_one_round_trip() {
    let mut s = Sim::new();
    s.move_to(DIRECT);
    assert_eq!(
        s.events
            .iter()
            .filter(|e| matches!(e, Event::Send(_)))
            .count(),
        2
    );
    s.exchange(&mut Link::default());
    assert_eq!(s.registered(), vec![(true, 2 * HALF_RTT, NatKind::None)]);
    assert_eq!(s.client.encap(), Encap::Plain);
    assert!(!s.client.registering());
    assert_eq!(
        s.gw_peer,
        Some(Move {
            addr: DIRECT,
            port: 0,
            encap: Encap::Plain
        })
    );
    // Both copies carry one identification, above the floor, with what they were sent with.
    assert_eq!(s.sent[0].id, 1001);
    assert_eq!(s.sent[1].id, 1001);
    assert_eq!(s.sent[0].sent.encap, Encap::Udp);
    assert_eq!((s.sent[0].sent.sport, s.sent[0].sent.dst), (4500, GW));
    assert_eq!(s.sent[1].sent.encap, Encap::Plain);
}

#[test]
fn napt_reports_address_and_port_and_keeps_udp() {
    let mut s = Sim::new();
    s.move_to(DIRECT);
    s.exchange(&mut Link::default());
    s.events.clear();
    s.now += 1000;
    s.move_to(PRIVATE);
    assert!(s.events.contains(&Event::UseEncap {
        encap: Encap::Udp,
        keepalive_secs: 0
    }));
    s.exchange(&mut Link {
        napt: Some((NAT_OUT, 40001)),
        ..Link::default()
    });
    assert_eq!(
        s.registered(),
        vec![(false, 2 * HALF_RTT, NatKind::AddressAndPort)]
    );
    assert_eq!(s.client.encap(), Encap::Udp);
    assert!(s.events.contains(&Event::UseEncap {
        encap: Encap::Udp,
        keepalive_secs: 20
    }));
    assert!(!s.client.registering(), "no probe wait behind a NAT");
    assert_eq!(
        s.gw_peer,
        Some(Move {
            addr: NAT_OUT,
            port: 40001,
            encap: Encap::Udp
        })
    );
    assert!(!s.fell_back());
}

#[test]
fn protocol_50_blocked_both_ways_falls_back_to_udp() {
    let mut s = Sim::new();
    let mut path = Link {
        plain_up_blocked: true,
        plain_down_blocked: true,
        ..Link::default()
    };
    s.move_to(DIRECT);
    s.exchange(&mut path);
    assert_eq!(s.registered().len(), 1, "data flows after one round trip");
    assert_eq!(s.client.encap(), Encap::Udp);
    assert!(s.client.registering(), "waiting for the plain reply");
    assert_eq!(s.client.deadline(), Some(2 * HALF_RTT + 50));
    s.wait();
    assert!(s.fell_back());
    let last = s.events.iter().rev().find_map(|e| match e {
        Event::Send(r) => Some(*r),
        _ => None,
    });
    let last = last.unwrap();
    assert_eq!(last.sent.encap, Encap::Udp);
    assert_eq!(last.supported, EncapSet::of(&[Encap::Udp]));
    s.exchange(&mut path);
    assert!(!s.client.registering());
    assert_eq!(s.client.encap(), Encap::Udp);
    assert_eq!(s.gw_peer.map(|m| m.encap), Some(Encap::Udp));
    assert_eq!(
        s.registered().len(),
        1,
        "the fallback is not a second handover"
    );
}

#[test]
fn plain_filtered_towards_the_client_pins_the_gateway_back_to_udp() {
    let mut s = Sim::new();
    let mut path = Link {
        plain_down_blocked: true,
        ..Link::default()
    };
    s.move_to(DIRECT);
    s.exchange(&mut path);
    // The gateway moved to plain ESP on the copy, but its reply never arrived.
    assert_eq!(s.gw_peer.map(|m| m.encap), Some(Encap::Plain));
    assert_eq!(s.client.encap(), Encap::Udp);
    s.wait();
    assert!(s.fell_back());
    s.exchange(&mut path);
    assert_eq!(s.gw_peer.map(|m| m.encap), Some(Encap::Udp));
    assert_eq!(s.client.encap(), Encap::Udp);
    assert!(!s.client.registering());
}

#[test]
fn lost_requests_are_retransmitted_with_backoff_and_fresh_ids() {
    let mut s = Sim::new();
    let mut path = Link {
        lose_first: 4, // two rounds of two copies
        ..Link::default()
    };
    s.move_to(DIRECT);
    s.exchange(&mut path);
    assert!(s.registered().is_empty());
    assert_eq!(s.client.deadline(), Some(200));
    s.wait();
    s.exchange(&mut path);
    assert_eq!(s.client.deadline(), Some(200 + 400));
    s.wait();
    s.exchange(&mut path);
    assert_eq!(s.client.encap(), Encap::Plain);
    let ids: Vec<u64> = s.sent.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1001, 1001, 1002, 1002, 1003, 1003]);
    assert_eq!(
        s.registered(),
        vec![(true, 600 + 2 * HALF_RTT, NatKind::None)]
    );
}

#[test]
fn stale_reply_moves_identifications_past_the_gateways() {
    let mut s = Sim::new();
    s.reg.last_id = Some(50_000); // the gateway saw a previous run of this client
    s.move_to(DIRECT);
    s.exchange(&mut Link::default());
    assert!(s.registered().is_empty());
    assert!(s.client.registering());
    s.exchange(&mut Link::default());
    assert_eq!(s.client.encap(), Encap::Plain);
    assert_eq!(s.sent.last().map(|r| r.id), Some(50_001));
}

#[test]
fn replies_to_older_requests_and_unchanged_paths_do_nothing() {
    let mut s = Sim::new();
    s.move_to(DIRECT);
    let old = Rrep {
        id: 7,
        code: Code::Accepted,
        observed: s.client.header(DIRECT, Encap::Udp),
        nat: NatFields::default(),
        use_encap: Some(Encap::Plain),
        keepalive_secs: 0,
        last_id: None,
    };
    s.events.clear();
    s.client.on_reply(1, &old, Encap::Plain, &mut s.events);
    assert!(s.events.is_empty());
    s.move_to(DIRECT);
    assert!(s.events.is_empty(), "same address: no new registration");
    s.client.on_path(2, None, &mut s.events);
    assert!(!s.client.registering());
    assert_eq!(s.client.deadline(), None);
}

#[test]
fn refusals_stop_the_registration() {
    let mut s = Sim::new();
    s.move_to(DIRECT);
    let id = s.sent.len(); // nothing carried yet
    assert_eq!(id, 0);
    let req = match s.events.first() {
        Some(Event::Send(r)) => *r,
        _ => panic!("no request"),
    };
    let refusal = Rrep {
        id: req.id,
        code: Code::InnerMismatch,
        observed: req.sent,
        nat: NatFields::default(),
        use_encap: None,
        keepalive_secs: 0,
        last_id: None,
    };
    s.client.on_reply(3, &refusal, Encap::Udp, &mut s.events);
    assert!(s.events.contains(&Event::Rejected(Code::InnerMismatch)));
    assert!(!s.client.registering());
}

#[test]
fn a_new_route_with_the_same_source_address_re_registers() {
    let mut s = Sim::new();
    let first = super::Path {
        src: DIRECT,
        oif: 2,
        via: Some(Ipv4Addr::new(203, 0, 113, 1)),
    };
    s.client.on_path(0, Some(first), &mut s.events);
    s.exchange(&mut Link::default());
    s.events.clear();
    let second = super::Path { oif: 3, ..first };
    s.client.on_path(s.now, Some(second), &mut s.events);
    assert_eq!(
        s.events
            .iter()
            .filter(|e| matches!(e, Event::Send(_)))
            .count(),
        2
    );
    assert_eq!(s.client.path(), Some(second));
}

/// Fuzzing found `sent_ms + rto_ms` and `rto_ms * 2` overflowing with the
/// large timeouts the configuration allows.
#[test]
fn huge_timeouts_saturate() {
    let cfg = ClientConfig {
        initial_rto_ms: u64::MAX - 1,
        max_rto_ms: u64::MAX,
        min_probe_wait_ms: u64::MAX,
        ..CFG
    };
    let mut c = Client::new(cfg, 1000);
    let mut out = Vec::new();
    c.on_path(5, Some(super::Path::from_src(DIRECT)), &mut out);
    assert_eq!(c.deadline(), Some(u64::MAX));
    out.clear();
    c.poll(u64::MAX, &mut out);
    assert!(matches!(out.first(), Some(Event::Send(_))), "{out:?}");
    assert_eq!(c.deadline(), Some(u64::MAX));
}

/// Fuzzing found `last_id += 1` overflowing after a stale reply naming
/// `u64::MAX`: no fresh identification is left, so the client gives up.
#[test]
fn a_stale_reply_at_the_last_identification_stops_the_registration() {
    let mut c = Client::new(CFG, 1000);
    let mut out = Vec::new();
    c.on_path(0, Some(super::Path::from_src(DIRECT)), &mut out);
    let Some(Event::Send(req)) = out.iter().find(|e| matches!(e, Event::Send(_))).copied() else {
        panic!("no request: {out:?}");
    };
    let stale = Rrep {
        id: req.id,
        code: Code::Stale,
        observed: req.sent,
        nat: NatFields::default(),
        use_encap: None,
        keepalive_secs: 0,
        last_id: Some(u64::MAX),
    };
    out.clear();
    c.on_reply(1, &stale, Encap::Udp, &mut out);
    assert_eq!(out, [Event::Rejected(Code::Stale)]);
    assert!(!c.registering());
}
