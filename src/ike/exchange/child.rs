//! CREATE_CHILD_SA (RFC 7296 §1.3): new and rekeyed CHILD_SAs, and IKE SA
//! rekeys (§2.18). Whoever answers a CHILD_SA proposal derives its inbound
//! SPI from the proposer's SPI (the SPI-hash relation a spimux router
//! matches); whoever proposes picks a random one.

use super::super::crypto::{EspKeys, Group, KeyExchange};
use super::super::engine::{ChildInstall, Engine, Event, KeyLogTable};
use super::super::policy::ChildRekey;
use super::super::proposal::{
    accepted_esp, accepted_ike, choose_esp, choose_ike, esp_reply, ike_offer,
};
use super::super::sa::{ChildSa, ChildState, IkeSa, IkeState, Pending, Protection, Role, Task};
use super::super::selectors;
use super::super::stats::Side;
use super::init::NONCE_LEN;
use super::{error, error_notify, esp_notify, notify};
use crate::wire::ike::{ExchangeType, NotifyType, Payload, Proposal, ProtocolId, TrafficSelector};

/// Groups acceptable for a CHILD_SA's own key exchange (PFS).
const PFS_GROUPS: [Group; 2] = [Group::Curve25519, Group::Ecp256];

fn find_sa(payloads: &[Payload]) -> Option<&[Proposal]> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(v) => Some(v.as_slice()),
        _ => None,
    })
}

fn find_nonce(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

fn find_ke(payloads: &[Payload]) -> Option<(u16, &[u8])> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

fn find_ts(payloads: &[Payload]) -> (Option<&[TrafficSelector]>, Option<&[TrafficSelector]>) {
    let mut r = (None, None);
    for p in payloads {
        match p {
            Payload::TsI(t) => r.0 = Some(t.as_slice()),
            Payload::TsR(t) => r.1 = Some(t.as_slice()),
            _ => {}
        }
    }
    r
}

impl Engine {
    /// A new inbound SPI of ours: derived from the proposer's SPI when we
    /// answer (`peer_spi`), random when we propose.
    pub(super) fn inbound_spi(&mut self, peer_spi: Option<u32>) -> Option<u32> {
        let rng = &self.rng;
        let draw = || {
            let mut b = [0u8; 4];
            let _ = rng.fill(&mut b);
            u32::from_be_bytes(b)
        };
        let r = match peer_spi {
            Some(p) => self.spis.allocate(p, draw),
            None => self.spis.allocate_random(draw),
        };
        match (r, peer_spi) {
            (Ok(s), Some(_)) => {
                self.stats.spis_derived += 1;
                Some(s)
            }
            (Ok(s), None) => {
                self.stats.spis_random += 1;
                Some(s)
            }
            (Err(_), _) => {
                self.stats.spi_failures += 1;
                None
            }
        }
    }

    /// When this side rekeys a new CHILD_SA, and when it dies unrekeyed.
    fn child_timers(&self, now: u64, sa: &IkeSa) -> (Option<u64>, Option<u64>) {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)) else {
            return (None, None);
        };
        let l = pol.lifetimes;
        let we_rekey = sa.role == Role::Initiator || pol.child_rekey == ChildRekey::Both;
        let rekey = (we_rekey && l.child_rekey_ms > 0).then(|| {
            // The IKE responder waits longer, so a cooperating initiator usually goes first.
            let base = if sa.role == Role::Initiator {
                l.child_rekey_ms
            } else {
                l.child_rekey_ms.saturating_add(l.jitter_ms)
            };
            now.saturating_add(base)
                .saturating_sub(self.jitter(l.jitter_ms))
        });
        let hard = (l.child_hard_ms > 0).then(|| now.saturating_add(l.child_hard_ms));
        (rekey, hard)
    }

    /// Records a new CHILD_SA and hands it to the daemon.
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        child: ChildSa,
        key_in: EspKeys,
        key_out: EspKeys,
        derived: bool,
        replaces: Option<u32>,
    ) {
        let Some(peer) = sa.peer else { return };
        if self.cfg.key_log {
            let (l, r) = (*sa.local.ip(), *sa.remote.ip());
            for (src, dst, spi, k) in [
                (r, l, child.inbound_spi, &key_in),
                (l, r, child.outbound_spi, &key_out),
            ] {
                self.events.push_back(Event::KeyLog {
                    table: KeyLogTable::Esp,
                    line: super::super::crypto::esp_uat_line(src, dst, spi, &child.suite, k),
                });
            }
        }
        let (rekey_at, hard_at) = self.child_timers(now, sa);
        let install = ChildInstall {
            peer,
            ike: sa.local_spi(),
            inbound_spi: child.inbound_spi,
            outbound_spi: child.outbound_spi,
            suite: child.suite,
            key_in,
            key_out,
            local_ts: selectors::to_nets(&child.local_ts),
            remote_ts: selectors::to_nets(&child.remote_ts),
            remote: sa.remote,
            udp: sa.natt,
            keepalive: sa.natt && sa.nat_here,
            derived,
            replaces,
            defer_outbound: replaces.is_some() && sa.role == Role::Responder,
        };
        sa.children.push(ChildSa {
            rekey_at,
            hard_at,
            ..child
        });
        self.events.push_back(Event::ChildUp(Box::new(install)));
    }

    /// Answers a CHILD_SA proposal: chooses, narrows, derives our SPI and
    /// installs. Returns the reply payloads (SA, [Nr], [KEr], TSi, TSr) or
    /// the error to send. `nonces` are (exchange initiator's, ours), `None`
    /// in IKE_AUTH (the IKE SA's nonces, no PFS); `ke` is the proposer's KE
    /// payload.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_child(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        offers: &[Proposal],
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        nonces: Option<(&[u8], &[u8])>,
        ke: Option<(u16, &[u8])>,
        rekey_of: Option<u32>,
    ) -> Result<Vec<Payload>, NotifyType> {
        let in_auth = nonces.is_none();
        let (ni, nr) = match nonces {
            Some((i, r)) => (i.to_vec(), r.to_vec()),
            None => (sa.ni.clone(), sa.nr.clone()),
        };
        let pol = sa
            .peer
            .and_then(|p| self.policies.get(p))
            .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let allow: &[Group] = if in_auth { &[] } else { &PFS_GROUPS };
        let choice =
            choose_esp(offers, &pol.esp_suites, allow).ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        // TSi is the proposer's side: the peer's networks.
        let n_tsi = selectors::narrow(tsi, &pol.remote_ts);
        let n_tsr = selectors::narrow(tsr, &pol.local_ts);
        if n_tsi.is_empty() || n_tsr.is_empty() {
            return Err(NotifyType::TS_UNACCEPTABLE);
        }
        let (our_ke, g_ir) = match choice.group {
            None => (None, None),
            Some(g) => {
                let (group, data) = ke.ok_or(NotifyType::INVALID_KE_PAYLOAD)?;
                if group != g.id() {
                    return Err(NotifyType::INVALID_KE_PAYLOAD);
                }
                let k = KeyExchange::generate(g, self.rng.as_ref())
                    .map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?;
                let public = k.public().to_vec();
                let shared = k.agree(data).map_err(|_| NotifyType::INVALID_SYNTAX)?;
                (Some((g, public)), Some(shared))
            }
        };
        let prot = sa.prot.as_ref().ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let (i_to_r, r_to_i) = choice
            .suite
            .derive(prot.suite.prf, &prot.keys.sk_d, g_ir.as_deref(), &ni, &nr)
            .map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?;
        let spi = self
            .inbound_spi(Some(choice.peer_spi))
            .ok_or(NotifyType::NO_ADDITIONAL_SAS)?;
        let mut out = vec![Payload::Sa(vec![esp_reply(&choice, spi)])];
        if !in_auth {
            out.push(Payload::Nonce(nr));
        }
        if let Some((g, public)) = our_ke {
            out.push(Payload::Ke {
                group: g.id(),
                data: public,
            });
        }
        out.push(Payload::TsI(n_tsi.clone()));
        out.push(Payload::TsR(n_tsr.clone()));
        let child = ChildSa {
            inbound_spi: spi,
            outbound_spi: choice.peer_spi,
            suite: choice.suite,
            local_ts: n_tsr,
            remote_ts: n_tsi,
            state: ChildState::Installed,
            rekey_at: None,
            hard_at: None,
        };
        // We answered: the proposer's keys (initiator→responder) are our inbound.
        self.install_child(now, sa, child, i_to_r, r_to_i, true, rekey_of);
        Ok(out)
    }

    /// Completes a CHILD_SA we proposed from the peer's reply; false when
    /// the reply is unacceptable.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn complete_child(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        spi: u32,
        reply: &[Proposal],
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        nonces: (&[u8], &[u8]),
        dh: Option<KeyExchange>,
        ke: Option<(u16, &[u8])>,
        rekey_of: Option<u32>,
    ) -> bool {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)) else {
            return false;
        };
        let pfs = dh.as_ref().map(|k| k.group());
        let Some(choice) = accepted_esp(reply, &pol.esp_suites, pfs) else {
            return false;
        };
        let (offered_i, offered_r) =
            match rekey_of.and_then(|s| sa.children.iter().find(|c| c.inbound_spi == s)) {
                Some(old) => (old.local_ts.clone(), old.remote_ts.clone()),
                None => sa.offered_ts.clone(),
            };
        if tsi.is_empty()
            || tsr.is_empty()
            || !selectors::within(tsi, &offered_i)
            || !selectors::within(tsr, &offered_r)
        {
            return false;
        }
        let g_ir = match (dh, ke) {
            (None, _) => None,
            (Some(k), Some((g, data))) if g == k.group().id() => match k.agree(data) {
                Ok(s) => Some(s),
                Err(_) => return false,
            },
            _ => return false,
        };
        let Some(prot) = sa.prot.as_ref() else {
            return false;
        };
        let Ok((i_to_r, r_to_i)) = choice.suite.derive(
            prot.suite.prf,
            &prot.keys.sk_d,
            g_ir.as_deref(),
            nonces.0,
            nonces.1,
        ) else {
            return false;
        };
        let child = ChildSa {
            inbound_spi: spi,
            outbound_spi: choice.peer_spi,
            suite: choice.suite,
            local_ts: tsi.to_vec(),
            remote_ts: tsr.to_vec(),
            state: ChildState::Installed,
            rekey_at: None,
            hard_at: None,
        };
        // We proposed: initiator→responder keys are our outbound.
        self.install_child(now, sa, child, r_to_i, i_to_r, false, rekey_of);
        true
    }

    /// Answers a CREATE_CHILD_SA request.
    pub(super) fn child_request(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        id: u32,
        payloads: &[Payload],
    ) {
        let exchange = ExchangeType::CREATE_CHILD_SA;
        let (Some(offers), Some(ni)) = (find_sa(payloads), find_nonce(payloads)) else {
            self.respond(sa, exchange, id, &[error(NotifyType::INVALID_SYNTAX)]);
            return;
        };
        if offers
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::IKE)
        {
            self.ike_rekey_request(now, sa, id, offers, ni, find_ke(payloads));
            return;
        }
        let rekey_of = match notify(payloads, NotifyType::REKEY_SA) {
            None => None,
            Some(n) => {
                let spi = n
                    .spi
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match spi.and_then(|s| sa.child_by_outbound(s)) {
                    Some(c) if c.state == ChildState::Rekeying => {
                        // Our own rekey of it is in flight: the peer retries later.
                        self.respond(sa, exchange, id, &[error(NotifyType::TEMPORARY_FAILURE)]);
                        return;
                    }
                    Some(c) => Some(c.inbound_spi),
                    None => {
                        let spi = spi.unwrap_or(0);
                        self.respond(
                            sa,
                            exchange,
                            id,
                            &[esp_notify(NotifyType::CHILD_SA_NOT_FOUND, spi)],
                        );
                        return;
                    }
                }
            }
        };
        if sa.children.len() >= self.cfg.max_child_sas {
            self.stats.child_limit += 1;
            self.respond(sa, exchange, id, &[error(NotifyType::NO_ADDITIONAL_SAS)]);
            return;
        }
        let (Some(tsi), Some(tsr)) = find_ts(payloads) else {
            self.respond(sa, exchange, id, &[error(NotifyType::INVALID_SYNTAX)]);
            return;
        };
        let Some(nr) = self.random_bytes(NONCE_LEN) else {
            return;
        };
        let ke = find_ke(payloads);
        match self.answer_child(now, sa, offers, tsi, tsr, Some((ni, &nr)), ke, rekey_of) {
            Ok(out) => {
                if let Some(old) = rekey_of.and_then(|s| sa.child(s)) {
                    old.state = ChildState::Rekeyed;
                    old.rekey_at = None;
                    self.stats.rekeyed(false, Side::Peer);
                }
                self.respond(sa, exchange, id, &out);
            }
            Err(NotifyType::INVALID_KE_PAYLOAD) => {
                let g = offers
                    .iter()
                    .flat_map(|p| p.transforms.iter())
                    .find(|t| {
                        t.ty == crate::wire::ike::TransformType::KE
                            && PFS_GROUPS.iter().any(|g| g.id() == t.id)
                    })
                    .map(|t| t.id)
                    .unwrap_or(0);
                let mut n = crate::wire::ike::Notify::error(NotifyType::INVALID_KE_PAYLOAD);
                n.data = g.to_be_bytes().to_vec();
                self.respond(sa, exchange, id, &[Payload::Notify(n)]);
            }
            Err(n) => self.respond(sa, exchange, id, &[error(n)]),
        }
    }

    /// Answers an IKE SA rekey: a new IKE SA (the peer its initiator) takes
    /// over the CHILD_SAs; the old one waits for the peer's DELETE.
    fn ike_rekey_request(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        id: u32,
        offers: &[Proposal],
        ni: &[u8],
        ke: Option<(u16, &[u8])>,
    ) {
        let exchange = ExchangeType::CREATE_CHILD_SA;
        if sa
            .inflight
            .as_ref()
            .is_some_and(|i| matches!(i.pending, Pending::IkeRekey { .. }))
        {
            self.respond(sa, exchange, id, &[error(NotifyType::TEMPORARY_FAILURE)]);
            return;
        }
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return;
        };
        let Some(choice) = choose_ike(offers, &pol.ike_suites, ke.map(|k| k.0)) else {
            self.respond(sa, exchange, id, &[error(NotifyType::NO_PROPOSAL_CHOSEN)]);
            return;
        };
        let Some((group, data)) = ke.filter(|k| k.0 == choice.suite.group.id()) else {
            let mut n = crate::wire::ike::Notify::error(NotifyType::INVALID_KE_PAYLOAD);
            n.data = choice.suite.group.id().to_be_bytes().to_vec();
            self.respond(sa, exchange, id, &[Payload::Notify(n)]);
            return;
        };
        let new_spi_i = choice.reply.spi_u64().filter(|s| *s != 0);
        let (Some(new_spi_i), Some(new_spi_r), Some(nr)) =
            (new_spi_i, self.new_ike_spi(), self.random_bytes(NONCE_LEN))
        else {
            self.respond(sa, exchange, id, &[error(NotifyType::INVALID_SYNTAX)]);
            return;
        };
        let Some(old) = sa.prot.as_ref() else { return };
        let dh = KeyExchange::generate(choice.suite.group, self.rng.as_ref());
        let Ok(dh) = dh else { return };
        let public = dh.public().to_vec();
        let keys = dh.agree(data).ok().and_then(|g| {
            choice
                .suite
                .derive_rekey(
                    old.suite.prf,
                    &old.keys.sk_d,
                    ni,
                    &nr,
                    &g,
                    new_spi_i,
                    new_spi_r,
                )
                .ok()
        });
        let ciphers = keys.as_ref().and_then(|k| choice.suite.ciphers(k).ok());
        let (Some(keys), Some((i_to_r, r_to_i))) = (keys, ciphers) else {
            self.respond(sa, exchange, id, &[error(NotifyType::INVALID_SYNTAX)]);
            return;
        };
        let mut reply = choice.reply.clone();
        reply.spi = new_spi_r.to_be_bytes().to_vec();
        self.respond(
            sa,
            exchange,
            id,
            &[
                Payload::Sa(vec![reply]),
                Payload::Nonce(nr.clone()),
                Payload::Ke {
                    group,
                    data: public,
                },
            ],
        );
        let mut new = self.successor(now, sa, Role::Responder, new_spi_i, new_spi_r);
        new.ni = ni.to_vec();
        new.nr = nr;
        new.prot = Some(Protection {
            suite: choice.suite,
            keys,
            tx: r_to_i,
            rx: i_to_r,
        });
        self.schedule_ike_rekey(now, &mut new, &pol);
        self.key_log_ike(&new);
        self.stats.rekeyed(true, Side::Peer);
        self.store(new);
    }

    /// A new IKE SA replacing `old` after a rekey: CHILD_SAs move over, the
    /// old SA waits for (or sends) its DELETE.
    fn successor(
        &mut self,
        now: u64,
        old: &mut IkeSa,
        role: Role,
        spi_i: u64,
        spi_r: u64,
    ) -> IkeSa {
        let mut new = IkeSa::new(role, spi_i, old.local, old.remote, now);
        new.spi_r = spi_r;
        new.state = IkeState::Established;
        new.peer = old.peer;
        new.nat_here = old.nat_here;
        new.nat_there = old.nat_there;
        new.natt = old.natt;
        new.frag = old.frag;
        new.children = std::mem::take(&mut old.children);
        new.offered_ts = old.offered_ts.clone();
        old.state = IkeState::Deleting;
        old.rekeyed = true;
        old.rekey_at = None;
        // A peer that never sends the DELETE does not keep the old SA forever.
        old.expire_at = Some(now.saturating_add(self.cfg.half_open_timeout_ms));
        new
    }

    /// Our CREATE_CHILD_SA for a CHILD_SA was answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_response(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        spi: u32,
        rekey_of: Option<u32>,
        nonce: Vec<u8>,
        dh: Option<KeyExchange>,
        payloads: &[Payload],
    ) {
        let retry = |engine: &mut Engine, sa: &mut IkeSa| {
            engine.spis.release(spi);
            if let Some(c) = rekey_of.and_then(|s| sa.child(s)) {
                c.state = ChildState::Installed;
                // Try again a little later (TEMPORARY_FAILURE, collisions).
                c.rekey_at =
                    Some(now.saturating_add(engine.cfg.retransmit_base_ms.saturating_mul(2)));
            }
        };
        if error_notify(payloads).is_some() {
            retry(self, sa);
            return;
        }
        let (tsi, tsr) = find_ts(payloads);
        let ok = match (find_sa(payloads), find_nonce(payloads), tsi, tsr) {
            (Some(reply), Some(nr), Some(tsi), Some(tsr)) => {
                let ke = find_ke(payloads);
                self.complete_child(
                    now,
                    sa,
                    spi,
                    reply,
                    tsi,
                    tsr,
                    (&nonce, nr),
                    dh,
                    ke,
                    rekey_of,
                )
            }
            _ => false,
        };
        if !ok {
            retry(self, sa);
            return;
        }
        if let Some(old) = rekey_of {
            if let Some(c) = sa.child(old) {
                c.state = ChildState::Rekeyed;
                c.rekey_at = None;
            }
            self.stats.rekeyed(false, Side::Local);
            sa.tasks.push_front(Task::DeleteChildren(vec![old]));
        }
    }

    /// Starts our rekey of a CHILD_SA.
    pub(super) fn start_child_rekey(&mut self, now: u64, sa: &mut IkeSa, old: u32) -> bool {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return false;
        };
        let Some((local_ts, remote_ts)) = sa
            .children
            .iter()
            .find(|c| c.inbound_spi == old && c.state == ChildState::Installed)
            .map(|c| (c.local_ts.clone(), c.remote_ts.clone()))
        else {
            return false;
        };
        let (Some(spi), Some(nonce)) = (self.inbound_spi(None), self.random_bytes(NONCE_LEN))
        else {
            return false;
        };
        let p = vec![
            esp_notify(NotifyType::REKEY_SA, old),
            Payload::Sa(super::super::proposal::esp_offer(
                &pol.esp_suites,
                spi,
                None,
            )),
            Payload::Nonce(nonce.clone()),
            Payload::TsI(local_ts),
            Payload::TsR(remote_ts),
        ];
        let pending = Pending::Child {
            spi,
            rekey_of: Some(old),
            nonce,
            dh: None,
        };
        if !self.request(now, sa, ExchangeType::CREATE_CHILD_SA, &p, pending) {
            self.spis.release(spi);
            return false;
        }
        if let Some(c) = sa.child(old) {
            c.state = ChildState::Rekeying;
        }
        true
    }

    /// Starts our rekey of the IKE SA.
    pub(super) fn start_ike_rekey(&mut self, now: u64, sa: &mut IkeSa) -> bool {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return false;
        };
        let Some(group) = sa.prot.as_ref().map(|p| p.suite.group) else {
            return false;
        };
        let (Some(spi), Some(nonce)) = (self.new_ike_spi(), self.random_bytes(NONCE_LEN)) else {
            return false;
        };
        let Ok(dh) = KeyExchange::generate(group, self.rng.as_ref()) else {
            return false;
        };
        // Offer the current suite first so the group of our KE matches.
        let current = sa.prot.as_ref().map(|p| p.suite);
        let mut suites: Vec<_> = current.into_iter().collect();
        suites.extend(
            pol.ike_suites
                .iter()
                .filter(|s| s.group == group && Some(**s) != current),
        );
        let p = vec![
            Payload::Sa(ike_offer(&suites, Some(spi))),
            Payload::Nonce(nonce.clone()),
            Payload::Ke {
                group: group.id(),
                data: dh.public().to_vec(),
            },
        ];
        self.request(
            now,
            sa,
            ExchangeType::CREATE_CHILD_SA,
            &p,
            Pending::IkeRekey {
                spi,
                nonce,
                dh: Some(dh),
            },
        )
    }

    /// Our IKE SA rekey was answered: the new SA takes over and we delete the old one.
    pub(super) fn ike_rekey_response(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        spi_i: u64,
        ni: Vec<u8>,
        dh: Option<KeyExchange>,
        payloads: &[Payload],
    ) {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return;
        };
        let again = |engine: &Engine, sa: &mut IkeSa| {
            sa.rekey_at = Some(now.saturating_add(engine.cfg.retransmit_base_ms.saturating_mul(2)));
        };
        if error_notify(payloads).is_some() {
            again(self, sa);
            return;
        }
        let reply = find_sa(payloads);
        let suite = reply.and_then(|r| accepted_ike(r, &pol.ike_suites));
        let spi_r = reply
            .and_then(|r| r.first())
            .and_then(|p| p.spi_u64())
            .filter(|s| *s != 0);
        let (Some(suite), Some(spi_r), Some(nr), Some((g, data)), Some(dh), Some(old)) = (
            suite,
            spi_r,
            find_nonce(payloads),
            find_ke(payloads),
            dh,
            sa.prot.as_ref(),
        ) else {
            again(self, sa);
            return;
        };
        if g != dh.group().id() || dh.group() != suite.group {
            again(self, sa);
            return;
        }
        let keys = dh.agree(data).ok().and_then(|shared| {
            suite
                .derive_rekey(
                    old.suite.prf,
                    &old.keys.sk_d,
                    &ni,
                    nr,
                    &shared,
                    spi_i,
                    spi_r,
                )
                .ok()
        });
        let ciphers = keys.as_ref().and_then(|k| suite.ciphers(k).ok());
        let (Some(keys), Some((i_to_r, r_to_i))) = (keys, ciphers) else {
            again(self, sa);
            return;
        };
        let mut new = self.successor(now, sa, Role::Initiator, spi_i, spi_r);
        new.ni = ni;
        new.nr = nr.to_vec();
        new.prot = Some(Protection {
            suite,
            keys,
            tx: i_to_r,
            rx: r_to_i,
        });
        self.schedule_ike_rekey(now, &mut new, &pol);
        self.key_log_ike(&new);
        self.stats.rekeyed(true, Side::Local);
        self.store(new);
        sa.tasks.clear();
        sa.tasks.push_back(Task::DeleteIke);
    }

    /// A key log line for an IKE SA (only with `key_log`).
    pub(super) fn key_log_ike(&mut self, sa: &IkeSa) {
        if !self.cfg.key_log {
            return;
        }
        if let Some(p) = sa.prot.as_ref() {
            self.events.push_back(Event::KeyLog {
                table: KeyLogTable::Ike,
                line: super::super::crypto::ikev2_uat_line(sa.spi_i, sa.spi_r, &p.suite, &p.keys),
            });
        }
    }
}
