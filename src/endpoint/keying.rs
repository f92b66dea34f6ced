//! IKE in the endpoint daemons: one thread owns the protocol core
//! (`ike::Engine`), reads IKE from UDP 500 (and, forwarded by the UDP/4500
//! loop, from the NAT-T port), sends what the engine emits and applies its
//! events to the tunnels: install a CHILD_SA's ESP SAs, switch traffic to
//! a rekeyed SA, remove deleted ones, follow the peer's address.

use super::config::Encap;
use super::datapath::Outer;
use super::state::{Peer, Shared};
use crate::esp::{Hmac, Sa, SaParams, Transform};
use crate::ike::crypto::{EspKeys, EspSuite, Integ};
use crate::ike::sa::{ChildState, IkeState};
use crate::ike::stats::IkeStats;
use crate::ike::{ChildInstall, Datagram, Engine, Event};
use crate::io::outer::UdpEncap;
use crossbeam::channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// IKE datagrams queued for the IKE thread before more are dropped.
pub const QUEUE: usize = 4096;

/// Work for the IKE thread.
#[derive(Debug)]
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

    fn peer_of_tunnel(&self, tunnel: usize) -> Option<usize> {
        self.tunnel_of_peer.iter().position(|t| *t == tunnel)
    }
}

/// An ESP SA from negotiated keys: AES-GCM takes key‖salt, AES-CBC the
/// key and the HMAC key (RFC 7296 §2.17 order, split by `EspSuite::derive`).
fn esp_sa(spi: u32, suite: &EspSuite, keys: &EspKeys, replay_window: u32) -> Option<Sa> {
    let transform = match suite.integ {
        None => {
            let split = keys.encr.len().checked_sub(4)?;
            let (key, salt) = keys.encr.split_at(split);
            Transform::AesGcm {
                key,
                salt: salt.try_into().ok()?,
            }
        }
        Some(i) => Transform::AesCbcHmac {
            key: &keys.encr,
            hmac: match i {
                Integ::HmacSha256_128 => Hmac::Sha256_128,
                Integ::HmacSha384_192 => Hmac::Sha384_192,
                Integ::HmacSha512_256 => Hmac::Sha512_256,
            },
            hmac_key: &keys.integ,
        },
    };
    Sa::new(&SaParams {
        spi,
        transform,
        esn: suite.esn,
        replay_window,
    })
    .ok()
}

/// Applies one engine event to the tunnels.
fn apply(shared: &Shared, keying: &Keying, e: Event, key_log: &mut Option<std::fs::File>) {
    match e {
        Event::ChildUp(c) => install(shared, keying, &c),
        Event::ChildDown {
            peer,
            inbound_spi,
            outbound_spi,
        } => {
            let Some(t) = keying
                .tunnel_of_peer
                .get(peer)
                .and_then(|i| shared.tunnels.get(*i))
            else {
                return;
            };
            shared.table.remove_spi(inbound_spi);
            t.rx.lock().sas.retain(|s| s.spi() != inbound_spi);
            let mut tx = t.tx.lock();
            if tx.sa.as_ref().is_some_and(|s| s.spi() == outbound_spi) {
                // The replaced SA is gone: its successor carries the traffic now.
                tx.sa = tx.next.take();
                t.promote_on.store(0, Ordering::Relaxed);
            } else if tx.next.as_ref().is_some_and(|s| s.spi() == outbound_spi) {
                tx.next = None;
            }
            tracing::info!(
                peer = %t.name,
                inbound_spi = format!("{inbound_spi:#010x}"),
                outbound_spi = format!("{outbound_spi:#010x}"),
                "CHILD_SA removed"
            );
        }
        Event::PeerMoved { peer, remote, udp } => {
            if let Some(t) = keying
                .tunnel_of_peer
                .get(peer)
                .and_then(|i| shared.tunnels.get(*i))
            {
                let encap = if udp { Encap::Udp } else { Encap::None };
                *t.peer.write() = Some(Peer::new(remote, encap));
                tracing::info!(peer = %t.name, %remote, "peer moved (IKE)");
            }
        }
        Event::IkeUp {
            ike,
            peer,
            remote,
            remote_id,
        } => {
            let name = keying
                .tunnel_of_peer
                .get(peer)
                .and_then(|i| shared.tunnels.get(*i))
                .map(|t| t.name.as_str());
            tracing::info!(peer = name.unwrap_or("?"), %remote, id = %remote_id, spi = format!("{ike:#018x}"), "IKE SA established");
        }
        Event::IkeDown { ike, peer, reason } => {
            let name = peer
                .and_then(|p| keying.tunnel_of_peer.get(p))
                .and_then(|i| shared.tunnels.get(*i))
                .map(|t| t.name.as_str());
            tracing::info!(
                peer = name.unwrap_or("-"),
                spi = format!("{ike:#018x}"),
                reason = reason.label(),
                "IKE SA down"
            );
        }
        Event::KeyLog { table, line } => {
            if let Some(f) = key_log.as_mut() {
                let tag = match table {
                    crate::ike::engine::KeyLogTable::Ike => "ikev2_decryption_table",
                    crate::ike::engine::KeyLogTable::Esp => "esp_sa",
                };
                // One file, each line tagged with the tshark table it belongs to.
                if writeln!(f, "{tag}: {line}").is_err() {
                    tracing::warn!("key log write failed");
                }
            }
        }
    }
}

/// Installs a CHILD_SA: inbound at once; outbound at once, or for a
/// gateway's rekey once the peer uses the new pair or the old one is deleted.
fn install(shared: &Shared, keying: &Keying, c: &ChildInstall) {
    let Some((i, t)) = keying
        .tunnel_of_peer
        .get(c.peer)
        .and_then(|i| Some((*i, shared.tunnels.get(*i)?)))
    else {
        return;
    };
    let window = shared.replay_windows.get(i).copied().unwrap_or(128);
    let (Some(rx), Some(tx)) = (
        esp_sa(c.inbound_spi, &c.suite, &c.key_in, window),
        esp_sa(c.outbound_spi, &c.suite, &c.key_out, window),
    ) else {
        tracing::warn!(peer = %t.name, "negotiated ESP suite cannot be installed");
        return;
    };
    if !shared.table.add_spi(c.inbound_spi, i) {
        tracing::warn!(peer = %t.name, spi = format!("{:#010x}", c.inbound_spi), "inbound SPI already in use");
        return;
    }
    t.rx.lock().sas.push(rx);
    let encap = if c.udp { Encap::Udp } else { Encap::None };
    *t.peer.write() = Some(Peer::new(c.remote, encap));
    t.keepalive.store(c.keepalive, Ordering::Relaxed);
    t.ike_derived.store(c.derived, Ordering::Relaxed);
    {
        let mut x = t.tx.lock();
        if c.defer_outbound && x.sa.is_some() {
            x.next = Some(tx);
            t.promote_on.store(c.inbound_spi, Ordering::Relaxed);
        } else {
            x.sa = Some(tx);
            x.next = None;
        }
    }
    tracing::info!(
        peer = %t.name,
        inbound_spi = format!("{:#010x}", c.inbound_spi),
        outbound_spi = format!("{:#010x}", c.outbound_spi),
        derived = c.derived,
        rekey = c.replaces.is_some(),
        encap = encap.label(),
        remote = %c.remote,
        "CHILD_SA installed"
    );
}

fn snapshot(engine: &Engine) -> IkeSnapshot {
    let mut s = IkeSnapshot {
        stats: engine.stats.clone(),
        half_open: engine.half_open() as u64,
        ..IkeSnapshot::default()
    };
    for sa in engine.sas() {
        if let Some(i) = IkeState::ALL.iter().position(|x| *x == sa.state) {
            s.ike_sas[i] += 1;
        }
        for c in &sa.children {
            if let Some(i) = ChildState::ALL.iter().position(|x| *x == c.state) {
                s.child_sas[i] += 1;
            }
        }
    }
    s
}

/// Sends what the engine queued.
fn flush(engine: &mut Engine, ike: &UdpEncap, outer: &Outer, natt_port: u16) {
    while let Some(t) = engine.poll_transmit() {
        let r = if t.local_port == natt_port {
            let mut m = Vec::with_capacity(t.data.len() + 4);
            m.extend_from_slice(&crate::wire::ike::NON_ESP_MARKER);
            m.extend_from_slice(&t.data);
            outer.udp.send_to(&m, t.remote)
        } else {
            ike.send_to(&t.data, t.remote)
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, to = %t.remote, "IKE send failed");
        }
    }
}

/// Reads UDP 500 and queues what arrives for the IKE thread.
pub fn port_loop(shared: Arc<Shared>, sock: Arc<UdpEncap>, port: u16) {
    let Some(keying) = shared.keying.as_ref() else {
        return;
    };
    let mut buf = vec![0u8; 65536];
    while !shared.stopping() {
        match sock.recv(&mut buf, 100) {
            Ok(Some(d)) => {
                let local = SocketAddrV4::new(d.to.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
                for m in d.datagrams(&buf) {
                    keying.offer(IkeInput::Datagram {
                        local,
                        remote: d.from,
                        data: m.to_vec(),
                    });
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "IKE socket read failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// The IKE thread: engine in, datagrams and installs out, until shutdown.
pub fn ike_loop(
    shared: Arc<Shared>,
    outer: Arc<Outer>,
    ike: Arc<UdpEncap>,
    mut engine: Engine,
    input: Receiver<IkeInput>,
    mut key_log: Option<std::fs::File>,
) {
    let Some(keying) = shared.keying.as_ref() else {
        return;
    };
    let natt_port = outer.udp_port;
    let mut published = 0u64;
    // What the engine queued before this thread started (a client's first
    // IKE_SA_INIT) goes out now, not after the first wait below.
    flush(&mut engine, &ike, &outer, natt_port);
    while !shared.stopping() {
        let now = shared.now();
        let wait = engine
            .poll_timeout()
            .map_or(100, |t| t.saturating_sub(now).min(100));
        match input.recv_timeout(std::time::Duration::from_millis(wait)) {
            Ok(IkeInput::Datagram {
                local,
                remote,
                data,
            }) => {
                engine.handle(
                    shared.now(),
                    Datagram {
                        local,
                        remote,
                        data: &data,
                    },
                );
            }
            Ok(IkeInput::MovePeer {
                tunnel,
                remote,
                udp,
            }) => {
                if let Some(p) = keying.peer_of_tunnel(tunnel) {
                    // The registration moved the CHILD_SAs itself; only the
                    // IKE SA follows here.
                    let n = engine.move_peer(p, remote, udp);
                    tracing::info!(tunnel, %remote, udp, ike_sas = n, "IKE SA moved with the registration");
                }
            }
            Err(_) => {}
        }
        let now = shared.now();
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        flush(&mut engine, &ike, &outer, natt_port);
        while let Some(e) = engine.poll_event() {
            apply(&shared, keying, e, &mut key_log);
        }
        let now = shared.now();
        if now.saturating_sub(published) >= 100 {
            *keying.snapshot.lock() = snapshot(&engine);
            published = now;
        }
    }
    *keying.snapshot.lock() = snapshot(&engine);
}
