//! Protected IKE messages: the SK payload (RFC 7296 §3.14), fragments in
//! SKF payloads (RFC 7383) and their reassembly. Plaintext payloads are
//! emitted and parsed by `wire::ike`; the cipher is `crypto::SkCipher`.

use super::crypto::{CryptoError, SkCipher};
use crate::wire::ike::{
    chain_len, emit_chain, emit_generic_header, parse_chain, Header, HeaderRepr, Payload,
    PayloadIter, PayloadType, GENERIC_HEADER_LEN, HEADER_LEN,
};
use ring::rand::SecureRandom;

/// Bytes of the SKF fragment number and total fields.
const SKF_FIELDS: usize = 4;
/// Most fragments accepted for one message (RFC 7383 leaves it to us).
pub const MAX_FRAGMENTS: u16 = 32;
/// Most plaintext bytes reassembled for one message.
pub const MAX_REASSEMBLED: usize = 64 * 1024;

/// Why a protected message could not be built or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectError {
    /// Not a well-formed message or payload chain.
    Malformed,
    /// No SK or SKF payload where one is required.
    NotEncrypted,
    /// Integrity check failed (wrong keys or tampered).
    Integrity,
    /// Fragment numbering inconsistent or over the limits.
    Fragment,
    /// Encryption failed (random source) or the message is too large.
    Internal,
}

impl From<CryptoError> for ProtectError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Integrity | CryptoError::Padding => ProtectError::Integrity,
            CryptoError::Truncated => ProtectError::Malformed,
            _ => ProtectError::Internal,
        }
    }
}

/// Builds one protected message (header `hdr` with next payload and length
/// filled in here) or, when it exceeds `max_len` and `fragment` is allowed,
/// its SKF fragments. `iv` supplies unique IV counters.
pub fn seal(
    hdr: HeaderRepr,
    payloads: &[Payload],
    cipher: &SkCipher,
    iv: &mut u64,
    rng: &dyn SecureRandom,
    max_len: Option<usize>,
) -> Result<Vec<Vec<u8>>, ProtectError> {
    let mut plain = vec![0u8; chain_len(payloads)];
    let (first, n) = emit_chain(payloads, &mut plain).map_err(|_| ProtectError::Malformed)?;
    plain.truncate(n);
    let whole = HEADER_LEN + GENERIC_HEADER_LEN + cipher.sealed_len(plain.len());
    match max_len {
        Some(max) if whole > max => fragments(hdr, first, &plain, cipher, iv, rng, max),
        _ => Ok(vec![seal_one(hdr, first, &plain, cipher, iv, rng, None)?]),
    }
}

/// One SK message, or one SKF fragment `(number, total)`.
fn seal_one(
    mut hdr: HeaderRepr,
    first: PayloadType,
    plain: &[u8],
    cipher: &SkCipher,
    iv: &mut u64,
    rng: &dyn SecureRandom,
    frag: Option<(u16, u16)>,
) -> Result<Vec<u8>, ProtectError> {
    let fields = if frag.is_some() { SKF_FIELDS } else { 0 };
    let body = cipher.sealed_len(plain.len());
    let payload_len = GENERIC_HEADER_LEN + fields + body;
    let total = HEADER_LEN + payload_len;
    hdr.next_payload = if frag.is_some() {
        PayloadType::SKF
    } else {
        PayloadType::SK
    };
    hdr.length = u32::try_from(total).map_err(|_| ProtectError::Internal)?;
    let mut out = vec![0u8; HEADER_LEN + GENERIC_HEADER_LEN + fields];
    hdr.emit(&mut out).map_err(|_| ProtectError::Internal)?;
    let next = match frag {
        Some((n, _)) if n != 1 => PayloadType::NONE,
        _ => first,
    };
    let plen = u16::try_from(payload_len).map_err(|_| ProtectError::Internal)?;
    emit_generic_header(
        out.get_mut(HEADER_LEN..).ok_or(ProtectError::Internal)?,
        next,
        false,
        plen,
    )
    .map_err(|_| ProtectError::Internal)?;
    if let Some((n, t)) = frag {
        let at = HEADER_LEN + GENERIC_HEADER_LEN;
        if let Some(f) = out.get_mut(at..at + SKF_FIELDS) {
            f[..2].copy_from_slice(&n.to_be_bytes());
            f[2..].copy_from_slice(&t.to_be_bytes());
        }
    }
    *iv = iv.wrapping_add(1);
    let sealed = cipher.seal(&out, plain, *iv, rng)?;
    if sealed.len() != body {
        return Err(ProtectError::Internal);
    }
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Splits `plain` into SKF fragments of at most `max` bytes each.
fn fragments(
    hdr: HeaderRepr,
    first: PayloadType,
    plain: &[u8],
    cipher: &SkCipher,
    iv: &mut u64,
    rng: &dyn SecureRandom,
    max: usize,
) -> Result<Vec<Vec<u8>>, ProtectError> {
    let fixed = HEADER_LEN + GENERIC_HEADER_LEN + SKF_FIELDS;
    let mut chunk = max.saturating_sub(fixed);
    while chunk > 0 && fixed + cipher.sealed_len(chunk) > max {
        chunk -= 1;
    }
    if chunk == 0 {
        return Err(ProtectError::Internal);
    }
    let parts: Vec<&[u8]> = plain.chunks(chunk).collect();
    let total = u16::try_from(parts.len())
        .ok()
        .filter(|t| *t <= MAX_FRAGMENTS)
        .ok_or(ProtectError::Internal)?;
    parts
        .iter()
        .zip(1u16..)
        .map(|(p, n)| seal_one(hdr, first, p, cipher, iv, rng, Some((n, total))))
        .collect()
}

/// Where the first SK/SKF payload's body starts in `msg`, and its raw view.
fn encrypted_payload(
    msg: &[u8],
    first: PayloadType,
) -> Result<(usize, PayloadType, bool, &[u8]), ProtectError> {
    let chain = msg.get(HEADER_LEN..).ok_or(ProtectError::Malformed)?;
    for raw in PayloadIter::new(first, chain) {
        let raw = raw.map_err(|_| ProtectError::Malformed)?;
        if raw.ty == PayloadType::SK || raw.ty == PayloadType::SKF {
            // The body is a subslice of `msg`: its offset is the AAD length.
            let offset = (raw.body.as_ptr() as usize)
                .checked_sub(msg.as_ptr() as usize)
                .ok_or(ProtectError::Malformed)?;
            return Ok((offset, raw.next, raw.ty == PayloadType::SKF, raw.body));
        }
    }
    Err(ProtectError::NotEncrypted)
}

/// What opening one received message gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// The whole message's inner payloads.
    Complete(Vec<Payload>),
    /// A fragment was stored; more are needed.
    Partial,
}

/// Fragments of one message being reassembled.
#[derive(Debug)]
pub struct Reassembly {
    message_id: Option<u32>,
    total: u16,
    first: PayloadType,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly {
            message_id: None,
            total: 0,
            first: PayloadType::NONE,
            parts: Vec::new(),
            bytes: 0,
        }
    }
}

impl Reassembly {
    /// Drops any partial message.
    pub fn clear(&mut self) {
        *self = Reassembly::default();
    }

    fn add(
        &mut self,
        message_id: u32,
        number: u16,
        total: u16,
        first: PayloadType,
        plain: Vec<u8>,
    ) -> Result<Option<(PayloadType, Vec<u8>)>, ProtectError> {
        if total == 0 || number == 0 || number > total || total > MAX_FRAGMENTS {
            return Err(ProtectError::Fragment);
        }
        if self.message_id != Some(message_id) || self.total != total {
            // RFC 7383 §2.6.1: a different total restarts reassembly.
            self.clear();
            self.message_id = Some(message_id);
            self.total = total;
            self.parts = vec![None; usize::from(total)];
        }
        if number == 1 {
            self.first = first;
        }
        let slot = self
            .parts
            .get_mut(usize::from(number) - 1)
            .ok_or(ProtectError::Fragment)?;
        if slot.is_some() {
            return Ok(None); // duplicate fragment
        }
        self.bytes = self.bytes.saturating_add(plain.len());
        if self.bytes > MAX_REASSEMBLED {
            self.clear();
            return Err(ProtectError::Fragment);
        }
        *slot = Some(plain);
        if self.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let first = self.first;
        let whole = self.parts.iter().flatten().flatten().copied().collect();
        self.clear();
        Ok(Some((first, whole)))
    }
}

/// Verifies and decrypts a received protected message (whole or one
/// fragment); a complete message is returned as its inner payloads.
pub fn open<T: AsRef<[u8]>>(
    hdr: &Header<T>,
    cipher: &SkCipher,
    reasm: &mut Reassembly,
) -> Result<Opened, ProtectError> {
    let msg = hdr.message();
    let (offset, next, is_frag, body) = encrypted_payload(msg, hdr.next_payload())?;
    if !is_frag {
        let aad = msg.get(..offset).ok_or(ProtectError::Malformed)?;
        let plain = cipher.open(aad, body)?;
        return parse_chain(next, &plain)
            .map(Opened::Complete)
            .map_err(|_| ProtectError::Malformed);
    }
    let (fields, enc) = body
        .split_at_checked(SKF_FIELDS)
        .ok_or(ProtectError::Malformed)?;
    let number = u16::from_be_bytes([fields[0], fields[1]]);
    let total = u16::from_be_bytes([fields[2], fields[3]]);
    let aad = msg
        .get(..offset + SKF_FIELDS)
        .ok_or(ProtectError::Malformed)?;
    let plain = cipher.open(aad, enc)?;
    match reasm.add(hdr.message_id(), number, total, next, plain)? {
        Some((first, whole)) => parse_chain(first, &whole)
            .map(Opened::Complete)
            .map_err(|_| ProtectError::Malformed),
        None => Ok(Opened::Partial),
    }
}
