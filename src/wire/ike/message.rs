//! Owned payloads and whole chains: parse a chain into [`Payload`]s, emit
//! payloads back into a chain or a plaintext message.

use super::cursor::{len16, Reader, Writer};
use super::fragment::{emit_skf, parse_skf, skf_body_len};
use super::header::HeaderRepr;
use super::payload::{emit_generic_header, PayloadIter, RawPayload};
use super::{
    cp::Config, delete::Delete, id::Identification, notify::Notify, sa, sa::Proposal, ts,
    ts::TrafficSelector, AuthMethod, CertEncoding, PayloadType, GENERIC_HEADER_LEN, HEADER_LEN,
};
use crate::wire::{Result, WireError};

/// Nonce lengths allowed by RFC 7296 §3.9.
const NONCE_LEN: core::ops::RangeInclusive<usize> = 16..=256;
/// Fixed part of KE (group, reserved) and AUTH (method, reserved).
const FIXED_LEN: usize = 4;

/// One payload, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Security Association: proposals.
    Sa(Vec<Proposal>),
    /// Key Exchange: group number and public value (at least one byte).
    Ke {
        /// Diffie-Hellman group ([`super::transform_id`] `DH_*`).
        group: u16,
        /// Public value.
        data: Vec<u8>,
    },
    /// Initiator's identity.
    IdI(Identification),
    /// Responder's identity.
    IdR(Identification),
    /// Certificate.
    Cert {
        /// Encoding of `data`.
        encoding: CertEncoding,
        /// Certificate bytes.
        data: Vec<u8>,
    },
    /// Certificate request.
    CertReq {
        /// Encoding wanted.
        encoding: CertEncoding,
        /// Certification authority hashes.
        data: Vec<u8>,
    },
    /// Authentication.
    Auth {
        /// Authentication method.
        method: AuthMethod,
        /// Signature or MAC.
        data: Vec<u8>,
    },
    /// Nonce (16..=256 bytes).
    Nonce(Vec<u8>),
    /// Notification.
    Notify(Notify),
    /// Delete.
    Delete(Delete),
    /// Vendor ID.
    Vendor(Vec<u8>),
    /// Initiator's traffic selectors.
    TsI(Vec<TrafficSelector>),
    /// Responder's traffic selectors.
    TsR(Vec<TrafficSelector>),
    /// Configuration.
    Cp(Config),
    /// EAP message, opaque.
    Eap(Vec<u8>),
    /// Encrypted and authenticated (SK): `first` is the type of the first
    /// inner payload; `data` is IV‖ciphertext‖ICV, opaque here.
    Sk {
        /// Type of the first inner payload.
        first: PayloadType,
        /// IV, ciphertext and ICV.
        data: Vec<u8>,
    },
    /// Encrypted fragment (RFC 7383): numbers are 1-based; `first` is
    /// meaningful in fragment 1 only (0 in others).
    Skf {
        /// Fragment number, 1..=total.
        number: u16,
        /// Number of fragments.
        total: u16,
        /// Type of the first inner payload (fragment 1).
        first: PayloadType,
        /// IV, ciphertext and ICV of this fragment.
        data: Vec<u8>,
    },
    /// A payload type this codec does not know; kept so the caller applies
    /// the critical-bit rule (RFC 7296 §2.5).
    Unknown {
        /// Payload type.
        ty: PayloadType,
        /// Critical bit as received.
        critical: bool,
        /// Body as received.
        body: Vec<u8>,
    },
}

/// Types [`Payload::parse`] interprets (and the chain terminator): an
/// `Unknown` payload of one of these would not come back as `Unknown`.
fn is_known(ty: PayloadType) -> bool {
    matches!(ty, PayloadType::NONE | PayloadType::SKF) || (33..=48).contains(&ty.0)
}

/// `data` must not be empty.
fn nonempty(data: &[u8]) -> Result<&[u8]> {
    if data.is_empty() {
        Err(WireError::Malformed)
    } else {
        Ok(data)
    }
}

/// One type byte, three reserved bytes, then data.
fn typed(body: &[u8]) -> Result<(u8, Vec<u8>)> {
    let mut r = Reader::new(body);
    let ty = r.u8()?;
    r.skip(3)?;
    Ok((ty, r.rest().to_vec()))
}

fn nonce(data: &[u8]) -> Result<&[u8]> {
    if NONCE_LEN.contains(&data.len()) {
        Ok(data)
    } else {
        Err(WireError::Malformed)
    }
}

impl Payload {
    /// The payload type this payload is sent as.
    pub fn ty(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke { .. } => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert { .. } => PayloadType::CERT,
            Payload::CertReq { .. } => PayloadType::CERTREQ,
            Payload::Auth { .. } => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Sk { .. } => PayloadType::SK,
            Payload::Skf { .. } => PayloadType::SKF,
            Payload::Unknown { ty, .. } => *ty,
        }
    }

    /// Parses one payload body (`raw.body`) of type `raw.ty`; `Malformed` or
    /// `Truncated` on bad contents (nonce not 16..=256 bytes, inconsistent SA
    /// proposal/transform lengths, counts or numbering, bad TS lengths, KE
    /// without data, …). The critical bit is kept for `Unknown` only; SK and
    /// SKF take their `first` from `raw.next`.
    pub fn parse(raw: &RawPayload<'_>) -> Result<Payload> {
        let body = raw.body;
        Ok(match raw.ty {
            PayloadType::SA => Payload::Sa(sa::parse(body)?),
            PayloadType::KE => {
                let mut r = Reader::new(body);
                let group = r.u16()?;
                r.skip(2)?;
                Payload::Ke {
                    group,
                    data: nonempty(r.rest())?.to_vec(),
                }
            }
            PayloadType::IDI => Payload::IdI(Identification::parse(body)?),
            PayloadType::IDR => Payload::IdR(Identification::parse(body)?),
            PayloadType::CERT | PayloadType::CERTREQ => {
                let (&encoding, data) = body.split_first().ok_or(WireError::Truncated)?;
                let (encoding, data) = (CertEncoding(encoding), data.to_vec());
                if raw.ty == PayloadType::CERT {
                    Payload::Cert { encoding, data }
                } else {
                    Payload::CertReq { encoding, data }
                }
            }
            PayloadType::AUTH => {
                let (method, data) = typed(body)?;
                Payload::Auth {
                    method: AuthMethod(method),
                    data,
                }
            }
            PayloadType::NONCE => Payload::Nonce(nonce(body)?.to_vec()),
            PayloadType::NOTIFY => Payload::Notify(Notify::parse(body)?),
            PayloadType::DELETE => Payload::Delete(Delete::parse(body)?),
            PayloadType::VENDOR => Payload::Vendor(body.to_vec()),
            PayloadType::TSI => Payload::TsI(ts::parse(body)?),
            PayloadType::TSR => Payload::TsR(ts::parse(body)?),
            PayloadType::SK => Payload::Sk {
                first: raw.next,
                data: body.to_vec(),
            },
            PayloadType::CP => Payload::Cp(Config::parse(body)?),
            PayloadType::EAP => Payload::Eap(body.to_vec()),
            PayloadType::SKF => {
                let (number, total, data) = parse_skf(body)?;
                Payload::Skf {
                    number,
                    total,
                    first: raw.next,
                    data: data.to_vec(),
                }
            }
            ty => Payload::Unknown {
                ty,
                critical: raw.critical,
                body: body.to_vec(),
            },
        })
    }

    /// Length of the body when emitted (without the generic header).
    pub fn body_len(&self) -> usize {
        match self {
            Payload::Sa(p) => sa::body_len(p),
            Payload::Ke { data, .. } | Payload::Auth { data, .. } => {
                FIXED_LEN.saturating_add(data.len())
            }
            Payload::IdI(id) | Payload::IdR(id) => id.body_len(),
            Payload::Cert { data, .. } | Payload::CertReq { data, .. } => {
                data.len().saturating_add(1)
            }
            Payload::Notify(n) => n.body_len(),
            Payload::Delete(d) => d.body_len(),
            Payload::TsI(t) | Payload::TsR(t) => ts::body_len(t),
            Payload::Cp(c) => c.body_len(),
            Payload::Skf { data, .. } => skf_body_len(data),
            Payload::Nonce(data)
            | Payload::Vendor(data)
            | Payload::Eap(data)
            | Payload::Sk { data, .. }
            | Payload::Unknown { body: data, .. } => data.len(),
        }
    }

    /// Writes the body into `out` (exactly `body_len` bytes) and returns that
    /// length; `Err(Truncated)` if `out` is too small, `Err(Malformed)` if the
    /// payload is not representable (body over 65531 bytes, > 255 transforms
    /// or selectors, a transform with an unknown attribute, a nonce outside
    /// 16..=256, an `Unknown` of a known type, …).
    pub fn emit_body(&self, out: &mut [u8]) -> Result<usize> {
        let len = self.body_len();
        // The generic header's 16-bit length must hold the body and itself.
        len16(
            len.checked_add(GENERIC_HEADER_LEN)
                .ok_or(WireError::Malformed)?,
        )?;
        let mut w = Writer::new(out.get_mut(..len).ok_or(WireError::Truncated)?);
        match self {
            Payload::Sa(p) => sa::emit(p, &mut w)?,
            Payload::Ke { group, data } => {
                w.u16(*group)?;
                w.u16(0)?;
                w.put(nonempty(data)?)?;
            }
            Payload::IdI(id) | Payload::IdR(id) => id.emit(&mut w)?,
            Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
                w.u8(encoding.0)?;
                w.put(data)?;
            }
            Payload::Auth { method, data } => {
                w.put(&[method.0, 0, 0, 0])?;
                w.put(data)?;
            }
            Payload::Nonce(n) => w.put(nonce(n)?)?,
            Payload::Notify(n) => n.emit(&mut w)?,
            Payload::Delete(d) => d.emit(&mut w)?,
            Payload::TsI(t) | Payload::TsR(t) => ts::emit(t, &mut w)?,
            Payload::Cp(c) => c.emit(&mut w)?,
            Payload::Skf {
                number,
                total,
                data,
                ..
            } => emit_skf(*number, *total, data, &mut w)?,
            Payload::Unknown { ty, body, .. } => {
                if is_known(*ty) {
                    return Err(WireError::Malformed);
                }
                w.put(body)?;
            }
            Payload::Vendor(data) | Payload::Eap(data) | Payload::Sk { data, .. } => w.put(data)?,
        }
        if w.written() != len {
            return Err(WireError::Malformed);
        }
        Ok(len)
    }

    /// The next-payload field this payload forces (SK and SKF name their
    /// first inner payload).
    fn forced_next(&self) -> Option<PayloadType> {
        match self {
            Payload::Sk { first, .. } | Payload::Skf { first, .. } => Some(*first),
            _ => None,
        }
    }

    /// Only an `Unknown` payload carries a critical bit to send back out.
    fn critical(&self) -> bool {
        matches!(self, Payload::Unknown { critical: true, .. })
    }
}

/// Parses a whole chain into payloads (SK/SKF included as the last element
/// when present).
pub fn parse_chain(first: PayloadType, buf: &[u8]) -> Result<Vec<Payload>> {
    PayloadIter::new(first, buf)
        .map(|raw| raw.and_then(|raw| Payload::parse(&raw)))
        .collect()
}

/// Bytes [`emit_chain`] would write.
pub fn chain_len(payloads: &[Payload]) -> usize {
    payloads.iter().fold(0usize, |n, p| {
        n.saturating_add(GENERIC_HEADER_LEN)
            .saturating_add(p.body_len())
    })
}

/// Emits `payloads` as a chain (generic headers, next fields, the last one's
/// next = NONE) into `out`; returns (type of the first payload, bytes
/// written). For Sk/Skf the `next` field written is their `first`; they must
/// be last (`Err(Malformed)` otherwise). An empty list writes nothing and
/// returns `(NONE, 0)`.
pub fn emit_chain(payloads: &[Payload], out: &mut [u8]) -> Result<(PayloadType, usize)> {
    let mut w = Writer::new(out);
    let mut iter = payloads.iter().peekable();
    while let Some(p) = iter.next() {
        let following = iter.peek().map(|n| n.ty());
        let next = match (p.forced_next(), following) {
            (Some(_), Some(_)) => return Err(WireError::Malformed),
            (Some(first), None) => first,
            (None, following) => following.unwrap_or(PayloadType::NONE),
        };
        let total = GENERIC_HEADER_LEN
            .checked_add(p.body_len())
            .ok_or(WireError::Malformed)?;
        let slot = w.slot(total)?;
        let (head, body) = slot
            .split_at_mut_checked(GENERIC_HEADER_LEN)
            .ok_or(WireError::Truncated)?;
        emit_generic_header(head, next, p.critical(), len16(total)?)?;
        p.emit_body(body)?;
    }
    let first = payloads.first().map_or(PayloadType::NONE, Payload::ty);
    Ok((first, w.written()))
}

/// Convenience for a whole plaintext message (IKE_SA_INIT, or anything
/// without SK): `header` with its `next_payload` and `length` replaced by the
/// right values, then the chain. Returns the length.
pub fn emit_message(header: &HeaderRepr, payloads: &[Payload], out: &mut [u8]) -> Result<usize> {
    let (head, rest) = out
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(WireError::Truncated)?;
    let (first, n) = emit_chain(payloads, rest)?;
    let total = HEADER_LEN.checked_add(n).ok_or(WireError::Malformed)?;
    HeaderRepr {
        next_payload: first,
        length: u32::try_from(total).map_err(|_| WireError::Malformed)?,
        ..*header
    }
    .emit(head)?;
    Ok(total)
}
