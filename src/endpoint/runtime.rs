//! The endpoint daemon's shared state: the core its threads drive, their
//! counters, the IKE hand-off, the clock and the shutdown flag.

use super::config::{EndpointConfig, Role};
use super::core::Core;
use super::reload::ConfigSource;
use crate::daemon::reload::ReloadStats;
use crate::daemon::stats::{Merge, StatsRegistry};
use crate::esp::tunnel::{TunnelDrop, DROP_KINDS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    /// Datagrams the kernel refused in batched sends, by reason (the
    /// batch went on with the next one).
    pub send_errors: crate::io::sys::SendFailures,
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
            send_errors: Default::default(),
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
        self.send_errors.add(&o.send_errors);
    }
}

/// What the endpoint's threads share: the core, their counters, the IKE
/// hand-off, the clock they read and the shutdown flag.
pub struct Shared {
    /// The protocol core.
    pub core: Core,
    /// Per-thread counters.
    pub stats: StatsRegistry<Counters>,
    /// IKE hand-off, when any peer is keyed by IKE.
    pub keying: Option<super::ike_handoff::Keying>,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
    /// Which daemon this is.
    pub role: Role,
    /// The configuration in force (replaced by each applied reload).
    pub config: parking_lot::Mutex<EndpointConfig>,
    /// Where a reload reads the configuration; `None`: reloads are refused.
    pub source: Option<ConfigSource>,
    /// Reloads by result.
    pub reloads: ReloadStats,
    start: Instant,
}

impl Shared {
    /// Daemon state around `core`, built from `config` for `role`.
    pub fn new(
        core: Core,
        keying: Option<super::ike_handoff::Keying>,
        config: EndpointConfig,
        role: Role,
    ) -> Shared {
        Shared {
            core,
            stats: StatsRegistry::default(),
            keying,
            shutdown: AtomicBool::new(false),
            role,
            config: parking_lot::Mutex::new(config),
            source: None,
            reloads: ReloadStats::default(),
            start: Instant::now(),
        }
    }

    /// Milliseconds since start (the time the daemon passes to the cores).
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// True once shutdown was requested.
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}
