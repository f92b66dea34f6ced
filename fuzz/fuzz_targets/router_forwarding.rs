//! The router's forwarding policy on arbitrary frames from either side, with
//! arbitrary receive flags and offload metadata, time stepping forward.
//!
//! Input: records of `[side/flags byte][time step][len hi][len lo][10 offload bytes][frame]`.
//! Checked after every frame: nothing panics; a dropped frame is counted
//! exactly once; a forwarded frame leaves with our MAC as source and a valid
//! IPv4 header of the same length; originated frames are well-formed
//! Ethernet; the ARP cache and pending hops stay within their caps.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::io::offload::Offload;
use spimux::io::RxFlags;
use spimux::router::config::RouterConfig;
use spimux::router::forwarding::{Forwarding, Interfaces, Verdict};
use spimux::router::stats::Side;
use spimux::wire::ethernet::{self, Mac};
use spimux::wire::ipv4;
use std::sync::OnceLock;

const MACS: [Mac; 2] = [Mac([2, 0, 0, 0, 1, 1]), Mac([2, 0, 0, 0, 1, 2])];
const MAX_ENTRIES: usize = 16;
const MAX_PENDING: usize = 4;

fn config() -> &'static RouterConfig {
    static CFG: OnceLock<RouterConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        RouterConfig::parse(&format!(
            "[inside]\ninterface = \"a\"\naddress = \"10.6.1.1/24\"\n\
             [outside]\ninterface = \"b\"\naddress = \"203.0.113.10/24\"\ngateway = \"203.0.113.1\"\n\
             [[routes]]\nprefix = \"10.7.0.0/16\"\nvia = \"10.6.1.254\"\n\
             [arp]\nmax_entries = {MAX_ENTRIES}\nmax_pending_hops = {MAX_PENDING}\nqueue_per_hop = 4\n\
             [nat]\nfiltering = \"endpoint-independent\"\n\
             [nat.limits]\nmax_sessions = 64\nmax_sessions_per_host = 16\n\
             [icmp]\nerrors_per_sec = 10\nerrors_burst = 2\n"
        ))
        .expect("fuzz config parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let ifaces = Interfaces {
        macs: MACS,
        mtus: [1500, 1400],
    };
    let fwd = Forwarding::new(config(), ifaces, 1).expect("valid config");
    let mut local = fwd.local(2, 0);
    let mut now = 0u64;
    let mut rest = data;
    while let [ctl, step, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]) & 0x0fff);
        let Some((meta, tail)) = tail.split_at_checked(10) else {
            break;
        };
        let take = len.min(tail.len());
        let (frame, tail) = tail.split_at(take);
        rest = tail;
        now += u64::from(*step) * 37;
        let side = if ctl & 1 == 0 { Side::Inside } else { Side::Outside };
        let flags = RxFlags {
            truncated: ctl & 0x10 != 0 && ctl & 0x0e == 0x0e,
            offload: if ctl & 2 != 0 {
                Offload::parse(meta).unwrap_or_default()
            } else {
                Offload::default()
            },
            offload_unusable: ctl & 0x20 != 0 && ctl & 0x0c == 0x0c,
            vlan: ctl & 0x40 != 0 && ctl & 0x0c == 0x0c,
        };
        let mut buf = frame.to_vec();
        let drops_before = local.counters.total_drops();
        let v = fwd.handle(side, &mut buf, flags, now, &mut local);
        match v {
            Verdict::Drop(_) => assert_eq!(local.counters.total_drops(), drops_before + 1),
            Verdict::Forward(out) => {
                assert_eq!(local.counters.total_drops(), drops_before);
                let e = ethernet::Frame::new_checked(&buf[..]).expect("forwarded frame is Ethernet");
                assert_eq!(e.src(), MACS[out as usize]);
                let p = ipv4::Packet::new_checked(e.payload()).expect("forwarded IPv4 is valid");
                assert!(p.verify_checksum(), "header checksum kept valid");
                assert_eq!(buf.len(), frame.len(), "rewritten in place");
            }
            Verdict::Consumed => assert_eq!(local.counters.total_drops(), drops_before),
        }
        for t in local.transmits.drain(..) {
            let e = ethernet::Frame::new_checked(&t.frame[..]).expect("originated frame is Ethernet");
            assert_eq!(e.src(), MACS[t.side as usize]);
        }
        for s in [Side::Inside, Side::Outside] {
            assert!(fwd.arp.pending_on(s) <= MAX_PENDING);
            // Answers to our own requests may exceed the cap by the pending hops.
            assert!(fwd.arp.len_on(s) <= MAX_ENTRIES + MAX_PENDING);
        }
        if step & 0x80 != 0 {
            fwd.arp_tick(now, &mut local);
            fwd.expire(now, &mut local);
            local.transmits.clear();
        }
    }
    // Past every timeout everything drains.
    now += 10_000_000;
    fwd.arp_tick(now, &mut local);
    fwd.arp_tick(now + 10_000, &mut local);
    fwd.arp_tick(now + 20_000, &mut local);
    fwd.arp_tick(now + 30_000, &mut local);
    fwd.expire(now + 30_000, &mut local);
    assert!(fwd.arp.is_empty());
    assert_eq!(fwd.nat.table.session_count(), 0);
    assert_eq!(fwd.nat.table.mapping_count(), 0);
});
