//! Mobility protocol core (no I/O, no clock reads; time is passed in as
//! milliseconds): the gateway's check of a registration request and the
//! client's registration state machine. Messages are in [`crate::wire::mobility`];
//! docs/MOBILITY.md describes the exchange.

pub mod client;
pub mod gateway;
pub mod proof;

pub use crate::wire::mobility::{
    Code, Encap, EncapSet, Message, NatFields, NatKind, OuterHeader, Rrep, Rreq,
};
