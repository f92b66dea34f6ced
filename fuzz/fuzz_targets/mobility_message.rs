//! Registration request/reply codec: whatever parses re-emits to bytes that
//! parse back equal; emission into every too-small buffer fails cleanly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::mobility::{Message, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    let mut out = [0u8; 128];
    let n = m.emit(&mut out).expect("a message fits 128 bytes");
    assert!(n >= HEADER_LEN && n <= data.len() + 64);
    assert_eq!(Message::parse(&out[..n]), Ok(m), "parse -> emit -> parse");
    // The header is re-emitted as received (reserved byte aside, and a
    // request's code, which has no meaning).
    assert_eq!(out[..2], data[..2]);
    assert_eq!(out[4..HEADER_LEN], data[4..HEADER_LEN]);
    for short in 0..n {
        assert_eq!(m.emit(&mut out[..short]), None);
    }
});
