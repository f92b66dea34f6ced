//! The IKE engine: every IKE SA of this endpoint, keyed by our SPI. It takes
//! datagrams and time in and hands out datagrams to send and events for the
//! daemon (CHILD_SAs to install or remove); it does no I/O and reads no
//! clock (quinn-proto style: `handle`, `handle_timeout`, `poll_*`).

use super::cookie::CookieJar;
use super::crypto::{EspKeys, EspSuite};
use super::policy::PeerPolicy;
use super::sa::{IkeSa, IkeState, Role, Task};
use super::stats::{IkeDrop, IkeStats};
use super::table::SaTable;
use crate::spi::SpiAllocator;
use crate::wire::ike::{ExchangeType, Header};
use ipnet::Ipv4Net;
use ring::rand::SecureRandom;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Limits and timers of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// IKE port (500).
    pub ike_port: u16,
    /// NAT traversal port (4500).
    pub natt_port: u16,
    /// First retransmission timeout (ms); doubles each time.
    pub retransmit_base_ms: u64,
    /// Largest retransmission timeout (ms).
    pub retransmit_max_ms: u64,
    /// Retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// A responder's half-open SA is dropped after this long (ms).
    pub half_open_timeout_ms: u64,
    /// Half-open SAs at which IKE_SA_INIT requests need a cookie.
    pub cookie_threshold: usize,
    /// Most half-open SAs in total.
    pub max_half_open: usize,
    /// Most half-open SAs from one source address.
    pub max_half_open_per_source: usize,
    /// Most IKE SAs in total.
    pub max_ike_sas: usize,
    /// Most IKE SAs one peer may hold; a new one replaces its oldest.
    pub max_ike_sas_per_peer: usize,
    /// Most CHILD_SAs in one IKE SA (rekeys included while they overlap);
    /// more are refused with NO_ADDITIONAL_SAS.
    pub max_child_sas: usize,
    /// IKE messages longer than this are fragmented (RFC 7383) when the peer
    /// supports it (bytes of the IKE message, without IP/UDP headers).
    pub fragment_len: usize,
    /// An initiator starts again this long after its IKE SA failed (ms).
    pub restart_delay_ms: u64,
    /// Cookie secret lifetime (ms).
    pub cookie_rotate_ms: u64,
    /// Unix time (seconds) at `now = 0`, for certificate validity.
    pub unix_at_zero: u64,
    /// Emit key log lines for tshark (`Event::KeyLog`).
    pub key_log: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ike_port: crate::wire::ike::IKE_PORT,
            natt_port: crate::wire::ike::NAT_T_PORT,
            retransmit_base_ms: 1000,
            retransmit_max_ms: 16_000,
            retransmit_tries: 5,
            half_open_timeout_ms: 30_000,
            cookie_threshold: 32,
            max_half_open: 4096,
            max_half_open_per_source: 16,
            max_ike_sas: 65_536,
            max_ike_sas_per_peer: 4,
            max_child_sas: 8,
            fragment_len: 1280 - 20 - 8 - 4,
            restart_delay_ms: 2000,
            cookie_rotate_ms: 300_000,
            unix_at_zero: 0,
            key_log: false,
        }
    }
}

/// A datagram received on an IKE port (the non-ESP marker removed on 4500).
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Our address and port it arrived on.
    pub local: SocketAddrV4,
    /// Where it came from.
    pub remote: SocketAddrV4,
    /// The IKE message.
    pub data: &'a [u8],
}

/// A datagram to send. From `local_port` 4500 the daemon puts the non-ESP
/// marker in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our port: 500 or 4500.
    pub local_port: u16,
    /// Destination.
    pub remote: SocketAddrV4,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// A CHILD_SA for the datapath.
pub struct ChildInstall {
    /// Peer policy index.
    pub peer: usize,
    /// Our SPI of the IKE SA it belongs to.
    pub ike: u64,
    /// Our inbound SPI.
    pub inbound_spi: u32,
    /// The peer's inbound SPI.
    pub outbound_spi: u32,
    /// ESP suite.
    pub suite: EspSuite,
    /// Keys for packets we receive.
    pub key_in: EspKeys,
    /// Keys for packets we send.
    pub key_out: EspKeys,
    /// Our networks.
    pub local_ts: Vec<Ipv4Net>,
    /// The peer's networks (allowed inner sources, routes).
    pub remote_ts: Vec<Ipv4Net>,
    /// The peer's outer address (port matters with UDP encapsulation).
    pub remote: SocketAddrV4,
    /// ESP in UDP (RFC 3948).
    pub udp: bool,
    /// We are behind a NAT: send keepalives.
    pub keepalive: bool,
    /// Our inbound SPI was derived from the peer's (we answered the proposal).
    pub derived: bool,
    /// The CHILD_SA this one rekeys (its inbound SPI); it stays until deleted.
    pub replaces: Option<u32>,
    /// Keep sending on the replaced SA until the peer is seen on the new
    /// pair or the old one is deleted. Set on the IKE responder (gateway):
    /// a spimux router in front of the client learns the new pair from the
    /// client's outbound packets, so the client switches first.
    pub defer_outbound: bool,
}

impl std::fmt::Debug for ChildInstall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildInstall")
            .field("peer", &self.peer)
            .field("inbound_spi", &format_args!("{:#010x}", self.inbound_spi))
            .field("outbound_spi", &format_args!("{:#010x}", self.outbound_spi))
            .field("remote", &self.remote)
            .field("udp", &self.udp)
            .field("derived", &self.derived)
            .field("replaces", &self.replaces)
            .finish_non_exhaustive()
    }
}

/// Why an IKE SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Deleted by the peer.
    DeletedByPeer,
    /// Deleted by us.
    Deleted,
    /// Replaced by a rekeyed IKE SA.
    Rekeyed,
    /// No answer to our requests.
    Dead,
    /// Authentication failed (either side).
    AuthFailed,
    /// Negotiation failed (no proposal, bad message).
    Failed,
    /// The peer's INITIAL_CONTACT replaced it.
    Replaced,
    /// Half-open for too long.
    Expired,
}

impl DownReason {
    /// Log and metric label.
    pub fn label(self) -> &'static str {
        match self {
            DownReason::DeletedByPeer => "deleted_by_peer",
            DownReason::Deleted => "deleted",
            DownReason::Rekeyed => "rekeyed",
            DownReason::Dead => "dead_peer",
            DownReason::AuthFailed => "auth_failed",
            DownReason::Failed => "failed",
            DownReason::Replaced => "replaced",
            DownReason::Expired => "expired",
        }
    }
}

/// Key log table (tshark UAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLogTable {
    /// `ikev2_decryption_table`.
    Ike,
    /// `esp_sa`.
    Esp,
}

/// What the daemon has to act on.
#[derive(Debug)]
pub enum Event {
    /// An IKE SA was authenticated.
    IkeUp {
        /// Our SPI.
        ike: u64,
        /// Peer policy index.
        peer: usize,
        /// The peer's IKE address.
        remote: SocketAddrV4,
        /// The peer's identity, as text.
        remote_id: String,
    },
    /// An IKE SA is gone (its CHILD_SAs are reported with `ChildDown` first).
    IkeDown {
        /// Our SPI.
        ike: u64,
        /// Peer policy index, when it was known.
        peer: Option<usize>,
        /// Why.
        reason: DownReason,
    },
    /// Install a CHILD_SA.
    ChildUp(Box<ChildInstall>),
    /// Remove a CHILD_SA.
    ChildDown {
        /// Peer policy index.
        peer: usize,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// The peer's inbound SPI.
        outbound_spi: u32,
    },
    /// The peer's outer address changed for every CHILD_SA of this peer.
    PeerMoved {
        /// Peer policy index.
        peer: usize,
        /// New address.
        remote: SocketAddrV4,
        /// ESP in UDP.
        udp: bool,
    },
    /// A line for tshark's key tables (only with `key_log`).
    KeyLog {
        /// Which table.
        table: KeyLogTable,
        /// The line.
        line: String,
    },
}

/// What happens to an SA after handling something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It stays.
    Keep,
    /// It is gone, for this reason (children reported down).
    Down(DownReason),
}

/// Why `initiate` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitiateError {
    /// No such peer policy, or it has no remote address.
    #[error("peer {0} has no remote address")]
    NoRemote(usize),
    /// Key generation failed.
    #[error("key generation failed")]
    Crypto,
}

/// All IKE SAs of one endpoint.
pub struct Engine {
    pub(super) cfg: EngineConfig,
    pub(super) policies: Vec<PeerPolicy>,
    pub(super) sas: SaTable,
    /// Responder: (initiator SPI, source) → our SPI, to answer a repeated
    /// IKE_SA_INIT from the same SA instead of creating another.
    pub(super) by_init: HashMap<(u64, SocketAddrV4), u64>,
    /// Half-open SAs per source address.
    pub(super) half_open_by_source: HashMap<Ipv4Addr, usize>,
    pub(super) half_open: usize,
    pub(super) spis: SpiAllocator,
    pub(super) cookies: Option<CookieJar>,
    pub(super) rng: Box<dyn SecureRandom + Send + Sync>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
    /// Initiator restarts: (peer policy, when).
    pub(super) restarts: Vec<(usize, u64)>,
    /// Local address each initiated peer used, for restarts.
    pub(super) restart_local: HashMap<usize, Option<Ipv4Addr>>,
    /// Latest time seen (ms).
    pub(super) clock: u64,
    /// Counters.
    pub stats: IkeStats,
}

impl Engine {
    /// An engine for these peers. `spis` allocates ESP inbound SPIs (with
    /// any manually keyed SPIs already reserved); `rng` supplies every random
    /// value (SPIs, nonces, key exchange, IVs).
    pub fn new(
        cfg: EngineConfig,
        policies: Vec<PeerPolicy>,
        spis: SpiAllocator,
        rng: Box<dyn SecureRandom + Send + Sync>,
        now: u64,
    ) -> Engine {
        let cookies = CookieJar::new(rng.as_ref(), now, cfg.cookie_rotate_ms);
        Engine {
            cfg,
            policies,
            sas: SaTable::default(),
            by_init: HashMap::new(),
            half_open_by_source: HashMap::new(),
            half_open: 0,
            spis,
            cookies,
            rng,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            restarts: Vec::new(),
            restart_local: HashMap::new(),
            clock: now,
            stats: IkeStats::default(),
        }
    }

    /// The peer policies.
    pub fn policies(&self) -> &[PeerPolicy] {
        &self.policies
    }

    /// The IKE SAs.
    pub fn sas(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values()
    }

    /// Half-open SAs now.
    pub fn half_open(&self) -> usize {
        self.half_open
    }

    /// The SPI allocator (live ESP SPIs and derivation counts).
    pub fn spis(&self) -> &SpiAllocator {
        &self.spis
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the daemon.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(super) fn random_bytes(&self, n: usize) -> Option<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v).ok()?;
        Some(v)
    }

    pub(super) fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        // A failing system RNG leaves zeros, which every caller refuses.
        let _ = self.rng.fill(&mut b);
        u64::from_be_bytes(b)
    }

    /// A fresh IKE SPI of ours: non-zero and not in the table.
    pub(super) fn new_ike_spi(&self) -> Option<u64> {
        (0..8)
            .map(|_| self.random_u64())
            .find(|s| *s != 0 && !self.sas.contains_key(*s))
    }

    /// Random jitter in `0..=max`.
    pub(super) fn jitter(&self, max: u64) -> u64 {
        match max {
            0 => 0,
            m => self.random_u64() % m.saturating_add(1),
        }
    }

    /// Takes one received datagram.
    pub fn handle(&mut self, now: u64, d: Datagram<'_>) {
        self.clock = self.clock.max(now);
        let Ok(hdr) = Header::new_checked(d.data) else {
            self.stats.drop(IkeDrop::Malformed);
            return;
        };
        if hdr.major_version() != 2 {
            self.stats.drop(IkeDrop::Version);
            return;
        }
        let flags = hdr.flags();
        let exchange = hdr.exchange();
        if exchange == ExchangeType::IKE_SA_INIT && !flags.response() {
            if hdr.spi_r() == 0 && flags.initiator() {
                self.on_init_request(now, &d, &hdr);
            } else {
                self.stats.drop(IkeDrop::Malformed);
            }
            return;
        }
        // The sender's I flag says which SPI is ours.
        let ours = if flags.initiator() {
            hdr.spi_r()
        } else {
            hdr.spi_i()
        };
        let Some(mut sa) = self.sas.remove(ours) else {
            self.stats.drop(IkeDrop::UnknownSpi);
            return;
        };
        let known_pair = sa.spi_i == hdr.spi_i()
            && (sa.spi_r == hdr.spi_r() || exchange == ExchangeType::IKE_SA_INIT);
        let from_peer_role = match sa.role {
            Role::Initiator => !flags.initiator(),
            Role::Responder => flags.initiator(),
        };
        if !known_pair || !from_peer_role {
            self.stats.drop(IkeDrop::UnknownSpi);
            self.store(sa);
            return;
        }
        let fate = if flags.response() {
            self.on_response(now, &mut sa, &d, &hdr)
        } else {
            self.on_request(now, &mut sa, &d, &hdr)
        };
        self.put_back(sa, fate);
    }

    /// Returns an SA to the table, or retires it.
    pub(super) fn put_back(&mut self, sa: IkeSa, fate: Fate) {
        match fate {
            Fate::Keep => self.store(sa),
            Fate::Down(r) => self.down(sa, r),
        }
    }

    /// Puts an SA (back) into the table with its earliest timer.
    pub(super) fn store(&mut self, sa: IkeSa) {
        let deadline = self.next_timer(&sa);
        self.sas.insert(sa, deadline);
    }

    /// Removes an SA for good: its half-open accounting and lookup entries.
    /// CHILD_SAs still in it are reported down.
    pub(super) fn forget(&mut self, mut sa: IkeSa) {
        self.leave_half_open(&mut sa);
        if let Some(k) = sa.init_key.take() {
            self.by_init.remove(&k);
        }
        if let Some(peer) = sa.peer {
            for c in sa.children.drain(..) {
                self.spis.release(c.inbound_spi);
                self.events.push_back(Event::ChildDown {
                    peer,
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                });
            }
        }
    }

    /// Counts an SA out of the half-open set (idempotent).
    pub(super) fn leave_half_open(&mut self, sa: &mut IkeSa) {
        if sa.role == Role::Responder && sa.state == IkeState::HalfOpen && sa.expire_at.is_some() {
            sa.expire_at = None;
            self.half_open = self.half_open.saturating_sub(1);
            let ip = *sa.remote.ip();
            if let Some(n) = self.half_open_by_source.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.half_open_by_source.remove(&ip);
                }
            }
        }
    }

    /// Reports an SA down (children first) and retires it.
    pub(super) fn down(&mut self, sa: IkeSa, reason: DownReason) {
        let (ike, peer, role, now) = (sa.local_spi(), sa.peer, sa.role, sa.last_rx);
        self.forget(sa);
        if reason == DownReason::Dead {
            self.stats.dead_peers += 1;
        }
        self.events.push_back(Event::IkeDown { ike, peer, reason });
        // An initiator's policy may ask to come back by itself; a replaced or
        // rekeyed SA has a successor already.
        let again = !matches!(reason, DownReason::Rekeyed | DownReason::Replaced);
        if let (Role::Initiator, true, Some(p)) = (role, again, peer) {
            let restart = self.policies.get(p).is_some_and(|pol| pol.restart);
            let pending = self.restarts.iter().any(|r| r.0 == p);
            let other = self
                .sas
                .of_peer(p)
                .filter_map(|k| self.sas.get(k))
                .any(|s| s.role == Role::Initiator);
            if restart && !pending && !other {
                let at = self
                    .clock
                    .max(now)
                    .saturating_add(self.cfg.restart_delay_ms);
                self.restarts.push((p, at));
            }
        }
    }

    /// The next time `handle_timeout` has work (no scan: the table keeps
    /// its SAs ordered by their earliest timer).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.sas
            .next_deadline()
            .into_iter()
            .chain(self.restarts.iter().map(|r| r.1))
            .min()
    }

    /// The earliest timer of one SA, computed whenever it is put back.
    pub(super) fn next_timer(&self, sa: &IkeSa) -> Option<u64> {
        let child = sa
            .children
            .iter()
            .flat_map(|c| [c.rekey_at, c.hard_at])
            .flatten()
            .min();
        [
            sa.inflight.as_ref().map(|i| i.next_at),
            sa.expire_at,
            sa.rekey_at,
            self.dpd_at(sa),
            child,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When a liveness check is due for an established SA.
    pub(super) fn dpd_at(&self, sa: &IkeSa) -> Option<u64> {
        let p = self.policies.get(sa.peer?)?;
        (p.dpd_ms > 0 && sa.state == IkeState::Established && sa.inflight.is_none())
            .then_some(sa.last_rx.saturating_add(p.dpd_ms))
    }

    /// Runs what is due at `now`: retransmissions, expiries, rekeys, liveness
    /// checks and restarts.
    pub fn handle_timeout(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        if let Some(j) = self.cookies.as_mut() {
            j.rotate(self.rng.as_ref(), now);
        }
        let (due, later): (Vec<_>, Vec<_>) = self.restarts.drain(..).partition(|r| r.1 <= now);
        self.restarts = later;
        for (peer, _) in due {
            let local = self.restart_local.get(&peer).copied().flatten();
            let _ = self.initiate_at(now, peer, local);
        }
        // Only SAs with a timer due (or tasks queued) are taken out of the table.
        for spi in self.sas.due(now) {
            let Some(mut sa) = self.sas.remove(spi) else {
                continue;
            };
            let fate = self.timers(now, &mut sa);
            self.put_back(sa, fate);
        }
    }

    /// One SA's timers.
    fn timers(&mut self, now: u64, sa: &mut IkeSa) -> Fate {
        if sa.expire_at.is_some_and(|t| t <= now) {
            if sa.state == IkeState::HalfOpen {
                self.stats.half_open_expired += 1;
            }
            return Fate::Down(if sa.rekeyed {
                DownReason::Rekeyed
            } else {
                DownReason::Expired
            });
        }
        if let Some(inf) = sa.inflight.as_mut() {
            if inf.next_at <= now {
                if inf.tries >= self.cfg.retransmit_tries {
                    let exchange = inf.exchange;
                    self.stats
                        .initiated(exchange, super::stats::Outcome::Timeout);
                    return Fate::Down(DownReason::Dead);
                }
                inf.tries += 1;
                let rto = self
                    .cfg
                    .retransmit_base_ms
                    .saturating_mul(1u64 << inf.tries.min(20))
                    .min(self.cfg.retransmit_max_ms);
                inf.next_at = now.saturating_add(rto);
                let port = self.local_port(sa);
                let remote = sa.remote;
                for d in sa.inflight.iter().flat_map(|i| i.datagrams.iter()) {
                    self.transmits.push_back(Transmit {
                        local_port: port,
                        remote,
                        data: d.clone(),
                    });
                }
                self.stats.retransmits += 1;
            }
        }
        if sa.state != IkeState::Established {
            return Fate::Keep;
        }
        if sa.rekey_at.is_some_and(|t| t <= now) {
            sa.rekey_at = None;
            sa.tasks.push_back(Task::RekeyIke);
        }
        for c in &mut sa.children {
            if c.hard_at.is_some_and(|t| t <= now) && c.state != super::sa::ChildState::Deleting {
                c.hard_at = None;
                c.rekey_at = None;
                let spi = c.inbound_spi;
                sa.tasks.push_back(Task::DeleteChildren(vec![spi]));
            } else if c.rekey_at.is_some_and(|t| t <= now)
                && c.state == super::sa::ChildState::Installed
            {
                c.rekey_at = None;
                sa.tasks.push_back(Task::RekeyChild(c.inbound_spi));
            }
        }
        if self.dpd_at(sa).is_some_and(|t| t <= now) && sa.tasks.is_empty() {
            sa.tasks.push_back(Task::Dpd);
        }
        self.run_tasks(now, sa);
        Fate::Keep
    }

    /// Our IKE port for this SA.
    pub(super) fn local_port(&self, sa: &IkeSa) -> u16 {
        if sa.natt {
            self.cfg.natt_port
        } else {
            self.cfg.ike_port
        }
    }

    /// Queues datagrams to the SA's peer.
    pub(super) fn send(&mut self, sa: &IkeSa, datagrams: &[Vec<u8>]) {
        let port = self.local_port(sa);
        for d in datagrams {
            self.transmits.push_back(Transmit {
                local_port: port,
                remote: sa.remote,
                data: d.clone(),
            });
        }
    }

    /// Starts the IKE SA of peer policy `peer` (an initiator's policy, with
    /// a remote address). `local` is our address toward it, used for NAT
    /// detection (`None`: unknown, NAT assumed undetectable on our side).
    pub fn initiate(
        &mut self,
        now: u64,
        peer: usize,
        local: Option<Ipv4Addr>,
    ) -> Result<(), InitiateError> {
        self.clock = self.clock.max(now);
        self.restart_local.insert(peer, local);
        self.initiate_at(now, peer, local)
    }

    /// Asks for a rekey of the CHILD_SA with inbound SPI `spi` now (operator
    /// command or test); false when no established SA holds it.
    pub fn rekey_child(&mut self, now: u64, spi: u32) -> bool {
        self.with_owner(now, |sa| {
            sa.children
                .iter()
                .any(|c| c.inbound_spi == spi)
                .then_some(Task::RekeyChild(spi))
        })
    }

    /// Asks for a rekey of the IKE SA of peer `peer` now.
    pub fn rekey_ike(&mut self, now: u64, peer: usize) -> bool {
        self.with_owner(now, |sa| (sa.peer == Some(peer)).then_some(Task::RekeyIke))
    }

    /// Deletes the IKE SA(s) of peer `peer` (sends DELETE).
    pub fn delete_ike(&mut self, now: u64, peer: usize) -> bool {
        self.with_owner(now, |sa| (sa.peer == Some(peer)).then_some(Task::DeleteIke))
    }

    fn with_owner(&mut self, now: u64, pick: impl Fn(&IkeSa) -> Option<Task>) -> bool {
        let found = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.state == IkeState::Established)
            .find_map(|(k, sa)| pick(sa).map(|t| (k, t)));
        let Some((k, task)) = found else {
            return false;
        };
        if let Some(mut sa) = self.sas.remove(k) {
            sa.tasks.push_back(task);
            self.run_tasks(now, &mut sa);
            self.put_back(sa, Fate::Keep);
        }
        true
    }

    /// Moves every IKE SA of `peer` to a new outer address that a mobility
    /// registration authenticated: with `udp`, IKE goes to `remote` itself
    /// (the peer's UDP-encapsulation port, behind a NAT a mapped one);
    /// otherwise to `remote`'s address on the IKE port. The caller moved the
    /// CHILD_SAs' traffic already, so no event is queued. Returns how many
    /// IKE SAs moved.
    pub fn move_peer(&mut self, peer: usize, remote: SocketAddrV4, udp: bool) -> usize {
        let port = if udp {
            remote.port()
        } else {
            self.cfg.ike_port
        };
        let to = SocketAddrV4::new(*remote.ip(), port);
        self.sas.for_peer_mut(peer, |sa| {
            sa.remote = to;
            sa.natt = udp;
        })
    }

    /// Takes new limits, timers and peer policies (a configuration reload).
    /// The peers must be the same, in the same order (by name): SAs refer
    /// to them by index. Established SAs keep their keys, suites and the
    /// timers already set; new negotiations, rekeys and authentications
    /// use the new policies, new SAs the new limits. The ports, the time
    /// base, the key log switch and the cookie rotation stay as they were
    /// (they are bound to the running daemon).
    pub fn reconfigure(
        &mut self,
        mut cfg: EngineConfig,
        policies: Vec<PeerPolicy>,
    ) -> Result<(), ReconfigureError> {
        let names = |p: &[PeerPolicy]| p.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        if names(&policies) != names(&self.policies) {
            return Err(ReconfigureError::PeersChanged);
        }
        cfg.ike_port = self.cfg.ike_port;
        cfg.natt_port = self.cfg.natt_port;
        cfg.unix_at_zero = self.cfg.unix_at_zero;
        cfg.key_log = self.cfg.key_log;
        cfg.cookie_rotate_ms = self.cfg.cookie_rotate_ms;
        self.cfg = cfg;
        self.policies = policies;
        // DPD deadlines follow the policy: re-arm every SA's timer.
        let spis: Vec<u64> = self.sas.iter().map(|(k, _)| k).collect();
        for k in spis {
            if let Some(sa) = self.sas.remove(k) {
                self.store(sa);
            }
        }
        Ok(())
    }
}

/// Why `Engine::reconfigure` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// Peers were added, removed, renamed or reordered.
    #[error("the peers changed (added, removed, renamed or reordered): needs a restart")]
    PeersChanged,
}
