//! A token bucket on the caller's millisecond clock, shared by the cores
//! that rate-limit what the outside can trigger: the NAT's per-host
//! new-session limit and per-responder unknown-SPI limit, the router's ICMP
//! errors. Rate and burst are passed on each call, so a bucket is 12 bytes
//! (one per inside host). No clock reads: every call takes the time.

use std::sync::atomic::{AtomicU32, Ordering};

/// Milliseconds on the caller's monotonic clock.
type Millis = u64;

/// Takes one unit of the capped count `counter` if it is below `max`: the
/// exact-count admission the bounded tables use, so a cap check costs one
/// atomic instead of a walk over a concurrent map's shards.
pub fn reserve(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Tokens refill at `rate` per second up to `burst`; one is taken per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u32,
    refilled_ms: Millis,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(burst: u32, now: Millis) -> Self {
        TokenBucket {
            tokens: burst,
            refilled_ms: now,
        }
    }

    /// Tokens the bucket would hold at `now` without taking any.
    pub fn level(&self, rate: u32, burst: u32, now: Millis) -> u32 {
        let elapsed = now.saturating_sub(self.refilled_ms);
        let add = elapsed.saturating_mul(u64::from(rate)) / 1000;
        u64::from(self.tokens)
            .saturating_add(add)
            .min(u64::from(burst)) as u32
    }

    /// True when the bucket would be full at `now`: forgetting it and starting
    /// a new full one later gives the owner nothing it would not have had.
    pub fn is_full(&self, rate: u32, burst: u32, now: Millis) -> bool {
        self.level(rate, burst, now) >= burst
    }

    /// Takes one token if there is one at `now`.
    pub fn take(&mut self, rate: u32, burst: u32, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.refilled_ms);
        let add = elapsed.saturating_mul(u64::from(rate)) / 1000;
        if u64::from(self.tokens).saturating_add(add) >= u64::from(burst) {
            self.tokens = burst;
            self.refilled_ms = now.max(self.refilled_ms);
        } else if add > 0 {
            // Advance the mark only by the time those whole tokens took, so
            // frequent calls keep the fractional refill.
            self.tokens += add as u32;
            self.refilled_ms += add.saturating_mul(1000) / u64::from(rate.max(1));
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_burst_then_refills_at_rate() {
        let mut b = TokenBucket::full(3, 0);
        assert!((0..3).all(|_| b.take(10, 3, 0)));
        assert!(!b.take(10, 3, 0));
        assert!(
            !b.take(10, 3, 99),
            "a tenth of a second refills one at 10/s"
        );
        assert!(b.take(10, 3, 100));
        assert!(!b.is_full(10, 3, 300));
        assert!(b.is_full(10, 3, 400));
        assert_eq!(b.level(10, 3, 10_000), 3);
    }

    #[test]
    fn clock_going_back_does_not_refill() {
        let mut b = TokenBucket::full(1, 5000);
        assert!(b.take(1, 1, 5000));
        assert!(!b.take(1, 1, 0));
        assert!(b.take(1, 1, 6000));
    }

    #[test]
    fn frequent_calls_keep_the_fractional_refill() {
        let mut b = TokenBucket::full(3, 0);
        assert!((0..3).all(|_| b.take(10, 3, 0)));
        assert!(b.take(10, 3, 100));
        // Many calls 50 ms apart still earn 10 tokens per second.
        let granted = (1..=20).filter(|i| b.take(10, 3, 100 + i * 50)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut b = TokenBucket::full(1, 0);
        assert!(b.take(0, 1, 0));
        assert!(!b.take(0, 1, u64::MAX));
    }
}
