//! ICMPv4 (RFC 792): echo and the error messages a NAT must translate.

use super::checksum;
use super::{be16, put16, Result, WireError};

/// Fixed header length (type, code, checksum, 4 bytes rest-of-header).
pub const HEADER_LEN: usize = 8;

/// ICMP message types spimux distinguishes.
pub mod kind {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Destination unreachable code: fragmentation needed and DF set.
    pub const FRAG_NEEDED: u8 = 4;
    /// Source quench (deprecated but still an error carrying a quote).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// True for error types whose body quotes the offending datagram (RFC 5508 §7).
pub fn is_error(t: u8) -> bool {
    matches!(
        t,
        kind::DEST_UNREACHABLE
            | kind::SOURCE_QUENCH
            | kind::REDIRECT
            | kind::TIME_EXCEEDED
            | kind::PARAMETER_PROBLEM
    )
}

/// Checked view of an ICMP message.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Requires the 8-byte header.
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }
    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }
    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }
    /// Body after the 8-byte header (echo data, or the quoted datagram of an error).
    pub fn body(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buf.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Rewrites the echo identifier, updating the checksum incrementally.
    pub fn set_echo_ident(&mut self, id: u16) {
        let old = self.echo_ident();
        // RFC 1624 eqn. 3 yields 0x0000 when the message became all zero,
        // whose only valid checksum is 0xffff; 0xffff is valid for any other
        // message summing to zero as well.
        let c = match checksum::update16(self.checksum(), old, id) {
            0 => 0xffff,
            c => c,
        };
        put16(self.buf.as_mut(), 4, id);
        put16(self.buf.as_mut(), 2, c);
    }
    /// Sets the type byte without touching the checksum.
    pub fn set_msg_type(&mut self, t: u8) {
        self.buf.as_mut()[0] = t;
    }
    /// Mutable body.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        put16(self.buf.as_mut(), 2, 0);
        let c = checksum::checksum(self.buf.as_ref());
        put16(self.buf.as_mut(), 2, c);
    }
}

/// Writes an ICMP error header (type, code, zero rest-of-header) followed by
/// `quote` into `buf` and fills the checksum. Returns the message length.
pub fn emit_error(buf: &mut [u8], msg_type: u8, code: u8, quote: &[u8]) -> Result<usize> {
    emit_error_with(buf, msg_type, code, [0; 4], quote)
}

/// [`emit_error`] with the header's last four bytes set (RFC 1191: the
/// next-hop MTU in bytes 6–7 of "fragmentation needed").
pub fn emit_error_with(
    buf: &mut [u8],
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    quote: &[u8],
) -> Result<usize> {
    let len = HEADER_LEN + quote.len();
    let b = buf.get_mut(..len).ok_or(WireError::Truncated)?;
    b[..4].copy_from_slice(&[msg_type, code, 0, 0]);
    b[4..HEADER_LEN].copy_from_slice(&rest);
    b[HEADER_LEN..].copy_from_slice(quote);
    let c = checksum::checksum(b);
    put16(b, 2, c);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> [u8; 16] {
        let mut b = [8, 0, 0, 0, 0x01, 0x02, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8];
        let c = checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn parses_echo() {
        let b = echo();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), kind::ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0x0102);
        assert_eq!(p.echo_seq(), 1);
        assert!(p.verify_checksum());
        assert!(!is_error(p.msg_type()));
    }

    #[test]
    fn ident_rewrite_keeps_checksum() {
        let mut b = echo();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_echo_ident(0xbeef);
        assert!(p.verify_checksum());
        assert_eq!(p.echo_ident(), 0xbeef);
    }

    /// Fuzzing found an echo reply whose identifier became 0 (all bytes zero)
    /// left with checksum 0x0000, which no receiver accepts.
    #[test]
    fn ident_rewrite_to_an_all_zero_message_stays_valid() {
        let mut b = [0u8, 0, 0, 0, 0xff, 0xff, 0, 0];
        assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_echo_ident(0);
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0xffff);
    }

    #[test]
    fn emits_error_with_quote() {
        let mut out = [0u8; 64];
        let n = emit_error(&mut out, kind::TIME_EXCEEDED, 0, &[0x45; 28]).unwrap();
        assert_eq!(n, 36);
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert!(p.verify_checksum());
        assert!(is_error(p.msg_type()));
        assert_eq!(p.body().len(), 28);
        assert_eq!(
            emit_error(&mut out[..10], 11, 0, &[0; 28]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(
            Packet::new_checked(&[8u8, 0, 0][..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
