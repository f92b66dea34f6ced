//! Ephemeral key exchange: Curve25519 (RFC 8031) and ECP-256 (RFC 5903).

use super::CryptoError;
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SecureRandom;

/// Key exchange groups (transform type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Curve25519 (31).
    Curve25519,
    /// 256-bit random ECP group, NIST P-256 (19).
    Ecp256,
}

impl Group {
    /// The group for an IANA transform ID (31, 19).
    pub fn from_id(id: u16) -> Option<Group> {
        match id {
            31 => Some(Group::Curve25519),
            19 => Some(Group::Ecp256),
            _ => None,
        }
    }

    /// strongSwan's proposal keyword (`x25519`, `ecp256`).
    pub fn name(self) -> &'static str {
        match self {
            Group::Curve25519 => "x25519",
            Group::Ecp256 => "ecp256",
        }
    }

    /// IANA transform ID.
    pub fn id(self) -> u16 {
        match self {
            Group::Curve25519 => 31,
            Group::Ecp256 => 19,
        }
    }

    /// Length of the KE payload's key exchange data.
    pub fn public_len(self) -> usize {
        match self {
            Group::Curve25519 => 32,
            Group::Ecp256 => 64,
        }
    }

    fn alg(self) -> &'static agreement::Algorithm {
        match self {
            Group::Curve25519 => &agreement::X25519,
            Group::Ecp256 => &agreement::ECDH_P256,
        }
    }
}

/// One ephemeral key pair (ring's EphemeralPrivateKey; used once).
pub struct KeyExchange {
    group: Group,
    private: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl KeyExchange {
    /// Draws a fresh private key from `rng`.
    pub fn generate(group: Group, rng: &dyn SecureRandom) -> Result<KeyExchange, CryptoError> {
        let private =
            EphemeralPrivateKey::generate(group.alg(), rng).map_err(|_| CryptoError::Rng)?;
        let public = private.compute_public_key().map_err(|_| CryptoError::Rng)?;
        let public = match group {
            Group::Curve25519 => public.as_ref().to_vec(),
            // ring gives SEC1 uncompressed 0x04 | x | y; RFC 5903 §7 sends x | y.
            Group::Ecp256 => public
                .as_ref()
                .get(1..)
                .ok_or(CryptoError::BadKey)?
                .to_vec(),
        };
        Ok(KeyExchange {
            group,
            private,
            public,
        })
    }

    /// The group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// The KE payload's data: X25519 32 bytes; ECP-256 x‖y (64 bytes, RFC 5903 — no 0x04 prefix).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Shared secret g^ir (X25519: 32 bytes, all-zero output rejected;
    /// ECP-256: the x coordinate, RFC 5903 §7). ring validates the peer's
    /// point; the length is checked here. Consumes self.
    pub fn agree(self, peer_public: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if peer_public.len() != self.group.public_len() {
            return Err(CryptoError::BadKey);
        }
        let peer = match self.group {
            Group::Curve25519 => peer_public.to_vec(),
            Group::Ecp256 => {
                let mut p = Vec::with_capacity(65);
                p.push(0x04);
                p.extend_from_slice(peer_public);
                p
            }
        };
        let peer = UnparsedPublicKey::new(self.group.alg(), peer);
        let secret = agreement::agree_ephemeral(self.private, &peer, |s| s.to_vec())
            .map_err(|_| CryptoError::BadKey)?;
        // ring already refuses an all-zero X25519 result (RFC 7748 §6.1,
        // small-order peer points); checked again as RFC 8031 §2.3 requires.
        if secret.iter().all(|b| *b == 0) {
            return Err(CryptoError::BadKey);
        }
        Ok(secret)
    }
}
