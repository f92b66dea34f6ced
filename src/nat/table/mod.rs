//! The translation table: mappings (endpoint-independent, RFC 4787 REQ-1),
//! the sessions that keep them alive, and per-host admission control.
//!
//! Lock order, to stay deadlock-free across workers and the expiry sweep:
//! `mappings` → `hosts`, `mappings` → `reverse` → `pools`; a `hosts` guard is
//! never held while another map is locked; `sessions` guards are never held
//! while another map is locked, except `mappings` inside session creation.

mod hosts;
mod invariants;
pub mod listing;

use super::config::{ConfigError, Filtering, Limits, NatConfig, Timeouts};
use super::events::{NatDrop, NatEvents, Proto};
use super::ports::{PortPool, ReservedPorts};
use super::tcp_state::{self, Dir};
use super::Millis;
use crate::live::Live;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use hosts::Hosts;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

const IKE_PORT: u16 = 500;

// Keys and values are byte arrays (alignment 1) so hash-table slots carry no
// padding: 15 + 11 + 15 bytes per mapping with one session (docs/PERFORMANCE.md).

/// (protocol, inside address, inside port) in 7 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsideKey([u8; 7]);

/// (protocol, external address index, external port) in 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalKey([u8; 4]);

// Hash keys as one or two integers: one hasher call instead of a length
// prefix plus a byte slice.
impl Hash for InsideKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let k = self.0;
        h.write_u64(u64::from_le_bytes([
            k[0], k[1], k[2], k[3], k[4], k[5], k[6], 0,
        ]));
    }
}

impl Hash for ExternalKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u32(u32::from_le_bytes(self.0));
    }
}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let k = self.0;
        h.write_u64(u64::from_le_bytes([
            k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7],
        ]));
        h.write_u16(u16::from_le_bytes([k[8], k[9]]));
    }
}

impl InsideKey {
    /// Builds the key.
    pub fn new(proto: u8, ip: Ipv4Addr, port: u16) -> Self {
        let (a, p) = (ip.octets(), port.to_be_bytes());
        InsideKey([proto, a[0], a[1], a[2], a[3], p[0], p[1]])
    }
    /// (protocol, address, port).
    pub fn parts(self) -> (u8, Ipv4Addr, u16) {
        let k = self.0;
        (
            k[0],
            Ipv4Addr::new(k[1], k[2], k[3], k[4]),
            u16::from_be_bytes([k[5], k[6]]),
        )
    }
}

impl ExternalKey {
    /// Builds the key from the index of the external address in the pool.
    pub fn new(proto: u8, index: u8, port: u16) -> Self {
        let p = port.to_be_bytes();
        ExternalKey([proto, index, p[0], p[1]])
    }
    /// (protocol, address index, port).
    pub fn parts(self) -> (u8, u8, u16) {
        (
            self.0[0],
            self.0[1],
            u16::from_be_bytes([self.0[2], self.0[3]]),
        )
    }
}

/// A session: one external endpoint talking to one remote endpoint, 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionKey([u8; 10]);

impl SessionKey {
    fn new(ext: ExternalKey, remote: Ipv4Addr, remote_port: u16) -> Self {
        let (e, a, p) = (ext.0, remote.octets(), remote_port.to_be_bytes());
        SessionKey([e[0], e[1], e[2], e[3], a[0], a[1], a[2], a[3], p[0], p[1]])
    }
    fn external(&self) -> ExternalKey {
        ExternalKey([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    fn remote_ip(&self) -> [u8; 4] {
        [self.0[4], self.0[5], self.0[6], self.0[7]]
    }
    fn remote(&self) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::from(self.remote_ip()),
            port: u16::from_be_bytes([self.0[8], self.0[9]]),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    /// Expiry in whole seconds of NAT time (native-endian u32).
    expires: [u8; 4],
    /// TCP state bits (unused for UDP/ICMP).
    tcp: u8,
}

impl Session {
    fn expires(&self) -> u32 {
        u32::from_ne_bytes(self.expires)
    }
    fn set_expires(&mut self, t: u32) {
        self.expires = t.to_ne_bytes();
    }
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    external: ExternalKey,
    /// Live sessions using this mapping (native-endian u32).
    sessions: [u8; 4],
}

impl Mapping {
    fn sessions(&self) -> u32 {
        u32::from_ne_bytes(self.sessions)
    }
    fn add_sessions(&mut self, d: i32) {
        self.sessions = self.sessions().saturating_add_signed(d).to_ne_bytes();
    }
}

struct Pools {
    ports: [PortPool; 3],
    reserved: ReservedPorts,
    rng: SmallRng,
}

/// A translated endpoint: where an inbound packet goes, or what an outbound one becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// Address.
    pub ip: Ipv4Addr,
    /// Port or ICMP identifier.
    pub port: u16,
}

/// Shared NAT state; every method takes `&self` and is safe from many threads.
pub struct Table {
    /// The settings only a restart changes (its `timeouts` and `limits`
    /// are the start-up values: the live ones are below).
    cfg: NatConfig,
    /// Timeouts in force ([`Table::reconfigure`]).
    timeouts: Live<Timeouts, 4>,
    /// Limits in force ([`Table::reconfigure`]).
    limits: Live<Limits, 7>,
    external: Vec<Ipv4Addr>,
    mappings: DashMap<InsideKey, Mapping>,
    reverse: DashMap<ExternalKey, InsideKey>,
    sessions: DashMap<SessionKey, Session>,
    addr_permits: DashMap<(ExternalKey, [u8; 4]), u32>,
    hosts: Hosts,
    pools: Vec<Mutex<Pools>>,
    total_sessions: AtomicU32,
}

fn proto_index(p: u8) -> usize {
    Proto::from_number(p).map_or(0, |p| p as usize)
}

impl Table {
    /// Creates an empty table over the given external addresses (at least one).
    pub fn new(cfg: NatConfig, external: Vec<Ipv4Addr>, seed: u64) -> Self {
        let pools = external
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let p = PortPool::new(cfg.port_min, cfg.port_max);
                Mutex::new(Pools {
                    ports: [p.clone(), p.clone(), p],
                    reserved: ReservedPorts::default(),
                    rng: SmallRng::seed_from_u64(
                        seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    ),
                })
            })
            .collect();
        Table {
            cfg,
            timeouts: Live::new(cfg.timeouts),
            limits: Live::new(cfg.limits),
            external,
            mappings: DashMap::new(),
            reverse: DashMap::new(),
            sessions: DashMap::new(),
            addr_permits: DashMap::new(),
            hosts: Hosts::new(),
            pools,
            total_sessions: AtomicU32::new(0),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> NatConfig {
        NatConfig {
            timeouts: self.timeouts.get(),
            limits: self.limits.get(),
            ..self.cfg
        }
    }

    /// Applies a changed configuration to the live table: limits and
    /// timeouts take effect for the next packet (existing sessions keep
    /// their current expiry until their next packet, and hosts above a
    /// lowered limit keep what they hold but get nothing new). The external
    /// port range, the filtering behaviour and IKE port preservation shape
    /// state already in the table, so changing them is refused.
    pub fn reconfigure(&self, cfg: NatConfig) -> Result<(), ConfigError> {
        self.check_reconfigure(&cfg)?;
        self.timeouts.set(cfg.timeouts);
        self.limits.set(cfg.limits);
        Ok(())
    }

    /// What [`Table::reconfigure`] would refuse, without applying anything.
    pub fn check_reconfigure(&self, cfg: &NatConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        let old = self.config();
        let fixed = [
            ("nat.filtering", old.filtering != cfg.filtering),
            ("nat.port_min", old.port_min != cfg.port_min),
            ("nat.port_max", old.port_max != cfg.port_max),
            (
                "nat.preserve_ike_port",
                old.preserve_ike_port != cfg.preserve_ike_port,
            ),
        ];
        match fixed.iter().find(|(_, changed)| *changed) {
            Some((field, _)) => Err(ConfigError::needs_restart(field)),
            None => Ok(()),
        }
    }

    /// External addresses.
    pub fn external(&self) -> &[Ipv4Addr] {
        &self.external
    }

    /// True when `ip` is one of the external addresses.
    pub fn is_external(&self, ip: Ipv4Addr) -> bool {
        self.external.contains(&ip)
    }

    /// The key of an external endpoint, if `ip` is one of ours.
    fn ext_key(&self, proto: u8, ip: Ipv4Addr, port: u16) -> Option<ExternalKey> {
        let i = self.external.iter().position(|a| *a == ip)?;
        Some(ExternalKey::new(proto, u8::try_from(i).ok()?, port))
    }

    /// The endpoint an external key stands for.
    fn ext_endpoint(&self, ek: ExternalKey) -> Endpoint {
        let (_, i, port) = ek.parts();
        let ip = self
            .external
            .get(usize::from(i))
            .copied()
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        Endpoint { ip, port }
    }

    /// Paired pooling (RFC 4787 REQ-2): one inside host always uses the same external address.
    pub fn external_for(&self, inside: Ipv4Addr) -> (usize, Ipv4Addr) {
        let n = self.external.len().max(1);
        let i = (u32::from(inside).wrapping_mul(0x9e37_79b1) >> 16) as usize % n;
        (
            i,
            self.external
                .get(i)
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
        )
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Live mappings.
    pub fn mapping_count(&self) -> usize {
        self.mappings.len()
    }

    /// Live mappings per protocol, by `Proto as usize`.
    pub fn mapping_count_by_proto(&self) -> [usize; 3] {
        let mut out = [0; 3];
        for e in self.mappings.iter() {
            out[proto_index(e.key().parts().0)] += 1;
        }
        out
    }

    /// Inside hosts with state.
    pub fn host_count(&self) -> usize {
        self.hosts.count.load(Ordering::Relaxed) as usize
    }

    /// The most external ports one inside host holds for one protocol
    /// (bounded by `nat.limits.max_ports_per_host`). Walks the host entries.
    pub fn max_host_ports(&self) -> usize {
        self.hosts.max_ports() as usize
    }

    fn timeout(&self, proto: u8, tcp: u8) -> u32 {
        let t = self.timeouts.get();
        match Proto::from_number(proto) {
            Some(Proto::Tcp) if tcp_state::is_established(tcp) => t.tcp_established,
            Some(Proto::Tcp) => t.tcp_transitory,
            Some(Proto::Udp) => t.udp,
            _ => t.icmp,
        }
    }

    /// Reserves room for one new session of `host` (and one external port
    /// of `proto` when the session needs a new mapping): table size, host
    /// entries, per-host count, port quota and rate. Undo with `release_host`
    /// (and `hosts.release_port`).
    fn admit(
        &self,
        host: Ipv4Addr,
        new_port: Option<u8>,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let l = self.limits.get();
        if self.total_sessions.load(Ordering::Relaxed) >= l.max_sessions {
            return Err(ev.count(NatDrop::TableFull));
        }
        self.hosts
            .admit_session(host, new_port.map(proto_index), &l, now)
            .map_err(|r| ev.count(r))?;
        self.total_sessions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn release_host(&self, host: Ipv4Addr) {
        self.hosts.release_session(host);
        self.total_sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reserves one recorded-SPI slot for `host` (ESP demux limit): refused
    /// with `EspHostLimit` or `HostsFull`, not counted here.
    pub(crate) fn admit_esp_spi(&self, host: Ipv4Addr, now: Millis) -> Result<(), NatDrop> {
        self.hosts.admit_esp_spi(host, &self.limits.get(), now)
    }

    /// Releases a recorded-SPI slot.
    pub(crate) fn release_esp_spi(&self, host: Ipv4Addr) {
        self.hosts.release_esp_spi(host);
    }

    fn allocate_port(&self, pool_index: usize, proto: u8, inside_port: u16) -> Option<u16> {
        let mut p = self.pools.get(pool_index)?.lock();
        let pi = proto_index(proto);
        let c = &self.cfg;
        if proto == Proto::Udp.number() && inside_port == IKE_PORT && c.preserve_ike_port {
            let in_range = (c.port_min..=c.port_max).contains(&IKE_PORT);
            let got = if in_range {
                p.ports[pi].take_exact(IKE_PORT)
            } else {
                p.reserved.take(IKE_PORT)
            };
            if got {
                return Some(IKE_PORT);
            }
        }
        let start = p.rng.gen::<u32>();
        p.ports[pi].take_from(start)
    }

    fn release_port(&self, ext: ExternalKey) {
        let (proto, i, port) = ext.parts();
        if let Some(pool) = self.pools.get(usize::from(i)) {
            let mut p = pool.lock();
            if proto == Proto::Udp.number() && port == IKE_PORT && p.reserved.holds(IKE_PORT) {
                p.reserved.release(IKE_PORT);
            } else {
                p.ports[proto_index(proto)].release(port);
            }
        }
    }

    /// Outbound packet of a flow: finds or creates the mapping and session
    /// and returns the external endpoint to rewrite the source to.
    pub fn outbound(
        &self,
        proto: u8,
        inside: Endpoint,
        remote: Endpoint,
        tcp_flags: u8,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<Endpoint, NatDrop> {
        let mk = InsideKey::new(proto, inside.ip, inside.port);
        let now_s = (now / 1000) as u32;
        // Fast path: mapping and session exist.
        if let Some(ext) = self.mappings.get(&mk).map(|m| m.external) {
            let sk = SessionKey::new(ext, remote.ip, remote.port);
            if let Some(mut s) = self.sessions.get_mut(&sk) {
                s.tcp = tcp_state::update(s.tcp, tcp_flags, Dir::Out);
                let t = now_s.saturating_add(self.timeout(proto, s.tcp));
                s.set_expires(t);
                return Ok(self.ext_endpoint(ext));
            }
        }
        let tcp = tcp_state::update(0, tcp_flags, Dir::Out);
        self.create_session(mk, proto, remote, tcp, now, ev)
    }

    fn create_session(
        &self,
        mk: InsideKey,
        proto: u8,
        remote: Endpoint,
        tcp: u8,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<Endpoint, NatDrop> {
        let host = mk.parts().1;
        // Take a session reference on the mapping (creating it) under its shard lock,
        // so the sweep cannot remove it between here and the session insert.
        // Admission happens under that lock too, so a new mapping always
        // holds one unit of its host's port quota.
        let ext = match self.mappings.entry(mk) {
            Entry::Occupied(mut o) => {
                self.admit(host, None, now, ev)?;
                o.get_mut().add_sessions(1);
                o.get().external
            }
            Entry::Vacant(v) => {
                self.admit(host, Some(proto), now, ev)?;
                let (pi, _) = self.external_for(host);
                let (_, _, inside_port) = mk.parts();
                let port = u8::try_from(pi)
                    .ok()
                    .and_then(|i| Some((i, self.allocate_port(pi, proto, inside_port)?)));
                let Some((index, port)) = port else {
                    drop(v);
                    self.release_host(host);
                    self.hosts.release_port(host, proto_index(proto));
                    return Err(ev.count(NatDrop::PortsExhausted));
                };
                let ext = ExternalKey::new(proto, index, port);
                self.reverse.insert(ext, mk);
                v.insert(Mapping {
                    external: ext,
                    sessions: 1u32.to_ne_bytes(),
                });
                ext
            }
        };
        let sk = SessionKey::new(ext, remote.ip, remote.port);
        let expires = ((now / 1000) as u32).saturating_add(self.timeout(proto, tcp));
        let inserted = match self.sessions.entry(sk) {
            Entry::Occupied(mut o) => {
                let s = o.get_mut();
                s.tcp |= tcp;
                let t = s.expires().max(expires);
                s.set_expires(t);
                false
            }
            Entry::Vacant(v) => {
                v.insert(Session {
                    expires: expires.to_ne_bytes(),
                    tcp,
                });
                true
            }
        };
        if inserted {
            ev.created[proto_index(proto)] += 1;
            if self.cfg.filtering == Filtering::AddressDependent {
                *self
                    .addr_permits
                    .entry((ext, remote.ip.octets()))
                    .or_insert(0) += 1;
            }
        } else {
            // Another worker created the same session first: give back our reference.
            self.unref_mapping(mk);
            self.release_host(host);
        }
        Ok(self.ext_endpoint(ext))
    }

    fn unref_mapping(&self, mk: InsideKey) {
        if let Some(mut m) = self.mappings.get_mut(&mk) {
            m.add_sessions(-1);
        }
        if let Some((_, m)) = self.mappings.remove_if(&mk, |_, m| m.sessions() == 0) {
            self.reverse.remove(&m.external);
            self.release_port(m.external);
            let (proto, host, _) = mk.parts();
            self.hosts.release_port(host, proto_index(proto));
        }
    }

    /// Inbound packet to an external endpoint: applies filtering and returns
    /// the inside endpoint to rewrite the destination to.
    pub fn inbound(
        &self,
        proto: u8,
        external: Endpoint,
        remote: Endpoint,
        tcp_flags: u8,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<Endpoint, NatDrop> {
        let found = self
            .ext_key(proto, external.ip, external.port)
            .and_then(|ek| Some((ek, self.reverse.get(&ek).map(|r| *r)?)));
        let Some((ek, mk)) = found else {
            return Err(ev.count(NatDrop::NoMapping));
        };
        let (_, in_ip, in_port) = mk.parts();
        let inside = Endpoint {
            ip: in_ip,
            port: in_port,
        };
        let sk = SessionKey::new(ek, remote.ip, remote.port);
        let now_s = (now / 1000) as u32;
        if let Some(mut s) = self.sessions.get_mut(&sk) {
            s.tcp = tcp_state::update(s.tcp, tcp_flags, Dir::In);
            let t = now_s.saturating_add(self.timeout(proto, s.tcp));
            s.set_expires(t);
            return Ok(inside);
        }
        if !self.permits(ek, remote) {
            return Err(ev.count(NatDrop::Filtered));
        }
        let tcp = tcp_state::update(0, tcp_flags, Dir::In);
        self.create_session(mk, proto, remote, tcp, now, ev)?;
        Ok(inside)
    }

    /// Whether `remote` may reach `ek` without an exact session (RFC 4787 §5):
    /// address-and-port-dependent filtering admits only exact sessions.
    fn permits(&self, ek: ExternalKey, remote: Endpoint) -> bool {
        match self.cfg.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => {
                self.addr_permits.contains_key(&(ek, remote.ip.octets()))
            }
            Filtering::AddressAndPortDependent => false,
        }
    }

    /// Inside endpoint owning an external endpoint, without touching timers
    /// (ICMP error translation). With dependent filtering, `remote` must have
    /// been contacted by that mapping.
    pub fn lookup_inbound(
        &self,
        proto: u8,
        external: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        let ek = self.ext_key(proto, external.ip, external.port)?;
        let mk = self.reverse.get(&ek).map(|r| *r)?;
        let session = self
            .sessions
            .contains_key(&SessionKey::new(ek, remote.ip, remote.port));
        let (_, ip, port) = mk.parts();
        (session || self.permits(ek, remote)).then_some(Endpoint { ip, port })
    }

    /// External endpoint of an inside endpoint, without touching timers.
    pub fn lookup_outbound(&self, proto: u8, inside: Endpoint) -> Option<Endpoint> {
        let ext = self
            .mappings
            .get(&InsideKey::new(proto, inside.ip, inside.port))?
            .external;
        Some(self.ext_endpoint(ext))
    }

    /// Removes sessions idle past their timeout, then mappings left without
    /// sessions, then host entries holding nothing whose rate bucket has refilled.
    pub fn expire(&self, now: Millis, ev: &mut NatEvents) {
        let now_s = (now / 1000) as u32;
        let mut dead: Vec<SessionKey> = Vec::new();
        self.sessions.retain(|k, s| {
            if s.expires() <= now_s {
                dead.push(*k);
                false
            } else {
                true
            }
        });
        for sk in dead {
            let ek = sk.external();
            let (proto, _, _) = ek.parts();
            ev.expired[proto_index(proto)] += 1;
            if self.cfg.filtering == Filtering::AddressDependent {
                let key = (ek, sk.remote_ip());
                if let Some(mut c) = self.addr_permits.get_mut(&key) {
                    *c = c.saturating_sub(1);
                }
                self.addr_permits.remove_if(&key, |_, c| *c == 0);
            }
            let Some(mk) = self.reverse.get(&ek).map(|r| *r) else {
                continue;
            };
            self.unref_mapping(mk);
            self.release_host(mk.parts().1);
        }
        self.hosts.reclaim(&self.limits.get(), now);
    }
}
