//! Notify payload body (RFC 7296 §3.10):
//! protocol(1) SPI size(1) notify type(2) SPI notification data.

use super::cursor::{Reader, Writer};
use super::{NotifyType, ProtocolId};
use crate::wire::{Result, WireError};

/// Protocol, SPI size and type.
const FIXED_LEN: usize = 4;

/// A notification (error or status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol of the SA the SPI names; [`ProtocolId::NONE`] when no SPI.
    pub protocol: ProtocolId,
    /// SPI of the SA concerned (empty for the IKE SA).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub ty: NotifyType,
    /// Type-specific data.
    pub data: Vec<u8>,
}

impl Notify {
    /// An error notification about the IKE SA, without data.
    pub fn error(ty: NotifyType) -> Notify {
        Notify::status(ty, Vec::new())
    }

    /// A notification about the IKE SA carrying `data`.
    pub fn status(ty: NotifyType, data: Vec<u8>) -> Notify {
        Notify {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            ty,
            data,
        }
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Notify> {
        let mut r = Reader::new(body);
        let [protocol, spi_size] = r.array::<2>()?;
        let ty = NotifyType(r.u16()?);
        let spi = r.take(usize::from(spi_size))?.to_vec();
        Ok(Notify {
            protocol: ProtocolId(protocol),
            spi,
            ty,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn body_len(&self) -> usize {
        FIXED_LEN
            .saturating_add(self.spi.len())
            .saturating_add(self.data.len())
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| WireError::Malformed)?;
        w.put(&[self.protocol.0, spi_size])?;
        w.u16(self.ty.0)?;
        w.put(&self.spi)?;
        w.put(&self.data)
    }
}
