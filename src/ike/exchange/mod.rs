//! The four IKEv2 exchanges (RFC 7296 §1), both sides of each, as methods
//! of the engine: `init` (IKE_SA_INIT), `auth` (IKE_AUTH), `child`
//! (CREATE_CHILD_SA for CHILD_SAs and IKE SA rekeys), `info`
//! (INFORMATIONAL). This file dispatches and builds messages.

mod auth;
mod child;
mod info;
mod init;
mod tasks;

use super::engine::{Datagram, DownReason, Engine, Event, Fate};
use super::message::{self, Opened, ProtectError};
use super::sa::{IkeSa, IkeState, Inflight, Pending, Role};
use super::stats::{IkeDrop, Outcome};
use crate::wire::ike::{
    ExchangeType, Flags, Header, HeaderRepr, Notify, NotifyType, Payload, PayloadType, ProtocolId,
};
use std::net::SocketAddrV4;

/// A notification of type `ty` in `payloads`.
pub(super) fn notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

/// The first error notification in `payloads`.
pub(super) fn error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty.is_error() => Some(n.ty),
        _ => None,
    })
}

/// An unknown payload with the critical bit set (RFC 7296 §2.5).
pub(super) fn unsupported_critical(payloads: &[Payload]) -> Option<PayloadType> {
    payloads.iter().find_map(|p| match p {
        Payload::Unknown { ty, critical, .. } if *critical => Some(*ty),
        _ => None,
    })
}

/// An error notification payload.
pub(super) fn error(ty: NotifyType) -> Payload {
    Payload::Notify(Notify::error(ty))
}

/// A status notification about a CHILD_SA (protocol ESP, 4-byte SPI).
pub(super) fn esp_notify(ty: NotifyType, spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        ty,
        data: Vec::new(),
    })
}

impl Engine {
    /// Header of a message of ours on `sa`.
    pub(super) fn header(
        sa: &IkeSa,
        exchange: ExchangeType,
        response: bool,
        id: u32,
    ) -> HeaderRepr {
        let mut f = 0;
        if sa.role == Role::Initiator {
            f |= Flags::INITIATOR;
        }
        if response {
            f |= Flags::RESPONSE;
        }
        HeaderRepr {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: PayloadType::NONE,
            exchange,
            flags: Flags(f),
            message_id: id,
            length: 0,
        }
    }

    fn seal(
        &mut self,
        sa: &mut IkeSa,
        hdr: HeaderRepr,
        payloads: &[Payload],
    ) -> Option<Vec<Vec<u8>>> {
        let max = sa.frag.then_some(self.cfg.fragment_len);
        let prot = sa.prot.as_ref()?;
        match message::seal(hdr, payloads, &prot.tx, &mut sa.iv, self.rng.as_ref(), max) {
            Ok(d) => Some(d),
            Err(_) => {
                self.stats.drop(IkeDrop::Internal);
                None
            }
        }
    }

    /// Sends a protected response to request `id` and caches it for
    /// retransmitted requests.
    pub(super) fn respond(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        id: u32,
        payloads: &[Payload],
    ) {
        let hdr = Self::header(sa, exchange, true, id);
        let Some(d) = self.seal(sa, hdr, payloads) else {
            return;
        };
        self.send(sa, &d);
        sa.last_response = Some((id, d));
        sa.expect_id = id.wrapping_add(1);
        let outcome = match error_notify(payloads) {
            Some(ty) => {
                self.stats.error_sent(ty);
                Outcome::Error
            }
            None => Outcome::Ok,
        };
        self.stats.answered(exchange, outcome);
    }

    /// Sends a protected request and keeps it in flight.
    pub(super) fn request(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        payloads: &[Payload],
        pending: Pending,
    ) -> bool {
        let id = sa.next_id;
        let hdr = Self::header(sa, exchange, false, id);
        let Some(d) = self.seal(sa, hdr, payloads) else {
            return false;
        };
        self.send(sa, &d);
        sa.next_id = id.wrapping_add(1);
        sa.inflight = Some(Inflight {
            id,
            exchange,
            datagrams: d,
            tries: 0,
            next_at: now.saturating_add(self.cfg.retransmit_base_ms),
            pending,
        });
        true
    }

    /// Opens a protected message; `None` when dropped or incomplete.
    fn open(
        &mut self,
        sa: &mut IkeSa,
        hdr: &Header<&[u8]>,
        response: bool,
    ) -> Option<Vec<crate::wire::ike::Payload>> {
        let prot = sa.prot.as_ref()?;
        let reasm = if response {
            &mut sa.reasm_resp
        } else {
            &mut sa.reasm_req
        };
        match message::open(hdr, &prot.rx, reasm) {
            Ok(Opened::Complete(p)) => Some(p),
            Ok(Opened::Partial) => None,
            Err(e) => {
                self.stats.drop(match e {
                    ProtectError::Integrity => IkeDrop::Integrity,
                    ProtectError::Fragment => IkeDrop::Fragment,
                    ProtectError::Internal => IkeDrop::Internal,
                    ProtectError::Malformed | ProtectError::NotEncrypted => IkeDrop::Malformed,
                });
                None
            }
        }
    }

    /// A request on an existing SA.
    pub(crate) fn on_request(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        d: &Datagram<'_>,
        hdr: &Header<&[u8]>,
    ) -> Fate {
        let id = hdr.message_id();
        if let Some((last, dgrams)) = &sa.last_response {
            if *last == id {
                let dgrams = dgrams.clone();
                self.send(sa, &dgrams);
                self.stats.cached_responses += 1;
                return Fate::Keep;
            }
        }
        if id != sa.expect_id {
            self.stats.drop(IkeDrop::MessageId);
            return Fate::Keep;
        }
        let exchange = hdr.exchange();
        let allowed = matches!(
            (exchange, sa.state),
            (ExchangeType::IKE_AUTH, IkeState::HalfOpen)
                | (ExchangeType::CREATE_CHILD_SA, IkeState::Established)
                | (
                    ExchangeType::INFORMATIONAL,
                    IkeState::Established | IkeState::Deleting
                )
        );
        if !allowed {
            self.stats.drop(IkeDrop::State);
            return Fate::Keep;
        }
        let Some(payloads) = self.open(sa, hdr, false) else {
            return Fate::Keep;
        };
        sa.last_rx = now;
        self.follow_peer(sa, d);
        if let Some(ty) = unsupported_critical(&payloads) {
            let n = Payload::Notify(Notify {
                protocol: ProtocolId(0),
                spi: Vec::new(),
                ty: NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                data: vec![ty.0],
            });
            self.respond(sa, exchange, id, &[n]);
            // A half-open SA cannot continue without its IKE_AUTH.
            if sa.state == IkeState::HalfOpen {
                return Fate::Down(DownReason::Failed);
            }
            return Fate::Keep;
        }
        match exchange {
            ExchangeType::IKE_AUTH => self.auth_request(now, sa, id, &payloads),
            ExchangeType::CREATE_CHILD_SA => {
                self.child_request(now, sa, id, &payloads);
                Fate::Keep
            }
            _ => self.info_request(now, sa, id, &payloads),
        }
    }

    /// A response to our request in flight.
    pub(crate) fn on_response(
        &mut self,
        now: u64,
        sa: &mut IkeSa,
        d: &Datagram<'_>,
        hdr: &Header<&[u8]>,
    ) -> Fate {
        let matches = sa
            .inflight
            .as_ref()
            .is_some_and(|i| i.id == hdr.message_id() && i.exchange == hdr.exchange());
        if !matches {
            self.stats.drop(IkeDrop::MessageId);
            return Fate::Keep;
        }
        if hdr.exchange() == ExchangeType::IKE_SA_INIT {
            return self.init_response(now, sa, d, hdr);
        }
        let Some(payloads) = self.open(sa, hdr, true) else {
            return Fate::Keep;
        };
        sa.last_rx = now;
        let Some(inflight) = sa.inflight.take() else {
            return Fate::Keep;
        };
        let exchange = inflight.exchange;
        let outcome = if error_notify(&payloads).is_some() {
            Outcome::Error
        } else {
            Outcome::Ok
        };
        if exchange != ExchangeType::IKE_AUTH {
            self.stats.initiated(exchange, outcome);
        }
        let fate = match inflight.pending {
            Pending::Auth { spi } => self.auth_response(now, sa, spi, &payloads),
            Pending::Child {
                spi,
                rekey_of,
                nonce,
                dh,
            } => {
                self.child_response(now, sa, spi, rekey_of, nonce, dh, &payloads);
                Fate::Keep
            }
            Pending::IkeRekey { spi, nonce, dh } => {
                self.ike_rekey_response(now, sa, spi, nonce, dh, &payloads);
                Fate::Keep
            }
            Pending::DeleteChildren(spis) => {
                self.children_deleted(sa, &spis);
                Fate::Keep
            }
            // Our IKE SA delete was answered: gone (as replaced, when it was).
            Pending::DeleteIke => Fate::Down(if sa.rekeyed {
                DownReason::Rekeyed
            } else {
                DownReason::Deleted
            }),
            Pending::Dpd | Pending::Init => Fate::Keep,
        };
        if fate == Fate::Keep {
            self.run_tasks(now, sa);
        }
        fate
    }

    /// RFC 7296 §2.23: an authenticated request from a new address moves
    /// the SA when the peer is behind a NAT (its mapping changed), and a
    /// request on the NAT-T port means the peer floated.
    fn follow_peer(&mut self, sa: &mut IkeSa, d: &Datagram<'_>) {
        // A message to our NAT-T port moves our side of the SA to UDP
        // encapsulation: answer and send on the port it came from (RFC 7296
        // §2.23), not on the peer's IKE port with a non-ESP marker.
        if d.local.port() == self.cfg.natt_port && !sa.natt {
            sa.natt = true;
            sa.remote = SocketAddrV4::new(*sa.remote.ip(), d.remote.port());
        }
        if d.remote == sa.remote {
            return;
        }
        let floated = sa.state == IkeState::HalfOpen;
        if floated || (sa.natt && sa.nat_there) {
            sa.remote = d.remote;
            if let (Some(peer), false) = (sa.peer, floated) {
                self.events.push_back(Event::PeerMoved {
                    peer,
                    remote: d.remote,
                    udp: true,
                });
            }
        }
    }
}
