//! Integrity-check helpers shared by the protocol cores that use truncated
//! HMACs (`esp` and `ike`). Depends on ring only, so neither core depends on
//! the other.

use ring::error::Unspecified;
use ring::hmac;

/// Constant-time check of a truncated HMAC (RFC 4868 ICVs): computes the full
/// HMAC of the concatenation of `parts` under `key` and compares its first
/// `icv.len()` bytes with `icv`.
///
/// ring's `hmac::verify` only takes full-length tags, so the expected and
/// received ICVs are compared by HMAC-ing both under the same key and letting
/// `hmac::verify` compare those in constant time (the "double HMAC"
/// comparison: any timing left only concerns values the attacker cannot
/// predict). An empty `icv`, or one longer than the HMAC, never verifies.
pub fn verify_truncated_hmac(
    key: &hmac::Key,
    parts: &[&[u8]],
    icv: &[u8],
) -> Result<(), Unspecified> {
    let mut ctx = hmac::Context::with_key(key);
    for p in parts {
        ctx.update(p);
    }
    let full = ctx.sign();
    if icv.is_empty() {
        return Err(Unspecified);
    }
    let expected = full.as_ref().get(..icv.len()).ok_or(Unspecified)?;
    let received = hmac::sign(key, icv);
    hmac::verify(key, expected, received.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_right_prefix() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
        let tag = hmac::sign(&key, b"abcdef");
        let icv = &tag.as_ref()[..16];
        assert!(verify_truncated_hmac(&key, &[b"abc", b"def"], icv).is_ok());
        assert!(verify_truncated_hmac(&key, &[b"abcdef"], tag.as_ref()).is_ok());
        let mut bad = icv.to_vec();
        bad[15] ^= 1;
        assert!(verify_truncated_hmac(&key, &[b"abcdef"], &bad).is_err());
        assert!(verify_truncated_hmac(&key, &[b"abcdeF"], icv).is_err());
        assert!(verify_truncated_hmac(&key, &[b"abcdef"], &[]).is_err());
        assert!(verify_truncated_hmac(&key, &[b"abcdef"], &[0u8; 33]).is_err());
    }
}
