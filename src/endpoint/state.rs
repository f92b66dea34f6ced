//! Shared endpoint state: the tunnels (each a pair of SAs with its peer's
//! outer address) and the per-thread counters.

use super::config::{Encap, KeyMaterial, ManualKeys, ResolvedPeer};
use super::mobility::Mobility;
use crate::daemon::stats::{Merge, StatsRegistry};
use crate::esp::encap::KeepaliveTimer;
use crate::esp::table::SaTable;
use crate::esp::tunnel::{Selectors, TunnelDrop, DROP_KINDS};
use crate::esp::{EspError, Sa, SaParams};
use crate::spi::DeriveStats;
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    /// Outbound SA (the peer's SPI); `None` until IKE has keyed the tunnel.
    pub sa: Option<Sa>,
    /// A rekeyed outbound SA that takes over once the peer is seen using its
    /// inbound partner, or the old SA is deleted (the gateway side of a
    /// rekey: the client switches first, see docs/IKE.md).
    pub next: Option<Sa>,
    /// Packets sealed.
    pub packets: u64,
    /// Inner bytes sealed.
    pub bytes: u64,
    /// NAT keepalive timer, reset by every UDP datagram sent to the peer.
    pub keepalive: KeepaliveTimer,
}

/// Inbound SAs and their counters.
pub struct RxState {
    /// Inbound SAs (our SPIs): one, two while a rekey overlaps.
    pub sas: Vec<Sa>,
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
    /// Keyed by IKE (CHILD_SAs come and go) rather than by hand.
    pub ike: bool,
    /// IKE found us behind a NAT: we send the NAT keepalives.
    pub keepalive: AtomicBool,
    /// Inbound SPI whose first authenticated packet promotes `TxState::next` (0: none).
    pub promote_on: AtomicU32,
    /// IKE: our inbound SPI of the latest CHILD_SA was derived (we answered).
    pub ike_derived: AtomicBool,
    /// Outbound direction.
    pub tx: Mutex<TxState>,
    /// Inbound direction.
    pub rx: Mutex<RxState>,
}

impl Tunnel {
    /// Builds the SAs of a validated, manually keyed peer.
    pub fn new(p: &ResolvedPeer, m: &ManualKeys) -> Result<Tunnel, EspError> {
        let c = &p.config;
        let sa = |spi, k: &KeyMaterial| {
            Sa::new(&SaParams {
                spi,
                transform: k.transform(),
                esn: m.esn,
                replay_window: c.replay_window,
            })
        };
        let tx = sa(m.remote_spi, &m.key_out)?;
        let rx = sa(m.local_spi, &m.key_in)?;
        Ok(Tunnel {
            name: c.name.clone(),
            local_spi: m.local_spi,
            remote_spi: m.remote_spi,
            derived: m.derived,
            allowed: Selectors(c.inner.clone()),
            static_peer: p.remote.is_some(),
            peer: RwLock::new(p.remote.map(|addr| Peer::new(addr, m.encap))),
            ike: false,
            keepalive: AtomicBool::new(false),
            promote_on: AtomicU32::new(0),
            ike_derived: AtomicBool::new(false),
            tx: Mutex::new(TxState {
                sa: Some(tx),
                next: None,
                packets: 0,
                bytes: 0,
                keepalive: KeepaliveTimer::new(c.keepalive_secs.saturating_mul(1000), 0),
            }),
            rx: Mutex::new(RxState {
                sas: vec![rx],
                packets: 0,
                bytes: 0,
                auth_failures: 0,
                replay_drops: 0,
                unexpected_source: 0,
            }),
        })
    }
}

impl Tunnel {
    /// A tunnel keyed by IKE: no SAs until the first CHILD_SA is installed.
    pub fn unkeyed(name: &str, inner: &[ipnet::Ipv4Net], keepalive_ms: u64) -> Tunnel {
        Tunnel {
            name: name.to_string(),
            local_spi: 0,
            remote_spi: 0,
            derived: false,
            allowed: Selectors(inner.to_vec()),
            static_peer: false,
            peer: RwLock::new(None),
            ike: true,
            keepalive: AtomicBool::new(false),
            promote_on: AtomicU32::new(0),
            ike_derived: AtomicBool::new(false),
            tx: Mutex::new(TxState {
                sa: None,
                next: None,
                packets: 0,
                bytes: 0,
                keepalive: KeepaliveTimer::new(keepalive_ms, 0),
            }),
            rx: Mutex::new(RxState {
                sas: Vec::new(),
                packets: 0,
                bytes: 0,
                auth_failures: 0,
                replay_drops: 0,
                unexpected_source: 0,
            }),
        }
    }

    /// After an authenticated packet on inbound SPI `spi`: a pending
    /// outbound SA takes over when the peer has started using the new pair.
    pub fn seen_inbound(&self, spi: u32) {
        if self.promote_on.load(Ordering::Relaxed) == spi && spi != 0 {
            self.promote_on.store(0, Ordering::Relaxed);
            let mut tx = self.tx.lock();
            if let Some(next) = tx.next.take() {
                tx.sa = Some(next);
            }
        }
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
    /// IKE hand-off, when any peer is keyed by IKE.
    pub keying: Option<super::keying::Keying>,
    /// Anti-replay window per tunnel (for SAs installed later by IKE).
    pub replay_windows: Vec<u32>,
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
        keying: Option<super::keying::Keying>,
    ) -> Shared {
        let replay_windows = Vec::new();
        Shared {
            role,
            tunnels,
            table,
            stats: StatsRegistry::default(),
            spi_stats,
            mobility,
            keying,
            replay_windows,
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
