//! Mobility in the endpoint daemons: registration messages are UDP packets
//! to the own inner address, port 434, inside the tunnel. The responder runs
//! the gateway check and moves SAs; the client watches its route to the
//! gateway (rtnetlink) and runs the registration state machine.

use super::config::{Encap, EndpointConfig, Role};
use super::datapath::Outer;
use super::state::{Peer, Shared};
use crate::esp::encap::KeepaliveTimer;
use crate::esp::tunnel::{seal_inner, TunnelDrop};
use crate::io::route_watch::{RouteInfo, RouteWatch};
use crate::mobility::client::{Client, ClientConfig, Event, Path};
use crate::mobility::gateway::{self, Outcome, Policy, Registration};
use crate::mobility::{Encap as WireEncap, Message, NatKind, OuterHeader, Rreq};
use crate::wire::{build, ipv4, udp};
use parking_lot::Mutex;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Upper bounds of the handover histogram, seconds.
pub const HANDOVER_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Mobility counters (registrations are rare: one lock is fine).
#[derive(Debug, Clone, Default)]
pub struct MobilityStats {
    /// Gateway: requests by outcome (`Outcome::ALL` order).
    pub outcomes: [u64; Outcome::ALL.len()],
    /// Client: registrations accepted.
    pub accepted: u64,
    /// Client: registrations refused by the gateway.
    pub refused: u64,
    /// Client: fallbacks from plain ESP to UDP.
    pub fallbacks: u64,
    /// Translations detected, by `NatKind::ALL` order.
    pub nat: [u64; NatKind::ALL.len()],
    /// Requests sent / received.
    pub rreq_tx: u64,
    /// Requests received.
    pub rreq_rx: u64,
    /// Replies sent.
    pub rrep_tx: u64,
    /// Replies received.
    pub rrep_rx: u64,
    /// Client: handover durations, counts per bucket of `HANDOVER_BUCKETS` (not cumulative).
    pub handover_buckets: [u64; HANDOVER_BUCKETS.len()],
    /// Handovers longer than the last bucket.
    pub handover_over: u64,
    /// Sum of handover durations, seconds.
    pub handover_sum: f64,
    /// Registration messages the kernel refused to send.
    pub send_failures: u64,
    /// Client: wall-clock time (Unix seconds) the last route change was seen.
    pub last_change_unix: f64,
    /// Client: wall-clock time (Unix seconds) the last registration was accepted.
    pub last_registered_unix: f64,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl MobilityStats {
    fn nat(&mut self, k: NatKind) {
        if let Some(i) = NatKind::ALL.iter().position(|x| *x == k) {
            if let Some(c) = self.nat.get_mut(i) {
                *c += 1;
            }
        }
    }

    fn handover(&mut self, ms: u64) {
        let s = ms as f64 / 1000.0;
        self.handover_sum += s;
        match HANDOVER_BUCKETS.iter().position(|b| s <= *b) {
            Some(i) => {
                if let Some(c) = self.handover_buckets.get_mut(i) {
                    *c += 1;
                }
            }
            None => self.handover_over += 1,
        }
    }
}

/// What the endpoint does about mobility.
pub enum Agent {
    /// Registrations are not processed (they reach the TUN device as ordinary packets).
    Off,
    /// Responder: one registration state per tunnel.
    Gateway {
        /// Policy announced and applied.
        policy: Policy,
        /// Per tunnel, by index.
        regs: Vec<Mutex<Registration>>,
    },
    /// Client: the state machine of its one tunnel.
    Client {
        /// State machine.
        core: Mutex<Client>,
        /// The gateway's inner address.
        gateway_inner: Ipv4Addr,
        /// The gateway's outer address.
        gateway_outer: SocketAddrV4,
    },
}

/// Mobility state of an endpoint.
pub struct Mobility {
    /// Own inner address (the TUN address), where registrations are addressed.
    pub inner: Ipv4Addr,
    /// Registration port.
    pub port: u16,
    /// Role-specific state.
    pub agent: Agent,
    /// Counters.
    pub stats: Mutex<MobilityStats>,
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

/// Endpoint encapsulation as the wire names it.
pub fn to_wire(e: Encap) -> WireEncap {
    match e {
        Encap::None => WireEncap::Plain,
        Encap::Udp => WireEncap::Udp,
    }
}

fn from_wire(e: WireEncap) -> Option<Encap> {
    match e {
        WireEncap::Plain => Some(Encap::None),
        WireEncap::Udp => Some(Encap::Udp),
        WireEncap::Tcp => None,
    }
}

impl Mobility {
    /// Builds the mobility state; `peers` is the number of tunnels and
    /// `gateway_outer` the client's configured peer address.
    pub fn new(
        cfg: &EndpointConfig,
        role: Role,
        peers: usize,
        gateway_outer: Option<SocketAddrV4>,
        id_floor: u64,
    ) -> Mobility {
        let m = &cfg.mobility;
        let inner = cfg.tun.address.addr();
        let agent = match (m.enabled_for(role), role, m.gateway, gateway_outer) {
            (false, ..) => Agent::Off,
            (true, Role::Responder, ..) => Agent::Gateway {
                policy: Policy {
                    keepalive_secs: m.keepalive_secs,
                    allow_plain: m.plain_esp,
                },
                regs: (0..peers).map(|_| Mutex::default()).collect(),
            },
            (true, Role::Client, Some(gw_inner), Some(gw_outer)) => Agent::Client {
                core: Mutex::new(Client::new(
                    ClientConfig {
                        inner,
                        gateway: *gw_outer.ip(),
                        udp_port: cfg.outer.udp_port,
                        offer_plain: m.plain_esp,
                        initial_rto_ms: m.initial_rto_ms,
                        max_rto_ms: m.max_rto_ms,
                        min_probe_wait_ms: m.probe_wait_ms,
                    },
                    id_floor,
                )),
                gateway_inner: gw_inner,
                gateway_outer: gw_outer,
            },
            // Validation requires both for an enabled client.
            (true, Role::Client, ..) => Agent::Off,
        };
        Mobility {
            inner,
            port: m.port,
            agent,
            stats: Mutex::default(),
        }
    }

    /// True when `inner` (an authenticated inner datagram) is a registration
    /// message for this endpoint.
    pub fn is_control(&self, inner: &[u8]) -> bool {
        if matches!(self.agent, Agent::Off) {
            return false;
        }
        let Ok(ip) = ipv4::Packet::new_checked(inner) else {
            return false;
        };
        ip.dst() == self.inner
            && ip.protocol() == ipv4::protocol::UDP
            && !ip.is_fragment()
            && udp::Packet::new_checked(ip.payload()).is_ok_and(|u| u.dst_port() == self.port)
    }

    /// Handles a registration message that arrived authenticated on `tunnel`.
    pub fn on_control(
        &self,
        shared: &Shared,
        outer: &Outer,
        tunnel: usize,
        inner: &[u8],
        arrival: Arrival,
        now: u64,
    ) -> Result<(), TunnelDrop> {
        let ip = ipv4::Packet::new_checked(inner).map_err(|_| TunnelDrop::ControlMalformed)?;
        let u = udp::Packet::new_checked(ip.payload()).map_err(|_| TunnelDrop::ControlMalformed)?;
        let msg = Message::parse(u.payload()).map_err(|_| TunnelDrop::ControlMalformed)?;
        match (&self.agent, msg) {
            (Agent::Gateway { policy, regs }, Message::Rreq(req)) => {
                self.stats.lock().rreq_rx += 1;
                let reg = regs.get(tunnel).ok_or(TunnelDrop::ControlMalformed)?;
                self.gateway_request(shared, outer, tunnel, reg, &req, ip.src(), arrival, *policy)
            }
            (Agent::Client { core, .. }, Message::Rrep(rrep)) => {
                self.stats.lock().rrep_rx += 1;
                let mut events = Vec::new();
                core.lock()
                    .on_reply(now, &rrep, to_wire(arrival.encap), &mut events);
                self.execute(shared, outer, &events, now);
                Ok(())
            }
            _ => Err(TunnelDrop::ControlMalformed),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gateway_request(
        &self,
        shared: &Shared,
        outer: &Outer,
        tunnel: usize,
        reg: &Mutex<Registration>,
        req: &Rreq,
        inner_src: Ipv4Addr,
        arrival: Arrival,
        policy: Policy,
    ) -> Result<(), TunnelDrop> {
        let t = shared
            .tunnels
            .get(tunnel)
            .ok_or(TunnelDrop::ControlMalformed)?;
        let observed = OuterHeader {
            encap: to_wire(arrival.encap),
            src: *arrival.from.ip(),
            dst: arrival.to,
            sport: arrival.from.port(),
            dport: arrival.to_port,
        };
        let d = gateway::check(
            &mut reg.lock(),
            req,
            observed,
            inner_src,
            |a| t.allowed.allows(a),
            policy,
        );
        // Move first: server→client traffic follows the moment the request is in.
        if let Some(m) = d.moved.and_then(|m| Some((m, from_wire(m.encap)?))) {
            let (m, encap) = m;
            let new = Peer::new(SocketAddrV4::new(m.addr, m.port), encap);
            let old = t.peer.write().replace(new);
            if old != Some(new) {
                tracing::info!(peer = %t.name, from = ?old.map(|p| p.addr), to = %new.addr,
                    encap = encap.label(), nat = d.nat.label(), "peer moved by registration");
                // The IKE SA follows, so liveness checks, rekeys and deletes
                // reach the new address too.
                if let (true, Some(k)) = (t.ike, shared.keying.as_ref()) {
                    k.offer(super::keying::IkeInput::MovePeer {
                        tunnel,
                        remote: new.addr,
                        udp: encap == Encap::Udp,
                    });
                }
            }
        }
        {
            let mut s = self.stats.lock();
            if let Some(i) = Outcome::ALL.iter().position(|o| *o == d.outcome) {
                if let Some(c) = s.outcomes.get_mut(i) {
                    *c += 1;
                }
            }
            if d.outcome == Outcome::Accepted {
                s.nat(d.nat);
            }
        }
        // A plain-ESP copy across a NAT is refused by design; anything else is news.
        if !matches!(
            d.outcome,
            Outcome::Accepted | Outcome::AcceptedCopy | Outcome::EncapRefused
        ) {
            tracing::warn!(peer = %t.name, id = req.id, outcome = d.outcome.label(),
                from = %arrival.from, "registration refused");
        }
        // The reply goes back the way the request came, so it proves that path.
        let back = Peer::new(arrival.from, arrival.encap);
        self.send(
            shared,
            outer,
            tunnel,
            &Message::Rrep(d.reply),
            inner_src,
            back,
        )?;
        self.stats.lock().rrep_tx += 1;
        Ok(())
    }

    /// Seals a registration message into `tunnel` and sends it to `to`.
    fn send(
        &self,
        shared: &Shared,
        outer: &Outer,
        tunnel: usize,
        msg: &Message,
        dst_inner: Ipv4Addr,
        to: Peer,
    ) -> Result<(), TunnelDrop> {
        let t = shared.tunnels.get(tunnel).ok_or(TunnelDrop::NoTunnel)?;
        let mut payload = [0u8; 128];
        let n = msg.emit(&mut payload).ok_or(TunnelDrop::SendFailed)?;
        let inner = build::udp(
            self.inner,
            self.port,
            dst_inner,
            self.port,
            payload.get(..n).unwrap_or_default(),
        );
        let mut out = [0u8; 512];
        let len = {
            let mut tx = t.tx.lock();
            let sa = tx.sa.as_mut().ok_or(TunnelDrop::NotKeyed)?;
            let len = seal_inner(sa, &inner, &mut out)?;
            tx.packets += 1;
            tx.bytes += inner.len() as u64;
            len
        };
        let sealed = out.get(..len).ok_or(TunnelDrop::SendFailed)?;
        let r = match to.encap {
            Encap::None => outer.raw.send_to(sealed, *to.addr.ip()),
            Encap::Udp => outer.udp.send_to(sealed, to.addr),
        };
        r.map(|_| ()).map_err(|_| TunnelDrop::SendFailed)
    }

    /// Client: the route to the gateway is now `route`.
    pub fn on_route(&self, shared: &Shared, outer: &Outer, route: Option<RouteInfo>, now: u64) {
        let Agent::Client { core, .. } = &self.agent else {
            return;
        };
        let path = route.map(|r| Path {
            src: r.src,
            oif: r.oif,
            via: r.via,
        });
        let mut events = Vec::new();
        core.lock().on_path(now, path, &mut events);
        if !events.is_empty() {
            self.stats.lock().last_change_unix = unix_now();
            tracing::info!(path = ?path, "route to the gateway changed: registering");
        }
        self.execute(shared, outer, &events, now);
    }

    /// Client: retransmissions and probe deadlines; returns ms until the next one.
    pub fn poll(&self, shared: &Shared, outer: &Outer, now: u64) -> Option<u64> {
        let Agent::Client { core, .. } = &self.agent else {
            return None;
        };
        let mut events = Vec::new();
        let deadline = {
            let mut c = core.lock();
            c.poll(now, &mut events);
            c.deadline()
        };
        self.execute(shared, outer, &events, now);
        deadline.map(|d| d.saturating_sub(now))
    }

    /// The gateway's outer address (client).
    pub fn gateway_outer(&self) -> Option<SocketAddrV4> {
        match &self.agent {
            Agent::Client { gateway_outer, .. } => Some(*gateway_outer),
            _ => None,
        }
    }

    fn execute(&self, shared: &Shared, outer: &Outer, events: &[Event], now: u64) {
        let Agent::Client {
            gateway_inner,
            gateway_outer,
            ..
        } = &self.agent
        else {
            return;
        };
        for e in events {
            match *e {
                Event::Send(req) => {
                    let Some(encap) = from_wire(req.sent.encap) else {
                        continue;
                    };
                    let to = Peer::new(*gateway_outer, encap);
                    match self.send(shared, outer, 0, &Message::Rreq(req), *gateway_inner, to) {
                        Ok(()) => self.stats.lock().rreq_tx += 1,
                        Err(d) => {
                            tracing::debug!(reason = d.label(), "registration request not sent");
                            self.stats.lock().send_failures += 1;
                        }
                    }
                }
                Event::UseEncap {
                    encap,
                    keepalive_secs,
                } => {
                    let (Some(t), Some(e)) = (shared.tunnels.first(), from_wire(encap)) else {
                        continue;
                    };
                    *t.peer.write() = Some(Peer::new(*gateway_outer, e));
                    t.tx.lock().keepalive =
                        KeepaliveTimer::new(u64::from(keepalive_secs) * 1000, now);
                    tracing::info!(encap = e.label(), keepalive_secs, "data encapsulation");
                }
                Event::Registered {
                    initial,
                    handover_ms,
                    nat,
                } => {
                    let mut s = self.stats.lock();
                    s.accepted += 1;
                    s.last_registered_unix = unix_now();
                    s.nat(nat);
                    if !initial {
                        s.handover(handover_ms);
                    }
                    tracing::info!(initial, handover_ms, nat = nat.label(), "registered");
                }
                Event::FellBack => {
                    self.stats.lock().fallbacks += 1;
                    tracing::info!("plain ESP filtered on this path: staying on UDP");
                }
                Event::Rejected(code) => {
                    self.stats.lock().refused += 1;
                    tracing::error!(code = ?code, "gateway refused the registration");
                }
            }
        }
    }
}

/// Longest sleep of the client thread: deadlines set by replies (handled on
/// the socket threads) are noticed within this.
const MAX_SLEEP_MS: u64 = 20;

/// Client thread: follows the route to the gateway and drives the state machine.
pub fn client_loop(shared: &Shared, outer: &Outer, mut watch: RouteWatch) {
    let Some(gw) = shared.mobility.gateway_outer() else {
        return;
    };
    let query = |w: &mut RouteWatch| match w.route_to(*gw.ip()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "route query failed");
            None
        }
    };
    let r = query(&mut watch);
    shared.mobility.on_route(shared, outer, r, shared.now());
    let mut wait = 0;
    while !shared.stopping() {
        match watch.wait(wait.clamp(1, MAX_SLEEP_MS) as i32) {
            Ok(true) => {
                let r = query(&mut watch);
                shared.mobility.on_route(shared, outer, r, shared.now());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "rtnetlink read failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        wait = shared
            .mobility
            .poll(shared, outer, shared.now())
            .unwrap_or(MAX_SLEEP_MS);
    }
}
