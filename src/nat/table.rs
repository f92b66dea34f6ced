//! The translation table: mappings (endpoint-independent, RFC 4787 REQ-1),
//! the sessions that keep them alive, and per-host admission control.
//!
//! Lock order, to stay deadlock-free across workers and the expiry sweep:
//! `hosts` → `mappings` → `reverse` → `pools`; `sessions` guards are never held
//! while another map is locked, except `mappings` inside session creation.

use super::config::{Filtering, NatConfig};
use super::events::{NatDrop, NatEvents, Proto};
use super::ports::{PortPool, ReservedPorts};
use super::tcp_state::{self, Dir};
use super::Millis;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

const IKE_PORT: u16 = 500;

/// (protocol, inside address, inside port) packed into 56 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsideKey(u64);

/// (protocol, external address, external port) packed into 56 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExternalKey(u64);

fn pack(proto: u8, ip: Ipv4Addr, port: u16) -> u64 {
    (u64::from(proto) << 48) | (u64::from(u32::from(ip)) << 16) | u64::from(port)
}

fn unpack(k: u64) -> (u8, Ipv4Addr, u16) {
    ((k >> 48) as u8, Ipv4Addr::from((k >> 16) as u32), k as u16)
}

impl InsideKey {
    /// Builds the key.
    pub fn new(proto: u8, ip: Ipv4Addr, port: u16) -> Self {
        InsideKey(pack(proto, ip, port))
    }
    /// (protocol, address, port).
    pub fn parts(self) -> (u8, Ipv4Addr, u16) {
        unpack(self.0)
    }
}

impl ExternalKey {
    /// Builds the key.
    pub fn new(proto: u8, ip: Ipv4Addr, port: u16) -> Self {
        ExternalKey(pack(proto, ip, port))
    }
    /// (protocol, address, port).
    pub fn parts(self) -> (u8, Ipv4Addr, u16) {
        unpack(self.0)
    }
}

/// A session: one external endpoint talking to one remote endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SessionKey {
    external: u64,
    remote: u64,
}

impl SessionKey {
    fn new(ext: ExternalKey, remote: Ipv4Addr, remote_port: u16) -> Self {
        SessionKey {
            external: ext.0,
            remote: (u64::from(u32::from(remote)) << 16) | u64::from(remote_port),
        }
    }
    fn remote_ip(&self) -> u32 {
        (self.remote >> 16) as u32
    }
}

#[derive(Debug, Clone, Copy)]
struct Session {
    /// Expiry in whole seconds of NAT time.
    expires: u32,
    /// TCP state bits (unused for UDP/ICMP).
    tcp: u8,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    external: ExternalKey,
    sessions: u32,
}

#[derive(Debug, Clone, Copy)]
struct Host {
    sessions: u32,
    esp_spis: u32,
    tokens: u32,
    refilled_ms: Millis,
}

struct Pools {
    ports: [PortPool; 3],
    reserved: ReservedPorts,
    rng: SmallRng,
}

/// A translated endpoint: where an inbound packet goes, or what an outbound one becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub ip: Ipv4Addr,
    /// Port or ICMP identifier.
    pub port: u16,
}

/// Shared NAT state; every method takes `&self` and is safe from many threads.
pub struct Table {
    cfg: NatConfig,
    external: Vec<Ipv4Addr>,
    mappings: DashMap<InsideKey, Mapping>,
    reverse: DashMap<ExternalKey, InsideKey>,
    sessions: DashMap<SessionKey, Session>,
    addr_permits: DashMap<(u64, u32), u32>,
    hosts: DashMap<Ipv4Addr, Host>,
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
            external,
            mappings: DashMap::new(),
            reverse: DashMap::new(),
            sessions: DashMap::new(),
            addr_permits: DashMap::new(),
            hosts: DashMap::new(),
            pools,
            total_sessions: AtomicU32::new(0),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    /// External addresses.
    pub fn external(&self) -> &[Ipv4Addr] {
        &self.external
    }

    /// True when `ip` is one of the external addresses.
    pub fn is_external(&self, ip: Ipv4Addr) -> bool {
        self.external.contains(&ip)
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
        self.hosts.len()
    }

    fn timeout(&self, proto: u8, tcp: u8) -> u32 {
        let t = &self.cfg.timeouts;
        match Proto::from_number(proto) {
            Some(Proto::Tcp) if tcp_state::is_established(tcp) => t.tcp_established,
            Some(Proto::Tcp) => t.tcp_transitory,
            Some(Proto::Udp) => t.udp,
            _ => t.icmp,
        }
    }

    /// Reserves room for one new session of `host`: table size, per-host
    /// count and per-host rate. Undo with `release_host`.
    fn admit(&self, host: Ipv4Addr, now: Millis, ev: &mut NatEvents) -> Result<(), NatDrop> {
        let l = &self.cfg.limits;
        if self.total_sessions.load(Ordering::Relaxed) >= l.max_sessions {
            return Err(ev.count(NatDrop::TableFull));
        }
        let mut h = self.hosts.entry(host).or_insert(Host {
            sessions: 0,
            esp_spis: 0,
            tokens: l.new_sessions_burst,
            refilled_ms: now,
        });
        let elapsed = now.saturating_sub(h.refilled_ms);
        let add = elapsed.saturating_mul(u64::from(l.new_sessions_per_sec_per_host)) / 1000;
        if add > 0 {
            h.tokens = (u64::from(h.tokens) + add).min(u64::from(l.new_sessions_burst)) as u32;
            h.refilled_ms = now;
        }
        if h.sessions >= l.max_sessions_per_host {
            return Err(ev.count(NatDrop::HostLimit));
        }
        if h.tokens == 0 {
            return Err(ev.count(NatDrop::RateLimited));
        }
        h.tokens -= 1;
        h.sessions += 1;
        self.total_sessions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn release_host(&self, host: Ipv4Addr) {
        if let Some(mut h) = self.hosts.get_mut(&host) {
            h.sessions = h.sessions.saturating_sub(1);
        }
        self.total_sessions.fetch_sub(1, Ordering::Relaxed);
        self.hosts.remove_if(&host, |_, h| {
            h.sessions == 0 && h.esp_spis == 0 && h.tokens >= self.cfg.limits.new_sessions_burst
        });
    }

    /// Reserves one recorded-SPI slot for `host` (ESP demux limit).
    pub(crate) fn admit_esp_spi(&self, host: Ipv4Addr, now: Millis) -> bool {
        let burst = self.cfg.limits.new_sessions_burst;
        let mut h = self.hosts.entry(host).or_insert(Host {
            sessions: 0,
            esp_spis: 0,
            tokens: burst,
            refilled_ms: now,
        });
        if h.esp_spis >= self.cfg.limits.max_esp_spis_per_host {
            return false;
        }
        h.esp_spis += 1;
        true
    }

    /// Releases a recorded-SPI slot.
    pub(crate) fn release_esp_spi(&self, host: Ipv4Addr) {
        if let Some(mut h) = self.hosts.get_mut(&host) {
            h.esp_spis = h.esp_spis.saturating_sub(1);
        }
    }

    fn allocate_port(&self, pool_index: usize, proto: u8, inside_port: u16) -> Option<u16> {
        let mut p = self.pools.get(pool_index)?.lock();
        let pi = proto_index(proto);
        if proto == Proto::Udp.number() && inside_port == IKE_PORT && self.cfg.preserve_ike_port {
            let in_range = (self.cfg.port_min..=self.cfg.port_max).contains(&IKE_PORT);
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
        let (proto, ip, port) = ext.parts();
        let Some(i) = self.external.iter().position(|a| *a == ip) else {
            return;
        };
        if let Some(pool) = self.pools.get(i) {
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
                s.expires = now_s.saturating_add(self.timeout(proto, s.tcp));
                let (_, ip, port) = ext.parts();
                return Ok(Endpoint { ip, port });
            }
        }
        self.create_session(
            mk,
            proto,
            remote,
            tcp_state::update(0, tcp_flags, Dir::Out),
            now,
            ev,
        )
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
        self.admit(host, now, ev)?;
        // Take a session reference on the mapping (creating it) under its shard lock,
        // so the sweep cannot remove it between here and the session insert.
        let ext = match self.mappings.entry(mk) {
            Entry::Occupied(mut o) => {
                o.get_mut().sessions += 1;
                o.get().external
            }
            Entry::Vacant(v) => {
                let (pi, ext_ip) = self.external_for(host);
                let (_, _, inside_port) = mk.parts();
                let Some(port) = self.allocate_port(pi, proto, inside_port) else {
                    drop(v);
                    self.release_host(host);
                    return Err(ev.count(NatDrop::PortsExhausted));
                };
                let ext = ExternalKey::new(proto, ext_ip, port);
                self.reverse.insert(ext, mk);
                v.insert(Mapping {
                    external: ext,
                    sessions: 1,
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
                s.expires = s.expires.max(expires);
                false
            }
            Entry::Vacant(v) => {
                v.insert(Session { expires, tcp });
                true
            }
        };
        if inserted {
            ev.created[proto_index(proto)] += 1;
            if self.cfg.filtering == Filtering::AddressDependent {
                *self
                    .addr_permits
                    .entry((ext.0, u32::from(remote.ip)))
                    .or_insert(0) += 1;
            }
        } else {
            // Another worker created the same session first: give back our reference.
            self.unref_mapping(mk);
            self.release_host(host);
        }
        let (_, ip, port) = ext.parts();
        Ok(Endpoint { ip, port })
    }

    fn unref_mapping(&self, mk: InsideKey) {
        if let Some(mut m) = self.mappings.get_mut(&mk) {
            m.sessions = m.sessions.saturating_sub(1);
        }
        if let Some((_, m)) = self.mappings.remove_if(&mk, |_, m| m.sessions == 0) {
            self.reverse.remove(&m.external);
            self.release_port(m.external);
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
        let ek = ExternalKey::new(proto, external.ip, external.port);
        let Some(mk) = self.reverse.get(&ek).map(|r| *r) else {
            return Err(ev.count(NatDrop::NoMapping));
        };
        let (_, in_ip, in_port) = mk.parts();
        let sk = SessionKey::new(ek, remote.ip, remote.port);
        let now_s = (now / 1000) as u32;
        if let Some(mut s) = self.sessions.get_mut(&sk) {
            s.tcp = tcp_state::update(s.tcp, tcp_flags, Dir::In);
            s.expires = now_s.saturating_add(self.timeout(proto, s.tcp));
            return Ok(Endpoint {
                ip: in_ip,
                port: in_port,
            });
        }
        let allowed = match self.cfg.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => self
                .addr_permits
                .contains_key(&(ek.0, u32::from(remote.ip))),
            Filtering::AddressAndPortDependent => false,
        };
        if !allowed {
            return Err(ev.count(NatDrop::Filtered));
        }
        let tcp = tcp_state::update(0, tcp_flags, Dir::In);
        self.create_session(mk, proto, remote, tcp, now, ev)?;
        Ok(Endpoint {
            ip: in_ip,
            port: in_port,
        })
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
        let ek = ExternalKey::new(proto, external.ip, external.port);
        let mk = self.reverse.get(&ek).map(|r| *r)?;
        let ok = match self.cfg.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => self
                .addr_permits
                .contains_key(&(ek.0, u32::from(remote.ip))),
            Filtering::AddressAndPortDependent => {
                self.sessions
                    .contains_key(&SessionKey::new(ek, remote.ip, remote.port))
            }
        };
        let (_, ip, port) = mk.parts();
        ok.then_some(Endpoint { ip, port })
    }

    /// External endpoint of an inside endpoint, without touching timers.
    pub fn lookup_outbound(&self, proto: u8, inside: Endpoint) -> Option<Endpoint> {
        let ext = self
            .mappings
            .get(&InsideKey::new(proto, inside.ip, inside.port))?
            .external;
        let (_, ip, port) = ext.parts();
        Some(Endpoint { ip, port })
    }

    /// Removes sessions idle past their timeout, then mappings left without sessions.
    pub fn expire(&self, now: Millis, ev: &mut NatEvents) {
        let now_s = (now / 1000) as u32;
        let mut dead: Vec<SessionKey> = Vec::new();
        self.sessions.retain(|k, s| {
            if s.expires <= now_s {
                dead.push(*k);
                false
            } else {
                true
            }
        });
        for sk in dead {
            let ek = ExternalKey(sk.external);
            let (proto, _, _) = ek.parts();
            ev.expired[proto_index(proto)] += 1;
            if self.cfg.filtering == Filtering::AddressDependent {
                let key = (sk.external, sk.remote_ip());
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
    }

    /// Approximate heap bytes held by the tables (for the memory benchmark).
    pub fn approx_heap_bytes(&self) -> usize {
        fn dm<K, V>(m: &DashMap<K, V>) -> usize
        where
            K: Eq + std::hash::Hash,
        {
            // hashbrown: one slot (K, V) plus one control byte per bucket.
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        dm(&self.mappings)
            + dm(&self.reverse)
            + dm(&self.sessions)
            + dm(&self.addr_permits)
            + dm(&self.hosts)
    }
}
