//! Bounds-checked reading and writing of big-endian fields, so the payload
//! codecs never index or add unchecked on lengths that come from the wire.

use crate::wire::{Result, WireError};

/// Consumes a byte slice from the front; every read fails with `Truncated`
/// instead of panicking when the slice is too short.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }
    /// Skips reserved bytes (ignored on receipt, RFC 7296 §3.2).
    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.take(n).map(drop)
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
}

/// Appends to a caller buffer; fails with `Truncated` when it is too small.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, at: 0 }
    }
    pub(crate) fn put(&mut self, b: &[u8]) -> Result<()> {
        let end = self.at.checked_add(b.len()).ok_or(WireError::Truncated)?;
        self.out
            .get_mut(self.at..end)
            .ok_or(WireError::Truncated)?
            .copy_from_slice(b);
        self.at = end;
        Ok(())
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }
    pub(crate) fn u16(&mut self, v: u16) -> Result<()> {
        self.put(&v.to_be_bytes())
    }
    /// Hands out the next `n` bytes for a nested encoder.
    pub(crate) fn slot(&mut self, n: usize) -> Result<&mut [u8]> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.out.get_mut(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    pub(crate) fn written(&self) -> usize {
        self.at
    }
}

/// A length as the 16-bit field the format has; `Malformed` when it does not fit.
pub(crate) fn len16(n: usize) -> Result<u16> {
    u16::try_from(n).map_err(|_| WireError::Malformed)
}
