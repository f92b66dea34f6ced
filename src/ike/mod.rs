//! The IKEv2 protocol core (RFC 7296): IKE SAs and CHILD_SAs negotiated
//! with pre-shared keys or certificates (RFC 7427), NAT detection,
//! cookies, fragmentation (RFC 7383), rekeying and liveness checks. No I/O
//! and no clock reads: `Engine` takes datagrams and time and returns
//! datagrams to send and events (CHILD_SAs to install or remove).
//!
//! Whenever this side answers a CHILD_SA proposal, its inbound SPI is
//! derived from the proposer's SPI (`spi::Layout`), so a spimux router in
//! front of either side can match the pair (docs/IKE.md).

pub mod cookie;
pub mod crypto;
pub mod engine;
mod exchange;
pub mod listing;
pub mod message;
pub mod policy;
pub mod proposal;
pub mod sa;
pub mod selectors;
pub mod stats;
mod table;

pub use engine::{ChildInstall, Datagram, DownReason, Engine, EngineConfig, Event, Transmit};
pub use policy::PeerPolicy;

#[cfg(test)]
mod strongswan_vectors;
#[cfg(test)]
mod tests;
