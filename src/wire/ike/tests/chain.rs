//! The generic chain: iterator errors, SK/SKF as last payload, emit limits.

use super::vector::{ike_sa_init_header, ike_sa_init_payloads, IKE_SA_INIT_REQ};
use super::*;
use crate::wire::WireError::{self, Malformed, Truncated};

type Item = Result<(PayloadType, usize), WireError>;

fn collect(first: PayloadType, buf: &[u8]) -> Vec<Item> {
    PayloadIter::new(first, buf)
        .map(|r| r.map(|p| (p.ty, p.body.len())))
        .collect()
}

#[test]
fn iterator_yields_one_error_then_stops() {
    // Length 3 (< 4).
    assert_eq!(
        collect(PayloadType::NONCE, &[0, 0, 0, 3, 9, 9]),
        [Err(Malformed)]
    );
    // Length runs past the buffer.
    assert_eq!(
        collect(PayloadType::NONCE, &[0, 0, 0, 9, 1, 2]),
        [Err(Truncated)]
    );
    // Generic header cut short.
    assert_eq!(collect(PayloadType::NONCE, &[0, 0, 0]), [Err(Truncated)]);
    // Next says more but the buffer ended.
    assert_eq!(
        collect(PayloadType::VENDOR, &[PayloadType::VENDOR.0, 0, 0, 4]),
        [Ok((PayloadType::VENDOR, 0)), Err(Truncated)]
    );
    // Bytes after a payload whose next is NONE.
    assert_eq!(
        collect(PayloadType::VENDOR, &[0, 0, 0, 5, 1, 0xff]),
        [Ok((PayloadType::VENDOR, 1)), Err(Malformed)]
    );
    // An empty chain.
    assert_eq!(collect(PayloadType::NONE, &[]), []);
    assert_eq!(collect(PayloadType::NONE, &[1]), [Err(Malformed)]);
}

#[test]
fn iterator_stops_after_sk() {
    // SK whose next names the first inner payload (IDi), then nothing.
    let buf = [PayloadType::IDI.0, 0, 0, 6, 0xaa, 0xbb];
    let raw: Vec<_> = PayloadIter::new(PayloadType::SK, &buf).collect();
    assert_eq!(raw.len(), 1);
    let sk = raw[0].unwrap();
    assert_eq!(
        (sk.ty, sk.next, sk.body),
        (PayloadType::SK, PayloadType::IDI, &[0xaa, 0xbb][..])
    );
    assert_eq!(
        parse_chain(PayloadType::SK, &buf),
        Ok(vec![Payload::Sk {
            first: PayloadType::IDI,
            data: vec![0xaa, 0xbb]
        }])
    );
    // Anything after SK is an error: SK must be last.
    let mut more = buf.to_vec();
    more.extend_from_slice(&[0, 0, 0, 4]);
    assert_eq!(
        collect(PayloadType::SK, &more),
        [Ok((PayloadType::SK, 2)), Err(Malformed)]
    );
    assert_eq!(parse_chain(PayloadType::SK, &more), Err(Malformed));
    // SKF likewise, after a plaintext payload.
    #[rustfmt::skip]
    let skf = [
        PayloadType::SKF.0, 0, 0, 5, 0xff, // vendor ID 0xff
        PayloadType::NONE.0, 0, 0, 9, 0, 2, 0, 2, 0x10, // fragment 2/2
    ];
    assert_eq!(
        parse_chain(PayloadType::VENDOR, &skf),
        Ok(vec![
            Payload::Vendor(vec![0xff]),
            Payload::Skf {
                number: 2,
                total: 2,
                first: PayloadType::NONE,
                data: vec![0x10]
            }
        ])
    );
}

#[test]
fn emit_chain_requires_sk_last() {
    let sk = Payload::Sk {
        first: PayloadType::IDI,
        data: vec![1; 8],
    };
    let mut out = [0u8; 64];
    assert_eq!(
        emit_chain(&[sk.clone(), Payload::Vendor(vec![])], &mut out),
        Err(Malformed)
    );
    let (first, n) = emit_chain(&[Payload::Vendor(vec![]), sk], &mut out).unwrap();
    assert_eq!(first, PayloadType::VENDOR);
    assert_eq!(
        &out[..n],
        &[46, 0, 0, 4, 35, 0, 0, 12, 1, 1, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(emit_chain(&[], &mut out), Ok((PayloadType::NONE, 0)));
}

#[test]
fn emit_refuses_small_buffers_and_unrepresentable_payloads() {
    let payloads = ike_sa_init_payloads();
    let mut out = [0u8; 216];
    for n in 0..216 {
        assert_eq!(
            emit_message(&ike_sa_init_header(), &payloads, &mut out[..n]),
            Err(Truncated),
            "{n}"
        );
    }
    assert_eq!(
        emit_message(&ike_sa_init_header(), &payloads, &mut out),
        Ok(216)
    );
    assert_eq!(out, IKE_SA_INIT_REQ);
    // A body that the 16-bit length cannot hold.
    let big = Payload::Vendor(vec![0; 65532]);
    assert_eq!(big.emit_body(&mut vec![0; 70000]), Err(Malformed));
    assert_eq!(
        Payload::Vendor(vec![0; 65531]).emit_body(&mut vec![0; 70000]),
        Ok(65531)
    );
    // More than 255 transforms.
    let many = Payload::Sa(vec![Proposal {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![Transform::new(TransformType::PRF, 5); 256],
    }]);
    assert_eq!(
        many.emit_body(&mut vec![0; many.body_len()]),
        Err(Malformed)
    );
    // An Unknown posing as a known type would not come back as Unknown.
    let fake = Payload::Unknown {
        ty: PayloadType::NONCE,
        critical: false,
        body: vec![0; 16],
    };
    assert_eq!(fake.emit_body(&mut [0; 16]), Err(Malformed));
    assert_eq!(
        emit_generic_header(&mut [0; 3], PayloadType::SA, false, 4),
        Err(Truncated)
    );
    assert_eq!(
        emit_generic_header(&mut [0; 4], PayloadType::SA, false, 3),
        Err(Malformed)
    );
    let mut h = [0; 4];
    emit_generic_header(&mut h, PayloadType::SA, true, 0x1234).unwrap();
    assert_eq!(h, [33, 0x80, 0x12, 0x34]);
}

#[test]
fn header_checks_lengths() {
    let v = IKE_SA_INIT_REQ;
    assert_eq!(Header::new_checked(&v[..27]).unwrap_err(), Truncated);
    // Length field below the header size.
    let mut short = v;
    short[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert_eq!(Header::new_checked(&short[..]).unwrap_err(), Malformed);
    // Length field past the buffer.
    let mut long = v;
    long[24..28].copy_from_slice(&217u32.to_be_bytes());
    assert_eq!(Header::new_checked(&long[..]).unwrap_err(), Truncated);
    let mut huge = v;
    huge[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(Header::new_checked(&huge[..]).unwrap_err(), Truncated);
    // Trailing bytes beyond the length are ignored.
    let mut padded = v.to_vec();
    padded.extend_from_slice(&[0xff; 5]);
    let h = Header::new_checked(&padded[..]).unwrap();
    assert_eq!(h.message(), &v[..]);
    assert_eq!(
        parse_chain(h.next_payload(), h.payload_bytes()),
        Ok(ike_sa_init_payloads())
    );
    // A header alone, with an empty chain.
    let mut bare = [0u8; 28];
    bare[27] = 28;
    let h = Header::new_checked(&bare[..]).unwrap();
    assert_eq!(h.payloads().count(), 0);
    assert_eq!(h.major_version(), 0, "version is the caller's to check");
}

#[test]
fn unknown_payloads_keep_type_and_critical_bit() {
    #[rustfmt::skip]
    let wrapped = [
        PayloadType(60).0, 0x7f, 0, 4, // type 201: reserved bits set, not critical
        PayloadType::NONE.0, 0x80, 0, 6, 0xde, 0xad, // type 60: critical
    ];
    assert_eq!(
        parse_chain(PayloadType(201), &wrapped),
        Ok(vec![
            Payload::Unknown {
                ty: PayloadType(201),
                critical: false,
                body: vec![]
            },
            Payload::Unknown {
                ty: PayloadType(60),
                critical: true,
                body: vec![0xde, 0xad]
            },
        ])
    );
    // A known payload with the critical bit set is simply that payload.
    let crit_vendor = [0, 0x80, 0, 5, 0x42];
    assert_eq!(
        parse_chain(PayloadType::VENDOR, &crit_vendor),
        Ok(vec![Payload::Vendor(vec![0x42])])
    );
}
