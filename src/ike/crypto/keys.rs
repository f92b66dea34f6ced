//! Key derivation: SKEYSEED and the IKE SA keys (RFC 7296 §2.14), IKE SA
//! rekey (§2.18) and CHILD_SA KEYMAT (§2.17).

use super::{CryptoError, Encr, Group, Integ, Prf, SkCipher};
use zeroize::{Zeroize, Zeroizing};

/// The seven IKE SA keys (RFC 7296 §2.14). Zeroized on drop.
pub struct IkeKeys {
    /// SK_d: key for CHILD_SA and rekey derivation.
    pub sk_d: Vec<u8>,
    /// SK_ai: initiator→responder integrity key (empty for AEAD).
    pub sk_ai: Vec<u8>,
    /// SK_ar: responder→initiator integrity key (empty for AEAD).
    pub sk_ar: Vec<u8>,
    /// SK_ei: initiator→responder encryption key material (GCM: key‖salt).
    pub sk_ei: Vec<u8>,
    /// SK_er: responder→initiator encryption key material (GCM: key‖salt).
    pub sk_er: Vec<u8>,
    /// SK_pi: initiator's AUTH key.
    pub sk_pi: Vec<u8>,
    /// SK_pr: responder's AUTH key.
    pub sk_pr: Vec<u8>,
}

impl Drop for IkeKeys {
    fn drop(&mut self) {
        for k in [
            &mut self.sk_d,
            &mut self.sk_ai,
            &mut self.sk_ar,
            &mut self.sk_ei,
            &mut self.sk_er,
            &mut self.sk_pi,
            &mut self.sk_pr,
        ] {
            k.zeroize();
        }
    }
}

/// Negotiated IKE SA suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    /// Encryption transform.
    pub encr: Encr,
    /// Integrity transform: None for AEAD, Some otherwise.
    pub integ: Option<Integ>,
    /// Pseudo-random function.
    pub prf: Prf,
    /// Key exchange group.
    pub group: Group,
}

/// As strongSwan writes a proposal: `aes256gcm16-prfsha256-x25519`.
impl std::fmt::Display for IkeSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encr.name())?;
        if let Some(i) = self.integ {
            write!(f, "-{}", i.name())?;
        }
        write!(f, "-{}-{}", self.prf.name(), self.group.name())
    }
}

/// AEAD must come without an integrity transform, anything else with one.
fn integ_len(encr: Encr, integ: Option<Integ>) -> Result<usize, CryptoError> {
    match (encr.is_aead(), integ) {
        (true, None) => Ok(0),
        (false, Some(i)) => Ok(i.key_len()),
        _ => Err(CryptoError::Unsupported),
    }
}

/// Takes consecutive keys off a prf+ stream.
struct Splitter<'a>(&'a [u8]);

impl Splitter<'_> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, CryptoError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(CryptoError::Truncated)?;
        self.0 = tail;
        Ok(head.to_vec())
    }
}

impl IkeSuite {
    /// SKEYSEED = prf(Ni | Nr, g^ir), then prf+(SKEYSEED, Ni | Nr | SPIi |
    /// SPIr) split into the keys. The HMAC key is Ni|Nr in full (the
    /// half-nonce rule of §2.14 is for fixed-key-size PRFs only).
    pub fn derive(
        &self,
        ni: &[u8],
        nr: &[u8],
        g_ir: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let key: Vec<u8> = [ni, nr].concat();
        let skeyseed = Zeroizing::new(self.prf.compute(&key, &[g_ir]));
        self.expand(&skeyseed, ni, nr, spi_i, spi_r)
    }

    /// IKE SA rekey (§2.18): SKEYSEED = prf_old(SK_d_old, g^ir_new | Ni |
    /// Nr) using the OLD prf, then the new suite's prf+ with the new SPIs.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(
        &self,
        old_prf: Prf,
        old_sk_d: &[u8],
        ni: &[u8],
        nr: &[u8],
        g_ir: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let skeyseed = Zeroizing::new(old_prf.compute(old_sk_d, &[g_ir, ni, nr]));
        self.expand(&skeyseed, ni, nr, spi_i, spi_r)
    }

    /// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) = SK_d | SK_ai | SK_ar | SK_ei
    /// | SK_er | SK_pi | SK_pr.
    fn expand(
        &self,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let prf_len = self.prf.output_len();
        let a_len = integ_len(self.encr, self.integ)?;
        let e_len = self.encr.keymat_len();
        let total = prf_len * 3 + a_len * 2 + e_len * 2;
        let keymat = Zeroizing::new(self.prf.plus(
            skeyseed,
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            total,
        )?);
        let mut s = Splitter(&keymat);
        Ok(IkeKeys {
            sk_d: s.take(prf_len)?,
            sk_ai: s.take(a_len)?,
            sk_ar: s.take(a_len)?,
            sk_ei: s.take(e_len)?,
            sk_er: s.take(e_len)?,
            sk_pi: s.take(prf_len)?,
            sk_pr: s.take(prf_len)?,
        })
    }

    /// The two SkCipher objects: (initiator→responder from SK_ei/SK_ai,
    /// responder→initiator from SK_er/SK_ar).
    pub fn ciphers(&self, keys: &IkeKeys) -> Result<(SkCipher, SkCipher), CryptoError> {
        let i_to_r = SkCipher::new(
            self.encr,
            &keys.sk_ei,
            self.integ.map(|i| (i, keys.sk_ai.as_slice())),
        )?;
        let r_to_i = SkCipher::new(
            self.encr,
            &keys.sk_er,
            self.integ.map(|i| (i, keys.sk_ar.as_slice())),
        )?;
        Ok((i_to_r, r_to_i))
    }
}

/// ESP suite of a CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    /// Encryption transform.
    pub encr: Encr,
    /// Integrity transform: None for AEAD, Some otherwise.
    pub integ: Option<Integ>,
    /// Extended sequence numbers negotiated.
    pub esn: bool,
}

/// As strongSwan writes a proposal: `aes256gcm16-esn`, `aes128-sha256-noesn`.
impl std::fmt::Display for EspSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encr.name())?;
        if let Some(i) = self.integ {
            write!(f, "-{}", i.name())?;
        }
        f.write_str(if self.esn { "-esn" } else { "-noesn" })
    }
}

/// One direction's ESP keys: for GCM `encr` = key‖salt (as spimux's
/// esp::SaParams wants: key + 4-byte salt) and `integ` empty; for CBC
/// `encr` = key and `integ` = HMAC key. Zeroized on drop.
pub struct EspKeys {
    /// Encryption key material.
    pub encr: Vec<u8>,
    /// Integrity key (empty for AEAD).
    pub integ: Vec<u8>,
}

impl Drop for EspKeys {
    fn drop(&mut self) {
        self.encr.zeroize();
        self.integ.zeroize();
    }
}

impl EspSuite {
    /// KEYMAT = prf+(SK_d, [g^ir(new) |] Ni | Nr) (§2.17); first the
    /// initiator→responder keys (encr then integ), then
    /// responder→initiator. Returns (i_to_r, r_to_i).
    pub fn derive(
        &self,
        prf: Prf,
        sk_d: &[u8],
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<(EspKeys, EspKeys), CryptoError> {
        let a_len = integ_len(self.encr, self.integ)?;
        let e_len = self.encr.keymat_len();
        let total = (a_len + e_len) * 2;
        let keymat = Zeroizing::new(match g_ir {
            Some(g) => prf.plus(sk_d, &[g, ni, nr], total)?,
            None => prf.plus(sk_d, &[ni, nr], total)?,
        });
        let mut s = Splitter(&keymat);
        let i_to_r = EspKeys {
            encr: s.take(e_len)?,
            integ: s.take(a_len)?,
        };
        let r_to_i = EspKeys {
            encr: s.take(e_len)?,
            integ: s.take(a_len)?,
        };
        Ok((i_to_r, r_to_i))
    }
}
