//! One ESP security association (RFC 4303): AES-GCM with a 16-byte ICV
//! (RFC 4106), or AES-CBC (RFC 3602) with truncated HMAC-SHA2 (RFC 4868);
//! 64-bit sequence numbers (ESN optional, RFC 4303 §2.2.1), anti-replay,
//! padding and next header. Seals and opens into caller buffers; no I/O.

use super::replay::{ReplayError, ReplayWindow};
use crate::integrity::verify_truncated_hmac;
use aes::{Aes128, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// ESP header: SPI + sequence number.
pub const HEADER_LEN: usize = 8;
/// Explicit per-packet IV of AES-GCM (RFC 4106).
pub const IV_LEN: usize = 8;
/// AES-GCM integrity check value length used here.
pub const ICV_LEN: usize = 16;
/// Bytes AES-GCM ESP adds around a payload, excluding padding: header, IV,
/// pad length, next header, ICV.
pub const OVERHEAD: usize = HEADER_LEN + IV_LEN + 2 + ICV_LEN;
/// AES block size: the CBC IV length (RFC 3602 §3) and its padding unit.
pub const CBC_IV_LEN: usize = 16;
/// Longest ICV of any transform (HMAC-SHA-512-256).
pub const MAX_ICV_LEN: usize = 32;
/// Most bytes any transform adds around a payload, padding included: header,
/// CBC IV, up to 15 padding bytes, pad length, next header, longest ICV.
/// Buffers of `payload + MAX_OVERHEAD` fit every SA ([`Sa::max_sealed_len`]).
pub const MAX_OVERHEAD: usize = HEADER_LEN + CBC_IV_LEN + (CBC_IV_LEN - 1) + 2 + MAX_ICV_LEN;

/// IP protocol number of an inner IPv4 packet (tunnel mode).
pub const NEXT_IPV4: u8 = 4;

/// Why sealing or opening failed. Each maps to a counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Packet shorter than header + IV + ICV + trailer (one cipher block for CBC).
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
    /// Key length is neither 16 nor 32 bytes, or the HMAC key is not the
    /// hash's output length (RFC 4868 §2.1.1).
    #[error("key must be 16 or 32 bytes (HMAC key: the hash length)")]
    BadKey,
    /// The system random generator failed while seeding the CBC IV generator.
    #[error("random generator failed")]
    Rng,
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
            EspError::Rng => "rng_failed",
        }
    }
}

/// HMAC-SHA2 integrity for AES-CBC (RFC 4868): the ICV is the HMAC truncated
/// to half the hash length, keyed with a key of the full hash length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hmac {
    /// AUTH_HMAC_SHA2_256_128: 32-byte key, 16-byte ICV.
    Sha256_128,
    /// AUTH_HMAC_SHA2_384_192: 48-byte key, 24-byte ICV.
    Sha384_192,
    /// AUTH_HMAC_SHA2_512_256: 64-byte key, 32-byte ICV.
    Sha512_256,
}

impl Hmac {
    /// Key length in bytes (the hash output length, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Hmac::Sha256_128 => 32,
            Hmac::Sha384_192 => 48,
            Hmac::Sha512_256 => 64,
        }
    }

    /// Truncated ICV length in bytes.
    pub fn icv_len(self) -> usize {
        self.key_len() / 2
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Hmac::Sha256_128 => hmac::HMAC_SHA256,
            Hmac::Sha384_192 => hmac::HMAC_SHA384,
            Hmac::Sha512_256 => hmac::HMAC_SHA512,
        }
    }
}

/// The cryptographic transform of an SA and its keys.
#[derive(Clone, Copy)]
pub enum Transform<'a> {
    /// AES-GCM with a 16-byte ICV (RFC 4106): key 16 or 32 bytes, 4-byte salt
    /// (RFC 4106 §8.1: the last 4 bytes of the keying material).
    AesGcm {
        /// AES key, 16 or 32 bytes.
        key: &'a [u8],
        /// Salt of the nonce.
        salt: [u8; 4],
    },
    /// AES-CBC (RFC 3602: key 16 or 32 bytes, random 16-byte IV per packet)
    /// with HMAC-SHA2 (RFC 4868): SHA-256-128, SHA-384-192 or SHA-512-256.
    AesCbcHmac {
        /// AES key, 16 or 32 bytes.
        key: &'a [u8],
        /// Integrity algorithm.
        hmac: Hmac,
        /// HMAC key, [`Hmac::key_len`] bytes.
        hmac_key: &'a [u8],
    },
}

/// Keys and parameters of one direction of an SA.
pub struct SaParams<'a> {
    /// SPI (the receiver's choice).
    pub spi: u32,
    /// Transform and keys.
    pub transform: Transform<'a>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window size (inbound; at least 64).
    pub replay_window: u32,
}

/// One direction of an ESP SA.
pub struct Sa {
    spi: u32,
    cipher: Cipher,
    esn: bool,
    /// Last sequence number sent.
    tx_seq: u64,
    replay: ReplayWindow,
}

// GCM stays inline: the hot path takes no extra indirection, as before CBC
// existed; the CBC state is boxed instead.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Gcm {
        key: LessSafeKey,
        salt: [u8; 4],
    },
    /// Boxed: the AES key schedules, HMAC states and IV generator are large,
    /// and the GCM SAs need not carry their size.
    Cbc(Box<CbcHmac>),
}

/// AES-CBC + HMAC state of one SA.
struct CbcHmac {
    aes: AesKey,
    mac: hmac::Key,
    icv_len: usize,
    ivs: IvSource,
}

/// Expanded AES key, kept for the SA's lifetime (no key schedule per packet).
// Lives in the boxed `CbcHmac`, one per SA: the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum AesKey {
    A128(Aes128),
    A256(Aes256),
}

/// Per-packet CBC IVs.
///
/// RFC 3602 §2.1 requires IVs an observer cannot predict (a predictable IV
/// allows chosen-plaintext attacks on CBC). Each SA owns a ChaCha12 CSPRNG
/// (`rand`'s `StdRng`) seeded once with 32 bytes from the system generator
/// (ring's `SystemRandom`, or the caller's [`SecureRandom`]): its output is
/// unpredictable without the seed, no system call or lock is taken per
/// packet, and no SA shares a generator. The alternative some stacks use,
/// encrypting the sequence number under a separately derived IV key, would
/// need a key derivation that ESP's keying material does not define and a
/// second AES key schedule per SA.
struct IvSource {
    rng: StdRng,
    /// Test hook: the next IV to use instead of a random one.
    #[cfg(test)]
    forced: Option<[u8; CBC_IV_LEN]>,
}

impl IvSource {
    fn new(rng: &dyn SecureRandom) -> Result<IvSource, EspError> {
        let mut seed = [0u8; 32];
        rng.fill(&mut seed).map_err(|_| EspError::Rng)?;
        Ok(IvSource {
            rng: StdRng::from_seed(seed),
            #[cfg(test)]
            forced: None,
        })
    }

    fn next(&mut self) -> [u8; CBC_IV_LEN] {
        #[cfg(test)]
        if let Some(iv) = self.forced.take() {
            return iv;
        }
        let mut iv = [0u8; CBC_IV_LEN];
        self.rng.fill_bytes(&mut iv);
        iv
    }
}

impl AesKey {
    fn new(key: &[u8]) -> Result<AesKey, EspError> {
        match key.len() {
            16 => Aes128::new_from_slice(key).map(AesKey::A128),
            32 => Aes256::new_from_slice(key).map(AesKey::A256),
            _ => return Err(EspError::BadKey),
        }
        .map_err(|_| EspError::BadKey)
    }

    /// CBC-encrypts whole blocks in place.
    fn encrypt(&self, iv: &[u8; CBC_IV_LEN], buf: &mut [u8]) -> Result<(), EspError> {
        let n = buf.len();
        let r = match self {
            AesKey::A128(k) => cbc::Encryptor::<&Aes128>::inner_iv_init(k, iv.into())
                .encrypt_padded_mut::<NoPadding>(buf, n)
                .map(|_| ()),
            AesKey::A256(k) => cbc::Encryptor::<&Aes256>::inner_iv_init(k, iv.into())
                .encrypt_padded_mut::<NoPadding>(buf, n)
                .map(|_| ()),
        };
        // Cannot fail: `buf` is whole blocks by construction.
        r.map_err(|_| EspError::BadPadding)
    }

    /// CBC-decrypts the whole blocks of `ct` into the start of `out`.
    fn decrypt(&self, iv: &[u8; CBC_IV_LEN], ct: &[u8], out: &mut [u8]) -> Result<(), EspError> {
        let r = match self {
            AesKey::A128(k) => cbc::Decryptor::<&Aes128>::inner_iv_init(k, iv.into())
                .decrypt_padded_b2b_mut::<NoPadding>(ct, out)
                .map(|_| ()),
            AesKey::A256(k) => cbc::Decryptor::<&Aes256>::inner_iv_init(k, iv.into())
                .decrypt_padded_b2b_mut::<NoPadding>(ct, out)
                .map(|_| ()),
        };
        // Fails only for a partial block, which the caller has excluded.
        r.map_err(|_| EspError::BadPadding)
    }
}

impl CbcHmac {
    /// Writes IV, ciphertext and ICV after the header already in `out`
    /// (exactly the sealed length).
    fn seal(
        &mut self,
        esn: bool,
        seq: u64,
        payload: &[u8],
        next_header: u8,
        out: &mut [u8],
    ) -> Result<(), EspError> {
        let iv = self.ivs.next();
        let signed_len = out
            .len()
            .checked_sub(self.icv_len)
            .ok_or(EspError::BufferTooSmall)?;
        let (signed, icv_out) = out.split_at_mut(signed_len);
        let (head, body) = signed
            .split_at_mut_checked(HEADER_LEN + CBC_IV_LEN)
            .ok_or(EspError::BufferTooSmall)?;
        head.get_mut(HEADER_LEN..)
            .ok_or(EspError::BufferTooSmall)?
            .copy_from_slice(&iv);
        write_plaintext(body, payload, next_header)?;
        self.aes.encrypt(&iv, body)?;
        // RFC 4303 §2.2.1 / Appendix B: with ESN the high 32 bits are
        // authenticated after the payload, but not sent.
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(signed);
        if esn {
            ctx.update(&((seq >> 32) as u32).to_be_bytes());
        }
        let tag = ctx.sign();
        let icv = tag
            .as_ref()
            .get(..icv_out.len())
            .ok_or(EspError::BufferTooSmall)?;
        icv_out.copy_from_slice(icv);
        Ok(())
    }

    /// Verifies the ICV, then decrypts into `out`; returns the plaintext length.
    fn open(&self, esn: bool, seq: u64, pkt: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
        let signed_len = pkt
            .len()
            .checked_sub(self.icv_len)
            .ok_or(EspError::Truncated)?;
        let (signed, icv) = pkt
            .split_at_checked(signed_len)
            .ok_or(EspError::Truncated)?;
        let iv: &[u8; CBC_IV_LEN] = signed
            .get(HEADER_LEN..)
            .and_then(|s| s.first_chunk())
            .ok_or(EspError::Truncated)?;
        let ct = signed
            .get(HEADER_LEN + CBC_IV_LEN..)
            .ok_or(EspError::Truncated)?;
        let buf = out.get_mut(..ct.len()).ok_or(EspError::BufferTooSmall)?;
        let high = ((seq >> 32) as u32).to_be_bytes();
        let parts: [&[u8]; 2] = [signed, &high];
        let parts = if esn { &parts[..] } else { &parts[..1] };
        // The ICV is checked before anything is decrypted (RFC 4303 §3.4.4.1),
        // in constant time.
        verify_truncated_hmac(&self.mac, parts, icv).map_err(|_| EspError::AuthFailed)?;
        if ct.is_empty() || !ct.len().is_multiple_of(CBC_IV_LEN) {
            // Authenticated, but the sender did not pad to whole blocks.
            return Err(EspError::BadPadding);
        }
        self.aes.decrypt(iv, ct, buf)?;
        Ok(ct.len())
    }
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

/// Payload, RFC 4303 §2.4 default padding (1, 2, 3, ...), pad length and
/// next header, filling `body` exactly.
#[inline]
fn write_plaintext(body: &mut [u8], payload: &[u8], next_header: u8) -> Result<(), EspError> {
    let (data, tail) = body
        .split_at_mut_checked(payload.len())
        .ok_or(EspError::BufferTooSmall)?;
    data.copy_from_slice(payload);
    let (trailer, padding) = tail
        .split_last_chunk_mut::<2>()
        .map(|(p, t)| (t, p))
        .ok_or(EspError::BufferTooSmall)?;
    for (i, b) in padding.iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    *trailer = [
        u8::try_from(padding.len()).map_err(|_| EspError::BadPadding)?,
        next_header,
    ];
    Ok(())
}

/// Checks the trailer of a decrypted payload; returns the inner length and
/// the next header.
#[inline]
fn read_trailer(plain: &[u8]) -> Result<(usize, u8), EspError> {
    let (rest, [pad_len, next_header]) =
        plain.split_last_chunk::<2>().ok_or(EspError::BadPadding)?;
    let len = rest
        .len()
        .checked_sub(usize::from(*pad_len))
        .ok_or(EspError::BadPadding)?;
    let padding = rest.get(len..).ok_or(EspError::BadPadding)?;
    if padding
        .iter()
        .enumerate()
        .any(|(i, b)| usize::from(*b) != i + 1)
    {
        return Err(EspError::BadPadding);
    }
    Ok((len, *next_header))
}

/// Payload plus pad length and next header, rounded up to `block`.
fn padded_len(len: usize, block: usize) -> usize {
    len.saturating_add(2).div_ceil(block).saturating_mul(block)
}

impl Sa {
    /// Builds an SA; `BadKey` for an AES key that is not AES-128 or AES-256 or
    /// an HMAC key of the wrong length. A CBC SA seeds its IV generator from
    /// the system random generator.
    pub fn new(p: &SaParams) -> Result<Self, EspError> {
        Self::with_rng(p, &SystemRandom::new())
    }

    /// Like [`Sa::new`], seeding the CBC IV generator from `rng` (unused for
    /// GCM, whose IV is the sequence number).
    pub fn with_rng(p: &SaParams, rng: &dyn SecureRandom) -> Result<Self, EspError> {
        let cipher = match p.transform {
            Transform::AesGcm { key, salt } => {
                let alg = match key.len() {
                    16 => &AES_128_GCM,
                    32 => &AES_256_GCM,
                    _ => return Err(EspError::BadKey),
                };
                let key = UnboundKey::new(alg, key).map_err(|_| EspError::BadKey)?;
                Cipher::Gcm {
                    key: LessSafeKey::new(key),
                    salt,
                }
            }
            Transform::AesCbcHmac {
                key,
                hmac,
                hmac_key,
            } => {
                if hmac_key.len() != hmac.key_len() {
                    return Err(EspError::BadKey);
                }
                Cipher::Cbc(Box::new(CbcHmac {
                    aes: AesKey::new(key)?,
                    mac: hmac::Key::new(hmac.algorithm(), hmac_key),
                    icv_len: hmac.icv_len(),
                    ivs: IvSource::new(rng)?,
                }))
            }
        };
        Ok(Sa {
            spi: p.spi,
            cipher,
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

    /// Makes the next CBC packet use `iv` (byte-exact vectors); no-op for GCM.
    #[cfg(test)]
    pub(crate) fn set_next_iv_for_test(&mut self, iv: [u8; CBC_IV_LEN]) {
        if let Cipher::Cbc(c) = &mut self.cipher {
            c.ivs.forced = Some(iv);
        }
    }

    /// Highest sequence number received.
    pub fn rx_seq(&self) -> u64 {
        self.replay.top()
    }

    fn nonce(salt: &[u8; 4], iv: [u8; IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(salt);
        n[4..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }

    /// AAD: SPI + seq (low 32), or SPI + seq high + seq low with ESN (RFC 4106 §5).
    fn aad(spi: u32, esn: bool, seq: u64) -> Aad<AadBytes> {
        let mut buf = [0u8; 12];
        buf[..4].copy_from_slice(&spi.to_be_bytes());
        let len = if esn {
            buf[4..12].copy_from_slice(&seq.to_be_bytes());
            12
        } else {
            buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            8
        };
        Aad::from(AadBytes { buf, len })
    }

    /// Size of the sealed packet for a payload of `len` bytes under this SA's
    /// transform. GCM: header, 8-byte IV, payload and trailer padded to 4
    /// bytes, 16-byte ICV. CBC: header, 16-byte IV, payload and trailer padded
    /// to 16 bytes, truncated HMAC.
    pub fn sealed_len(&self, len: usize) -> usize {
        match &self.cipher {
            Cipher::Gcm { .. } => {
                (HEADER_LEN + IV_LEN + ICV_LEN).saturating_add(padded_len(len, 4))
            }
            Cipher::Cbc(c) => (HEADER_LEN + CBC_IV_LEN)
                .saturating_add(c.icv_len)
                .saturating_add(padded_len(len, CBC_IV_LEN)),
        }
    }

    /// An upper bound of [`Sa::sealed_len`] over every transform, for sizing
    /// buffers before the SA is known.
    pub fn max_sealed_len(len: usize) -> usize {
        len.saturating_add(MAX_OVERHEAD)
    }

    /// Shortest packet `open` considers: header, IV, one trailer (one block
    /// for CBC), ICV.
    fn min_len(&self) -> usize {
        match &self.cipher {
            Cipher::Gcm { .. } => HEADER_LEN + IV_LEN + 2 + ICV_LEN,
            Cipher::Cbc(c) => (HEADER_LEN + 2 * CBC_IV_LEN).saturating_add(c.icv_len),
        }
    }

    /// Encrypts `payload` (with `next_header`) into `out` as a complete ESP
    /// packet (header, IV, ciphertext, ICV). Returns its length.
    pub fn seal(
        &mut self,
        payload: &[u8],
        next_header: u8,
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let total = self.sealed_len(payload.len());
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
        out[..4].copy_from_slice(&self.spi.to_be_bytes());
        out[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        match &mut self.cipher {
            Cipher::Gcm { key, salt } => {
                let iv = seq.to_be_bytes();
                out[8..16].copy_from_slice(&iv);
                let (_, rest) = out.split_at_mut(HEADER_LEN + IV_LEN);
                let (body, tag_out) = rest.split_at_mut(rest.len() - ICV_LEN);
                write_plaintext(body, payload, next_header)?;
                let nonce = Self::nonce(salt, iv);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Self::aad(self.spi, self.esn, seq), body)
                    .map_err(|_| EspError::AuthFailed)?;
                tag_out.copy_from_slice(tag.as_ref());
            }
            Cipher::Cbc(c) => c.seal(self.esn, seq, payload, next_header, out)?,
        }
        Ok(total)
    }

    /// Authenticates and decrypts the ESP packet `pkt` (starting at the SPI)
    /// into `out`; the inner payload lands at `out[..len]`. `out` needs room
    /// for the ciphertext (GCM: with the ICV).
    pub fn open(&mut self, pkt: &[u8], out: &mut [u8]) -> Result<Opened, EspError> {
        if pkt.len() < self.min_len() {
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
        let plain = match &self.cipher {
            Cipher::Gcm { key, salt } => {
                let mut iv = [0u8; IV_LEN];
                iv.copy_from_slice(&pkt[8..16]);
                let ct = &pkt[HEADER_LEN + IV_LEN..];
                let buf = out.get_mut(..ct.len()).ok_or(EspError::BufferTooSmall)?;
                buf.copy_from_slice(ct);
                &*key
                    .open_in_place(Self::nonce(salt, iv), Self::aad(spi, self.esn, seq), buf)
                    .map_err(|_| EspError::AuthFailed)?
            }
            Cipher::Cbc(c) => {
                let n = c.open(self.esn, seq, pkt, out)?;
                out.get(..n).ok_or(EspError::BufferTooSmall)?
            }
        };
        let (len, next_header) = read_trailer(plain)?;
        // Only an authenticated packet moves the window (RFC 4303 §3.4.3).
        self.replay.accept(seq);
        Ok(Opened {
            len,
            next_header,
            seq,
        })
    }
}
