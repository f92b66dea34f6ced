//! The `virtio_net_hdr` offload metadata: parse -> emit -> parse is equal;
//! segment counts never panic and cover the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::io::offload::{Offload, VNET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(o) = Offload::parse(data) else {
        return;
    };
    let bytes = o.emit();
    assert_eq!(Offload::parse(&bytes), Ok(o));
    assert_eq!(bytes[2..VNET_HDR_LEN].len(), 8);
    assert_eq!(o.is_plain(), o.csum.is_none() && o.gso.is_none());
    // The rest of the input: payload sizes.
    for c in data[VNET_HDR_LEN..].chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        let payload = u32::from_le_bytes(w) as usize;
        let n = o.segments(payload);
        assert!(n >= 1);
        if let Some(g) = o.gso {
            assert!(n.saturating_mul(usize::from(g.size)) >= payload);
        } else {
            assert_eq!(n, 1);
        }
    }
});
