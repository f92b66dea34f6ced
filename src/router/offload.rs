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

/// Transport header length of `ip` (TCP data offset, UDP 8), if TCP/UDP.
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
fn headers_len(p: &ipv4::Packet<&[u8]>) -> usize {
    p.header_len() + l4_header_len(p).unwrap_or(0)
}

/// Checks `off` against the (already validated) IPv4 packet `ip` and says
/// what its transport checksum field holds.
pub fn check(ip: &[u8], off: &Offload) -> Result<L4Checksum, DropReason> {
    let Some(c) = off.csum else {
        return Ok(L4Checksum::Complete);
    };
    let p = ipv4::Packet::new_checked(ip).map_err(|_| DropReason::IpMalformed)?;
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
        if !fits || l4_header_len(&p).is_none() {
            return Err(DropReason::OffloadMismatch);
        }
    }
    Ok(L4Checksum::Partial)
}

/// Largest IP packet `ip` puts on the wire: itself, or one full segment.
pub fn largest_packet(ip: &[u8], off: &Offload) -> usize {
    match (off.gso, ipv4::Packet::new_checked(ip)) {
        (Some(g), Ok(p)) => (headers_len(&p) + usize::from(g.size)).min(ip.len()),
        _ => ip.len(),
    }
}

/// Wire packets `ip` stands for.
pub fn segments(ip: &[u8], off: &Offload) -> usize {
    match ipv4::Packet::new_checked(ip) {
        Ok(p) => off.segments(p.len().saturating_sub(headers_len(&p))),
        Err(_) => 1,
    }
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

    #[test]
    fn plain_frames_have_complete_checksums() {
        assert_eq!(
            check(&udp(10), &Offload::default()),
            Ok(L4Checksum::Complete)
        );
        assert_eq!(largest_packet(&udp(10), &Offload::default()), 38);
        assert_eq!(segments(&udp(10), &Offload::default()), 1);
    }

    #[test]
    fn partial_udp_and_udp_gso_are_accepted() {
        let ip = udp(1400 * 3 + 100);
        assert_eq!(check(&ip, &vnet(1, 0, 0, 34, 6)), Ok(L4Checksum::Partial));
        let gso = vnet(1, 5, 1400, 34, 6);
        assert_eq!(check(&ip, &gso), Ok(L4Checksum::Partial));
        assert_eq!(largest_packet(&ip, &gso), 1428);
        assert_eq!(segments(&ip, &gso), 4);
    }

    #[test]
    fn metadata_that_does_not_fit_is_refused() {
        let ip = udp(3000);
        // Checksum field at the TCP position, or not at the transport header.
        assert_eq!(
            check(&ip, &vnet(1, 0, 0, 34, 16)),
            Err(DropReason::OffloadMismatch)
        );
        assert_eq!(
            check(&ip, &vnet(1, 0, 0, 38, 6)),
            Err(DropReason::OffloadMismatch)
        );
        // TCP segmentation of a UDP packet.
        assert_eq!(
            check(&ip, &vnet(1, 1, 1400, 34, 6)),
            Err(DropReason::OffloadMismatch)
        );
    }
}
