//! Certificate and signature tests against the test-only PKI in
//! tests/data/ike/pki (see its README).

use super::*;
use ring::rand::SystemRandom;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

macro_rules! pki {
    ($f:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ike/pki/",
            $f
        ))
        .as_slice()
    };
}

/// 2030-03-17: inside every fixture's validity (2026-11-21 .. 2126-10-28).
const NOW: u64 = 1_900_000_000;

fn der(pem: &[u8]) -> Vec<u8> {
    load_cert_der(pem).unwrap()
}

fn root() -> TrustAnchors {
    TrustAnchors::from_pem_or_der(pki!("root-ca.pem")).unwrap()
}

fn ecdsa_peer() -> PeerCert {
    root()
        .verify_chain(
            &der(pki!("ee-ecdsa.pem")),
            &[&der(pki!("inter-ca.pem"))],
            NOW,
        )
        .unwrap()
}

fn rsa_peer() -> PeerCert {
    root()
        .verify_chain(&der(pki!("ee-rsa.pem")), &[], NOW)
        .unwrap()
}

#[test]
fn load_cert_pem_and_der() {
    let d = der(pki!("ee-ecdsa.pem"));
    let expect = CertificateDer::from_pem_slice(pki!("ee-ecdsa.pem")).unwrap();
    assert_eq!(d, expect.as_ref());
    assert_eq!(load_cert_der(&d).unwrap(), d);
    assert!(load_cert_der(b"not a certificate").is_err());
    assert!(load_cert_der(&d[..d.len() - 1]).is_err());
    assert!(load_cert_der(&[d.as_slice(), &[0]].concat()).is_err());
    assert!(TrustAnchors::from_pem_or_der(b"-----BEGIN CERTIFICATE-----\n-----END").is_err());
}

#[test]
fn valid_chains() {
    let _ = ecdsa_peer();
    let _ = rsa_peer();
    // DER anchor, and a PEM bundle with an unrelated CA first.
    let anchors = TrustAnchors::from_pem_or_der(&der(pki!("root-ca.pem"))).unwrap();
    assert!(anchors
        .verify_chain(&der(pki!("ee-rsa.pem")), &[], NOW)
        .is_ok());
    let bundle = [pki!("other-ca.pem"), pki!("root-ca.pem")].concat();
    let anchors = TrustAnchors::from_pem_or_der(&bundle).unwrap();
    assert!(anchors
        .verify_chain(&der(pki!("ee-rsa.pem")), &[], NOW)
        .is_ok());
}

#[test]
fn invalid_chains() {
    let ee = der(pki!("ee-ecdsa.pem"));
    let inter = der(pki!("inter-ca.pem"));
    // Missing intermediate.
    assert!(matches!(
        root().verify_chain(&ee, &[], NOW),
        Err(CryptoError::Certificate(_))
    ));
    // Wrong CA.
    let other = TrustAnchors::from_pem_or_der(pki!("other-ca.pem")).unwrap();
    assert!(other.verify_chain(&ee, &[&inter], NOW).is_err());
    assert!(other
        .verify_chain(&der(pki!("ee-rsa.pem")), &[], NOW)
        .is_err());
    // Expired (2128) and not yet valid (2023).
    assert!(root().verify_chain(&ee, &[&inter], 5_000_000_000).is_err());
    assert!(root().verify_chain(&ee, &[&inter], 1_700_000_000).is_err());
    // Issued by an end entity (no CA basicConstraints).
    assert!(root()
        .verify_chain(&der(pki!("rogue.pem")), &[&ee, &inter], NOW)
        .is_err());
    // A tampered certificate (a byte of the subject changed).
    let mut bad = der(pki!("ee-rsa.pem"));
    let pos = bad.windows(6).position(|w| w == b"client").unwrap();
    bad[pos] = b'C';
    assert!(root().verify_chain(&bad, &[], NOW).is_err());
    assert!(root().verify_chain(b"garbage", &[], NOW).is_err());
}

#[test]
fn identities() {
    let ec = ecdsa_peer();
    // Subject DER as Python's cryptography encodes the same Name.
    let dn = "302f31143012060355040a0c0b7370696d757820746573743117301506035504030c0e67772e6578616d706c652e6e6574";
    let dn: Vec<u8> = (0..dn.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&dn[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(ec.subject_der(), dn.as_slice());
    assert!(ec.matches_id(9, &dn));
    assert!(!ec.matches_id(9, rsa_peer().subject_der()));
    assert!(ec.matches_id(2, b"gw.example.net"));
    assert!(ec.matches_id(2, b"GW.Example.NET"));
    assert!(!ec.matches_id(2, b"client.example.net"));
    assert!(!ec.matches_id(2, b"gw.example.net."));
    assert!(ec.matches_id(3, b"ops@example.net"));
    assert!(!ec.matches_id(3, b"root@example.net"));
    assert!(ec.matches_id(1, &[198, 51, 100, 1]));
    assert!(!ec.matches_id(1, &[198, 51, 100, 2]));
    assert!(!ec.matches_id(1, &[198, 51, 100]));
    assert!(!ec.matches_id(11, b"gw.example.net"));
    let rsa = rsa_peer();
    assert!(rsa.matches_id(2, b"client.example.net"));
    assert!(rsa.matches_id(1, &[203, 0, 113, 7]));
    assert!(!rsa.matches_id(1, &[198, 51, 100, 1]));
}

fn ec_key() -> SigningKey {
    SigningKey::from_pem_or_der(pki!("ee-ecdsa.key")).unwrap()
}

fn rsa_key() -> SigningKey {
    SigningKey::from_pem_or_der(pki!("ee-rsa.key")).unwrap()
}

#[test]
fn signing_key_loading() {
    let rng = SystemRandom::new();
    for pem in [pki!("ee-ecdsa.key"), pki!("ee-rsa.key")] {
        let key = SigningKey::from_pem_or_der(pem).unwrap();
        key.check(&rng).unwrap();
        let PrivateKeyDer::Pkcs8(p8) = PrivateKeyDer::from_pem_slice(pem).unwrap() else {
            panic!("fixture is PKCS#8");
        };
        let from_der = SigningKey::from_pem_or_der(p8.secret_pkcs8_der()).unwrap();
        assert_eq!(from_der.default_scheme(), key.default_scheme());
    }
    assert_eq!(ec_key().default_scheme(), SigScheme::EcdsaSha256);
    assert_eq!(rsa_key().default_scheme(), SigScheme::RsaPkcs1Sha256);
    assert!(SigningKey::from_pem_or_der(b"garbage").is_err());
    assert!(SigningKey::from_pem_or_der(pki!("root-ca.pem")).is_err());
}

#[test]
fn sign_verify_every_method() {
    let rng = SystemRandom::new();
    let octets = b"IKE_SA_INIT message | Nr | prf(SK_pi, IDi')".to_vec();
    let cases = [
        (
            ec_key(),
            ecdsa_peer(),
            SigScheme::EcdsaSha256,
            14u8,
            12usize,
        ),
        (ec_key(), ecdsa_peer(), SigScheme::Ecdsa256, 9, 0),
        (rsa_key(), rsa_peer(), SigScheme::RsaPkcs1Sha256, 14, 15),
        (rsa_key(), rsa_peer(), SigScheme::RsaPssSha256, 14, 67),
    ];
    for (key, peer, scheme, method, alg_len) in cases {
        let (m, data) = key.sign_with(scheme, &octets, &rng).unwrap();
        assert_eq!(m, method, "{scheme:?}");
        match scheme {
            SigScheme::Ecdsa256 => assert_eq!(data.len(), 64),
            SigScheme::RsaPkcs1Sha256 | SigScheme::RsaPssSha256 => {
                assert_eq!(usize::from(data[0]), alg_len);
                assert_eq!(data.len(), 1 + alg_len + 256);
            }
            SigScheme::EcdsaSha256 => {
                assert_eq!(usize::from(data[0]), alg_len);
                assert_eq!(data[1 + alg_len], 0x30, "DER ECDSA-Sig-Value");
            }
        }
        assert_eq!(peer.verify(m, &data, &octets), Ok(()), "{scheme:?}");
        // Tampered octets and signature fail.
        let mut t = octets.clone();
        t[0] ^= 1;
        assert_eq!(peer.verify(m, &data, &t), Err(CryptoError::Signature));
        let mut d = data.clone();
        let last = d.len() - 2;
        d[last] ^= 1;
        assert!(peer.verify(m, &d, &octets).is_err());
        // Method and data disagree.
        let other = if m == 9 { 14 } else { 9 };
        assert!(peer.verify(other, &data, &octets).is_err());
    }
    // Default sign() is method 14.
    let (m, data) = ec_key().sign(&octets, &rng).unwrap();
    assert_eq!(m, auth_method::DIGITAL_SIGNATURE);
    assert!(ecdsa_peer().verify(m, &data, &octets).is_ok());
    // A signature by one key does not verify with another certificate.
    let (m, data) = rsa_key().sign(&octets, &rng).unwrap();
    assert_eq!(
        ecdsa_peer().verify(m, &data, &octets),
        Err(CryptoError::Signature)
    );
}

#[test]
fn verify_refusals() {
    let rng = SystemRandom::new();
    let peer = rsa_peer();
    assert_eq!(
        peer.verify(auth_method::RSA_SIG, &[0; 256], b"x"),
        Err(CryptoError::Unsupported)
    );
    assert_eq!(
        peer.verify(auth_method::PSK, &[0; 32], b"x"),
        Err(CryptoError::Unsupported)
    );
    assert_eq!(peer.verify(14, &[], b"x"), Err(CryptoError::Truncated));
    assert_eq!(
        peer.verify(14, &[20, 1, 2], b"x"),
        Err(CryptoError::Truncated)
    );
    // Unknown AlgorithmIdentifier (sha1WithRSAEncryption).
    let sha1 = [
        15, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05,
        0x00, 1, 2, 3,
    ];
    assert_eq!(peer.verify(14, &sha1, b"x"), Err(CryptoError::Unsupported));
    assert_eq!(
        rsa_key().sign_with(SigScheme::EcdsaSha256, b"x", &rng),
        Err(CryptoError::Unsupported)
    );
    assert_eq!(
        ec_key().sign_with(SigScheme::RsaPssSha256, b"x", &rng),
        Err(CryptoError::Unsupported)
    );
}
