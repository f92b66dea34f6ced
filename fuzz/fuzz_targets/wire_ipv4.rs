//! IPv4: both checked views (whole datagram, header only as quoted in ICMP
//! errors) read every field; the option-less `Repr` round-trips; the
//! incremental checksum updates of the NAT rewrites keep a valid checksum
//! valid.

#![no_main]

use core::net::Ipv4Addr;
use libfuzzer_sys::fuzz_target;
use spimux::wire::ipv4::{Packet, Repr, MIN_HEADER_LEN};

/// Reads every field; returns the `Repr` of the header.
fn read<T: AsRef<[u8]>>(p: &Packet<T>, bytes: &[u8]) -> Repr {
    let hl = p.header_len();
    assert!((MIN_HEADER_LEN..=60).contains(&hl) && hl <= p.len() && p.len() <= bytes.len());
    assert!(!p.is_empty());
    assert_eq!(p.payload(), &bytes[hl..p.len()]);
    let _ = (p.ident(), p.checksum(), p.verify_checksum());
    let more_fragments = bytes[6] & 0x20 != 0;
    assert_eq!(p.is_fragment(), more_fragments || p.frag_offset() != 0);
    assert_eq!(p.dont_fragment(), bytes[6] & 0x40 != 0);
    Repr {
        src: p.src(),
        dst: p.dst(),
        protocol: p.protocol(),
        payload_len: usize::from(p.total_len()) - hl,
        ttl: p.ttl(),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = Packet::new_header_checked(data) {
        read(&q, data);
    }
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let r = read(&p, data);
    assert_eq!(p.len(), usize::from(p.total_len()));
    assert!(Packet::new_header_checked(data).is_ok());
    let valid = p.verify_checksum();
    let ttl = p.ttl();

    // Repr -> emit -> parse: the same fields, a valid checksum.
    let mut out = vec![0u8; MIN_HEADER_LEN + r.payload_len];
    // Total length fits 16 bits and the header is at least 20 bytes, so 20 + payload does too.
    r.emit(&mut out, p.ident()).expect("emit");
    let e = Packet::new_checked(&out[..]).expect("re-parse emitted header");
    assert!(e.verify_checksum());
    assert_eq!(read(&e, &out), r);
    assert_eq!(e.ident(), p.ident());

    // NAT rewrites: incremental updates keep a valid checksum valid.
    let mut b = data.to_vec();
    let mut m = Packet::new_checked(&mut b[..]).expect("same bytes");
    m.set_src(Ipv4Addr::new(203, 0, 113, 10));
    m.set_dst(r.src);
    if ttl > 1 {
        m.decrement_ttl();
        assert_eq!(m.ttl(), ttl - 1);
    }
    if valid {
        assert!(
            m.verify_checksum(),
            "incremental update broke a valid checksum"
        );
    }
    assert_eq!((m.src(), m.dst()), (Ipv4Addr::new(203, 0, 113, 10), r.src));
    m.set_ttl(ttl);
    assert!(m.verify_checksum());
    m.fill_checksum();
    assert!(m.verify_checksum());
    let n = m.payload_mut().len();
    assert_eq!(n, r.payload_len);
});
