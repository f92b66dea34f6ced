//! Per-thread counter slots: each thread counts into a private copy and
//! publishes it into its slot now and then, so no packet touches a shared
//! atomic; a scrape sums the slots.

use parking_lot::Mutex;
use std::sync::Arc;

/// Counters that can be summed.
pub trait Merge: Default + Clone {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// One slot per thread.
pub struct StatsRegistry<C> {
    slots: Mutex<Vec<Arc<Mutex<C>>>>,
}

impl<C> Default for StatsRegistry<C> {
    fn default() -> Self {
        StatsRegistry {
            slots: Mutex::new(Vec::new()),
        }
    }
}

impl<C: Merge> StatsRegistry<C> {
    /// A new slot for a thread.
    pub fn slot(&self) -> Arc<Mutex<C>> {
        let s = Arc::new(Mutex::new(C::default()));
        self.slots.lock().push(s.clone());
        s
    }

    /// Sum over all slots.
    pub fn total(&self) -> C {
        let mut t = C::default();
        for s in self.slots.lock().iter() {
            t.merge(&s.lock());
        }
        t
    }
}

/// Longest a thread's published counters may lag behind its own.
pub const PUBLISH_MS: u64 = 100;

/// A thread's handle on its slot: publishes its private counters when it goes
/// idle or `PUBLISH_MS` after the last time, never per packet.
pub struct Publisher<C> {
    slot: Arc<Mutex<C>>,
    at: u64,
}

impl<C: Merge> Publisher<C> {
    /// A publisher for a new slot of `registry`.
    pub fn new(registry: &StatsRegistry<C>) -> Self {
        Publisher {
            slot: registry.slot(),
            at: 0,
        }
    }

    /// Copies `local` into the slot when idle or when the interval passed (`now` in ms).
    pub fn maybe(&mut self, local: &C, now: u64, idle: bool) {
        if idle || now.saturating_sub(self.at) >= PUBLISH_MS {
            self.publish(local, now);
        }
    }

    /// Copies `local` into the slot now.
    pub fn publish(&mut self, local: &C, now: u64) {
        *self.slot.lock() = local.clone();
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct N(u64);
    impl Merge for N {
        fn merge(&mut self, o: &Self) {
            self.0 += o.0;
        }
    }

    #[test]
    fn registry_sums_slots() {
        let r = StatsRegistry::<N>::default();
        let a = r.slot();
        let b = r.slot();
        a.lock().0 = 2;
        b.lock().0 = 3;
        assert_eq!(r.total().0, 5);
    }
}
