//! The forwarding policy stepped in memory: frames in, verdicts and
//! originated frames out, time passed explicitly. No root, no devices.

use super::*;
use crate::io::RxFlags;
use crate::wire::{arp as warp, build, icmp, ipv4};
use rand::{Rng, SeedableRng};

const ROUTER_IN: Mac = Mac([2, 0, 0, 0, 1, 1]);
const ROUTER_OUT: Mac = Mac([2, 0, 0, 0, 1, 2]);
const H1_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x11]);
const GW_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x99]);
const H1: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 1);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);

const CONFIG: &str = r#"
[inside]
interface = "in0"
address = "10.6.1.1/24"
[outside]
interface = "out0"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
[arp]
max_entries = 8
max_pending_hops = 4
[icmp]
errors_per_sec = 10
errors_burst = 5
"#;

/// The policy plus one thread's state and a clock.
struct Bed {
    fwd: Forwarding,
    local: Local,
    now: Millis,
}

/// What one frame did.
struct Step {
    verdict: Verdict,
    /// The frame after in-place rewriting.
    frame: Vec<u8>,
    /// Frames the router originated while handling it.
    sent: Vec<Transmit>,
}

fn eth(dst: Mac, src: Mac, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ETH + body.len()];
    ethernet::emit_header(&mut f, dst, src, ethertype).unwrap();
    f[ETH..].copy_from_slice(body);
    f
}

fn arp_frame(op: Operation, sender: (Mac, Ipv4Addr), target: Ipv4Addr, dst: Mac) -> Vec<u8> {
    let mut body = vec![0u8; warp::PACKET_LEN];
    ArpRepr {
        operation: op,
        sender_mac: sender.0,
        sender_ip: sender.1,
        target_mac: Mac::ZERO,
        target_ip: target,
    }
    .emit(&mut body)
    .unwrap();
    eth(dst, sender.0, ethertype::ARP, &body)
}

fn ip_of(frame: &[u8]) -> ipv4::Packet<&[u8]> {
    ipv4::Packet::new_checked(&frame[ETH..]).unwrap()
}

impl Bed {
    fn with(config: &str) -> Bed {
        let cfg = RouterConfig::parse(config).unwrap();
        let ifaces = Interfaces {
            macs: [ROUTER_IN, ROUTER_OUT],
            mtus: [1500, 1500],
        };
        let fwd = Forwarding::new(&cfg, ifaces, 7).unwrap();
        let local = fwd.local(1, 0);
        Bed { fwd, local, now: 0 }
    }

    fn new() -> Bed {
        Bed::with(CONFIG)
    }

    fn step(&mut self, side: Side, mut frame: Vec<u8>) -> Step {
        let verdict = self.fwd.handle(
            side,
            &mut frame,
            RxFlags::default(),
            self.now,
            &mut self.local,
        );
        Step {
            verdict,
            frame,
            sent: std::mem::take(&mut self.local.transmits),
        }
    }

    /// h1 and the gateway ask for the router's addresses, so both are cached.
    fn warm(mut self) -> Bed {
        let s = self.step(
            Side::Inside,
            arp_frame(Operation::Request, (H1_MAC, H1), INSIDE, Mac::BROADCAST),
        );
        assert_eq!(s.sent.len(), 1, "request answered");
        self.step(
            Side::Outside,
            arp_frame(Operation::Request, (GW_MAC, GW), PUBLIC, Mac::BROADCAST),
        );
        assert_eq!(self.fwd.arp.lookup(Side::Outside, GW, 0), Some(GW_MAC));
        self
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.local.counters.drops[r.index()]
    }
}

#[test]
fn arp_request_for_us_is_answered_and_its_sender_learned() {
    let mut b = Bed::new();
    let s = b.step(
        Side::Inside,
        arp_frame(Operation::Request, (H1_MAC, H1), INSIDE, Mac::BROADCAST),
    );
    assert_eq!(s.verdict, Verdict::Consumed);
    let reply = warp::Packet::new_checked(&s.sent[0].frame[ETH..]).unwrap();
    let r = ArpRepr::parse(&reply);
    assert_eq!(r.operation, Operation::Reply);
    assert_eq!((r.sender_mac, r.sender_ip), (ROUTER_IN, INSIDE));
    assert_eq!((r.target_mac, r.target_ip), (H1_MAC, H1));
    assert_eq!(b.fwd.arp.lookup(Side::Inside, H1, 0), Some(H1_MAC));
}

#[test]
fn arp_senders_off_the_prefix_or_claiming_our_address_are_dropped() {
    let mut b = Bed::new();
    for sender in [REMOTE, GW, INSIDE, Ipv4Addr::new(10, 6, 1, 255)] {
        let s = b.step(
            Side::Inside,
            arp_frame(Operation::Request, (H1_MAC, sender), INSIDE, Mac::BROADCAST),
        );
        assert_eq!(
            s.verdict,
            Verdict::Drop(DropReason::ArpBadSender),
            "{sender}"
        );
        assert!(s.sent.is_empty());
    }
    assert_eq!(b.drops(DropReason::ArpBadSender), 4);
    assert!(b.fwd.arp.is_empty());
}

#[test]
fn arp_flood_from_random_senders_stays_within_the_cache_and_the_gateway_resolves() {
    let mut b = Bed::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    for _ in 0..500 {
        let sender = Ipv4Addr::new(10, 6, 1, rng.gen_range(2..=254));
        let mac = Mac([2, 0, 0, 1, rng.gen(), rng.gen()]);
        b.step(
            Side::Inside,
            arp_frame(Operation::Request, (mac, sender), INSIDE, Mac::BROADCAST),
        );
        let stranger = Ipv4Addr::from(rng.gen::<u32>());
        b.step(
            Side::Outside,
            arp_frame(Operation::Request, (mac, stranger), PUBLIC, Mac::BROADCAST),
        );
    }
    assert!(b.fwd.arp.len_on(Side::Inside) <= 8);
    assert!(b.local.counters.arp_cache_full > 0);
    assert_eq!(b.fwd.arp.len_on(Side::Outside), 0, "no stranger cached");
    // Traffic to the gateway still resolves on the outside.
    let s = b.step(
        Side::Inside,
        eth(
            ROUTER_IN,
            H1_MAC,
            ethertype::IPV4,
            &build::udp(H1, 4000, REMOTE, 53, b"q"),
        ),
    );
    assert_eq!(s.verdict, Verdict::Consumed, "queued for ARP");
    let s = b.step(
        Side::Outside,
        arp_frame(Operation::Reply, (GW_MAC, GW), PUBLIC, ROUTER_OUT),
    );
    assert_eq!(s.sent.len(), 1, "the queued datagram leaves");
    assert_eq!(s.sent[0].side, Side::Outside);
    assert_eq!(b.fwd.arp.lookup(Side::Outside, GW, 1), Some(GW_MAC));
}

#[test]
fn outbound_then_reply_are_translated_and_sent_to_the_neighbours() {
    let mut b = Bed::new().warm();
    let out = build::udp(H1, 4000, REMOTE, 53, b"query");
    let s = b.step(Side::Inside, eth(ROUTER_IN, H1_MAC, ethertype::IPV4, &out));
    assert_eq!(s.verdict, Verdict::Forward(Side::Outside));
    let e = ethernet::Frame::new_checked(&s.frame[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (GW_MAC, ROUTER_OUT));
    let p = ip_of(&s.frame);
    assert_eq!((p.src(), p.dst(), p.ttl()), (PUBLIC, REMOTE, 63));
    assert!(p.verify_checksum());
    let ext_port = u16::from_be_bytes([p.payload()[0], p.payload()[1]]);
    let back = build::udp(REMOTE, 53, PUBLIC, ext_port, b"answer");
    let s = b.step(
        Side::Outside,
        eth(ROUTER_OUT, GW_MAC, ethertype::IPV4, &back),
    );
    assert_eq!(s.verdict, Verdict::Forward(Side::Inside));
    let e = ethernet::Frame::new_checked(&s.frame[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (H1_MAC, ROUTER_IN));
    let p = ip_of(&s.frame);
    assert_eq!((p.dst(), p.payload()[2..4].to_vec()), (H1, vec![15, 160]));
    assert_eq!(b.fwd.nat.table.session_count(), 1);
}

#[test]
fn unsolicited_inbound_is_dropped_with_the_nat_reason() {
    let mut b = Bed::new().warm();
    let p = build::udp(REMOTE, 53, PUBLIC, 40000, b"x");
    let s = b.step(Side::Outside, eth(ROUTER_OUT, GW_MAC, ethertype::IPV4, &p));
    assert_eq!(
        s.verdict,
        Verdict::Drop(DropReason::Nat(crate::nat::NatDrop::NoMapping))
    );
    let stranger = build::udp(REMOTE, 53, Ipv4Addr::new(203, 0, 113, 11), 1, b"x");
    let s = b.step(
        Side::Outside,
        eth(ROUTER_OUT, GW_MAC, ethertype::IPV4, &stranger),
    );
    assert_eq!(s.verdict, Verdict::Drop(DropReason::NotOurAddress));
}

#[test]
fn ttl_one_flood_gets_rate_limited_time_exceeded() {
    let mut b = Bed::new().warm();
    let probe = build::with_ttl(build::udp(H1, 33434, REMOTE, 33434, b"tr"), 1);
    let frame = eth(ROUTER_IN, H1_MAC, ethertype::IPV4, &probe);
    let mut errors = 0;
    for _ in 0..1000 {
        let s = b.step(Side::Inside, frame.clone());
        assert_eq!(s.verdict, Verdict::Drop(DropReason::TtlExceeded));
        for t in &s.sent {
            let p = ip_of(&t.frame);
            assert_eq!((p.src(), p.dst()), (INSIDE, H1));
            assert_eq!(p.payload()[0], icmp::kind::TIME_EXCEEDED);
            errors += 1;
        }
    }
    assert_eq!(
        errors, 5,
        "the burst, then nothing within the same millisecond"
    );
    let limited =
        b.local.counters.icmp_errors_suppressed[icmp_errors::Suppressed::RateLimited as usize];
    assert_eq!(limited, 995);
    b.now += 1000;
    let sent: usize = (0..100)
        .map(|_| b.step(Side::Inside, frame.clone()).sent.len())
        .sum();
    assert_eq!(sent, 5, "a second later the bucket holds its burst again");
    assert_eq!(b.drops(DropReason::TtlExceeded), 1100);
}

#[test]
fn no_icmp_error_toward_a_non_unicast_source_or_about_an_error() {
    let mut b = Bed::new().warm();
    let from_bcast = build::with_ttl(
        build::udp(Ipv4Addr::new(203, 0, 113, 255), 1, PUBLIC, 2, b"x"),
        1,
    );
    let s = b.step(
        Side::Outside,
        eth(ROUTER_OUT, GW_MAC, ethertype::IPV4, &from_bcast),
    );
    assert_eq!(s.verdict, Verdict::Drop(DropReason::TtlExceeded));
    assert!(s.sent.is_empty());
    let about = build::with_ttl(
        build::icmp_error(H1, REMOTE, icmp::kind::DEST_UNREACHABLE, 3, &from_bcast),
        1,
    );
    let s = b.step(
        Side::Inside,
        eth(ROUTER_IN, H1_MAC, ethertype::IPV4, &about),
    );
    assert!(s.sent.is_empty());
    let c = &b.local.counters.icmp_errors_suppressed;
    assert_eq!(c[icmp_errors::Suppressed::NotUnicast as usize], 1);
    assert_eq!(c[icmp_errors::Suppressed::AboutIcmpError as usize], 1);
}

#[test]
fn echo_to_the_router_is_answered_on_both_sides() {
    let mut b = Bed::new().warm();
    let s = b.step(
        Side::Inside,
        eth(
            ROUTER_IN,
            H1_MAC,
            ethertype::IPV4,
            &build::echo(H1, INSIDE, false, 7, 1),
        ),
    );
    assert_eq!(s.verdict, Verdict::Consumed);
    let p = ip_of(&s.sent[0].frame);
    assert_eq!((p.src(), p.dst()), (INSIDE, H1));
    let s = b.step(
        Side::Outside,
        eth(
            ROUTER_OUT,
            GW_MAC,
            ethertype::IPV4,
            &build::echo(REMOTE, PUBLIC, false, 7, 1),
        ),
    );
    assert_eq!(s.sent[0].side, Side::Outside);
    assert_eq!(ip_of(&s.sent[0].frame).dst(), REMOTE);
}

#[test]
fn oversize_with_df_gets_fragmentation_needed_with_the_mtu() {
    let mut b = Bed::new().warm();
    let mut big = build::udp(H1, 1, REMOTE, 2, &[0u8; 1600]);
    big[6] = 0x40; // DF
    ipv4::Packet::new_checked(&mut big[..])
        .unwrap()
        .fill_checksum();
    let s = b.step(Side::Inside, eth(ROUTER_IN, H1_MAC, ethertype::IPV4, &big));
    assert_eq!(s.verdict, Verdict::Drop(DropReason::MtuExceeded));
    let p = ip_of(&s.sent[0].frame);
    assert_eq!(
        &p.payload()[..2],
        &[icmp::kind::DEST_UNREACHABLE, icmp::kind::FRAG_NEEDED]
    );
    assert_eq!(&p.payload()[6..8], &1500u16.to_be_bytes());
}

#[test]
fn hairpin_reaches_the_inside_owner_of_the_external_port() {
    let open = format!("{CONFIG}[nat]\nfiltering = \"endpoint-independent\"\n");
    let mut b = Bed::with(&open).warm();
    let h2 = Ipv4Addr::new(10, 6, 1, 3);
    let h2_mac = Mac([2, 0, 0, 0, 0, 0x12]);
    b.step(
        Side::Inside,
        arp_frame(Operation::Request, (h2_mac, h2), INSIDE, Mac::BROADCAST),
    );
    let s = b.step(
        Side::Inside,
        eth(
            ROUTER_IN,
            h2_mac,
            ethertype::IPV4,
            &build::udp(h2, 5000, REMOTE, 9, b"open"),
        ),
    );
    let ext = ip_of(&s.frame).payload()[0..2].to_vec();
    let ext = u16::from_be_bytes([ext[0], ext[1]]);
    let s = b.step(
        Side::Inside,
        eth(
            ROUTER_IN,
            H1_MAC,
            ethertype::IPV4,
            &build::udp(H1, 6000, PUBLIC, ext, b"hi"),
        ),
    );
    assert_eq!(s.verdict, Verdict::Forward(Side::Inside));
    let p = ip_of(&s.frame);
    assert_eq!((p.src(), p.dst()), (PUBLIC, h2));
    assert_eq!(b.local.counters.nat.hairpinned, 1);
}

#[test]
fn frames_not_for_us_and_malformed_ones_are_counted() {
    let mut b = Bed::new();
    let cases = [
        (vec![0u8; 5], DropReason::EthTruncated),
        (
            eth(H1_MAC, GW_MAC, ethertype::IPV4, &[0u8; 40]),
            DropReason::NotForUs,
        ),
        (
            eth(
                Mac([1, 0, 0x5e, 0, 0, 1]),
                GW_MAC,
                ethertype::IPV4,
                &[0u8; 40],
            ),
            DropReason::Multicast,
        ),
        (
            eth(ROUTER_IN, H1_MAC, 0x86dd, &[0u8; 40]),
            DropReason::NonIpv4,
        ),
        (
            eth(ROUTER_IN, H1_MAC, ethertype::IPV4, &[0x45, 0, 0]),
            DropReason::IpTruncated,
        ),
        (
            eth(ROUTER_IN, H1_MAC, ethertype::ARP, &[0u8; 3]),
            DropReason::ArpMalformed,
        ),
    ];
    for (f, r) in cases {
        assert_eq!(b.step(Side::Inside, f).verdict, Verdict::Drop(r));
    }
    assert_eq!(b.local.counters.total_drops(), 6);
    assert_eq!(b.local.counters.rx_packets[0], 6);
}

#[test]
fn arbitrary_frames_never_panic_and_every_drop_is_counted() {
    let mut b = Bed::new().warm();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let seed_frames = [
        eth(
            ROUTER_IN,
            H1_MAC,
            ethertype::IPV4,
            &build::udp(H1, 1, REMOTE, 2, b"abc"),
        ),
        eth(
            ROUTER_OUT,
            GW_MAC,
            ethertype::IPV4,
            &build::esp(REMOTE, PUBLIC, 9, 1, b"x"),
        ),
        arp_frame(Operation::Request, (H1_MAC, H1), INSIDE, Mac::BROADCAST),
    ];
    for i in 0..20_000 {
        let mut f = seed_frames[i % seed_frames.len()].clone();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..f.len());
            f[at] = rng.gen();
        }
        f.truncate(rng.gen_range(0..=f.len()));
        let side = if rng.gen() {
            Side::Inside
        } else {
            Side::Outside
        };
        let before = b.local.counters.total_drops();
        let s = b.step(side, f);
        if let Verdict::Drop(_) = s.verdict {
            assert_eq!(b.local.counters.total_drops(), before + 1);
        }
    }
}
