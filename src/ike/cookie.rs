//! Stateless cookies (RFC 7296 §2.6): when too many IKE SAs are half-open,
//! an IKE_SA_INIT request is answered only with a COOKIE the initiator must
//! echo, which a spoofed source never receives.
//! `Cookie = <secret version> | HMAC-SHA256(secret, Ni | IPi | SPIi)`.

use ring::hmac;
use ring::rand::SecureRandom;
use std::net::Ipv4Addr;

/// Length of a cookie: version byte + the 32-byte MAC (RFC 7296 allows up to 64).
pub const COOKIE_LEN: usize = 33;

/// The current and previous secrets.
pub struct CookieJar {
    version: u8,
    current: hmac::Key,
    previous: Option<hmac::Key>,
    rotated_at: u64,
    rotate_ms: u64,
}

impl CookieJar {
    /// A jar whose secret changes every `rotate_ms`.
    pub fn new(rng: &dyn SecureRandom, now: u64, rotate_ms: u64) -> Option<CookieJar> {
        Some(CookieJar {
            version: 0,
            current: hmac::Key::generate(hmac::HMAC_SHA256, rng).ok()?,
            previous: None,
            rotated_at: now,
            rotate_ms,
        })
    }

    /// Replaces the secret when due; cookies made with the previous one
    /// stay valid for one more period.
    pub fn rotate(&mut self, rng: &dyn SecureRandom, now: u64) {
        if now.saturating_sub(self.rotated_at) < self.rotate_ms {
            return;
        }
        if let Ok(k) = hmac::Key::generate(hmac::HMAC_SHA256, rng) {
            self.previous = Some(std::mem::replace(&mut self.current, k));
            self.version = self.version.wrapping_add(1);
            self.rotated_at = now;
        }
    }

    fn input(ni: &[u8], ip: Ipv4Addr, spi_i: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(ni.len() + 12);
        m.extend_from_slice(ni);
        m.extend_from_slice(&ip.octets());
        m.extend_from_slice(&spi_i.to_be_bytes());
        m
    }

    /// The cookie for this initiator.
    pub fn make(&self, ni: &[u8], ip: Ipv4Addr, spi_i: u64) -> Vec<u8> {
        let tag = hmac::sign(&self.current, &Self::input(ni, ip, spi_i));
        let mut out = Vec::with_capacity(COOKIE_LEN);
        out.push(self.version);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// True when `cookie` is one we made (current or previous secret).
    pub fn check(&self, cookie: &[u8], ni: &[u8], ip: Ipv4Addr, spi_i: u64) -> bool {
        let Some((&v, tag)) = cookie.split_first() else {
            return false;
        };
        let key = if v == self.version {
            Some(&self.current)
        } else if v == self.version.wrapping_sub(1) {
            self.previous.as_ref()
        } else {
            None
        };
        key.is_some_and(|k| hmac::verify(k, &Self::input(ni, ip, spi_i), tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_verify_for_one_rotation_and_bind_the_initiator() {
        let rng = ring::rand::SystemRandom::new();
        let mut jar = CookieJar::new(&rng, 0, 1000).unwrap();
        let ip = Ipv4Addr::new(203, 0, 113, 10);
        let c = jar.make(b"nonce-nonce-nonce", ip, 7);
        assert_eq!(c.len(), COOKIE_LEN);
        assert!(jar.check(&c, b"nonce-nonce-nonce", ip, 7));
        assert!(!jar.check(&c, b"nonce-nonce-nonce", ip, 8));
        assert!(!jar.check(&c, b"nonce-nonce-nonce", Ipv4Addr::new(203, 0, 113, 11), 7));
        assert!(!jar.check(&[], b"n", ip, 7));
        jar.rotate(&rng, 500);
        assert!(
            jar.check(&c, b"nonce-nonce-nonce", ip, 7),
            "not yet rotated"
        );
        jar.rotate(&rng, 1000);
        assert!(
            jar.check(&c, b"nonce-nonce-nonce", ip, 7),
            "previous secret"
        );
        jar.rotate(&rng, 2000);
        assert!(!jar.check(&c, b"nonce-nonce-nonce", ip, 7), "expired");
    }
}
