//! IKE in the endpoint daemons: one thread owns the protocol core
//! (`ike::Engine`), reads IKE from UDP 500 (and, forwarded by the UDP/4500
//! loop, from the NAT-T port), sends what the engine emits and applies its
//! events to the tunnels: install a CHILD_SA's ESP SAs, switch traffic to
//! a rekeyed SA, remove deleted ones, follow the peer's address.

use super::ike_handoff::{IkeInput, IkeSnapshot, Keying};
use super::runtime::Shared;
use super::sockets::Outer;
use crate::ike::sa::{ChildState, IkeState};
use crate::ike::{Datagram, Engine, Event};
use crate::io::outer::UdpEncap;
use crossbeam::channel::Receiver;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// Applies one engine event to the tunnels.
fn apply(shared: &Shared, keying: &Keying, e: Event, key_log: &mut Option<std::fs::File>) {
    match e {
        Event::ChildUp(c) => {
            if let Some(&i) = keying.tunnel_of_peer.get(c.peer) {
                shared.core.install_child(i, &c);
            }
        }
        Event::ChildDown {
            peer,
            inbound_spi,
            outbound_spi,
        } => {
            if let Some(&i) = keying.tunnel_of_peer.get(peer) {
                shared.core.remove_child(i, inbound_spi, outbound_spi);
            }
        }
        Event::PeerMoved { peer, remote, udp } => {
            if let Some(&i) = keying.tunnel_of_peer.get(peer) {
                shared.core.peer_moved_by_ike(i, remote, udp);
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
                .and_then(|i| shared.core.tunnels.get(*i))
                .map(|t| t.name.as_str());
            tracing::info!(peer = name.unwrap_or("?"), %remote, id = %remote_id, spi = format!("{ike:#018x}"), "IKE SA established");
        }
        Event::IkeDown { ike, peer, reason } => {
            let name = peer
                .and_then(|p| keying.tunnel_of_peer.get(p))
                .and_then(|i| shared.core.tunnels.get(*i))
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
                crate::warn_limited!(error = %e, "IKE socket read failed");
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
            Ok(IkeInput::List { peer, reply }) => {
                let _ = reply.send(engine.listing(shared.now(), peer.as_deref()));
            }
            Ok(IkeInput::Reconfigure {
                config,
                policies,
                reply,
            }) => {
                let _ = reply.send(engine.reconfigure(*config, policies));
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
