//! Tunnel-mode processing around an SA: what may go in (an inner IPv4
//! datagram) and what may come out (an authenticated inner IPv4 datagram
//! from an address the peer is allowed to use, RFC 4301 §5.2). No I/O.

use super::sa::{EspError, Sa, NEXT_IPV4};
use crate::wire::ipv4;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// RFC 4303 §2.6: next header 59 marks a dummy packet (traffic-flow confidentiality).
pub const NEXT_DUMMY: u8 = 59;

/// Why an endpoint dropped a packet. Each maps to a counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelDrop {
    /// From the TUN side: not a complete IPv4 datagram.
    InnerMalformed,
    /// From the TUN side: no tunnel carries this destination.
    NoTunnel,
    /// The tunnel's peer address is not known yet (not configured, nothing authenticated).
    PeerUnknown,
    /// From the network: malformed outer IPv4 or UDP/4500 payload.
    OuterMalformed,
    /// From the network: no SA for this SPI.
    UnknownSpi,
    /// IKE on UDP/4500 for a daemon without IKE peers.
    IkeUnsupported,
    /// The tunnel has no SA yet (IKE has not keyed it).
    NotKeyed,
    /// ESP processing refused the packet.
    Esp(EspError),
    /// Authenticated, but the next header is neither IPv4 nor a dummy packet.
    NextHeader,
    /// Authenticated dummy packet (next header 59); discarded by design.
    Dummy,
    /// Authenticated, but the inner packet is not valid IPv4.
    InnerInvalid,
    /// Authenticated, but the inner source is outside the peer's selectors.
    Policy,
    /// Authenticated registration message (mobility) that could not be used.
    ControlMalformed,
    /// Sending failed in the kernel.
    SendFailed,
    /// Not sent: a registration moved the peer to an address not proven
    /// yet, and that address's budget is spent (docs/MOBILITY.md).
    UnprovenPeer,
}

impl TunnelDrop {
    /// Every kind, for exporting zero-valued counters.
    pub const ALL: [TunnelDrop; 24] = [
        TunnelDrop::InnerMalformed,
        TunnelDrop::NoTunnel,
        TunnelDrop::PeerUnknown,
        TunnelDrop::OuterMalformed,
        TunnelDrop::UnknownSpi,
        TunnelDrop::IkeUnsupported,
        TunnelDrop::NotKeyed,
        TunnelDrop::Esp(EspError::Truncated),
        TunnelDrop::Esp(EspError::WrongSpi),
        TunnelDrop::Esp(EspError::Replay),
        TunnelDrop::Esp(EspError::TooOld),
        TunnelDrop::Esp(EspError::AuthFailed),
        TunnelDrop::Esp(EspError::BadPadding),
        TunnelDrop::Esp(EspError::BufferTooSmall),
        TunnelDrop::Esp(EspError::SequenceExhausted),
        TunnelDrop::Esp(EspError::BadKey),
        TunnelDrop::Esp(EspError::Rng),
        TunnelDrop::NextHeader,
        TunnelDrop::Dummy,
        TunnelDrop::InnerInvalid,
        TunnelDrop::Policy,
        TunnelDrop::ControlMalformed,
        TunnelDrop::SendFailed,
        TunnelDrop::UnprovenPeer,
    ];

    /// Dense index into a counter array.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }

    /// Prometheus label.
    pub fn label(self) -> &'static str {
        match self {
            TunnelDrop::InnerMalformed => "inner_malformed",
            TunnelDrop::NoTunnel => "no_tunnel",
            TunnelDrop::PeerUnknown => "peer_unknown",
            TunnelDrop::OuterMalformed => "outer_malformed",
            TunnelDrop::UnknownSpi => "unknown_spi",
            TunnelDrop::IkeUnsupported => "ike_unsupported",
            TunnelDrop::NotKeyed => "not_keyed",
            TunnelDrop::Esp(EspError::WrongSpi) => "wrong_spi",
            TunnelDrop::Esp(e) => e.label(),
            TunnelDrop::NextHeader => "next_header",
            TunnelDrop::Dummy => "dummy",
            TunnelDrop::InnerInvalid => "inner_invalid",
            TunnelDrop::Policy => "policy",
            TunnelDrop::ControlMalformed => "control_malformed",
            TunnelDrop::SendFailed => "send_failed",
            TunnelDrop::UnprovenPeer => "unproven_peer",
        }
    }
}

/// Number of drop kinds.
pub const DROP_KINDS: usize = TunnelDrop::ALL.len();

/// The networks a peer may send from (its inner addresses or protected networks).
#[derive(Debug, Clone, Default)]
pub struct Selectors(pub Vec<Ipv4Net>);

impl Selectors {
    /// True when `a` is inside one of the networks.
    pub fn allows(&self, a: Ipv4Addr) -> bool {
        self.0.iter().any(|n| n.contains(&a))
    }
}

/// Inner destination of a datagram read from the TUN device.
pub fn inner_destination(inner: &[u8]) -> Result<Ipv4Addr, TunnelDrop> {
    ipv4::Packet::new_checked(inner)
        .map(|p| p.dst())
        .map_err(|_| TunnelDrop::InnerMalformed)
}

/// Seals the inner IPv4 datagram (exactly its total length) into `out`.
pub fn seal_inner(sa: &mut Sa, inner: &[u8], out: &mut [u8]) -> Result<usize, TunnelDrop> {
    let p = ipv4::Packet::new_checked(inner).map_err(|_| TunnelDrop::InnerMalformed)?;
    let datagram = inner.get(..p.len()).ok_or(TunnelDrop::InnerMalformed)?;
    sa.seal(datagram, NEXT_IPV4, out).map_err(TunnelDrop::Esp)
}

/// Opens an ESP packet and checks the inner datagram; returns its length at `out[..len]`
/// and the full sequence number.
pub fn open_inner(
    sa: &mut Sa,
    esp: &[u8],
    out: &mut [u8],
    allowed: &Selectors,
) -> Result<(usize, u64), TunnelDrop> {
    let o = sa.open(esp, out).map_err(TunnelDrop::Esp)?;
    match o.next_header {
        NEXT_IPV4 => {}
        NEXT_DUMMY => return Err(TunnelDrop::Dummy),
        _ => return Err(TunnelDrop::NextHeader),
    }
    let inner = out.get(..o.len).ok_or(TunnelDrop::InnerInvalid)?;
    let p = ipv4::Packet::new_checked(inner).map_err(|_| TunnelDrop::InnerInvalid)?;
    if !allowed.allows(p.src()) {
        return Err(TunnelDrop::Policy);
    }
    Ok((p.len(), o.seq))
}
