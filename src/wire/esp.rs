//! ESP header (RFC 4303 §2): SPI and sequence number; the rest is opaque here.

use super::{be32, Result, WireError};

/// SPI + sequence number.
pub const HEADER_LEN: usize = 8;

/// SPIs 1..=255 are reserved by IANA and 0 is local-use only (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;

/// Checked view of an ESP packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Requires the 8-byte header and an SPI outside the reserved range.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if be32(b, 0) < MIN_SPI {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buf })
    }
    /// Security parameters index.
    pub fn spi(&self) -> u32 {
        be32(self.buf.as_ref(), 0)
    }
    /// Low 32 bits of the sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), 4)
    }
    /// Everything after the header (IV, ciphertext, ICV).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header() {
        let b = [0xd4, 0x56, 0x0c, 0xa1, 0, 0, 0, 7, 0xaa];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.spi(), 0xd456_0ca1);
        assert_eq!(p.seq(), 7);
        assert_eq!(p.payload(), &[0xaa]);
    }

    #[test]
    fn rejects_truncated_and_reserved() {
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[0, 0, 0, 255, 0, 0, 0, 1][..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
