//! One ESP security association: AES-GCM with a 16-byte ICV (RFC 4106),
//! 64-bit sequence numbers (ESN optional, RFC 4303 §2.2.1), anti-replay,
//! padding and next header. Seals and opens into caller buffers; no I/O.

use super::replay::{ReplayError, ReplayWindow};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

/// ESP header: SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Explicit per-packet IV of RFC 4106.
pub const IV_LEN: usize = 8;
/// AES-GCM integrity check value length used here.
pub const ICV_LEN: usize = 16;
/// Bytes ESP adds around a payload, excluding padding: header, IV, pad length, next header, ICV.
pub const OVERHEAD: usize = HEADER_LEN + IV_LEN + 2 + ICV_LEN;

/// IP protocol number of an inner IPv4 packet (tunnel mode).
pub const NEXT_IPV4: u8 = 4;

/// Why sealing or opening failed. Each maps to a counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Packet shorter than header + IV + ICV + trailer.
    #[error("truncated")]
    Truncated,
    /// SPI is not this SA's.
    #[error("wrong spi")]
    WrongSpi,
    /// Sequence number already seen.
    #[error("replay")]
    Replay,
    /// Sequence number behind the window.
    #[error("too old")]
    TooOld,
    /// ICV did not verify (tampered or wrong key).
    #[error("authentication failed")]
    AuthFailed,
    /// Padding length or contents invalid after decryption.
    #[error("bad padding")]
    BadPadding,
    /// Caller's output buffer is too small.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// Sequence number space exhausted: the SA must be rekeyed (RFC 4303 §3.3.3).
    #[error("sequence number exhausted")]
    SequenceExhausted,
    /// Key length is neither 16 nor 32 bytes.
    #[error("key must be 16 or 32 bytes")]
    BadKey,
}

impl EspError {
    /// Prometheus label.
    pub fn label(self) -> &'static str {
        match self {
            EspError::Truncated => "truncated",
            EspError::WrongSpi => "unknown_spi",
            EspError::Replay => "replay",
            EspError::TooOld => "replay_too_old",
            EspError::AuthFailed => "auth_failed",
            EspError::BadPadding => "bad_padding",
            EspError::BufferTooSmall => "buffer_too_small",
            EspError::SequenceExhausted => "sequence_exhausted",
            EspError::BadKey => "bad_key",
        }
    }
}

/// Keys and parameters of one direction of an SA.
pub struct SaParams<'a> {
    /// SPI (the receiver's choice).
    pub spi: u32,
    /// AES key, 16 or 32 bytes.
    pub key: &'a [u8],
    /// 4-byte salt (RFC 4106 §8.1: the last 4 bytes of the keying material).
    pub salt: [u8; 4],
    /// Extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window size (inbound; at least 64).
    pub replay_window: u32,
}

/// One direction of an ESP SA.
pub struct Sa {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; 4],
    esn: bool,
    /// Last sequence number sent.
    tx_seq: u64,
    replay: ReplayWindow,
}

/// The 8 or 12 AAD bytes, without allocation.
struct AadBytes {
    buf: [u8; 12],
    len: usize,
}

impl AsRef<[u8]> for AadBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What `open` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Length of the inner payload written at the start of the output buffer.
    pub len: usize,
    /// Next-header value (4 = IPv4 in tunnel mode).
    pub next_header: u8,
    /// Full 64-bit sequence number of the packet.
    pub seq: u64,
}

impl Sa {
    /// Builds an SA; `BadKey` for a key that is not AES-128 or AES-256.
    pub fn new(p: &SaParams) -> Result<Self, EspError> {
        let alg = match p.key.len() {
            16 => &AES_128_GCM,
            32 => &AES_256_GCM,
            _ => return Err(EspError::BadKey),
        };
        let key = UnboundKey::new(alg, p.key).map_err(|_| EspError::BadKey)?;
        Ok(Sa {
            spi: p.spi,
            key: LessSafeKey::new(key),
            salt: p.salt,
            esn: p.esn,
            tx_seq: 0,
            replay: ReplayWindow::new(p.replay_window),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Last sequence number sent.
    pub fn tx_seq(&self) -> u64 {
        self.tx_seq
    }

    /// Sets the send counter (tests of counter exhaustion and ESN wrap).
    #[cfg(test)]
    pub(crate) fn set_tx_seq_for_test(&mut self, seq: u64) {
        self.tx_seq = seq;
    }

    /// Highest sequence number received.
    pub fn rx_seq(&self) -> u64 {
        self.replay.top()
    }

    fn nonce(&self, iv: [u8; IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }

    /// AAD: SPI + seq (low 32), or SPI + seq high + seq low with ESN (RFC 4106 §5).
    fn aad(&self, seq: u64) -> Aad<AadBytes> {
        let mut buf = [0u8; 12];
        buf[..4].copy_from_slice(&self.spi.to_be_bytes());
        let len = if self.esn {
            buf[4..12].copy_from_slice(&seq.to_be_bytes());
            12
        } else {
            buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            8
        };
        Aad::from(AadBytes { buf, len })
    }

    /// Size of the sealed packet for a payload of `len` bytes.
    pub fn sealed_len(len: usize) -> usize {
        let padded = (len + 2).div_ceil(4) * 4;
        HEADER_LEN + IV_LEN + padded + ICV_LEN
    }

    /// Encrypts `payload` (with `next_header`) into `out` as a complete ESP
    /// packet (header, IV, ciphertext, ICV). Returns its length.
    pub fn seal(
        &mut self,
        payload: &[u8],
        next_header: u8,
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let total = Self::sealed_len(payload.len());
        let out = out.get_mut(..total).ok_or(EspError::BufferTooSmall)?;
        let max = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if self.tx_seq >= max {
            return Err(EspError::SequenceExhausted);
        }
        self.tx_seq += 1;
        let seq = self.tx_seq;
        let iv = seq.to_be_bytes();
        out[..4].copy_from_slice(&self.spi.to_be_bytes());
        out[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        out[8..16].copy_from_slice(&iv);
        let (_, rest) = out.split_at_mut(HEADER_LEN + IV_LEN);
        let (body, tag_out) = rest.split_at_mut(rest.len() - ICV_LEN);
        let pad = body.len() - payload.len() - 2;
        body[..payload.len()].copy_from_slice(payload);
        for (i, b) in body[payload.len()..payload.len() + pad]
            .iter_mut()
            .enumerate()
        {
            *b = (i + 1) as u8; // RFC 4303 §2.4 default padding 1, 2, 3, ...
        }
        body[payload.len() + pad] = pad as u8;
        body[payload.len() + pad + 1] = next_header;
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), self.aad(seq), body)
            .map_err(|_| EspError::AuthFailed)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(total)
    }

    /// Authenticates and decrypts the ESP packet `pkt` (starting at the SPI)
    /// into `out`; the inner payload lands at `out[..len]`.
    pub fn open(&mut self, pkt: &[u8], out: &mut [u8]) -> Result<Opened, EspError> {
        if pkt.len() < HEADER_LEN + IV_LEN + 2 + ICV_LEN {
            return Err(EspError::Truncated);
        }
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.spi {
            return Err(EspError::WrongSpi);
        }
        let low = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let seq = if self.esn {
            self.replay.infer_esn(low)
        } else {
            u64::from(low)
        };
        self.replay.check(seq).map_err(|e| match e {
            ReplayError::Duplicate => EspError::Replay,
            ReplayError::TooOld => EspError::TooOld,
        })?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&pkt[8..16]);
        let ct = &pkt[HEADER_LEN + IV_LEN..];
        let buf = out.get_mut(..ct.len()).ok_or(EspError::BufferTooSmall)?;
        buf.copy_from_slice(ct);
        let plain = self
            .key
            .open_in_place(self.nonce(iv), self.aad(seq), buf)
            .map_err(|_| EspError::AuthFailed)?;
        let plen = plain.len();
        let (pad_len, next_header) = match plain.get(plen.wrapping_sub(2)..) {
            Some([p, nh]) => (usize::from(*p), *nh),
            _ => return Err(EspError::BadPadding),
        };
        let len = plen.checked_sub(2 + pad_len).ok_or(EspError::BadPadding)?;
        let padding = plain.get(len..plen - 2).ok_or(EspError::BadPadding)?;
        if padding
            .iter()
            .enumerate()
            .any(|(i, b)| usize::from(*b) != i + 1)
        {
            return Err(EspError::BadPadding);
        }
        // Only an authenticated packet moves the window (RFC 4303 §3.4.3).
        self.replay.accept(seq);
        Ok(Opened {
            len,
            next_header,
            seq,
        })
    }
}
