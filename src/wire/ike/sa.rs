//! SA payload body: proposals and their transforms (RFC 7296 §3.3).
//!
//! ```text
//! Proposal:  last(0|2) reserved length(2) number protocol spi-size #transforms SPI transforms
//! Transform: last(0|3) reserved length(2) type reserved id(2) attributes
//! Attribute: AF|type(2) value(2)            (TV, AF bit set)
//!            type(2) length(2) value        (TLV)
//! ```

use super::consts::transform_id::{ATTR_TV, KEY_LENGTH};
use super::cursor::{len16, Reader, Writer};
use super::{ProtocolId, TransformType};
use crate::wire::{Result, WireError};

/// "Last" marker value of a proposal that is followed by another one.
const MORE_PROPOSALS: u8 = 2;
/// "Last" marker value of a transform that is followed by another one.
const MORE_TRANSFORMS: u8 = 3;
/// Proposal substructure without SPI and transforms.
const PROPOSAL_HEADER_LEN: usize = 8;
/// Transform substructure without attributes.
const TRANSFORM_HEADER_LEN: usize = 8;
/// A TV attribute: type and value, 2 bytes each.
const TV_ATTR_LEN: usize = 4;

/// One transform of a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform type (ENCR, PRF, INTEG, KE, ESN).
    pub ty: TransformType,
    /// Transform ID within the type ([`super::transform_id`]).
    pub id: u16,
    /// KEY_LENGTH attribute in bits, when present.
    pub key_length: Option<u16>,
    /// An attribute other than KEY_LENGTH was present: RFC 7296 §3.3.6 says
    /// reject this transform. Such a transform cannot be emitted (its
    /// attribute bytes are not kept).
    pub unknown_attribute: bool,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(ty: TransformType, id: u16) -> Transform {
        Transform {
            ty,
            id,
            key_length: None,
            unknown_attribute: false,
        }
    }

    /// A transform with a KEY_LENGTH attribute (AES-CBC, AES-GCM).
    pub fn with_key_length(ty: TransformType, id: u16, bits: u16) -> Transform {
        Transform {
            key_length: Some(bits),
            ..Transform::new(ty, id)
        }
    }

    fn encoded_len(&self) -> usize {
        TRANSFORM_HEADER_LEN
            + if self.key_length.is_some() {
                TV_ATTR_LEN
            } else {
                0
            }
    }

    /// Parses one transform's body after its 8-byte header: the attributes.
    fn parse_attributes(&mut self, mut r: Reader<'_>) -> Result<()> {
        while !r.is_empty() {
            let ty = r.u16()?;
            if ty & ATTR_TV != 0 {
                let value = r.u16()?;
                if ty & !ATTR_TV == KEY_LENGTH {
                    // Two key lengths are ambiguous: refuse rather than pick one.
                    if self.key_length.replace(value).is_some() {
                        return Err(WireError::Malformed);
                    }
                } else {
                    self.unknown_attribute = true;
                }
            } else {
                // TLV: no TLV attribute is defined for IKEv2 (KEY_LENGTH is TV only).
                let len = usize::from(r.u16()?);
                r.skip(len)?;
                self.unknown_attribute = true;
            }
        }
        Ok(())
    }

    fn emit(&self, last: bool, w: &mut Writer<'_>) -> Result<()> {
        if self.unknown_attribute {
            return Err(WireError::Malformed);
        }
        w.u8(if last { 0 } else { MORE_TRANSFORMS })?;
        w.u8(0)?;
        w.u16(len16(self.encoded_len())?)?;
        w.u8(self.ty.0)?;
        w.u8(0)?;
        w.u16(self.id)?;
        if let Some(bits) = self.key_length {
            w.u16(ATTR_TV | KEY_LENGTH)?;
            w.u16(bits)?;
        }
        Ok(())
    }
}

/// One proposal of an SA payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number: 1, 2, … in an offer; in an answer, the number of the
    /// accepted proposal.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// SPI: empty in IKE_SA_INIT, 8 bytes when rekeying IKE, 4 for ESP/AH.
    pub spi: Vec<u8>,
    /// Transforms, in order.
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// The SPI as a 4-byte ESP/AH SPI.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
    }

    /// The SPI as an 8-byte IKE SPI.
    pub fn spi_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(self.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    }

    fn encoded_len(&self) -> usize {
        self.transforms.iter().fold(
            PROPOSAL_HEADER_LEN.saturating_add(self.spi.len()),
            |n, t| n.saturating_add(t.encoded_len()),
        )
    }

    fn emit(&self, last: bool, w: &mut Writer<'_>) -> Result<()> {
        check_spi_size(self.protocol, self.spi.len())?;
        let count = u8::try_from(self.transforms.len()).map_err(|_| WireError::Malformed)?;
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| WireError::Malformed)?;
        w.u8(if last { 0 } else { MORE_PROPOSALS })?;
        w.u8(0)?;
        w.u16(len16(self.encoded_len())?)?;
        w.put(&[self.number, self.protocol.0, spi_size, count])?;
        w.put(&self.spi)?;
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(i + 1 == n, w)?;
        }
        Ok(())
    }
}

/// SPI sizes of RFC 7296 §3.3.1 for the protocols it defines; others are free.
fn check_spi_size(protocol: ProtocolId, size: usize) -> Result<()> {
    let ok = match protocol {
        ProtocolId::IKE => size == 0 || size == 8,
        ProtocolId::AH | ProtocolId::ESP => size == 4,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::Malformed)
    }
}

/// Splits one substructure (proposal or transform) off `r`: its last
/// marker, and a reader over its bytes after the 4-byte substructure header.
fn substructure<'a>(r: &mut Reader<'a>) -> Result<(u8, Reader<'a>)> {
    let last = r.u8()?;
    r.skip(1)?;
    let len = usize::from(r.u16()?);
    let body_len = len.checked_sub(4).ok_or(WireError::Malformed)?;
    Ok((last, Reader::new(r.take(body_len)?)))
}

fn parse_proposal(mut r: Reader<'_>) -> Result<Proposal> {
    let [number, protocol, spi_size, count] = r.array::<4>()?;
    let protocol = ProtocolId(protocol);
    check_spi_size(protocol, usize::from(spi_size))?;
    let spi = r.take(usize::from(spi_size))?.to_vec();
    let mut transforms = Vec::with_capacity(usize::from(count));
    let mut more = !r.is_empty();
    while more {
        let (marker, mut t) = substructure(&mut r)?;
        more = match marker {
            0 => false,
            MORE_TRANSFORMS => true,
            _ => return Err(WireError::Malformed),
        };
        let [ty, _reserved, i0, i1] = t.array::<4>()?;
        let mut tr = Transform::new(TransformType(ty), u16::from_be_bytes([i0, i1]));
        tr.parse_attributes(t)?;
        transforms.push(tr);
    }
    // The last marker must fall on the final transform and agree with the count.
    if !r.is_empty() || transforms.len() != usize::from(count) {
        return Err(WireError::Malformed);
    }
    Ok(Proposal {
        number,
        protocol,
        spi,
        transforms,
    })
}

/// Parses an SA payload body. Proposal numbers of a multi-proposal offer
/// must be 1, 2, …; a single proposal may carry any nonzero number, since
/// an answer echoes the number of the proposal it accepted (RFC 7296 §3.3.1).
pub(crate) fn parse(body: &[u8]) -> Result<Vec<Proposal>> {
    let mut r = Reader::new(body);
    let mut proposals: Vec<Proposal> = Vec::new();
    let mut more = true;
    while more {
        let (marker, p) = substructure(&mut r)?;
        more = match marker {
            0 => false,
            MORE_PROPOSALS => true,
            _ => return Err(WireError::Malformed),
        };
        proposals.push(parse_proposal(p)?);
    }
    if !r.is_empty() {
        return Err(WireError::Malformed);
    }
    check_numbers(&proposals)?;
    Ok(proposals)
}

fn check_numbers(proposals: &[Proposal]) -> Result<()> {
    let ok = match proposals {
        [] => false,
        [only] => only.number != 0,
        many => (1usize..)
            .zip(many)
            .all(|(n, p)| usize::from(p.number) == n),
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::Malformed)
    }
}

pub(crate) fn body_len(proposals: &[Proposal]) -> usize {
    proposals
        .iter()
        .fold(0usize, |n, p| n.saturating_add(p.encoded_len()))
}

pub(crate) fn emit(proposals: &[Proposal], w: &mut Writer<'_>) -> Result<()> {
    check_numbers(proposals)?;
    let n = proposals.len();
    for (i, p) in proposals.iter().enumerate() {
        p.emit(i + 1 == n, w)?;
    }
    Ok(())
}
