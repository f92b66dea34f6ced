//! Bodies of the Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment
//! (SKF, RFC 7383 §2.5) payloads. Both are opaque IV‖ciphertext‖ICV here;
//! SKF adds fragment number(2) and total fragments(2) in front.

use super::cursor::{Reader, Writer};
use crate::wire::{Result, WireError};

/// Generic header plus fragment number and total: the SKF part of the
/// associated data of RFC 7383 §2.5.
pub const SKF_HEADER_LEN: usize = 8;
/// Fragment number and total.
const SKF_FIELDS_LEN: usize = 4;

/// Fragment `number` of `total` must satisfy 1 <= number <= total.
fn check(number: u16, total: u16) -> Result<()> {
    if number == 0 || number > total {
        return Err(WireError::Malformed);
    }
    Ok(())
}

/// Fragment number, total and the encrypted data of an SKF body.
pub(crate) fn parse_skf(body: &[u8]) -> Result<(u16, u16, &[u8])> {
    let mut r = Reader::new(body);
    let number = r.u16()?;
    let total = r.u16()?;
    check(number, total)?;
    Ok((number, total, r.rest()))
}

pub(crate) fn skf_body_len(data: &[u8]) -> usize {
    SKF_FIELDS_LEN.saturating_add(data.len())
}

pub(crate) fn emit_skf(number: u16, total: u16, data: &[u8], w: &mut Writer<'_>) -> Result<()> {
    check(number, total)?;
    w.u16(number)?;
    w.u16(total)?;
    w.put(data)
}
