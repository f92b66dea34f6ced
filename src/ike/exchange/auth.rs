//! IKE_AUTH (RFC 7296 §1.2, §2.15): identities, AUTH by pre-shared key or
//! certificate signature (RFC 7427), and the first CHILD_SA.

use super::super::crypto::{psk_auth, psk_verify, signed_octets, PeerCert, Prf};
use super::super::engine::{DownReason, Engine, Event, Fate};
use super::super::policy::{identity_text, LocalAuth, PeerPolicy, RemoteAuth};
use super::super::proposal::esp_offer;
use super::super::sa::{IkeSa, IkeState, Pending};
use super::super::selectors;
use super::super::stats::{Outcome, PeerAuth};
use super::{error, error_notify, notify};
use crate::wire::ike::{
    AuthMethod, CertEncoding, ExchangeType, Identification, NotifyType, Payload, TrafficSelector,
};

/// The parts of an IKE_AUTH message this side looks at.
struct AuthParts<'a> {
    id: Option<&'a Identification>,
    other_id: Option<&'a Identification>,
    auth: Option<(AuthMethod, &'a [u8])>,
    certs: Vec<&'a [u8]>,
    sa: Option<&'a [crate::wire::ike::Proposal]>,
    tsi: Option<&'a [TrafficSelector]>,
    tsr: Option<&'a [TrafficSelector]>,
}

/// Picks the parts out; `initiator` = the message is the initiator's.
fn parts(payloads: &[Payload], initiator: bool) -> AuthParts<'_> {
    let mut a = AuthParts {
        id: None,
        other_id: None,
        auth: None,
        certs: Vec::new(),
        sa: None,
        tsi: None,
        tsr: None,
    };
    for p in payloads {
        match p {
            Payload::IdI(i) if initiator => a.id = Some(i),
            Payload::IdR(i) if initiator => a.other_id = Some(i),
            Payload::IdR(i) => a.id = Some(i),
            Payload::Auth { method, data } => a.auth = Some((*method, data)),
            Payload::Cert { encoding, data } if *encoding == CertEncoding::X509_SIGNATURE => {
                a.certs.push(data)
            }
            Payload::Sa(s) => a.sa = Some(s),
            Payload::TsI(t) => a.tsi = Some(t),
            Payload::TsR(t) => a.tsr = Some(t),
            _ => {}
        }
    }
    a
}

/// The body of an ID payload as it is signed (type, 3 reserved bytes, data).
fn id_body(id: &Identification, initiator: bool) -> Vec<u8> {
    let p = if initiator {
        Payload::IdI(id.clone())
    } else {
        Payload::IdR(id.clone())
    };
    let mut b = vec![0u8; p.body_len()];
    match p.emit_body(&mut b) {
        Ok(n) => b.truncate(n),
        Err(_) => b.clear(),
    }
    b
}

impl Engine {
    /// Unix time for certificate validity.
    fn unix_now(&self, now: u64) -> u64 {
        self.cfg.unix_at_zero.saturating_add(now / 1000)
    }

    /// Checks the peer's AUTH under `pol`; `Some(how)` when it proves the identity.
    fn verify_peer(
        &self,
        now: u64,
        prf: Prf,
        pol: &PeerPolicy,
        a: &AuthParts<'_>,
        octets: &[u8],
    ) -> Option<PeerAuth> {
        let (id, (method, data)) = (a.id?, a.auth?);
        if !pol.accepts_id(id) {
            return None;
        }
        match &pol.remote_auth {
            // A PSK peer is always named: the key alone must not pick the policy.
            RemoteAuth::Psk(psk) => (method == AuthMethod::SHARED_KEY_MIC
                && pol.remote_id.is_some()
                && psk_verify(prf, psk, octets, data))
            .then_some(PeerAuth::Psk),
            RemoteAuth::Cert(anchors) => {
                let (ee, rest) = a.certs.split_first()?;
                let c: PeerCert = anchors.verify_chain(ee, rest, self.unix_now(now)).ok()?;
                let ok =
                    c.matches_id(id.ty.0, &id.data) && c.verify(method.0, data, octets).is_ok();
                let how = if c.is_rsa() {
                    PeerAuth::Rsa
                } else {
                    PeerAuth::Ecdsa
                };
                ok.then_some(how)
            }
        }
    }

    /// Our AUTH payload (and CERT, when we use one) over `octets`.
    fn our_auth(&self, pol: &PeerPolicy, prf: Prf, octets: &[u8]) -> Option<Vec<Payload>> {
        match &pol.local_auth {
            LocalAuth::Psk(psk) => Some(vec![Payload::Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk_auth(prf, psk, octets),
            }]),
            LocalAuth::Cert { cert, key } => {
                let (method, data) = key.sign(octets, self.rng.as_ref()).ok()?;
                Some(vec![
                    Payload::Cert {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: cert.to_vec(),
                    },
                    Payload::Auth {
                        method: AuthMethod(method),
                        data,
                    },
                ])
            }
        }
    }

    /// Responder: IKE_AUTH request.
    pub(super) fn auth_request(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        id: u32,
        payloads: &[Payload],
    ) -> Fate {
        let Some(prot) = sa.prot.as_ref() else {
            return Fate::Down(DownReason::Failed);
        };
        let prf = prot.suite.prf;
        let suite = prot.suite;
        let a = parts(payloads, true);
        let octets = match a.id {
            Some(i) => signed_octets(
                prf,
                &sa.init_req,
                &sa.nr,
                &prot.keys.sk_pi,
                &id_body(i, true),
            ),
            None => Vec::new(),
        };
        let chosen = self
            .candidates(*sa.remote.ip())
            .filter(|(_, p)| p.ike_suites.contains(&suite))
            .filter(|(_, p)| a.other_id.is_none_or(|want| *want == p.local_id))
            .find_map(|(i, p)| {
                self.verify_peer(now, prf, p, &a, &octets)
                    .map(|how| (i, how))
            });
        self.leave_half_open(sa);
        let Some((peer, how)) = chosen else {
            self.stats.auth_failures += 1;
            self.respond(
                sa,
                ExchangeType::IKE_AUTH,
                id,
                &[error(NotifyType::AUTHENTICATION_FAILED)],
            );
            return Fate::Down(DownReason::AuthFailed);
        };
        self.stats.peer_authenticated(how);
        let Some(pol) = self.policies.get(peer).cloned() else {
            return Fate::Down(DownReason::Failed);
        };
        sa.peer = Some(peer);
        sa.state = IkeState::Established;
        if let Some(k) = sa.init_key.take() {
            self.by_init.remove(&k);
        }
        if notify(payloads, NotifyType::INITIAL_CONTACT).is_some() {
            self.drop_others_of(sa, peer, 0, false);
        } else {
            let keep = self.cfg.max_ike_sas_per_peer.saturating_sub(1);
            self.drop_others_of(sa, peer, keep, true);
        }
        let Some(prot) = sa.prot.as_ref() else {
            return Fate::Down(DownReason::Failed);
        };
        let our_octets = signed_octets(
            prf,
            &sa.init_resp,
            &sa.ni,
            &prot.keys.sk_pr,
            &id_body(&pol.local_id, false),
        );
        let Some(auth) = self.our_auth(&pol, prf, &our_octets) else {
            return Fate::Down(DownReason::Failed);
        };
        let mut out = vec![Payload::IdR(pol.local_id.clone())];
        out.extend(auth);
        self.events.push_back(Event::IkeUp {
            ike: sa.local_spi(),
            peer,
            remote: sa.remote,
            remote_id: a.id.map(identity_text).unwrap_or_default(),
        });
        self.schedule_ike_rekey(now, sa, &pol);
        match (a.sa, a.tsi, a.tsr) {
            (Some(offers), Some(tsi), Some(tsr)) => {
                match self.answer_child(now, sa, offers, tsi, tsr, None, None, None) {
                    Ok(p) => out.extend(p),
                    Err(n) => out.push(error(n)),
                }
            }
            _ => out.push(error(NotifyType::NO_PROPOSAL_CHOSEN)),
        }
        self.respond(sa, ExchangeType::IKE_AUTH, id, &out);
        Fate::Keep
    }

    /// Initiator: sends IKE_AUTH with the first CHILD_SA.
    pub(super) fn send_auth(&mut self, now: u64, sa: &mut IkeSa) -> Fate {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return Fate::Down(DownReason::Failed);
        };
        let Some(prot) = sa.prot.as_ref() else {
            return Fate::Down(DownReason::Failed);
        };
        let prf = prot.suite.prf;
        let octets = signed_octets(
            prf,
            &sa.init_req,
            &sa.nr,
            &prot.keys.sk_pi,
            &id_body(&pol.local_id, true),
        );
        let Some(auth) = self.our_auth(&pol, prf, &octets) else {
            return Fate::Down(DownReason::Failed);
        };
        let Some(spi) = self.inbound_spi(None) else {
            return Fate::Down(DownReason::Failed);
        };
        let mut p = vec![Payload::IdI(pol.local_id.clone())];
        if matches!(pol.remote_auth, RemoteAuth::Cert(_)) {
            p.push(Payload::CertReq {
                encoding: CertEncoding::X509_SIGNATURE,
                data: self.ca_key_ids(),
            });
        }
        if let Some(r) = &pol.remote_id {
            p.push(Payload::IdR(r.clone()));
        }
        p.extend(auth);
        let first_contact = !sa.peer.is_some_and(|p| {
            self.sas
                .of_peer(p)
                .filter_map(|k| self.sas.get(k))
                .any(|o| o.state == IkeState::Established)
        });
        if first_contact {
            p.push(Payload::Notify(crate::wire::ike::Notify::status(
                NotifyType::INITIAL_CONTACT,
                Vec::new(),
            )));
        }
        let tsi = selectors::from_nets(&pol.local_ts);
        let tsr = selectors::from_nets(&pol.remote_ts);
        p.push(Payload::Sa(esp_offer(&pol.esp_suites, spi, None)));
        p.push(Payload::TsI(tsi.clone()));
        p.push(Payload::TsR(tsr.clone()));
        sa.offered_ts = (tsi, tsr);
        if !self.request(now, sa, ExchangeType::IKE_AUTH, &p, Pending::Auth { spi }) {
            self.spis.release(spi);
            return Fate::Down(DownReason::Failed);
        }
        Fate::Keep
    }

    /// Initiator: IKE_AUTH response.
    pub(super) fn auth_response(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        spi: u32,
        payloads: &[Payload],
    ) -> Fate {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)).cloned() else {
            return Fate::Down(DownReason::Failed);
        };
        let Some(prot) = sa.prot.as_ref() else {
            return Fate::Down(DownReason::Failed);
        };
        let prf = prot.suite.prf;
        let a = parts(payloads, false);
        let octets = match a.id {
            Some(i) => signed_octets(
                prf,
                &sa.init_resp,
                &sa.ni,
                &prot.keys.sk_pr,
                &id_body(i, false),
            ),
            None => Vec::new(),
        };
        let how = (error_notify(payloads) != Some(NotifyType::AUTHENTICATION_FAILED))
            .then(|| self.verify_peer(now, prf, &pol, &a, &octets))
            .flatten();
        let Some(how) = how else {
            self.spis.release(spi);
            self.stats.auth_failures += 1;
            self.stats.initiated(ExchangeType::IKE_AUTH, Outcome::Error);
            return Fate::Down(DownReason::AuthFailed);
        };
        self.stats.peer_authenticated(how);
        sa.state = IkeState::Established;
        self.events.push_back(Event::IkeUp {
            ike: sa.local_spi(),
            peer: sa.peer.unwrap_or_default(),
            remote: sa.remote,
            remote_id: a.id.map(identity_text).unwrap_or_default(),
        });
        self.schedule_ike_rekey(now, sa, &pol);
        let child = match (a.sa, a.tsi, a.tsr) {
            (Some(reply), Some(tsi), Some(tsr)) => {
                let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
                self.complete_child(now, sa, spi, reply, tsi, tsr, (&ni, &nr), None, None, None)
            }
            _ => false,
        };
        if !child {
            self.spis.release(spi);
        }
        let outcome = if child { Outcome::Ok } else { Outcome::Error };
        self.stats.initiated(ExchangeType::IKE_AUTH, outcome);
        Fate::Keep
    }

    /// Sets the IKE SA's rekey time: the initiator rekeys; a responder only
    /// when its policy rekeys CHILD_SAs too (a cooperating peer), a little
    /// later so the two rarely collide.
    pub(super) fn schedule_ike_rekey(&self, now: u64, sa: &mut IkeSa, pol: &PeerPolicy) {
        let l = pol.lifetimes;
        if l.ike_rekey_ms == 0 {
            return;
        }
        let base = match (sa.role, pol.child_rekey) {
            (super::super::sa::Role::Initiator, _) => l.ike_rekey_ms,
            (_, super::super::policy::ChildRekey::Both) => {
                l.ike_rekey_ms.saturating_add(l.jitter_ms)
            }
            _ => return,
        };
        sa.rekey_at = Some(
            now.saturating_add(base)
                .saturating_sub(self.jitter(l.jitter_ms)),
        );
    }

    /// Deletes this peer's other IKE SAs, oldest first, until `keep` remain,
    /// without telling it: after INITIAL_CONTACT (`keep` 0) the peer has lost
    /// them; otherwise the per-peer cap makes room (`cap`: counted).
    /// The table lists a peer's SAs oldest first, so only the excess is
    /// looked at (`sa` itself is out of the table while it is handled).
    fn drop_others_of(&mut self, sa: &IkeSa, peer: usize, keep: usize, cap: bool) {
        let ours = sa.local_spi();
        let in_table = self.sas.get(ours).is_some_and(|o| o.peer == Some(peer));
        let others = self.sas.peer_len(peer) - usize::from(in_table);
        let excess = others.saturating_sub(keep);
        if cap {
            self.stats.peer_limit += excess as u64;
        }
        if excess == 0 {
            return;
        }
        let oldest: Vec<u64> = self
            .sas
            .of_peer(peer)
            .filter(|k| *k != ours)
            .take(excess)
            .collect();
        for k in oldest {
            if let Some(o) = self.sas.remove(k) {
                self.down(o, DownReason::Replaced);
            }
        }
    }
}
