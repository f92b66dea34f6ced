//! Ethernet II frames: every checked view reads all fields without panic;
//! the header re-emitted from the parsed fields is the received one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::ethernet::{emit_header, Frame, HEADER_LEN};
use spimux::wire::WireError;

fuzz_target!(|data: &[u8]| {
    let f = match Frame::new_checked(data) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!((e, data.len() < HEADER_LEN), (WireError::Truncated, true));
            return;
        }
    };
    let (dst, src, ty) = (f.dst(), f.src(), f.ethertype());
    let _ = (dst.is_multicast(), src.to_string());
    assert_eq!(f.payload(), &data[HEADER_LEN..]);
    // parse -> emit -> parse: the same bytes and fields.
    let mut out = data.to_vec();
    out[..HEADER_LEN].fill(0);
    emit_header(&mut out, dst, src, ty).expect("room for a header");
    assert_eq!(out, data);
    let mut g = Frame::new_checked(&mut out[..]).expect("re-parse");
    assert_eq!((g.dst(), g.src(), g.ethertype()), (dst, src, ty));
    // Setters touch only their field.
    g.set_dst(src);
    g.set_src(dst);
    g.set_ethertype(!ty);
    assert_eq!((g.dst(), g.src(), g.ethertype()), (src, dst, !ty));
    assert_eq!(g.payload_mut().len(), data.len() - HEADER_LEN);
    assert_eq!(&g.into_inner()[HEADER_LEN..], &data[HEADER_LEN..]);
    assert_eq!(
        emit_header(&mut [0u8; HEADER_LEN - 1], dst, src, ty),
        Err(WireError::Truncated)
    );
});
