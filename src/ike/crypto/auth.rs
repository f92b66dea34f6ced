//! AUTH payload inputs and the shared-key MIC (RFC 7296 §2.15).

use super::Prf;
use ring::hmac;
use zeroize::Zeroizing;

/// The fixed pad of §2.15 mixed into the pre-shared key.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH payload input (§2.15): the sender's first message (IKE_SA_INIT
/// request for the initiator, response for the responder) ‖ the peer's
/// nonce data ‖ prf(SK_px, IDx' payload body incl. its 4-byte ID
/// type/reserved header).
pub fn signed_octets(
    prf: Prf,
    first_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let mac = prf.compute(sk_p, &[id_body]);
    [first_message, peer_nonce, &mac].concat()
}

/// prf(psk, "Key Pad for IKEv2"): the HMAC key of the shared-key MIC.
fn psk_key(prf: Prf, psk: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(prf.compute(psk, &[KEY_PAD]))
}

/// Shared-key MIC: prf(prf(psk, "Key Pad for IKEv2"), signed_octets).
pub fn psk_auth(prf: Prf, psk: &[u8], signed_octets: &[u8]) -> Vec<u8> {
    prf.compute(&psk_key(prf, psk), &[signed_octets])
}

/// Constant-time check of a received PSK AUTH value (ring::hmac::verify).
pub fn psk_verify(prf: Prf, psk: &[u8], signed_octets: &[u8], received: &[u8]) -> bool {
    let key = hmac::Key::new(prf.hmac_alg(), &psk_key(prf, psk));
    hmac::verify(&key, signed_octets, received).is_ok()
}
