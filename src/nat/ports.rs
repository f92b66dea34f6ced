//! External port allocation: a bitmap per (external address, protocol).
//!
//! Ports are drawn from a caller-supplied random start and probed linearly
//! (RFC 6056 algorithm 1 style), so allocation is unpredictable to outsiders
//! and deterministic under a seeded source in tests.

/// Free/used bitmap over the port range `min..=max`.
#[derive(Debug, Clone)]
pub struct PortPool {
    min: u16,
    max: u16,
    used: Vec<u64>,
    in_use: u32,
}

impl PortPool {
    /// A pool handing out `min..=max` (caller guarantees `min <= max`).
    pub fn new(min: u16, max: u16) -> Self {
        let n = usize::from(max - min) + 1;
        PortPool {
            min,
            max,
            used: vec![0; n.div_ceil(64)],
            in_use: 0,
        }
    }

    fn slot(&self, port: u16) -> Option<(usize, u64)> {
        if port < self.min || port > self.max {
            return None;
        }
        let i = usize::from(port - self.min);
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Size of the range.
    pub fn capacity(&self) -> u32 {
        u32::from(self.max - self.min) + 1
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// True when `port` is inside the range and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.slot(port)
            .is_some_and(|(w, b)| self.used.get(w).is_some_and(|x| x & b == 0))
    }

    /// Claims a specific port if free, e.g. 500 for IKE. Ports outside the
    /// range may also be claimed by `take_exact_any`.
    pub fn take_exact(&mut self, port: u16) -> bool {
        match self.slot(port) {
            Some((w, b)) => match self.used.get_mut(w) {
                Some(x) if *x & b == 0 => {
                    *x |= b;
                    self.in_use += 1;
                    true
                }
                _ => false,
            },
            None => false,
        }
    }

    /// Claims the first free port at or after `start` (wrapping), or `None` when full.
    pub fn take_from(&mut self, start: u32) -> Option<u16> {
        let cap = self.capacity();
        if self.in_use >= cap {
            return None;
        }
        let first = start % cap;
        for k in 0..cap {
            let i = (first + k) % cap;
            let port = self.min + i as u16;
            if self.take_exact(port) {
                return Some(port);
            }
        }
        None
    }

    /// Returns a port to the pool; releasing a free or foreign port is a no-op.
    pub fn release(&mut self, port: u16) {
        if let Some((w, b)) = self.slot(port) {
            if let Some(x) = self.used.get_mut(w) {
                if *x & b != 0 {
                    *x &= !b;
                    self.in_use -= 1;
                }
            }
        }
    }
}

/// Pool for the low "system" port 500 kept for IKE outside the dynamic range.
#[derive(Debug, Clone, Default)]
pub struct ReservedPorts {
    taken: Vec<u16>,
}

impl ReservedPorts {
    /// Claims `port` if no one holds it.
    pub fn take(&mut self, port: u16) -> bool {
        if self.taken.contains(&port) {
            return false;
        }
        self.taken.push(port);
        true
    }
    /// Releases `port`.
    pub fn release(&mut self, port: u16) {
        self.taken.retain(|p| *p != port);
    }
    /// True when held.
    pub fn holds(&self, port: u16) -> bool {
        self.taken.contains(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_until_full_then_refuses() {
        let mut p = PortPool::new(1000, 1009);
        let mut got: Vec<u16> = (0..10).map(|i| p.take_from(i * 7).unwrap()).collect();
        got.sort();
        assert_eq!(got, (1000..=1009).collect::<Vec<_>>());
        assert_eq!(p.take_from(3), None);
        p.release(1004);
        assert_eq!(p.take_from(0), Some(1004));
        assert_eq!(p.in_use(), 10);
    }

    #[test]
    fn exact_and_out_of_range() {
        let mut p = PortPool::new(1024, 65535);
        assert!(p.take_exact(4500));
        assert!(!p.take_exact(4500));
        assert!(!p.take_exact(500));
        assert!(!p.is_free(80));
        p.release(80); // foreign: no-op
        p.release(4500);
        assert!(p.is_free(4500));
        assert_eq!(p.in_use(), 0);
        assert_eq!(p.capacity(), 64512);
    }

    #[test]
    fn reserved_ports() {
        let mut r = ReservedPorts::default();
        assert!(r.take(500));
        assert!(!r.take(500));
        assert!(r.holds(500));
        r.release(500);
        assert!(r.take(500));
    }
}
