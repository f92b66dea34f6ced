//! Cryptographic primitives of IKEv2 (RFC 7296): PRFs and prf+, key
//! exchange, SK payload protection, key derivation, AUTH computation,
//! certificate checks, NAT detection hashes and key logs for Wireshark.
//!
//! Everything comes from `ring`, except AES-CBC (`aes` + `cbc`, which ring
//! lacks) and certificate handling (`rustls-webpki` validates the chain,
//! `x509-parser` reads names and keys). No I/O, no clock reads: time and
//! randomness are passed in.

mod auth;
mod cert;
mod dh;
mod keylog;
mod keys;
mod nat;
mod prf;
mod sig;
mod sk;

pub use auth::{psk_auth, psk_verify, signed_octets};
pub use cert::{load_cert_der, PeerCert, TrustAnchors};
pub use dh::{Group, KeyExchange};
pub use keylog::{esp_uat_line, ikev2_uat_line};
pub use keys::{EspKeys, EspSuite, IkeKeys, IkeSuite};
pub use nat::nat_detection_hash;
pub use prf::Prf;
pub use sig::{auth_method, SigScheme, SigningKey};
pub use sk::{Encr, Integ, SkCipher};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pki;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Transform, group, method or length not supported.
    #[error("unsupported transform")]
    Unsupported,
    /// Key of the wrong length or an invalid public value.
    #[error("bad key or public value")]
    BadKey,
    /// ICV or AEAD tag did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// Padding invalid after decryption.
    #[error("bad padding")]
    Padding,
    /// Input shorter than its structure needs.
    #[error("truncated")]
    Truncated,
    /// A signature did not verify.
    #[error("signature invalid")]
    Signature,
    /// A certificate could not be parsed or validated.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The random source failed.
    #[error("random source failed")]
    Rng,
}
