//! Per-inside-host admission: session count, new-session rate, external
//! ports per protocol and recorded ESP SPIs, with a cap on the number of
//! hosts tracked. An entry is reclaimed by the expiry sweep once it holds
//! nothing and its rate bucket would be full again, so idling briefly never
//! resets a host's rate limit.

use super::super::config::Limits;
use super::super::events::NatDrop;
use super::super::Millis;
use crate::rate_limit::{reserve, TokenBucket};
use dashmap::mapref::entry::Entry;
use dashmap::mapref::one::RefMut;
use dashmap::DashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

/// What one inside host holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host {
    /// Live sessions.
    pub(super) sessions: u32,
    /// Recorded outbound ESP SPIs.
    pub(super) esp_spis: u32,
    /// Live mappings (external ports) per protocol, by `proto_index`.
    pub(super) ports: [u32; 3],
    /// New-session rate limit.
    bucket: TokenBucket,
}

impl Host {
    /// New sessions the rate bucket allows at `now`.
    pub(super) fn tokens(&self, l: &Limits, now: Millis) -> u32 {
        self.bucket
            .level(l.new_sessions_per_sec_per_host, l.new_sessions_burst, now)
    }

    fn holds_nothing(&self) -> bool {
        self.sessions == 0 && self.esp_spis == 0 && self.ports == [0; 3]
    }
}

/// The host entries and their count.
pub(super) struct Hosts {
    pub(super) map: DashMap<Ipv4Addr, Host>,
    /// Entries in `map`, kept exact so the cap needs no O(shards) `len`.
    pub(super) count: AtomicU32,
}

impl Hosts {
    pub(super) fn new() -> Self {
        Hosts {
            map: DashMap::new(),
            count: AtomicU32::new(0),
        }
    }

    /// The entry of `host`, created with a full bucket if there is room.
    fn entry(
        &self,
        host: Ipv4Addr,
        l: &Limits,
        now: Millis,
    ) -> Result<RefMut<'_, Ipv4Addr, Host>, NatDrop> {
        match self.map.entry(host) {
            Entry::Occupied(o) => Ok(o.into_ref()),
            Entry::Vacant(v) => {
                if !reserve(&self.count, l.max_hosts) {
                    return Err(NatDrop::HostsFull);
                }
                Ok(v.insert(Host {
                    sessions: 0,
                    esp_spis: 0,
                    ports: [0; 3],
                    bucket: TokenBucket::full(l.new_sessions_burst, now),
                }))
            }
        }
    }

    /// Reserves one session of `host`, and one external port of protocol
    /// index `port` when the session needs a new mapping. Undo with
    /// `release_session` / `release_port`.
    pub(super) fn admit_session(
        &self,
        host: Ipv4Addr,
        port: Option<usize>,
        l: &Limits,
        now: Millis,
    ) -> Result<(), NatDrop> {
        let mut h = self.entry(host, l, now)?;
        if h.sessions >= l.max_sessions_per_host {
            return Err(NatDrop::HostLimit);
        }
        if let Some(p) = port {
            if h.ports.get(p).is_none_or(|n| *n >= l.max_ports_per_host) {
                return Err(NatDrop::PortQuota);
            }
        }
        if !h
            .bucket
            .take(l.new_sessions_per_sec_per_host, l.new_sessions_burst, now)
        {
            return Err(NatDrop::RateLimited);
        }
        h.sessions += 1;
        if let Some(n) = port.and_then(|p| h.ports.get_mut(p)) {
            *n += 1;
        }
        Ok(())
    }

    /// Gives back one session.
    pub(super) fn release_session(&self, host: Ipv4Addr) {
        if let Some(mut h) = self.map.get_mut(&host) {
            h.sessions = h.sessions.saturating_sub(1);
        }
    }

    /// Gives back one external port of protocol index `p`.
    pub(super) fn release_port(&self, host: Ipv4Addr, p: usize) {
        if let Some(mut h) = self.map.get_mut(&host) {
            if let Some(n) = h.ports.get_mut(p) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Reserves one recorded-SPI slot.
    pub(super) fn admit_esp_spi(
        &self,
        host: Ipv4Addr,
        l: &Limits,
        now: Millis,
    ) -> Result<(), NatDrop> {
        let mut h = self.entry(host, l, now)?;
        if h.esp_spis >= l.max_esp_spis_per_host {
            return Err(NatDrop::EspHostLimit);
        }
        h.esp_spis += 1;
        Ok(())
    }

    /// Releases a recorded-SPI slot.
    pub(super) fn release_esp_spi(&self, host: Ipv4Addr) {
        if let Some(mut h) = self.map.get_mut(&host) {
            h.esp_spis = h.esp_spis.saturating_sub(1);
        }
    }

    /// The most external ports any host holds for one protocol.
    pub(super) fn max_ports(&self) -> u32 {
        self.map.iter().flat_map(|h| h.ports).max().unwrap_or(0)
    }

    /// Drops entries that hold nothing and whose bucket has refilled.
    pub(super) fn reclaim(&self, l: &Limits, now: Millis) {
        let (rate, burst) = (l.new_sessions_per_sec_per_host, l.new_sessions_burst);
        let mut freed = 0u32;
        self.map.retain(|_, h| {
            let idle = h.holds_nothing() && h.bucket.is_full(rate, burst, now);
            freed += u32::from(idle);
            !idle
        });
        self.count.fetch_sub(freed, Ordering::Relaxed);
    }
}
