//! The gateway's side of a registration: checks a request that arrived on a
//! valid SA, decides whether and where the SA's outer peer moves, and builds
//! the reply. Only called after ESP authenticated the packet, so everything
//! here is about freshness and consistency, not origin.

use super::{Code, Encap, EncapSet, NatFields, NatKind, OuterHeader, Rrep, Rreq};
use std::net::Ipv4Addr;

/// Gateway policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// NAT keepalive interval announced for UDP encapsulation, seconds.
    pub keepalive_secs: u16,
    /// Whether plain ESP may be chosen when no translation was seen.
    pub allow_plain: bool,
}

/// Per-SA registration state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registration {
    /// Last accepted identification.
    pub last_id: Option<u64>,
    /// Outer source address of that registration.
    src: Option<Ipv4Addr>,
    /// Encapsulations its copies arrived over.
    seen: EncapSet,
    /// A copy of it showed a translation.
    translated: bool,
    /// Source port of its UDP copy.
    udp_port: Option<u16>,
}

impl Registration {
    /// What an operator sees (`spimux responder show mobility`).
    pub fn status(&self) -> RegistrationStatus {
        RegistrationStatus {
            last_id: self.last_id,
            source: self.src,
            seen_over: Encap::ALL
                .iter()
                .filter(|e| self.seen.contains(**e))
                .map(|e| e.label())
                .collect(),
            translated: self.translated,
            udp_port: self.udp_port,
        }
    }
}

/// One peer's last accepted registration, for operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationStatus {
    /// Its identification (`None`: no registration yet).
    pub last_id: Option<u64>,
    /// Outer source address it came from.
    pub source: Option<Ipv4Addr>,
    /// Encapsulations its copies arrived over.
    pub seen_over: Vec<&'static str>,
    /// A copy showed an address or port translation.
    pub translated: bool,
    /// Source port of its UDP copy.
    pub udp_port: Option<u16>,
}

/// What the check concluded, one metric label each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A newer registration: the SA moves.
    Accepted,
    /// Another copy of the current registration over a different encapsulation.
    AcceptedCopy,
    /// Identification not newer (a delayed or replayed request).
    Stale,
    /// The inner address does not belong to the SA.
    InnerMismatch,
    /// Plain ESP across a translator, or plain ESP disabled.
    EncapRefused,
    /// Inconsistent request (its own header copy names another encapsulation).
    BadRequest,
    /// The SA's peer is configured (static): registrations never move it.
    StaticPeer,
}

impl Outcome {
    /// Every outcome, for zero-valued counters.
    pub const ALL: [Outcome; 7] = [
        Outcome::Accepted,
        Outcome::AcceptedCopy,
        Outcome::Stale,
        Outcome::InnerMismatch,
        Outcome::EncapRefused,
        Outcome::BadRequest,
        Outcome::StaticPeer,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::AcceptedCopy => "accepted_copy",
            Outcome::Stale => "stale",
            Outcome::InnerMismatch => "inner_mismatch",
            Outcome::EncapRefused => "encap_refused",
            Outcome::BadRequest => "bad_request",
            Outcome::StaticPeer => "static_peer",
        }
    }

    fn code(self) -> Code {
        match self {
            Outcome::Accepted | Outcome::AcceptedCopy => Code::Accepted,
            Outcome::Stale => Code::Stale,
            Outcome::InnerMismatch => Code::InnerMismatch,
            Outcome::EncapRefused => Code::EncapRefused,
            Outcome::BadRequest => Code::BadRequest,
            Outcome::StaticPeer => Code::StaticPeer,
        }
    }
}

/// Where an accepted registration puts the SA's outer peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// Outer address of the peer.
    pub addr: Ipv4Addr,
    /// UDP source port (0 for plain ESP).
    pub port: u16,
    /// Encapsulation for traffic to the peer.
    pub encap: Encap,
}

/// The decision on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What happened.
    pub outcome: Outcome,
    /// New outer peer, for accepted requests.
    pub moved: Option<Move>,
    /// Translation seen on this copy.
    pub nat: NatKind,
    /// Reply, sent back the way the request came.
    pub reply: Rrep,
}

/// Checks `req`, which arrived authenticated on an SA whose inner packet came
/// from `inner_src` with the outer header `observed`; `owns` says whether an
/// inner address belongs to the SA.
pub fn check(
    reg: &mut Registration,
    req: &Rreq,
    observed: OuterHeader,
    inner_src: Ipv4Addr,
    owns: impl Fn(Ipv4Addr) -> bool,
    policy: Policy,
) -> Decision {
    let nat = NatFields::between(&req.sent, &observed);
    let (outcome, moved) = decide(reg, req, observed, nat, inner_src, owns, policy);
    let chosen = moved.map(|m| m.encap);
    Decision {
        outcome,
        moved,
        nat: nat.kind(),
        reply: Rrep {
            id: req.id,
            code: outcome.code(),
            observed,
            nat,
            use_encap: chosen,
            keepalive_secs: match chosen {
                Some(Encap::Udp) => policy.keepalive_secs,
                _ => 0,
            },
            last_id: match outcome {
                Outcome::Stale => reg.last_id,
                _ => None,
            },
        },
    }
}

/// The decision on a request for an SA whose outer peer is configured
/// (static): it never moves, whatever the request says, and the registration
/// state is left alone. The reply says why.
pub fn refuse_static(req: &Rreq, observed: OuterHeader) -> Decision {
    let nat = NatFields::between(&req.sent, &observed);
    Decision {
        outcome: Outcome::StaticPeer,
        moved: None,
        nat: nat.kind(),
        reply: Rrep {
            id: req.id,
            code: Code::StaticPeer,
            observed,
            nat,
            use_encap: None,
            keepalive_secs: 0,
            last_id: None,
        },
    }
}

fn decide(
    reg: &mut Registration,
    req: &Rreq,
    observed: OuterHeader,
    nat: NatFields,
    inner_src: Ipv4Addr,
    owns: impl Fn(Ipv4Addr) -> bool,
    policy: Policy,
) -> (Outcome, Option<Move>) {
    if req.inner != inner_src || !owns(req.inner) {
        return (Outcome::InnerMismatch, None);
    }
    if req.sent.encap != observed.encap || !req.supported.contains(observed.encap) {
        return (Outcome::BadRequest, None);
    }
    // Plain ESP has no ports a NAT could keep apart; across a translator only
    // UDP is dependable (RFC 3948), so a plain copy never moves the SA there.
    if observed.encap == Encap::Plain && (nat.any() || !policy.allow_plain) {
        return (Outcome::EncapRefused, None);
    }
    let newer = match reg.last_id {
        Some(last) => req.id > last,
        None => true,
    };
    let copy = reg.last_id == Some(req.id)
        && reg.src == Some(observed.src)
        && !reg.seen.contains(observed.encap);
    // Work on a copy: a request that moves nothing must not consume the identification.
    let (outcome, mut next) = if newer {
        let fresh = Registration {
            last_id: Some(req.id),
            src: Some(observed.src),
            ..Registration::default()
        };
        (Outcome::Accepted, fresh)
    } else if copy {
        (Outcome::AcceptedCopy, *reg)
    } else {
        return (Outcome::Stale, None);
    };
    next.seen = EncapSet(next.seen.0 | EncapSet::of(&[observed.encap]).0);
    next.translated |= nat.any();
    if observed.encap == Encap::Udp {
        next.udp_port = Some(observed.sport);
    }
    // Plain ESP once a plain copy got through and no copy was translated;
    // otherwise UDP, at the port the UDP copy came from.
    let moved = match (
        next.seen.contains(Encap::Plain) && !next.translated,
        next.udp_port,
    ) {
        (true, _) => Move {
            addr: observed.src,
            port: 0,
            encap: Encap::Plain,
        },
        (false, Some(port)) => Move {
            addr: observed.src,
            port,
            encap: Encap::Udp,
        },
        // Only copies the gateway cannot answer on (TCP) so far.
        (false, None) => return (Outcome::EncapRefused, None),
    };
    *reg = next;
    (outcome, Some(moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 5);
    const GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 69);
    const POLICY: Policy = Policy {
        keepalive_secs: 20,
        allow_plain: true,
    };

    fn sent(encap: Encap, src: Ipv4Addr) -> OuterHeader {
        let port = if encap == Encap::Udp { 4500 } else { 0 };
        OuterHeader {
            encap,
            src,
            dst: GW,
            sport: port,
            dport: port,
        }
    }

    fn req(id: u64, s: OuterHeader) -> Rreq {
        Rreq {
            id,
            inner: INNER,
            sent: s,
            supported: EncapSet::of(&[Encap::Plain, Encap::Udp]),
        }
    }

    fn run(reg: &mut Registration, r: &Rreq, observed: OuterHeader) -> Decision {
        check(reg, r, observed, INNER, |a| a == INNER, POLICY)
    }

    const DIRECT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const NAT_OUT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);

    #[test]
    fn direct_path_udp_first_then_plain_copy_switches_to_plain() {
        let mut reg = Registration::default();
        let d = run(
            &mut reg,
            &req(1, sent(Encap::Udp, DIRECT)),
            sent(Encap::Udp, DIRECT),
        );
        assert_eq!(d.outcome, Outcome::Accepted);
        assert_eq!(d.nat, NatKind::None);
        assert_eq!(
            d.moved,
            Some(Move {
                addr: DIRECT,
                port: 4500,
                encap: Encap::Udp
            })
        );
        assert_eq!(d.reply.use_encap, Some(Encap::Udp));
        assert_eq!(d.reply.keepalive_secs, 20);
        let p = sent(Encap::Plain, DIRECT);
        let d = run(&mut reg, &req(1, p), p);
        assert_eq!(d.outcome, Outcome::AcceptedCopy);
        assert_eq!(d.moved.map(|m| m.encap), Some(Encap::Plain));
        assert_eq!(d.reply.code, Code::Accepted);
        assert_eq!(d.reply.keepalive_secs, 0);
        // The same copy again is stale: it can only be a duplicate or a replay.
        let d = run(&mut reg, &req(1, p), p);
        assert_eq!(d.outcome, Outcome::Stale);
        assert_eq!(d.moved, None);
        assert_eq!(d.reply.last_id, Some(1));
    }

    #[test]
    fn plain_copy_first_keeps_plain_when_udp_copy_follows() {
        let mut reg = Registration::default();
        let p = sent(Encap::Plain, DIRECT);
        let d = run(&mut reg, &req(5, p), p);
        assert_eq!(
            (d.outcome, d.moved.map(|m| m.encap)),
            (Outcome::Accepted, Some(Encap::Plain))
        );
        let u = sent(Encap::Udp, DIRECT);
        let d = run(&mut reg, &req(5, u), u);
        assert_eq!(d.outcome, Outcome::AcceptedCopy);
        assert_eq!(d.reply.use_encap, Some(Encap::Plain));
    }

    #[test]
    fn napt_keeps_udp_and_reports_address_and_port() {
        let mut reg = Registration::default();
        let seen = OuterHeader {
            src: NAT_OUT,
            sport: 61000,
            ..sent(Encap::Udp, PRIVATE)
        };
        let d = run(&mut reg, &req(2, sent(Encap::Udp, PRIVATE)), seen);
        assert_eq!(d.outcome, Outcome::Accepted);
        assert_eq!(d.nat, NatKind::AddressAndPort);
        assert_eq!(
            d.moved,
            Some(Move {
                addr: NAT_OUT,
                port: 61000,
                encap: Encap::Udp
            })
        );
        assert_eq!(
            d.reply.nat,
            NatFields(NatFields::SRC_ADDR | NatFields::SRC_PORT)
        );
        // The plain copy got through the NAT too (address-only for protocol 50): refused.
        let plain_seen = OuterHeader {
            src: NAT_OUT,
            ..sent(Encap::Plain, PRIVATE)
        };
        let d = run(&mut reg, &req(2, sent(Encap::Plain, PRIVATE)), plain_seen);
        assert_eq!(d.outcome, Outcome::EncapRefused);
        assert_eq!(d.moved, None);
        assert_eq!(d.reply.code, Code::EncapRefused);
    }

    #[test]
    fn translated_plain_copy_first_waits_for_the_udp_copy() {
        let mut reg = Registration::default();
        let plain_seen = OuterHeader {
            src: NAT_OUT,
            ..sent(Encap::Plain, PRIVATE)
        };
        let d = run(&mut reg, &req(3, sent(Encap::Plain, PRIVATE)), plain_seen);
        assert_eq!((d.outcome, d.moved), (Outcome::EncapRefused, None));
        assert_eq!(
            reg.last_id, None,
            "a refused copy must not consume the identification"
        );
        let seen = OuterHeader {
            src: NAT_OUT,
            sport: 1024,
            ..sent(Encap::Udp, PRIVATE)
        };
        let d = run(&mut reg, &req(3, sent(Encap::Udp, PRIVATE)), seen);
        assert_eq!(d.outcome, Outcome::Accepted);
        assert_eq!(d.moved.map(|m| m.encap), Some(Encap::Udp));
    }

    #[test]
    fn stale_and_copies_from_elsewhere_never_move() {
        let mut reg = Registration::default();
        let u = sent(Encap::Udp, DIRECT);
        run(&mut reg, &req(10, u), u);
        for id in [1, 9, 10] {
            let d = run(&mut reg, &req(id, u), u);
            assert_eq!((d.outcome, d.moved), (Outcome::Stale, None), "id {id}");
        }
        // Same identification, other encapsulation, but from another address.
        let p = sent(Encap::Plain, PRIVATE);
        let d = run(&mut reg, &req(10, p), p);
        assert_eq!((d.outcome, d.moved), (Outcome::Stale, None));
        assert_eq!(reg.last_id, Some(10));
    }

    #[test]
    fn inner_address_and_consistency_are_checked() {
        let mut reg = Registration::default();
        let u = sent(Encap::Udp, DIRECT);
        let d = check(
            &mut reg,
            &req(1, u),
            u,
            Ipv4Addr::new(10, 98, 0, 6),
            |_| true,
            POLICY,
        );
        assert_eq!(d.outcome, Outcome::InnerMismatch);
        let d = check(&mut reg, &req(1, u), u, INNER, |_| false, POLICY);
        assert_eq!(d.outcome, Outcome::InnerMismatch);
        let d = run(&mut reg, &req(1, sent(Encap::Plain, DIRECT)), u);
        assert_eq!(d.outcome, Outcome::BadRequest);
        let mut r = req(1, u);
        r.supported = EncapSet::of(&[Encap::Plain]);
        assert_eq!(run(&mut reg, &r, u).outcome, Outcome::BadRequest);
        assert_eq!(reg, Registration::default());
    }

    /// Fuzzing found a TCP copy refused as `EncapRefused` yet recorded: its
    /// identification was used up and the later UDP copy counted as a copy.
    #[test]
    fn a_refused_tcp_copy_leaves_the_registration_alone() {
        let mut reg = Registration::default();
        let t = OuterHeader {
            sport: 4500,
            dport: 4500,
            ..sent(Encap::Tcp, DIRECT)
        };
        let mut r = req(4, t);
        r.supported = EncapSet::of(&Encap::ALL);
        let d = run(&mut reg, &r, t);
        assert_eq!((d.outcome, d.moved), (Outcome::EncapRefused, None));
        assert_eq!(reg, Registration::default());
        let u = sent(Encap::Udp, DIRECT);
        assert_eq!(run(&mut reg, &req(4, u), u).outcome, Outcome::Accepted);
    }

    #[test]
    fn plain_can_be_disabled_by_policy() {
        let mut reg = Registration::default();
        let p = sent(Encap::Plain, DIRECT);
        let no_plain = Policy {
            allow_plain: false,
            ..POLICY
        };
        let d = check(&mut reg, &req(1, p), p, INNER, |_| true, no_plain);
        assert_eq!(d.outcome, Outcome::EncapRefused);
    }
}
