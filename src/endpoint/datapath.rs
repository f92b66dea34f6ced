//! The endpoint's threads that move packets: TUN → core (seal) → network,
//! network (plain ESP or UDP/4500) → core (open) → TUN, NAT keepalives, and
//! the mobile client's route watch. They only do I/O and carry out what the
//! core returns; each counts into its own slot.

use super::ike_handoff::IkeInput;
use super::registration::Action;
use super::runtime::{Counters, Shared};
use super::sockets::Outer;
use super::tunnel::{Arrival, Encap, Peer};
use crate::daemon::stats::Publisher;
use crate::esp::encap::{classify, Udp4500, KEEPALIVE};
use crate::esp::tunnel::TunnelDrop;
use crate::io::outer::SendScratch;
use crate::io::route_watch::RouteWatch;
use crate::io::tun::{RxSegments, Tun, TxPackets};
use crate::io::udp_gso::GsoTx;
use crate::mobility::client::Path;
use crate::wire::ipv4;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// Largest datagram handled on either side.
pub const BUF: usize = 65536;
/// Poll timeout, bounding how long shutdown takes.
const POLL_MS: i32 = 100;

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
                crate::warn_limited!(error = %e, "{what} read failed");
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
        // A super-packet may hold more segments than the arena: a batch at a time.
        let mut segments = rx.iter().peekable();
        while segments.peek().is_some() {
            sealed.clear();
            for (slot, pkt) in arena.chunks_mut(SEALED).zip(segments.by_ref()) {
                c.tun_rx += 1;
                match shared.core.seal(pkt, slot, now) {
                    Ok((n, peer)) => sealed.push((sealed.len(), n, peer)),
                    Err(d) => c.drop(d),
                }
            }
            send_sealed(&outer, &arena, &sealed, &mut scratch, &mut gso, c);
        }
        Ok(true)
    });
}

/// Sends one batch of sealed packets, one `sendmmsg` per socket; counts
/// what the kernel refused, by reason.
fn send_sealed(
    outer: &Outer,
    arena: &[u8],
    sealed: &[(usize, usize, Peer)],
    scratch: &mut SendScratch,
    gso: &mut GsoTx,
    c: &mut Counters,
) {
    for encap in [Encap::Plain, Encap::Udp] {
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
            Encap::Plain => outer.raw.send_batch(scratch, msgs),
            Encap::Udp | Encap::Tcp => outer.udp.send_gso(gso, msgs),
        };
        c.gso_trains_tx = gso.trains_sent;
        c.send_errors = scratch.failures;
        c.send_errors.add(&gso.failures);
        let sent = r.unwrap_or(0);
        c.outer_tx += sent as u64;
        for _ in sent..want {
            c.drop(TunnelDrop::SendFailed);
        }
    }
}

/// Opens one received ESP packet: data is queued for the TUN device,
/// registration messages go to the core and what they ask for is done.
fn open_into(
    shared: &Shared,
    outer: &Outer,
    tx: &mut TxPackets,
    scratch: &mut [u8],
    esp: &[u8],
    arrival: Arrival,
    c: &mut Counters,
) {
    match shared.core.open(esp, arrival, scratch) {
        Ok(o) => {
            let inner = scratch.get(..o.len).unwrap_or_default();
            if o.control {
                let mut actions = Vec::new();
                let r =
                    shared
                        .core
                        .on_control(o.tunnel, inner, arrival, shared.now(), &mut actions);
                if let Err(d) = r {
                    c.drop(d);
                }
                execute(shared, outer, actions);
            } else if !tx.push(inner) {
                c.drop(TunnelDrop::SendFailed);
            }
        }
        Err(d) => c.drop(d),
    }
}

/// Carries out registration actions: sends sealed messages, hands IKE SA
/// moves to the IKE thread.
fn execute(shared: &Shared, outer: &Outer, actions: Vec<Action>) {
    for a in actions {
        match a {
            Action::Send { packet, to, kind } => {
                let r = match to.encap {
                    Encap::Plain => outer.raw.send_to(&packet, *to.addr.ip()),
                    Encap::Udp => outer.udp.send_to(&packet, to.addr),
                    Encap::Tcp => Err(std::io::ErrorKind::Unsupported.into()),
                };
                shared.core.mobility.sent(kind, r.is_ok());
            }
            Action::MoveIke {
                tunnel,
                remote,
                udp,
            } => {
                if let Some(k) = shared.keying.as_ref() {
                    k.offer(IkeInput::MovePeer {
                        tunnel,
                        remote,
                        udp,
                    });
                }
            }
        }
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
                        encap: Encap::Plain,
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
                        Some(k) => k.offer(IkeInput::Datagram {
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

/// Sends the NAT keepalives the core says are due (RFC 3948 §2.3).
pub fn keepalive_loop(shared: Arc<Shared>, outer: Arc<Outer>) {
    let mut due = Vec::new();
    run(&shared, "keepalive", |c, now| {
        due.clear();
        shared.core.keepalives_due(now, &mut due);
        for addr in &due {
            match outer.udp.send_to(&KEEPALIVE, *addr) {
                Ok(_) => c.keepalives_sent += 1,
                Err(_) => c.drop(TunnelDrop::SendFailed),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(false)
    });
}

/// Longest sleep of the mobile client's thread: deadlines set by replies
/// (handled on the socket threads) are noticed within this.
const MAX_SLEEP_MS: u64 = 20;

/// Mobile client: follows the route to the gateway (rtnetlink), hands each
/// change and the registration timers to the core, sends what it returns.
pub fn route_loop(shared: &Shared, outer: &Outer, gateway: SocketAddrV4, mut watch: RouteWatch) {
    let query = |w: &mut RouteWatch| match w.route_to(*gateway.ip()) {
        Ok(r) => r.map(|r| Path {
            src: r.src,
            oif: r.oif,
            via: r.via,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "route query failed");
            None
        }
    };
    let mut actions = Vec::new();
    let p = query(&mut watch);
    shared.core.on_route(p, shared.now(), &mut actions);
    execute(shared, outer, std::mem::take(&mut actions));
    let mut wait = 0;
    while !shared.stopping() {
        match watch.wait(wait.clamp(1, MAX_SLEEP_MS) as i32) {
            Ok(true) => {
                let p = query(&mut watch);
                shared.core.on_route(p, shared.now(), &mut actions);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "rtnetlink read failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        wait = shared
            .core
            .poll_registration(shared.now(), &mut actions)
            .unwrap_or(MAX_SLEEP_MS);
        execute(shared, outer, std::mem::take(&mut actions));
    }
}
