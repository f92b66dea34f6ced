//! The engine's IKE SAs, keyed by our SPI, with two indexes kept in step
//! on every insert and remove, so that nothing per event scans all SAs:
//! - each SA's earliest timer (`Engine::next_timer`, computed by the engine
//!   when it puts the SA back), ordered: the next deadline and the SAs due
//!   come from the front of a `BTreeSet`;
//! - each peer policy's SAs, oldest first, for the per-peer cap and
//!   INITIAL_CONTACT.
//!
//! SAs are only changed while out of the table (`remove`, change,
//! `insert`), which is what keeps both indexes exact. The one exception,
//! `for_peer_mut`, may not touch anything an index depends on.

use super::sa::IkeSa;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Every IKE SA of an engine and its indexes.
#[derive(Default)]
pub(super) struct SaTable {
    sas: HashMap<u64, IkeSa>,
    /// (deadline, SPI) of every SA with a timer.
    timers: BTreeSet<(u64, u64)>,
    /// SPI → its deadline in `timers`.
    armed: HashMap<u64, u64>,
    /// SAs with queued tasks (run whenever timers are handled).
    tasks: HashSet<u64>,
    /// Peer policy → (creation time, SPI) of its SAs.
    by_peer: HashMap<usize, BTreeSet<(u64, u64)>>,
}

impl SaTable {
    /// Stores `sa` under its SPI with its earliest timer (`None`: none),
    /// replacing any SA stored under the same SPI.
    pub fn insert(&mut self, sa: IkeSa, deadline: Option<u64>) {
        let spi = sa.local_spi();
        self.remove(spi);
        if let Some(t) = deadline {
            self.timers.insert((t, spi));
            self.armed.insert(spi, t);
        }
        if !sa.tasks.is_empty() {
            self.tasks.insert(spi);
        }
        if let Some(p) = sa.peer {
            self.by_peer
                .entry(p)
                .or_default()
                .insert((sa.created_at, spi));
        }
        self.sas.insert(spi, sa);
    }

    /// Takes the SA with our SPI `spi` out.
    pub fn remove(&mut self, spi: u64) -> Option<IkeSa> {
        let sa = self.sas.remove(&spi)?;
        if let Some(t) = self.armed.remove(&spi) {
            self.timers.remove(&(t, spi));
        }
        self.tasks.remove(&spi);
        if let Some(p) = sa.peer {
            if let Some(set) = self.by_peer.get_mut(&p) {
                set.remove(&(sa.created_at, spi));
                if set.is_empty() {
                    self.by_peer.remove(&p);
                }
            }
        }
        Some(sa)
    }

    /// The SA with our SPI `spi`.
    pub fn get(&self, spi: u64) -> Option<&IkeSa> {
        self.sas.get(&spi)
    }

    /// True when an SA has our SPI `spi`.
    pub fn contains_key(&self, spi: u64) -> bool {
        self.sas.contains_key(&spi)
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// The SAs, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &IkeSa> {
        self.sas.values()
    }

    /// (our SPI, SA) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &IkeSa)> {
        self.sas.iter().map(|(k, v)| (*k, v))
    }

    /// The earliest timer of all SAs.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// SAs with a timer due at `now`, earliest first, then those with
    /// queued tasks.
    pub fn due(&self, now: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .timers
            .range(..=(now, u64::MAX))
            .map(|(_, spi)| *spi)
            .collect();
        v.extend(self.tasks.iter().filter(|s| !self.armed_by(**s, now)));
        v
    }

    /// True when `spi`'s timer is due at `now` (it is in the first part of `due`).
    fn armed_by(&self, spi: u64, now: u64) -> bool {
        self.armed.get(&spi).is_some_and(|t| *t <= now)
    }

    /// Our SPIs of peer policy `peer`'s SAs, oldest first.
    pub fn of_peer(&self, peer: usize) -> impl Iterator<Item = u64> + '_ {
        self.by_peer
            .get(&peer)
            .into_iter()
            .flat_map(|s| s.iter().map(|(_, spi)| *spi))
    }

    /// Number of peer policy `peer`'s SAs.
    pub fn peer_len(&self, peer: usize) -> usize {
        self.by_peer.get(&peer).map_or(0, BTreeSet::len)
    }

    /// Applies `f` to every SA of peer policy `peer` in place; returns how
    /// many. `f` must not change timers, tasks, the peer or the creation
    /// time (the indexes would go stale); addresses are fine.
    pub fn for_peer_mut(&mut self, peer: usize, mut f: impl FnMut(&mut IkeSa)) -> usize {
        let mut n = 0;
        for spi in self.by_peer.get(&peer).into_iter().flatten() {
            if let Some(sa) = self.sas.get_mut(&spi.1) {
                f(sa);
                n += 1;
            }
        }
        n
    }

    /// Checks the indexes against the SAs: every SA's armed deadline is
    /// `deadline(sa)`, and the peer and task sets hold exactly what the
    /// SAs say. For tests.
    #[cfg(test)]
    pub fn assert_consistent(&self, deadline: impl Fn(&IkeSa) -> Option<u64>) {
        assert_eq!(self.timers.len(), self.armed.len());
        for (spi, sa) in &self.sas {
            assert_eq!(*spi, sa.local_spi());
            assert_eq!(
                self.armed.get(spi).copied(),
                deadline(sa),
                "timer index of SA {spi:#x}"
            );
            if let Some(t) = self.armed.get(spi) {
                assert!(self.timers.contains(&(*t, *spi)));
            }
            assert_eq!(self.tasks.contains(spi), !sa.tasks.is_empty());
            if let Some(p) = sa.peer {
                assert!(self.by_peer[&p].contains(&(sa.created_at, *spi)));
            }
        }
        let indexed: usize = self.by_peer.values().map(BTreeSet::len).sum();
        assert_eq!(
            indexed,
            self.sas.values().filter(|s| s.peer.is_some()).count()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::sa::{Role, Task};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn sa(spi: u64, peer: Option<usize>, created: u64) -> IkeSa {
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 500);
        let mut s = IkeSa::new(Role::Initiator, spi, a, a, created);
        s.peer = peer;
        s
    }

    #[test]
    fn deadlines_follow_insert_and_remove() {
        let mut t = SaTable::default();
        t.insert(sa(1, None, 0), Some(300));
        t.insert(sa(2, None, 0), Some(100));
        t.insert(sa(3, None, 0), None);
        assert_eq!(t.next_deadline(), Some(100));
        assert_eq!(t.due(99), Vec::<u64>::new());
        assert_eq!(t.due(300), vec![2, 1]);
        // Taken out and put back with a later timer: the old one is gone.
        let s = t.remove(2).unwrap();
        t.insert(s, Some(500));
        assert_eq!(t.next_deadline(), Some(300));
        assert_eq!(t.due(400), vec![1]);
        // Replacing under the same SPI drops the replaced SA's timer.
        t.insert(sa(1, None, 0), None);
        assert_eq!(t.next_deadline(), Some(500));
        t.remove(2);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.len(), 2);
        t.assert_consistent(|s| {
            if s.spi_i == 1 || s.spi_i == 3 {
                None
            } else {
                Some(0)
            }
        });
    }

    #[test]
    fn tasks_are_due_once_whatever_the_timer() {
        let mut t = SaTable::default();
        let mut s = sa(7, None, 0);
        s.tasks.push_back(Task::Dpd);
        t.insert(s, Some(50));
        assert_eq!(t.due(10), vec![7]);
        assert_eq!(t.due(60), vec![7]);
        let mut s = t.remove(7).unwrap();
        s.tasks.clear();
        t.insert(s, None);
        assert!(t.due(1000).is_empty());
    }

    #[test]
    fn peers_list_their_sas_oldest_first() {
        let mut t = SaTable::default();
        t.insert(sa(10, Some(0), 30), None);
        t.insert(sa(11, Some(0), 10), None);
        t.insert(sa(12, Some(1), 20), None);
        t.insert(sa(13, None, 5), None);
        assert_eq!(t.of_peer(0).collect::<Vec<_>>(), vec![11, 10]);
        assert_eq!(t.of_peer(1).collect::<Vec<_>>(), vec![12]);
        assert_eq!(t.of_peer(2).count(), 0);
        assert_eq!((t.peer_len(0), t.peer_len(2)), (2, 0));
        // A responder learns the peer in IKE_AUTH: out, set, back in.
        let mut s = t.remove(13).unwrap();
        s.peer = Some(1);
        t.insert(s, None);
        assert_eq!(t.of_peer(1).collect::<Vec<_>>(), vec![13, 12]);
        let moved = t.for_peer_mut(1, |s| s.remote.set_port(4500));
        assert_eq!(moved, 2);
        assert_eq!(t.get(12).unwrap().remote.port(), 4500);
        t.remove(12);
        t.remove(13);
        assert_eq!(t.of_peer(1).count(), 0);
        t.assert_consistent(|_| None);
    }
}
