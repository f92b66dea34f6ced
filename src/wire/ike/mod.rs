//! IKEv2 messages (RFC 7296 §3) and encrypted fragments (RFC 7383).
//!
//! Two levels, as for the other views in [`crate::wire`]:
//! - [`Header`] is a checked zero-copy view of the fixed header, and
//!   [`PayloadIter`] walks the generic payload chain without copying;
//! - [`Payload`] is the owned representation of one payload body, with
//!   `parse` / `emit_body`, and [`parse_chain`] / [`emit_chain`] /
//!   [`emit_message`] handle whole chains. Allocation is fine there: this is
//!   the control plane.
//!
//! The SK and SKF payloads are opaque here (IV, ciphertext and ICV); the
//! crypto layer decrypts them and parses the inner chain with
//! [`parse_chain`], starting at the type their `first` field names.
//! Numbers this codec does not know never fail to parse: they are kept as
//! raw values in the newtypes of [`consts`] or as [`Payload::Unknown`].

#![warn(missing_docs)]

pub mod consts;
mod cp;
mod cursor;
mod delete;
mod fragment;
mod header;
mod id;
mod message;
mod notify;
mod payload;
mod sa;
mod ts;

#[cfg(test)]
mod tests;

pub use consts::{
    transform_id, AuthMethod, CertEncoding, CfgType, ExchangeType, IdType, NotifyType, PayloadType,
    ProtocolId, TransformType, TsType,
};
pub use cp::{CfgAttribute, Config};
pub use delete::Delete;
pub use fragment::SKF_HEADER_LEN;
pub use header::{Flags, Header, HeaderRepr, MAJOR_VERSION};
pub use id::Identification;
pub use message::{chain_len, emit_chain, emit_message, parse_chain, Payload};
pub use notify::Notify;
pub use payload::{emit_generic_header, PayloadIter, RawPayload};
pub use sa::{Proposal, Transform};
pub use ts::TrafficSelector;

/// Length of the fixed IKE header.
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header (next, critical, length).
pub const GENERIC_HEADER_LEN: usize = 4;
/// UDP port of IKE.
pub const IKE_PORT: u16 = 500;
/// UDP port of IKE and ESP after NAT detection (RFC 3948, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;
/// Prefix of IKE messages on port 4500, telling them from UDP-encapsulated ESP.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
