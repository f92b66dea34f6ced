//! Builders for well-formed IPv4 datagrams, used by tests, benchmarks and the
//! router when it originates packets. Each returns a complete datagram with
//! valid header and transport checksums.

use super::checksum;
use super::ipv4::{protocol, Repr};
use super::{icmp, put16, udp};
use std::net::Ipv4Addr;

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + payload.len()];
    let r = Repr {
        src,
        dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl,
    };
    // 20 + payload fits u16 for every caller here (payloads are small); on overflow the header stays zero.
    let _ = r.emit(&mut b, 0x1234);
    b[20..].copy_from_slice(payload);
    b
}

/// UDP datagram with a filled checksum.
pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + data.len()];
    let _ = udp::emit_header(&mut l4, sport, dport, data.len());
    l4[8..].copy_from_slice(data);
    if let Ok(mut u) = udp::Packet::new_checked(&mut l4[..]) {
        u.fill_checksum(src, dst);
    }
    ip(src, dst, protocol::UDP, 64, &l4)
}

/// TCP segment (20-byte header, no options) with the given flags and a filled checksum.
pub fn tcp(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + data.len()];
    put16(&mut l4, 0, sport);
    put16(&mut l4, 2, dport);
    l4[4..8].copy_from_slice(&1u32.to_be_bytes());
    l4[12] = 0x50;
    l4[13] = flags;
    put16(&mut l4, 14, 0xffff);
    l4[20..].copy_from_slice(data);
    if let Ok(mut t) = super::tcp::Packet::new_checked(&mut l4[..]) {
        t.fill_checksum(src, dst);
    }
    ip(src, dst, protocol::TCP, 64, &l4)
}

/// ICMP echo request (`reply` false) or reply with identifier and sequence.
pub fn echo(src: Ipv4Addr, dst: Ipv4Addr, reply: bool, ident: u16, seq: u16) -> Vec<u8> {
    let ty = if reply {
        icmp::kind::ECHO_REPLY
    } else {
        icmp::kind::ECHO_REQUEST
    };
    let mut l4 = vec![ty, 0, 0, 0, 0, 0, 0, 0, b'p', b'i', b'n', b'g'];
    put16(&mut l4, 4, ident);
    put16(&mut l4, 6, seq);
    let c = checksum::checksum(&l4);
    put16(&mut l4, 2, c);
    ip(src, dst, protocol::ICMP, 64, &l4)
}

/// ICMP error from `src` to `dst` quoting the first 28 bytes of `offending`.
pub fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, offending: &[u8]) -> Vec<u8> {
    let quote = &offending[..offending.len().min(28)];
    let mut l4 = vec![0u8; icmp::HEADER_LEN + quote.len()];
    let _ = icmp::emit_error(&mut l4, ty, code, quote);
    ip(src, dst, protocol::ICMP, 64, &l4)
}

/// ESP packet with `spi`, `seq` and an opaque body.
pub fn esp(src: Ipv4Addr, dst: Ipv4Addr, spi: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + body.len());
    l4.extend_from_slice(&spi.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(body);
    ip(src, dst, protocol::ESP, 64, &l4)
}

/// Sets TTL and refreshes the header checksum.
pub fn with_ttl(mut datagram: Vec<u8>, ttl: u8) -> Vec<u8> {
    if let Ok(mut p) = super::ipv4::Packet::new_checked(&mut datagram[..]) {
        p.set_ttl(ttl);
    }
    datagram
}
