//! UDP headers (RFC 768).

use super::checksum;
use super::{be16, put16, Result, WireError};
use core::net::Ipv4Addr;

/// UDP header length.
pub const HEADER_LEN: usize = 8;

/// Checked view of a UDP datagram.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Requires the header and a length field between 8 and the buffer size.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(be16(b, 4));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
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
    /// Length field.
    pub fn length(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }
    /// Checksum field (0 = not computed).
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }
    /// Payload within the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..usize::from(self.length())]
    }
    /// Verifies the checksum against the pseudo-header; a zero checksum passes.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let data = &self.buf.as_ref()[..usize::from(self.length())];
        let s = checksum::pseudo_header(src, dst, super::ipv4::protocol::UDP, self.length())
            + checksum::sum(data);
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Fills the checksum over pseudo-header and datagram (0 becomes 0xffff).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        put16(self.buf.as_mut(), 6, 0);
        let len = self.length();
        let data = &self.buf.as_ref()[..usize::from(len)];
        let s = checksum::pseudo_header(src, dst, super::ipv4::protocol::UDP, len)
            + checksum::sum(data);
        let c = match !checksum::fold(s) {
            0 => 0xffff,
            c => c,
        };
        put16(self.buf.as_mut(), 6, c);
    }
}

/// Writes a UDP header for a payload of `payload_len` bytes, checksum zero.
pub fn emit_header(buf: &mut [u8], src_port: u16, dst_port: u16, payload_len: usize) -> Result<()> {
    let len = u16::try_from(HEADER_LEN + payload_len).map_err(|_| WireError::Malformed)?;
    let b = buf.get_mut(..HEADER_LEN).ok_or(WireError::Truncated)?;
    put16(b, 0, src_port);
    put16(b, 2, dst_port);
    put16(b, 4, len);
    put16(b, 6, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);

    fn dgram() -> [u8; 12] {
        let mut b = [
            0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, b'p', b'i', b'n', b'g',
        ];
        Packet::new_checked(&mut b[..])
            .unwrap()
            .fill_checksum(SRC, DST);
        b
    }

    #[test]
    fn parses_and_verifies() {
        let b = dgram();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(198, 51, 100, 70)));
    }

    /// Fuzzing found the checksum overflowing on datagrams whose bytes sum high.
    #[test]
    fn checksum_of_a_datagram_of_ones() {
        let mut b = [0xffu8; 1500];
        b[4..6].copy_from_slice(&1500u16.to_be_bytes());
        assert!(!Packet::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects_bad_length() {
        let mut b = dgram();
        assert_eq!(
            Packet::new_checked(&b[..7]).unwrap_err(),
            WireError::Truncated
        );
        b[5] = 4;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        b[5] = 40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn emits_header() {
        let mut b = [0u8; 12];
        emit_header(&mut b, 12345, 53, 4).unwrap();
        b[8..].copy_from_slice(b"ping");
        Packet::new_checked(&mut b[..])
            .unwrap()
            .fill_checksum(SRC, DST);
        assert_eq!(b, dgram());
    }
}
