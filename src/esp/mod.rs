//! The ESP protocol core (RFC 4303 with AES-GCM per RFC 4106, or AES-CBC per
//! RFC 3602 with HMAC-SHA2 per RFC 4868): security
//! associations, anti-replay, sealing and opening into caller buffers. No
//! I/O and no clock reads.

pub mod encap;
pub mod replay;
pub mod sa;
pub mod table;
pub mod tunnel;

pub use sa::{EspError, Hmac, Opened, Sa, SaParams, Transform};

#[cfg(test)]
mod tests;
