//! Signature AUTH methods: RFC 7427 "Digital Signature" (14) with its
//! AlgorithmIdentifier prefix, and ECDSA_256 (9, RFC 4754). RSA_SIG (1) is
//! refused: in practice it means PKCS#1 v1.5 over SHA-1, which ring cannot
//! produce and which we do not accept either.

use super::CryptoError;
use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use x509_parser::der_parser::parse_der;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use zeroize::Zeroizing;

/// IKEv2 authentication method numbers (IANA, AUTH payload).
pub mod auth_method {
    /// RSA Digital Signature (PKCS#1 v1.5, SHA-1 in practice): refused.
    pub const RSA_SIG: u8 = 1;
    /// Shared Key Message Integrity Code.
    pub const PSK: u8 = 2;
    /// ECDSA with SHA-256 on the P-256 curve (RFC 4754), raw r‖s.
    pub const ECDSA_256: u8 = 9;
    /// Digital Signature (RFC 7427).
    pub const DIGITAL_SIGNATURE: u8 = 14;
}

// AlgorithmIdentifier DER blobs as RFC 7427 Appendix A lists them (checked
// with `openssl asn1parse`).
/// ecdsa-with-SHA256.
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// ecdsa-with-SHA384, accepted from peers with P-256 keys.
const ALG_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
/// sha256WithRSAEncryption with NULL parameters.
const ALG_RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
/// sha256WithRSAEncryption without parameters (seen from some peers).
const ALG_RSA_SHA256_NO_NULL: &[u8] = &[
    0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
];
/// sha384WithRSAEncryption.
const ALG_RSA_SHA384: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
/// sha512WithRSAEncryption.
const ALG_RSA_SHA512: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
/// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
const ALG_RSA_PSS_SHA256: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0,
    0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03,
    0x02, 0x01, 0x20,
];

/// Signature encodings a [`SigningKey`] can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigScheme {
    /// Method 14, ecdsa-with-SHA256, DER ECDSA-Sig-Value (P-256 key).
    EcdsaSha256,
    /// Method 9 (RFC 4754): SHA-256, raw r‖s (P-256 key).
    Ecdsa256,
    /// Method 14, sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaPkcs1Sha256,
    /// Method 14, RSASSA-PSS with SHA-256 (salt 32).
    RsaPssSha256,
}

/// A peer's public key, as taken from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Uncompressed SEC1 point on P-256.
    EcP256(Vec<u8>),
    /// RSAPublicKey DER.
    Rsa(Vec<u8>),
}

enum KeyInner {
    /// PKCS#8 of a P-256 key: ring wants a random source to load ECDSA
    /// keys, which only `sign` has, so the key pair is built there.
    Ecdsa(Zeroizing<Vec<u8>>),
    Rsa(Box<RsaKeyPair>),
}

/// A local private key for signing (PKCS#8 DER or PEM; ECDSA P-256 or RSA;
/// RSA also as PKCS#1). SEC1 "EC PRIVATE KEY" files are refused: convert
/// with `openssl pkcs8 -topk8 -nocrypt`.
pub struct SigningKey {
    inner: KeyInner,
}

/// Whether PKCS#8 `der` announces an id-ecPublicKey on P-256.
fn pkcs8_is_p256(der: &[u8]) -> bool {
    let Ok((_, obj)) = parse_der(der) else {
        return false;
    };
    let Ok(seq) = obj.as_sequence() else {
        return false;
    };
    let Some(alg) = seq.get(1).and_then(|a| a.as_sequence().ok()) else {
        return false;
    };
    let oid = |i: usize| alg.get(i).and_then(|o| o.as_oid().ok());
    oid(0) == Some(&OID_KEY_TYPE_EC_PUBLIC_KEY) && oid(1) == Some(&OID_EC_P256)
}

impl SigningKey {
    /// Loads a PEM or DER private key. An RSA key is fully checked here; a
    /// P-256 key's structure is checked here and its key pair on first use
    /// (see [`SigningKey::check`]).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<SigningKey, CryptoError> {
        let der = if is_pem(bytes) {
            PrivateKeyDer::from_pem_slice(bytes).map_err(|_| CryptoError::BadKey)?
        } else {
            PrivateKeyDer::Pkcs8(bytes.to_vec().into())
        };
        let inner = match der {
            PrivateKeyDer::Pkcs8(p) => {
                let p = p.secret_pkcs8_der();
                if pkcs8_is_p256(p) {
                    KeyInner::Ecdsa(Zeroizing::new(p.to_vec()))
                } else if let Ok(rsa) = RsaKeyPair::from_pkcs8(p) {
                    KeyInner::Rsa(Box::new(rsa))
                } else if let Ok(rsa) = RsaKeyPair::from_der(p) {
                    // Bare DER that was PKCS#1 after all.
                    KeyInner::Rsa(Box::new(rsa))
                } else {
                    return Err(CryptoError::BadKey);
                }
            }
            PrivateKeyDer::Pkcs1(p) => KeyInner::Rsa(Box::new(
                RsaKeyPair::from_der(p.secret_pkcs1_der()).map_err(|_| CryptoError::BadKey)?,
            )),
            _ => return Err(CryptoError::BadKey),
        };
        Ok(SigningKey { inner })
    }

    /// Fully validates the key (for an ECDSA key this builds the key pair,
    /// which needs randomness); call at configuration load.
    pub fn check(&self, rng: &dyn SecureRandom) -> Result<(), CryptoError> {
        match &self.inner {
            KeyInner::Ecdsa(p) => ecdsa_pair(p, SigScheme::EcdsaSha256, rng).map(|_| ()),
            KeyInner::Rsa(_) => Ok(()),
        }
    }

    /// The default scheme: method 14 with ecdsa-with-SHA256 or
    /// sha256WithRSAEncryption.
    pub fn default_scheme(&self) -> SigScheme {
        match self.inner {
            KeyInner::Ecdsa(_) => SigScheme::EcdsaSha256,
            KeyInner::Rsa(_) => SigScheme::RsaPkcs1Sha256,
        }
    }

    /// Produces (auth method, AUTH data) with [`SigningKey::default_scheme`]
    /// — for method 14 the data starts with the AlgorithmIdentifier length
    /// byte + DER bytes, then the signature.
    pub fn sign(
        &self,
        signed_octets: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<(u8, Vec<u8>), CryptoError> {
        self.sign_with(self.default_scheme(), signed_octets, rng)
    }

    /// As [`SigningKey::sign`] with an explicit scheme; Unsupported if the
    /// scheme does not fit the key type.
    pub fn sign_with(
        &self,
        scheme: SigScheme,
        signed_octets: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<(u8, Vec<u8>), CryptoError> {
        let (method, alg_id, sig) = match (&self.inner, scheme) {
            (KeyInner::Ecdsa(p), SigScheme::EcdsaSha256 | SigScheme::Ecdsa256) => {
                let pair = ecdsa_pair(p, scheme, rng)?;
                let sig = pair
                    .sign(rng, signed_octets)
                    .map_err(|_| CryptoError::Rng)?;
                if scheme == SigScheme::Ecdsa256 {
                    (auth_method::ECDSA_256, None, sig.as_ref().to_vec())
                } else {
                    let sig = sig.as_ref().to_vec();
                    (auth_method::DIGITAL_SIGNATURE, Some(ALG_ECDSA_SHA256), sig)
                }
            }
            (KeyInner::Rsa(pair), SigScheme::RsaPkcs1Sha256 | SigScheme::RsaPssSha256) => {
                let (enc, alg_id): (&'static dyn signature::RsaEncoding, _) =
                    if scheme == SigScheme::RsaPssSha256 {
                        (&signature::RSA_PSS_SHA256, ALG_RSA_PSS_SHA256)
                    } else {
                        (&signature::RSA_PKCS1_SHA256, ALG_RSA_SHA256)
                    };
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(enc, rng, signed_octets, &mut sig)
                    .map_err(|_| CryptoError::Rng)?;
                (auth_method::DIGITAL_SIGNATURE, Some(alg_id), sig)
            }
            _ => return Err(CryptoError::Unsupported),
        };
        let data = match alg_id {
            Some(alg) => {
                let len = u8::try_from(alg.len()).map_err(|_| CryptoError::Unsupported)?;
                [&[len][..], alg, &sig].concat()
            }
            None => sig,
        };
        Ok((method, data))
    }
}

fn ecdsa_pair(
    pkcs8: &[u8],
    scheme: SigScheme,
    rng: &dyn SecureRandom,
) -> Result<EcdsaKeyPair, CryptoError> {
    let alg = if scheme == SigScheme::Ecdsa256 {
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING
    } else {
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING
    };
    EcdsaKeyPair::from_pkcs8(alg, pkcs8, rng).map_err(|_| CryptoError::BadKey)
}

/// Whether `bytes` look like PEM rather than DER.
pub(crate) fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(10).any(|w| w == b"-----BEGIN")
}

/// Verifies AUTH data of `method` over `signed_octets` with `key`.
pub(crate) fn verify(
    key: &PublicKey,
    method: u8,
    auth_data: &[u8],
    signed_octets: &[u8],
) -> Result<(), CryptoError> {
    let (alg, sig): (&'static dyn VerificationAlgorithm, &[u8]) = match method {
        auth_method::ECDSA_256 => (&signature::ECDSA_P256_SHA256_FIXED, auth_data),
        auth_method::DIGITAL_SIGNATURE => {
            let (len, rest) = auth_data.split_first().ok_or(CryptoError::Truncated)?;
            let (alg_id, sig) = rest
                .split_at_checked(usize::from(*len))
                .ok_or(CryptoError::Truncated)?;
            (rfc7427_alg(key, alg_id)?, sig)
        }
        _ => return Err(CryptoError::Unsupported),
    };
    let raw = match key {
        PublicKey::EcP256(k) => {
            if method == auth_method::ECDSA_256 && sig.len() != 64 {
                return Err(CryptoError::Signature);
            }
            k
        }
        PublicKey::Rsa(k) => {
            if method == auth_method::ECDSA_256 {
                return Err(CryptoError::Signature);
            }
            k
        }
    };
    UnparsedPublicKey::new(alg, raw)
        .verify(signed_octets, sig)
        .map_err(|_| CryptoError::Signature)
}

/// The ring algorithm for an RFC 7427 AlgorithmIdentifier and key type.
fn rfc7427_alg(
    key: &PublicKey,
    alg_id: &[u8],
) -> Result<&'static dyn VerificationAlgorithm, CryptoError> {
    let is_ec = matches!(key, PublicKey::EcP256(_));
    let alg: &'static dyn VerificationAlgorithm = match alg_id {
        a if a == ALG_ECDSA_SHA256 && is_ec => &signature::ECDSA_P256_SHA256_ASN1,
        a if a == ALG_ECDSA_SHA384 && is_ec => &signature::ECDSA_P256_SHA384_ASN1,
        a if (a == ALG_RSA_SHA256 || a == ALG_RSA_SHA256_NO_NULL) && !is_ec => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        a if a == ALG_RSA_SHA384 && !is_ec => &signature::RSA_PKCS1_2048_8192_SHA384,
        a if a == ALG_RSA_SHA512 && !is_ec => &signature::RSA_PKCS1_2048_8192_SHA512,
        a if a == ALG_RSA_PSS_SHA256 && !is_ec => &signature::RSA_PSS_2048_8192_SHA256,
        a if [
            ALG_ECDSA_SHA256,
            ALG_ECDSA_SHA384,
            ALG_RSA_SHA256,
            ALG_RSA_SHA256_NO_NULL,
            ALG_RSA_SHA384,
            ALG_RSA_SHA512,
            ALG_RSA_PSS_SHA256,
        ]
        .contains(&a) =>
        {
            // Known algorithm, wrong key type for it.
            return Err(CryptoError::Signature);
        }
        _ => return Err(CryptoError::Unsupported),
    };
    Ok(alg)
}
