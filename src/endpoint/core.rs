//! The endpoint's protocol core, without I/O and without clock reads (time
//! is passed in): the tunnels, the SA table that finds them, and the
//! registration state. The daemon's threads read packets, hand them here
//! and carry out what comes back (a sealed packet and where it goes, an
//! inner packet for the TUN device, registration `Action`s).

use super::registration::{Action, Mobility};
use super::tunnel::{Arrival, Encap, Peer, Tunnel};
use crate::esp::table::SaTable;
use crate::esp::tunnel::{inner_destination, TunnelDrop};
use crate::esp::EspError;
use crate::mobility::client::Path;
use crate::spi::DeriveStats;
use crate::wire::esp;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

/// The endpoint core.
pub struct Core {
    /// "responder" or "client".
    pub role: &'static str,
    /// Tunnels, indexed by the SA table.
    pub tunnels: Vec<Tunnel>,
    /// SPI and inner-address index.
    pub table: SaTable,
    /// What SPI derivation did at start.
    pub spi_stats: DeriveStats,
    /// Registrations (mobility).
    pub mobility: Mobility,
    /// Anti-replay window per tunnel (for SAs installed later by IKE).
    pub replay_windows: Vec<u32>,
}

/// An authenticated inner datagram at `out[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Length of the inner datagram.
    pub len: usize,
    /// Tunnel it arrived on.
    pub tunnel: usize,
    /// A registration message for this endpoint (not for the TUN device).
    pub control: bool,
}

impl Core {
    /// Seals one inner packet from the TUN device for its tunnel (found by
    /// inner destination) into `out`; returns the length and where to send it.
    pub fn seal(
        &self,
        inner: &[u8],
        out: &mut [u8],
        now: u64,
    ) -> Result<(usize, Peer), TunnelDrop> {
        let dst = inner_destination(inner)?;
        let t = self
            .table
            .by_inner(dst)
            .and_then(|id| self.tunnels.get(id))
            .ok_or(TunnelDrop::NoTunnel)?;
        let peer = (*t.peer.read()).ok_or(TunnelDrop::PeerUnknown)?;
        let n = t.seal(inner, out, peer.encap, now, super::tunnel::Sealed::Data)?;
        Ok((n, peer))
    }

    /// Opens one ESP packet (starting at the SPI) that arrived as `arrival`;
    /// the inner datagram lands at `out[..len]`. A registration message is
    /// flagged `control` (hand it to `on_control`); data teaches a responder
    /// where an unconfigured peer is.
    pub fn open(
        &self,
        esp_pkt: &[u8],
        arrival: Arrival,
        out: &mut [u8],
    ) -> Result<Opened, TunnelDrop> {
        let spi = match esp::Packet::new_checked(esp_pkt) {
            Ok(p) => p.spi(),
            Err(crate::wire::WireError::Truncated) => {
                return Err(TunnelDrop::Esp(EspError::Truncated))
            }
            Err(_) => return Err(TunnelDrop::UnknownSpi),
        };
        let (tunnel, t) = self
            .table
            .by_spi(spi)
            .and_then(|id| Some((id, self.tunnels.get(id)?)))
            .ok_or(TunnelDrop::UnknownSpi)?;
        let opened = t.open(spi, esp_pkt, out);
        // Any authenticated, non-replayed packet (a dummy one too) from the
        // address a registration moved the peer to proves that address.
        if matches!(opened, Ok(_) | Err(TunnelDrop::Dummy))
            && t.authenticated_from(*arrival.from.ip())
        {
            self.mobility.proved(t);
        }
        let len = opened?;
        let control = self.mobility.is_control(out.get(..len).unwrap_or_default());
        // Where the peer is now is a registration's decision, not this packet's.
        if !control {
            t.learn_peer(Peer::new(arrival.from, arrival.encap));
        }
        Ok(Opened {
            len,
            tunnel,
            control,
        })
    }

    /// Handles a registration message `open` flagged on `tunnel`.
    pub fn on_control(
        &self,
        tunnel: usize,
        inner: &[u8],
        arrival: Arrival,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), TunnelDrop> {
        self.mobility
            .on_control(&self.tunnels, tunnel, inner, arrival, now, out)
    }

    /// Client: the route to the gateway is now `path`.
    pub fn on_route(&self, path: Option<Path>, now: u64, out: &mut Vec<Action>) {
        self.mobility.on_route(&self.tunnels, path, now, out);
    }

    /// Client: registration retransmissions and deadlines; returns ms until
    /// the next one.
    pub fn poll_registration(&self, now: u64, out: &mut Vec<Action>) -> Option<u64> {
        self.mobility.poll(&self.tunnels, now, out)
    }

    /// NAT keepalives due at `now` (RFC 3948 §2.3), for UDP-encapsulated
    /// tunnels whose peer we keep a NAT open towards: a configured peer, or
    /// one IKE found us behind a NAT of. Marks them sent.
    pub fn keepalives_due(&self, now: u64, out: &mut Vec<SocketAddrV4>) {
        for t in self
            .tunnels
            .iter()
            .filter(|t| t.static_peer || t.keepalive.load(Ordering::Relaxed))
        {
            let Some(peer) = *t.peer.read() else { continue };
            if peer.encap != Encap::Udp {
                continue;
            }
            let mut tx = t.tx.lock();
            if tx.keepalive.due(now) {
                out.push(peer.addr);
                tx.keepalive.on_sent(now);
            }
        }
    }
}
