//! One tunnel of an endpoint: a pair of SAs (two while a rekey overlaps)
//! with its peer's outer address, and the per-packet work on it — sealing
//! an inner packet, opening an ESP packet — without I/O.

use super::config::{KeyMaterial, ManualKeys, ResolvedPeer};
use crate::esp::encap::KeepaliveTimer;
use crate::esp::tunnel::{open_inner, seal_inner, Selectors, TunnelDrop, NEXT_DUMMY};
use crate::esp::{EspError, Sa, SaParams};
use crate::mobility::proof::{Budget, PeerProof, Verdict};
pub use crate::wire::mobility::Encap;
use parking_lot::{Mutex, RwLock};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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
            Encap::Plain => SocketAddrV4::new(*addr.ip(), 0),
            Encap::Udp | Encap::Tcp => addr,
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
    /// Whether the peer's address is proven (a registration moved it).
    pub proof: PeerProof,
    /// Packets sent to an unproven address within its budget.
    pub unproven_sent: u64,
    /// Packets not sent: unproven address, budget spent.
    pub unproven_capped: u64,
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
    /// A registration moved the peer and the new address is not proven yet
    /// (mirrors `TxState::proof`, so the receive path takes no extra lock).
    pub proving: AtomicBool,
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
            proving: AtomicBool::new(false),
            tx: Mutex::new(TxState {
                sa: Some(tx),
                next: None,
                packets: 0,
                bytes: 0,
                keepalive: KeepaliveTimer::new(c.keepalive_secs.saturating_mul(1000), 0),
                proof: PeerProof::default(),
                unproven_sent: 0,
                unproven_capped: 0,
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
            proving: AtomicBool::new(false),
            tx: Mutex::new(TxState {
                sa: None,
                next: None,
                packets: 0,
                bytes: 0,
                keepalive: KeepaliveTimer::new(keepalive_ms, 0),
                proof: PeerProof::default(),
                unproven_sent: 0,
                unproven_capped: 0,
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

/// What is sealed, for the unproven-address budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// Data from the TUN device: charged to the budget.
    Data,
    /// A registration reply: it answers one authenticated request the way
    /// it came, so it is not charged.
    Control,
}

/// How an outer packet arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Source address and port (port 0 for plain ESP).
    pub from: SocketAddrV4,
    /// Local address it was sent to.
    pub to: Ipv4Addr,
    /// Local port (0 for plain ESP).
    pub to_port: u16,
    /// Encapsulation.
    pub encap: Encap,
}

impl Tunnel {
    /// Seals `inner` into `out` on the current outbound SA for a peer
    /// reached with `encap`; returns the length. Counts the packet, and a
    /// UDP datagram resets the NAT keepalive timer.
    pub fn seal(
        &self,
        inner: &[u8],
        out: &mut [u8],
        encap: Encap,
        now: u64,
        what: Sealed,
    ) -> Result<usize, TunnelDrop> {
        let mut guard = self.tx.lock();
        let tx = &mut *guard;
        let sa = tx.sa.as_mut().ok_or(TunnelDrop::NotKeyed)?;
        let verdict = match what {
            Sealed::Data => tx.proof.send(sa.sealed_len(inner.len())),
            Sealed::Control => Verdict::Proven,
        };
        match verdict {
            Verdict::Proven => {}
            Verdict::Unproven => tx.unproven_sent = tx.unproven_sent.saturating_add(1),
            Verdict::Capped => {
                tx.unproven_capped = tx.unproven_capped.saturating_add(1);
                return Err(TunnelDrop::UnprovenPeer);
            }
        }
        let n = seal_inner(sa, inner, out)?;
        tx.packets = tx.packets.saturating_add(1);
        tx.bytes = tx.bytes.saturating_add(inner.len() as u64);
        if encap == Encap::Udp {
            tx.keepalive.on_sent(now);
        }
        Ok(n)
    }

    /// Seals an RFC 4303 §2.6 dummy packet (next header 59, no payload): an
    /// authenticated packet the peer discards, sent by a mobile client to
    /// prove its new address. Not charged to any budget (registration
    /// traffic, one per move).
    pub fn seal_dummy(&self, out: &mut [u8], encap: Encap, now: u64) -> Result<usize, TunnelDrop> {
        let mut tx = self.tx.lock();
        let sa = tx.sa.as_mut().ok_or(TunnelDrop::NotKeyed)?;
        let n = sa.seal(&[], NEXT_DUMMY, out).map_err(TunnelDrop::Esp)?;
        if encap == Encap::Udp {
            tx.keepalive.on_sent(now);
        }
        Ok(n)
    }

    /// A registration moved the peer to `to`; returns true when `to` is
    /// unproven and the budget applies.
    pub fn moved_unproven(&self, from: Option<Ipv4Addr>, to: Ipv4Addr, budget: Budget) -> bool {
        let mut tx = self.tx.lock();
        let unproven = tx.proof.moved(from, to, budget);
        self.proving.store(unproven, Ordering::Relaxed);
        unproven
    }

    /// An authenticated, non-replayed packet of the peer arrived from
    /// `from`; returns true when it proved the address a registration moved
    /// the peer to.
    pub fn authenticated_from(&self, from: Ipv4Addr) -> bool {
        if !self.proving.load(Ordering::Relaxed) {
            return false;
        }
        let mut tx = self.tx.lock();
        let proved = tx.proof.authenticated(from);
        self.proving
            .store(tx.proof.pending().is_some(), Ordering::Relaxed);
        proved
    }

    /// The peer's address was set by IKE (an authenticated exchange with
    /// it): a budget for another address no longer applies.
    pub fn set_peer_by_ike(&self, peer: Peer) {
        *self.peer.write() = Some(peer);
        let mut tx = self.tx.lock();
        if tx.proof.pending() != Some(*peer.addr.ip()) {
            tx.proof.clear();
            self.proving.store(false, Ordering::Relaxed);
        }
    }

    /// Opens `esp_pkt` (starting at its SPI `spi`) on our inbound SA `spi`;
    /// the inner datagram lands at `out[..len]`. Counts the result; an
    /// authenticated packet may promote a pending outbound SA.
    pub fn open(&self, spi: u32, esp_pkt: &[u8], out: &mut [u8]) -> Result<usize, TunnelDrop> {
        let mut guard = self.rx.lock();
        let rx = &mut *guard;
        let sa = rx
            .sas
            .iter_mut()
            .find(|s| s.spi() == spi)
            .ok_or(TunnelDrop::UnknownSpi)?;
        let len = match open_inner(sa, esp_pkt, out, &self.allowed) {
            Ok((len, _seq)) => len,
            Err(e) => {
                match e {
                    TunnelDrop::Esp(EspError::AuthFailed) => rx.auth_failures += 1,
                    TunnelDrop::Esp(EspError::Replay | EspError::TooOld) => rx.replay_drops += 1,
                    _ => {}
                }
                return Err(e);
            }
        };
        rx.packets = rx.packets.saturating_add(1);
        rx.bytes = rx.bytes.saturating_add(len as u64);
        drop(guard);
        self.seen_inbound(spi);
        Ok(len)
    }

    /// After an authenticated data packet from `seen`: a responder learns
    /// where an unconfigured peer is. Once known, the address only moves by
    /// an authenticated registration (mobility) or IKE, never by data.
    pub fn learn_peer(&self, seen: Peer) {
        let known = *self.peer.read();
        match known {
            None if !self.static_peer => {
                *self.peer.write() = Some(seen);
                tracing::info!(peer = %self.name, addr = %seen.addr, encap = seen.encap.label(), "peer address learned");
            }
            Some(p) if p != seen => {
                self.rx.lock().unexpected_source += 1;
            }
            _ => {}
        }
    }
}
