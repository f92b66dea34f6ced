//! The IPv4 path of the forwarding policy: local answers, TTL, MTU, NAT
//! (with hairpinning) and the next hop. The datagram is checked once into a
//! [`Datagram`]; after the NAT rewrote it only the new destination is read.

use super::datagram::Datagram;
use super::icmp_errors::{self, ErrorSpec};
use super::{Forwarding, Local, Transmit, Verdict};
use crate::io::offload::Offload;
use crate::nat::Millis;
use crate::router::originate;
use crate::router::route::NextHop;
use crate::router::stats::{DropReason, Side};
use crate::wire::ethernet::Mac;
use crate::wire::{icmp, ipv4};
use std::net::Ipv4Addr;

/// Where and how a datagram came in.
pub(super) struct Ingress {
    /// Interface it arrived on.
    pub side: Side,
    /// The sending neighbour's MAC.
    pub src_mac: Mac,
    /// Its offload metadata.
    pub offload: Offload,
    /// Time of arrival.
    pub now: Millis,
}

/// The IPv4 path's result.
pub(super) enum Outcome {
    /// Rewritten in place; send out of this side to this neighbour.
    Send(Side, Mac),
    /// Anything else.
    Other(Verdict),
}

fn drop(r: DropReason) -> Outcome {
    Outcome::Other(Verdict::Drop(r))
}

fn side_of(hop: NextHop) -> (Side, Ipv4Addr) {
    match hop {
        NextHop::Inside(a) => (Side::Inside, a),
        NextHop::Outside(a) => (Side::Outside, a),
    }
}

impl Forwarding {
    /// Handles the IPv4 datagram `ip` (the frame after its Ethernet header).
    pub(super) fn ipv4_in(&self, i: Ingress, ip: &mut [u8], local: &mut Local) -> Outcome {
        let d = match Datagram::check(ip, &i.offload) {
            Ok(d) => d,
            Err(r) => return drop(r),
        };
        match i.side {
            Side::Inside => self.ingress_inside(&i, &d, ip, local),
            Side::Outside => self.ingress_outside(&i, &d, ip, local),
        }
    }

    fn ingress_inside(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &mut [u8],
        local: &mut Local,
    ) -> Outcome {
        if !self.routes.is_inside_source(d.src) {
            return drop(DropReason::BadSource);
        }
        if d.dst == self.inside_ip || self.nat.is_external(d.dst) && d.is_echo_request() {
            return self.answer_local(i, ip, local);
        }
        if d.ttl <= 1 {
            self.time_exceeded(i, d, ip, self.inside_ip, local);
            return drop(DropReason::TtlExceeded);
        }
        let Some(hop) = self.routes.lookup(d.dst) else {
            return drop(DropReason::NoRoute);
        };
        // Before translation, so an error quotes what the sender sent.
        if !self.fits(i, d, ip, side_of(hop).0, self.inside_ip, local) {
            return drop(DropReason::MtuExceeded);
        }
        if let NextHop::Inside(_) = hop {
            // Inside to inside (e.g. a static route): plain forwarding, no NAT.
            ipv4::decrement_ttl(ip);
            return self.forward_to(i, d, ip, hop, local);
        }
        let nat_ev = &mut local.counters.nat;
        if let Err(r) = self.nat.outbound_with(ip, d.l4_checksum, i.now, nat_ev) {
            return drop(DropReason::Nat(r));
        }
        ipv4::decrement_ttl(ip);
        if !self.nat.is_external(d.dst) {
            return self.forward_to(i, d, ip, hop, local);
        }
        // Hairpin (RFC 4787 REQ-9): back in through the NAT to the inside owner.
        let nat_ev = &mut local.counters.nat;
        if let Err(r) = self.nat.inbound_with(ip, d.l4_checksum, i.now, nat_ev) {
            return drop(DropReason::Nat(r));
        }
        local.counters.nat.hairpinned += 1;
        let Some(inner) = ipv4::dst_of(ip) else {
            return drop(DropReason::IpMalformed);
        };
        match self.routes.lookup(inner) {
            Some(hop) => self.forward_to(i, d, ip, hop, local),
            None => drop(DropReason::NoRoute),
        }
    }

    fn ingress_outside(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &mut [u8],
        local: &mut Local,
    ) -> Outcome {
        if !self.nat.is_external(d.dst) {
            return drop(DropReason::NotOurAddress);
        }
        if d.is_echo_request() {
            return self.answer_local(i, ip, local);
        }
        if d.ttl <= 1 {
            self.time_exceeded(i, d, ip, d.dst, local);
            return drop(DropReason::TtlExceeded);
        }
        if !self.fits(i, d, ip, Side::Inside, d.dst, local) {
            return drop(DropReason::MtuExceeded);
        }
        let nat_ev = &mut local.counters.nat;
        if let Err(r) = self.nat.inbound_with(ip, d.l4_checksum, i.now, nat_ev) {
            return drop(DropReason::Nat(r));
        }
        ipv4::decrement_ttl(ip);
        let Some(inner) = ipv4::dst_of(ip) else {
            return drop(DropReason::IpMalformed);
        };
        match self.routes.lookup(inner) {
            Some(hop @ NextHop::Inside(_)) => self.forward_to(i, d, ip, hop, local),
            _ => drop(DropReason::NoRoute),
        }
    }

    /// Answers an echo request addressed to the router.
    fn answer_local(&self, i: &Ingress, ip: &[u8], local: &mut Local) -> Outcome {
        match originate::echo_reply(ip, self.iface_mac(i.side), i.src_mac) {
            Some(frame) => {
                local.transmits.push(Transmit {
                    side: i.side,
                    frame,
                    offload: Offload::default(),
                });
                local.counters.icmp_sent += 1;
                Outcome::Other(Verdict::Consumed)
            }
            None => drop(DropReason::LocalUnsupported),
        }
    }

    fn icmp_error(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &[u8],
        spec: ErrorSpec,
        from: Ipv4Addr,
        local: &mut Local,
    ) {
        icmp_errors::send(
            local,
            ip,
            d,
            spec,
            i.side,
            from,
            (self.iface_mac(i.side), i.src_mac),
            self.routes.broadcast_on(i.side),
            (self.icmp_share(), i.now),
        );
    }

    fn time_exceeded(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &[u8],
        from: Ipv4Addr,
        local: &mut Local,
    ) {
        let spec = ErrorSpec {
            ty: icmp::kind::TIME_EXCEEDED,
            code: 0,
            rest: [0; 4],
        };
        self.icmp_error(i, d, ip, spec, from, local);
    }

    /// True when the datagram (or each of its GSO segments) fits the MTU of
    /// `egress`. Otherwise, with DF set, tells the sender the MTU (RFC 1191)
    /// from `from`; spimux never fragments.
    fn fits(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &[u8],
        egress: Side,
        from: Ipv4Addr,
        local: &mut Local,
    ) -> bool {
        let mtu = self.mtu(egress);
        if d.largest_packet(&i.offload) <= mtu as usize {
            return true;
        }
        if d.dont_fragment {
            let m = u16::try_from(mtu).unwrap_or(u16::MAX).to_be_bytes();
            let spec = ErrorSpec {
                ty: icmp::kind::DEST_UNREACHABLE,
                code: icmp::kind::FRAG_NEEDED,
                rest: [0, 0, m[0], m[1]],
            };
            self.icmp_error(i, d, ip, spec, from, local);
        }
        false
    }

    /// Counts offload work and hands the datagram to the next hop.
    fn forward_to(
        &self,
        i: &Ingress,
        d: &Datagram,
        ip: &[u8],
        hop: NextHop,
        local: &mut Local,
    ) -> Outcome {
        let (side, neighbour) = side_of(hop);
        // Backstop for paths the ingress check cannot see (hairpin): never send oversize.
        if d.largest_packet(&i.offload) > self.mtu(side) as usize {
            return drop(DropReason::MtuExceeded);
        }
        if i.offload.gso.is_some() {
            local.counters.offload_gso += 1;
            local.counters.gso_segments += d.segments(&i.offload) as u64;
        } else if i.offload.csum.is_some() {
            local.counters.offload_partial += 1;
        }
        match self.resolve(side, neighbour, ip, i.offload, i.now, local) {
            Ok(Some(mac)) => Outcome::Send(side, mac),
            Ok(None) => Outcome::Other(Verdict::Consumed),
            Err(r) => drop(r),
        }
    }
}
