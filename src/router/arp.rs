//! ARP cache and resolution queue, shared by all workers.
//!
//! A miss queues the frame (bounded per next hop, and in next hops per
//! interface so an inside scan cannot starve re-resolution of the outside
//! gateway) and asks the caller to send a request; a reply or a request from
//! the neighbour releases the queue. `tick` drives retries and gives up after
//! `max_requests`, reporting the frames it dropped.
//!
//! What the outside can add is bounded: entries are created only by ARP
//! addressed to the router or answering its own request, at most
//! `max_entries` per interface (answers to the router's own requests are
//! always cached; there are at most `max_pending_hops` of those), and they
//! expire after `cache_timeout`. Unsolicited ARP (gratuitous, or for another
//! host) updates the MAC of a known entry but never extends its life.
//! Senders are checked against the interface's prefix by the caller.

use super::config::Arp as ArpConfig;
use super::stats::{DropReason, Side};
use crate::nat::Millis;
use crate::rate_limit::reserve;
use crate::wire::ethernet::Mac;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

struct Pending<F> {
    frames: VecDeque<F>,
    last_request: Millis,
    requests: u32,
}

/// What happened to a frame whose next hop had no cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued; the caller must send an ARP request now.
    SendRequest,
    /// Queued behind an outstanding request.
    Waiting,
}

/// Output of a retry tick.
#[derive(Debug, Default)]
pub struct Tick {
    /// Next hops to send another request for.
    pub retry: Vec<(Side, Ipv4Addr)>,
    /// Frames dropped because their next hop never answered.
    pub dropped: u64,
}

/// What one received ARP did to the table.
#[derive(Debug)]
pub struct Learned<F> {
    /// Frames that were waiting for the sender, to send now.
    pub released: Vec<F>,
    /// The sender would have been cached but the interface's cache is full.
    pub cache_full: bool,
}

/// The resolver.
/// `F` is what waits for resolution (a frame and its offload state).
pub struct ArpTable<F = Vec<u8>> {
    /// Replaced by [`ArpTable::reconfigure`].
    cfg: crate::live::Live<ArpConfig, 6>,
    /// Per side (`Side as usize`): address → (MAC, expiry).
    cache: [DashMap<Ipv4Addr, (Mac, Millis)>; 2],
    /// Entries in each side's `cache`, exact: the cap check is one atomic,
    /// not a walk over the map's shards for every new sender of a flood.
    counts: [AtomicU32; 2],
    /// Per side: unresolved next hops and their queued frames.
    pending: [Mutex<HashMap<Ipv4Addr, Pending<F>>>; 2],
}

impl<F> ArpTable<F> {
    /// Empty table.
    pub fn new(cfg: ArpConfig) -> Self {
        ArpTable {
            cfg: crate::live::Live::new(cfg),
            cache: [DashMap::new(), DashMap::new()],
            counts: [AtomicU32::new(0), AtomicU32::new(0)],
            pending: [Mutex::new(HashMap::new()), Mutex::new(HashMap::new())],
        }
    }

    /// Applies changed settings: every one takes effect at once (entries
    /// already cached keep their expiry; a lowered cap refuses new senders
    /// until expiry brings the cache under it).
    pub fn reconfigure(&self, cfg: ArpConfig) {
        self.cfg.set(cfg);
    }

    fn cache(&self, side: Side) -> &DashMap<Ipv4Addr, (Mac, Millis)> {
        &self.cache[side as usize]
    }

    /// Cached MAC of `ip` on `side`, if fresh.
    pub fn lookup(&self, side: Side, ip: Ipv4Addr, now: Millis) -> Option<Mac> {
        self.cache(side)
            .get(&ip)
            .and_then(|e| (e.1 > now).then_some(e.0))
    }

    /// Entries cached on both sides.
    pub fn len(&self) -> usize {
        self.len_on(Side::Inside) + self.len_on(Side::Outside)
    }

    /// Entries cached on `side`.
    pub fn len_on(&self, side: Side) -> usize {
        self.counts[side as usize].load(Ordering::Relaxed) as usize
    }

    /// Next hops waiting for resolution on `side`.
    pub fn pending_on(&self, side: Side) -> usize {
        self.pending[side as usize].lock().len()
    }

    /// The cache of `side` (address, MAC, ms until expiry), sorted, at `now`.
    pub fn neighbours(&self, side: Side, now: Millis) -> Vec<(Ipv4Addr, Mac, Millis)> {
        let mut v: Vec<_> = self
            .cache(side)
            .iter()
            .map(|e| (*e.key(), e.0, e.1.saturating_sub(now)))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// The unresolved next hops of `side`: address, frames queued, requests sent.
    pub fn unresolved(&self, side: Side) -> Vec<(Ipv4Addr, usize, u32)> {
        let mut v: Vec<_> = self.pending[side as usize]
            .lock()
            .iter()
            .map(|(ip, p)| (*ip, p.frames.len(), p.requests))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `frame` until `ip` resolves.
    pub fn enqueue(
        &self,
        side: Side,
        ip: Ipv4Addr,
        frame: F,
        now: Millis,
    ) -> Result<Queued, DropReason> {
        let mut p = self.pending[side as usize].lock();
        let hops = p.len();
        match p.get_mut(&ip) {
            Some(q) => {
                if q.frames.len() >= self.cfg.get().queue_per_hop {
                    return Err(DropReason::ArpQueueFull);
                }
                q.frames.push_back(frame);
                Ok(Queued::Waiting)
            }
            None => {
                if hops >= self.cfg.get().max_pending_hops {
                    return Err(DropReason::ArpQueueFull);
                }
                let mut frames = VecDeque::new();
                frames.push_back(frame);
                p.insert(
                    ip,
                    Pending {
                        frames,
                        last_request: now,
                        requests: 1,
                    },
                );
                Ok(Queued::SendRequest)
            }
        }
    }

    /// Records that `ip` is at `mac` (sender of an ARP received on `side`,
    /// already checked to be on that side's prefix). `to_us`: the ARP was
    /// addressed to one of the router's addresses. Returns the frames that
    /// were waiting for it.
    pub fn learn(
        &self,
        side: Side,
        ip: Ipv4Addr,
        mac: Mac,
        to_us: bool,
        now: Millis,
    ) -> Learned<F> {
        let mut out = Learned {
            released: Vec::new(),
            cache_full: false,
        };
        if ip.is_unspecified() || mac.is_multicast() || mac == Mac::ZERO {
            return out;
        }
        let expires =
            now.saturating_add(u64::from(self.cfg.get().cache_timeout).saturating_mul(1000));
        let waiting = self.pending[side as usize].lock().remove(&ip);
        let (cache, count) = (self.cache(side), &self.counts[side as usize]);
        if let Some(p) = waiting {
            // Answers our own request: always cached (bounded by the pending hops).
            if cache.insert(ip, (mac, expires)).is_none() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            out.released = Vec::from(p.frames);
        } else if let Some(mut e) = cache.get_mut(&ip) {
            e.0 = mac;
            if to_us {
                e.1 = expires;
            }
        } else if to_us {
            let max = u32::try_from(self.cfg.get().max_entries).unwrap_or(u32::MAX);
            if !reserve(count, max) {
                out.cache_full = true;
            } else if cache.insert(ip, (mac, expires)).is_some() {
                // Raced with another thread adding the same sender.
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        out
    }

    /// Retries and expiry; call every few hundred milliseconds.
    pub fn tick(&self, now: Millis) -> Tick {
        let mut t = Tick::default();
        let retry = u64::from(self.cfg.get().retry_ms);
        let max = self.cfg.get().max_requests;
        for side in [Side::Inside, Side::Outside] {
            self.pending[side as usize].lock().retain(|ip, p| {
                if now.saturating_sub(p.last_request) < retry {
                    return true;
                }
                if p.requests >= max {
                    t.dropped += p.frames.len() as u64;
                    return false;
                }
                p.requests += 1;
                p.last_request = now;
                t.retry.push((side, *ip));
                true
            });
            let count = &self.counts[side as usize];
            self.cache(side).retain(|_, e| {
                let keep = e.1 > now;
                if !keep {
                    count.fetch_sub(1, Ordering::Relaxed);
                }
                keep
            });
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 6, 1, 2);
    const MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);

    fn table() -> ArpTable {
        ArpTable::new(ArpConfig {
            queue_per_hop: 2,
            max_pending_hops: 1,
            ..ArpConfig::default()
        })
    }

    #[test]
    fn miss_queues_then_reply_releases() {
        let t = table();
        assert_eq!(t.lookup(Side::Inside, IP, 0), None);
        assert_eq!(
            t.enqueue(Side::Inside, IP, b"f1".to_vec(), 0),
            Ok(Queued::SendRequest)
        );
        assert_eq!(
            t.enqueue(Side::Inside, IP, b"f2".to_vec(), 0),
            Ok(Queued::Waiting)
        );
        assert_eq!(
            t.enqueue(Side::Inside, IP, b"f3".to_vec(), 0),
            Err(DropReason::ArpQueueFull)
        );
        let other = Ipv4Addr::new(10, 6, 1, 3);
        assert_eq!(
            t.enqueue(Side::Inside, other, b"x".to_vec(), 0),
            Err(DropReason::ArpQueueFull),
            "hop limit"
        );
        assert_eq!(
            t.enqueue(Side::Outside, other, b"x".to_vec(), 0),
            Ok(Queued::SendRequest),
            "each side has its own hop budget"
        );
        let out = t.learn(Side::Inside, IP, MAC, false, 5);
        assert_eq!(out.released, vec![b"f1".to_vec(), b"f2".to_vec()]);
        assert_eq!(t.lookup(Side::Inside, IP, 10), Some(MAC));
        assert_eq!(t.lookup(Side::Outside, IP, 10), None);
    }

    #[test]
    fn retries_then_gives_up() {
        let t = table();
        t.enqueue(Side::Inside, IP, b"f1".to_vec(), 0).unwrap();
        assert_eq!(t.pending_on(Side::Inside), 1);
        assert!(t.tick(500).retry.is_empty());
        assert_eq!(t.tick(1000).retry, vec![(Side::Inside, IP)]);
        assert_eq!(t.tick(2000).retry.len(), 1);
        let last = t.tick(3000);
        assert!(last.retry.is_empty());
        assert_eq!(last.dropped, 1);
    }

    #[test]
    fn entries_expire_and_unsolicited_are_not_added() {
        let t = table();
        t.learn(Side::Inside, IP, MAC, false, 0);
        assert_eq!(
            t.lookup(Side::Inside, IP, 1),
            None,
            "gratuitous from a stranger not cached"
        );
        t.learn(Side::Inside, IP, MAC, true, 0);
        assert_eq!(t.lookup(Side::Inside, IP, 299_999), Some(MAC));
        t.tick(300_000);
        assert_eq!(t.lookup(Side::Inside, IP, 300_000), None);
        assert!(t.is_empty());
        t.learn(Side::Inside, IP, Mac::BROADCAST, true, 0);
        assert!(t.is_empty());
    }

    #[test]
    fn unsolicited_arp_does_not_keep_an_entry_alive() {
        let t = table();
        t.learn(Side::Inside, IP, MAC, true, 0);
        let other = Mac([2, 0, 0, 0, 0, 9]);
        t.learn(Side::Inside, IP, other, false, 200_000);
        assert_eq!(
            t.lookup(Side::Inside, IP, 200_000),
            Some(other),
            "MAC updated"
        );
        assert_eq!(
            t.lookup(Side::Inside, IP, 300_000),
            None,
            "life not extended"
        );
    }

    #[test]
    fn cache_is_capped_per_side_but_answers_to_our_requests_fit() {
        let t: ArpTable = ArpTable::new(ArpConfig {
            max_entries: 2,
            ..ArpConfig::default()
        });
        for i in 1..=3 {
            let l = t.learn(Side::Inside, Ipv4Addr::new(10, 6, 1, i), MAC, true, 0);
            assert_eq!(l.cache_full, i == 3);
        }
        assert_eq!(t.len_on(Side::Inside), 2);
        assert!(!t.learn(Side::Outside, IP, MAC, true, 0).cache_full);
        let gw = Ipv4Addr::new(10, 6, 1, 9);
        t.enqueue(Side::Inside, gw, b"f".to_vec(), 0).unwrap();
        let l = t.learn(Side::Inside, gw, MAC, false, 0);
        assert!(!l.cache_full && l.released.len() == 1);
        assert_eq!(t.lookup(Side::Inside, gw, 1), Some(MAC));
        t.tick(u64::MAX);
        assert!(t.is_empty());
    }
}
