//! A token bucket on the caller's millisecond clock, shared by the protocol
//! cores that rate-limit what the outside can trigger (ICMP errors the
//! router originates, ...). No clock reads: every call takes the time.

/// `rate_per_sec` tokens per second, at most `burst` saved up; starts full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    rate_per_sec: u32,
    burst: u32,
    tokens: u32,
    refilled_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now` (milliseconds).
    pub fn new(rate_per_sec: u32, burst: u32, now: u64) -> Self {
        TokenBucket {
            rate_per_sec,
            burst,
            tokens: burst,
            refilled_ms: now,
        }
    }

    /// Adds the tokens earned since the last refill. Only whole tokens are
    /// added and the clock is advanced by exactly the time they stand for,
    /// so slow rates are not rounded away by frequent calls.
    fn refill(&mut self, now: u64) {
        if self.rate_per_sec == 0 {
            self.refilled_ms = now;
            return;
        }
        let elapsed = now.saturating_sub(self.refilled_ms);
        let earned = elapsed.saturating_mul(u64::from(self.rate_per_sec)) / 1000;
        if earned == 0 {
            return;
        }
        let tokens = u64::from(self.tokens).saturating_add(earned);
        self.tokens = u32::try_from(tokens.min(u64::from(self.burst))).unwrap_or(self.burst);
        if self.tokens == self.burst {
            self.refilled_ms = now;
        } else {
            let used = earned.saturating_mul(1000) / u64::from(self.rate_per_sec);
            self.refilled_ms = self.refilled_ms.saturating_add(used);
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: u64) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// True when the bucket would be full at `now` (nothing to remember).
    pub fn is_full(&self, now: u64) -> bool {
        let mut b = *self;
        b.refill(now);
        b.tokens >= b.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10, 3, 0);
        assert!((0..3).all(|_| b.take(0)));
        assert!(!b.take(0));
        assert!(!b.take(99), "a tenth of a second earns one token at 10/s");
        assert!(b.take(100));
        assert!(!b.take(100));
        // Many calls 50 ms apart still earn 10 tokens per second.
        let granted = (1..=20).filter(|i| b.take(100 + i * 50)).count();
        assert_eq!(granted, 10);
        assert!(!b.is_full(1100));
        assert!(b.is_full(10_000));
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut b = TokenBucket::new(0, 1, 0);
        assert!(b.take(0));
        assert!(!b.take(u64::MAX));
    }
}
