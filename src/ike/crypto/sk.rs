//! Protection of the SK / SKF payloads (RFC 7296 §3.14, RFC 7383):
//! AES-GCM with a 16-byte ICV (RFC 5282) or AES-CBC (RFC 3602) with
//! truncated HMAC-SHA2 (RFC 4868).

use super::CryptoError;
use crate::integrity::verify_truncated_hmac;
use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

/// GCM explicit IV (RFC 5282 §3.1).
const GCM_IV_LEN: usize = 8;
/// GCM salt taken after the key from the key material (RFC 5282 §7.1).
const GCM_SALT_LEN: usize = 4;
/// GCM ICV length of transform 20.
const GCM_ICV_LEN: usize = 16;
/// AES block size, also the CBC IV length.
const AES_BLOCK: usize = 16;

/// Encryption (+integrity) for the SK/SKF payloads of IKE messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_GCM_16 (20), 128- or 256-bit key.
    AesGcm16 {
        /// Key length attribute.
        key_bits: u16,
    },
    /// ENCR_AES_CBC (12), 128-, 192- or 256-bit key.
    AesCbc {
        /// Key length attribute.
        key_bits: u16,
    },
}

impl Encr {
    /// The cipher for a transform ID and its key length attribute (bits).
    /// 20 = AES-GCM-16 (128/256; ring has no AES-192-GCM), 12 = AES-CBC
    /// (128/192/256). Both require the attribute (RFC 7296 §3.3.5).
    pub fn from_transform(id: u16, key_length: Option<u16>) -> Option<Encr> {
        match (id, key_length?) {
            (20, key_bits @ (128 | 256)) => Some(Encr::AesGcm16 { key_bits }),
            (12, key_bits @ (128 | 192 | 256)) => Some(Encr::AesCbc { key_bits }),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Encr::AesGcm16 { .. } => 20,
            Encr::AesCbc { .. } => 12,
        }
    }

    /// Key length in bits.
    pub fn key_bits(self) -> u16 {
        match self {
            Encr::AesGcm16 { key_bits } | Encr::AesCbc { key_bits } => key_bits,
        }
    }

    /// strongSwan's proposal keyword (`aes256gcm16`, `aes128`).
    pub fn name(self) -> &'static str {
        match self {
            Encr::AesGcm16 { key_bits: 128 } => "aes128gcm16",
            Encr::AesGcm16 { .. } => "aes256gcm16",
            Encr::AesCbc { key_bits: 128 } => "aes128",
            Encr::AesCbc { key_bits: 192 } => "aes192",
            Encr::AesCbc { .. } => "aes256",
        }
    }

    /// Combined-mode (AEAD) cipher: no separate integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16 { .. })
    }

    /// Key material taken from prf+ for this cipher: key bytes + 4 salt
    /// bytes for GCM (RFC 5282 / RFC 4106), key bytes for CBC.
    pub fn keymat_len(self) -> usize {
        let key = usize::from(self.key_bits() / 8);
        match self {
            Encr::AesGcm16 { .. } => key + GCM_SALT_LEN,
            Encr::AesCbc { .. } => key,
        }
    }
}

/// Integrity transforms (transform type 3), RFC 4868.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA2_256_128 (12).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14).
    HmacSha512_256,
}

impl Integ {
    /// strongSwan's proposal keyword (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Integ::HmacSha256_128 => "sha256",
            Integ::HmacSha384_192 => "sha384",
            Integ::HmacSha512_256 => "sha512",
        }
    }

    /// The transform for an IANA ID (12, 13, 14).
    pub fn from_id(id: u16) -> Option<Integ> {
        match id {
            12 => Some(Integ::HmacSha256_128),
            13 => Some(Integ::HmacSha384_192),
            14 => Some(Integ::HmacSha512_256),
            _ => None,
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Integ::HmacSha256_128 => 12,
            Integ::HmacSha384_192 => 13,
            Integ::HmacSha512_256 => 14,
        }
    }

    /// Key length in bytes (the hash output length, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length in bytes.
    pub fn icv_len(self) -> usize {
        self.key_len() / 2
    }

    pub(crate) fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

// Two per IKE SA, never moved in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Gcm {
        key: LessSafeKey,
        salt: [u8; GCM_SALT_LEN],
    },
    Cbc {
        key_bits: u16,
        key: Zeroizing<Vec<u8>>,
        mac: hmac::Key,
        icv_len: usize,
    },
}

/// One direction's SK protection (built from SK_ei/SK_ai or SK_er/SK_ar).
pub struct SkCipher {
    inner: Inner,
}

impl SkCipher {
    /// `encr_key` is the cipher's key material (key‖salt for GCM, see
    /// [`Encr::keymat_len`]). `integ` must be None for AEAD and Some for
    /// CBC (else Unsupported); key lengths checked (BadKey).
    pub fn new(
        encr: Encr,
        encr_key: &[u8],
        integ: Option<(Integ, &[u8])>,
    ) -> Result<SkCipher, CryptoError> {
        if encr_key.len() != encr.keymat_len() {
            return Err(CryptoError::BadKey);
        }
        let inner = match (encr, integ) {
            (Encr::AesGcm16 { key_bits }, None) => {
                let alg = match key_bits {
                    128 => &aead::AES_128_GCM,
                    256 => &aead::AES_256_GCM,
                    _ => return Err(CryptoError::Unsupported),
                };
                let (key, salt) = encr_key
                    .split_last_chunk::<GCM_SALT_LEN>()
                    .ok_or(CryptoError::BadKey)?;
                let key = UnboundKey::new(alg, key).map_err(|_| CryptoError::BadKey)?;
                Inner::Gcm {
                    key: LessSafeKey::new(key),
                    salt: *salt,
                }
            }
            (Encr::AesCbc { key_bits }, Some((integ, integ_key))) => {
                if !matches!(key_bits, 128 | 192 | 256) {
                    return Err(CryptoError::Unsupported);
                }
                if integ_key.len() != integ.key_len() {
                    return Err(CryptoError::BadKey);
                }
                Inner::Cbc {
                    key_bits,
                    key: Zeroizing::new(encr_key.to_vec()),
                    mac: hmac::Key::new(integ.hmac_alg(), integ_key),
                    icv_len: integ.icv_len(),
                }
            }
            _ => return Err(CryptoError::Unsupported),
        };
        Ok(SkCipher { inner })
    }

    /// Bytes of IV‖ciphertext(with padding and pad-length byte)‖ICV for
    /// `plaintext_len` bytes of inner payloads, so the caller can write the
    /// SK header's length (part of the AAD/MAC) before sealing. GCM: 8-byte
    /// IV, only the pad-length byte, 16-byte ICV. CBC: 16-byte IV, padded to
    /// 16-byte blocks, truncated HMAC.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        match &self.inner {
            Inner::Gcm { .. } => GCM_IV_LEN
                .saturating_add(plaintext_len)
                .saturating_add(1)
                .saturating_add(GCM_ICV_LEN),
            Inner::Cbc { icv_len, .. } => AES_BLOCK
                .saturating_add(cbc_padded_len(plaintext_len))
                .saturating_add(*icv_len),
        }
    }

    /// Encrypts: returns IV‖ct‖ICV. `aad` = every message byte before the
    /// IV. GCM: nonce = salt‖IV with IV = `iv_counter` (big endian), which
    /// the caller keeps unique per key (RFC 5282 §3.1 allows a counter).
    /// CBC: random IV from `rng`; ICV = HMAC(aad‖IV‖ct) truncated. Padding
    /// bytes are zero, followed by the pad-length byte.
    pub fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        iv_counter: u64,
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Gcm { key, salt } => {
                let iv = iv_counter.to_be_bytes();
                let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
                out.extend_from_slice(&iv);
                let mut body = Vec::with_capacity(plaintext.len().saturating_add(1));
                body.extend_from_slice(plaintext);
                body.push(0); // pad length: GCM needs no padding (RFC 5282 §3.2)
                let tag = key
                    .seal_in_place_separate_tag(gcm_nonce(salt, iv), Aad::from(aad), &mut body)
                    .map_err(|_| CryptoError::Unsupported)?;
                out.extend_from_slice(&body);
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            Inner::Cbc {
                key_bits,
                key,
                mac,
                icv_len,
            } => {
                let mut iv = [0u8; AES_BLOCK];
                rng.fill(&mut iv).map_err(|_| CryptoError::Rng)?;
                let padded = cbc_padded_len(plaintext.len());
                let pad_len = padded
                    .checked_sub(plaintext.len())
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or(CryptoError::Padding)?;
                let mut body = Zeroizing::new(vec![0u8; padded]);
                let (head, tail) = body.split_at_mut(plaintext.len());
                head.copy_from_slice(plaintext);
                if let Some(last) = tail.last_mut() {
                    *last = pad_len;
                }
                cbc_encrypt(*key_bits, key, &iv, &mut body)?;
                let mut ctx = hmac::Context::with_key(mac);
                ctx.update(aad);
                ctx.update(&iv);
                ctx.update(&body);
                let tag = ctx.sign();
                let icv = tag
                    .as_ref()
                    .get(..*icv_len)
                    .ok_or(CryptoError::Unsupported)?;
                let mut out = Vec::with_capacity(self.sealed_len(plaintext.len()));
                out.extend_from_slice(&iv);
                out.extend_from_slice(&body);
                out.extend_from_slice(icv);
                Ok(out)
            }
        }
    }

    /// Verifies and decrypts IV‖ct‖ICV (`body`) with `aad` as in
    /// [`SkCipher::seal`]; returns the inner payload bytes without padding.
    /// For CBC the ICV is checked before decryption, in constant time.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let plain = match &self.inner {
            Inner::Gcm { key, salt } => {
                let (iv, sealed) = body
                    .split_first_chunk::<GCM_IV_LEN>()
                    .ok_or(CryptoError::Truncated)?;
                if sealed.len() < 1 + GCM_ICV_LEN {
                    return Err(CryptoError::Truncated);
                }
                let mut buf = Zeroizing::new(sealed.to_vec());
                let plain = key
                    .open_in_place(gcm_nonce(salt, *iv), Aad::from(aad), &mut buf)
                    .map_err(|_| CryptoError::Integrity)?;
                Zeroizing::new(plain.to_vec())
            }
            Inner::Cbc {
                key_bits,
                key,
                mac,
                icv_len,
            } => {
                let min = AES_BLOCK.saturating_mul(2).saturating_add(*icv_len);
                if body.len() < min {
                    return Err(CryptoError::Truncated);
                }
                let (signed, icv) = body
                    .split_at_checked(body.len().saturating_sub(*icv_len))
                    .ok_or(CryptoError::Truncated)?;
                verify_truncated_hmac(mac, &[aad, signed], icv)
                    .map_err(|_| CryptoError::Integrity)?;
                let (iv, ct) = signed
                    .split_at_checked(AES_BLOCK)
                    .ok_or(CryptoError::Truncated)?;
                if ct.len() % AES_BLOCK != 0 {
                    return Err(CryptoError::Padding);
                }
                let mut buf = Zeroizing::new(ct.to_vec());
                cbc_decrypt(*key_bits, key, iv, &mut buf)?;
                buf
            }
        };
        // Trailer: pad bytes, then the pad-length byte (RFC 7296 §3.14).
        let (pad_len, rest) = plain.split_last().ok_or(CryptoError::Padding)?;
        let len = rest
            .len()
            .checked_sub(usize::from(*pad_len))
            .ok_or(CryptoError::Padding)?;
        Ok(rest.get(..len).ok_or(CryptoError::Padding)?.to_vec())
    }
}

/// Plaintext plus the pad-length byte, rounded up to whole AES blocks.
fn cbc_padded_len(plaintext_len: usize) -> usize {
    plaintext_len
        .saturating_add(1)
        .div_ceil(AES_BLOCK)
        .saturating_mul(AES_BLOCK)
}

fn gcm_nonce(salt: &[u8; GCM_SALT_LEN], iv: [u8; GCM_IV_LEN]) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    let (s, i) = n.split_at_mut(GCM_SALT_LEN);
    s.copy_from_slice(salt);
    i.copy_from_slice(&iv);
    Nonce::assume_unique_for_key(n)
}

pub(super) fn cbc_encrypt(
    key_bits: u16,
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
) -> Result<(), CryptoError> {
    match key_bits {
        128 => cbc_enc::<Aes128>(key, iv, buf),
        192 => cbc_enc::<Aes192>(key, iv, buf),
        256 => cbc_enc::<Aes256>(key, iv, buf),
        _ => Err(CryptoError::Unsupported),
    }
}

pub(super) fn cbc_decrypt(
    key_bits: u16,
    key: &[u8],
    iv: &[u8],
    buf: &mut [u8],
) -> Result<(), CryptoError> {
    match key_bits {
        128 => cbc_dec::<Aes128>(key, iv, buf),
        192 => cbc_dec::<Aes192>(key, iv, buf),
        256 => cbc_dec::<Aes256>(key, iv, buf),
        _ => Err(CryptoError::Unsupported),
    }
}

fn cbc_enc<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockCipher + BlockEncryptMut + KeyInit,
    cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
{
    let len = buf.len();
    cbc::Encryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::BadKey)?
        .encrypt_padded_mut::<NoPadding>(buf, len)
        .map_err(|_| CryptoError::Padding)?;
    Ok(())
}

fn cbc_dec<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockCipher + BlockDecryptMut + KeyInit,
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
{
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::BadKey)?
        .decrypt_padded_mut::<NoPadding>(buf)
        .map_err(|_| CryptoError::Padding)?;
    Ok(())
}
