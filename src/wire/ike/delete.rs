//! Delete payload body (RFC 7296 §3.11):
//! protocol(1) SPI size(1) number of SPIs(2) SPIs.

use super::cursor::{Reader, Writer};
use super::ProtocolId;
use crate::wire::{Result, WireError};

/// Protocol, SPI size and count.
const FIXED_LEN: usize = 4;
/// SPI size of AH and ESP.
const CHILD_SPI_SIZE: u8 = 4;

/// A Delete payload: the IKE SA itself, or Child SAs by their SPIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// 0 for IKE, 4 for ESP and AH.
    pub spi_size: u8,
    /// SPIs, each `spi_size` bytes (none for IKE).
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    /// Deletes the IKE SA the message travels on.
    pub fn ike() -> Delete {
        Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// Deletes ESP SAs by their inbound SPIs.
    pub fn esp(spis: &[u32]) -> Delete {
        Delete {
            protocol: ProtocolId::ESP,
            spi_size: CHILD_SPI_SIZE,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    /// The SPIs as 32-bit ESP/AH SPIs (`None` unless every SPI has 4 bytes).
    pub fn spis_u32(&self) -> Option<Vec<u32>> {
        self.spis
            .iter()
            .map(|s| {
                <[u8; 4]>::try_from(s.as_slice())
                    .ok()
                    .map(u32::from_be_bytes)
            })
            .collect()
    }

    /// The sizes RFC 7296 §3.11 fixes; an SPI count without an SPI size is
    /// meaningless.
    fn check(&self, count: usize) -> Result<()> {
        let ok = match self.protocol {
            ProtocolId::IKE => self.spi_size == 0 && count == 0,
            ProtocolId::AH | ProtocolId::ESP => self.spi_size == CHILD_SPI_SIZE,
            _ => self.spi_size != 0 || count == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(WireError::Malformed)
        }
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Delete> {
        let mut r = Reader::new(body);
        let [protocol, spi_size] = r.array::<2>()?;
        let count = usize::from(r.u16()?);
        let mut d = Delete {
            protocol: ProtocolId(protocol),
            spi_size,
            spis: Vec::new(),
        };
        d.check(count)?;
        let total = count
            .checked_mul(usize::from(spi_size))
            .ok_or(WireError::Malformed)?;
        // Lengths are agreed before anything is allocated.
        if r.remaining() != total {
            return Err(if r.remaining() < total {
                WireError::Truncated
            } else {
                WireError::Malformed
            });
        }
        d.spis = r
            .rest()
            .chunks_exact(usize::from(spi_size.max(1)))
            .map(<[u8]>::to_vec)
            .collect();
        Ok(d)
    }

    pub(crate) fn body_len(&self) -> usize {
        self.spis
            .iter()
            .fold(FIXED_LEN, |n, s| n.saturating_add(s.len()))
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        self.check(self.spis.len())?;
        let count = u16::try_from(self.spis.len()).map_err(|_| WireError::Malformed)?;
        if self
            .spis
            .iter()
            .any(|s| s.len() != usize::from(self.spi_size))
        {
            return Err(WireError::Malformed);
        }
        w.put(&[self.protocol.0, self.spi_size])?;
        w.u16(count)?;
        self.spis.iter().try_for_each(|s| w.put(s))
    }
}
