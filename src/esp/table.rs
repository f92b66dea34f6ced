//! The endpoint's SA lookup: inbound by our SPI, outbound by the peer's
//! inner address (exact host addresses in O(1), then longest prefix).
//! Inner networks are fixed at start; SPIs come and go while running (IKE
//! installs and deletes CHILD_SAs), so they live in a concurrent map.

use dashmap::DashMap;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Why a tunnel could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Another tunnel already receives on this SPI.
    #[error("SPI {0:#010x} is already used by tunnel {1}")]
    DuplicateSpi(u32, usize),
    /// Another tunnel already claims an overlapping inner network.
    #[error("inner network {0} overlaps {1} of tunnel {2}")]
    Overlap(Ipv4Net, Ipv4Net, usize),
}

/// Index from SPIs and inner addresses to tunnel numbers.
#[derive(Debug, Default)]
pub struct SaTable {
    by_spi: DashMap<u32, usize>,
    hosts: HashMap<Ipv4Addr, usize>,
    /// Networks wider than /32, longest prefix first.
    nets: Vec<(Ipv4Net, usize)>,
}

impl SaTable {
    /// Adds tunnel `id`, receiving on `spi`, for traffic to `inner`.
    /// Nothing is added when it fails.
    pub fn insert(&mut self, id: usize, spi: u32, inner: &[Ipv4Net]) -> Result<(), TableError> {
        if let Some(other) = self.by_spi.get(&spi) {
            return Err(TableError::DuplicateSpi(spi, *other));
        }
        self.add_inner(id, inner)?;
        self.by_spi.insert(spi, id);
        Ok(())
    }

    /// Adds tunnel `id`'s inner networks (its SPIs come later, from IKE).
    /// Nothing is added when it fails.
    pub fn add_inner(&mut self, id: usize, inner: &[Ipv4Net]) -> Result<(), TableError> {
        let claimed = self
            .hosts
            .iter()
            .map(|(a, t)| (Ipv4Net::from(*a), *t))
            .chain(self.nets.iter().copied());
        for (net, t) in claimed {
            if let Some(new) = inner.iter().find(|n| n.contains(&net) || net.contains(*n)) {
                return Err(TableError::Overlap(*new, net, t));
            }
        }
        for (i, a) in inner.iter().enumerate() {
            if let Some(b) = inner[i + 1..]
                .iter()
                .find(|b| a.contains(*b) || b.contains(a))
            {
                return Err(TableError::Overlap(*a, *b, id));
            }
        }
        for n in inner {
            if n.prefix_len() == 32 {
                self.hosts.insert(n.addr(), id);
            } else {
                self.nets.push((*n, id));
            }
        }
        self.nets
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        Ok(())
    }

    /// Tunnel receiving on `spi`.
    pub fn by_spi(&self, spi: u32) -> Option<usize> {
        self.by_spi.get(&spi).map(|t| *t)
    }

    /// Routes inbound SPI `spi` to tunnel `id`; false when it is taken.
    pub fn add_spi(&self, spi: u32, id: usize) -> bool {
        match self.by_spi.entry(spi) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(id);
                true
            }
        }
    }

    /// Forgets inbound SPI `spi`.
    pub fn remove_spi(&self, spi: u32) {
        self.by_spi.remove(&spi);
    }

    /// Tunnel for inner destination `dst`.
    pub fn by_inner(&self, dst: Ipv4Addr) -> Option<usize> {
        self.hosts.get(&dst).copied().or_else(|| {
            self.nets
                .iter()
                .find(|(n, _)| n.contains(&dst))
                .map(|(_, t)| *t)
        })
    }

    /// True when `spi` is one of our inbound SPIs (for SPI derivation).
    pub fn is_live(&self, spi: u32) -> bool {
        self.by_spi.contains_key(&spi)
    }

    /// Number of inbound SPIs.
    pub fn len(&self) -> usize {
        self.by_spi.len()
    }

    /// True when no tunnel is configured.
    pub fn is_empty(&self) -> bool {
        self.by_spi.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn finds_by_spi_host_and_longest_prefix() {
        let mut t = SaTable::default();
        t.insert(0, 0x1000, &[net("10.98.0.2/32")]).unwrap();
        t.insert(1, 0x2000, &[net("10.98.0.3/32"), net("10.50.0.0/16")])
            .unwrap();
        t.insert(2, 0x3000, &[net("10.50.7.0/24")]).unwrap_err();
        t.insert(3, 0x4000, &[net("10.60.0.0/16")]).unwrap();
        t.insert(4, 0x5000, &[net("10.70.1.0/24")]).unwrap();
        assert_eq!(t.by_spi(0x2000), Some(1));
        assert_eq!(t.by_spi(0x9999), None);
        assert_eq!(t.by_inner("10.98.0.2".parse().unwrap()), Some(0));
        assert_eq!(t.by_inner("10.50.200.1".parse().unwrap()), Some(1));
        assert_eq!(t.by_inner("10.70.1.9".parse().unwrap()), Some(4));
        assert_eq!(t.by_inner("10.98.0.4".parse().unwrap()), None);
        assert!(t.is_live(0x5000));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn refuses_duplicate_spi_and_overlaps_without_partial_insert() {
        let mut t = SaTable::default();
        t.insert(0, 0x1000, &[net("10.98.0.2/32")]).unwrap();
        assert_eq!(
            t.insert(1, 0x1000, &[net("10.98.0.3/32")]),
            Err(TableError::DuplicateSpi(0x1000, 0))
        );
        assert_eq!(
            t.insert(1, 0x2000, &[net("10.98.0.0/24")]),
            Err(TableError::Overlap(
                net("10.98.0.0/24"),
                net("10.98.0.2/32"),
                0
            ))
        );
        assert!(t
            .insert(1, 0x2000, &[net("10.1.0.0/16"), net("10.1.2.0/24")])
            .is_err());
        assert!(!t.is_live(0x2000), "failed inserts leave nothing behind");
        assert_eq!(t.by_inner("10.1.2.3".parse().unwrap()), None);
    }
}
