//! The hand-off between the endpoint's packet threads and its IKE thread:
//! the bounded queue into the IKE thread (datagrams for the engine, peer
//! moves from registrations) and the counters it publishes for metrics.

use crate::ike::engine::ReconfigureError;
use crate::ike::listing::Listing;
use crate::ike::stats::IkeStats;
use crate::ike::{EngineConfig, PeerPolicy};
use crossbeam::channel::{Sender, TrySendError};
use parking_lot::Mutex;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};

/// IKE datagrams queued for the IKE thread before more are dropped.
pub const QUEUE: usize = 4096;

/// Work for the IKE thread.
pub enum IkeInput {
    /// An IKE message (non-ESP marker removed).
    Datagram {
        /// Our address and port it arrived on.
        local: SocketAddrV4,
        /// Its source.
        remote: SocketAddrV4,
        /// The message.
        data: Vec<u8>,
    },
    /// An operator asks for the SAs (`show ike|child`); `peer` filters.
    List {
        /// Only this peer policy's SAs.
        peer: Option<String>,
        /// Where the listing goes.
        reply: Sender<Listing>,
    },
    /// A reload: new limits, timers and peer policies for the engine.
    Reconfigure {
        /// Engine settings.
        config: Box<EngineConfig>,
        /// Peer policies, same peers in the same order.
        policies: Vec<PeerPolicy>,
        /// The engine's answer.
        reply: Sender<Result<(), ReconfigureError>>,
    },
    /// A registration moved tunnel `tunnel`'s peer: move its IKE SA too.
    MovePeer {
        /// Tunnel index.
        tunnel: usize,
        /// New outer address.
        remote: SocketAddrV4,
        /// UDP encapsulation.
        udp: bool,
    },
}

/// What the IKE thread publishes for metrics.
#[derive(Debug, Clone, Default)]
pub struct IkeSnapshot {
    /// Engine counters.
    pub stats: IkeStats,
    /// IKE SAs by `IkeState::ALL` index.
    pub ike_sas: [u64; 5],
    /// CHILD_SAs by `ChildState::ALL` index.
    pub child_sas: [u64; 4],
    /// Half-open IKE SAs.
    pub half_open: u64,
}

/// The endpoint's IKE hand-off: the queue to the IKE thread and what it reports.
pub struct Keying {
    /// Queue into the IKE thread.
    pub input: Sender<IkeInput>,
    /// Tunnel index of each IKE peer policy.
    pub tunnel_of_peer: Vec<usize>,
    /// Latest counters.
    pub snapshot: Mutex<IkeSnapshot>,
    /// IKE datagrams dropped because the queue was full.
    pub queue_full: AtomicU64,
}

impl Keying {
    /// A hand-off for these peers.
    pub fn new(input: Sender<IkeInput>, tunnel_of_peer: Vec<usize>) -> Keying {
        Keying {
            input,
            tunnel_of_peer,
            snapshot: Mutex::new(IkeSnapshot::default()),
            queue_full: AtomicU64::new(0),
        }
    }

    /// Queues an input without blocking a packet loop; counts it when full.
    pub fn offer(&self, i: IkeInput) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.input.try_send(i) {
            self.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the IKE thread (waiting at most `wait` for room in its queue)
    /// and returns its answer. Once queued the request is always answered,
    /// or dropped with the queue when the thread stops, so the answer is
    /// waited for without a deadline: a reload never half-applies unseen.
    pub fn ask<T>(
        &self,
        wait: std::time::Duration,
        input: impl FnOnce(Sender<T>) -> IkeInput,
    ) -> Result<T, &'static str> {
        let (tx, rx) = crossbeam::channel::bounded(1);
        self.input
            .send_timeout(input(tx), wait)
            .map_err(|_| "the IKE thread is busy or stopped")?;
        rx.recv().map_err(|_| "the IKE thread stopped")
    }

    /// The IKE peer policy of tunnel `tunnel`.
    pub fn peer_of_tunnel(&self, tunnel: usize) -> Option<usize> {
        self.tunnel_of_peer.iter().position(|t| *t == tunnel)
    }
}
