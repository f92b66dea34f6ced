//! The router's side of offloads: checks that a frame's offload metadata fits
//! the packet it came with, and sizes GSO super-frames against the egress MTU.
//! A super-frame is translated once (every segment shares its headers) and
//! leaves as one frame; its checksum stays partial.

use super::stats::DropReason;
use crate::io::offload::{GsoKind, Offload};
use crate::nat::L4Checksum;
use crate::wire::{ethernet, ipv4, tcp};
use ipv4::protocol::{TCP, UDP};

const UDP_HEADER: usize = 8;

/// Transport header length of `p` (TCP data offset, UDP 8), if TCP/UDP.
fn l4_header_len(p: &ipv4::Packet<&[u8]>) -> Option<usize> {
    match p.protocol() {
        TCP => tcp::Packet::new_checked(p.payload())
            .ok()
            .map(|t| t.header_len()),
        UDP => Some(UDP_HEADER),
        _ => None,
    }
}

/// IP plus transport header bytes: what every GSO segment repeats.
pub fn headers_len(p: &ipv4::Packet<&[u8]>) -> usize {
    p.header_len() + l4_header_len(p).unwrap_or(0)
}

/// Checks `off` against the validated IPv4 packet `p` and says what its
/// transport checksum field holds.
pub fn check(p: &ipv4::Packet<&[u8]>, off: &Offload) -> Result<L4Checksum, DropReason> {
    let Some(c) = off.csum else {
        return Ok(L4Checksum::Complete);
    };
    let field = match p.protocol() {
        TCP => 16,
        UDP => 6,
        _ => return Err(DropReason::OffloadMismatch),
    };
    let at_transport = usize::from(c.start) == ethernet::HEADER_LEN + p.header_len();
    if !at_transport || c.offset != field {
        return Err(DropReason::OffloadMismatch);
    }
    if let Some(g) = off.gso {
        let fits = matches!(
            (g.kind, p.protocol()),
            (GsoKind::Tcp4, TCP) | (GsoKind::UdpL4, UDP)
        );
        if !fits || l4_header_len(p).is_none() {
            return Err(DropReason::OffloadMismatch);
        }
    }
    Ok(L4Checksum::Partial)
}

/// Largest IP packet a datagram of `len` bytes with `headers` header bytes
/// puts on the wire: itself, or one full segment.
pub fn largest_packet(len: usize, headers: usize, off: &Offload) -> usize {
    match off.gso {
        Some(g) => headers.saturating_add(usize::from(g.size)).min(len),
        None => len,
    }
}

/// Wire packets a datagram of `len` bytes with `headers` header bytes stands for.
pub fn segments(len: usize, headers: usize, off: &Offload) -> usize {
    off.segments(len.saturating_sub(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::offload::VNET_HDR_LEN;

    /// IPv4 + UDP, 20 + 8 header bytes and `payload` bytes of data.
    fn udp(payload: usize) -> Vec<u8> {
        let total = 28 + payload;
        let mut v = vec![0u8; total];
        v[0] = 0x45;
        v[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        v[8] = 64;
        v[9] = UDP;
        v[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        let c = crate::wire::checksum::checksum(&v[..20]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    }

    fn vnet(flags: u8, gso_type: u8, size: u16, start: u16, off: u16) -> Offload {
        let mut b = vec![flags, gso_type];
        for x in [0u16, size, start, off] {
            b.extend_from_slice(&x.to_ne_bytes());
        }
        assert_eq!(b.len(), VNET_HDR_LEN);
        Offload::parse(&b).unwrap()
    }

    fn view(ip: &[u8]) -> ipv4::Packet<&[u8]> {
        ipv4::Packet::new_checked(ip).unwrap()
    }

    fn largest(ip: &[u8], off: &Offload) -> usize {
        largest_packet(ip.len(), headers_len(&view(ip)), off)
    }

    fn segs(ip: &[u8], off: &Offload) -> usize {
        segments(ip.len(), headers_len(&view(ip)), off)
    }

    #[test]
    fn plain_frames_have_complete_checksums() {
        assert_eq!(
            check(&view(&udp(10)), &Offload::default()),
            Ok(L4Checksum::Complete)
        );
        assert_eq!(largest(&udp(10), &Offload::default()), 38);
        assert_eq!(segs(&udp(10), &Offload::default()), 1);
    }

    #[test]
    fn partial_udp_and_udp_gso_are_accepted() {
        let ip = udp(1400 * 3 + 100);
        assert_eq!(
            check(&view(&ip), &vnet(1, 0, 0, 34, 6)),
            Ok(L4Checksum::Partial)
        );
        let gso = vnet(1, 5, 1400, 34, 6);
        assert_eq!(check(&view(&ip), &gso), Ok(L4Checksum::Partial));
        assert_eq!(largest(&ip, &gso), 1428);
        assert_eq!(segs(&ip, &gso), 4);
    }

    #[test]
    fn metadata_that_does_not_fit_is_refused() {
        let ip = udp(3000);
        // Checksum field at the TCP position, or not at the transport header.
        assert_eq!(
            check(&view(&ip), &vnet(1, 0, 0, 34, 16)),
            Err(DropReason::OffloadMismatch)
        );
        assert_eq!(
            check(&view(&ip), &vnet(1, 0, 0, 38, 6)),
            Err(DropReason::OffloadMismatch)
        );
        // TCP segmentation of a UDP packet.
        assert_eq!(
            check(&view(&ip), &vnet(1, 1, 1400, 34, 6)),
            Err(DropReason::OffloadMismatch)
        );
    }
}
