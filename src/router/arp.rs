//! ARP cache and resolution queue, shared by all workers.
//!
//! A miss queues the frame (bounded per next hop and in number of next
//! hops) and asks the caller to send a request; a reply or a request from the
//! neighbour releases the queue. `tick` drives retries and gives up after
//! `max_requests`, reporting the frames it dropped.

use super::config::Arp as ArpConfig;
use super::stats::{DropReason, Side};
use crate::nat::Millis;
use crate::wire::ethernet::Mac;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

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

/// The resolver.
/// `F` is what waits for resolution (a frame and its offload state).
pub struct ArpTable<F = Vec<u8>> {
    cfg: ArpConfig,
    cache: DashMap<(Side, Ipv4Addr), (Mac, Millis)>,
    pending: Mutex<HashMap<(Side, Ipv4Addr), Pending<F>>>,
}

impl<F> ArpTable<F> {
    /// Empty table.
    pub fn new(cfg: ArpConfig) -> Self {
        ArpTable {
            cfg,
            cache: DashMap::new(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Cached MAC of `ip` on `side`, if fresh.
    pub fn lookup(&self, side: Side, ip: Ipv4Addr, now: Millis) -> Option<Mac> {
        self.cache
            .get(&(side, ip))
            .and_then(|e| (e.1 > now).then_some(e.0))
    }

    /// Entries cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Queues `frame` until `ip` resolves.
    pub fn enqueue(
        &self,
        side: Side,
        ip: Ipv4Addr,
        frame: F,
        now: Millis,
    ) -> Result<Queued, DropReason> {
        let mut p = self.pending.lock();
        let hops = p.len();
        match p.get_mut(&(side, ip)) {
            Some(q) => {
                if q.frames.len() >= self.cfg.queue_per_hop {
                    return Err(DropReason::ArpQueueFull);
                }
                q.frames.push_back(frame);
                Ok(Queued::Waiting)
            }
            None => {
                if hops >= self.cfg.max_pending_hops {
                    return Err(DropReason::ArpQueueFull);
                }
                let mut frames = VecDeque::new();
                frames.push_back(frame);
                p.insert(
                    (side, ip),
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

    /// Records `ip` is at `mac` (RFC 826 merge: refresh known entries, add
    /// when `add` — the frame was addressed to us or answers our request)
    /// and returns the frames that were waiting for it.
    pub fn learn(&self, side: Side, ip: Ipv4Addr, mac: Mac, add: bool, now: Millis) -> Vec<F> {
        if ip.is_unspecified() || mac.is_multicast() || mac == Mac::ZERO {
            return Vec::new();
        }
        let expires = now + u64::from(self.cfg.cache_timeout) * 1000;
        let waiting = self.pending.lock().remove(&(side, ip)).map(|p| p.frames);
        if add || waiting.is_some() || self.cache.contains_key(&(side, ip)) {
            self.cache.insert((side, ip), (mac, expires));
        }
        waiting.map(Vec::from).unwrap_or_default()
    }

    /// Retries and expiry; call every few hundred milliseconds.
    pub fn tick(&self, now: Millis) -> Tick {
        let mut t = Tick::default();
        let retry = u64::from(self.cfg.retry_ms);
        let max = self.cfg.max_requests;
        self.pending.lock().retain(|k, p| {
            if now.saturating_sub(p.last_request) < retry {
                return true;
            }
            if p.requests >= max {
                t.dropped += p.frames.len() as u64;
                return false;
            }
            p.requests += 1;
            p.last_request = now;
            t.retry.push(*k);
            true
        });
        self.cache.retain(|_, e| e.1 > now);
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
        assert_eq!(
            t.enqueue(Side::Outside, IP, b"x".to_vec(), 0),
            Err(DropReason::ArpQueueFull),
            "hop limit"
        );
        let out = t.learn(Side::Inside, IP, MAC, false, 5);
        assert_eq!(out, vec![b"f1".to_vec(), b"f2".to_vec()]);
        assert_eq!(t.lookup(Side::Inside, IP, 10), Some(MAC));
        assert_eq!(t.lookup(Side::Outside, IP, 10), None);
    }

    #[test]
    fn retries_then_gives_up() {
        let t = table();
        t.enqueue(Side::Inside, IP, b"f1".to_vec(), 0).unwrap();
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
}
