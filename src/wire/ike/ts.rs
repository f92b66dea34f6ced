//! Traffic selector payload body (RFC 7296 §3.13).
//!
//! ```text
//! number(1) reserved(3) selectors...
//! selector: type(1) IP protocol(1) length(2) start port(2) end port(2) start addr end addr
//! ```

use core::net::Ipv4Addr;

use super::cursor::{len16, Reader, Writer};
use super::TsType;
use crate::wire::{Result, WireError};

/// Type, IP protocol and length of a selector.
const SELECTOR_HEADER_LEN: usize = 4;
/// Whole IPv4 range selector.
const V4_LEN: usize = 16;

/// One traffic selector. IPv4 ranges only are interpreted; other TS types are
/// kept raw so a peer offering IPv6 too is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    V4 {
        /// IP protocol (0 = any).
        ip_protocol: u8,
        /// First port (0 for any).
        start_port: u16,
        /// Last port (65535 for any).
        end_port: u16,
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// Any other type: `body` is the selector without its Type and Selector
    /// Length fields, that is the IP protocol byte followed by everything
    /// after the length (ports and addresses for IPv6). Never empty.
    Other {
        /// Selector type.
        ty: TsType,
        /// IP protocol byte, then the bytes after the length field.
        body: Vec<u8>,
    },
}

impl TrafficSelector {
    /// All protocols and ports between `start` and `end`.
    pub fn v4_range(start: Ipv4Addr, end: Ipv4Addr) -> TrafficSelector {
        TrafficSelector::V4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start,
            end,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            TrafficSelector::V4 { .. } => V4_LEN,
            // The body holds the protocol byte, which the 4-byte header also counts.
            TrafficSelector::Other { body, .. } => {
                body.len().saturating_add(SELECTOR_HEADER_LEN - 1)
            }
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<TrafficSelector> {
        let ty = TsType(r.u8()?);
        let ip_protocol = r.u8()?;
        let len = usize::from(r.u16()?);
        let rest_len = len
            .checked_sub(SELECTOR_HEADER_LEN)
            .ok_or(WireError::Malformed)?;
        let mut rest = Reader::new(r.take(rest_len)?);
        if ty != TsType::IPV4_ADDR_RANGE {
            let mut body = Vec::with_capacity(rest_len.saturating_add(1));
            body.push(ip_protocol);
            body.extend_from_slice(rest.rest());
            return Ok(TrafficSelector::Other { ty, body });
        }
        if len != V4_LEN {
            return Err(WireError::Malformed);
        }
        Ok(TrafficSelector::V4 {
            ip_protocol,
            start_port: rest.u16()?,
            end_port: rest.u16()?,
            start: Ipv4Addr::from(rest.array::<4>()?),
            end: Ipv4Addr::from(rest.array::<4>()?),
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            TrafficSelector::V4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                w.put(&[TsType::IPV4_ADDR_RANGE.0, *ip_protocol])?;
                w.u16(len16(V4_LEN)?)?;
                w.u16(*start_port)?;
                w.u16(*end_port)?;
                w.put(&start.octets())?;
                w.put(&end.octets())
            }
            TrafficSelector::Other { ty, body } => {
                // An IPv4 range kept raw would come back as V4: refuse it.
                let Some((proto, rest)) = body.split_first() else {
                    return Err(WireError::Malformed);
                };
                if *ty == TsType::IPV4_ADDR_RANGE {
                    return Err(WireError::Malformed);
                }
                w.put(&[ty.0, *proto])?;
                w.u16(len16(self.encoded_len())?)?;
                w.put(rest)
            }
        }
    }
}

/// Number of selectors (1), reserved (3).
const TS_HEADER_LEN: usize = 4;

pub(crate) fn parse(body: &[u8]) -> Result<Vec<TrafficSelector>> {
    let mut r = Reader::new(body);
    let count = r.u8()?;
    r.skip(3)?;
    let mut out = Vec::with_capacity(usize::from(count));
    while !r.is_empty() {
        out.push(TrafficSelector::parse(&mut r)?);
    }
    if out.len() != usize::from(count) {
        return Err(WireError::Malformed);
    }
    Ok(out)
}

pub(crate) fn body_len(ts: &[TrafficSelector]) -> usize {
    ts.iter()
        .fold(TS_HEADER_LEN, |n, t| n.saturating_add(t.encoded_len()))
}

pub(crate) fn emit(ts: &[TrafficSelector], w: &mut Writer<'_>) -> Result<()> {
    let count = u8::try_from(ts.len()).map_err(|_| WireError::Malformed)?;
    w.put(&[count, 0, 0, 0])?;
    ts.iter().try_for_each(|t| t.emit(w))
}
