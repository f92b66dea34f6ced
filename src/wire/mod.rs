//! Zero-copy checked views over packet buffers.
//!
//! Every view follows the smoltcp pattern: `Packet::new_checked(buf)` validates
//! lengths once, after which field accessors cannot panic. Setters exist only
//! for buffers that are `AsMut<[u8]>`. Nothing here allocates or does I/O.

pub mod arp;
pub mod build;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ike;
pub mod ipv4;
pub mod mobility;
pub mod tcp;
pub mod udp;

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the fixed header or than a length field claims.
    #[error("truncated")]
    Truncated,
    /// A field holds a value the format does not allow.
    #[error("malformed")]
    Malformed,
}

/// Result of a wire-level check.
pub type Result<T> = core::result::Result<T, WireError>;

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
