//! IKEv2 (RFC 7296) protocol core: no I/O, no clock reads.

pub mod crypto;
