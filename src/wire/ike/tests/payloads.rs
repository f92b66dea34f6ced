//! Round trips of every payload kind, the header, and the newtypes.

use core::net::Ipv4Addr;

use super::*;

/// One payload of every kind (SK last, as it must be in a chain).
pub(super) fn every_payload() -> Vec<Payload> {
    vec![
        Payload::Sa(vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::ESP,
                spi: vec![0xb7, 0x28, 0x56, 0x62],
                transforms: vec![
                    Transform::with_key_length(
                        TransformType::ENCR,
                        transform_id::ENCR_AES_CBC,
                        256,
                    ),
                    Transform::new(TransformType::INTEG, transform_id::AUTH_HMAC_SHA2_256_128),
                    Transform::new(TransformType::ESN, transform_id::ESN_NO),
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::IKE,
                spi: 0x1122_3344_5566_7788u64.to_be_bytes().to_vec(),
                transforms: vec![],
            },
        ]),
        Payload::Ke {
            group: transform_id::DH_ECP256,
            data: vec![4; 64],
        },
        Payload::IdI(Identification::ipv4(Ipv4Addr::new(10, 98, 0, 5))),
        Payload::IdR(Identification {
            ty: IdType::RFC822_ADDR,
            data: b"vpn@example.org".to_vec(),
        }),
        Payload::Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![0x30, 0x82, 0x01, 0x00],
        },
        Payload::CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![0xaa; 20],
        },
        Payload::Auth {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data: vec![1, 2, 3],
        },
        Payload::Nonce(vec![9; 16]),
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP,
            spi: vec![0, 0, 1, 0],
            ty: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Notify(Notify::error(NotifyType::NO_PROPOSAL_CHOSEN)),
        Payload::Delete(Delete::ike()),
        Payload::Delete(Delete::esp(&[0xd456_0ca1, 0x0000_0100])),
        Payload::Vendor(b"spimux".to_vec()),
        Payload::TsI(vec![
            TrafficSelector::V4 {
                ip_protocol: 17,
                start_port: 500,
                end_port: 4500,
                start: Ipv4Addr::new(10, 0, 0, 0),
                end: Ipv4Addr::new(10, 255, 255, 255),
            },
            TrafficSelector::Other {
                ty: TsType::IPV6_ADDR_RANGE,
                body: {
                    let mut b = vec![6, 0, 0, 0xff, 0xff];
                    b.extend_from_slice(&[0u8; 16]);
                    b.extend_from_slice(&[0xffu8; 16]);
                    b
                },
            },
        ]),
        Payload::TsR(vec![]),
        Payload::Cp(Config {
            ty: CfgType::CFG_REQUEST,
            attributes: vec![
                CfgAttribute {
                    ty: CfgAttribute::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                CfgAttribute {
                    ty: CfgAttribute::INTERNAL_IP4_DNS,
                    value: vec![10, 0, 0, 53],
                },
            ],
        }),
        Payload::Eap(vec![1, 7, 0, 5, 1]),
        Payload::Unknown {
            ty: PayloadType(54),
            critical: true,
            body: vec![1, 2],
        },
        Payload::Unknown {
            ty: PayloadType(200),
            critical: false,
            body: vec![],
        },
        Payload::Sk {
            first: PayloadType::IDI,
            data: vec![0xee; 40],
        },
    ]
}

#[test]
fn every_payload_body_round_trips() {
    for p in every_payload() {
        assert_eq!(reparse(&p), Ok(p.clone()), "{:?}", p.ty());
    }
    let skf = Payload::Skf {
        number: 2,
        total: 3,
        first: PayloadType::NONE,
        data: vec![5; 33],
    };
    assert_eq!(reparse(&skf), Ok(skf.clone()));
}

#[test]
fn every_payload_chain_round_trips() {
    let all = every_payload();
    let mut out = vec![0u8; chain_len(&all)];
    let (first, n) = emit_chain(&all, &mut out).unwrap();
    assert_eq!(first, PayloadType::SA);
    assert_eq!(n, out.len());
    assert_eq!(parse_chain(first, &out), Ok(all.clone()));
    // The unknown critical payload keeps its bit on the wire.
    let raw: Vec<_> = PayloadIter::new(first, &out).map(Result::unwrap).collect();
    let unknown = raw.iter().find(|r| r.ty == PayloadType(54)).unwrap();
    assert!(unknown.critical);
    assert_eq!(unknown.body, &[1, 2]);
    assert!(raw
        .iter()
        .filter(|r| r.ty != PayloadType(54))
        .all(|r| !r.critical));
    // SK is last; its next field names the first inner payload.
    let sk = raw.last().unwrap();
    assert_eq!((sk.ty, sk.next), (PayloadType::SK, PayloadType::IDI));
}

#[test]
fn header_round_trips() {
    let repr = HeaderRepr {
        spi_i: 0x8000_0000_0000_0001,
        spi_r: 0xffff_ffff_ffff_fffe,
        next_payload: PayloadType::SK,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags::new(false, true),
        message_id: 0x0102_0304,
        length: 40,
    };
    let mut b = [0x55u8; 40];
    repr.emit(&mut b).unwrap();
    assert_eq!(b[17], 0x20, "version 2.0");
    assert_eq!(b[19], Flags::RESPONSE);
    assert_eq!(&b[28..], &[0x55; 12], "nothing written past the header");
    let h = Header::new_checked(&b[..]).unwrap();
    assert_eq!(HeaderRepr::parse(&h), repr);
    assert_eq!(h.payload_bytes(), &[0x55; 12]);
    assert_eq!(
        repr.emit(&mut [0u8; 27]),
        Err(crate::wire::WireError::Truncated)
    );
}

#[test]
fn skf_fragments_round_trip_in_a_chain() {
    let frag1 = vec![Payload::Skf {
        number: 1,
        total: 2,
        first: PayloadType::IDI,
        data: vec![7; 24],
    }];
    let mut out = vec![0u8; chain_len(&frag1)];
    let (first, n) = emit_chain(&frag1, &mut out).unwrap();
    assert_eq!((first, n), (PayloadType::SKF, 4 + 4 + 24));
    assert_eq!(&out[..8], &[35, 0, 0, 32, 0, 1, 0, 2]);
    assert_eq!(parse_chain(first, &out), Ok(frag1));
    assert_eq!(SKF_HEADER_LEN, 8);
}

#[test]
fn newtypes_print_names_and_numbers() {
    assert_eq!(PayloadType::SKF.to_string(), "SKF");
    assert_eq!(PayloadType(99).to_string(), "99");
    assert_eq!(NotifyType::COOKIE.name(), Some("COOKIE"));
    assert_eq!(ExchangeType(34), ExchangeType::IKE_SA_INIT);
    assert_eq!(TransformType::DH, TransformType::KE);
    assert!(NotifyType::CHILD_SA_NOT_FOUND.is_error());
    assert!(NotifyType(16383).is_error());
    assert!(!NotifyType::INITIAL_CONTACT.is_error());
    let f = Flags(Flags::INITIATOR | Flags::RESPONSE);
    assert!(f.initiator() && f.response() && !f.version());
}

#[test]
fn helpers_read_spis() {
    let d = Delete::esp(&[0xd456_0ca1, 256]);
    assert_eq!(d.spis_u32(), Some(vec![0xd456_0ca1, 256]));
    let p = Proposal {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: 7u64.to_be_bytes().to_vec(),
        transforms: vec![],
    };
    assert_eq!((p.spi_u64(), p.spi_u32()), (Some(7), None));
    let n = Notify::error(NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(
        (n.protocol, n.spi.len(), n.data.len()),
        (ProtocolId::NONE, 0, 0)
    );
}
