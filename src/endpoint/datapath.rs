//! The endpoint's packet loops: TUN → seal → network, and network (plain ESP
//! or UDP/4500) → open → TUN. Each thread counts into its own slot.

use super::config::Encap;
use super::mobility::Arrival;
use super::state::{Counters, Peer, Shared};
use crate::daemon::stats::Publisher;
use crate::esp::encap::{classify, Udp4500, KEEPALIVE};
use crate::esp::tunnel::{inner_destination, open_inner, seal_inner, TunnelDrop};
use crate::esp::EspError;
use crate::io::outer::{RawEsp, SendScratch, UdpEncap};
use crate::io::tun::{RxSegments, Tun, TxPackets};
use crate::io::udp_gso::GsoTx;
use crate::wire::{esp, ipv4};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// Largest datagram handled on either side.
pub const BUF: usize = 65536;
/// Poll timeout, bounding how long shutdown takes.
const POLL_MS: i32 = 100;

/// The network-side sockets.
pub struct Outer {
    /// Plain ESP.
    pub raw: RawEsp,
    /// ESP in UDP.
    pub udp: UdpEncap,
    /// Local port of `udp`.
    pub udp_port: u16,
}

/// Seals one inner packet for its tunnel into `out`; returns the length and
/// where to send it.
pub fn seal_for(
    shared: &Shared,
    inner: &[u8],
    out: &mut [u8],
    now: u64,
) -> Result<(usize, Peer), TunnelDrop> {
    let dst = inner_destination(inner)?;
    let t = shared
        .table
        .by_inner(dst)
        .and_then(|id| shared.tunnels.get(id))
        .ok_or(TunnelDrop::NoTunnel)?;
    let peer = (*t.peer.read()).ok_or(TunnelDrop::PeerUnknown)?;
    let mut tx = t.tx.lock();
    let sa = tx.sa.as_mut().ok_or(TunnelDrop::NotKeyed)?;
    let n = seal_inner(sa, inner, out)?;
    tx.packets += 1;
    tx.bytes += inner.len() as u64;
    if peer.encap == Encap::Udp {
        tx.keepalive.on_sent(now);
    }
    Ok((n, peer))
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

/// Opens one ESP packet (starting at the SPI) that arrived from `from` in
/// `encap`; the inner datagram lands at `out[..len]`.
pub fn inbound(
    shared: &Shared,
    esp_pkt: &[u8],
    from: SocketAddrV4,
    encap: Encap,
    out: &mut [u8],
) -> Result<Opened, TunnelDrop> {
    let spi = match esp::Packet::new_checked(esp_pkt) {
        Ok(p) => p.spi(),
        Err(crate::wire::WireError::Truncated) => return Err(TunnelDrop::Esp(EspError::Truncated)),
        Err(_) => return Err(TunnelDrop::UnknownSpi),
    };
    let (tunnel, t) = shared
        .table
        .by_spi(spi)
        .and_then(|id| Some((id, shared.tunnels.get(id)?)))
        .ok_or(TunnelDrop::UnknownSpi)?;
    let seen = Peer::new(from, encap);
    let mut rx = t.rx.lock();
    let rx = &mut *rx;
    let sa = rx
        .sas
        .iter_mut()
        .find(|s| s.spi() == spi)
        .ok_or(TunnelDrop::UnknownSpi)?;
    let len = match open_inner(sa, esp_pkt, out, &t.allowed) {
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
    rx.packets += 1;
    rx.bytes += len as u64;
    t.seen_inbound(spi);
    let control = shared
        .mobility
        .is_control(out.get(..len).unwrap_or_default());
    if control {
        // Where the peer is now is the registration's decision, not this packet's.
        return Ok(Opened {
            len,
            tunnel,
            control,
        });
    }
    // Authenticated: a responder learns where an unconfigured peer is. Once known,
    // the address only moves by an authenticated registration (mobility), never by data.
    let known = *t.peer.read();
    match known {
        None if !t.static_peer => {
            *t.peer.write() = Some(seen);
            tracing::info!(peer = %t.name, addr = %from, encap = encap.label(), "peer address learned");
        }
        Some(p) if p != seen => {
            rx.unexpected_source += 1;
        }
        _ => {}
    }
    Ok(Opened {
        len,
        tunnel,
        control,
    })
}

/// Runs `step` until shutdown. `step` waits up to `POLL_MS` for one packet,
/// handles it and returns whether there was one; counters are published at
/// least every `PUBLISH_MS` and whenever the thread goes idle.
fn run(
    shared: &Shared,
    what: &str,
    mut step: impl FnMut(&mut Counters, u64) -> std::io::Result<bool>,
) {
    let mut pubr = Publisher::new(&shared.stats);
    let mut c = Counters::default();
    while !shared.stopping() {
        let now = shared.now();
        match step(&mut c, now) {
            Ok(busy) => pubr.maybe(&c, now, !busy),
            Err(e) => {
                tracing::warn!(error = %e, "{what} read failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    pubr.maybe(&c, 0, true);
}

/// Room for one sealed segment: inner MTU (≤ 9000) plus ESP overhead and padding.
const SEALED: usize = 9216 + 64;

/// Packets read from a socket before they are written to the TUN device in one batch.
const BATCH: usize = 64;

/// TUN → network. Every segment of one read is sealed first, then the
/// batch leaves in one `sendmmsg` per socket; over UDP, trains of equal
/// datagrams to one peer (a TSO read) go as single GSO messages.
pub fn tun_loop(shared: Arc<Shared>, tun: Arc<Tun>, outer: Arc<Outer>) {
    let mut rx = RxSegments::new(BATCH);
    let mut arena = vec![0u8; BATCH * SEALED];
    let mut sealed: Vec<(usize, usize, Peer)> = Vec::with_capacity(BATCH);
    let mut scratch = SendScratch::default();
    let mut gso = GsoTx::default();
    run(&shared, "TUN", |c, now| {
        if tun.recv_segments(&mut rx, POLL_MS)? == 0 {
            return Ok(false);
        }
        sealed.clear();
        let mut slots = arena.chunks_mut(SEALED);
        for pkt in rx.iter() {
            c.tun_rx += 1;
            let Some(slot) = slots.next() else {
                c.drop(TunnelDrop::SendFailed);
                continue;
            };
            match seal_for(&shared, pkt, slot, now) {
                Ok((n, peer)) => sealed.push((sealed.len(), n, peer)),
                Err(d) => c.drop(d),
            }
        }
        drop(slots);
        for encap in [Encap::None, Encap::Udp] {
            let want = sealed.iter().filter(|(_, _, p)| p.encap == encap).count();
            if want == 0 {
                continue;
            }
            let msgs = sealed
                .iter()
                .filter(|(_, _, p)| p.encap == encap)
                .filter_map(|(i, n, p)| {
                    let start = i * SEALED;
                    arena.get(start..start + n).map(|b| (b, p.addr))
                });
            let r = match encap {
                Encap::None => outer.raw.send_batch(&mut scratch, msgs),
                Encap::Udp => outer.udp.send_gso(&mut gso, msgs),
            };
            c.gso_trains_tx = gso.trains_sent;
            let sent = r.unwrap_or(0);
            c.outer_tx += sent as u64;
            for _ in sent..want {
                c.drop(TunnelDrop::SendFailed);
            }
        }
        Ok(true)
    });
}

/// Opens one received ESP packet: data is queued for the TUN device,
/// registration messages go to the mobility agent.
fn open_into(
    shared: &Shared,
    outer: &Outer,
    tx: &mut TxPackets,
    scratch: &mut [u8],
    esp: &[u8],
    arrival: Arrival,
    c: &mut Counters,
) {
    match inbound(shared, esp, arrival.from, arrival.encap, scratch) {
        Ok(o) => {
            let inner = scratch.get(..o.len).unwrap_or_default();
            if o.control {
                let now = shared.now();
                if let Err(d) = shared
                    .mobility
                    .on_control(shared, outer, o.tunnel, inner, arrival, now)
                {
                    c.drop(d);
                }
            } else if !tx.push(inner) {
                c.drop(TunnelDrop::SendFailed);
            }
        }
        Err(d) => c.drop(d),
    }
}

/// Writes the queued inner packets to the TUN device.
fn flush(tun: &Tun, tx: &mut TxPackets, c: &mut Counters) {
    if tx.is_empty() {
        return;
    }
    match tun.send_packets(tx) {
        Ok(n) => c.tun_tx += n as u64,
        Err(_) => c.drop(TunnelDrop::SendFailed),
    }
}

/// Plain ESP (raw socket, IPv4 header included) → TUN. Drains up to `BATCH`
/// datagrams per wake-up so the TUN write can coalesce them.
pub fn esp_loop(shared: Arc<Shared>, tun: Arc<Tun>, outer: Arc<Outer>) {
    let mut buf = vec![0u8; BUF];
    let mut scratch = vec![0u8; BUF];
    let mut tx = TxPackets::new(BATCH);
    run(&shared, "ESP socket", |c, _| {
        let mut wait = POLL_MS;
        while !tx.is_full() {
            let Some(n) = outer.raw.recv(&mut buf, wait)? else {
                break;
            };
            wait = 0;
            c.outer_rx += 1;
            match buf.get(..n).and_then(|d| ipv4::Packet::new_checked(d).ok()) {
                Some(ip) => {
                    let arrival = Arrival {
                        from: SocketAddrV4::new(ip.src(), 0),
                        to: ip.dst(),
                        to_port: 0,
                        encap: Encap::None,
                    };
                    open_into(
                        &shared,
                        &outer,
                        &mut tx,
                        &mut scratch,
                        ip.payload(),
                        arrival,
                        c,
                    );
                }
                None => c.drop(TunnelDrop::OuterMalformed),
            }
        }
        flush(&tun, &mut tx, c);
        Ok(wait == 0)
    });
}

/// UDP/4500 (ESP, keepalives, IKE) → TUN, batched like `esp_loop`.
pub fn udp_loop(shared: Arc<Shared>, tun: Arc<Tun>, outer: Arc<Outer>) {
    let mut buf = vec![0u8; BUF];
    let mut scratch = vec![0u8; BUF];
    let mut tx = TxPackets::new(BATCH);
    run(&shared, "UDP socket", |c, _| {
        let mut wait = POLL_MS;
        while !tx.is_full() {
            let Some(d) = outer.udp.recv(&mut buf, wait)? else {
                break;
            };
            wait = 0;
            let arrival = Arrival {
                from: d.from,
                to: d.to.unwrap_or(Ipv4Addr::UNSPECIFIED),
                to_port: outer.udp_port,
                encap: Encap::Udp,
            };
            // One datagram, or a coalesced train of them (UDP_GRO).
            c.gro_trains_rx += u64::from(d.segment.is_some_and(|s| s < d.len));
            for datagram in d.datagrams(&buf) {
                c.outer_rx += 1;
                if tx.is_full() {
                    flush(&tun, &mut tx, c);
                }
                match classify(datagram) {
                    Udp4500::Keepalive => c.keepalives_received += 1,
                    Udp4500::Ike(m) => match shared.keying.as_ref() {
                        Some(k) => k.offer(super::keying::IkeInput::Datagram {
                            local: SocketAddrV4::new(arrival.to, outer.udp_port),
                            remote: d.from,
                            data: m.to_vec(),
                        }),
                        None => c.drop(TunnelDrop::IkeUnsupported),
                    },
                    Udp4500::Invalid => c.drop(TunnelDrop::OuterMalformed),
                    Udp4500::Esp(e) => {
                        open_into(&shared, &outer, &mut tx, &mut scratch, e, arrival, c)
                    }
                }
            }
        }
        flush(&tun, &mut tx, c);
        Ok(wait == 0)
    });
}

/// Sends NAT keepalives (RFC 3948 §2.3) for UDP-encapsulated tunnels with a
/// configured peer (the side behind the NAT is the one that keeps it open).
pub fn keepalive_loop(shared: Arc<Shared>, outer: Arc<Outer>) {
    run(&shared, "keepalive", |c, now| {
        for t in shared
            .tunnels
            .iter()
            .filter(|t| t.static_peer || t.keepalive.load(std::sync::atomic::Ordering::Relaxed))
        {
            let Some(peer) = *t.peer.read() else { continue };
            if peer.encap != Encap::Udp {
                continue;
            }
            let mut tx = t.tx.lock();
            if tx.keepalive.due(now) {
                match outer.udp.send_to(&KEEPALIVE, peer.addr) {
                    Ok(_) => c.keepalives_sent += 1,
                    Err(_) => c.drop(TunnelDrop::SendFailed),
                }
                tx.keepalive.on_sent(now);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(false)
    });
}
