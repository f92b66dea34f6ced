//! Certificate authentication between two engines (RFC 7427 signatures,
//! chains checked against the configured anchors), with the test-only PKI
//! in tests/data/ike/pki.

use super::super::crypto::{load_cert_der, SigningKey, TrustAnchors};
use super::super::stats::PeerAuth;
use super::*;

/// A file of tests/data/ike/pki.
fn pki(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/ike/pki/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Inside every fixture's validity (2030-03-17; see tests_pki.rs).
const UNIX_AT_ZERO: u64 = 1_900_000_000;

/// `policy()` switched to certificates: ours `<ee>.pem` and `<ee>.key`, `anchors` for the peer.
fn cert_policy(client: bool, ee: &str, anchors: &[u8]) -> PeerPolicy {
    let (local, remote) = if client {
        ("client.example.net", "gw.example.net")
    } else {
        ("gw.example.net", "client.example.net")
    };
    PeerPolicy {
        local_id: parse_identity(local).unwrap(),
        remote_id: Some(parse_identity(remote).unwrap()),
        local_auth: LocalAuth::Cert {
            cert: Arc::new(load_cert_der(&pki(&format!("{ee}.pem"))).unwrap()),
            key: Arc::new(SigningKey::from_pem_or_der(&pki(&format!("{ee}.key"))).unwrap()),
        },
        remote_auth: RemoteAuth::Cert(Arc::new(TrustAnchors::from_pem_or_der(anchors).unwrap())),
        ..policy(client, "unused-psk")
    }
}

fn cert_bed(gateway_anchors: &[u8]) -> Bed {
    let cfg = EngineConfig {
        unix_at_zero: UNIX_AT_ZERO,
        ..EngineConfig::default()
    };
    // The client signs with RSA (under the root); the gateway with ECDSA
    // (under the intermediate, which the client trusts directly: we send no
    // intermediates).
    let client = cert_policy(true, "ee-rsa", &pki("inter-ca.pem"));
    let gw = cert_policy(false, "ee-ecdsa", gateway_anchors);
    Bed::new(engine(cfg.clone(), client), engine(cfg, gw), false)
}

#[test]
fn certificates_authenticate_both_sides_and_count_the_key_type() {
    let mut b = cert_bed(&pki("root-ca.pem"));
    b.connect();
    assert_eq!((established(&b.i), established(&b.r)), (1, 1));
    assert_eq!(installs(&b.r_events).len(), 1);
    let by = |how: PeerAuth| PeerAuth::ALL.iter().position(|x| *x == how).unwrap();
    let mut want = [0; 3];
    want[by(PeerAuth::Rsa)] = 1;
    assert_eq!(
        b.r.stats.peer_auths, want,
        "the gateway saw an RSA signature"
    );
    let mut want = [0; 3];
    want[by(PeerAuth::Ecdsa)] = 1;
    assert_eq!(
        b.i.stats.peer_auths, want,
        "the client saw an ECDSA signature"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_and_counted() {
    let mut b = cert_bed(&pki("other-ca.pem"));
    b.connect();
    assert_eq!(established(&b.i) + established(&b.r), 0);
    assert_eq!((b.r.stats.auth_failures, b.i.stats.auth_failures), (1, 1));
    assert_eq!(b.r.stats.peer_auths, [0; 3]);
    assert!(installs(&b.r_events).is_empty());
}
