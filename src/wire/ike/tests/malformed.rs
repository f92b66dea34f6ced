//! Malformed and truncated input per payload kind, and robustness loops
//! over the hand-made message: errors, never panics.

use super::payloads::every_payload;
use super::vector::IKE_SA_INIT_REQ;
use super::*;
use crate::wire::WireError::{Malformed, Truncated};

fn parse(ty: PayloadType, body: &[u8]) -> Result<Payload, crate::wire::WireError> {
    Payload::parse(&RawPayload {
        ty,
        next: PayloadType::NONE,
        critical: false,
        body,
    })
}

/// Proposal #1, IKE, no SPI, with the given transform count and transforms.
fn proposal(last: u8, number: u8, count: u8, transforms: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + transforms.len()).unwrap().to_be_bytes();
    let mut p = vec![last, 0, len[0], len[1], number, 1, 0, count];
    p.extend_from_slice(transforms);
    p
}

const PRF: [u8; 8] = [0, 0, 0, 8, 2, 0, 0, 5];
const PRF_MORE: [u8; 8] = [3, 0, 0, 8, 2, 0, 0, 5];

#[test]
fn sa_counts_markers_and_numbers_must_agree() {
    let ok = proposal(0, 1, 2, &[PRF_MORE, PRF].concat());
    assert!(
        matches!(parse(PayloadType::SA, &ok), Ok(Payload::Sa(p)) if p[0].transforms.len() == 2)
    );
    // Count says 3, two transforms present.
    let bad = proposal(0, 1, 3, &[PRF_MORE, PRF].concat());
    assert_eq!(parse(PayloadType::SA, &bad), Err(Malformed));
    // Count says 1, two present.
    let bad = proposal(0, 1, 1, &[PRF_MORE, PRF].concat());
    assert_eq!(parse(PayloadType::SA, &bad), Err(Malformed));
    // Last marker on the first transform, another follows.
    let bad = proposal(0, 1, 2, &[PRF, PRF].concat());
    assert_eq!(parse(PayloadType::SA, &bad), Err(Malformed));
    // "More" marker on the final transform.
    let bad = proposal(0, 1, 2, &[PRF_MORE, PRF_MORE].concat());
    assert!(parse(PayloadType::SA, &bad).is_err());
    // Transform marker not 0 or 3.
    let bad = proposal(0, 1, 1, &[2, 0, 0, 8, 2, 0, 0, 5]);
    assert_eq!(parse(PayloadType::SA, &bad), Err(Malformed));
    // Transform length below its header / past the proposal.
    let bad = proposal(0, 1, 1, &[0, 0, 0, 7, 2, 0, 0, 5]);
    assert!(parse(PayloadType::SA, &bad).is_err());
    let bad = proposal(0, 1, 1, &[0, 0, 0, 9, 2, 0, 0, 5]);
    assert_eq!(parse(PayloadType::SA, &bad), Err(Truncated));
    // Proposal length past the body, and below its header.
    let mut bad = proposal(0, 1, 1, &PRF);
    bad[3] += 1;
    assert_eq!(parse(PayloadType::SA, &bad), Err(Truncated));
    bad[3] = 3;
    assert!(parse(PayloadType::SA, &bad).is_err());
    // Proposal markers: "more" on the last, "last" before another, bad value.
    assert!(parse(PayloadType::SA, &proposal(2, 1, 1, &PRF)).is_err());
    let two_last = [proposal(0, 1, 1, &PRF), proposal(0, 2, 1, &PRF)].concat();
    assert_eq!(parse(PayloadType::SA, &two_last), Err(Malformed));
    assert_eq!(
        parse(PayloadType::SA, &proposal(1, 1, 1, &PRF)),
        Err(Malformed)
    );
    // Numbers 1, 2 are fine; 1, 3 and 2, 3 are not; a lone answer may be 3 but not 0.
    let seq = |a, b| [proposal(2, a, 1, &PRF), proposal(0, b, 1, &PRF)].concat();
    assert!(parse(PayloadType::SA, &seq(1, 2)).is_ok());
    assert_eq!(parse(PayloadType::SA, &seq(1, 3)), Err(Malformed));
    assert_eq!(parse(PayloadType::SA, &seq(2, 3)), Err(Malformed));
    assert!(parse(PayloadType::SA, &proposal(0, 3, 1, &PRF)).is_ok());
    assert_eq!(
        parse(PayloadType::SA, &proposal(0, 0, 1, &PRF)),
        Err(Malformed)
    );
    // No proposal at all.
    assert_eq!(parse(PayloadType::SA, &[]), Err(Truncated));
}

#[test]
fn sa_spi_sizes_follow_the_protocol() {
    // ESP proposal with a 3-byte SPI.
    let mut p = vec![0, 0, 0, 19, 1, 3, 3, 1, 0xaa, 0xbb, 0xcc];
    p.extend_from_slice(&PRF);
    assert_eq!(parse(PayloadType::SA, &p), Err(Malformed));
    // The same with 4 bytes.
    let mut p = vec![0, 0, 0, 20, 1, 3, 4, 1, 0xaa, 0xbb, 0xcc, 0xdd];
    p.extend_from_slice(&PRF);
    let Ok(Payload::Sa(props)) = parse(PayloadType::SA, &p) else {
        panic!()
    };
    assert_eq!(props[0].spi_u32(), Some(0xaabb_ccdd));
    // SPI size larger than the proposal.
    let p = [0, 0, 0, 8, 1, 3, 4, 0];
    assert_eq!(parse(PayloadType::SA, &p), Err(Truncated));
}

#[test]
fn sa_attributes() {
    // Unknown TV attribute (type 15), then KEY_LENGTH 128.
    let t = [0, 0, 0, 16, 1, 0, 0, 20, 0x80, 15, 0, 1, 0x80, 14, 0, 128];
    let Ok(Payload::Sa(p)) = parse(PayloadType::SA, &proposal(0, 1, 1, &t)) else {
        panic!()
    };
    let tr = &p[0].transforms[0];
    assert_eq!((tr.key_length, tr.unknown_attribute), (Some(128), true));
    // It cannot be emitted: its attribute bytes are gone.
    assert_eq!(
        Payload::Sa(p.clone()).emit_body(&mut [0; 64]),
        Err(Malformed)
    );
    // TLV attribute (AF clear) with a 2-byte value.
    let t = [0, 0, 0, 14, 1, 0, 0, 20, 0, 14, 0, 2, 1, 0];
    let Ok(Payload::Sa(p)) = parse(PayloadType::SA, &proposal(0, 1, 1, &t)) else {
        panic!()
    };
    let tr = &p[0].transforms[0];
    assert_eq!((tr.key_length, tr.unknown_attribute), (None, true));
    // TLV attribute running past the transform; half an attribute.
    let t = [0, 0, 0, 14, 1, 0, 0, 20, 0, 14, 0, 3, 1, 0];
    assert_eq!(
        parse(PayloadType::SA, &proposal(0, 1, 1, &t)),
        Err(Truncated)
    );
    let t = [0, 0, 0, 10, 1, 0, 0, 20, 0x80, 14];
    assert_eq!(
        parse(PayloadType::SA, &proposal(0, 1, 1, &t)),
        Err(Truncated)
    );
    // Two key lengths.
    let t = [0, 0, 0, 16, 1, 0, 0, 20, 0x80, 14, 0, 128, 0x80, 14, 1, 0];
    assert_eq!(
        parse(PayloadType::SA, &proposal(0, 1, 1, &t)),
        Err(Malformed)
    );
}

#[test]
fn simple_payload_limits() {
    assert_eq!(parse(PayloadType::NONCE, &[0; 15]), Err(Malformed));
    assert_eq!(
        parse(PayloadType::NONCE, &[0; 16]),
        Ok(Payload::Nonce(vec![0; 16]))
    );
    assert_eq!(
        parse(PayloadType::NONCE, &[0; 256]),
        Ok(Payload::Nonce(vec![0; 256]))
    );
    assert_eq!(parse(PayloadType::NONCE, &[0; 257]), Err(Malformed));
    assert_eq!(
        Payload::Nonce(vec![0; 8]).emit_body(&mut [0; 8]),
        Err(Malformed)
    );
    // KE: header only, or shorter.
    assert_eq!(parse(PayloadType::KE, &[0, 19, 0, 0]), Err(Malformed));
    assert_eq!(parse(PayloadType::KE, &[0, 19, 0]), Err(Truncated));
    let empty_ke = Payload::Ke {
        group: 19,
        data: vec![],
    };
    assert_eq!(empty_ke.emit_body(&mut [0; 4]), Err(Malformed));
    // ID: IPv4 of 3 bytes, IPv6 of 4, missing reserved bytes.
    assert_eq!(
        parse(PayloadType::IDI, &[1, 0, 0, 0, 10, 0, 0]),
        Err(Malformed)
    );
    assert_eq!(
        parse(PayloadType::IDR, &[5, 0, 0, 0, 10, 0, 0, 1]),
        Err(Malformed)
    );
    assert_eq!(parse(PayloadType::IDI, &[2, 0, 0]), Err(Truncated));
    // AUTH without reserved bytes; CERT without encoding.
    assert_eq!(parse(PayloadType::AUTH, &[2, 0]), Err(Truncated));
    assert_eq!(parse(PayloadType::CERT, &[]), Err(Truncated));
    assert_eq!(parse(PayloadType::CERTREQ, &[]), Err(Truncated));
}

#[test]
fn notify_delete_cp_limits() {
    // Notify: SPI size past the body; too short for its fixed part.
    assert_eq!(
        parse(PayloadType::NOTIFY, &[3, 4, 0x40, 0x09, 1, 2]),
        Err(Truncated)
    );
    assert_eq!(parse(PayloadType::NOTIFY, &[0, 0, 0x40]), Err(Truncated));
    // Delete: ESP, count 2, one SPI; count 1, two SPIs; wrong SPI sizes.
    assert_eq!(
        parse(PayloadType::DELETE, &[3, 4, 0, 2, 1, 2, 3, 4]),
        Err(Truncated)
    );
    assert_eq!(
        parse(PayloadType::DELETE, &[3, 4, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]),
        Err(Malformed)
    );
    assert_eq!(
        parse(PayloadType::DELETE, &[3, 3, 0, 1, 1, 2, 3]),
        Err(Malformed)
    );
    assert_eq!(parse(PayloadType::DELETE, &[1, 8, 0, 0]), Err(Malformed));
    assert_eq!(parse(PayloadType::DELETE, &[1, 0, 0, 1]), Err(Malformed));
    // Unknown protocol: a count without an SPI size is meaningless.
    assert_eq!(
        parse(PayloadType::DELETE, &[9, 0, 0xff, 0xff]),
        Err(Malformed)
    );
    assert_eq!(
        parse(PayloadType::DELETE, &[1, 0, 0, 0]),
        Ok(Payload::Delete(Delete::ike()))
    );
    let mut d = Delete::esp(&[1000]);
    d.spis[0].push(0);
    assert_eq!(Payload::Delete(d).emit_body(&mut [0; 16]), Err(Malformed));
    // CP: attribute length past the end; R bit ignored.
    assert_eq!(
        parse(PayloadType::CP, &[1, 0, 0, 0, 0, 1, 0, 4, 10]),
        Err(Truncated)
    );
    assert_eq!(
        parse(PayloadType::CP, &[2, 0, 0, 0, 0x80, 1, 0, 0]),
        Ok(Payload::Cp(Config {
            ty: CfgType::CFG_REPLY,
            attributes: vec![CfgAttribute {
                ty: 1,
                value: vec![]
            }]
        }))
    );
    let r_bit = Payload::Cp(Config {
        ty: CfgType::CFG_SET,
        attributes: vec![CfgAttribute {
            ty: 0x8001,
            value: vec![],
        }],
    });
    assert_eq!(r_bit.emit_body(&mut [0; 8]), Err(Malformed));
}

#[test]
fn ts_and_skf_limits() {
    let v4 = [7, 6, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255];
    let ts = |count: u8, sels: &[u8]| [&[count, 0, 0, 0][..], sels].concat();
    assert!(matches!(parse(PayloadType::TSI, &ts(1, &v4)), Ok(Payload::TsI(t)) if t.len() == 1));
    // Count mismatch either way.
    assert_eq!(parse(PayloadType::TSI, &ts(2, &v4)), Err(Malformed));
    assert_eq!(parse(PayloadType::TSR, &ts(0, &v4)), Err(Malformed));
    // IPv4 range with length 17 (and the byte present), length 15, length 3.
    let mut long = v4.to_vec();
    long[3] = 17;
    long.push(0);
    assert_eq!(parse(PayloadType::TSI, &ts(1, &long)), Err(Malformed));
    let mut short = v4;
    short[3] = 15;
    assert!(parse(PayloadType::TSI, &ts(1, &short[..15])).is_err());
    let mut tiny = v4;
    tiny[3] = 3;
    assert_eq!(parse(PayloadType::TSI, &ts(1, &tiny)), Err(Malformed));
    // Length past the end.
    let mut past = v4;
    past[3] = 20;
    assert_eq!(parse(PayloadType::TSI, &ts(1, &past)), Err(Truncated));
    // An Other selector posing as IPv4 would come back as V4: refused.
    let fake = Payload::TsI(vec![TrafficSelector::Other {
        ty: TsType::IPV4_ADDR_RANGE,
        body: vec![0; 13],
    }]);
    assert_eq!(fake.emit_body(&mut [0; 20]), Err(Malformed));
    let empty = Payload::TsI(vec![TrafficSelector::Other {
        ty: TsType(9),
        body: vec![],
    }]);
    assert_eq!(empty.emit_body(&mut [0; 20]), Err(Malformed));
    // SKF: number 0, number > total, total 0, too short.
    assert_eq!(parse(PayloadType::SKF, &[0, 0, 0, 1, 9]), Err(Malformed));
    assert_eq!(parse(PayloadType::SKF, &[0, 3, 0, 2, 9]), Err(Malformed));
    assert_eq!(parse(PayloadType::SKF, &[0, 1, 0, 0, 9]), Err(Malformed));
    assert_eq!(parse(PayloadType::SKF, &[0, 1, 0]), Err(Truncated));
    let skf = Payload::Skf {
        number: 0,
        total: 1,
        first: PayloadType::NONE,
        data: vec![],
    };
    assert_eq!(skf.emit_body(&mut [0; 4]), Err(Malformed));
}

#[test]
fn every_truncation_of_the_message_is_an_error() {
    let v = IKE_SA_INIT_REQ;
    for n in 0..v.len() {
        // The buffer cut short.
        assert!(Header::new_checked(&v[..n]).is_err(), "{n}");
        // The buffer and the length field cut short together.
        if n >= HEADER_LEN {
            let mut cut = v[..n].to_vec();
            cut[24..28].copy_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
            let h = Header::new_checked(&cut[..]).unwrap();
            assert!(
                parse_chain(h.next_payload(), h.payload_bytes()).is_err(),
                "{n}"
            );
        }
    }
}

#[test]
fn every_truncation_of_every_body_is_handled() {
    // Cut each payload body and wrap it in a consistent generic header: the
    // result is an error or a payload that round-trips, never a panic.
    for p in every_payload() {
        let mut body = vec![0u8; p.body_len()];
        p.emit_body(&mut body).unwrap();
        for n in 0..body.len() {
            if let Ok(q) = parse(p.ty(), &body[..n]) {
                if !matches!(q, Payload::Sk { .. }) {
                    assert_eq!(reparse(&q), Ok(q.clone()));
                }
            }
        }
    }
    // SA, TS and Delete bodies have no valid proper prefix.
    for p in every_payload() {
        if matches!(p, Payload::Sa(_) | Payload::TsI(_) | Payload::Delete(_)) {
            let mut body = vec![0u8; p.body_len()];
            p.emit_body(&mut body).unwrap();
            for n in 0..body.len() {
                assert!(parse(p.ty(), &body[..n]).is_err(), "{:?} {n}", p.ty());
            }
        }
    }
}

#[test]
fn byte_flips_never_panic_and_round_trip_when_accepted() {
    let mut accepted = 0;
    for i in 0..IKE_SA_INIT_REQ.len() {
        for x in [0u8, 1, 2, 3, 4, 0x7f, 0x80, 0xfe, 0xff, !IKE_SA_INIT_REQ[i]] {
            let mut v = IKE_SA_INIT_REQ;
            v[i] = x;
            accepted += usize::from(check_message(&v));
        }
    }
    // Plenty of flips land in opaque data and must still parse.
    assert!(accepted > 1000, "{accepted}");
}

#[test]
fn every_payload_in_a_message_survives_byte_flips() {
    let all = every_payload();
    let mut msg = vec![0u8; HEADER_LEN + chain_len(&all)];
    let header = HeaderRepr {
        spi_i: 1,
        spi_r: 2,
        next_payload: PayloadType::NONE,
        exchange: ExchangeType::IKE_AUTH,
        flags: Flags::new(true, false),
        message_id: 1,
        length: 0,
    };
    let n = emit_message(&header, &all, &mut msg).unwrap();
    assert!(check_message(&msg[..n]));
    for i in 0..n {
        for x in [0u8, 3, 0x80, 0xff] {
            let mut v = msg.clone();
            v[i] = x;
            check_message(&v);
        }
    }
}
