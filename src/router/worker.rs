//! One receive thread: reads a batch from its interface's fanout queue,
//! handles each frame (ARP, local ICMP, TTL, NAT, next hop) in place, then
//! sends the batch's output per interface with one call each.

use super::arp::Queued;
use super::offload;
use super::originate;
use super::route::NextHop;
use super::stats::{Counters, DropReason, Side};
use super::Shared;
use crate::daemon::stats::Publisher;
use crate::io::offload::Offload;
use crate::io::{FrameRx, FrameTx, RxBatch, RxFlags};
use crate::nat::L4Checksum;
use crate::wire::arp::{self, Operation};
use crate::wire::ethernet::{self, ethertype, Mac};
use crate::wire::{icmp, ipv4};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const ETH: usize = ethernet::HEADER_LEN;

/// What becomes of one received frame.
enum Verdict {
    /// Rewritten in place; send it out of `Side` to this neighbour MAC.
    Forward(Side, Mac),
    /// Consumed (answered, queued for ARP, or only learned from).
    Done,
    /// Dropped for a reason.
    Drop(DropReason),
}

/// A receive thread's state.
pub struct Worker {
    side: Side,
    shared: Arc<Shared>,
    rx: Box<dyn FrameRx>,
    tx: [Box<dyn FrameTx>; 2],
    local: Counters,
    publisher: Publisher<Counters>,
    /// Frames the router originates or releases from the ARP queue this batch.
    generated: Vec<(Side, Vec<u8>, Offload)>,
}

impl Worker {
    /// A worker reading `side` through `rx` and sending through `tx` (inside, outside).
    pub fn new(
        side: Side,
        shared: Arc<Shared>,
        rx: Box<dyn FrameRx>,
        tx: [Box<dyn FrameTx>; 2],
        publisher: Publisher<Counters>,
    ) -> Self {
        Worker {
            side,
            shared,
            rx,
            tx,
            local: Counters::default(),
            publisher,
            generated: Vec::new(),
        }
    }

    /// Runs until shutdown is requested.
    pub fn run(mut self, batch_size: usize) {
        let mut batch = RxBatch::new(batch_size);
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(batch_size);
        while !self.shared.shutdown.load(Ordering::Relaxed) {
            let n = match self.rx.recv_batch(&mut batch, 100) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(side = self.side.label(), error = %e, "receive failed");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    0
                }
            };
            verdicts.clear();
            let now = self.shared.now();
            for i in 0..n {
                let Some((frame, flags)) = batch.frame_mut(i) else {
                    continue;
                };
                self.local.rx_packets[self.side as usize] += 1;
                self.local.rx_bytes[self.side as usize] += frame.len() as u64;
                let v = self.handle(frame, flags, now);
                if let Verdict::Drop(r) = v {
                    self.local.count_drop(r);
                }
                verdicts.push(v);
            }
            self.flush(&mut batch, &verdicts);
            // Publishing per batch would cost a lock and a copy per packet at low rates.
            self.publisher.maybe(&self.local, now, n == 0);
        }
        self.publisher.publish(&self.local, self.shared.now());
    }

    fn flush(&mut self, batch: &mut RxBatch, verdicts: &[Verdict]) {
        for side in [Side::Inside, Side::Outside] {
            let mut out: Vec<(&[u8], Offload)> = Vec::new();
            for (i, v) in verdicts.iter().enumerate() {
                if matches!(v, Verdict::Forward(s, _) if *s == side) {
                    if let (Some(f), Some(fl)) = (batch.frame(i), batch.flags(i)) {
                        out.push((f, fl.offload));
                    }
                }
            }
            out.extend(
                self.generated
                    .iter()
                    .filter(|(s, _, _)| *s == side)
                    .map(|(_, f, o)| (f.as_slice(), *o)),
            );
            if out.is_empty() {
                continue;
            }
            let sent = self.tx[side as usize].send_batch(&out).unwrap_or(0);
            let si = side as usize;
            self.local.tx_packets[si] += sent as u64;
            self.local.tx_bytes[si] += out
                .iter()
                .take(sent)
                .map(|(f, _)| f.len() as u64)
                .sum::<u64>();
            for _ in sent..out.len() {
                self.local.count_drop(DropReason::TxError);
            }
        }
        self.generated.clear();
    }

    fn handle(&mut self, frame: &mut [u8], flags: RxFlags, now: u64) -> Verdict {
        if flags.truncated {
            return Verdict::Drop(DropReason::Oversize);
        }
        if flags.offload_unusable {
            return Verdict::Drop(DropReason::OffloadUnsupported);
        }
        if flags.vlan {
            return Verdict::Drop(DropReason::Vlan);
        }
        let Ok(eth) = ethernet::Frame::new_checked(&*frame) else {
            return Verdict::Drop(DropReason::EthTruncated);
        };
        let me = self.shared.iface_mac(self.side);
        let (dst, src_mac, et) = (eth.dst(), eth.src(), eth.ethertype());
        if src_mac == me {
            // Our own transmission looped back (kernels without PACKET_IGNORE_OUTGOING).
            return Verdict::Done;
        }
        if dst != me && dst != Mac::BROADCAST {
            return Verdict::Drop(if dst.is_multicast() {
                DropReason::Multicast
            } else {
                DropReason::NotForUs
            });
        }
        match et {
            ethertype::ARP => self.handle_arp(frame, now),
            ethertype::IPV4 if dst == me => {
                let Some(ip) = frame.get_mut(ETH..) else {
                    return Verdict::Drop(DropReason::EthTruncated);
                };
                let v = match self.side {
                    Side::Inside => self.ingress_inside(ip, src_mac, flags, now),
                    Side::Outside => self.ingress_outside(ip, src_mac, flags, now),
                };
                if let Verdict::Forward(side, mac) = v {
                    let _ = ethernet::emit_header(
                        frame,
                        mac,
                        self.shared.iface_mac(side),
                        ethertype::IPV4,
                    );
                }
                v
            }
            ethertype::IPV4 => Verdict::Drop(DropReason::NotForUs),
            ethertype::VLAN => Verdict::Drop(DropReason::Vlan),
            _ => Verdict::Drop(DropReason::NonIpv4),
        }
    }

    fn handle_arp(&mut self, frame: &[u8], now: u64) -> Verdict {
        let Some(Ok(p)) = frame.get(ETH..).map(arp::Packet::new_checked) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let r = arp::Repr::parse(&p);
        let side = self.side;
        let for_us = self.shared.owns(side, r.target_ip);
        let released = self
            .shared
            .arp
            .learn(side, r.sender_ip, r.sender_mac, for_us, now);
        self.release(side, r.sender_mac, released);
        if r.operation == Operation::Request && for_us {
            let me = self.shared.iface_mac(side);
            self.generated.push((
                side,
                originate::arp_reply(me, r.target_ip, r.sender_mac, r.sender_ip),
                Offload::default(),
            ));
            self.local.arp_replies_sent += 1;
        }
        Verdict::Done
    }

    fn release(&mut self, side: Side, mac: Mac, frames: Vec<(Vec<u8>, Offload)>) {
        let me = self.shared.iface_mac(side);
        for (mut f, o) in frames {
            if ethernet::emit_header(&mut f, mac, me, ethertype::IPV4).is_ok() {
                self.generated.push((side, f, o));
            }
        }
    }

    /// Validates the IPv4 header and the frame's offload metadata; says what
    /// the transport checksum holds.
    fn check_ip(&mut self, ip: &[u8], flags: RxFlags) -> Result<L4Checksum, DropReason> {
        let p = match ipv4::Packet::new_checked(ip) {
            Ok(p) => p,
            Err(crate::wire::WireError::Truncated) => return Err(DropReason::IpTruncated),
            Err(_) => return Err(DropReason::IpMalformed),
        };
        if !p.verify_checksum() {
            return Err(DropReason::IpBadChecksum);
        }
        if p.is_fragment() {
            return Err(DropReason::Fragment);
        }
        offload::check(ip, &flags.offload)
    }

    fn ingress_inside(&mut self, ip: &mut [u8], src_mac: Mac, flags: RxFlags, now: u64) -> Verdict {
        let sum = match self.check_ip(ip, flags) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        let off = flags.offload;
        let Ok(p) = ipv4::Packet::new_checked(&*ip) else {
            return Verdict::Drop(DropReason::IpMalformed);
        };
        let (src, dst, ttl) = (p.src(), p.dst(), p.ttl());
        if !self.shared.routes.is_inside_source(src) {
            return Verdict::Drop(DropReason::BadSource);
        }
        if dst == self.shared.inside_ip || self.shared.nat.is_external(dst) && is_echo_request(ip) {
            return self.answer_local(ip, Side::Inside, src_mac);
        }
        if ttl <= 1 {
            self.time_exceeded(ip, Side::Inside, self.shared.inside_ip, src_mac);
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let Some(hop) = self.shared.routes.lookup(dst) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        // Before translation, so the error quotes what the sender sent.
        let egress = match hop {
            NextHop::Inside(_) => Side::Inside,
            NextHop::Outside(_) => Side::Outside,
        };
        if !self.fits(ip, &off, egress, self.shared.inside_ip, src_mac) {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        if let NextHop::Inside(_) = hop {
            // Inside to inside (e.g. a static route): plain forwarding, no NAT.
            decrement_ttl(ip);
            return self.forward_to(ip, off, hop, now);
        }
        if let Err(r) = self
            .shared
            .nat
            .outbound_with(ip, sum, now, &mut self.local.nat)
        {
            return Verdict::Drop(DropReason::Nat(r));
        }
        decrement_ttl(ip);
        if self.shared.nat.is_external(dst) {
            // Hairpin (RFC 4787 REQ-9): back in through the NAT to the inside owner.
            if let Err(r) = self
                .shared
                .nat
                .inbound_with(ip, sum, now, &mut self.local.nat)
            {
                return Verdict::Drop(DropReason::Nat(r));
            }
            self.local.nat.hairpinned += 1;
            let Some(inner) = ipv4::Packet::new_checked(&*ip).ok().map(|p| p.dst()) else {
                return Verdict::Drop(DropReason::IpMalformed);
            };
            let Some(hop) = self.shared.routes.lookup(inner) else {
                return Verdict::Drop(DropReason::NoRoute);
            };
            return self.forward_to(ip, off, hop, now);
        }
        self.forward_to(ip, off, hop, now)
    }

    fn ingress_outside(
        &mut self,
        ip: &mut [u8],
        src_mac: Mac,
        flags: RxFlags,
        now: u64,
    ) -> Verdict {
        let sum = match self.check_ip(ip, flags) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        let Ok(p) = ipv4::Packet::new_checked(&*ip) else {
            return Verdict::Drop(DropReason::IpMalformed);
        };
        let (dst, ttl) = (p.dst(), p.ttl());
        if !self.shared.nat.is_external(dst) {
            return Verdict::Drop(DropReason::NotOurAddress);
        }
        if is_echo_request(ip) {
            return self.answer_local(ip, Side::Outside, src_mac);
        }
        if ttl <= 1 {
            self.time_exceeded(ip, Side::Outside, dst, src_mac);
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        if !self.fits(ip, &flags.offload, Side::Inside, dst, src_mac) {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        if let Err(r) = self
            .shared
            .nat
            .inbound_with(ip, sum, now, &mut self.local.nat)
        {
            return Verdict::Drop(DropReason::Nat(r));
        }
        decrement_ttl(ip);
        let Some(inner) = ipv4::Packet::new_checked(&*ip).ok().map(|p| p.dst()) else {
            return Verdict::Drop(DropReason::IpMalformed);
        };
        match self.shared.routes.lookup(inner) {
            Some(hop @ NextHop::Inside(_)) => self.forward_to(ip, flags.offload, hop, now),
            _ => Verdict::Drop(DropReason::NoRoute),
        }
    }

    fn answer_local(&mut self, ip: &[u8], side: Side, src_mac: Mac) -> Verdict {
        let me = self.shared.iface_mac(side);
        match originate::echo_reply(ip, me, src_mac) {
            Some(f) => {
                self.generated.push((side, f, Offload::default()));
                self.local.icmp_sent += 1;
                Verdict::Done
            }
            None => Verdict::Drop(DropReason::LocalUnsupported),
        }
    }

    fn time_exceeded(&mut self, ip: &[u8], side: Side, from: Ipv4Addr, src_mac: Mac) {
        // Never answer an ICMP error with an ICMP error (RFC 1812 4.3.2.7).
        if is_icmp_error(ip) {
            return;
        }
        let me = self.shared.iface_mac(side);
        if let Some(f) =
            originate::icmp_error(ip, icmp::kind::TIME_EXCEEDED, 0, [0; 4], from, me, src_mac)
        {
            self.generated.push((side, f, Offload::default()));
            self.local.icmp_sent += 1;
        }
    }

    /// True when `ip` (or each of its GSO segments) fits the MTU of `egress`.
    /// Otherwise, with DF set, tells the sender the MTU (RFC 1191) from
    /// `from` on the side it came in; spimux never fragments.
    fn fits(
        &mut self,
        ip: &[u8],
        off: &Offload,
        egress: Side,
        from: Ipv4Addr,
        src_mac: Mac,
    ) -> bool {
        let mtu = self.shared.mtu(egress);
        if offload::largest_packet(ip, off) <= mtu as usize {
            return true;
        }
        let df = ipv4::Packet::new_checked(ip).is_ok_and(|p| p.dont_fragment());
        if df && !is_icmp_error(ip) {
            let m = u16::try_from(mtu).unwrap_or(u16::MAX).to_be_bytes();
            let me = self.shared.iface_mac(self.side);
            if let Some(f) = originate::icmp_error(
                ip,
                icmp::kind::DEST_UNREACHABLE,
                icmp::kind::FRAG_NEEDED,
                [0, 0, m[0], m[1]],
                from,
                me,
                src_mac,
            ) {
                self.generated.push((self.side, f, Offload::default()));
                self.local.icmp_sent += 1;
            }
        }
        false
    }

    /// Sets the Ethernet header for `hop` in place, or queues the frame (with
    /// its offload state) for ARP.
    fn forward_to(&mut self, ip: &[u8], off: Offload, hop: NextHop, now: u64) -> Verdict {
        let (side, neigh) = match hop {
            NextHop::Inside(a) => (Side::Inside, a),
            NextHop::Outside(a) => (Side::Outside, a),
        };
        // Backstop for paths the ingress check cannot see (hairpin): never send oversize.
        if offload::largest_packet(ip, &off) > self.shared.mtu(side) as usize {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        if off.gso.is_some() {
            self.local.offload_gso += 1;
            self.local.gso_segments += offload::segments(ip, &off) as u64;
        } else if off.csum.is_some() {
            self.local.offload_partial += 1;
        }
        let me = self.shared.iface_mac(side);
        match self.shared.arp.lookup(side, neigh, now) {
            Some(mac) => Verdict::Forward(side, mac),
            None => {
                let mut f = vec![0u8; ETH + ip.len()];
                f[ETH..].copy_from_slice(ip);
                match self.shared.arp.enqueue(side, neigh, (f, off), now) {
                    Ok(Queued::SendRequest) => {
                        let my_ip = self.shared.ip_on(side);
                        self.generated.push((
                            side,
                            originate::arp_request(me, my_ip, neigh),
                            Offload::default(),
                        ));
                        self.local.arp_requests_sent += 1;
                        Verdict::Done
                    }
                    Ok(Queued::Waiting) => Verdict::Done,
                    Err(r) => Verdict::Drop(r),
                }
            }
        }
    }
}

fn decrement_ttl(ip: &mut [u8]) {
    if let Ok(mut p) = ipv4::Packet::new_checked(ip) {
        p.decrement_ttl();
    }
}

fn is_echo_request(ip: &[u8]) -> bool {
    ipv4::Packet::new_checked(ip).is_ok_and(|p| {
        p.protocol() == ipv4::protocol::ICMP
            && p.payload().first() == Some(&icmp::kind::ECHO_REQUEST)
    })
}

fn is_icmp_error(ip: &[u8]) -> bool {
    ipv4::Packet::new_checked(ip).is_ok_and(|p| {
        p.protocol() == ipv4::protocol::ICMP
            && p.payload().first().is_some_and(|t| icmp::is_error(*t))
    })
}
