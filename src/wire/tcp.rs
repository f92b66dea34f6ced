//! TCP headers (RFC 9293): ports, flags and checksum; options are skipped.

use super::checksum;
use super::{be16, be32, Result, WireError};
use core::net::Ipv4Addr;

/// Header length without options.
pub const MIN_HEADER_LEN: usize = 20;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Checked view of a TCP segment.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Requires the fixed header and a data offset within the buffer.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), 4)
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[12] >> 4) * 4
    }
    /// Flag byte (CWR..FIN).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 16)
    }
    /// Verifies the checksum against the pseudo-header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buf.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let s =
            checksum::pseudo_header(src, dst, super::ipv4::protocol::TCP, len) + checksum::sum(b);
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Fills the checksum over pseudo-header and the whole segment in the buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let b = self.buf.as_mut();
        b[16..18].copy_from_slice(&[0, 0]);
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        let s =
            checksum::pseudo_header(src, dst, super::ipv4::protocol::TCP, len) + checksum::sum(b);
        b[16..18].copy_from_slice(&(!checksum::fold(s)).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);

    fn syn() -> [u8; 24] {
        let mut b = [
            0xc3,
            0x50,
            0x00,
            0x50,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0x60,
            flags::SYN,
            0xff,
            0xff,
            0,
            0,
            0,
            0,
            // MSS option 1460
            0x02,
            0x04,
            0x05,
            0xb4,
        ];
        let s = checksum::pseudo_header(SRC, DST, 6, 24) + checksum::sum(&b);
        b[16..18].copy_from_slice(&(!checksum::fold(s)).to_be_bytes());
        b
    }

    #[test]
    fn parses_syn() {
        let b = syn();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 50000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags() & flags::SYN, flags::SYN);
        assert!(p.verify_checksum(SRC, DST));
    }

    /// Fuzzing found the checksum overflowing on segments whose bytes sum high.
    #[test]
    fn checksum_of_a_segment_of_ones() {
        let mut b = [0xffu8; 1500];
        b[12] = 0x50;
        assert!(!Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects_bad_offsets() {
        let mut b = syn();
        assert_eq!(
            Packet::new_checked(&b[..19]).unwrap_err(),
            WireError::Truncated
        );
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        b[12] = 0xf0;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
