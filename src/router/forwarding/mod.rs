//! The router's forwarding policy without I/O: one received frame (with the
//! offload metadata the kernel reported) and the time go in; the verdict on
//! that frame (rewritten in place) and any frames the router originates come
//! out. Threads, sockets and clocks stay in the daemon (`worker`,
//! `housekeeping`), so every rule here is unit-tested in memory.
//!
//! A frame is parsed once: the Ethernet header here, then the IPv4 header
//! into a [`datagram::Datagram`] that the IPv4 path passes down.

pub mod datagram;
pub mod icmp_errors;
mod ipv4_path;
#[cfg(test)]
mod tests;

use super::arp::{self, ArpTable};
use super::config::RouterConfig;
use super::originate;
use super::route::Routes;
use super::stats::{Counters, DropReason, Side};
use crate::io::offload::Offload;
use crate::io::RxFlags;
use crate::nat::{ConfigError, Millis, Nat, NatEvents};
use crate::rate_limit::TokenBucket;
use crate::wire::arp::{Operation, Packet as ArpPacket, Repr as ArpRepr};
use crate::wire::ethernet::{self, ethertype, Mac};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

const ETH: usize = ethernet::HEADER_LEN;

/// What becomes of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place (Ethernet header included): send it out of this side.
    Forward(Side),
    /// Used up: answered, queued for ARP, learned from, or our own echo.
    Consumed,
    /// Dropped (already counted).
    Drop(DropReason),
}

/// A frame the router originates or releases from the ARP queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Interface to send it on.
    pub side: Side,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
    /// Its offload state (kept from when it was queued).
    pub offload: Offload,
}

/// What one thread owns while the shared policy works for it: its counters,
/// its share of the ICMP error budget, and the frames to send.
pub struct Local {
    /// Counters, published by the daemon.
    pub counters: Counters,
    /// Frames to send; the caller drains them after each batch.
    pub transmits: Vec<Transmit>,
    icmp_budget: IcmpBudget,
}

/// One thread's share of the ICMP error budget.
pub(crate) struct IcmpBudget {
    bucket: TokenBucket,
}

impl IcmpBudget {
    /// Takes one error's worth if a share of `(rate, burst)` allows it at `now`.
    pub(crate) fn take(&mut self, (rate, burst): (u32, u32), now: Millis) -> bool {
        self.bucket.take(rate, burst, now)
    }
}

/// The data interfaces as the policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interfaces {
    /// MAC per side (`Side as usize`).
    pub macs: [Mac; 2],
    /// MTU per side.
    pub mtus: [u32; 2],
}

/// State every receive thread shares: NAT, ARP, routes and addresses.
pub struct Forwarding {
    /// NAT core.
    pub nat: Nat,
    /// ARP resolver; frames wait in it with their offload state.
    pub arp: ArpTable<(Vec<u8>, Offload)>,
    /// Routing table.
    pub routes: Routes,
    /// Router's inside address.
    pub inside_ip: Ipv4Addr,
    /// Router's outside address.
    pub outside_ip: Ipv4Addr,
    ifaces: Interfaces,
    /// ICMP error budget, replaced by [`Forwarding::reconfigure`].
    icmp: crate::live::Live<super::config::Icmp, 2>,
    /// Threads sharing the ICMP budget (the most any `local` call named).
    icmp_threads: AtomicU32,
}

impl Forwarding {
    /// Builds the policy from a configuration (validated here) for the given interfaces.
    pub fn new(cfg: &RouterConfig, ifaces: Interfaces, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let nat = Nat::new(cfg.nat, cfg.esp, vec![cfg.outside.address.addr()], seed)?;
        Ok(Forwarding {
            nat,
            arp: ArpTable::new(cfg.arp),
            routes: Routes::new(cfg),
            inside_ip: cfg.inside.address.addr(),
            outside_ip: cfg.outside.address.addr(),
            ifaces,
            icmp: crate::live::Live::new(cfg.icmp),
            icmp_threads: AtomicU32::new(1),
        })
    }

    /// Per-thread state for one of `threads` threads sharing this policy:
    /// each gets an equal share (rounded up) of the ICMP error budget.
    pub fn local(&self, threads: usize, now: Millis) -> Local {
        let n = u32::try_from(threads.max(1)).unwrap_or(u32::MAX);
        self.icmp_threads.fetch_max(n, Ordering::Relaxed);
        Local {
            counters: Counters::default(),
            transmits: Vec::new(),
            icmp_budget: IcmpBudget {
                bucket: TokenBucket::full(self.icmp_share().1, now),
            },
        }
    }

    /// One thread's share of the ICMP error rate and burst.
    pub(crate) fn icmp_share(&self) -> (u32, u32) {
        let n = self.icmp_threads.load(Ordering::Relaxed).max(1);
        let share = |v: u32| if v == 0 { 0 } else { v.div_ceil(n).max(1) };
        let c = self.icmp.get();
        (share(c.errors_per_sec), share(c.errors_burst))
    }

    /// Applies a changed configuration to the running policy: NAT and ESP
    /// limits, timeouts and options, ARP settings and the ICMP error
    /// budget. Anything else that differs (interfaces, addresses, routes,
    /// threads, I/O, metrics) needs a restart and is refused, naming the
    /// field; nothing is applied unless everything can be.
    pub fn reconfigure(&self, old: &RouterConfig, new: &RouterConfig) -> Result<(), ConfigError> {
        self.check_reconfigure(old, new)?;
        self.nat.reconfigure(new.nat, new.esp)?;
        self.arp.reconfigure(new.arp);
        self.icmp.set(new.icmp);
        Ok(())
    }

    /// What [`Forwarding::reconfigure`] would refuse, without applying anything.
    pub fn check_reconfigure(
        &self,
        old: &RouterConfig,
        new: &RouterConfig,
    ) -> Result<(), ConfigError> {
        new.validate()?;
        if let Some(field) = old.restart_field_changed(new) {
            return Err(ConfigError::needs_restart(field));
        }
        self.nat.check_reconfigure(&new.nat, &new.esp)
    }

    /// MAC of a data interface.
    pub fn iface_mac(&self, side: Side) -> Mac {
        self.ifaces.macs[side as usize]
    }

    /// MTU of a data interface.
    pub fn mtu(&self, side: Side) -> u32 {
        self.ifaces.mtus[side as usize]
    }

    /// Our address on a side.
    pub fn ip_on(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::Inside => self.inside_ip,
            Side::Outside => self.outside_ip,
        }
    }

    /// True when `ip` is ours on `side` (ARP target check).
    pub fn owns(&self, side: Side, ip: Ipv4Addr) -> bool {
        match side {
            Side::Inside => ip == self.inside_ip,
            Side::Outside => self.nat.is_external(ip),
        }
    }

    /// Handles one frame received on `side`, counting it and any drop.
    pub fn handle(
        &self,
        side: Side,
        frame: &mut [u8],
        flags: RxFlags,
        now: Millis,
        local: &mut Local,
    ) -> Verdict {
        let s = side as usize;
        local.counters.rx_packets[s] += 1;
        local.counters.rx_bytes[s] += frame.len() as u64;
        let v = self.classify(side, frame, flags, now, local);
        if let Verdict::Drop(r) = v {
            local.counters.count_drop(r);
        }
        v
    }

    fn classify(
        &self,
        side: Side,
        frame: &mut [u8],
        flags: RxFlags,
        now: Millis,
        local: &mut Local,
    ) -> Verdict {
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
        let me = self.iface_mac(side);
        let (dst, src_mac, et) = (eth.dst(), eth.src(), eth.ethertype());
        if src_mac == me {
            // Our own transmission looped back (kernels without PACKET_IGNORE_OUTGOING).
            return Verdict::Consumed;
        }
        if dst != me && dst != Mac::BROADCAST {
            return Verdict::Drop(if dst.is_multicast() {
                DropReason::Multicast
            } else {
                DropReason::NotForUs
            });
        }
        match et {
            ethertype::ARP => self.arp_in(side, frame, now, local),
            ethertype::IPV4 if dst == me => {
                let Some(ip) = frame.get_mut(ETH..) else {
                    return Verdict::Drop(DropReason::EthTruncated);
                };
                let ingress = ipv4_path::Ingress {
                    side,
                    src_mac,
                    offload: flags.offload,
                    now,
                };
                match self.ipv4_in(ingress, ip, local) {
                    ipv4_path::Outcome::Send(out, mac) => {
                        let me = self.iface_mac(out);
                        match ethernet::emit_header(frame, mac, me, ethertype::IPV4) {
                            Ok(()) => Verdict::Forward(out),
                            Err(_) => Verdict::Drop(DropReason::EthTruncated),
                        }
                    }
                    ipv4_path::Outcome::Other(v) => v,
                }
            }
            ethertype::IPV4 => Verdict::Drop(DropReason::NotForUs),
            ethertype::VLAN => Verdict::Drop(DropReason::Vlan),
            _ => Verdict::Drop(DropReason::NonIpv4),
        }
    }

    fn arp_in(&self, side: Side, frame: &[u8], now: Millis, local: &mut Local) -> Verdict {
        let Some(Ok(p)) = frame.get(ETH..).map(ArpPacket::new_checked) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let r = ArpRepr::parse(&p);
        // Only hosts of the connected prefix may announce themselves here,
        // and never with one of our addresses.
        if !self.routes.on_link(side, r.sender_ip) || self.owns(side, r.sender_ip) {
            return Verdict::Drop(DropReason::ArpBadSender);
        }
        let for_us = self.owns(side, r.target_ip);
        let learned = self.arp.learn(side, r.sender_ip, r.sender_mac, for_us, now);
        if learned.cache_full {
            local.counters.arp_cache_full += 1;
        }
        self.release(side, r.sender_mac, learned.released, local);
        if r.operation == Operation::Request && for_us {
            local.transmits.push(Transmit {
                side,
                frame: originate::arp_reply(
                    self.iface_mac(side),
                    r.target_ip,
                    r.sender_mac,
                    r.sender_ip,
                ),
                offload: Offload::default(),
            });
            local.counters.arp_replies_sent += 1;
        }
        Verdict::Consumed
    }

    fn release(&self, side: Side, mac: Mac, frames: Vec<(Vec<u8>, Offload)>, local: &mut Local) {
        let me = self.iface_mac(side);
        for (mut frame, offload) in frames {
            if ethernet::emit_header(&mut frame, mac, me, ethertype::IPV4).is_ok() {
                local.transmits.push(Transmit {
                    side,
                    frame,
                    offload,
                });
            }
        }
    }

    /// ARP retries and cache expiry; call every 100 ms or so.
    pub fn arp_tick(&self, now: Millis, local: &mut Local) {
        let t = self.arp.tick(now);
        for _ in 0..t.dropped {
            local.counters.count_drop(DropReason::ArpUnresolved);
        }
        for (side, ip) in t.retry {
            local.transmits.push(Transmit {
                side,
                frame: originate::arp_request(self.iface_mac(side), self.ip_on(side), ip),
                offload: Offload::default(),
            });
            local.counters.arp_requests_sent += 1;
        }
    }

    /// NAT expiry; call every second or so.
    pub fn expire(&self, now: Millis, local: &mut Local) {
        let mut ev = NatEvents::default();
        self.nat.expire(now, &mut ev);
        local.counters.nat.add(&ev);
    }

    /// Sends `ip` to `neighbour` on `side` now if its MAC is known (setting
    /// the frame's destination MAC in place), or queues a copy for ARP.
    fn resolve(
        &self,
        side: Side,
        neighbour: Ipv4Addr,
        ip: &[u8],
        offload: Offload,
        now: Millis,
        local: &mut Local,
    ) -> Result<Option<Mac>, DropReason> {
        if let Some(mac) = self.arp.lookup(side, neighbour, now) {
            return Ok(Some(mac));
        }
        let mut f = vec![0u8; ETH + ip.len()];
        if let Some(body) = f.get_mut(ETH..) {
            body.copy_from_slice(ip);
        }
        match self.arp.enqueue(side, neighbour, (f, offload), now)? {
            arp::Queued::SendRequest => {
                local.transmits.push(Transmit {
                    side,
                    frame: originate::arp_request(
                        self.iface_mac(side),
                        self.ip_on(side),
                        neighbour,
                    ),
                    offload: Offload::default(),
                });
                local.counters.arp_requests_sent += 1;
                Ok(None)
            }
            arp::Queued::Waiting => Ok(None),
        }
    }
}
