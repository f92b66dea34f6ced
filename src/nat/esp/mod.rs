//! ESP demultiplexing by SPI hash (DESIGN.md §1, seed 004 [0072]–[0087]).
//!
//! Outbound ESP from inside host O to responder R carries R's inbound SPI
//! `S_R`; the router records it with (O, R) and indexes two tags of it:
//! - `spi_tag(S_R)`: matched by `digest_tag(S_in)` when R derived `S_R` from
//!   O's inbound SPI (`S_R` bytes = `MD5(S_O)` bytes), the default case;
//! - `digest_tag(S_R)`: matched by `spi_tag(S_in)` when O derived its inbound
//!   SPI from R's (the mirror relation of [0074]).
//!
//! An inbound ESP whose SPI has no binding is matched with two hash-map
//! probes, O(1) in the number of recorded SPIs. Exactly one candidate host
//! binds (R, S_in) → O; several is a collision and the packet is dropped;
//! none is dropped unless the single-pending fallback is enabled and applies.
//!
//! Bounded against spoofed floods (docs/DESIGN-NOTES.md): an outbound SPI
//! pairs once (after its first binding it is no longer a candidate until that
//! binding expires); bindings are capped per responder and in total, recorded
//! SPIs in total; the index is sharded per responder, and an unknown SPI only
//! reaches the MD5 and the responder's lock when that responder has an
//! unpaired SPI, the SPI was not refused under the same index moments ago
//! (a small per-responder cache of recent misses), and the responder's token
//! bucket allows.

mod invariants;
pub mod listing;
mod responder;

use super::config::{ConfigError, EspConfig, Relations};
use super::events::{NatDrop, NatEvents};
use super::table::Table;
use super::Millis;
use crate::live::Live;
use crate::rate_limit::reserve;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use responder::{Lookup, Probes, Responder};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
struct Recorded {
    inside: Ipv4Addr,
    expires: u32,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    inside: Ipv4Addr,
    expires: u32,
    /// The recorded outbound SPI this binding paired with.
    out_spi: u32,
}

/// How an unknown inbound SPI was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Matched the responder-derives relation.
    ResponderDerived,
    /// Matched the inside-derives relation.
    InsideDerived,
    /// Single-pending fallback.
    Fallback,
}

/// ESP demultiplexer state, shared by all workers.
///
/// Lock order: `responders` shard → a responder's `index` → `recorded` /
/// `bindings` shards; a responder's `bucket` is never held with another lock.
pub struct EspDemux {
    /// Replaced by [`EspDemux::reconfigure`].
    cfg: Live<EspConfig, 9>,
    /// (R, S_out) → owner and expiry: the outbound fast path.
    recorded: DashMap<(Ipv4Addr, u32), Recorded>,
    /// (R, S_in) → inside host: the inbound fast path.
    bindings: DashMap<(Ipv4Addr, u32), Binding>,
    /// Per-responder index, created by the first recorded SPI.
    responders: DashMap<Ipv4Addr, Arc<Responder>>,
    /// Entries in `recorded` (exact, for the `max_spis` cap).
    n_recorded: AtomicU32,
    /// Entries in `bindings` (exact, for the `max_bindings` cap).
    n_bindings: AtomicU32,
}

impl EspDemux {
    /// Empty state under `cfg` (validated by the caller).
    pub fn new(cfg: EspConfig) -> Self {
        EspDemux {
            cfg: Live::new(cfg),
            recorded: DashMap::new(),
            bindings: DashMap::new(),
            responders: DashMap::new(),
            n_recorded: AtomicU32::new(0),
            n_bindings: AtomicU32::new(0),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> EspConfig {
        self.cfg.get()
    }

    /// Applies a changed configuration: relations, the fallback, the idle
    /// timeout, the caps and the resolve rate take effect for the next
    /// packet (entries above a lowered cap stay until they expire; every
    /// recorded SPI keeps the tags of both relations, so either relation
    /// can be switched on). The SPI layout is what the tags were computed
    /// with, so changing it is refused.
    pub fn reconfigure(&self, cfg: EspConfig) -> Result<(), ConfigError> {
        self.check_reconfigure(&cfg)?;
        self.cfg.set(cfg);
        Ok(())
    }

    /// What [`EspDemux::reconfigure`] would refuse, without applying anything.
    pub fn check_reconfigure(&self, cfg: &EspConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        if self.config().layout != cfg.layout {
            return Err(ConfigError::needs_restart("esp.layout"));
        }
        Ok(())
    }

    /// Recorded outbound SPIs.
    pub fn recorded_count(&self) -> usize {
        self.n_recorded.load(Ordering::Relaxed) as usize
    }

    /// Inbound bindings.
    pub fn binding_count(&self) -> usize {
        self.n_bindings.load(Ordering::Relaxed) as usize
    }

    /// Responders with recorded SPIs or bindings.
    pub fn responder_count(&self) -> usize {
        self.responders.len()
    }

    /// The most bindings any one responder has (bounded by
    /// `esp.max_bindings_per_responder`). Locks each responder in turn.
    pub fn max_responder_bindings(&self) -> usize {
        let rs: Vec<Arc<Responder>> = self.responders.iter().map(|r| Arc::clone(&r)).collect();
        rs.iter()
            .map(|r| r.index.lock().bindings as usize)
            .max()
            .unwrap_or(0)
    }

    /// Idle timeout of recorded SPIs and bindings, seconds.
    pub fn idle_timeout(&self) -> u32 {
        self.cfg.get().idle_timeout
    }

    fn deadline(&self, now: Millis) -> u32 {
        ((now / 1000) as u32).saturating_add(self.cfg.get().idle_timeout)
    }

    /// Outbound ESP from `inside` to `remote` with SPI `spi`: record or refresh it.
    pub fn outbound(
        &self,
        table: &Table,
        inside: Ipv4Addr,
        remote: Ipv4Addr,
        spi: u32,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<(), NatDrop> {
        let expires = self.deadline(now);
        if let Some(mut r) = self.recorded.get_mut(&(remote, spi)) {
            if r.inside != inside {
                return Err(ev.count(NatDrop::EspSpiConflict));
            }
            r.expires = expires;
            return Ok(());
        }
        table.admit_esp_spi(inside, now).map_err(|r| ev.count(r))?;
        if !reserve(&self.n_recorded, self.cfg.get().max_spis) {
            table.release_esp_spi(inside);
            return Err(ev.count(NatDrop::EspSpisFull));
        }
        let c = self.cfg.get();
        let l = &c.layout;
        let (spi_tag, digest_tag) = (l.spi_tag(spi), l.digest_tag(spi));
        let raced_owner = {
            let r = self
                .responders
                .entry(remote)
                .or_insert_with(|| Arc::new(Responder::new(c.resolve_burst, now)));
            let mut idx = r.index.lock();
            let raced = match self.recorded.entry((remote, spi)) {
                Entry::Occupied(o) => Some(o.get().inside),
                Entry::Vacant(v) => {
                    v.insert(Recorded { inside, expires });
                    idx.insert(spi, inside, spi_tag, digest_tag);
                    None
                }
            };
            r.publish(&idx);
            raced
        };
        if let Some(owner) = raced_owner {
            // Another worker recorded the same SPI first.
            self.n_recorded.fetch_sub(1, Ordering::Relaxed);
            table.release_esp_spi(inside);
            if owner != inside {
                return Err(ev.count(NatDrop::EspSpiConflict));
            }
            return Ok(());
        }
        ev.esp.spis_recorded += 1;
        Ok(())
    }

    /// Inside host that recorded outbound SPI `spi` towards `remote` (ICMP error quotes).
    pub fn owner_of_outbound(&self, remote: Ipv4Addr, spi: u32) -> Option<Ipv4Addr> {
        self.recorded.get(&(remote, spi)).map(|r| r.inside)
    }

    /// Inbound ESP from `remote` with SPI `spi`: the inside host it belongs to.
    pub fn inbound(
        &self,
        remote: Ipv4Addr,
        spi: u32,
        now: Millis,
        ev: &mut NatEvents,
    ) -> Result<Ipv4Addr, NatDrop> {
        let expires = self.deadline(now);
        if let Some(mut b) = self.bindings.get_mut(&(remote, spi)) {
            b.expires = expires;
            ev.esp.bound_packets += 1;
            return Ok(b.inside);
        }
        let r = self.prefilter(remote, ev)?;
        if let Some(miss) = r.recent_miss(spi) {
            return Err(refusal(miss, ev));
        }
        let c = self.cfg.get();
        let (rate, burst) = (c.resolve_per_sec_per_responder, c.resolve_burst);
        if !r.bucket.lock().take(rate, burst, now) {
            return Err(ev.count(NatDrop::EspResolveRateLimited));
        }
        let probes = self.probes(spi);
        let mut idx = r.index.lock();
        if idx.retired {
            return Err(ev.count(NatDrop::EspNoPending));
        }
        // Another worker may have bound this SPI while we waited.
        if let Some(b) = self.bindings.get(&(remote, spi)) {
            ev.esp.bound_packets += 1;
            return Ok(b.inside);
        }
        let found = idx.lookup(probes, c.single_pending_fallback);
        r.remember_miss(spi, found);
        let (inside, out_spi, how) = outcome(found, ev)?;
        if idx.bindings >= c.max_bindings_per_responder {
            return Err(ev.count(NatDrop::EspResponderBindingLimit));
        }
        if !reserve(&self.n_bindings, c.max_bindings) {
            return Err(ev.count(NatDrop::EspBindingsFull));
        }
        idx.pair(out_spi, spi);
        idx.bindings += 1;
        self.bindings.insert(
            (remote, spi),
            Binding {
                inside,
                expires,
                out_spi,
            },
        );
        r.publish(&idx);
        match how {
            Resolution::ResponderDerived => ev.esp.matched_responder_derived += 1,
            Resolution::InsideDerived => ev.esp.matched_inside_derived += 1,
            Resolution::Fallback => ev.esp.fallback_binds += 1,
        }
        Ok(inside)
    }

    /// The responder's index if it has an unpaired SPI: no MD5, no index lock.
    fn prefilter(&self, remote: Ipv4Addr, ev: &mut NatEvents) -> Result<Arc<Responder>, NatDrop> {
        match self.responders.get(&remote).map(|r| Arc::clone(&r)) {
            Some(r) if r.has_unpaired() => Ok(r),
            _ => Err(ev.count(NatDrop::EspNoPending)),
        }
    }

    /// The tags of an unknown inbound SPI to look up, per configured relation
    /// (the responder-derives one costs an MD5).
    fn probes(&self, spi: u32) -> Probes {
        let c = self.cfg.get();
        let l = &c.layout;
        let (resp, inside) = match c.relations {
            Relations::ResponderDerives => (true, false),
            Relations::InsideDerives => (false, true),
            Relations::Both => (true, true),
        };
        Probes {
            responder_derived: resp.then(|| l.digest_tag(spi)),
            inside_derived: inside.then(|| l.spi_tag(spi)),
        }
    }

    /// Matches an unbound inbound SPI against the index without binding it,
    /// pairing anything or taking a token. Public for benchmarks; `inbound`
    /// is the dataplane entry.
    pub fn resolve(
        &self,
        remote: Ipv4Addr,
        spi: u32,
        ev: &mut NatEvents,
    ) -> Result<(Ipv4Addr, Resolution), NatDrop> {
        let r = self.prefilter(remote, ev)?;
        let probes = self.probes(spi);
        let idx = r.index.lock();
        let (inside, _, how) = outcome(
            idx.lookup(probes, self.cfg.get().single_pending_fallback),
            ev,
        )?;
        Ok((inside, how))
    }

    /// Drops recorded SPIs and bindings idle past the timeout (an expired
    /// binding makes its outbound SPI a candidate again), then responders
    /// left with neither.
    pub fn expire(&self, table: &Table, now: Millis, ev: &mut NatEvents) {
        let now_s = (now / 1000) as u32;
        // Collect first: no shard of `recorded` / `bindings` may be held
        // while a responder's index is locked below.
        let mut dead: HashMap<Ipv4Addr, (Vec<u32>, Vec<u32>)> = HashMap::new();
        for b in self.bindings.iter().filter(|b| b.expires <= now_s) {
            dead.entry(b.key().0).or_default().0.push(b.key().1);
        }
        for r in self.recorded.iter().filter(|r| r.expires <= now_s) {
            dead.entry(r.key().0).or_default().1.push(r.key().1);
        }
        let l = self.cfg.get().layout;
        let mut released: Vec<Ipv4Addr> = Vec::new();
        for (remote, (in_spis, out_spis)) in dead {
            let Some(r) = self.responders.get(&remote).map(|r| Arc::clone(&r)) else {
                continue;
            };
            let mut idx = r.index.lock();
            for in_spi in in_spis {
                // Re-checked under the lock: traffic may have refreshed it.
                if let Some((_, b)) = self
                    .bindings
                    .remove_if(&(remote, in_spi), |_, b| b.expires <= now_s)
                {
                    idx.unpair(b.out_spi, in_spi);
                    idx.bindings = idx.bindings.saturating_sub(1);
                    self.n_bindings.fetch_sub(1, Ordering::Relaxed);
                    ev.esp.bindings_expired += 1;
                }
            }
            for spi in out_spis {
                if let Some((_, rec)) = self
                    .recorded
                    .remove_if(&(remote, spi), |_, r| r.expires <= now_s)
                {
                    idx.remove(spi, l.spi_tag(spi));
                    self.n_recorded.fetch_sub(1, Ordering::Relaxed);
                    released.push(rec.inside);
                    ev.esp.spis_expired += 1;
                }
            }
            r.publish(&idx);
        }
        for inside in released {
            table.release_esp_spi(inside);
        }
        self.responders.retain(|_, r| {
            let mut idx = r.index.lock();
            if idx.is_empty() {
                idx.retired = true;
                false
            } else {
                true
            }
        });
    }
}

/// Turns a lookup into the binding to make or a counted drop.
fn outcome(found: Lookup, ev: &mut NatEvents) -> Result<(Ipv4Addr, u32, Resolution), NatDrop> {
    match found {
        Lookup::Bind {
            inside,
            out_spi,
            how,
        } => Ok((inside, out_spi, how)),
        miss => Err(refusal(miss, ev)),
    }
}

/// Counts and returns the drop reason of a refused lookup.
fn refusal(miss: Lookup, ev: &mut NatEvents) -> NatDrop {
    ev.count(match miss {
        Lookup::Collision => NatDrop::EspCollision,
        Lookup::AlreadyPaired => NatDrop::EspAlreadyPaired,
        Lookup::Unmatched | Lookup::Bind { .. } => NatDrop::EspUnmatched,
    })
}
