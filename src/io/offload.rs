//! Offload metadata that travels with a frame between the kernel and the
//! router: the `virtio_net_hdr` that AF_PACKET exchanges with PACKET_VNET_HDR.
//!
//! With it the router forwards what offloading senders and NICs hand over
//! (partial checksums, GSO super-frames of up to 64 KiB) without finishing
//! the work in software: the checksum stays partial, the super-frame stays
//! one frame, and whoever finally transmits or receives it (a NIC, the
//! kernel's software GSO, the local stack) completes it.

/// Length of the legacy `virtio_net_hdr` (no `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// The L4 checksum is only the pseudo-header sum; the sum over the data from
/// `start` on is still to be folded into the field at `start + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialCsum {
    /// Offset of the transport header from the start of the frame.
    pub start: u16,
    /// Offset of the checksum field within the transport header.
    pub offset: u16,
}

/// Which protocol a super-frame segments as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4 (TSO).
    Tcp4,
    /// UDP segmentation (USO, `UDP_SEGMENT`) — a train of equal datagrams.
    UdpL4,
}

/// A GSO super-frame: one frame standing for `size`-byte segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// Segmentation kind.
    pub kind: GsoKind,
    /// Payload bytes per segment (the MSS for TCP).
    pub size: u16,
    /// The sender's ECN hint (TCP CWR handling on segmentation).
    pub ecn: bool,
}

/// Offload state of one frame. The default is "nothing pending": a complete
/// checksum and a single packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    /// The transport checksum is partial.
    pub csum: Option<PartialCsum>,
    /// The frame is a super-frame.
    pub gso: Option<Gso>,
    /// The receiving device already verified the checksum.
    pub data_valid: bool,
    /// The kernel's header-length hint, passed back unchanged.
    hdr_len: u16,
}

/// Metadata the router cannot forward as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// Cut short.
    Truncated,
    /// A GSO type the router does not forward (IPv6, UFO, unknown).
    UnsupportedGso(u8),
    /// GSO without a partial checksum, or a zero segment size.
    Inconsistent,
}

impl Offload {
    /// Parses the 10-byte header (host byte order, as the legacy header is).
    pub fn parse(b: &[u8]) -> Result<Offload, OffloadError> {
        let h: &[u8; VNET_HDR_LEN] = b
            .get(..VNET_HDR_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(OffloadError::Truncated)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        let (flags, gso_type) = (h[0], h[1]);
        let csum = (flags & F_NEEDS_CSUM != 0).then(|| PartialCsum {
            start: u16_at(6),
            offset: u16_at(8),
        });
        let gso = match gso_type & !GSO_ECN {
            GSO_NONE => None,
            t @ (GSO_TCPV4 | GSO_UDP_L4) => Some(Gso {
                kind: if t == GSO_TCPV4 {
                    GsoKind::Tcp4
                } else {
                    GsoKind::UdpL4
                },
                size: u16_at(4),
                ecn: gso_type & GSO_ECN != 0,
            }),
            // UFO (GSO_UDP) and IPv6 are not forwarded; neither is anything newer.
            t => return Err(OffloadError::UnsupportedGso(t)),
        };
        if gso.is_some_and(|g| g.size == 0 || csum.is_none()) {
            return Err(OffloadError::Inconsistent);
        }
        Ok(Offload {
            csum,
            gso,
            data_valid: flags & F_DATA_VALID != 0,
            hdr_len: u16_at(2),
        })
    }

    /// Writes the header for transmission.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut h = [0u8; VNET_HDR_LEN];
        let mut put = |i: usize, v: u16| h[i..i + 2].copy_from_slice(&v.to_ne_bytes());
        if let Some(c) = self.csum {
            put(6, c.start);
            put(8, c.offset);
        }
        if let Some(g) = self.gso {
            put(4, g.size);
        }
        put(2, self.hdr_len);
        h[0] = if self.csum.is_some() { F_NEEDS_CSUM } else { 0 }
            | if self.data_valid { F_DATA_VALID } else { 0 };
        h[1] = match self.gso {
            None => GSO_NONE,
            Some(g) => {
                (match g.kind {
                    GsoKind::Tcp4 => GSO_TCPV4,
                    GsoKind::UdpL4 => GSO_UDP_L4,
                }) | if g.ecn { GSO_ECN } else { 0 }
            }
        };
        h
    }

    /// True when nothing is pending (plain frame).
    pub fn is_plain(&self) -> bool {
        self.csum.is_none() && self.gso.is_none()
    }

    /// How many wire packets a frame with `payload` transport-payload bytes stands for.
    pub fn segments(&self, payload: usize) -> usize {
        match self.gso {
            Some(g) => payload.div_ceil(usize::from(g.size)).max(1),
            None => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(flags: u8, gso_type: u8, hdr_len: u16, size: u16, start: u16, off: u16) -> Vec<u8> {
        let mut v = vec![flags, gso_type];
        for x in [hdr_len, size, start, off] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
    }

    #[test]
    fn plain_frame_round_trips() {
        let b = hdr(0, 0, 0, 0, 0, 0);
        let o = Offload::parse(&b).unwrap();
        assert!(o.is_plain());
        assert_eq!(o.segments(1400), 1);
        assert_eq!(o.emit().to_vec(), b);
    }

    #[test]
    fn partial_checksum_is_read() {
        // UDP in IPv4 in Ethernet: transport at 34, checksum field 6 into it.
        let b = hdr(1, 0, 42, 0, 34, 6);
        let o = Offload::parse(&b).unwrap();
        assert_eq!(
            o.csum,
            Some(PartialCsum {
                start: 34,
                offset: 6
            })
        );
        assert_eq!(o.gso, None);
        assert_eq!(o.emit().to_vec(), b);
    }

    #[test]
    fn udp_and_tcp_super_frames_round_trip() {
        let udp = hdr(1, 5, 42, 1420, 34, 6);
        let o = Offload::parse(&udp).unwrap();
        assert_eq!(
            o.gso,
            Some(Gso {
                kind: GsoKind::UdpL4,
                size: 1420,
                ecn: false
            })
        );
        assert_eq!(o.segments(1420 * 45 + 10), 46);
        assert_eq!(o.emit().to_vec(), udp);
        let tcp = hdr(1, 0x81, 66, 1448, 34, 16);
        let o = Offload::parse(&tcp).unwrap();
        assert_eq!(o.gso.map(|g| (g.kind, g.ecn)), Some((GsoKind::Tcp4, true)));
        assert_eq!(o.emit().to_vec(), tcp);
    }

    #[test]
    fn data_valid_is_kept() {
        let b = hdr(2, 0, 0, 0, 0, 0);
        let o = Offload::parse(&b).unwrap();
        assert!(o.data_valid && o.is_plain());
        assert_eq!(o.emit().to_vec(), b);
    }

    #[test]
    fn unusable_headers_are_refused() {
        assert_eq!(Offload::parse(&[0; 9]), Err(OffloadError::Truncated));
        assert_eq!(
            Offload::parse(&hdr(1, 4, 0, 1440, 54, 16)),
            Err(OffloadError::UnsupportedGso(4))
        );
        assert_eq!(
            Offload::parse(&hdr(1, 3, 0, 1440, 34, 6)),
            Err(OffloadError::UnsupportedGso(3))
        );
        assert_eq!(
            Offload::parse(&hdr(1, 9, 0, 1440, 34, 6)),
            Err(OffloadError::UnsupportedGso(9))
        );
        // GSO needs a partial checksum and a segment size.
        assert_eq!(
            Offload::parse(&hdr(0, 1, 0, 1448, 0, 0)),
            Err(OffloadError::Inconsistent)
        );
        assert_eq!(
            Offload::parse(&hdr(1, 5, 0, 0, 34, 6)),
            Err(OffloadError::Inconsistent)
        );
    }
}
