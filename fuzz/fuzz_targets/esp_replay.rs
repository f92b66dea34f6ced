//! The anti-replay window against a naive model: a set of every accepted
//! sequence number and the highest one. For any sequence of (seq,
//! authentic?) operations the window's decisions equal the model's; the
//! ESN inference equals RFC 4303 Appendix A2.1 written out directly.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use spimux::esp::replay::{ReplayError, ReplayWindow};
use std::collections::BTreeSet;

/// What the window must decide, from first principles.
struct Model {
    size: u64,
    top: u64,
    seen: BTreeSet<u64>,
}

impl Model {
    fn check(&self, seq: u64) -> core::result::Result<(), ReplayError> {
        if seq == 0 {
            Err(ReplayError::TooOld)
        } else if seq > self.top {
            Ok(())
        } else if self.top - seq >= self.size {
            Err(ReplayError::TooOld)
        } else if self.seen.contains(&seq) {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    fn accept(&mut self, seq: u64) {
        self.seen.insert(seq);
        self.top = self.top.max(seq);
        // Older numbers are refused as too old whatever the set says.
        let floor = self.top.saturating_sub(self.size);
        self.seen = self.seen.split_off(&floor);
    }

    /// The one number with these low 32 bits in the 2^32 numbers starting at
    /// the window's bottom (`top - size + 1`); below one window the bottom is 0.
    fn infer_esn(&self, low: u32) -> u64 {
        match self.top.checked_sub(self.size - 1) {
            Some(bottom) => bottom.wrapping_add(u64::from(low.wrapping_sub(bottom as u32))),
            None => u64::from(low),
        }
    }
}

fn seq(u: &mut Unstructured, m: &Model) -> Result<u64> {
    let d = u64::from(u.arbitrary::<u16>()?);
    Ok(match u.int_in_range(0u8..=5)? {
        0 => m.top.saturating_add(d % 200),
        1 => m.top.saturating_sub(d % 200),
        // Around the window's bottom edge.
        2 => m
            .top
            .saturating_sub(m.size)
            .saturating_add(d % 8)
            .saturating_sub(4),
        3 => m.top.saturating_add(d),
        // Across the 32-bit wrap.
        4 => (u64::from(u.arbitrary::<u32>()?) << 32 | 0xffff_ff00).saturating_add(d % 512),
        _ => u.arbitrary()?,
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    // The configurations allow 64..=4096 (`peers.replay_window`); a little beyond.
    let size = u.int_in_range(0u32..=8192)?;
    let mut w = ReplayWindow::new(size);
    assert!(w.size() >= u64::from(size.max(64)) && w.size() % 64 == 0);
    assert!(w.size() < u64::from(size.max(64)) + 64);
    let mut m = Model {
        size: w.size(),
        top: 0,
        seen: BTreeSet::new(),
    };
    while !u.is_empty() {
        let s = seq(u, &m)?;
        let authentic: bool = u.arbitrary()?;
        let got = w.check(s);
        assert_eq!(got, m.check(s), "check({s}) with top {}", m.top);
        if got.is_ok() && authentic {
            w.accept(s);
            m.accept(s);
        }
        assert_eq!(w.top(), m.top);
        let low: u32 = u.arbitrary()?;
        assert_eq!(w.infer_esn(low), m.infer_esn(low), "infer_esn({low:#x})");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
