//! A hand-made IKE_SA_INIT request, laid out per RFC 7296 §3, parsed field by
//! field and re-emitted byte for byte.

use core::net::Ipv4Addr;

use super::*;

/// IKE_SA_INIT request: SA (one IKE proposal, 4 transforms), KE (Curve25519),
/// Nonce, NAT_DETECTION_SOURCE_IP, NAT_DETECTION_DESTINATION_IP,
/// IKEV2_FRAGMENTATION_SUPPORTED. 216 bytes.
#[rustfmt::skip]
pub(super) const IKE_SA_INIT_REQ: [u8; 216] = [
    // Header: SPIi, SPIr = 0
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // next SA (33), version 2.0, IKE_SA_INIT (34), flags Initiator
    0x21, 0x20, 0x22, 0x08,
    // message ID 0, length 216
    0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xd8,
    // SA: next KE (34), not critical, length 48
    0x22, 0x00, 0x00, 0x30,
    //   proposal: last, reserved, length 44, #1, IKE, SPI size 0, 4 transforms
    0x00, 0x00, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x04,
    //     transform: more, length 12, ENCR, AES-GCM-16, KEY_LENGTH (TV) 256
    0x03, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x14, 0x80, 0x0e, 0x01, 0x00,
    //     transform: more, length 8, PRF, HMAC-SHA2-256
    0x03, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x05,
    //     transform: more, length 8, KE, Curve25519
    0x03, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x1f,
    //     transform: last, length 8, KE, ECP-256
    0x00, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x13,
    // KE: next Nonce (40), length 40, group 31, reserved, 32-byte public value
    0x28, 0x00, 0x00, 0x28, 0x00, 0x1f, 0x00, 0x00,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    // Nonce: next Notify (41), length 36, 32-byte nonce
    0x29, 0x00, 0x00, 0x24,
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    // Notify: next Notify, length 28, protocol 0, SPI size 0, NAT_DETECTION_SOURCE_IP, SHA-1 hash
    0x29, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x04,
    0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51,
    0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51,
    // Notify: next Notify, length 28, NAT_DETECTION_DESTINATION_IP, hash
    0x29, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x05,
    0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52,
    0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52,
    // Notify: next NONE, length 8, IKEV2_FRAGMENTATION_SUPPORTED (16430), no data
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x40, 0x2e,
];

/// The payloads of [`IKE_SA_INIT_REQ`].
pub(super) fn ike_sa_init_payloads() -> Vec<Payload> {
    vec![
        Payload::Sa(vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::with_key_length(TransformType::ENCR, transform_id::ENCR_AES_GCM_16, 256),
                Transform::new(TransformType::PRF, transform_id::PRF_HMAC_SHA2_256),
                Transform::new(TransformType::KE, transform_id::DH_CURVE25519),
                Transform::new(TransformType::KE, transform_id::DH_ECP256),
            ],
        }]),
        Payload::Ke {
            group: transform_id::DH_CURVE25519,
            data: (0xa0..=0xbf).collect(),
        },
        Payload::Nonce((0xc0..=0xdf).collect()),
        Payload::Notify(Notify::status(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            vec![0x51; 20],
        )),
        Payload::Notify(Notify::status(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            vec![0x52; 20],
        )),
        Payload::Notify(Notify::status(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            vec![],
        )),
    ]
}

pub(super) fn ike_sa_init_header() -> HeaderRepr {
    HeaderRepr {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0,
        next_payload: PayloadType::SA,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: Flags::new(true, false),
        message_id: 0,
        length: 216,
    }
}

#[test]
fn ike_sa_init_header_fields() {
    let h = Header::new_checked(&IKE_SA_INIT_REQ[..]).unwrap();
    assert_eq!(h.spi_i(), 0x0102_0304_0506_0708);
    assert_eq!(h.spi_r(), 0);
    assert_eq!(h.next_payload(), PayloadType::SA);
    assert_eq!((h.major_version(), h.minor_version()), (2, 0));
    assert_eq!(h.exchange(), ExchangeType::IKE_SA_INIT);
    assert!(h.flags().initiator());
    assert!(!h.flags().response());
    assert!(!h.flags().version());
    assert_eq!(h.message_id(), 0);
    assert_eq!(h.length(), 216);
    assert_eq!(h.message().len(), 216);
    assert_eq!(HeaderRepr::parse(&h), ike_sa_init_header());
}

#[test]
fn ike_sa_init_raw_chain() {
    let h = Header::new_checked(&IKE_SA_INIT_REQ[..]).unwrap();
    let raw: Vec<RawPayload<'_>> = h.payloads().collect::<Result<_, _>>().unwrap();
    let types: Vec<(PayloadType, PayloadType, usize)> =
        raw.iter().map(|p| (p.ty, p.next, p.body.len())).collect();
    assert_eq!(
        types,
        [
            (PayloadType::SA, PayloadType::KE, 44),
            (PayloadType::KE, PayloadType::NONCE, 36),
            (PayloadType::NONCE, PayloadType::NOTIFY, 32),
            (PayloadType::NOTIFY, PayloadType::NOTIFY, 24),
            (PayloadType::NOTIFY, PayloadType::NOTIFY, 24),
            (PayloadType::NOTIFY, PayloadType::NONE, 4),
        ]
    );
    assert!(raw.iter().all(|p| !p.critical));
}

#[test]
fn ike_sa_init_payload_fields() {
    let h = Header::new_checked(&IKE_SA_INIT_REQ[..]).unwrap();
    let payloads = parse_chain(h.next_payload(), h.payload_bytes()).unwrap();
    let Payload::Sa(props) = &payloads[0] else {
        panic!("SA first, got {:?}", payloads[0]);
    };
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].number, 1);
    assert_eq!(props[0].protocol, ProtocolId::IKE);
    assert_eq!(props[0].spi_u64(), None);
    let encr = &props[0].transforms[0];
    assert_eq!(encr.ty, TransformType::ENCR);
    assert_eq!(encr.id, transform_id::ENCR_AES_GCM_16);
    assert_eq!(encr.key_length, Some(256));
    assert!(!encr.unknown_attribute);
    assert_eq!(props[0].transforms[3].id, transform_id::DH_ECP256);
    let Payload::Ke { group, data } = &payloads[1] else {
        panic!("KE second");
    };
    assert_eq!(*group, 31);
    assert_eq!(data.first(), Some(&0xa0));
    assert_eq!(data.len(), 32);
    let Payload::Notify(n) = &payloads[3] else {
        panic!("notify");
    };
    assert_eq!(n.ty, NotifyType::NAT_DETECTION_SOURCE_IP);
    assert!(!n.ty.is_error());
    assert_eq!(n.protocol, ProtocolId::NONE);
    assert!(n.spi.is_empty());
    assert_eq!(payloads, ike_sa_init_payloads());
}

#[test]
fn ike_sa_init_emits_byte_for_byte() {
    let payloads = ike_sa_init_payloads();
    assert_eq!(HEADER_LEN + chain_len(&payloads), IKE_SA_INIT_REQ.len());
    let mut out = [0u8; 300];
    let header = HeaderRepr {
        next_payload: PayloadType::NONE, // replaced by emit_message
        length: 0,
        ..ike_sa_init_header()
    };
    let n = emit_message(&header, &payloads, &mut out).unwrap();
    assert_eq!(&out[..n], &IKE_SA_INIT_REQ[..]);
    assert!(check_message(&IKE_SA_INIT_REQ));
}

/// A response carrying IDr, AUTH, SA for ESP, TSi/TSr inside an SK payload
/// would be opaque here; the plaintext inner chain is checked instead.
#[test]
fn ike_auth_inner_chain_round_trips() {
    let inner = vec![
        Payload::IdR(Identification::fqdn("gw.example")),
        Payload::Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0x77; 32],
        },
        Payload::Sa(vec![Proposal {
            number: 2, // the answer echoes the accepted proposal's number
            protocol: ProtocolId::ESP,
            spi: 0xd456_0ca1u32.to_be_bytes().to_vec(),
            transforms: vec![
                Transform::with_key_length(TransformType::ENCR, transform_id::ENCR_AES_GCM_16, 128),
                Transform::new(TransformType::ESN, transform_id::ESN_NO),
            ],
        }]),
        Payload::TsI(vec![TrafficSelector::v4_range(
            Ipv4Addr::new(10, 98, 0, 5),
            Ipv4Addr::new(10, 98, 0, 5),
        )]),
        Payload::TsR(vec![TrafficSelector::v4_range(
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(255, 255, 255, 255),
        )]),
    ];
    let mut out = vec![0u8; chain_len(&inner)];
    let (first, n) = emit_chain(&inner, &mut out).unwrap();
    assert_eq!((first, n), (PayloadType::IDR, out.len()));
    let back = parse_chain(first, &out).unwrap();
    assert_eq!(back, inner);
    let Payload::Sa(p) = &back[2] else { panic!() };
    assert_eq!(p[0].spi_u32(), Some(0xd456_0ca1));
}

/// The committed fuzz seeds are valid messages that round-trip.
#[test]
fn fuzz_seeds_parse_and_round_trip() {
    let init: &[u8] = include_bytes!("../../../../fuzz/seeds/ike_message/ike_sa_init_req.bin");
    assert_eq!(init, &IKE_SA_INIT_REQ[..]);
    let seeds: [&[u8]; 4] = [
        init,
        include_bytes!("../../../../fuzz/seeds/ike_message/ike_auth_sk.bin"),
        include_bytes!("../../../../fuzz/seeds/ike_message/ike_auth_skf.bin"),
        include_bytes!("../../../../fuzz/seeds/ike_message/informational_plain.bin"),
    ];
    for s in seeds {
        assert!(check_message(s));
    }
    let h = Header::new_checked(seeds[3]).unwrap();
    let payloads = parse_chain(h.next_payload(), h.payload_bytes()).unwrap();
    assert_eq!(payloads.len(), 5);
    assert_eq!(
        payloads[0],
        Payload::Delete(Delete::esp(&[0xd456_0ca1, 0xb728_5662]))
    );
    assert!(matches!(
        &payloads[4],
        Payload::Unknown { ty: PayloadType(60), critical: true, body } if body == &[1, 2]
    ));
    let h = Header::new_checked(seeds[2]).unwrap();
    assert!(matches!(
        parse_chain(h.next_payload(), h.payload_bytes()).unwrap()[..],
        [Payload::Skf {
            number: 1,
            total: 3,
            first: PayloadType::IDI,
            ..
        }]
    ));
}
