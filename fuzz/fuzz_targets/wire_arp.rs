//! ARP: a checked packet's fields re-emit to the same 28 bytes (every
//! checked field has one allowed value) and parse back to the same `Repr`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::arp::{Operation, Packet, Repr, PACKET_LEN};
use spimux::wire::WireError;

fuzz_target!(|data: &[u8]| {
    let p = match Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(e == WireError::Malformed || data.len() < PACKET_LEN);
            return;
        }
    };
    let r = Repr::parse(&p);
    assert_eq!(
        (r.operation == Operation::Request),
        data[6..8] == [0, 1],
        "opcode"
    );
    let mut out = [0u8; PACKET_LEN];
    r.emit(&mut out).expect("28 bytes fit");
    assert_eq!(&out[..], &data[..PACKET_LEN]);
    assert_eq!(
        Repr::parse(&Packet::new_checked(&out[..]).expect("re-parse")),
        r
    );
    for n in 0..PACKET_LEN {
        assert_eq!(r.emit(&mut out[..n]), Err(WireError::Truncated));
    }
});
