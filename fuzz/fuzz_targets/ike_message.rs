//! IKEv2 message codec: whatever parses must re-emit to something that
//! parses back to the same header and payloads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::ike::{
    chain_len, emit_chain, emit_message, parse_chain, Header, HeaderRepr, Payload, PayloadIter,
    PayloadType, RawPayload, HEADER_LEN,
};

/// The one payload that cannot be re-emitted: the bytes of its unknown
/// transform attribute are not kept.
fn has_unknown_attribute(p: &Payload) -> bool {
    matches!(p, Payload::Sa(props)
        if props.iter().flat_map(|p| &p.transforms).any(|t| t.unknown_attribute))
}

/// Every payload alone: emit its body, parse it back, compare.
fn payloads_round_trip(payloads: &[Payload]) {
    for p in payloads {
        let mut body = vec![0u8; p.body_len()];
        match p.emit_body(&mut body) {
            Ok(n) => assert_eq!(n, body.len()),
            Err(e) => {
                assert!(has_unknown_attribute(p), "emit failed ({e:?}) for {p:?}");
                continue;
            }
        }
        let (next, critical) = match p {
            Payload::Sk { first, .. } | Payload::Skf { first, .. } => (*first, false),
            Payload::Unknown { critical, .. } => (PayloadType::NONE, *critical),
            _ => (PayloadType::NONE, false),
        };
        let raw = RawPayload {
            ty: p.ty(),
            next,
            critical,
            body: &body,
        };
        assert_eq!(Payload::parse(&raw).as_ref(), Ok(p));
    }
}

/// A parsed chain re-emitted as a chain parses to the same payloads.
fn chain_round_trips(payloads: &[Payload]) -> bool {
    payloads_round_trip(payloads);
    if payloads.iter().any(has_unknown_attribute) {
        return false;
    }
    let mut out = vec![0u8; chain_len(payloads)];
    let (first, n) = emit_chain(payloads, &mut out).expect("re-emit chain");
    assert_eq!(n, out.len());
    assert_eq!(parse_chain(first, &out).as_deref(), Ok(payloads));
    true
}

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Header::new_checked(data) else {
        return;
    };
    assert!(h.message().len() >= HEADER_LEN && h.message().len() <= data.len());
    let raw_count = h.payloads().count();
    let Ok(payloads) = parse_chain(h.next_payload(), h.payload_bytes()) else {
        return;
    };
    assert_eq!(raw_count, payloads.len());
    // Fuzzed SK contents double as plaintext inner chains.
    if let Some(Payload::Sk { first, data }) = payloads.last() {
        if let Ok(inner) = parse_chain(*first, data) {
            chain_round_trips(&inner);
        }
    }
    if !chain_round_trips(&payloads) {
        return;
    }
    // The whole message: same header fields, same chain.
    let repr = HeaderRepr::parse(&h);
    let mut out = vec![0u8; HEADER_LEN + chain_len(&payloads)];
    let n = emit_message(&repr, &payloads, &mut out).expect("re-emit message");
    assert_eq!(n, out.len());
    let h2 = Header::new_checked(&out[..]).expect("re-parse header");
    // Every body re-emits at its received size (reserved bits aside), so
    // the header comes back identical, next-payload and length included.
    assert_eq!(n, h.message().len());
    assert_eq!(HeaderRepr::parse(&h2), repr);
    assert_eq!((h2.major_version(), h2.minor_version()), (2, 0));
    assert_eq!(
        parse_chain(h2.next_payload(), h2.payload_bytes()).as_deref(),
        Ok(&payloads[..])
    );
    assert_eq!(
        PayloadIter::new(h2.next_payload(), h2.payload_bytes()).count(),
        payloads.len()
    );
});
