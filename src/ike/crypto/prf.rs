//! PRF transforms (HMAC-SHA2, RFC 4868) and prf+ (RFC 7296 §2.13).

use super::CryptoError;
use ring::hmac;

/// PRF transforms (IANA IKEv2 transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7).
    HmacSha512,
}

impl Prf {
    /// The PRF for an IANA transform ID (5, 6, 7).
    pub fn from_id(id: u16) -> Option<Prf> {
        match id {
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            7 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// strongSwan's proposal keyword (`prfsha256`).
    pub fn name(self) -> &'static str {
        match self {
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
            Prf::HmacSha512 => "prfsha512",
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    /// Output length in bytes, also the preferred key length (RFC 4868 §2.1.2).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    pub(crate) fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// prf(key, data[0] | data[1] | ...).
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_alg(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for part in data {
            ctx.update(part);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// prf+ of RFC 7296 §2.13: T1 | T2 | ... truncated to `len`, with
    /// Tn = prf(K, Tn-1 | S | n). Err(Unsupported) if len > 255 * output_len
    /// (the one-byte counter would wrap).
    pub fn plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Vec<u8>, CryptoError> {
        let max = self.output_len().saturating_mul(255);
        if len > max {
            return Err(CryptoError::Unsupported);
        }
        let key = hmac::Key::new(self.hmac_alg(), key);
        let mut out = Vec::with_capacity(len.saturating_add(self.output_len()));
        let mut prev: Option<hmac::Tag> = None;
        let mut counter: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&key);
            if let Some(t) = &prev {
                ctx.update(t.as_ref());
            }
            for part in seed {
                ctx.update(part);
            }
            ctx.update(&[counter]);
            let t = ctx.sign();
            out.extend_from_slice(t.as_ref());
            prev = Some(t);
            // At most 255 rounds by the check above, so this never wraps.
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}
