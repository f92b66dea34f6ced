//! Registrations in the endpoint, without I/O: registration messages are
//! UDP packets to the own inner address, port 434, inside the tunnel. The
//! responder runs the gateway check and moves the tunnel's peer; the client
//! runs the registration state machine on route changes (which the daemon
//! watches) and replies. What has to be sent comes back as `Action`s.

use super::config::{EndpointConfig, Role};
use super::tunnel::{Arrival, Encap, Peer, Tunnel};
use crate::esp::encap::KeepaliveTimer;
use crate::esp::tunnel::TunnelDrop;
use crate::mobility::client::{Client, ClientConfig, Event, Path};
use crate::mobility::gateway::{self, Outcome, Policy, Registration};
use crate::mobility::proof::Budget;
use crate::mobility::{Message, NatKind, OuterHeader, Rreq};
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
    /// Gateway: moves to an address not proven yet (the downlink budget applies).
    pub unproven_moves: u64,
    /// Gateway: unproven addresses proven by an authenticated packet from them.
    pub proofs: u64,
    /// Client: proof packets (ESP dummy packets) sent after an accepted reply.
    pub proofs_tx: u64,
    /// Client: replies not from the gateway's inner address and port.
    pub reply_wrong_source: u64,
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
    /// Gateway: what may go to an address a registration moved a peer to
    /// before the peer proves it.
    pub budget: Budget,
    /// Counters.
    pub stats: Mutex<MobilityStats>,
}

/// What a registration packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// Registration request (client).
    Request,
    /// Registration reply (gateway).
    Reply,
    /// ESP dummy packet proving the client's new address (client).
    Proof,
}

/// Something the endpoint has to do for a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this sealed registration message to `to`; report the result
    /// with `Mobility::sent`.
    Send {
        /// The ESP packet (from the SPI on).
        packet: Vec<u8>,
        /// Where and how.
        to: Peer,
        /// What it is (for the counters).
        kind: SendKind,
    },
    /// The tunnel's peer moved: move its IKE SA too.
    MoveIke {
        /// Tunnel index.
        tunnel: usize,
        /// New outer address.
        remote: SocketAddrV4,
        /// UDP encapsulation.
        udp: bool,
    },
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
            budget: Budget {
                packets: m.unproven_packets,
                bytes: m.unproven_bytes,
            },
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
        tunnels: &[Tunnel],
        tunnel: usize,
        inner: &[u8],
        arrival: Arrival,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), TunnelDrop> {
        let ip = ipv4::Packet::new_checked(inner).map_err(|_| TunnelDrop::ControlMalformed)?;
        let u = udp::Packet::new_checked(ip.payload()).map_err(|_| TunnelDrop::ControlMalformed)?;
        let msg = Message::parse(u.payload()).map_err(|_| TunnelDrop::ControlMalformed)?;
        match (&self.agent, msg) {
            (Agent::Gateway { policy, regs }, Message::Rreq(req)) => {
                self.stats.lock().rreq_rx += 1;
                let reg = regs.get(tunnel).ok_or(TunnelDrop::ControlMalformed)?;
                let t = tunnels.get(tunnel).ok_or(TunnelDrop::ControlMalformed)?;
                self.gateway_request(t, tunnel, reg, &req, ip.src(), arrival, *policy, now, out)
            }
            (
                Agent::Client {
                    core,
                    gateway_inner,
                    ..
                },
                Message::Rrep(rrep),
            ) => {
                // Only the gateway answers registrations: a reply from another
                // inner host (any peer of the gateway can route one to us) is dropped.
                if ip.src() != *gateway_inner || u.src_port() != self.port {
                    self.stats.lock().reply_wrong_source += 1;
                    return Err(TunnelDrop::ControlMalformed);
                }
                self.stats.lock().rrep_rx += 1;
                let mut events = Vec::new();
                core.lock().on_reply(now, &rrep, arrival.encap, &mut events);
                self.execute(tunnels, &events, now, out);
                Ok(())
            }
            _ => Err(TunnelDrop::ControlMalformed),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gateway_request(
        &self,
        t: &Tunnel,
        tunnel: usize,
        reg: &Mutex<Registration>,
        req: &Rreq,
        inner_src: Ipv4Addr,
        arrival: Arrival,
        policy: Policy,
        now: u64,
        out: &mut Vec<Action>,
    ) -> Result<(), TunnelDrop> {
        let observed = OuterHeader {
            encap: arrival.encap,
            src: *arrival.from.ip(),
            dst: arrival.to,
            sport: arrival.from.port(),
            dport: arrival.to_port,
        };
        // A configured peer address is the operator's: never moved.
        let d = if t.static_peer {
            gateway::refuse_static(req, observed)
        } else {
            gateway::check(
                &mut reg.lock(),
                req,
                observed,
                inner_src,
                |a| t.allowed.allows(a),
                policy,
            )
        };
        // Move first: server→client traffic follows the moment the request is in,
        // within the budget until the new address is proven (docs/MOBILITY.md).
        // Only what this endpoint carries (RFC 8229 TCP is not implemented).
        if let Some(m) = d.moved.filter(|m| m.encap != Encap::Tcp) {
            let encap = m.encap;
            let new = Peer::new(SocketAddrV4::new(m.addr, m.port), encap);
            let old = t.peer.write().replace(new);
            if t.moved_unproven(old.map(|p| *p.addr.ip()), m.addr, self.budget)
                && old.map(|p| *p.addr.ip()) != Some(m.addr)
            {
                self.stats.lock().unproven_moves += 1;
            }
            if old != Some(new) {
                tracing::info!(peer = %t.name, from = ?old.map(|p| p.addr), to = %new.addr,
                    encap = encap.label(), nat = d.nat.label(), "peer moved by registration");
                // The IKE SA follows, so liveness checks, rekeys and deletes
                // reach the new address too.
                if t.ike {
                    out.push(Action::MoveIke {
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
            crate::warn_limited!(peer = %t.name, id = req.id, outcome = d.outcome.label(),
                from = %arrival.from, "registration refused");
        }
        // The reply goes back the way the request came, so it proves that path.
        let back = Peer::new(arrival.from, arrival.encap);
        out.push(self.seal(t, &Message::Rrep(d.reply), inner_src, back, now)?);
        Ok(())
    }

    /// Seals a registration message into `t` for `to`.
    fn seal(
        &self,
        t: &Tunnel,
        msg: &Message,
        dst_inner: Ipv4Addr,
        to: Peer,
        now: u64,
    ) -> Result<Action, TunnelDrop> {
        let mut payload = [0u8; 128];
        let n = msg.emit(&mut payload).ok_or(TunnelDrop::SendFailed)?;
        let inner = build::udp(
            self.inner,
            self.port,
            dst_inner,
            self.port,
            payload.get(..n).unwrap_or_default(),
        );
        let mut sealed = [0u8; 512];
        let len = t.seal(
            &inner,
            &mut sealed,
            to.encap,
            now,
            super::tunnel::Sealed::Control,
        )?;
        Ok(Action::Send {
            packet: sealed.get(..len).ok_or(TunnelDrop::SendFailed)?.to_vec(),
            to,
            kind: match msg {
                Message::Rreq(_) => SendKind::Request,
                Message::Rrep(_) => SendKind::Reply,
            },
        })
    }

    /// Counts a registration message the daemon sent (or failed to send).
    pub fn sent(&self, kind: SendKind, ok: bool) {
        let mut s = self.stats.lock();
        match (kind, ok) {
            (SendKind::Request, true) => s.rreq_tx += 1,
            (SendKind::Reply, true) => s.rrep_tx += 1,
            (SendKind::Proof, true) => s.proofs_tx += 1,
            (_, false) => s.send_failures += 1,
        }
    }

    /// Gateway: an authenticated packet proved the address a registration
    /// moved `t`'s peer to.
    pub fn proved(&self, t: &Tunnel) {
        self.stats.lock().proofs += 1;
        tracing::info!(peer = %t.name, "new peer address proven");
    }

    /// Client: an ESP dummy packet to the gateway over the current data
    /// encapsulation; a gateway treats any authenticated packet from an
    /// address as proof of it.
    fn proof(&self, t: &Tunnel, now: u64) -> Option<Action> {
        let to = (*t.peer.read())?;
        let mut sealed = [0u8; 256];
        match t.seal_dummy(&mut sealed, to.encap, now) {
            Ok(n) => Some(Action::Send {
                packet: sealed.get(..n)?.to_vec(),
                to,
                kind: SendKind::Proof,
            }),
            Err(d) => {
                tracing::debug!(reason = d.label(), "proof packet not sealed");
                self.sent(SendKind::Proof, false);
                None
            }
        }
    }

    /// Client: the route to the gateway is now `path`.
    pub fn on_route(
        &self,
        tunnels: &[Tunnel],
        path: Option<Path>,
        now: u64,
        out: &mut Vec<Action>,
    ) {
        let Agent::Client { core, .. } = &self.agent else {
            return;
        };
        let mut events = Vec::new();
        core.lock().on_path(now, path, &mut events);
        if !events.is_empty() {
            self.stats.lock().last_change_unix = unix_now();
            tracing::info!(path = ?path, "route to the gateway changed: registering");
        }
        self.execute(tunnels, &events, now, out);
    }

    /// Client: retransmissions and probe deadlines; returns ms until the next one.
    pub fn poll(&self, tunnels: &[Tunnel], now: u64, out: &mut Vec<Action>) -> Option<u64> {
        let Agent::Client { core, .. } = &self.agent else {
            return None;
        };
        let mut events = Vec::new();
        let deadline = {
            let mut c = core.lock();
            c.poll(now, &mut events);
            c.deadline()
        };
        self.execute(tunnels, &events, now, out);
        deadline.map(|d| d.saturating_sub(now))
    }

    /// The gateway's outer address (client).
    pub fn gateway_outer(&self) -> Option<SocketAddrV4> {
        match &self.agent {
            Agent::Client { gateway_outer, .. } => Some(*gateway_outer),
            _ => None,
        }
    }

    fn execute(&self, tunnels: &[Tunnel], events: &[Event], now: u64, out: &mut Vec<Action>) {
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
                    let to = Peer::new(*gateway_outer, req.sent.encap);
                    let sealed = tunnels
                        .first()
                        .ok_or(TunnelDrop::NoTunnel)
                        .and_then(|t| self.seal(t, &Message::Rreq(req), *gateway_inner, to, now));
                    match sealed {
                        Ok(a) => out.push(a),
                        Err(d) => {
                            tracing::debug!(reason = d.label(), "registration request not sealed");
                            self.sent(SendKind::Request, false);
                        }
                    }
                }
                Event::UseEncap {
                    encap,
                    keepalive_secs,
                } => {
                    let (Some(t), e) = (tunnels.first(), encap) else {
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
                    drop(s);
                    tracing::info!(initial, handover_ms, nat = nat.label(), "registered");
                    // Prove the new address at once, even with no data to send.
                    if let Some(a) = tunnels.first().and_then(|t| self.proof(t, now)) {
                        out.push(a);
                    }
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
