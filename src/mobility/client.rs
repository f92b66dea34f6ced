//! The mobile endpoint's registration state machine.
//!
//! On every change of the outer source address it sends a registration
//! request over UDP (passes any NAT) and, when it may use plain ESP, the same
//! request over plain ESP at the same moment: that copy is the probe. The
//! first accepted reply ends the handover (data flows over UDP from then on);
//! a reply over plain ESP that names plain ESP proves the path both ways and
//! switches data to plain ESP. If the UDP reply saw no NAT but no plain reply
//! comes within the probe wait, plain ESP is filtered somewhere: the client
//! re-registers over UDP only, so the gateway cannot be left sending plain
//! ESP into a filter. Requests lost on the way are retransmitted with
//! exponential backoff, each with a fresh identification.

use super::{Code, Encap, EncapSet, NatFields, NatKind, OuterHeader, Rrep, Rreq};
use std::net::Ipv4Addr;

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Own inner address.
    pub inner: Ipv4Addr,
    /// Gateway's outer address.
    pub gateway: Ipv4Addr,
    /// UDP encapsulation port, the same at both ends (RFC 3948: 4500).
    pub udp_port: u16,
    /// Offer and probe plain ESP.
    pub offer_plain: bool,
    /// First retransmission timeout, ms.
    pub initial_rto_ms: u64,
    /// Largest retransmission timeout, ms.
    pub max_rto_ms: u64,
    /// Shortest wait for the plain-ESP reply after the UDP reply, ms
    /// (otherwise twice the measured round trip).
    pub min_probe_wait_ms: u64,
}

/// The route the client uses towards the gateway: a change of any part of
/// it (source address, outgoing interface, next hop) means a new path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Path {
    /// Source address the kernel picks.
    pub src: Ipv4Addr,
    /// Outgoing interface index.
    pub oif: u32,
    /// Next hop, if not on-link.
    pub via: Option<Ipv4Addr>,
}

impl Path {
    /// A path identified by its source address alone.
    pub fn from_src(src: Ipv4Addr) -> Path {
        Path {
            src,
            oif: 0,
            via: None,
        }
    }
}

/// The client's registration state for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ClientStatus {
    /// Path in use toward the gateway (`None`: no route).
    pub path: Option<Path>,
    /// Encapsulation data uses: `esp`, `udp`.
    pub encap: &'static str,
    /// A registration was accepted since start.
    pub registered: bool,
    /// A registration is under way (request sent, no answer yet).
    pub registering: bool,
    /// Last identification sent.
    pub last_id: u64,
    /// NAT keepalive interval the gateway announced (0: none).
    pub keepalive_secs: u16,
    /// The current registration found plain ESP filtered on this path.
    pub plain_refused: bool,
}

/// What the client asks its owner to do or report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Seal and send this request over `req.sent.encap` to the gateway.
    Send(Rreq),
    /// Send data with this encapsulation (keepalive interval in seconds, 0 = none).
    UseEncap {
        /// Encapsulation.
        encap: Encap,
        /// NAT keepalive interval.
        keepalive_secs: u16,
    },
    /// The first accepted reply of a registration arrived.
    Registered {
        /// First registration after start (not a move).
        initial: bool,
        /// Path change seen → accepted reply, ms.
        handover_ms: u64,
        /// Translation on the UDP path.
        nat: NatKind,
    },
    /// Plain ESP was offered on an untranslated path but did not get through.
    FellBack,
    /// The gateway refused the registration for good.
    Rejected(Code),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for any accepted reply.
    AwaitReply,
    /// UDP reply in, plain ESP copy answered by nothing yet.
    AwaitPlain { deadline: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    local: Ipv4Addr,
    seen_ms: u64,
    sent_ms: u64,
    rto_ms: u64,
    offer_plain: bool,
    plain_refused: bool,
    reported: bool,
    initial: bool,
    phase: Phase,
}

/// The client state machine. Feed it path changes, replies and time.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: ClientConfig,
    last_id: u64,
    path: Option<Path>,
    encap: Encap,
    keepalive_secs: u16,
    registered_once: bool,
    pending: Option<Pending>,
}

impl Client {
    /// A client whose first identification is above `id_floor`: a random
    /// start (not guessable from the clock), monotonic afterwards; a gateway
    /// that saw higher ones says so in its `stale` reply.
    pub fn new(cfg: ClientConfig, id_floor: u64) -> Client {
        Client {
            cfg,
            last_id: id_floor,
            path: None,
            encap: Encap::Udp,
            keepalive_secs: 0,
            registered_once: false,
            pending: None,
        }
    }

    /// Encapsulation data uses now.
    pub fn encap(&self) -> Encap {
        self.encap
    }

    /// Path in use.
    pub fn path(&self) -> Option<Path> {
        self.path
    }

    /// What an operator sees (`spimux client show mobility`).
    pub fn status(&self) -> ClientStatus {
        ClientStatus {
            path: self.path,
            encap: self.encap.label(),
            registered: self.registered_once,
            registering: self.registering(),
            last_id: self.last_id,
            keepalive_secs: self.keepalive_secs,
            plain_refused: self.pending.is_some_and(|p| p.plain_refused),
        }
    }

    /// True while a registration is under way.
    pub fn registering(&self) -> bool {
        self.pending.is_some()
    }

    /// When `poll` next has something to do.
    pub fn deadline(&self) -> Option<u64> {
        self.pending.map(|p| match p.phase {
            Phase::AwaitReply => p.sent_ms.saturating_add(p.rto_ms),
            Phase::AwaitPlain { deadline } => deadline,
        })
    }

    /// The route towards the gateway is now `path` (`None`: no route). A
    /// change starts a registration.
    pub fn on_path(&mut self, now: u64, path: Option<Path>, out: &mut Vec<Event>) {
        if path == self.path {
            return;
        }
        self.path = path;
        let Some(Path { src: addr, .. }) = path else {
            self.pending = None; // nothing can be sent until a path exists
            return;
        };
        let p = Pending {
            id: 0,
            local: addr,
            seen_ms: now,
            sent_ms: now,
            rto_ms: self.cfg.initial_rto_ms,
            offer_plain: self.cfg.offer_plain,
            plain_refused: false,
            reported: false,
            initial: !self.registered_once,
            phase: Phase::AwaitReply,
        };
        // UDP passes any NAT; plain ESP waits for proof.
        self.use_encap(Encap::Udp, self.keepalive_secs, out);
        self.send(p, now, out);
    }

    /// A reply arrived inside the tunnel over `over`.
    pub fn on_reply(&mut self, now: u64, rrep: &Rrep, over: Encap, out: &mut Vec<Event>) {
        let Some(mut p) = self.pending.filter(|p| p.id == rrep.id) else {
            return; // answer to an older request or to nothing
        };
        match rrep.code {
            Code::Accepted => {}
            Code::Stale => {
                // Our identifications fell behind the gateway's (a restart): move past.
                self.last_id = self.last_id.max(rrep.last_id.unwrap_or(rrep.id));
                p.rto_ms = self.cfg.initial_rto_ms;
                self.send(p, now, out);
                return;
            }
            Code::EncapRefused if over == Encap::Plain => {
                p.plain_refused = true;
                match p.phase {
                    Phase::AwaitPlain { .. } => self.pending = None,
                    Phase::AwaitReply => self.pending = Some(p),
                }
                return;
            }
            code => {
                self.pending = None;
                out.push(Event::Rejected(code));
                return;
            }
        }
        let sent = self.header(p.local, over);
        let nat = NatFields(rrep.nat.0 | NatFields::between(&sent, &rrep.observed).0);
        let chosen = rrep.use_encap.unwrap_or(Encap::Udp);
        if !p.reported {
            p.reported = true;
            self.registered_once = true;
            out.push(Event::Registered {
                initial: p.initial,
                handover_ms: now.saturating_sub(p.seen_ms),
                nat: nat.kind(),
            });
        }
        match over {
            // A reply that came back over plain ESP and names it: both directions pass.
            Encap::Plain if chosen == Encap::Plain => {
                self.use_encap(Encap::Plain, 0, out);
                self.pending = None;
            }
            _ => {
                self.use_encap(Encap::Udp, rrep.keepalive_secs, out);
                let plain_possible = p.offer_plain && !p.plain_refused && !nat.any();
                let plain_pending = matches!(p.phase, Phase::AwaitReply)
                    && over == Encap::Udp
                    && (plain_possible || chosen == Encap::Plain);
                if plain_pending {
                    let rtt = now.saturating_sub(p.sent_ms);
                    p.phase = Phase::AwaitPlain {
                        deadline: now
                            .saturating_add(self.cfg.min_probe_wait_ms.max(rtt.saturating_mul(2))),
                    };
                    self.pending = Some(p);
                } else if over == Encap::Udp || matches!(p.phase, Phase::AwaitPlain { .. }) {
                    self.pending = None;
                } else {
                    self.pending = Some(p); // plain copy accepted for UDP: the UDP reply is due
                }
            }
        }
    }

    /// Retransmissions and the probe deadline.
    pub fn poll(&mut self, now: u64, out: &mut Vec<Event>) {
        let Some(mut p) = self.pending else { return };
        match p.phase {
            Phase::AwaitReply if now >= p.sent_ms.saturating_add(p.rto_ms) => {
                p.rto_ms = p.rto_ms.saturating_mul(2).min(self.cfg.max_rto_ms);
                self.send(p, now, out);
            }
            Phase::AwaitPlain { deadline } if now >= deadline => {
                // The gateway may have switched to plain ESP on our copy while its
                // reply was filtered: re-register over UDP only to pin it to UDP.
                out.push(Event::FellBack);
                p.offer_plain = false;
                p.phase = Phase::AwaitReply;
                p.rto_ms = self.cfg.initial_rto_ms;
                self.send(p, now, out);
            }
            _ => {}
        }
    }

    fn header(&self, local: Ipv4Addr, encap: Encap) -> OuterHeader {
        let port = match encap {
            Encap::Plain => 0,
            _ => self.cfg.udp_port,
        };
        OuterHeader {
            encap,
            src: local,
            dst: self.cfg.gateway,
            sport: port,
            dport: port,
        }
    }

    /// Sends the request copies of `p` under a fresh identification. With
    /// the identifications used up (a gateway claimed `u64::MAX`) nothing
    /// newer exists: the registration is given up as stale.
    fn send(&mut self, mut p: Pending, now: u64, out: &mut Vec<Event>) {
        let Some(id) = self.last_id.checked_add(1) else {
            self.pending = None;
            out.push(Event::Rejected(Code::Stale));
            return;
        };
        self.last_id = id;
        p.id = id;
        p.sent_ms = now;
        let supported = if p.offer_plain {
            EncapSet::of(&[Encap::Plain, Encap::Udp])
        } else {
            EncapSet::of(&[Encap::Udp])
        };
        for encap in [Encap::Udp, Encap::Plain] {
            if supported.contains(encap) {
                out.push(Event::Send(Rreq {
                    id: p.id,
                    inner: self.cfg.inner,
                    sent: self.header(p.local, encap),
                    supported,
                }));
            }
        }
        self.pending = Some(p);
    }

    fn use_encap(&mut self, encap: Encap, keepalive_secs: u16, out: &mut Vec<Event>) {
        if (encap, keepalive_secs) != (self.encap, self.keepalive_secs) {
            self.encap = encap;
            self.keepalive_secs = keepalive_secs;
            out.push(Event::UseEncap {
                encap,
                keepalive_secs,
            });
        }
    }
}

#[cfg(test)]
mod tests;
