//! TCP: the first 8 bytes are the pseudo-header addresses, the rest the
//! segment. Every field of a checked view; a filled checksum verifies.

#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;
use spimux::wire::tcp::{Packet, MIN_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((addrs, seg)) = data.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let Ok(p) = Packet::new_checked(seg) else {
        return;
    };
    let hl = p.header_len();
    assert!(hl >= MIN_HEADER_LEN && hl <= seg.len());
    let _ = (p.src_port(), p.dst_port(), p.seq(), p.flags(), p.checksum());
    let _ = p.verify_checksum(src, dst);
    let mut b = seg.to_vec();
    let mut m = Packet::new_checked(&mut b[..]).expect("same bytes");
    m.fill_checksum(src, dst);
    assert_eq!(
        m.verify_checksum(src, dst),
        seg.len() <= usize::from(u16::MAX)
    );
    assert_eq!(b[..16], seg[..16]);
    assert_eq!(b[18..], seg[18..]);
});
