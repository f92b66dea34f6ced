//! Tests of the IKEv2 codec: a hand-made IKE_SA_INIT vector, round trips of
//! every payload, malformed input per payload kind, and robustness loops.

mod chain;
mod malformed;
mod payloads;
mod vector;

use super::*;

/// Emits `p`'s body and parses it back as the chain would present it.
fn reparse(p: &Payload) -> Result<Payload, crate::wire::WireError> {
    let mut body = vec![0u8; p.body_len()];
    assert_eq!(p.emit_body(&mut body)?, body.len());
    let (next, critical) = match p {
        Payload::Sk { first, .. } | Payload::Skf { first, .. } => (*first, false),
        Payload::Unknown { critical, .. } => (PayloadType::NONE, *critical),
        _ => (PayloadType::NONE, false),
    };
    Payload::parse(&RawPayload {
        ty: p.ty(),
        next,
        critical,
        body: &body,
    })
}

/// Parses a message; when it parses, re-emits it and checks that the result
/// parses to the same header and payloads. Never panics on any input.
fn check_message(msg: &[u8]) -> bool {
    let Ok(h) = Header::new_checked(msg) else {
        return false;
    };
    let Ok(payloads) = parse_chain(h.next_payload(), h.payload_bytes()) else {
        return false;
    };
    for p in &payloads {
        match reparse(p) {
            Ok(q) => assert_eq!(&q, p),
            // The only payload that cannot be re-emitted: its attribute bytes are gone.
            Err(_) => assert!(has_unknown_attribute(p), "{p:?}"),
        }
    }
    if payloads.iter().any(has_unknown_attribute) {
        return true;
    }
    let repr = HeaderRepr::parse(&h);
    let mut out = vec![0u8; HEADER_LEN + chain_len(&payloads)];
    let n = emit_message(&repr, &payloads, &mut out).expect("re-emit");
    assert_eq!(n, out.len());
    // Bodies re-emit at their received size, so the header comes back identical.
    assert_eq!(n, h.message().len());
    let h2 = Header::new_checked(&out[..]).expect("re-parse header");
    assert_eq!(HeaderRepr::parse(&h2), repr);
    assert_eq!(
        parse_chain(h2.next_payload(), h2.payload_bytes()),
        Ok(payloads)
    );
    true
}

fn has_unknown_attribute(p: &Payload) -> bool {
    matches!(p, Payload::Sa(props)
        if props.iter().flat_map(|p| &p.transforms).any(|t| t.unknown_attribute))
}
