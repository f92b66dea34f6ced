//! Consistency of the demultiplexer's maps, indexes and counters, for tests
//! and fuzzing. Only meaningful while no other thread is using it.

use super::super::invariants::check;
use super::EspDemux;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

impl EspDemux {
    /// Checks that the counters match the maps, each responder's index holds
    /// exactly its recorded SPIs under their tags, the unpaired lists and
    /// counts match the pairing state, every pairing has its binding (an SA
    /// pairs once), and the caps hold.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let c = self.config();
        let nr = self.n_recorded.load(Ordering::Relaxed) as usize;
        let nb = self.n_bindings.load(Ordering::Relaxed) as usize;
        check(nr == self.recorded.len(), || {
            format!("n_recorded {nr} != {}", self.recorded.len())
        })?;
        check(nb == self.bindings.len(), || {
            format!("n_bindings {nb} != {}", self.bindings.len())
        })?;
        check(nr <= c.max_spis as usize, || "max_spis exceeded".into())?;
        check(nb <= c.max_bindings as usize, || {
            "max_bindings exceeded".into()
        })?;

        let mut bindings_per: HashMap<Ipv4Addr, u32> = HashMap::new();
        for b in self.bindings.iter() {
            let r = b.key().0;
            *bindings_per.entry(r).or_default() += 1;
            check(self.responders.contains_key(&r), || {
                format!("binding {:?} has no responder", b.key())
            })?;
        }
        let mut spis_seen = 0usize;
        for r in self.responders.iter() {
            let remote = *r.key();
            let idx = r.index.lock();
            check(!idx.retired, || {
                format!("responder {remote} retired but listed")
            })?;
            let want = bindings_per.get(&remote).copied().unwrap_or(0);
            check(idx.bindings == want, || {
                format!(
                    "responder {remote} counts {} bindings, has {want}",
                    idx.bindings
                )
            })?;
            check(idx.bindings <= c.max_bindings_per_responder, || {
                format!("responder {remote} over max_bindings_per_responder")
            })?;
            let mut unpaired: HashMap<Ipv4Addr, Vec<u32>> = HashMap::new();
            for (spi, rec) in &idx.spis {
                spis_seen += 1;
                let g = self.recorded.get(&(remote, *spi)).map(|g| g.inside);
                check(g == Some(rec.inside), || {
                    format!(
                        "index of {remote} holds {spi:#x} for {}, recorded {g:?}",
                        rec.inside
                    )
                })?;
                let l = &c.layout;
                check(rec.digest_tag == l.digest_tag(*spi), || {
                    format!("stale tag of {spi:#x}")
                })?;
                let in_list = |m: &HashMap<u32, Vec<u32>>, t: u32| {
                    m.get(&t)
                        .is_some_and(|v| v.iter().filter(|s| **s == *spi).count() == 1)
                };
                check(in_list(&idx.by_spi_tag, l.spi_tag(*spi)), || {
                    format!("{spi:#x} not once under its spi tag")
                })?;
                check(in_list(&idx.by_digest_tag, rec.digest_tag), || {
                    format!("{spi:#x} not once under its digest tag")
                })?;
                match rec.paired_with {
                    None => unpaired.entry(rec.inside).or_default().push(*spi),
                    Some(in_spi) => {
                        let b = self
                            .bindings
                            .get(&(remote, in_spi))
                            .map(|b| (b.inside, b.out_spi));
                        check(b == Some((rec.inside, *spi)), || {
                            format!("{spi:#x} paired with {in_spi:#x} but binding is {b:?}")
                        })?;
                    }
                }
            }
            let listed: usize = idx.by_spi_tag.values().map(Vec::len).sum();
            let listed_d: usize = idx.by_digest_tag.values().map(Vec::len).sum();
            check(
                listed == idx.spis.len() && listed_d == idx.spis.len(),
                || format!("responder {remote}: stray tag entries"),
            )?;
            let mut have = idx.unpaired.clone();
            for v in have.values_mut().chain(unpaired.values_mut()) {
                v.sort_unstable();
            }
            check(have == unpaired, || {
                format!("responder {remote}: unpaired lists {have:?}, want {unpaired:?}")
            })?;
            let total: usize = unpaired.values().map(Vec::len).sum();
            check(idx.unpaired_total as usize == total, || {
                format!(
                    "responder {remote}: unpaired_total {} != {total}",
                    idx.unpaired_total
                )
            })?;
            check(
                r.unpaired.load(Ordering::Relaxed) == idx.unpaired_total,
                || format!("responder {remote}: pre-filter count not published"),
            )?;
        }
        check(spis_seen == nr, || {
            format!("indexes hold {spis_seen} SPIs, {nr} recorded")
        })?;
        Ok(())
    }

    /// Recorded SPIs per inside host.
    #[doc(hidden)]
    pub fn spis_by_host(&self) -> HashMap<Ipv4Addr, u32> {
        let mut out: HashMap<Ipv4Addr, u32> = HashMap::new();
        for r in self.recorded.iter() {
            *out.entry(r.inside).or_default() += 1;
        }
        out
    }

    /// True when nothing is recorded, bound or indexed.
    #[doc(hidden)]
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
            && self.bindings.is_empty()
            && self.responders.is_empty()
            && self.n_recorded.load(Ordering::Relaxed) == 0
            && self.n_bindings.load(Ordering::Relaxed) == 0
    }
}
