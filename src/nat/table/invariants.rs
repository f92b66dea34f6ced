//! Consistency of the table's maps and counters, for tests and fuzzing.
//! Only meaningful while no other thread is changing the table.

use super::super::config::Filtering;
use super::super::events::Proto;
use super::super::invariants::check;
use super::{proto_index, ExternalKey, InsideKey, Table, IKE_PORT};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

impl Table {
    /// Checks that every count matches what it counts and every cap holds:
    /// sessions vs `total_sessions` and per-host counts, mapping reference
    /// counts vs sessions, `reverse` vs `mappings`, per-host port counts vs
    /// mappings, port pools vs mappings, address permits vs sessions, and the
    /// host count vs entries.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let c = self.config();
        let l = &c.limits;
        let total = self.total_sessions.load(Ordering::Relaxed) as usize;
        check(total == self.sessions.len(), || {
            format!("total_sessions {total} != {} sessions", self.sessions.len())
        })?;
        check(total <= l.max_sessions as usize, || {
            "max_sessions exceeded".into()
        })?;

        // Sessions per external key and per host.
        let mut per_ext: HashMap<ExternalKey, u32> = HashMap::new();
        let mut per_permit: HashMap<(ExternalKey, [u8; 4]), u32> = HashMap::new();
        let mut per_host: HashMap<Ipv4Addr, u32> = HashMap::new();
        for s in self.sessions.iter() {
            let ek = s.key().external();
            *per_ext.entry(ek).or_default() += 1;
            *per_permit.entry((ek, s.key().remote_ip())).or_default() += 1;
            let mk = self
                .reverse
                .get(&ek)
                .map(|r| *r)
                .ok_or_else(|| format!("session {:?} has no mapping", s.key()))?;
            *per_host.entry(mk.parts().1).or_default() += 1;
        }

        // Mappings, reverse entries and ports.
        check(self.reverse.len() == self.mappings.len(), || {
            format!(
                "{} reverse entries for {} mappings",
                self.reverse.len(),
                self.mappings.len()
            )
        })?;
        let mut ports_per_host: HashMap<Ipv4Addr, [u32; 3]> = HashMap::new();
        let mut in_pool: HashMap<(u8, usize), u32> = HashMap::new();
        for m in self.mappings.iter() {
            let mk: InsideKey = *m.key();
            let ek = m.external;
            check(self.reverse.get(&ek).map(|r| *r) == Some(mk), || {
                format!("reverse of {ek:?} is not {mk:?}")
            })?;
            let refs = per_ext.get(&ek).copied().unwrap_or(0);
            check(m.sessions() == refs && refs > 0, || {
                format!(
                    "mapping {mk:?} counts {} sessions, has {refs}",
                    m.sessions()
                )
            })?;
            let (proto, host, _) = mk.parts();
            let (eproto, index, port) = ek.parts();
            check(eproto == proto, || format!("{mk:?} maps to {ek:?}"))?;
            check(usize::from(index) == self.external_for(host).0, || {
                format!("{host} is not on its paired external address")
            })?;
            if let Some(n) = ports_per_host
                .entry(host)
                .or_default()
                .get_mut(proto_index(proto))
            {
                *n += 1;
            }
            let reserved = proto == Proto::Udp.number()
                && port == IKE_PORT
                && self
                    .pools
                    .get(usize::from(index))
                    .is_some_and(|p| p.lock().reserved.holds(IKE_PORT));
            if !reserved {
                *in_pool.entry((index, proto_index(proto))).or_default() += 1;
            }
        }
        for (i, pool) in self.pools.iter().enumerate() {
            let p = pool.lock();
            for (pi, ports) in p.ports.iter().enumerate() {
                let want = in_pool.get(&(i as u8, pi)).copied().unwrap_or(0);
                check(ports.in_use() == want, || {
                    format!(
                        "pool {i}/{pi}: {} ports in use, {want} mapped",
                        ports.in_use()
                    )
                })?;
            }
        }

        // Address permits (address-dependent filtering only).
        if c.filtering == Filtering::AddressDependent {
            check(self.addr_permits.len() == per_permit.len(), || {
                "address permits do not match sessions".into()
            })?;
            for p in self.addr_permits.iter() {
                check(per_permit.get(p.key()) == Some(p.value()), || {
                    format!("permit {:?} counts {}", p.key(), p.value())
                })?;
            }
        } else {
            check(self.addr_permits.is_empty(), || {
                "stray address permits".into()
            })?;
        }

        // Host entries.
        let hosts = self.hosts.count.load(Ordering::Relaxed) as usize;
        check(hosts == self.hosts.map.len(), || {
            format!("host count {hosts} != {} entries", self.hosts.map.len())
        })?;
        check(hosts <= l.max_hosts as usize, || {
            "max_hosts exceeded".into()
        })?;
        for h in self.hosts.map.iter() {
            let want = per_host.get(h.key()).copied().unwrap_or(0);
            check(h.sessions == want, || {
                format!(
                    "host {} counts {} sessions, has {want}",
                    h.key(),
                    h.sessions
                )
            })?;
            check(h.sessions <= l.max_sessions_per_host, || {
                format!("host {} over max_sessions_per_host", h.key())
            })?;
            let ports = ports_per_host.get(h.key()).copied().unwrap_or([0; 3]);
            check(h.ports == ports, || {
                format!("host {} counts ports {:?}, has {ports:?}", h.key(), h.ports)
            })?;
            check(h.ports.iter().all(|n| *n <= l.max_ports_per_host), || {
                format!("host {} over max_ports_per_host", h.key())
            })?;
            check(h.esp_spis <= l.max_esp_spis_per_host, || {
                format!("host {} over max_esp_spis_per_host", h.key())
            })?;
        }
        for host in per_host.keys().chain(ports_per_host.keys()) {
            check(self.hosts.map.contains_key(host), || {
                format!("host {host} has state but no entry")
            })?;
        }
        Ok(())
    }

    /// Recorded ESP SPIs per inside host, as the host entries count them.
    #[doc(hidden)]
    pub fn esp_spis_by_host(&self) -> HashMap<Ipv4Addr, u32> {
        self.hosts
            .map
            .iter()
            .filter(|h| h.esp_spis > 0)
            .map(|h| (*h.key(), h.esp_spis))
            .collect()
    }

    /// True when nothing at all is left: no session, mapping, permit, host
    /// entry or port in use.
    #[doc(hidden)]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.mappings.is_empty()
            && self.reverse.is_empty()
            && self.addr_permits.is_empty()
            && self.hosts.map.is_empty()
            && self.total_sessions.load(Ordering::Relaxed) == 0
            && self.pools.iter().all(|p| {
                let p = p.lock();
                p.ports.iter().all(|x| x.in_use() == 0) && !p.reserved.holds(IKE_PORT)
            })
    }
}
