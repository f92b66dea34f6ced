//! One responder's share of the ESP demultiplexer: its recorded outbound
//! SPIs indexed by tag, which of them are still unpaired, its binding count
//! and the token bucket in front of its index. Each responder has its own
//! locks, so a flood aimed at one never serialises work for another.

use super::Resolution;
use crate::rate_limit::TokenBucket;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slots of the recent-miss cache (direct-mapped by SPI).
const MISS_SLOTS: usize = 16;

/// A recorded outbound SPI as the index sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rec {
    pub(super) inside: Ipv4Addr,
    /// `digest_tag` of the SPI, kept so removal needs no MD5.
    pub(super) digest_tag: u32,
    /// The inbound SPI this outbound SPI paired with (an SA pairs once).
    pub(super) paired_with: Option<u32>,
}

/// Tags of an unknown inbound SPI to probe, per relation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Probes {
    /// `digest_tag(S_in)`, looked up among recorded SPIs' own tags
    /// (responder-derives).
    pub(super) responder_derived: Option<u32>,
    /// `spi_tag(S_in)`, looked up among recorded SPIs' digest tags
    /// (inside-derives).
    pub(super) inside_derived: Option<u32>,
}

/// What the index says about an unknown inbound SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Exactly one inside host has an unpaired matching SPI (`out_spi`).
    Bind {
        inside: Ipv4Addr,
        out_spi: u32,
        how: Resolution,
    },
    /// Unpaired matches from several inside hosts.
    Collision,
    /// Only SPIs that already paired match.
    AlreadyPaired,
    /// Nothing matches.
    Unmatched,
}

/// The index proper, under the responder's lock.
#[derive(Default)]
pub(super) struct Index {
    /// Set when the expiry sweep removed this responder from the map: a
    /// holder of a stale reference must not add to it.
    pub(super) retired: bool,
    /// Recorded outbound SPIs toward this responder.
    pub(super) spis: HashMap<u32, Rec>,
    /// `spi_tag(S_out)` → recorded SPIs.
    pub(super) by_spi_tag: HashMap<u32, Vec<u32>>,
    /// `digest_tag(S_out)` → recorded SPIs.
    pub(super) by_digest_tag: HashMap<u32, Vec<u32>>,
    /// Unpaired recorded SPIs per inside host, for the fallback.
    pub(super) unpaired: HashMap<Ipv4Addr, Vec<u32>>,
    /// Unpaired recorded SPIs in total.
    pub(super) unpaired_total: u32,
    /// Inbound SPI bindings with this responder.
    pub(super) bindings: u32,
}

impl Index {
    /// Adds a new recorded SPI with its two tags (unpaired).
    pub(super) fn insert(&mut self, spi: u32, inside: Ipv4Addr, spi_tag: u32, digest_tag: u32) {
        self.spis.insert(
            spi,
            Rec {
                inside,
                digest_tag,
                paired_with: None,
            },
        );
        self.by_spi_tag.entry(spi_tag).or_default().push(spi);
        self.by_digest_tag.entry(digest_tag).or_default().push(spi);
        self.unpaired.entry(inside).or_default().push(spi);
        self.unpaired_total += 1;
    }

    /// Removes a recorded SPI whose own tag is `spi_tag`.
    pub(super) fn remove(&mut self, spi: u32, spi_tag: u32) -> Option<Rec> {
        let rec = self.spis.remove(&spi)?;
        take_from(&mut self.by_spi_tag, spi_tag, spi);
        take_from(&mut self.by_digest_tag, rec.digest_tag, spi);
        if rec.paired_with.is_none() {
            self.drop_unpaired(rec.inside, spi);
        }
        Some(rec)
    }

    fn drop_unpaired(&mut self, inside: Ipv4Addr, spi: u32) {
        take_from(&mut self.unpaired, inside, spi);
        self.unpaired_total = self.unpaired_total.saturating_sub(1);
    }

    /// Marks `out_spi` paired with inbound SPI `in_spi`: no longer a candidate.
    pub(super) fn pair(&mut self, out_spi: u32, in_spi: u32) {
        let Some(rec) = self.spis.get_mut(&out_spi) else {
            return;
        };
        if rec.paired_with.is_some() {
            return;
        }
        rec.paired_with = Some(in_spi);
        let inside = rec.inside;
        self.drop_unpaired(inside, out_spi);
    }

    /// The binding of `in_spi` expired: `out_spi` is a candidate again if it
    /// was paired with that binding.
    pub(super) fn unpair(&mut self, out_spi: u32, in_spi: u32) {
        let Some(rec) = self.spis.get_mut(&out_spi) else {
            return;
        };
        if rec.paired_with != Some(in_spi) {
            return;
        }
        rec.paired_with = None;
        let inside = rec.inside;
        self.unpaired.entry(inside).or_default().push(out_spi);
        self.unpaired_total += 1;
    }

    /// Matches an unknown inbound SPI's tags. Candidates are counted per
    /// inside host; SPIs that already paired are not candidates.
    pub(super) fn lookup(&self, probes: Probes, fallback: bool) -> Lookup {
        let mut found: Option<(Ipv4Addr, u32, Resolution)> = None;
        let (mut collision, mut paired_hit) = (false, false);
        let tries = [
            (
                &self.by_spi_tag,
                probes.responder_derived,
                Resolution::ResponderDerived,
            ),
            (
                &self.by_digest_tag,
                probes.inside_derived,
                Resolution::InsideDerived,
            ),
        ];
        for (map, tag, how) in tries {
            let Some(cands) = tag.and_then(|t| map.get(&t)) else {
                continue;
            };
            for out_spi in cands {
                let Some(rec) = self.spis.get(out_spi) else {
                    continue;
                };
                if rec.paired_with.is_some() {
                    paired_hit = true;
                    continue;
                }
                match found {
                    None => found = Some((rec.inside, *out_spi, how)),
                    Some((o, _, _)) if o == rec.inside => {}
                    Some(_) => collision = true,
                }
            }
        }
        if collision {
            return Lookup::Collision;
        }
        if let Some((inside, out_spi, how)) = found {
            return Lookup::Bind {
                inside,
                out_spi,
                how,
            };
        }
        if fallback && self.unpaired.len() == 1 {
            let only = self
                .unpaired
                .iter()
                .next()
                .and_then(|(o, spis)| Some((*o, *spis.first()?)));
            if let Some((inside, out_spi)) = only {
                return Lookup::Bind {
                    inside,
                    out_spi,
                    how: Resolution::Fallback,
                };
            }
        }
        if paired_hit {
            Lookup::AlreadyPaired
        } else {
            Lookup::Unmatched
        }
    }

    /// Nothing recorded and nothing bound: the responder can be forgotten.
    pub(super) fn is_empty(&self) -> bool {
        self.spis.is_empty() && self.bindings == 0
    }
}

/// Removes `spi` from the list under `key`, dropping the list when empty.
fn take_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u32>>, key: K, spi: u32) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|s| *s != spi);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

/// A responder: the lock-free pre-filter count and recent-miss cache, the
/// rate bucket and the index.
pub(super) struct Responder {
    /// Bumped (under the index lock) by every change to the index, so a
    /// remembered miss is trusted only while the index is as it was.
    version: AtomicU32,
    /// Unknown SPIs recently refused, with the index version and the
    /// refusal: a repeated unmatched SPI (e.g. a non-cooperating
    /// responder's SA) costs neither a token, an MD5 nor the lock.
    misses: [AtomicU64; MISS_SLOTS],
    /// Mirror of `Index::unpaired_total`, read without the lock: a responder
    /// with nothing unpaired cannot match anything, so its unknown SPIs are
    /// dropped before any MD5 or lock.
    pub(super) unpaired: AtomicU32,
    /// Unknown-SPI lookups allowed (in front of the MD5 and `index`).
    pub(super) bucket: Mutex<TokenBucket>,
    pub(super) index: Mutex<Index>,
}

impl Responder {
    pub(super) fn new(burst: u32, now: super::super::Millis) -> Self {
        Responder {
            version: AtomicU32::new(1),
            misses: Default::default(),
            unpaired: AtomicU32::new(0),
            bucket: Mutex::new(TokenBucket::full(burst, now)),
            index: Mutex::new(Index::default()),
        }
    }

    /// After a change to the index (caller holds its lock): publishes the
    /// unpaired count for the pre-filter and forgets remembered misses.
    pub(super) fn publish(&self, idx: &Index) {
        self.unpaired.store(idx.unpaired_total, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    fn miss_slot(&self, spi: u32) -> Option<&AtomicU64> {
        let i = (spi.wrapping_mul(0x9e37_79b1) >> 28) as usize;
        self.misses.get(i % MISS_SLOTS)
    }

    fn miss_entry(&self, spi: u32, kind: u64) -> u64 {
        let v = u64::from(self.version.load(Ordering::Relaxed) & 0x3fff_ffff);
        (u64::from(spi) << 32) | (v << 2) | kind
    }

    /// The refusal remembered for `spi` under the current index, if any.
    pub(super) fn recent_miss(&self, spi: u32) -> Option<Lookup> {
        let got = self.miss_slot(spi)?.load(Ordering::Relaxed);
        [Lookup::Collision, Lookup::AlreadyPaired, Lookup::Unmatched]
            .into_iter()
            .zip(1u64..)
            .find(|(_, kind)| got == self.miss_entry(spi, *kind))
            .map(|(l, _)| l)
    }

    /// Remembers a refusal of `spi` (caller holds the index lock, so the
    /// version is the one the lookup saw).
    pub(super) fn remember_miss(&self, spi: u32, found: Lookup) {
        let kind = match found {
            Lookup::Collision => 1,
            Lookup::AlreadyPaired => 2,
            Lookup::Unmatched => 3,
            Lookup::Bind { .. } => return,
        };
        if let Some(slot) = self.miss_slot(spi) {
            slot.store(self.miss_entry(spi, kind), Ordering::Relaxed);
        }
    }

    /// True when the pre-filter lets an unknown SPI through to the index.
    pub(super) fn has_unpaired(&self) -> bool {
        self.unpaired.load(Ordering::Relaxed) > 0
    }
}
