//! An IPv4 datagram checked once on ingress: header, checksum, fragment
//! flag and offload metadata are validated here, and the facts the
//! forwarding policy needs are read into a plain value that is passed down
//! instead of re-parsing the buffer at every step.

use super::super::offload;
use super::super::stats::DropReason;
use crate::io::offload::Offload;
use crate::nat::L4Checksum;
use crate::wire::{icmp, ipv4, WireError};
use std::net::Ipv4Addr;

/// What the forwarding policy knows about a validated datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address as received (before any translation).
    pub dst: Ipv4Addr,
    /// Time to live as received.
    pub ttl: u8,
    /// Don't-fragment flag.
    pub dont_fragment: bool,
    /// Total length in bytes.
    pub len: usize,
    /// IP plus transport header bytes: what every GSO segment repeats.
    pub headers_len: usize,
    /// ICMP message type, for ICMP datagrams with at least one payload byte.
    pub icmp_type: Option<u8>,
    /// What the TCP/UDP checksum field holds.
    pub l4_checksum: L4Checksum,
}

impl Datagram {
    /// Validates the IPv4 packet at the start of `ip` (Ethernet padding
    /// after it is allowed) and the offload metadata `off` it came with.
    pub fn check(ip: &[u8], off: &Offload) -> Result<Datagram, DropReason> {
        let p = match ipv4::Packet::new_checked(ip) {
            Ok(p) => p,
            Err(WireError::Truncated) => return Err(DropReason::IpTruncated),
            Err(WireError::Malformed) => return Err(DropReason::IpMalformed),
        };
        if !p.verify_checksum() {
            return Err(DropReason::IpBadChecksum);
        }
        if p.is_fragment() {
            return Err(DropReason::Fragment);
        }
        let l4_checksum = offload::check(&p, off)?;
        let icmp_type = (p.protocol() == ipv4::protocol::ICMP)
            .then(|| p.payload().first().copied())
            .flatten();
        Ok(Datagram {
            src: p.src(),
            dst: p.dst(),
            ttl: p.ttl(),
            dont_fragment: p.dont_fragment(),
            len: p.len(),
            headers_len: offload::headers_len(&p),
            icmp_type,
            l4_checksum,
        })
    }

    /// An ICMP echo request.
    pub fn is_echo_request(&self) -> bool {
        self.icmp_type == Some(icmp::kind::ECHO_REQUEST)
    }

    /// An ICMP error message (never answered with another error, RFC 1812 §4.3.2.7).
    pub fn is_icmp_error(&self) -> bool {
        self.icmp_type.is_some_and(icmp::is_error)
    }

    /// Largest IP packet this datagram puts on the wire (one GSO segment, or itself).
    pub fn largest_packet(&self, off: &Offload) -> usize {
        offload::largest_packet(self.len, self.headers_len, off)
    }

    /// Wire packets this datagram stands for.
    pub fn segments(&self, off: &Offload) -> usize {
        offload::segments(self.len, self.headers_len, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build;

    #[test]
    fn reads_the_facts_once() {
        let p = build::udp(
            Ipv4Addr::new(10, 6, 1, 2),
            1000,
            Ipv4Addr::new(198, 51, 100, 69),
            2000,
            b"abc",
        );
        let d = Datagram::check(&p, &Offload::default()).unwrap();
        assert_eq!(d.src, Ipv4Addr::new(10, 6, 1, 2));
        assert_eq!(d.dst, Ipv4Addr::new(198, 51, 100, 69));
        assert_eq!((d.len, d.headers_len), (31, 28));
        assert_eq!(d.icmp_type, None);
        assert_eq!(d.l4_checksum, L4Checksum::Complete);
        let e = build::echo(d.src, d.dst, false, 1, 1);
        let d = Datagram::check(&e, &Offload::default()).unwrap();
        assert!(d.is_echo_request() && !d.is_icmp_error());
    }

    #[test]
    fn refuses_what_cannot_be_forwarded() {
        let mut p = build::udp(
            Ipv4Addr::new(10, 6, 1, 2),
            1,
            Ipv4Addr::new(10, 6, 1, 3),
            2,
            b"x",
        );
        let none = Offload::default();
        assert_eq!(
            Datagram::check(&p[..10], &none),
            Err(DropReason::IpTruncated)
        );
        p[10] ^= 1;
        assert_eq!(Datagram::check(&p, &none), Err(DropReason::IpBadChecksum));
        p[10] ^= 1;
        p[6] = 0x20; // more fragments
        ipv4::Packet::new_checked(&mut p[..])
            .unwrap()
            .fill_checksum();
        assert_eq!(Datagram::check(&p, &none), Err(DropReason::Fragment));
        p[0] = 0x65;
        assert_eq!(Datagram::check(&p, &none), Err(DropReason::IpMalformed));
    }
}
