//! Configuration payload body (RFC 7296 §3.15):
//! type(1) reserved(3) attributes, each R|type(2) length(2) value.

use super::cursor::{len16, Reader, Writer};
use super::CfgType;
use crate::wire::{Result, WireError};

/// Type and reserved bytes.
const FIXED_LEN: usize = 4;
/// Attribute type and length.
const ATTR_HEADER_LEN: usize = 4;
/// The reserved top bit of an attribute type.
const RESERVED_BIT: u16 = 0x8000;

/// One configuration attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttribute {
    /// 15-bit attribute type (the reserved bit is ignored on parse, emitted 0).
    pub ty: u16,
    /// Value; empty in a request for "any".
    pub value: Vec<u8>,
}

impl CfgAttribute {
    /// Inner IPv4 address of the initiator.
    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    /// Netmask of the inner IPv4 address.
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    /// IPv4 DNS server.
    pub const INTERNAL_IP4_DNS: u16 = 3;
    /// IPv4 NBNS server.
    pub const INTERNAL_IP4_NBNS: u16 = 4;
    /// IPv4 DHCP server.
    pub const INTERNAL_IP4_DHCP: u16 = 6;
    /// Version of the application.
    pub const APPLICATION_VERSION: u16 = 7;
    /// Protected IPv4 subnet (address and mask).
    pub const INTERNAL_IP4_SUBNET: u16 = 13;
    /// Attribute types the responder supports.
    pub const SUPPORTED_ATTRIBUTES: u16 = 14;
}

/// A CP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Request, reply, set or ack.
    pub ty: CfgType,
    /// Attributes in order.
    pub attributes: Vec<CfgAttribute>,
}

impl Config {
    pub(crate) fn parse(body: &[u8]) -> Result<Config> {
        let mut r = Reader::new(body);
        let ty = CfgType(r.u8()?);
        r.skip(3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let ty = r.u16()? & !RESERVED_BIT;
            let len = usize::from(r.u16()?);
            attributes.push(CfgAttribute {
                ty,
                value: r.take(len)?.to_vec(),
            });
        }
        Ok(Config { ty, attributes })
    }

    pub(crate) fn body_len(&self) -> usize {
        self.attributes.iter().fold(FIXED_LEN, |n, a| {
            n.saturating_add(ATTR_HEADER_LEN)
                .saturating_add(a.value.len())
        })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.put(&[self.ty.0, 0, 0, 0])?;
        for a in &self.attributes {
            if a.ty & RESERVED_BIT != 0 {
                return Err(WireError::Malformed);
            }
            w.u16(a.ty)?;
            w.u16(len16(a.value.len())?)?;
            w.put(&a.value)?;
        }
        Ok(())
    }
}
