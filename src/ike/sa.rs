//! The state of one IKE SA and its CHILD_SAs. The exchanges that change it
//! live in `exchange/`; the table of SAs, timers and I/O hand-off in `engine`.

use super::crypto::{EspSuite, IkeKeys, IkeSuite, KeyExchange, SkCipher};
use super::message::Reassembly;
use crate::wire::ike::{ExchangeType, TrafficSelector};
use std::net::SocketAddrV4;

/// Which side started the IKE SA (after an IKE SA rekey: which side started
/// the rekey). It decides the I flag, the SPI order and the key directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent IKE_SA_INIT (or the rekeying CREATE_CHILD_SA).
    Initiator,
    /// The peer did.
    Responder,
}

/// Where an IKE SA is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeState {
    /// Initiator: IKE_SA_INIT sent, no answer yet.
    InitSent,
    /// Responder: IKE_SA_INIT answered, IKE_AUTH not yet received (half-open).
    HalfOpen,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Authenticated.
    Established,
    /// Replaced by a rekey or being deleted: only the DELETE exchange runs.
    Deleting,
}

impl IkeState {
    /// Every state, for exporting gauges.
    pub const ALL: [IkeState; 5] = [
        IkeState::InitSent,
        IkeState::HalfOpen,
        IkeState::AuthSent,
        IkeState::Established,
        IkeState::Deleting,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            IkeState::InitSent => "init_sent",
            IkeState::HalfOpen => "half_open",
            IkeState::AuthSent => "auth_sent",
            IkeState::Established => "established",
            IkeState::Deleting => "deleting",
        }
    }
}

/// Where a CHILD_SA is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Carrying traffic.
    Installed,
    /// Our rekey of it is in flight.
    Rekeying,
    /// Replaced by a newer CHILD_SA; waits for its DELETE.
    Rekeyed,
    /// Our DELETE for it is in flight.
    Deleting,
}

impl ChildState {
    /// Every state, for exporting gauges.
    pub const ALL: [ChildState; 4] = [
        ChildState::Installed,
        ChildState::Rekeying,
        ChildState::Rekeyed,
        ChildState::Deleting,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            ChildState::Installed => "installed",
            ChildState::Rekeying => "rekeying",
            ChildState::Rekeyed => "rekeyed",
            ChildState::Deleting => "deleting",
        }
    }
}

/// One CHILD_SA (a pair of ESP SAs).
#[derive(Debug, Clone)]
pub struct ChildSa {
    /// Our inbound SPI.
    pub inbound_spi: u32,
    /// The peer's inbound SPI (we send with it).
    pub outbound_spi: u32,
    /// Negotiated ESP suite.
    pub suite: EspSuite,
    /// Our side's selectors.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// State.
    pub state: ChildState,
    /// When to start a rekey (ms), if this side rekeys.
    pub rekey_at: Option<u64>,
    /// When to delete it if no rekey replaced it.
    pub hard_at: Option<u64>,
}

/// A request we sent and have not had answered.
pub struct Inflight {
    /// Its message ID.
    pub id: u32,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// The datagrams (several when fragmented), resent as they are.
    pub datagrams: Vec<Vec<u8>>,
    /// Retransmissions so far.
    pub tries: u32,
    /// When to retransmit next (ms).
    pub next_at: u64,
    /// What the answer completes.
    pub pending: Pending,
}

/// What a request in flight is for.
pub enum Pending {
    /// IKE_SA_INIT (initiator).
    Init,
    /// IKE_AUTH with the first CHILD_SA; our inbound SPI for it.
    Auth {
        /// Our new inbound SPI.
        spi: u32,
    },
    /// CREATE_CHILD_SA for a new or rekeyed CHILD_SA.
    Child {
        /// Our new inbound SPI.
        spi: u32,
        /// Inbound SPI of the CHILD_SA being rekeyed.
        rekey_of: Option<u32>,
        /// Our nonce.
        nonce: Vec<u8>,
        /// Our key exchange, when PFS is used.
        dh: Option<KeyExchange>,
    },
    /// CREATE_CHILD_SA rekeying the IKE SA.
    IkeRekey {
        /// The new IKE SA's initiator SPI (ours).
        spi: u64,
        /// Our nonce.
        nonce: Vec<u8>,
        /// Our key exchange.
        dh: Option<KeyExchange>,
    },
    /// INFORMATIONAL deleting these CHILD_SAs (our inbound SPIs).
    DeleteChildren(Vec<u32>),
    /// INFORMATIONAL deleting this IKE SA.
    DeleteIke,
    /// INFORMATIONAL liveness check.
    Dpd,
}

/// Work this SA will start when no request of ours is in flight (window 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Rekey the CHILD_SA with this inbound SPI.
    RekeyChild(u32),
    /// Rekey the IKE SA.
    RekeyIke,
    /// Delete CHILD_SAs (our inbound SPIs).
    DeleteChildren(Vec<u32>),
    /// Delete the IKE SA.
    DeleteIke,
    /// Liveness check.
    Dpd,
}

/// Keys and ciphers once IKE_SA_INIT completed.
pub struct Protection {
    /// Negotiated suite.
    pub suite: IkeSuite,
    /// The seven keys.
    pub keys: IkeKeys,
    /// Protects what we send.
    pub tx: SkCipher,
    /// Opens what we receive.
    pub rx: SkCipher,
}

/// One IKE SA.
pub struct IkeSa {
    /// Which side started it.
    pub role: Role,
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI (0 until IKE_SA_INIT is answered).
    pub spi_r: u64,
    /// State.
    pub state: IkeState,
    /// Index of the peer policy (a responder learns it in IKE_AUTH).
    pub peer: Option<usize>,
    /// Our address and port for IKE.
    pub local: SocketAddrV4,
    /// The peer's address and port for IKE.
    pub remote: SocketAddrV4,
    /// A NAT is in front of us (NAT_DETECTION_DESTINATION_IP mismatched).
    pub nat_here: bool,
    /// A NAT is in front of the peer.
    pub nat_there: bool,
    /// IKE runs on port 4500 and ESP is UDP-encapsulated.
    pub natt: bool,
    /// The peer can take fragmented messages (RFC 7383).
    pub frag: bool,
    /// Initiator's nonce.
    pub ni: Vec<u8>,
    /// Responder's nonce.
    pub nr: Vec<u8>,
    /// IKE_SA_INIT request and response as sent (for AUTH).
    pub init_req: Vec<u8>,
    /// See `init_req`.
    pub init_resp: Vec<u8>,
    /// Initiator: our key exchange until the response arrives.
    pub dh: Option<KeyExchange>,
    /// Initiator: cookie to echo (RFC 7296 §2.6).
    pub cookie: Option<Vec<u8>>,
    /// Keys, once derived.
    pub prot: Option<Protection>,
    /// IV counter for our SK payloads.
    pub iv: u64,
    /// Next message ID for our requests.
    pub next_id: u32,
    /// Our request in flight.
    pub inflight: Option<Inflight>,
    /// Queued work of ours.
    pub tasks: std::collections::VecDeque<Task>,
    /// Next message ID expected from the peer.
    pub expect_id: u32,
    /// Our last response (ID and datagrams), resent for a duplicate request.
    pub last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// Fragments of a request being reassembled.
    pub reasm_req: Reassembly,
    /// Fragments of a response being reassembled.
    pub reasm_resp: Reassembly,
    /// CHILD_SAs.
    pub children: Vec<ChildSa>,
    /// Initiator: the first CHILD_SA's selectors as offered.
    pub offered_ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
    /// When it was created (ms).
    pub created_at: u64,
    /// Last authenticated message from the peer (ms).
    pub last_rx: u64,
    /// When to rekey the IKE SA.
    pub rekey_at: Option<u64>,
    /// When a responder's half-open SA or a deleting SA is given up.
    pub expire_at: Option<u64>,
    /// Replaced by a rekeyed IKE SA (its CHILD_SAs moved there).
    pub rekeyed: bool,
    /// Responder: the (initiator SPI, source) its IKE_SA_INIT came with.
    pub init_key: Option<(u64, SocketAddrV4)>,
}

impl IkeSa {
    /// A fresh SA.
    pub fn new(
        role: Role,
        spi_i: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        now: u64,
    ) -> IkeSa {
        IkeSa {
            role,
            spi_i,
            spi_r: 0,
            state: match role {
                Role::Initiator => IkeState::InitSent,
                Role::Responder => IkeState::HalfOpen,
            },
            peer: None,
            local,
            remote,
            nat_here: false,
            nat_there: false,
            natt: false,
            frag: false,
            ni: Vec::new(),
            nr: Vec::new(),
            init_req: Vec::new(),
            init_resp: Vec::new(),
            dh: None,
            cookie: None,
            prot: None,
            iv: 0,
            next_id: 0,
            inflight: None,
            tasks: Default::default(),
            expect_id: 0,
            last_response: None,
            reasm_req: Reassembly::default(),
            reasm_resp: Reassembly::default(),
            children: Vec::new(),
            offered_ts: (Vec::new(), Vec::new()),
            created_at: now,
            last_rx: now,
            rekey_at: None,
            expire_at: None,
            rekeyed: false,
            init_key: None,
        }
    }

    /// Our SPI: the key of this SA in the engine's table.
    pub fn local_spi(&self) -> u64 {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    /// The CHILD_SA with this inbound SPI.
    pub fn child(&mut self, inbound: u32) -> Option<&mut ChildSa> {
        self.children.iter_mut().find(|c| c.inbound_spi == inbound)
    }

    /// The CHILD_SA the peer knows by its inbound SPI (our outbound).
    pub fn child_by_outbound(&mut self, outbound: u32) -> Option<&mut ChildSa> {
        self.children
            .iter_mut()
            .find(|c| c.outbound_spi == outbound)
    }
}
