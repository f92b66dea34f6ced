//! IKE_SA_INIT (RFC 7296 §1.2): proposals, key exchange, nonces, NAT
//! detection (§2.23), cookies (§2.6), INVALID_KE_PAYLOAD (§1.2),
//! fragmentation support (RFC 7383) — both sides.

use super::super::crypto::{nat_detection_hash, Group, KeyExchange};
use super::super::engine::{Datagram, DownReason, Engine, Fate, InitiateError};
use super::super::policy::{NatDetection, RemoteAuth};
use super::super::proposal::{accepted_ike, choose_ike, ike_offer};
use super::super::sa::{IkeSa, IkeState, Inflight, Pending, Protection, Role};
use super::super::stats::{IkeDrop, Outcome};
use super::{error_notify, notify, unsupported_critical};
use crate::wire::ike::{
    emit_message, parse_chain, ExchangeType, Flags, Header, HeaderRepr, Notify, NotifyType,
    Payload, PayloadType, Proposal, HEADER_LEN,
};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Length of our nonces (RFC 7296 §2.10: at least half the PRF key size).
pub(crate) const NONCE_LEN: usize = 32;

/// Hash algorithms we verify in RFC 7427 signatures: SHA2-256, -384, -512.
const SIGNATURE_HASHES: [u8; 6] = [0, 2, 0, 3, 0, 4];

fn status(ty: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(Notify::status(ty, data))
}

fn nonce_of(payloads: &[Payload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

fn ke_of(payloads: &[Payload]) -> Option<(u16, &[u8])> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

fn sa_of(payloads: &[Payload]) -> Option<&[Proposal]> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(v) => Some(v.as_slice()),
        _ => None,
    })
}

/// NAT_DETECTION_*_IP data received (there may be several source hashes).
fn nat_hashes(payloads: &[Payload], ty: NotifyType) -> Vec<&[u8]> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.ty == ty => Some(n.data.as_slice()),
            _ => None,
        })
        .collect()
}

impl Engine {
    /// An unprotected IKE_SA_INIT answer with just one notification.
    fn init_notify(&mut self, d: &Datagram<'_>, spi_i: u64, n: Notify) {
        let ty = n.ty;
        let hdr = HeaderRepr {
            spi_i,
            spi_r: 0,
            next_payload: PayloadType::NONE,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::RESPONSE),
            message_id: 0,
            length: 0,
        };
        let p = [Payload::Notify(n)];
        let mut out = vec![0u8; HEADER_LEN + crate::wire::ike::chain_len(&p)];
        if let Ok(len) = emit_message(&hdr, &p, &mut out) {
            out.truncate(len);
            self.transmits.push_back(super::super::engine::Transmit {
                local_port: d.local.port(),
                remote: d.remote,
                data: out,
            });
        }
        // A COOKIE (status) is no failed exchange: `cookies_sent` counts it.
        if ty.is_error() {
            self.stats.error_sent(ty);
            self.stats
                .answered(ExchangeType::IKE_SA_INIT, Outcome::Error);
        }
    }

    /// Peer policies a request from `src` may use (selected by address;
    /// IKE_AUTH picks one of them by identity).
    pub(super) fn candidates(
        &self,
        src: Ipv4Addr,
    ) -> impl Iterator<Item = (usize, &super::super::policy::PeerPolicy)> {
        self.policies.iter().enumerate().filter(move |(_, p)| {
            p.remote_addrs.is_empty() || p.remote_addrs.iter().any(|n| n.contains(&src))
        })
    }

    /// Responder: a new IKE_SA_INIT request.
    pub(crate) fn on_init_request(&mut self, now: u64, d: &Datagram<'_>, hdr: &Header<&[u8]>) {
        let spi_i = hdr.spi_i();
        if let Some(ours) = self.by_init.get(&(spi_i, d.remote)).copied() {
            // A retransmitted request: the same answer again.
            if let Some(sa) = self.sas.get(ours) {
                if sa.state == IkeState::HalfOpen && !sa.init_resp.is_empty() {
                    let data = sa.init_resp.clone();
                    self.transmits.push_back(super::super::engine::Transmit {
                        local_port: d.local.port(),
                        remote: d.remote,
                        data,
                    });
                    self.stats.cached_responses += 1;
                }
            }
            return;
        }
        if hdr.message_id() != 0 {
            self.stats.drop(IkeDrop::MessageId);
            return;
        }
        let Some(chain) = hdr.message().get(HEADER_LEN..) else {
            self.stats.drop(IkeDrop::Malformed);
            return;
        };
        let Ok(payloads) = parse_chain(hdr.next_payload(), chain) else {
            self.stats.drop(IkeDrop::Malformed);
            return;
        };
        if let Some(ty) = unsupported_critical(&payloads) {
            let mut n = Notify::error(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
            n.data = vec![ty.0];
            self.init_notify(d, spi_i, n);
            return;
        }
        let (Some(offers), Some((group, ke)), Some(ni)) =
            (sa_of(&payloads), ke_of(&payloads), nonce_of(&payloads))
        else {
            self.init_notify(d, spi_i, Notify::error(NotifyType::INVALID_SYNTAX));
            return;
        };
        if self.sas.len() >= self.cfg.max_ike_sas {
            self.stats.drop(IkeDrop::SaLimit);
            return;
        }
        if self.half_open >= self.cfg.cookie_threshold {
            let valid = notify(&payloads, NotifyType::COOKIE).is_some_and(|c| {
                self.cookies
                    .as_ref()
                    .is_some_and(|j| j.check(&c.data, ni, *d.remote.ip(), spi_i))
            });
            if !valid {
                if let Some(c) = self
                    .cookies
                    .as_ref()
                    .map(|j| j.make(ni, *d.remote.ip(), spi_i))
                {
                    self.init_notify(d, spi_i, Notify::status(NotifyType::COOKIE, c));
                    self.stats.cookies_sent += 1;
                }
                return;
            }
        }
        let from_source = self
            .half_open_by_source
            .get(d.remote.ip())
            .copied()
            .unwrap_or(0);
        if self.half_open >= self.cfg.max_half_open
            || from_source >= self.cfg.max_half_open_per_source
        {
            self.stats.drop(IkeDrop::HalfOpenLimit);
            return;
        }
        let mut suites = Vec::new();
        let mut nat = None;
        let mut certs = false;
        for (_, p) in self.candidates(*d.remote.ip()) {
            nat.get_or_insert(p.nat);
            certs |= matches!(p.remote_auth, RemoteAuth::Cert(_));
            for s in &p.ike_suites {
                if !suites.contains(s) {
                    suites.push(*s);
                }
            }
        }
        let Some(choice) = choose_ike(offers, &suites, Some(group)) else {
            self.init_notify(d, spi_i, Notify::error(NotifyType::NO_PROPOSAL_CHOSEN));
            return;
        };
        if choice.suite.group.id() != group {
            let mut n = Notify::error(NotifyType::INVALID_KE_PAYLOAD);
            n.data = choice.suite.group.id().to_be_bytes().to_vec();
            self.init_notify(d, spi_i, n);
            self.stats.invalid_ke_sent += 1;
            return;
        }
        let Some(spi_r) = self.new_ike_spi() else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        let (Some(nr), Ok(dh)) = (
            self.random_bytes(NONCE_LEN),
            KeyExchange::generate(choice.suite.group, self.rng.as_ref()),
        ) else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        let public = dh.public().to_vec();
        let Ok(g_ir) = dh.agree(ke) else {
            self.init_notify(d, spi_i, Notify::error(NotifyType::INVALID_SYNTAX));
            return;
        };
        let Ok(keys) = choice.suite.derive(ni, &nr, &g_ir, spi_i, spi_r) else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        let Ok((i_to_r, r_to_i)) = choice.suite.ciphers(&keys) else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        let mut sa = IkeSa::new(Role::Responder, spi_i, d.local, d.remote, now);
        sa.spi_r = spi_r;
        sa.ni = ni.to_vec();
        sa.nr = nr.clone();
        sa.expect_id = 1;
        sa.frag = notify(&payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let src_hashes = nat_hashes(&payloads, NotifyType::NAT_DETECTION_SOURCE_IP);
        let dst_hashes = nat_hashes(&payloads, NotifyType::NAT_DETECTION_DESTINATION_IP);
        let nat = nat.unwrap_or(NatDetection::Auto);
        if nat == NatDetection::Auto && !src_hashes.is_empty() {
            let theirs = nat_detection_hash(spi_i, 0, d.remote);
            let ours = nat_detection_hash(spi_i, 0, d.local);
            sa.nat_there = !src_hashes.contains(&theirs.as_slice());
            sa.nat_here = !dst_hashes.contains(&ours.as_slice());
        }
        let mut reply = choice.reply;
        reply.spi.clear();
        let mut out = vec![
            Payload::Sa(vec![reply]),
            Payload::Ke {
                group,
                data: public,
            },
            Payload::Nonce(nr),
        ];
        if nat == NatDetection::Auto && !src_hashes.is_empty() {
            let src = nat_detection_hash(spi_i, spi_r, d.local);
            let dst = nat_detection_hash(spi_i, spi_r, d.remote);
            out.push(status(NotifyType::NAT_DETECTION_SOURCE_IP, src.to_vec()));
            out.push(status(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                dst.to_vec(),
            ));
        }
        if certs {
            out.push(Payload::CertReq {
                encoding: crate::wire::ike::CertEncoding::X509_SIGNATURE,
                data: self.ca_key_ids(),
            });
        }
        if sa.frag {
            out.push(status(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            ));
        }
        if notify(&payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some() {
            out.push(status(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                SIGNATURE_HASHES.to_vec(),
            ));
        }
        let hdr_out = HeaderRepr {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::RESPONSE),
            message_id: 0,
            length: 0,
        };
        let mut buf = vec![0u8; HEADER_LEN + crate::wire::ike::chain_len(&out)];
        let Ok(len) = emit_message(&hdr_out, &out, &mut buf) else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        buf.truncate(len);
        sa.init_req = hdr.message().to_vec();
        sa.init_resp = buf.clone();
        sa.prot = Some(Protection {
            suite: choice.suite,
            keys,
            tx: r_to_i,
            rx: i_to_r,
        });
        sa.expire_at = Some(now.saturating_add(self.cfg.half_open_timeout_ms));
        self.half_open += 1;
        *self.half_open_by_source.entry(*d.remote.ip()).or_insert(0) += 1;
        self.by_init.insert((spi_i, d.remote), spi_r);
        sa.init_key = Some((spi_i, d.remote));
        self.transmits.push_back(super::super::engine::Transmit {
            local_port: d.local.port(),
            remote: d.remote,
            data: buf,
        });
        self.stats.answered(ExchangeType::IKE_SA_INIT, Outcome::Ok);
        self.key_log_ike(&sa);
        self.store(sa);
    }

    /// Initiator: a new IKE SA toward peer `peer`.
    pub(crate) fn initiate_at(
        &mut self,
        now: u64,
        peer: usize,
        local: Option<Ipv4Addr>,
    ) -> Result<(), InitiateError> {
        let pol = self
            .policies
            .get(peer)
            .ok_or(InitiateError::NoRemote(peer))?;
        let remote = pol.remote.ok_or(InitiateError::NoRemote(peer))?;
        let group = pol.ike_suites.first().ok_or(InitiateError::Crypto)?.group;
        let spi_i = self.new_ike_spi().ok_or(InitiateError::Crypto)?;
        let local = SocketAddrV4::new(local.unwrap_or(Ipv4Addr::UNSPECIFIED), self.cfg.ike_port);
        let remote = SocketAddrV4::new(*remote.ip(), self.cfg.ike_port);
        let mut sa = IkeSa::new(Role::Initiator, spi_i, local, remote, now);
        sa.peer = Some(peer);
        sa.ni = self.random_bytes(NONCE_LEN).ok_or(InitiateError::Crypto)?;
        sa.dh = Some(
            KeyExchange::generate(group, self.rng.as_ref()).map_err(|_| InitiateError::Crypto)?,
        );
        self.send_init(now, &mut sa);
        self.store(sa);
        Ok(())
    }

    /// (Re)sends our IKE_SA_INIT request with the current key exchange and cookie.
    fn send_init(&mut self, now: u64, sa: &mut IkeSa) {
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)) else {
            return;
        };
        let Some(dh) = sa.dh.as_ref() else { return };
        let mut p = Vec::new();
        if let Some(c) = &sa.cookie {
            p.push(status(NotifyType::COOKIE, c.clone()));
        }
        p.push(Payload::Sa(ike_offer(&pol.ike_suites, None)));
        p.push(Payload::Ke {
            group: dh.group().id(),
            data: dh.public().to_vec(),
        });
        p.push(Payload::Nonce(sa.ni.clone()));
        p.push(status(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_detection_hash(sa.spi_i, 0, sa.local).to_vec(),
        ));
        p.push(status(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_detection_hash(sa.spi_i, 0, sa.remote).to_vec(),
        ));
        p.push(status(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            Vec::new(),
        ));
        if matches!(pol.remote_auth, RemoteAuth::Cert(_)) {
            p.push(status(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                SIGNATURE_HASHES.to_vec(),
            ));
        }
        let hdr = HeaderRepr {
            spi_i: sa.spi_i,
            spi_r: 0,
            next_payload: PayloadType::NONE,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::INITIATOR),
            message_id: 0,
            length: 0,
        };
        let mut buf = vec![0u8; HEADER_LEN + crate::wire::ike::chain_len(&p)];
        let Ok(len) = emit_message(&hdr, &p, &mut buf) else {
            self.stats.drop(IkeDrop::Internal);
            return;
        };
        buf.truncate(len);
        sa.init_req = buf.clone();
        self.send(sa, std::slice::from_ref(&buf));
        sa.next_id = 1;
        sa.inflight = Some(Inflight {
            id: 0,
            exchange: ExchangeType::IKE_SA_INIT,
            datagrams: vec![buf],
            tries: 0,
            next_at: now.saturating_add(self.cfg.retransmit_base_ms),
            pending: Pending::Init,
        });
    }

    /// Initiator: the IKE_SA_INIT response.
    pub(super) fn init_response(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        d: &Datagram<'_>,
        hdr: &Header<&[u8]>,
    ) -> Fate {
        let Some(payloads) = hdr
            .message()
            .get(HEADER_LEN..)
            .and_then(|c| parse_chain(hdr.next_payload(), c).ok())
        else {
            self.stats.drop(IkeDrop::Malformed);
            return Fate::Keep;
        };
        if let Some(c) = notify(&payloads, NotifyType::COOKIE) {
            if sa.cookie.as_deref() == Some(c.data.as_slice())
                || c.data.is_empty()
                || c.data.len() > 64
            {
                return Fate::Keep; // the same cookie again: leave it to retransmission
            }
            sa.cookie = Some(c.data.clone());
            self.send_init(now, sa);
            return Fate::Keep;
        }
        if let Some(n) = notify(&payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let want = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(Group::from_id);
            let ours = sa
                .peer
                .and_then(|p| self.policies.get(p))
                .is_some_and(|pol| {
                    want.is_some_and(|g| pol.ike_suites.iter().any(|s| s.group == g))
                });
            let current = sa.dh.as_ref().map(|k| k.group());
            match (want, ours) {
                (Some(g), true) if current != Some(g) => {
                    if let Ok(k) = KeyExchange::generate(g, self.rng.as_ref()) {
                        sa.dh = Some(k);
                        self.send_init(now, sa);
                        return Fate::Keep;
                    }
                }
                _ => {}
            }
            self.stats
                .initiated(ExchangeType::IKE_SA_INIT, Outcome::Error);
            return Fate::Down(DownReason::Failed);
        }
        if error_notify(&payloads).is_some() {
            self.stats
                .initiated(ExchangeType::IKE_SA_INIT, Outcome::Error);
            return Fate::Down(DownReason::Failed);
        }
        let Some(pol) = sa.peer.and_then(|p| self.policies.get(p)) else {
            return Fate::Down(DownReason::Failed);
        };
        let suite = sa_of(&payloads).and_then(|o| accepted_ike(o, &pol.ike_suites));
        let (Some(suite), Some((group, ke)), Some(nr)) =
            (suite, ke_of(&payloads), nonce_of(&payloads))
        else {
            self.stats
                .initiated(ExchangeType::IKE_SA_INIT, Outcome::Error);
            return Fate::Down(DownReason::Failed);
        };
        let spi_r = hdr.spi_r();
        let dh = sa.dh.take();
        let ok_group =
            dh.as_ref().is_some_and(|k| k.group() == suite.group) && group == suite.group.id();
        let g_ir = match dh {
            Some(k) if ok_group && spi_r != 0 => k.agree(ke).ok(),
            _ => None,
        };
        let keys = g_ir.and_then(|g| suite.derive(&sa.ni, nr, &g, sa.spi_i, spi_r).ok());
        let ciphers = keys.as_ref().and_then(|k| suite.ciphers(k).ok());
        let (Some(keys), Some((i_to_r, r_to_i))) = (keys, ciphers) else {
            self.stats
                .initiated(ExchangeType::IKE_SA_INIT, Outcome::Error);
            return Fate::Down(DownReason::Failed);
        };
        sa.inflight = None;
        sa.spi_r = spi_r;
        sa.nr = nr.to_vec();
        sa.init_resp = hdr.message().to_vec();
        sa.frag = notify(&payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let src_hashes = nat_hashes(&payloads, NotifyType::NAT_DETECTION_SOURCE_IP);
        let dst_hashes = nat_hashes(&payloads, NotifyType::NAT_DETECTION_DESTINATION_IP);
        if !src_hashes.is_empty() && !dst_hashes.is_empty() {
            let theirs = nat_detection_hash(sa.spi_i, spi_r, d.remote);
            let ours = nat_detection_hash(sa.spi_i, spi_r, d.local);
            sa.nat_there = !src_hashes.contains(&theirs.as_slice());
            sa.nat_here = !dst_hashes.contains(&ours.as_slice());
        }
        if d.local.ip() != &Ipv4Addr::UNSPECIFIED {
            sa.local = d.local;
        }
        if sa.nat_here || sa.nat_there {
            // RFC 7296 §2.23: continue on port 4500 with UDP-encapsulated ESP.
            sa.natt = true;
            sa.remote = SocketAddrV4::new(*sa.remote.ip(), self.cfg.natt_port);
            sa.local = SocketAddrV4::new(*sa.local.ip(), self.cfg.natt_port);
        }
        sa.prot = Some(Protection {
            suite,
            keys,
            tx: i_to_r,
            rx: r_to_i,
        });
        sa.state = IkeState::AuthSent;
        self.stats.initiated(ExchangeType::IKE_SA_INIT, Outcome::Ok);
        self.key_log_ike(sa);
        self.send_auth(now, sa)
    }

    /// CERTREQ data: SHA-1 hashes of our trust anchors' public keys.
    pub(super) fn ca_key_ids(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.policies {
            if let RemoteAuth::Cert(a) = &p.remote_auth {
                for id in a.key_ids() {
                    if !out.chunks(20).any(|w| w == id.as_slice()) {
                        out.extend_from_slice(id);
                    }
                }
            }
        }
        out
    }
}
