//! Identification payload body (RFC 7296 §3.5): type(1) reserved(3) data.

use core::net::Ipv4Addr;

use super::cursor::{Reader, Writer};
use super::IdType;
use crate::wire::{Result, WireError};

/// Type and reserved bytes.
const FIXED_LEN: usize = 4;

/// An IDi or IDr payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    /// How `data` is to be read.
    pub ty: IdType,
    /// The identity (4 bytes for IPv4, 16 for IPv6, text for FQDN and RFC 822).
    pub data: Vec<u8>,
}

impl Identification {
    /// An IPv4 address identity.
    pub fn ipv4(addr: Ipv4Addr) -> Identification {
        Identification {
            ty: IdType::IPV4_ADDR,
            data: addr.octets().to_vec(),
        }
    }

    /// A fully qualified domain name identity.
    pub fn fqdn(name: &str) -> Identification {
        Identification {
            ty: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// Address identities must have the address length.
    fn check(ty: IdType, data: &[u8]) -> Result<()> {
        let ok = match ty {
            IdType::IPV4_ADDR => data.len() == 4,
            IdType::IPV6_ADDR => data.len() == 16,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Identification> {
        let mut r = Reader::new(body);
        let ty = IdType(r.u8()?);
        r.skip(3)?;
        let data = r.rest();
        Self::check(ty, data)?;
        Ok(Identification {
            ty,
            data: data.to_vec(),
        })
    }

    pub(crate) fn body_len(&self) -> usize {
        FIXED_LEN.saturating_add(self.data.len())
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        Self::check(self.ty, &self.data)?;
        w.put(&[self.ty.0, 0, 0, 0])?;
        w.put(&self.data)
    }
}
