//! `Sa::open` on arbitrary packets and on sealed packets delivered out of
//! order, duplicated, cut or changed, for an SA of each transform, with and
//! without ESN. Forged or changed packets never open and never move the
//! window; genuine ones open to what was sealed unless the replay model
//! (set of opened sequence numbers + window) refuses them.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::esp::replay::ReplayWindow;
use spimux::esp::{EspError, Hmac, Sa, SaParams, Transform};
use std::collections::BTreeSet;

const SPI: u32 = 0xc0de_0101;
const KEY: [u8; 32] = [0x11; 32];
const HMAC_KEY: [u8; 64] = [0x22; 64];

fn transform(i: u8) -> Transform<'static> {
    let cbc = |key: usize, hmac: Hmac| Transform::AesCbcHmac {
        key: &KEY[..key],
        hmac,
        hmac_key: &HMAC_KEY[..hmac.key_len()],
    };
    match i {
        0 => Transform::AesGcm {
            key: &KEY[..16],
            salt: [1, 2, 3, 4],
        },
        1 => Transform::AesGcm {
            key: &KEY,
            salt: [5, 6, 7, 8],
        },
        2 => cbc(16, Hmac::Sha256_128),
        3 => cbc(32, Hmac::Sha384_192),
        _ => cbc(16, Hmac::Sha512_256),
    }
}

/// A packet the sender sealed.
struct Sealed {
    bytes: Vec<u8>,
    payload: Vec<u8>,
    next_header: u8,
    seq: u64,
}

fn run(u: &mut Unstructured) -> Result<()> {
    let t = u.int_in_range(0u8..=4)?;
    let esn: bool = u.arbitrary()?;
    let replay_window = u32::from(u.int_in_range(0u16..=4096)?);
    let p = SaParams {
        spi: SPI,
        transform: transform(t),
        esn,
        replay_window,
    };
    let mut tx = Sa::new(&p).expect("valid keys");
    let mut rx = Sa::new(&p).expect("valid keys");
    let window = ReplayWindow::new(replay_window).size();
    let mut sealed: Vec<Sealed> = Vec::new();
    let mut opened = BTreeSet::new();
    let mut out = vec![0u8; 4096];
    while !u.is_empty() && sealed.len() < 256 {
        let before = rx.rx_seq();
        match u.int_in_range(0u8..=3)? {
            // Arbitrary bytes: only a byte-exact copy of a sealed packet opens.
            0 => {
                let n = u.int_in_range(0usize..=2048)?;
                let pkt = u.bytes(n.min(u.len()))?;
                if let Ok(o) = rx.open(pkt, &mut out) {
                    let s = sealed
                        .iter()
                        .find(|s| s.bytes == pkt)
                        .expect("forgery opened");
                    assert_eq!(o.seq, s.seq);
                    assert!(opened.insert(o.seq));
                } else {
                    assert_eq!(rx.rx_seq(), before, "a refused packet moved the window");
                }
            }
            // Seal, sometimes into a buffer too small.
            1 => {
                let n = u.int_in_range(0usize..=1500)?;
                let payload = u.bytes(n.min(u.len()))?.to_vec();
                let next_header: u8 = u.arbitrary()?;
                let need = tx.sealed_len(payload.len());
                assert!(need <= Sa::max_sealed_len(payload.len()));
                let room = if u.ratio(1u8, 8)? { need - 1 } else { need };
                let mut buf = vec![0u8; room];
                let seq = tx.tx_seq();
                match tx.seal(&payload, next_header, &mut buf) {
                    Ok(len) => {
                        assert_eq!((len, tx.tx_seq()), (need, seq + 1));
                        sealed.push(Sealed {
                            bytes: buf,
                            payload,
                            next_header,
                            seq: seq + 1,
                        });
                    }
                    Err(e) => {
                        assert_eq!(
                            (e, room, tx.tx_seq()),
                            (EspError::BufferTooSmall, need - 1, seq)
                        )
                    }
                }
            }
            // Deliver a sealed packet as sent, into a buffer maybe too small.
            2 if !sealed.is_empty() => {
                let s = &sealed[u.choose_index(sealed.len())?];
                let room = u.int_in_range(0usize..=s.bytes.len())?;
                let r = rx.open(&s.bytes, &mut out[..room]);
                let top = opened.last().copied().unwrap_or(0);
                let expected = if s.seq <= top && top - s.seq >= window {
                    Err(EspError::TooOld)
                } else if opened.contains(&s.seq) {
                    Err(EspError::Replay)
                } else {
                    Ok(())
                };
                match (expected, r) {
                    (Ok(()), Ok(o)) => {
                        assert_eq!((o.seq, o.next_header), (s.seq, s.next_header));
                        assert_eq!(&out[..o.len], &s.payload[..]);
                        opened.insert(o.seq);
                    }
                    // The ciphertext did not fit: refused before anything changed.
                    (Ok(()), Err(EspError::BufferTooSmall)) => assert!(room < s.bytes.len()),
                    // With ESN a number below the window is taken to be from
                    // the next 2^32 cycle (RFC 4303 Appendix A2.2): it is
                    // refused as a new packet would be, by its ICV check (or
                    // for a short buffer, before it), and moves nothing.
                    (
                        Err(EspError::TooOld),
                        Err(EspError::AuthFailed | EspError::BufferTooSmall),
                    ) if esn => {}
                    (e, r) => assert_eq!(e.map(|_| ()), r.map(|_| ()), "seq {}", s.seq),
                }
            }
            // Deliver a sealed packet changed in one byte, or cut short.
            3 if !sealed.is_empty() => {
                let s = &sealed[u.choose_index(sealed.len())?];
                let mut b = s.bytes.clone();
                let i = u.choose_index(b.len())?;
                if u.arbitrary()? {
                    b.truncate(i);
                } else {
                    b[i] ^= u.int_in_range(1u8..=255)?;
                }
                assert!(rx.open(&b, &mut out).is_err(), "changed packet opened");
                assert_eq!(rx.rx_seq(), before, "a refused packet moved the window");
            }
            _ => {}
        }
        assert!(rx.rx_seq() >= before, "the window moved back");
        assert_eq!(rx.rx_seq(), opened.last().copied().unwrap_or(0));
        assert_eq!(rx.spi(), SPI);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
