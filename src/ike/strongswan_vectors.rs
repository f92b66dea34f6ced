//! Messages captured from strongSwan 5.9.8 on the testbed
//! (`tests/data/ike/*`, made by `testbed/ike_capture.sh`), with the keys
//! charon logged: every message parses, our key derivation reproduces
//! charon's keys, our SK/SKF code opens its encrypted messages, and its
//! AUTH values verify with our PSK and certificate code.

use super::crypto::{
    psk_verify, signed_octets, Encr, EspSuite, Group, IkeSuite, Integ, Prf, TrustAnchors,
};
use super::message::{open, Opened, Reassembly};
use crate::wire::ike::{parse_chain, AuthMethod, Header, Payload, HEADER_LEN};
use std::collections::HashMap;
use std::path::PathBuf;

fn dir(scenario: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ike")
        .join(scenario)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `name = hex` lines of keys.txt.
fn keys(scenario: &str) -> HashMap<String, Vec<u8>> {
    std::fs::read_to_string(dir(scenario).join("keys.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(" = ")
                .or_else(|| l.strip_suffix(" =").map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_string(), unhex(v.trim())))
        .collect()
}

/// The captured messages in wire order.
fn messages(scenario: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir(scenario))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn plain(msg: &[u8]) -> Vec<Payload> {
    let h = Header::new_checked(msg).unwrap();
    parse_chain(h.next_payload(), &msg[HEADER_LEN..]).unwrap()
}

fn nonce(p: &[Payload]) -> Vec<u8> {
    p.iter()
        .find_map(|p| match p {
            Payload::Nonce(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap()
}

fn find<T>(p: &[Payload], f: impl Fn(&Payload) -> Option<T>) -> T {
    p.iter().find_map(f).unwrap()
}

/// Derives the IKE keys from the logged g^ir and checks every SK_* against charon's.
fn check_ike_keys(
    k: &HashMap<String, Vec<u8>>,
    suite: &IkeSuite,
    init_req: &[u8],
    init_resp: &[u8],
) -> super::crypto::IkeKeys {
    let h = Header::new_checked(init_resp).unwrap();
    let (ni, nr) = (nonce(&plain(init_req)), nonce(&plain(init_resp)));
    let keys = suite
        .derive(&ni, &nr, &k["ike1.g_ir"], h.spi_i(), h.spi_r())
        .unwrap();
    assert_eq!(h.spi_i().to_be_bytes().to_vec(), k["ike1.spi_i"]);
    assert_eq!(keys.sk_d, k["ike1.sk_d"]);
    assert_eq!(keys.sk_ei, k["ike1.sk_ei"]);
    assert_eq!(keys.sk_er, k["ike1.sk_er"]);
    assert_eq!(keys.sk_ai, k["ike1.sk_ai"]);
    assert_eq!(keys.sk_ar, k["ike1.sk_ar"]);
    assert_eq!(keys.sk_pi, k["ike1.sk_pi"]);
    assert_eq!(keys.sk_pr, k["ike1.sk_pr"]);
    keys
}

/// Opens protected messages (fragments reassembled) with the derived keys.
fn open_all(
    suite: &IkeSuite,
    keys: &super::crypto::IkeKeys,
    msgs: &[(String, Vec<u8>)],
) -> Vec<(String, Vec<Payload>)> {
    let (i_to_r, r_to_i) = suite.ciphers(keys).unwrap();
    let mut reasm = Reassembly::default();
    let mut out = Vec::new();
    for (name, m) in msgs {
        let h = Header::new_checked(&m[..]).unwrap();
        let cipher = if h.flags().initiator() {
            &i_to_r
        } else {
            &r_to_i
        };
        match open(&h, cipher, &mut reasm).unwrap() {
            Opened::Complete(p) => out.push((name.clone(), p)),
            Opened::Partial => {}
        }
    }
    out
}

/// The sender's identity, its AUTH payload and the octets it signed, for
/// IKE_AUTH payloads `p` of the initiator (`initiator`) or the responder.
fn auth_parts(
    p: &[Payload],
    initiator: bool,
    msgs: &[(String, Vec<u8>)],
    keys: &super::crypto::IkeKeys,
) -> (
    crate::wire::ike::Identification,
    AuthMethod,
    Vec<u8>,
    Vec<u8>,
) {
    let id = find(p, |x| match x {
        Payload::IdI(i) if initiator => Some(i.clone()),
        Payload::IdR(i) if !initiator => Some(i.clone()),
        _ => None,
    });
    let mut body = vec![id.ty.0, 0, 0, 0];
    body.extend_from_slice(&id.data);
    let (first, peer_msg, sk_p) = if initiator {
        (&msgs[0].1, &msgs[1].1, &keys.sk_pi)
    } else {
        (&msgs[1].1, &msgs[0].1, &keys.sk_pr)
    };
    let octets = signed_octets(
        Prf::HmacSha256,
        first,
        &nonce(&plain(peer_msg)),
        sk_p,
        &body,
    );
    let (method, data) = find(p, |x| match x {
        Payload::Auth { method, data } => Some((*method, data.clone())),
        _ => None,
    });
    (id, method, data, octets)
}

#[test]
fn every_captured_message_parses_and_re_emits_identically() {
    for s in ["psk-gcm-x25519", "psk-cbc-ecp256", "cert-ecdsa", "cert-rsa"] {
        for (name, m) in messages(s) {
            let h = Header::new_checked(&m[..]).unwrap_or_else(|e| panic!("{s}/{name}: {e:?}"));
            let chain = parse_chain(h.next_payload(), &m[HEADER_LEN..])
                .unwrap_or_else(|e| panic!("{s}/{name}: {e:?}"));
            let hdr = crate::wire::ike::HeaderRepr::parse(&h);
            let mut out = vec![0u8; m.len()];
            let n = crate::wire::ike::emit_message(&hdr, &chain, &mut out).unwrap();
            assert_eq!(&out[..n], &m[..], "{s}/{name} re-emits byte for byte");
        }
    }
}

#[test]
fn psk_gcm_x25519_keys_messages_auth_and_rekeys() {
    let s = "psk-gcm-x25519";
    let k = keys(s);
    let msgs = messages(s);
    let suite = IkeSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        prf: Prf::HmacSha256,
        group: Group::Curve25519,
    };
    let keys = check_ike_keys(&k, &suite, &msgs[0].1, &msgs[1].1);
    // IKE_AUTH through the child rekey and its delete are on the first IKE SA.
    let opened = open_all(&suite, &keys, &msgs[2..8]);
    assert_eq!(opened.len(), 6);
    let psk = b"spimux-test-only-psk";
    for (idx, (_, p)) in opened[..2].iter().enumerate() {
        let (_, method, data, octets) = auth_parts(p, idx == 0, &msgs, &keys);
        assert_eq!(method, AuthMethod::SHARED_KEY_MIC);
        assert!(
            psk_verify(Prf::HmacSha256, psk, &octets, &data),
            "strongSwan's AUTH verifies"
        );
        assert!(!psk_verify(Prf::HmacSha256, b"wrong", &octets, &data));
    }
    // The first CHILD_SA's keys from IKE_AUTH's nonces.
    let (ni, nr) = (nonce(&plain(&msgs[0].1)), nonce(&plain(&msgs[1].1)));
    let esp = EspSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        esn: false,
    };
    let (i_to_r, r_to_i) = esp
        .derive(Prf::HmacSha256, &keys.sk_d, None, &ni, &nr)
        .unwrap();
    assert_eq!(i_to_r.encr, k["child1.encr_i"]);
    assert_eq!(r_to_i.encr, k["child1.encr_r"]);
    // The CHILD_SA rekey (05/06) has its own nonces.
    let (n5, n6) = (nonce(&opened[2].1), nonce(&opened[3].1));
    let (i2, r2) = esp
        .derive(Prf::HmacSha256, &keys.sk_d, None, &n5, &n6)
        .unwrap();
    assert_eq!(i2.encr, k["child2.encr_i"]);
    assert_eq!(r2.encr, k["child2.encr_r"]);
    // The IKE SA rekey (09/10): new SPIs in the SA payloads, SKEYSEED from the old SK_d.
    let rekey = open_all(&suite, &keys, &msgs[8..10]);
    let (rq, rs) = (&rekey[0].1, &rekey[1].1);
    let spi = |p: &[Payload]| {
        find(p, |x| match x {
            Payload::Sa(v) => v.first().and_then(|p| p.spi_u64()),
            _ => None,
        })
    };
    let new = suite
        .derive_rekey(
            Prf::HmacSha256,
            &keys.sk_d,
            &nonce(rq),
            &nonce(rs),
            &k["ike2.g_ir"],
            spi(rq),
            spi(rs),
        )
        .unwrap();
    assert_eq!(new.sk_d, k["ike2.sk_d"]);
    assert_eq!(new.sk_ei, k["ike2.sk_ei"]);
    assert_eq!(new.sk_er, k["ike2.sk_er"]);
    // The messages on the new IKE SA (DPD, delete) open with the new keys.
    assert_eq!(open_all(&suite, &new, &msgs[12..16]).len(), 4);
}

#[test]
fn psk_cbc_ecp256_keys_and_ike_auth() {
    let s = "psk-cbc-ecp256";
    let k = keys(s);
    let msgs = messages(s);
    let suite = IkeSuite {
        encr: Encr::AesCbc { key_bits: 256 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha256,
        group: Group::Ecp256,
    };
    let keys = check_ike_keys(&k, &suite, &msgs[0].1, &msgs[1].1);
    let opened = open_all(&suite, &keys, &msgs[2..4]);
    assert_eq!(opened.len(), 2);
    let esp = EspSuite {
        encr: Encr::AesCbc { key_bits: 128 },
        integ: Some(Integ::HmacSha256_128),
        esn: false,
    };
    let (ni, nr) = (nonce(&plain(&msgs[0].1)), nonce(&plain(&msgs[1].1)));
    let (i_to_r, r_to_i) = esp
        .derive(Prf::HmacSha256, &keys.sk_d, None, &ni, &nr)
        .unwrap();
    assert_eq!(i_to_r.encr, k["child1.encr_i"]);
    assert_eq!(i_to_r.integ, k["child1.integ_i"]);
    assert_eq!(r_to_i.integ, k["child1.integ_r"]);
}

#[test]
fn cert_ecdsa_fragments_reassemble_and_signatures_verify() {
    let s = "cert-ecdsa";
    let k = keys(s);
    let msgs = messages(s);
    let suite = IkeSuite {
        encr: Encr::AesGcm16 { key_bits: 128 },
        integ: None,
        prf: Prf::HmacSha256,
        group: Group::Curve25519,
    };
    let keys = check_ike_keys(&k, &suite, &msgs[0].1, &msgs[1].1);
    let opened = open_all(&suite, &keys, &msgs[2..6]);
    assert_eq!(opened.len(), 2, "two IKE_AUTH messages from four fragments");
    let ca = std::fs::read(dir("pki/ecdsa").join("ca.pem")).unwrap();
    let anchors = TrustAnchors::from_pem_or_der(&ca).unwrap();
    let other = std::fs::read(dir("pki").join("other-ca.pem")).unwrap();
    let strangers = TrustAnchors::from_pem_or_der(&other).unwrap();
    let captured_at = 1_795_000_000; // inside the test PKI's validity (2024–2045)
    for (idx, (_, p)) in opened.iter().enumerate() {
        let initiator = idx == 0;
        let cert = find(p, |x| match x {
            Payload::Cert { data, .. } => Some(data.clone()),
            _ => None,
        });
        let peer = anchors.verify_chain(&cert, &[], captured_at).unwrap();
        assert!(strangers.verify_chain(&cert, &[], captured_at).is_err());
        let (id, method, data, octets) = auth_parts(p, initiator, &msgs, &keys);
        assert!(peer.matches_id(id.ty.0, &id.data));
        assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE);
        peer.verify(method.0, &data, &octets).unwrap();
        let mut bad = octets.clone();
        bad[40] ^= 1;
        assert!(peer.verify(method.0, &data, &bad).is_err());
    }
}
