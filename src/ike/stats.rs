//! What the IKE engine counts. Labels are the metric label values.

use crate::wire::ike::{ExchangeType, NotifyType};

/// Why a received IKE datagram was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeDrop {
    /// Not a well-formed IKE message or payload chain.
    Malformed,
    /// Major version other than 2.
    Version,
    /// No IKE SA with this SPI.
    UnknownSpi,
    /// SK/SKF integrity check failed.
    Integrity,
    /// Message ID outside the window.
    MessageId,
    /// An exchange that is not valid in the SA's state.
    State,
    /// Too many half-open SAs, or too many from this source.
    HalfOpenLimit,
    /// Too many IKE SAs in total.
    SaLimit,
    /// Fragment numbering or size out of bounds.
    Fragment,
    /// Our answer could not be built.
    Internal,
}

impl IkeDrop {
    /// Every reason, in index order.
    pub const ALL: [IkeDrop; 10] = [
        IkeDrop::Malformed,
        IkeDrop::Version,
        IkeDrop::UnknownSpi,
        IkeDrop::Integrity,
        IkeDrop::MessageId,
        IkeDrop::State,
        IkeDrop::HalfOpenLimit,
        IkeDrop::SaLimit,
        IkeDrop::Fragment,
        IkeDrop::Internal,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            IkeDrop::Malformed => "malformed",
            IkeDrop::Version => "bad_version",
            IkeDrop::UnknownSpi => "unknown_spi",
            IkeDrop::Integrity => "integrity",
            IkeDrop::MessageId => "message_id",
            IkeDrop::State => "unexpected_exchange",
            IkeDrop::HalfOpenLimit => "half_open_limit",
            IkeDrop::SaLimit => "sa_limit",
            IkeDrop::Fragment => "fragment",
            IkeDrop::Internal => "internal",
        }
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed.
    Ok,
    /// Answered with (or by) an error notification, or authentication failed.
    Error,
    /// No answer after every retransmission.
    Timeout,
}

impl Outcome {
    /// Every outcome, in index order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Timeout];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The exchanges counted, in index order.
pub const EXCHANGES: [ExchangeType; 4] = [
    ExchangeType::IKE_SA_INIT,
    ExchangeType::IKE_AUTH,
    ExchangeType::CREATE_CHILD_SA,
    ExchangeType::INFORMATIONAL,
];

/// Metric label of an exchange type.
pub fn exchange_label(e: ExchangeType) -> &'static str {
    match e {
        ExchangeType::IKE_SA_INIT => "ike_sa_init",
        ExchangeType::IKE_AUTH => "ike_auth",
        ExchangeType::CREATE_CHILD_SA => "create_child_sa",
        ExchangeType::INFORMATIONAL => "informational",
        _ => "other",
    }
}

/// Error notifications counted by type when we answer a request with one
/// (RFC 7296 §3.10.1), in index order; any other type counts as `other`.
pub const ERRORS_SENT: [NotifyType; 9] = [
    NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
    NotifyType::INVALID_SYNTAX,
    NotifyType::NO_PROPOSAL_CHOSEN,
    NotifyType::INVALID_KE_PAYLOAD,
    NotifyType::AUTHENTICATION_FAILED,
    NotifyType::NO_ADDITIONAL_SAS,
    NotifyType::TS_UNACCEPTABLE,
    NotifyType::TEMPORARY_FAILURE,
    NotifyType::CHILD_SA_NOT_FOUND,
];

/// Metric label of `ERRORS_SENT[i]` (the RFC name), `other` past the end.
pub fn error_sent_label(i: usize) -> &'static str {
    ERRORS_SENT.get(i).and_then(|t| t.name()).unwrap_or("other")
}

/// Which side started something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This endpoint.
    Local,
    /// The peer.
    Peer,
}

/// How a peer proved its identity in IKE_AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAuth {
    /// Pre-shared key.
    Psk,
    /// Signature by a certificate's ECDSA P-256 key.
    Ecdsa,
    /// Signature by a certificate's RSA key.
    Rsa,
}

impl PeerAuth {
    /// Every method, in index order.
    pub const ALL: [PeerAuth; 3] = [PeerAuth::Psk, PeerAuth::Ecdsa, PeerAuth::Rsa];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            PeerAuth::Psk => "psk",
            PeerAuth::Ecdsa => "ecdsa",
            PeerAuth::Rsa => "rsa",
        }
    }
}

/// Counters of the IKE engine.
#[derive(Debug, Clone, Default)]
pub struct IkeStats {
    /// Exchanges by `EXCHANGES` index, then by `Outcome::ALL` index, as initiator.
    pub initiated: [[u64; 3]; 4],
    /// The same, as responder.
    pub answered: [[u64; 3]; 4],
    /// Dropped datagrams by `IkeDrop::ALL` index.
    pub drops: [u64; 10],
    /// Requests retransmitted.
    pub retransmits: u64,
    /// Duplicate requests answered from the response cache.
    pub cached_responses: u64,
    /// Authentication failures (ours to verify, or reported by the peer).
    pub auth_failures: u64,
    /// Peers authenticated, by `PeerAuth::ALL` index.
    pub peer_auths: [u64; 3],
    /// COOKIE notifications sent.
    pub cookies_sent: u64,
    /// INVALID_KE_PAYLOAD notifications sent.
    pub invalid_ke_sent: u64,
    /// Requests answered with an error notification, by `ERRORS_SENT`
    /// index (the last entry: any other type).
    pub errors_sent: [u64; ERRORS_SENT.len() + 1],
    /// CHILD_SA rekeys completed, [started here, started by the peer].
    pub child_rekeys: [u64; 2],
    /// IKE SA rekeys completed, [started here, started by the peer].
    pub ike_rekeys: [u64; 2],
    /// Inbound SPIs derived from the peer's SPI (we answered a proposal).
    pub spis_derived: u64,
    /// Inbound SPIs chosen at random (we proposed).
    pub spis_random: u64,
    /// SPI derivations refused (no usable SPI).
    pub spi_failures: u64,
    /// IKE SAs declared dead (no answer to a request, DPD included).
    pub dead_peers: u64,
    /// Half-open SAs that expired without IKE_AUTH.
    pub half_open_expired: u64,
    /// CHILD_SA requests refused: the IKE SA holds `max_child_sas`.
    pub child_limit: u64,
    /// IKE SAs replaced because their peer reached `max_ike_sas_per_peer`.
    pub peer_limit: u64,
}

fn index_of(e: ExchangeType) -> Option<usize> {
    EXCHANGES.iter().position(|x| *x == e)
}

impl IkeStats {
    /// Counts a dropped datagram.
    pub fn drop(&mut self, d: IkeDrop) {
        if let Some(i) = IkeDrop::ALL.iter().position(|x| *x == d) {
            if let Some(c) = self.drops.get_mut(i) {
                *c += 1;
            }
        }
    }

    /// Counts an answer carrying error notification `ty`.
    pub fn error_sent(&mut self, ty: NotifyType) {
        let i = ERRORS_SENT
            .iter()
            .position(|x| *x == ty)
            .unwrap_or(ERRORS_SENT.len());
        if let Some(c) = self.errors_sent.get_mut(i) {
            *c += 1;
        }
    }

    /// Counts an exchange we started.
    pub fn initiated(&mut self, e: ExchangeType, o: Outcome) {
        Self::count(&mut self.initiated, e, o);
    }

    /// Counts an exchange we answered.
    pub fn answered(&mut self, e: ExchangeType, o: Outcome) {
        Self::count(&mut self.answered, e, o);
    }

    fn count(t: &mut [[u64; 3]; 4], e: ExchangeType, o: Outcome) {
        let oi = Outcome::ALL.iter().position(|x| *x == o);
        if let (Some(ei), Some(oi)) = (index_of(e), oi) {
            if let Some(c) = t.get_mut(ei).and_then(|r| r.get_mut(oi)) {
                *c += 1;
            }
        }
    }

    /// Counts a peer that proved its identity with `how`.
    pub fn peer_authenticated(&mut self, how: PeerAuth) {
        if let Some(i) = PeerAuth::ALL.iter().position(|x| *x == how) {
            if let Some(c) = self.peer_auths.get_mut(i) {
                *c += 1;
            }
        }
    }

    /// Counts a rekey.
    pub fn rekeyed(&mut self, ike: bool, side: Side) {
        let t = if ike {
            &mut self.ike_rekeys
        } else {
            &mut self.child_rekeys
        };
        t[usize::from(side == Side::Peer)] += 1;
    }
}
