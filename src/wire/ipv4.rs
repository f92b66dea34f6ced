//! IPv4 headers (RFC 791).

use super::checksum;
use super::{be16, be32, put16, put32, Result, WireError};
use core::net::Ipv4Addr;

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers spimux handles.
pub mod protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPsec Encapsulating Security Payload.
    pub const ESP: u8 = 50;
}

/// Checked view of an IPv4 datagram.
///
/// `new_checked` requires the whole datagram (total length within the
/// buffer); `new_header_checked` only the header, for the truncated copy
/// carried inside ICMP errors.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
    /// Bytes of the datagram present in `buf` (total length, or less when truncated).
    end: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    fn check_header(b: &[u8]) -> Result<usize> {
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < hl {
            return Err(WireError::Truncated);
        }
        if usize::from(be16(b, 2)) < hl {
            return Err(WireError::Malformed);
        }
        Ok(hl)
    }

    /// Views a complete datagram; trailing bytes past total length (Ethernet padding) are ignored.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        Self::check_header(b)?;
        let total = usize::from(be16(b, 2));
        if total > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf, end: total })
    }

    /// Views a datagram whose payload may be cut short (ICMP error quotes).
    pub fn new_header_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        Self::check_header(b)?;
        let end = usize::from(be16(b, 2)).min(b.len());
        Ok(Packet { buf, end })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }
    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.b(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.b(), 4)
    }
    /// More-fragments flag set or nonzero fragment offset.
    pub fn is_fragment(&self) -> bool {
        be16(self.b(), 6) & 0x3fff != 0
    }
    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        be16(self.b(), 6) & 0x4000 != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.b(), 6) & 0x1fff
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    /// Payload protocol.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), 10)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 12))
    }
    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 16))
    }
    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.b()[..self.header_len()])) == 0xffff
    }
    /// Payload bytes present (up to total length).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.end]
    }
    /// Length of the datagram present in the buffer.
    pub fn len(&self) -> usize {
        self.end
    }
    /// Never true for a checked packet; provided for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Rewrites the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        let old = be32(self.b(), 12);
        let c = checksum::update32(self.checksum(), old, u32::from(a));
        put32(self.bm(), 12, u32::from(a));
        put16(self.bm(), 10, c);
    }

    /// Rewrites the destination address, updating the header checksum incrementally.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        let old = be32(self.b(), 16);
        let c = checksum::update32(self.checksum(), old, u32::from(a));
        put32(self.bm(), 16, u32::from(a));
        put16(self.bm(), 10, c);
    }

    /// Decrements TTL by one (caller checks it is > 1 first), updating the checksum.
    pub fn decrement_ttl(&mut self) {
        decrement_ttl(self.bm());
    }

    /// Sets TTL and recomputes the header checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[8] = ttl;
        self.fill_checksum();
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        put16(self.bm(), 10, 0);
        let c = checksum::checksum(&self.b()[..hl]);
        put16(self.bm(), 10, c);
    }

    /// Mutable payload (up to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, end) = (self.header_len(), self.end);
        &mut self.bm()[hl..end]
    }
}

/// Destination address of the header at the start of `buf`, read without
/// re-validating a datagram the caller already checked (e.g. after the NAT
/// rewrote it in place); `None` when `buf` is shorter than a header.
pub fn dst_of(buf: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = buf.get(16..20)?.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

/// Decrements the TTL of the header at the start of `buf` (already checked
/// by the caller, TTL > 1), updating the checksum incrementally; false when
/// `buf` is shorter than a header.
pub fn decrement_ttl(buf: &mut [u8]) -> bool {
    if buf.len() < MIN_HEADER_LEN {
        return false;
    }
    let old = be16(buf, 8);
    let new = old.wrapping_sub(0x0100);
    let c = checksum::update16(be16(buf, 10), old, new);
    put16(buf, 8, new);
    put16(buf, 10, c);
    true
}

/// High-level representation of an option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Repr {
    /// Writes a 20-byte header with DF clear and a valid checksum into `buf`.
    pub fn emit(&self, buf: &mut [u8], ident: u16) -> Result<()> {
        let total =
            u16::try_from(MIN_HEADER_LEN + self.payload_len).map_err(|_| WireError::Malformed)?;
        let b = buf.get_mut(..MIN_HEADER_LEN).ok_or(WireError::Truncated)?;
        b[0] = 0x45;
        b[1] = 0;
        put16(b, 2, total);
        put16(b, 4, ident);
        put16(b, 6, 0);
        b[8] = self.ttl;
        b[9] = self.protocol;
        put16(b, 10, 0);
        put32(b, 12, u32::from(self.src));
        put32(b, 16, u32::from(self.dst));
        let c = checksum::checksum(b);
        put16(b, 10, c);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// ICMP echo request 10.6.1.2 -> 198.51.100.69, TTL 64, 8 payload bytes.
    pub const PING: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 6, 1, 2, 198,
        51, 100, 69, // ICMP echo request id 0x0102 seq 1
        0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8,
    ];

    pub fn ping() -> [u8; 36] {
        let mut p = PING;
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let c = checksum::checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn parses_fields() {
        let b = ping();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.src(), Ipv4Addr::new(10, 6, 1, 2));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 51, 100, 69));
        assert!(!p.is_fragment());
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 16);
    }

    #[test]
    fn ignores_ethernet_padding() {
        let mut b = ping().to_vec();
        b.extend_from_slice(&[0; 10]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 16);
    }

    #[test]
    fn rejects_malformed() {
        let b = ping();
        assert_eq!(
            Packet::new_checked(&b[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&v6[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut ihl = b;
        ihl[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut long_ihl = b;
        long_ihl[0] = 0x4f; // 60-byte header in a 36-byte buffer
        assert_eq!(
            Packet::new_checked(&long_ihl[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut total = b;
        total[3] = 200;
        assert_eq!(
            Packet::new_checked(&total[..]).unwrap_err(),
            WireError::Truncated
        );
        assert!(Packet::new_header_checked(&total[..]).is_ok());
        let mut short_total = b;
        short_total[3] = 10;
        assert_eq!(
            Packet::new_checked(&short_total[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn rewrites_keep_checksum_valid() {
        let mut b = ping();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src(Ipv4Addr::new(203, 0, 113, 10));
        p.decrement_ttl();
        p.set_dst(Ipv4Addr::new(198, 51, 100, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
    }

    #[test]
    fn fragment_flags() {
        let mut b = ping();
        b[6] = 0x20; // MF
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        b[6] = 0x00;
        b[7] = 0x10; // offset 16
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 16);
    }

    #[test]
    fn repr_emits_valid_header() {
        let mut b = [0u8; 20];
        let r = Repr {
            src: Ipv4Addr::new(10, 6, 1, 1),
            dst: Ipv4Addr::new(10, 6, 1, 2),
            protocol: protocol::ICMP,
            payload_len: 0,
            ttl: 64,
        };
        r.emit(&mut b, 7).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.src(), r.src);
        assert_eq!(p.ident(), 7);
    }
}
