//! ESP core tests, including a vector produced by an independent
//! implementation (scapy 2.5.0 `SecurityAssociation`, AES-GCM, tunnel mode;
//! the script is in testbed/esp_vector.py).

use super::sa::{EspError, Sa, SaParams, NEXT_IPV4};

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const SALT: [u8; 4] = [0xca, 0xfe, 0xba, 0xbe];
const SPI: u32 = 0x1234_abcd;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Inner IPv4/UDP packet 10.6.1.2:1000 -> 10.9.0.1:2000, "spimux vector".
const INNER: &str =
    "4500002900010000401165b20a0601020a09000103e807d00015205b7370696d757820766563746f72";
/// scapy's ESP for INNER with seq 7 and IV 0000000000000007.
const SCAPY_ESP: &str = "1234abcd0000000700000000000000076db2668d9a2a74aa8ccdbc3b44ca2361fccdb4444c30f06d8cdf5859c2a37a57a8df899a2aab6c0d87a6b82004ae7af49d8fe673f570624847bffd7a";

fn sa(esn: bool) -> Sa {
    Sa::new(&SaParams {
        spi: SPI,
        key: &KEY,
        salt: SALT,
        esn,
        replay_window: 64,
    })
    .unwrap()
}

#[test]
fn opens_the_scapy_vector() {
    let mut rx = sa(false);
    let mut out = [0u8; 256];
    let o = rx.open(&hex(SCAPY_ESP), &mut out).unwrap();
    assert_eq!(o.next_header, NEXT_IPV4);
    assert_eq!(o.seq, 7);
    assert_eq!(&out[..o.len], &hex(INNER)[..]);
}

#[test]
fn seals_byte_identical_to_scapy() {
    let mut tx = sa(false);
    let mut out = [0u8; 256];
    for _ in 0..6 {
        tx.seal(b"x", NEXT_IPV4, &mut out).unwrap();
    }
    let n = tx.seal(&hex(INNER), NEXT_IPV4, &mut out).unwrap();
    assert_eq!(&out[..n], &hex(SCAPY_ESP)[..]);
}

#[test]
fn round_trips_common_sizes() {
    let (mut tx, mut rx) = (sa(false), sa(false));
    for len in [0usize, 1, 2, 3, 64, 512, 1400] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut wire = vec![0u8; Sa::sealed_len(len)];
        let n = tx.seal(&payload, NEXT_IPV4, &mut wire).unwrap();
        assert_eq!(n % 4, 0, "ESP is 4-byte aligned");
        let mut out = vec![0u8; n];
        let o = rx.open(&wire[..n], &mut out).unwrap();
        assert_eq!(&out[..o.len], &payload[..]);
    }
}

#[test]
fn tampered_replayed_truncated_and_foreign_are_refused() {
    let (mut tx, mut rx) = (sa(false), sa(false));
    let mut wire = [0u8; 128];
    let n = tx.seal(b"hello", NEXT_IPV4, &mut wire).unwrap();
    let mut out = [0u8; 128];
    for i in [8usize, 20, n - 1] {
        let mut bad = wire;
        bad[i] ^= 1;
        assert_eq!(
            rx.open(&bad[..n], &mut out),
            Err(EspError::AuthFailed),
            "byte {i}"
        );
    }
    // A tampered sequence number changes the AAD.
    let mut bad = wire;
    bad[7] ^= 2;
    assert_eq!(rx.open(&bad[..n], &mut out), Err(EspError::AuthFailed));
    // Failed packets did not move the window: the genuine one still opens, once.
    rx.open(&wire[..n], &mut out).unwrap();
    assert_eq!(rx.open(&wire[..n], &mut out), Err(EspError::Replay));
    assert_eq!(rx.open(&wire[..20], &mut out), Err(EspError::Truncated));
    let mut other = sa(false);
    let mut foreign = wire;
    foreign[0] = 0x99;
    assert_eq!(other.open(&foreign[..n], &mut out), Err(EspError::WrongSpi));
    assert_eq!(
        sa(false).open(&wire[..n], &mut out[..4]),
        Err(EspError::BufferTooSmall)
    );
}

#[test]
fn window_accepts_reordering_and_refuses_too_old() {
    let (mut tx, mut rx) = (sa(false), sa(false));
    let pkts: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            let mut w = vec![0u8; 64];
            let n = tx.seal(b"p", NEXT_IPV4, &mut w).unwrap();
            w.truncate(n);
            w
        })
        .collect();
    let mut out = [0u8; 64];
    rx.open(&pkts[99], &mut out).unwrap(); // seq 100
    rx.open(&pkts[50], &mut out).unwrap(); // seq 51: inside a 64-packet window
    assert_eq!(rx.open(&pkts[20], &mut out), Err(EspError::TooOld)); // seq 21
}

#[test]
fn esn_uses_high_bits_in_aad_and_survives_the_wrap() {
    let (mut tx, mut rx) = (sa(true), sa(true));
    let mut wire = [0u8; 64];
    let mut out = [0u8; 64];
    // Jump both ends near the 32-bit boundary by sealing/opening through it.
    tx_skip(&mut tx, 0xffff_fffe);
    for _ in 0..4 {
        let n = tx.seal(b"esn", NEXT_IPV4, &mut wire).unwrap();
        let o = rx.open(&wire[..n], &mut out).unwrap();
        assert_eq!(&out[..o.len], b"esn");
    }
    assert_eq!(rx.rx_seq(), 0x1_0000_0002);
    // Without ESN the counter stops at 2^32 - 1.
    let mut plain = sa(false);
    tx_skip(&mut plain, u64::from(u32::MAX));
    assert_eq!(
        plain.seal(b"x", NEXT_IPV4, &mut wire),
        Err(EspError::SequenceExhausted)
    );
}

/// Test helper: pretend `n` packets were sent.
fn tx_skip(sa: &mut Sa, n: u64) {
    sa.set_tx_seq_for_test(n);
}

#[test]
fn bad_keys_refused() {
    let p = SaParams {
        spi: SPI,
        key: &[0u8; 20],
        salt: SALT,
        esn: false,
        replay_window: 64,
    };
    assert!(matches!(Sa::new(&p), Err(EspError::BadKey)));
}

#[test]
fn tunnel_mode_checks_next_header_inner_packet_and_policy() {
    use super::tunnel::{open_inner, seal_inner, Selectors, TunnelDrop, NEXT_DUMMY};
    use crate::wire::build;
    let allowed = Selectors(vec!["10.98.0.0/24".parse().unwrap()]);
    let inner = build::udp(
        "10.98.0.2".parse().unwrap(),
        1,
        "10.99.0.1".parse().unwrap(),
        2,
        b"x",
    );
    let (mut tx, mut rx) = (sa(false), sa(false));
    let mut wire = vec![0u8; 256];
    let mut out = vec![0u8; 256];
    // Trailing bytes after the IPv4 total length are not sealed.
    let mut padded = inner.clone();
    padded.extend_from_slice(&[0xee; 6]);
    let n = seal_inner(&mut tx, &padded, &mut wire).unwrap();
    assert_eq!(
        open_inner(&mut rx, &wire[..n], &mut out, &allowed),
        Ok((inner.len(), 1))
    );
    assert_eq!(out[..inner.len()], inner[..]);
    assert_eq!(
        seal_inner(&mut tx, &inner[..10], &mut wire),
        Err(TunnelDrop::InnerMalformed)
    );
    for (nh, payload, want) in [
        (NEXT_DUMMY, &inner[..], TunnelDrop::Dummy),
        (6, &inner[..], TunnelDrop::NextHeader),
        (NEXT_IPV4, &inner[..12], TunnelDrop::InnerInvalid),
    ] {
        let n = tx.seal(payload, nh, &mut wire).unwrap();
        assert_eq!(
            open_inner(&mut rx, &wire[..n], &mut out, &allowed),
            Err(want)
        );
    }
    let outsider = build::udp(
        "10.1.1.1".parse().unwrap(),
        1,
        "10.99.0.1".parse().unwrap(),
        2,
        b"x",
    );
    let n = seal_inner(&mut tx, &outsider, &mut wire).unwrap();
    assert_eq!(
        open_inner(&mut rx, &wire[..n], &mut out, &allowed),
        Err(TunnelDrop::Policy)
    );
}

#[test]
fn drop_labels_are_unique_and_indices_dense() {
    use super::tunnel::{TunnelDrop, DROP_KINDS};
    let mut labels: Vec<_> = TunnelDrop::ALL.iter().map(|d| d.label()).collect();
    for (i, d) in TunnelDrop::ALL.iter().enumerate() {
        assert_eq!(d.index(), i);
    }
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), DROP_KINDS);
}
