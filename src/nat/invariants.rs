//! Whole-NAT consistency checks for tests and fuzzing: both halves'
//! invariants, the ESP SPI counts the host entries keep, and that
//! everything drains after the timeouts. Only meaningful while no other
//! thread is using the NAT.

use super::{Millis, Nat, NatEvents};

/// Operations between two full checks in [`Nat::check_run`]. A full check
/// walks every map, so checking after each operation made the stateful
/// fuzz targets spend most of their time there. A count that goes wrong
/// almost always stays wrong until the state drains, so a check every few
/// operations and one after the last still catch it, close to the cause.
pub const CHECK_EVERY: u32 = 8;

/// `Ok` when `ok`, else the message `what` builds.
pub(super) fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

impl Nat {
    /// Checks both halves' invariants and that the host entries count
    /// exactly the SPIs the demultiplexer recorded. For tests and fuzzing;
    /// only meaningful while no other thread is using the NAT.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.table.check_invariants()?;
        self.esp.check_invariants()?;
        let counted = self.table.esp_spis_by_host();
        let recorded = self.esp.spis_by_host();
        if counted != recorded {
            return Err(format!(
                "host entries count SPIs {counted:?}, demultiplexer holds {recorded:?}"
            ));
        }
        Ok(())
    }

    /// True when the NAT holds no state at all.
    #[doc(hidden)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty() && self.esp.is_empty()
    }

    /// Sweeps once at a time past every timeout and every rate bucket's
    /// refill after `now`, then checks the invariants and that nothing is
    /// left. For tests and fuzzing.
    #[doc(hidden)]
    pub fn drain_check(&self, now: Millis, ev: &mut NatEvents) -> Result<(), String> {
        let c = self.table.config();
        let t = &c.timeouts;
        let l = &c.limits;
        let longest = [
            t.udp,
            t.tcp_established,
            t.tcp_transitory,
            t.icmp,
            self.esp.idle_timeout(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let refill = l.new_sessions_burst / l.new_sessions_per_sec_per_host.max(1);
        let later = now
            .saturating_add(1000 * u64::from(longest))
            .saturating_add(1000 * (u64::from(refill) + 1));
        self.expire(later, ev);
        self.check_invariants()?;
        check(self.is_empty(), || format!("state left at {later} ms"))
    }

    /// Runs `step` (with the clock, starting at 0, and the counters) until
    /// it returns false, checking the invariants after every
    /// [`CHECK_EVERY`] calls and after the last, then `drain_check`. Panics
    /// with the broken invariant: the stateful fuzz targets' driver.
    #[doc(hidden)]
    pub fn check_run(&self, mut step: impl FnMut(&Nat, &mut Millis, &mut NatEvents) -> bool) {
        let mut ev = NatEvents::default();
        let mut now: Millis = 0;
        let mut since_check = 0u32;
        while step(self, &mut now, &mut ev) {
            since_check += 1;
            if since_check == CHECK_EVERY {
                since_check = 0;
                if let Err(e) = self.check_invariants() {
                    panic!("invariant broken at {now} ms: {e}");
                }
            }
        }
        if let Err(e) = self.check_invariants() {
            panic!("invariant broken at {now} ms: {e}");
        }
        if let Err(e) = self.drain_check(now, &mut ev) {
            panic!("after every timeout: {e}");
        }
    }
}
