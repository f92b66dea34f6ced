//! Shared endpoint state: the tunnels (each a pair of SAs with its peer's
//! outer address) and the per-thread counters.

use super::config::{Encap, KeyMaterial, ResolvedPeer};
use super::mobility::Mobility;
use crate::daemon::stats::{Merge, StatsRegistry};
use crate::esp::encap::KeepaliveTimer;
use crate::esp::table::SaTable;
use crate::esp::tunnel::{Selectors, TunnelDrop, DROP_KINDS};
use crate::esp::{EspError, Sa, SaParams};
use crate::spi::DeriveStats;
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where and how to reach a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Outer address; the port matters for UDP encapsulation only.
    pub addr: SocketAddrV4,
    /// Encapsulation towards it.
    pub encap: Encap,
}

impl Peer {
    /// A peer; plain ESP has no port, so it is kept as 0 and two plain-ESP
    /// peers compare equal exactly when their addresses do.
    pub fn new(addr: SocketAddrV4, encap: Encap) -> Peer {
        let addr = match encap {
            Encap::None => SocketAddrV4::new(*addr.ip(), 0),
            Encap::Udp => addr,
        };
        Peer { addr, encap }
    }
}

/// Outbound SA and its counters (one lock per packet, no shared atomics).
pub struct TxState {
    /// Outbound SA (the peer's SPI).
    pub sa: Sa,
    /// Packets sealed.
    pub packets: u64,
    /// Inner bytes sealed.
    pub bytes: u64,
    /// NAT keepalive timer, reset by every UDP datagram sent to the peer.
    pub keepalive: KeepaliveTimer,
}

/// Inbound SA and its counters.
pub struct RxState {
    /// Inbound SA (our SPI).
    pub sa: Sa,
    /// Packets accepted.
    pub packets: u64,
    /// Inner bytes accepted.
    pub bytes: u64,
    /// ICV failures (tampered, wrong key).
    pub auth_failures: u64,
    /// Duplicates and packets behind the window.
    pub replay_drops: u64,
    /// Authenticated packets from an address other than the peer's.
    pub unexpected_source: u64,
}

/// One tunnel with one peer.
pub struct Tunnel {
    /// Name from the configuration.
    pub name: String,
    /// Our inbound SPI.
    pub local_spi: u32,
    /// The peer's inbound SPI.
    pub remote_spi: u32,
    /// True when `local_spi` was derived at start.
    pub derived: bool,
    /// Inner sources the peer may use.
    pub allowed: Selectors,
    /// Peer address came from the configuration (never learned).
    pub static_peer: bool,
    /// Current peer address; `None` until learned.
    pub peer: RwLock<Option<Peer>>,
    /// Outbound direction.
    pub tx: Mutex<TxState>,
    /// Inbound direction.
    pub rx: Mutex<RxState>,
}

impl Tunnel {
    /// Builds the SAs of a validated peer.
    pub fn new(p: &ResolvedPeer) -> Result<Tunnel, EspError> {
        let c = &p.config;
        let sa = |spi, k: &KeyMaterial| {
            Sa::new(&SaParams {
                spi,
                transform: k.transform(),
                esn: c.esn,
                replay_window: c.replay_window,
            })
        };
        let tx = sa(c.remote_spi, &p.key_out)?;
        let rx = sa(p.local_spi, &p.key_in)?;
        Ok(Tunnel {
            name: c.name.clone(),
            local_spi: p.local_spi,
            remote_spi: c.remote_spi,
            derived: p.derived,
            allowed: Selectors(c.inner.clone()),
            static_peer: p.remote.is_some(),
            peer: RwLock::new(p.remote.map(|addr| Peer::new(addr, c.encap))),
            tx: Mutex::new(TxState {
                sa: tx,
                packets: 0,
                bytes: 0,
                keepalive: KeepaliveTimer::new(c.keepalive_secs.saturating_mul(1000), 0),
            }),
            rx: Mutex::new(RxState {
                sa: rx,
                packets: 0,
                bytes: 0,
                auth_failures: 0,
                replay_drops: 0,
                unexpected_source: 0,
            }),
        })
    }
}

/// What one thread counts.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Drops by `TunnelDrop::index`.
    pub drops: [u64; DROP_KINDS],
    /// Packets read from the TUN device.
    pub tun_rx: u64,
    /// Packets written to the TUN device.
    pub tun_tx: u64,
    /// Outer packets received (ESP or UDP/4500).
    pub outer_rx: u64,
    /// Outer packets sent.
    pub outer_tx: u64,
    /// NAT keepalives sent.
    pub keepalives_sent: u64,
    /// NAT keepalives received.
    pub keepalives_received: u64,
    /// UDP GSO messages sent (each a train of several datagrams).
    pub gso_trains_tx: u64,
    /// Coalesced trains received (UDP_GRO).
    pub gro_trains_rx: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: [0; DROP_KINDS],
            tun_rx: 0,
            tun_tx: 0,
            outer_rx: 0,
            outer_tx: 0,
            keepalives_sent: 0,
            keepalives_received: 0,
            gso_trains_tx: 0,
            gro_trains_rx: 0,
        }
    }
}

impl Counters {
    /// Counts a drop.
    pub fn drop(&mut self, d: TunnelDrop) {
        if let Some(c) = self.drops.get_mut(d.index()) {
            *c += 1;
        }
    }
}

impl Merge for Counters {
    fn merge(&mut self, o: &Self) {
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.tun_rx += o.tun_rx;
        self.tun_tx += o.tun_tx;
        self.outer_rx += o.outer_rx;
        self.outer_tx += o.outer_tx;
        self.keepalives_sent += o.keepalives_sent;
        self.keepalives_received += o.keepalives_received;
        self.gso_trains_tx += o.gso_trains_tx;
        self.gro_trains_rx += o.gro_trains_rx;
    }
}

/// Everything the endpoint's threads share.
pub struct Shared {
    /// "responder" or "client".
    pub role: &'static str,
    /// Tunnels, indexed by the SA table.
    pub tunnels: Vec<Tunnel>,
    /// SPI and inner-address index.
    pub table: SaTable,
    /// Per-thread counters.
    pub stats: StatsRegistry<Counters>,
    /// What SPI derivation did at start.
    pub spi_stats: DeriveStats,
    /// Registrations (mobility).
    pub mobility: Mobility,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
    start: Instant,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        role: &'static str,
        tunnels: Vec<Tunnel>,
        table: SaTable,
        spi_stats: DeriveStats,
        mobility: Mobility,
    ) -> Shared {
        Shared {
            role,
            tunnels,
            table,
            stats: StatsRegistry::default(),
            spi_stats,
            mobility,
            shutdown: AtomicBool::new(false),
            start: Instant::now(),
        }
    }

    /// Milliseconds since start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// True once shutdown was requested.
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}
