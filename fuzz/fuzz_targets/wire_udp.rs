//! UDP: the first 8 bytes are the pseudo-header addresses, the rest the
//! datagram. Every field of a checked view; the header re-emitted from the
//! fields parses back equal; a filled checksum verifies.

#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;
use spimux::wire::udp::{emit_header, Packet, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((addrs, dgram)) = data.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let Ok(p) = Packet::new_checked(dgram) else {
        return;
    };
    let len = usize::from(p.length());
    assert!((HEADER_LEN..=dgram.len()).contains(&len));
    assert_eq!(p.payload(), &dgram[HEADER_LEN..len]);
    let _ = (p.checksum(), p.verify_checksum(src, dst));
    if p.checksum() == 0 {
        assert!(p.verify_checksum(src, dst), "zero checksum = not computed");
    }
    // parse -> emit -> parse.
    let mut b = dgram.to_vec();
    emit_header(&mut b, p.src_port(), p.dst_port(), len - HEADER_LEN).expect("header fits");
    let mut m = Packet::new_checked(&mut b[..]).expect("re-parse");
    assert_eq!(
        (m.src_port(), m.dst_port(), m.length(), m.checksum()),
        (p.src_port(), p.dst_port(), p.length(), 0)
    );
    m.fill_checksum(src, dst);
    assert_ne!(m.checksum(), 0, "a computed zero is sent as 0xffff");
    assert!(m.verify_checksum(src, dst));
    assert!(emit_header(&mut b[..HEADER_LEN - 1], 1, 2, 0).is_err());
});
