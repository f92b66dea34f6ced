//! Anti-replay window (RFC 4303 §3.4.3) with extended sequence number
//! inference (RFC 4303 Appendix A2).

/// Sliding window over the highest authenticated sequence numbers.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    /// Highest sequence number accepted so far (0 = none).
    top: u64,
    /// Bit i set: `top - i` was received.
    bits: Vec<u64>,
}

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Duplicate,
    /// Older than the window.
    TooOld,
}

impl ReplayWindow {
    /// A window of `size` packets, rounded up to a multiple of 64 and at least 64.
    pub fn new(size: u32) -> Self {
        let words = u64::from(size.max(64)).div_ceil(64);
        ReplayWindow {
            size: words * 64,
            top: 0,
            bits: vec![0; words as usize],
        }
    }

    /// Window size in packets.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Highest sequence number accepted.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn bit(&self, age: u64) -> bool {
        self.bits
            .get((age / 64) as usize)
            .is_some_and(|w| w >> (age % 64) & 1 == 1)
    }

    /// Reconstructs the full 64-bit sequence number from its low 32 bits
    /// (Appendix A2.1), assuming the window's position.
    pub fn infer_esn(&self, low: u32) -> u64 {
        let w = self.size;
        let tl = self.top as u32;
        let th = self.top >> 32;
        let low64 = u64::from(low);
        let hi = if tl as u64 >= w - 1 {
            // Window within one 2^32 subspace.
            if low64 >= u64::from(tl) - (w - 1) {
                th
            } else {
                th + 1
            }
        } else if low64 >= u64::from(tl).wrapping_sub(w - 1) & 0xffff_ffff {
            // Window spans the wrap: high part is the previous subspace for large `low`.
            th.saturating_sub(1)
        } else {
            th
        };
        (hi << 32) | low64
    }

    /// Whether `seq` would be accepted (checked before authentication).
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        let age = self.top - seq;
        if age >= self.size {
            return Err(ReplayError::TooOld);
        }
        if self.bit(age) {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Records `seq` after the packet authenticated.
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            let shift = seq - self.top;
            self.shift(shift);
            self.top = seq;
            self.set(0);
        } else {
            self.set(self.top - seq);
        }
    }

    fn set(&mut self, age: u64) {
        if let Some(w) = self.bits.get_mut((age / 64) as usize) {
            *w |= 1 << (age % 64);
        }
    }

    /// Ages every recorded bit by `n` (moves the window forward).
    fn shift(&mut self, n: u64) {
        if n >= self.size {
            self.bits.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        let len = self.bits.len();
        for i in (0..len).rev() {
            let src = i.checked_sub(words);
            let lo = src.and_then(|s| self.bits.get(s)).copied().unwrap_or(0);
            let carry = src
                .and_then(|s| s.checked_sub(1))
                .and_then(|s| self.bits.get(s))
                .copied()
                .unwrap_or(0);
            let v = if bits == 0 {
                lo
            } else {
                (lo << bits) | (carry >> (64 - bits))
            };
            if let Some(w) = self.bits.get_mut(i) {
                *w = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_new_rejects_duplicates_and_old() {
        let mut w = ReplayWindow::new(64);
        for s in [1u64, 2, 5, 3] {
            w.check(s).unwrap();
            w.accept(s);
        }
        assert_eq!(w.check(3), Err(ReplayError::Duplicate));
        assert_eq!(w.check(4), Ok(()));
        w.accept(100);
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Ok(()));
        assert_eq!(w.check(100), Err(ReplayError::Duplicate));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn large_windows_shift_across_words() {
        let mut w = ReplayWindow::new(1000);
        assert_eq!(w.size(), 1024);
        w.accept(10);
        w.accept(75); // shifts by 65: crosses a word boundary
        assert_eq!(w.check(10), Err(ReplayError::Duplicate));
        assert_eq!(w.check(11), Ok(()));
        w.accept(10 + 1024);
        assert_eq!(w.check(10), Err(ReplayError::TooOld));
        assert_eq!(w.check(11), Ok(()), "age 1023 is the window's last slot");
        assert_eq!(w.check(75), Err(ReplayError::Duplicate));
    }

    #[test]
    fn esn_inference_across_the_32_bit_wrap() {
        let mut w = ReplayWindow::new(64);
        w.accept(0xffff_fff0);
        assert_eq!(w.infer_esn(0xffff_fff5), 0xffff_fff5);
        assert_eq!(
            w.infer_esn(0x0000_0003),
            0x1_0000_0003,
            "wrapped: next subspace"
        );
        w.accept(0x1_0000_0003);
        assert_eq!(
            w.infer_esn(0xffff_fffe),
            0xffff_fffe,
            "late packet from the old subspace"
        );
        assert_eq!(w.infer_esn(0x0000_0010), 0x1_0000_0010);
    }
}
