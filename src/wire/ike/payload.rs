//! The generic payload chain (RFC 7296 §3.2): every payload starts with
//! next-payload (1), critical bit + 7 reserved bits (1), and its total length (2).

use super::cursor::Reader;
use super::{PayloadType, GENERIC_HEADER_LEN};
use crate::wire::{Result, WireError};

/// Critical bit in the second byte of the generic header.
const CRITICAL: u8 = 0x80;

/// One payload in a chain: its type (from the previous header), the critical
/// bit, the next-payload field, and the body (after the 4-byte generic header).
#[derive(Debug, Clone, Copy)]
pub struct RawPayload<'a> {
    /// Type of this payload, named by the previous next-payload field.
    pub ty: PayloadType,
    /// This payload's next-payload field (for SK and SKF: the first inner payload).
    pub next: PayloadType,
    /// Critical bit: an unknown payload with it set must fail the message.
    pub critical: bool,
    /// Bytes after the generic header.
    pub body: &'a [u8],
}

/// Iterator over a payload chain.
///
/// Yields `Err` once (then stops) on a generic header that is truncated or
/// whose length is < 4 or runs past the buffer, or when bytes remain after a
/// payload whose next is NONE. It stops after an SK or SKF payload (their
/// `next` names the first *inner* payload), and since SK/SKF must be last
/// (RFC 7296 §3.14, RFC 7383 §2.5) bytes after them also yield one `Err`.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    next: PayloadType,
    buf: &'a [u8],
    /// The chain ended (NONE reached, SK/SKF seen, or an error was yielded).
    ended: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walks `buf` whose first payload has type `first`.
    pub fn new(first: PayloadType, buf: &'a [u8]) -> Self {
        PayloadIter {
            next: first,
            buf,
            ended: false,
        }
    }

    /// Reads one generic header and body from the front of the buffer.
    fn read_one(&mut self) -> Result<RawPayload<'a>> {
        let mut r = Reader::new(self.buf);
        let next = PayloadType(r.u8()?);
        let critical = r.u8()? & CRITICAL != 0;
        let total = usize::from(r.u16()?);
        let body_len = total
            .checked_sub(GENERIC_HEADER_LEN)
            .ok_or(WireError::Malformed)?;
        let body = r.take(body_len)?;
        self.buf = r.rest();
        Ok(RawPayload {
            ty: self.next,
            next,
            critical,
            body,
        })
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            // One error for bytes left behind the last payload, then nothing.
            if self.buf.is_empty() {
                return None;
            }
            self.buf = &[];
            return Some(Err(WireError::Malformed));
        }
        if self.next == PayloadType::NONE {
            self.ended = true;
            return self.next();
        }
        match self.read_one() {
            Ok(p) => {
                self.next = p.next;
                if matches!(p.ty, PayloadType::SK | PayloadType::SKF) {
                    self.ended = true;
                }
                Some(Ok(p))
            }
            Err(e) => {
                self.ended = true;
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

/// Writes a 4-byte generic payload header (critical bit, next, total length
/// including the 4 bytes); `Err(Truncated)` if `out` is shorter than 4 and
/// `Err(Malformed)` if `total_len` < 4.
pub fn emit_generic_header(
    out: &mut [u8],
    next: PayloadType,
    critical: bool,
    total_len: u16,
) -> Result<()> {
    if usize::from(total_len) < GENERIC_HEADER_LEN {
        return Err(WireError::Malformed);
    }
    let h = out
        .first_chunk_mut::<GENERIC_HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    let [l0, l1] = total_len.to_be_bytes();
    *h = [next.0, if critical { CRITICAL } else { 0 }, l0, l1];
    Ok(())
}
