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

use super::config::{EspConfig, Relations};
use super::events::{NatDrop, NatEvents};
use super::table::Table;
use super::Millis;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy)]
struct Recorded {
    inside: Ipv4Addr,
    expires: u32,
    /// An inbound SPI has been bound to this outbound SPI's host through it.
    paired: bool,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    inside: Ipv4Addr,
    expires: u32,
}

/// Index of recorded outbound SPIs by tag, per responder.
#[derive(Default)]
struct Index {
    /// (R, spi_tag(S_out)) → recorded (S_out, O).
    by_spi_tag: HashMap<(Ipv4Addr, u32), Vec<(u32, Ipv4Addr)>>,
    /// (R, digest_tag(S_out)) → recorded (S_out, O).
    by_digest_tag: HashMap<(Ipv4Addr, u32), Vec<(u32, Ipv4Addr)>>,
    /// R → unpaired recorded SPIs per inside host (for the fallback).
    unpaired: HashMap<Ipv4Addr, HashMap<Ipv4Addr, u32>>,
}

fn remove_from(
    map: &mut HashMap<(Ipv4Addr, u32), Vec<(u32, Ipv4Addr)>>,
    key: (Ipv4Addr, u32),
    spi: u32,
) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|(s, _)| *s != spi);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

impl Index {
    fn unpaired_dec(&mut self, r: Ipv4Addr, o: Ipv4Addr) {
        if let Some(hosts) = self.unpaired.get_mut(&r) {
            if let Some(n) = hosts.get_mut(&o) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    hosts.remove(&o);
                }
            }
            if hosts.is_empty() {
                self.unpaired.remove(&r);
            }
        }
    }
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
pub struct EspDemux {
    cfg: EspConfig,
    recorded: DashMap<(Ipv4Addr, u32), Recorded>,
    bindings: DashMap<(Ipv4Addr, u32), Binding>,
    index: Mutex<Index>,
}

impl EspDemux {
    /// Empty state under `cfg` (validated by the caller).
    pub fn new(cfg: EspConfig) -> Self {
        EspDemux {
            cfg,
            recorded: DashMap::new(),
            bindings: DashMap::new(),
            index: Mutex::new(Index::default()),
        }
    }

    /// Recorded outbound SPIs.
    pub fn recorded_count(&self) -> usize {
        self.recorded.len()
    }

    /// Inbound bindings.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    fn deadline(&self, now: Millis) -> u32 {
        ((now / 1000) as u32).saturating_add(self.cfg.idle_timeout)
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
        if !table.admit_esp_spi(inside, now) {
            return Err(ev.count(NatDrop::EspHostLimit));
        }
        let mut idx = self.index.lock();
        match self.recorded.entry((remote, spi)) {
            Entry::Occupied(o) => {
                // Raced with another worker recording the same SPI.
                let owner = o.get().inside;
                drop(o);
                drop(idx);
                table.release_esp_spi(inside);
                if owner != inside {
                    return Err(ev.count(NatDrop::EspSpiConflict));
                }
                return Ok(());
            }
            Entry::Vacant(v) => {
                v.insert(Recorded {
                    inside,
                    expires,
                    paired: false,
                });
            }
        }
        let l = &self.cfg.layout;
        idx.by_spi_tag
            .entry((remote, l.spi_tag(spi)))
            .or_default()
            .push((spi, inside));
        idx.by_digest_tag
            .entry((remote, l.digest_tag(spi)))
            .or_default()
            .push((spi, inside));
        *idx.unpaired
            .entry(remote)
            .or_default()
            .entry(inside)
            .or_insert(0) += 1;
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
        let (inside, how) = self.resolve(remote, spi, ev)?;
        self.bindings
            .insert((remote, spi), Binding { inside, expires });
        match how {
            Resolution::ResponderDerived => ev.esp.matched_responder_derived += 1,
            Resolution::InsideDerived => ev.esp.matched_inside_derived += 1,
            Resolution::Fallback => ev.esp.fallback_binds += 1,
        }
        Ok(inside)
    }

    /// Matches an unbound inbound SPI against the index (two probes) without
    /// binding it. Public for benchmarks; `inbound` is the dataplane entry.
    pub fn resolve(
        &self,
        remote: Ipv4Addr,
        spi: u32,
        ev: &mut NatEvents,
    ) -> Result<(Ipv4Addr, Resolution), NatDrop> {
        let l = &self.cfg.layout;
        let mut idx = self.index.lock();
        let mut hosts: Vec<(Ipv4Addr, Resolution, u32)> = Vec::new();
        let mut add = |cands: Option<&Vec<(u32, Ipv4Addr)>>, how: Resolution| {
            for (out_spi, o) in cands.into_iter().flatten() {
                if !hosts.iter().any(|(h, _, _)| h == o) {
                    hosts.push((*o, how, *out_spi));
                }
            }
        };
        let (resp, inside_der) = match self.cfg.relations {
            Relations::ResponderDerives => (true, false),
            Relations::InsideDerives => (false, true),
            Relations::Both => (true, true),
        };
        if resp {
            add(
                idx.by_spi_tag.get(&(remote, l.digest_tag(spi))),
                Resolution::ResponderDerived,
            );
        }
        if inside_der {
            add(
                idx.by_digest_tag.get(&(remote, l.spi_tag(spi))),
                Resolution::InsideDerived,
            );
        }
        match hosts.as_slice() {
            [(o, how, out_spi)] => {
                let (o, how, out_spi) = (*o, *how, *out_spi);
                if let Some(mut r) = self.recorded.get_mut(&(remote, out_spi)) {
                    if !r.paired {
                        r.paired = true;
                        idx.unpaired_dec(remote, o);
                    }
                }
                Ok((o, how))
            }
            [] => {
                if self.cfg.single_pending_fallback {
                    if let Some(pending) = idx.unpaired.get(&remote) {
                        if pending.len() == 1 {
                            if let Some(o) = pending.keys().next().copied() {
                                return Ok((o, Resolution::Fallback));
                            }
                        }
                    }
                }
                Err(ev.count(NatDrop::EspUnmatched))
            }
            _ => Err(ev.count(NatDrop::EspCollision)),
        }
    }

    /// Drops recorded SPIs and bindings idle past the timeout.
    pub fn expire(&self, table: &Table, now: Millis, ev: &mut NatEvents) {
        let now_s = (now / 1000) as u32;
        let mut dead: Vec<((Ipv4Addr, u32), Recorded)> = Vec::new();
        let mut idx = self.index.lock();
        self.recorded.retain(|k, r| {
            if r.expires <= now_s {
                dead.push((*k, *r));
                false
            } else {
                true
            }
        });
        let l = &self.cfg.layout;
        for ((remote, spi), r) in &dead {
            remove_from(&mut idx.by_spi_tag, (*remote, l.spi_tag(*spi)), *spi);
            remove_from(&mut idx.by_digest_tag, (*remote, l.digest_tag(*spi)), *spi);
            if !r.paired {
                idx.unpaired_dec(*remote, r.inside);
            }
        }
        drop(idx);
        for (_, r) in &dead {
            table.release_esp_spi(r.inside);
        }
        ev.esp.spis_expired += dead.len() as u64;
        let mut expired = 0u64;
        self.bindings.retain(|_, b| {
            let keep = b.expires > now_s;
            expired += u64::from(!keep);
            keep
        });
        ev.esp.bindings_expired += expired;
    }
}
