//! Splitting one TUN read (virtio-net header + packet) into segments, with
//! as many segment buffers as the packet needs: a 64 KiB super-packet of
//! small segments (a peer announcing a tiny MSS, a UDP_SEGMENT sender) is
//! never refused for want of buffers. The segmentation itself is tun-rs's
//! `gso_split`; this decides the buffers and repeats the checks tun-rs's
//! own read path makes before it.

use std::io;
use tun_rs::{VirtioNetHdr, VIRTIO_NET_HDR_LEN};

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_UDP_L4: u8 = 5;

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Segment buffers that grow to what a read needs and are kept for the next.
pub struct Segments {
    /// One buffer per segment.
    pub bufs: Vec<Vec<u8>>,
    /// Length of each segment of the last split.
    pub sizes: Vec<usize>,
}

impl Segments {
    /// `n` buffers of `len` bytes to start with.
    pub fn new(n: usize, len: usize) -> Segments {
        Segments {
            bufs: vec![vec![0; len]; n.max(1)],
            sizes: vec![0; n.max(1)],
        }
    }

    /// At least `n` buffers, each at least `len` bytes.
    fn reserve(&mut self, n: usize, len: usize) {
        if self.bufs.len() < n {
            self.bufs.resize_with(n, Vec::new);
            self.sizes.resize(n, 0);
        }
        for b in self.bufs.iter_mut().take(n) {
            if b.len() < len {
                b.resize(len, 0);
            }
        }
    }
}

/// Copies a packet without offload work into the first buffer.
pub fn single(pkt: &[u8], seg: &mut Segments) -> usize {
    seg.reserve(1, pkt.len());
    match (seg.bufs.first_mut(), seg.sizes.first_mut()) {
        (Some(b), Some(s)) => {
            if let Some(dst) = b.get_mut(..pkt.len()) {
                dst.copy_from_slice(pkt);
            }
            *s = pkt.len();
            1
        }
        _ => 0,
    }
}

/// Splits `read` (virtio-net header, then the packet) into `seg`; returns
/// the number of segments.
pub fn split(read: &mut [u8], seg: &mut Segments) -> io::Result<usize> {
    let head = read
        .get(..VIRTIO_NET_HDR_LEN)
        .ok_or(invalid("read shorter than the virtio-net header"))?;
    let mut hdr = VirtioNetHdr::decode(head)?;
    let pkt = read
        .get_mut(VIRTIO_NET_HDR_LEN..)
        .filter(|p| !p.is_empty())
        .ok_or(invalid("no packet behind the virtio-net header"))?;
    let csum_start = usize::from(hdr.csum_start);
    let csum_at = csum_start.saturating_add(usize::from(hdr.csum_offset));
    if hdr.gso_type == GSO_NONE {
        if hdr.flags & F_NEEDS_CSUM != 0 {
            // CHECKSUM_PARTIAL: fold the sum over the transport data into the
            // pseudo-header sum already in the field.
            let initial = pkt
                .get(csum_at..csum_at.saturating_add(2))
                .map(|f| u16::from_be_bytes([f[0], f[1]]))
                .ok_or(invalid("checksum field beyond the packet"))?;
            if let Some(f) = pkt.get_mut(csum_at..csum_at + 2) {
                f.fill(0);
            }
            let sum = tun_rs::checksum(
                pkt.get(csum_start..).unwrap_or_default(),
                u64::from(initial),
            );
            if let Some(f) = pkt.get_mut(csum_at..csum_at + 2) {
                f.copy_from_slice(&(!sum).to_be_bytes());
            }
        }
        return Ok(single(pkt, seg));
    }
    if hdr.gso_size == 0 {
        return Err(invalid("GSO packet with segment size 0"));
    }
    let is_v6 = match pkt.first().map(|b| b >> 4) {
        Some(4) => false,
        Some(6) => true,
        _ => return Err(invalid("GSO packet is not IP")),
    };
    // The kernel's hdr_len may cover a whole first packet on the forward
    // path: take the transport header's own length instead (as tun-rs does).
    let l4_len = if hdr.gso_type & !0x80 == GSO_UDP_L4 {
        8
    } else {
        let off = pkt
            .get(csum_start.saturating_add(12))
            .ok_or(invalid("TCP header beyond the packet"))?;
        let n = usize::from(off >> 4) * 4;
        if !(20..=60).contains(&n) {
            return Err(invalid("TCP header length out of range"));
        }
        n
    };
    let hdr_len = csum_start.saturating_add(l4_len);
    if hdr_len > pkt.len() {
        return Err(invalid("headers longer than the packet"));
    }
    hdr.hdr_len = u16::try_from(hdr_len).map_err(|_| invalid("header length"))?;
    let payload = pkt.len() - hdr_len;
    let gso = usize::from(hdr.gso_size);
    let count = payload.div_ceil(gso).max(1);
    seg.reserve(count, hdr_len.saturating_add(payload.min(gso)));
    let (Some(bufs), Some(sizes)) = (seg.bufs.get_mut(..count), seg.sizes.get_mut(..count)) else {
        return Err(invalid("segment buffers"));
    };
    tun_rs::gso_split(pkt, hdr, bufs, sizes, 0, is_v6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;

    /// A virtio-net header and an IPv4/TCP super-packet of `segments`
    /// segments of `mss` bytes, checksums partial as the kernel hands it over.
    fn super_packet(segments: usize, mss: u16) -> Vec<u8> {
        let payload = segments * usize::from(mss);
        let total = 20 + 20 + payload;
        let mut p = vec![0u8; VIRTIO_NET_HDR_LEN + total];
        let hdr = &mut p[..VIRTIO_NET_HDR_LEN];
        hdr[0] = F_NEEDS_CSUM;
        hdr[1] = 1; // GSO_TCPV4
        hdr[2..4].copy_from_slice(&40u16.to_le_bytes());
        hdr[4..6].copy_from_slice(&mss.to_le_bytes());
        hdr[6..8].copy_from_slice(&20u16.to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        let ip = &mut p[VIRTIO_NET_HDR_LEN..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total.min(65535) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 99, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 98, 0, 5]);
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&6000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        for (i, b) in tcp[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn more_than_64_small_segments_are_all_delivered() {
        // 1000 segments of 48 bytes (the smallest MSS Linux sends): 48 KB.
        let mut read = super_packet(1000, 48);
        let mut seg = Segments::new(64, 9216);
        let n = split(&mut read, &mut seg).unwrap();
        assert_eq!(n, 1000);
        let mut seq = 1000u32;
        for (i, (b, len)) in seg.bufs.iter().zip(&seg.sizes).take(n).enumerate() {
            let p = ipv4::Packet::new_checked(&b[..*len]).unwrap();
            assert_eq!(p.len(), 40 + 48, "segment {i}");
            let tcp = p.payload();
            assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), seq);
            assert_eq!(tcp[20], (i * 48) as u8);
            seq += 48;
        }
    }

    #[test]
    fn a_full_64k_read_of_tiny_segments_fits_and_buffers_are_reused() {
        let mut seg = Segments::new(64, 9216);
        // Payload 65495 bytes in 1-byte segments: the most a 64 KiB read holds.
        let mut read = super_packet(65495, 1);
        assert_eq!(split(&mut read, &mut seg).unwrap(), 65495);
        let mut read = super_packet(10, 1400);
        assert_eq!(split(&mut read, &mut seg).unwrap(), 10);
        assert_eq!(seg.sizes[9], 1440);
    }

    #[test]
    fn plain_packets_and_broken_headers() {
        let mut seg = Segments::new(1, 64);
        let mut read = super_packet(1, 2000);
        read[1] = GSO_NONE;
        read[0] = 0;
        assert_eq!(split(&mut read, &mut seg).unwrap(), 1);
        assert_eq!(seg.sizes[0], 2040, "grew past the first buffer's size");
        let mut short = vec![0u8; 5];
        assert!(split(&mut short, &mut seg).is_err());
        let mut zero = super_packet(3, 100);
        zero[4..6].fill(0);
        assert!(split(&mut zero, &mut seg).is_err());
        let mut bad_tcp = super_packet(3, 100);
        bad_tcp[VIRTIO_NET_HDR_LEN + 20 + 12] = 0x10; // 4-byte TCP header
        assert!(split(&mut bad_tcp, &mut seg).is_err());
    }
}
