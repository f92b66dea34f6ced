//! Packet rewriting: source translation outbound, destination translation
//! inbound, and the quoted datagram inside ICMP errors (RFC 5508 §7).
//! All checksum changes are incremental (RFC 1624) except the ICMP checksum
//! of a translated error, which covers the rewritten quote and is recomputed.

use super::events::{NatDrop, NatEvents};
use super::table::Endpoint;
use super::{Millis, Nat};
use crate::wire::checksum::{update16, update32};
use crate::wire::{be16, be32, put16, put32};
use crate::wire::{icmp, ipv4, tcp, udp};
use std::net::Ipv4Addr;

use ipv4::protocol::{ESP, ICMP, TCP, UDP};

/// What the TCP/UDP checksum field of a packet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L4Checksum {
    /// The finished checksum over pseudo-header, header and data.
    #[default]
    Complete,
    /// Only the pseudo-header sum, not complemented (an offloading sender's
    /// CHECKSUM_PARTIAL): whoever completes it sums header and data later,
    /// so a port change needs no update and an address change updates the
    /// sum itself.
    Partial,
}

/// Offsets of the port and checksum fields in a transport header.
struct L4Fields {
    port: usize,
    csum: usize,
    /// UDP: a zero checksum means "none" and must stay zero.
    zero_is_none: bool,
}

fn l4_fields(proto: u8, src_side: bool) -> Option<L4Fields> {
    let port = if src_side { 0 } else { 2 };
    match proto {
        TCP => Some(L4Fields {
            port,
            csum: 16,
            zero_is_none: false,
        }),
        UDP => Some(L4Fields {
            port,
            csum: 6,
            zero_is_none: true,
        }),
        _ => None,
    }
}

/// Rewrites one port of a TCP/UDP header and fixes its checksum for the
/// port change and the pseudo-header address change. Fields beyond the end
/// of `l4` (a truncated quote) are left alone.
fn rewrite_l4(
    l4: &mut [u8],
    f: &L4Fields,
    sum: L4Checksum,
    old_ip: Ipv4Addr,
    new_ip: Ipv4Addr,
    new_port: u16,
) {
    let Some(old_port) = l4
        .get(f.port..f.port + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
    else {
        return;
    };
    put16(l4, f.port, new_port);
    if l4.len() < f.csum + 2 {
        return;
    }
    let c = be16(l4, f.csum);
    if sum == L4Checksum::Partial {
        // RFC 1624 on the complement: the field is the sum itself.
        put16(
            l4,
            f.csum,
            !update32(!c, u32::from(old_ip), u32::from(new_ip)),
        );
        return;
    }
    if f.zero_is_none && c == 0 {
        return;
    }
    let mut n = update32(c, u32::from(old_ip), u32::from(new_ip));
    n = update16(n, old_port, new_port);
    if f.zero_is_none && n == 0 {
        n = 0xffff;
    }
    put16(l4, f.csum, n);
}

/// Sets a 4-byte address field at `at` in an IPv4 header, fixing its checksum.
fn set_ip_field(hdr: &mut [u8], at: usize, new: Ipv4Addr) {
    let old = be32(hdr, at);
    let c = update32(be16(hdr, 10), old, u32::from(new));
    put32(hdr, at, u32::from(new));
    put16(hdr, 10, c);
}

/// Ports and flags of a TCP or UDP packet, checked.
fn ports(proto: u8, l4: &[u8]) -> Result<(u16, u16, u8), NatDrop> {
    match proto {
        TCP => {
            let t = tcp::Packet::new_checked(l4).map_err(|_| NatDrop::MalformedL4)?;
            Ok((t.src_port(), t.dst_port(), t.flags()))
        }
        _ => {
            let u = udp::Packet::new_checked(l4).map_err(|_| NatDrop::MalformedL4)?;
            Ok((u.src_port(), u.dst_port(), 0))
        }
    }
}

impl Nat {
    /// Translates an inside→outside datagram in place (source address/port).
    pub fn outbound(&self, buf: &mut [u8], now: Millis, ev: &mut NatEvents) -> Result<(), NatDrop> {
        self.outbound_with(buf, L4Checksum::Complete, now, ev)
    }

    /// [`Nat::outbound`] for a packet whose TCP/UDP checksum is in state `sum`.
    pub fn outbound_with(
        &self,
        buf: &mut [u8],
        sum: L4Checksum,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let mut ip = ipv4::Packet::new_checked(buf).map_err(|_| ev.count(NatDrop::MalformedL4))?;
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        match proto {
            TCP | UDP => {
                let (sp, dp, fl) = ports(proto, ip.payload()).map_err(|r| ev.count(r))?;
                let ext = self.table.outbound(
                    proto,
                    Endpoint { ip: src, port: sp },
                    Endpoint { ip: dst, port: dp },
                    fl,
                    now,
                    ev,
                )?;
                let f = l4_fields(proto, true).ok_or(NatDrop::UnsupportedProtocol)?;
                rewrite_l4(ip.payload_mut(), &f, sum, src, ext.ip, ext.port);
                ip.set_src(ext.ip);
                Ok(())
            }
            ICMP => {
                let t = icmp::Packet::new_checked(ip.payload())
                    .map_err(|_| ev.count(NatDrop::MalformedL4))?;
                let ty = t.msg_type();
                if ty == icmp::kind::ECHO_REQUEST {
                    let id = t.echo_ident();
                    let ext = self.table.outbound(
                        ICMP,
                        Endpoint { ip: src, port: id },
                        Endpoint { ip: dst, port: 0 },
                        0,
                        now,
                        ev,
                    )?;
                    let mut t = icmp::Packet::new_checked(ip.payload_mut())
                        .map_err(|_| NatDrop::MalformedL4)?;
                    t.set_echo_ident(ext.port);
                    ip.set_src(ext.ip);
                    Ok(())
                } else if icmp::is_error(ty) {
                    self.error_outbound(&mut ip, ev)
                } else {
                    Err(ev.count(NatDrop::UnsupportedIcmp))
                }
            }
            ESP => {
                let spi = crate::wire::esp::Packet::new_checked(ip.payload())
                    .map_err(|_| ev.count(NatDrop::MalformedL4))?
                    .spi();
                self.esp.outbound(&self.table, src, dst, spi, now, ev)?;
                let (_, ext) = self.table.external_for(src);
                ip.set_src(ext);
                Ok(())
            }
            _ => Err(ev.count(NatDrop::UnsupportedProtocol)),
        }
    }

    /// Translates an outside→inside datagram in place (destination address/port).
    pub fn inbound(&self, buf: &mut [u8], now: Millis, ev: &mut NatEvents) -> Result<(), NatDrop> {
        self.inbound_with(buf, L4Checksum::Complete, now, ev)
    }

    /// [`Nat::inbound`] for a packet whose TCP/UDP checksum is in state `sum`.
    pub fn inbound_with(
        &self,
        buf: &mut [u8],
        sum: L4Checksum,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let mut ip = ipv4::Packet::new_checked(buf).map_err(|_| ev.count(NatDrop::MalformedL4))?;
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        match proto {
            TCP | UDP => {
                let (sp, dp, fl) = ports(proto, ip.payload()).map_err(|r| ev.count(r))?;
                let int = self.table.inbound(
                    proto,
                    Endpoint { ip: dst, port: dp },
                    Endpoint { ip: src, port: sp },
                    fl,
                    now,
                    ev,
                )?;
                let f = l4_fields(proto, false).ok_or(NatDrop::UnsupportedProtocol)?;
                rewrite_l4(ip.payload_mut(), &f, sum, dst, int.ip, int.port);
                ip.set_dst(int.ip);
                Ok(())
            }
            ICMP => {
                let t = icmp::Packet::new_checked(ip.payload())
                    .map_err(|_| ev.count(NatDrop::MalformedL4))?;
                let ty = t.msg_type();
                if ty == icmp::kind::ECHO_REPLY {
                    let id = t.echo_ident();
                    let int = self.table.inbound(
                        ICMP,
                        Endpoint { ip: dst, port: id },
                        Endpoint { ip: src, port: 0 },
                        0,
                        now,
                        ev,
                    )?;
                    let mut t = icmp::Packet::new_checked(ip.payload_mut())
                        .map_err(|_| NatDrop::MalformedL4)?;
                    t.set_echo_ident(int.port);
                    ip.set_dst(int.ip);
                    Ok(())
                } else if icmp::is_error(ty) {
                    self.error_inbound(&mut ip, ev)
                } else {
                    Err(ev.count(NatDrop::UnsupportedIcmp))
                }
            }
            ESP => {
                let spi = crate::wire::esp::Packet::new_checked(ip.payload())
                    .map_err(|_| ev.count(NatDrop::MalformedL4))?
                    .spi();
                let inside = self.esp.inbound(src, spi, now, ev)?;
                ip.set_dst(inside);
                Ok(())
            }
            _ => Err(ev.count(NatDrop::UnsupportedProtocol)),
        }
    }

    /// ICMP error arriving from outside about a packet we translated outbound:
    /// the quote has src = external endpoint; put the inside endpoint back.
    fn error_inbound(
        &self,
        ip: &mut ipv4::Packet<&mut [u8]>,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let (q_proto, q_src, q_dst, q_hl) =
            quote_header(ip.payload()).ok_or_else(|| ev.count(NatDrop::MalformedL4))?;
        let q_l4 = ip.payload().get(icmp::HEADER_LEN + q_hl..).unwrap_or(&[]);
        let inside = match q_proto {
            TCP | UDP | ICMP => {
                let (ext_port, remote_port) =
                    quote_ids(q_proto, q_l4, true).ok_or_else(|| ev.count(NatDrop::MalformedL4))?;
                self.table
                    .lookup_inbound(
                        q_proto,
                        Endpoint {
                            ip: q_src,
                            port: ext_port,
                        },
                        Endpoint {
                            ip: q_dst,
                            port: remote_port,
                        },
                    )
                    .ok_or_else(|| ev.count(NatDrop::IcmpErrorNoMapping))?
            }
            ESP => {
                let spi = q_l4
                    .get(..4)
                    .map(|b| be32(b, 0))
                    .ok_or_else(|| ev.count(NatDrop::MalformedL4))?;
                let host = self
                    .esp
                    .owner_of_outbound(q_dst, spi)
                    .ok_or_else(|| ev.count(NatDrop::IcmpErrorNoMapping))?;
                Endpoint { ip: host, port: 0 }
            }
            _ => return Err(ev.count(NatDrop::IcmpErrorNoMapping)),
        };
        rewrite_quote(ip.payload_mut(), q_proto, q_hl, true, q_src, inside);
        ip.set_dst(inside.ip);
        ev.icmp_errors_translated += 1;
        Ok(())
    }

    /// ICMP error sent by an inside host about a packet we translated inbound:
    /// the quote has dst = inside endpoint; replace it with the external one.
    fn error_outbound(
        &self,
        ip: &mut ipv4::Packet<&mut [u8]>,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let (q_proto, _q_src, q_dst, q_hl) =
            quote_header(ip.payload()).ok_or_else(|| ev.count(NatDrop::MalformedL4))?;
        let q_l4 = ip.payload().get(icmp::HEADER_LEN + q_hl..).unwrap_or(&[]);
        let ext = match q_proto {
            TCP | UDP | ICMP => {
                let (in_port, _) = quote_ids(q_proto, q_l4, false)
                    .ok_or_else(|| ev.count(NatDrop::MalformedL4))?;
                self.table
                    .lookup_outbound(
                        q_proto,
                        Endpoint {
                            ip: q_dst,
                            port: in_port,
                        },
                    )
                    .ok_or_else(|| ev.count(NatDrop::IcmpErrorNoMapping))?
            }
            ESP => Endpoint {
                ip: self.table.external_for(q_dst).1,
                port: 0,
            },
            _ => return Err(ev.count(NatDrop::IcmpErrorNoMapping)),
        };
        rewrite_quote(ip.payload_mut(), q_proto, q_hl, false, q_dst, ext);
        ip.set_src(ext.ip);
        ev.icmp_errors_translated += 1;
        Ok(())
    }
}

/// (protocol, src, dst, header length) of the datagram quoted in an ICMP error.
fn quote_header(icmp_msg: &[u8]) -> Option<(u8, Ipv4Addr, Ipv4Addr, usize)> {
    let q = ipv4::Packet::new_header_checked(icmp_msg.get(icmp::HEADER_LEN..)?).ok()?;
    Some((q.protocol(), q.src(), q.dst(), q.header_len()))
}

/// (our side's port/identifier, remote side's port) of a quoted transport header.
/// `quoted_from_us`: the quote is a packet we sent outbound (our side = source).
fn quote_ids(proto: u8, l4: &[u8], quoted_from_us: bool) -> Option<(u16, u16)> {
    if proto == ICMP {
        // Only echo requests are translated; their identifier is at 4..6.
        let ty = *l4.first()?;
        if ty != icmp::kind::ECHO_REQUEST {
            return None;
        }
        return Some((be16(l4.get(..6)?, 4), 0));
    }
    let b = l4.get(..4)?;
    let (s, d) = (be16(b, 0), be16(b, 2));
    Some(if quoted_from_us { (s, d) } else { (d, s) })
}

/// Rewrites the quoted datagram inside an ICMP error message and recomputes
/// the ICMP checksum. `src_side`: rewrite the quote's source (else destination).
fn rewrite_quote(
    msg: &mut [u8],
    q_proto: u8,
    q_hl: usize,
    src_side: bool,
    old_ip: Ipv4Addr,
    new: Endpoint,
) {
    let Some(quote) = msg.get_mut(icmp::HEADER_LEN..) else {
        return;
    };
    let (hdr, l4) = quote.split_at_mut(q_hl.min(quote.len()));
    if let Some(f) = l4_fields(q_proto, src_side) {
        rewrite_l4(l4, &f, L4Checksum::Complete, old_ip, new.ip, new.port);
    } else if q_proto == ICMP && l4.len() >= 6 {
        let old = be16(l4, 4);
        put16(l4, 4, new.port);
        if l4.len() >= 4 {
            let c = update16(be16(l4, 2), old, new.port);
            put16(l4, 2, c);
        }
    }
    if hdr.len() >= ipv4::MIN_HEADER_LEN {
        set_ip_field(hdr, if src_side { 12 } else { 16 }, new.ip);
    }
    if let Ok(mut m) = icmp::Packet::new_checked(msg) {
        m.fill_checksum();
    }
}
