//! Frames the router itself sends: ARP requests/replies, ICMP echo replies
//! and ICMP time exceeded.

use crate::wire::arp::{self, Operation};
use crate::wire::ethernet::{self, ethertype, Mac};
use crate::wire::{icmp, ipv4};
use std::net::Ipv4Addr;

const ETH: usize = ethernet::HEADER_LEN;

/// An ARP request for `target` from (`mac`, `ip`).
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        Mac::BROADCAST,
        arp::Repr {
            operation: Operation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        },
    )
}

/// An ARP reply telling `to_mac`/`to_ip` that `ip` is at `mac`.
pub fn arp_reply(mac: Mac, ip: Ipv4Addr, to_mac: Mac, to_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        to_mac,
        arp::Repr {
            operation: Operation::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: to_mac,
            target_ip: to_ip,
        },
    )
}

fn arp_frame(dst: Mac, r: arp::Repr) -> Vec<u8> {
    // 60 bytes: the Ethernet minimum without FCS.
    let mut f = vec![0u8; 60];
    let _ = ethernet::emit_header(&mut f, dst, r.sender_mac, ethertype::ARP);
    let _ = r.emit(&mut f[ETH..]);
    f
}

/// Echo reply to the echo request datagram `req` (already validated), sent
/// from `src_mac` to `dst_mac`. `None` when `req` is not an echo request.
pub fn echo_reply(req: &[u8], src_mac: Mac, dst_mac: Mac) -> Option<Vec<u8>> {
    let ip = ipv4::Packet::new_checked(req).ok()?;
    let msg = icmp::Packet::new_checked(ip.payload()).ok()?;
    if msg.msg_type() != icmp::kind::ECHO_REQUEST || !msg.verify_checksum() {
        return None;
    }
    let body = ip.payload();
    let mut f = vec![0u8; ETH + ipv4::MIN_HEADER_LEN + body.len()];
    let _ = ethernet::emit_header(&mut f, dst_mac, src_mac, ethertype::IPV4);
    let repr = ipv4::Repr {
        src: ip.dst(),
        dst: ip.src(),
        protocol: ipv4::protocol::ICMP,
        payload_len: body.len(),
        ttl: 64,
    };
    repr.emit(&mut f[ETH..], ip.ident()).ok()?;
    let out = f.get_mut(ETH + ipv4::MIN_HEADER_LEN..)?;
    out.copy_from_slice(body);
    let mut m = icmp::Packet::new_checked(out).ok()?;
    m.set_msg_type(icmp::kind::ECHO_REPLY);
    m.fill_checksum();
    Some(f)
}

/// ICMP error (`ty`, `code`, the header's last four bytes `rest`) from
/// `src` about datagram `offending`, quoting its header and first 8 payload
/// bytes (RFC 792).
pub fn icmp_error(
    offending: &[u8],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    src: Ipv4Addr,
    src_mac: Mac,
    dst_mac: Mac,
) -> Option<Vec<u8>> {
    let ip = ipv4::Packet::new_checked(offending).ok()?;
    let quote_len = (ip.header_len() + 8).min(ip.len());
    let quote = offending.get(..quote_len)?;
    let icmp_len = icmp::HEADER_LEN + quote.len();
    let mut f = vec![0u8; ETH + ipv4::MIN_HEADER_LEN + icmp_len];
    let _ = ethernet::emit_header(&mut f, dst_mac, src_mac, ethertype::IPV4);
    let repr = ipv4::Repr {
        src,
        dst: ip.src(),
        protocol: ipv4::protocol::ICMP,
        payload_len: icmp_len,
        ttl: 64,
    };
    repr.emit(&mut f[ETH..], ip.ident()).ok()?;
    icmp::emit_error_with(
        f.get_mut(ETH + ipv4::MIN_HEADER_LEN..)?,
        ty,
        code,
        rest,
        quote,
    )
    .ok()?;
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn arp_frames() {
        let f = arp_request(A, Ipv4Addr::new(10, 6, 1, 1), Ipv4Addr::new(10, 6, 1, 2));
        let e = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(e.dst(), Mac::BROADCAST);
        let p = arp::Packet::new_checked(e.payload()).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 6, 1, 2));
        let r = arp_reply(A, Ipv4Addr::new(10, 6, 1, 1), B, Ipv4Addr::new(10, 6, 1, 2));
        let p = arp::Packet::new_checked(&r[ETH..]).unwrap();
        assert_eq!(p.operation(), Operation::Reply);
        assert_eq!(p.target_mac(), B);
    }

    #[test]
    fn echo_reply_swaps_and_checksums() {
        let req = build::echo(
            Ipv4Addr::new(10, 6, 1, 2),
            Ipv4Addr::new(10, 6, 1, 1),
            false,
            9,
            3,
        );
        let f = echo_reply(&req, A, B).unwrap();
        let ip = ipv4::Packet::new_checked(&f[ETH..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src(), Ipv4Addr::new(10, 6, 1, 1));
        let m = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(m.msg_type(), icmp::kind::ECHO_REPLY);
        assert_eq!(m.echo_ident(), 9);
        assert!(m.verify_checksum());
        let not_req = build::echo(
            Ipv4Addr::new(10, 6, 1, 2),
            Ipv4Addr::new(10, 6, 1, 1),
            true,
            9,
            3,
        );
        assert!(echo_reply(&not_req, A, B).is_none());
    }

    #[test]
    fn time_exceeded_quotes_header_and_8_bytes() {
        let probe = build::udp(
            Ipv4Addr::new(10, 6, 1, 2),
            33434,
            Ipv4Addr::new(198, 51, 100, 69),
            33434,
            b"0123456789",
        );
        let f = icmp_error(
            &probe,
            icmp::kind::TIME_EXCEEDED,
            0,
            [0; 4],
            Ipv4Addr::new(10, 6, 1, 1),
            A,
            B,
        )
        .unwrap();
        let ip = ipv4::Packet::new_checked(&f[ETH..]).unwrap();
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 6, 1, 2));
        let m = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!(m.body(), &probe[..28]);
    }

    #[test]
    fn fragmentation_needed_carries_the_next_hop_mtu() {
        let big = build::udp(
            Ipv4Addr::new(10, 6, 1, 2),
            4500,
            Ipv4Addr::new(198, 51, 100, 69),
            4500,
            &[0u8; 1600],
        );
        let mtu = 1500u16.to_be_bytes();
        let f = icmp_error(
            &big,
            icmp::kind::DEST_UNREACHABLE,
            icmp::kind::FRAG_NEEDED,
            [0, 0, mtu[0], mtu[1]],
            Ipv4Addr::new(10, 6, 1, 1),
            A,
            B,
        )
        .unwrap();
        let ip = ipv4::Packet::new_checked(&f[ETH..]).unwrap();
        let m = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!(&ip.payload()[..2], &[3, 4]);
        assert_eq!(&ip.payload()[6..8], &[0x05, 0xdc]);
        assert_eq!(m.body(), &big[..28]);
    }
}
