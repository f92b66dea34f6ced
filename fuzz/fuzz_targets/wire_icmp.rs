//! ICMP: every field of a checked message; for errors, the quoted datagram
//! through the header-only IPv4 view and the quoted transport header (the
//! bytes the NAT reads to find the mapping); checksum rewrites stay valid;
//! `emit_error` of the body parses back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::wire::ipv4::{self, protocol};
use spimux::wire::{icmp, tcp, udp};

/// The quoted datagram of an error, as the NAT reads it.
fn read_quote(body: &[u8]) {
    let Ok(q) = ipv4::Packet::new_header_checked(body) else {
        return;
    };
    let hl = q.header_len();
    assert!(hl <= body.len() && q.len() <= body.len());
    let _ = (q.src(), q.dst(), q.ttl(), q.ident(), q.verify_checksum());
    // The quote is usually cut short: only the first 8 transport bytes are promised.
    let l4 = &body[hl..];
    assert_eq!(q.payload(), &body[hl..q.len()]);
    match q.protocol() {
        protocol::TCP => {
            if let Ok(t) = tcp::Packet::new_checked(l4) {
                let _ = (
                    t.src_port(),
                    t.dst_port(),
                    t.seq(),
                    t.flags(),
                    t.header_len(),
                );
            }
        }
        protocol::UDP => {
            if let Ok(u) = udp::Packet::new_checked(l4) {
                let _ = (u.src_port(), u.dst_port(), u.payload().len());
            }
        }
        protocol::ICMP => {
            if let Ok(i) = icmp::Packet::new_checked(l4) {
                let _ = (i.msg_type(), i.echo_ident(), i.echo_seq(), i.body().len());
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = icmp::Packet::new_checked(data) else {
        assert!(data.len() < icmp::HEADER_LEN);
        return;
    };
    let (ty, code) = (p.msg_type(), p.code());
    let _ = (p.checksum(), p.echo_ident(), p.echo_seq());
    let valid = p.verify_checksum();
    assert_eq!(p.body(), &data[icmp::HEADER_LEN..]);
    if icmp::is_error(ty) {
        read_quote(p.body());
    }

    // The NAT's identifier rewrite keeps a valid checksum valid.
    let mut b = data.to_vec();
    let mut m = icmp::Packet::new_checked(&mut b[..]).expect("same bytes");
    let id = !m.echo_ident();
    m.set_echo_ident(id);
    assert_eq!(m.echo_ident(), id);
    if valid {
        assert!(
            m.verify_checksum(),
            "incremental update broke a valid checksum"
        );
    }
    m.set_msg_type(ty);
    assert_eq!(m.body_mut().len(), data.len() - icmp::HEADER_LEN);
    m.fill_checksum();
    assert!(m.verify_checksum());

    // An error quoting this body parses back to it.
    let mut out = vec![0u8; data.len()];
    let n = icmp::emit_error(&mut out, ty, code, p.body()).expect("same length");
    assert_eq!(n, data.len());
    let e = icmp::Packet::new_checked(&out[..]).expect("re-parse");
    assert!(e.verify_checksum());
    assert_eq!((e.msg_type(), e.code(), e.body()), (ty, code, p.body()));
    let rest = [data[4], data[5], data[6], data[7]];
    let n = icmp::emit_error_with(&mut out, ty, code, rest, p.body()).expect("same length");
    assert_eq!(
        &out[..n],
        {
            let mut c = data.to_vec();
            c[2..4].copy_from_slice(&out[2..4]);
            c
        }
        .as_slice()
    );
    assert!(icmp::emit_error(&mut out[..n - 1], ty, code, p.body()).is_err());
});
