//! The ESP protocol core (RFC 4303 with AES-GCM per RFC 4106): security
//! associations, anti-replay, sealing and opening into caller buffers. No
//! I/O and no clock reads.

pub mod encap;
pub mod replay;
pub mod sa;
pub mod table;
pub mod tunnel;

pub use sa::{EspError, Opened, Sa, SaParams};

/// Whether ESP with AES-CBC + HMAC is available (IKE may negotiate it).
pub const CBC_SUPPORTED: bool = false;

#[cfg(test)]
mod tests;
