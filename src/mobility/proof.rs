//! Downlink toward an address a registration moved an SA to, before the
//! peer has shown it is really there (docs/MOBILITY.md, "Unproven
//! addresses"). The move itself stays immediate, so server→client traffic
//! still resumes half a round trip after the request left; but until an
//! authenticated, non-replayed packet of the peer arrives *from that
//! address* after the move, only a small budget of packets and bytes goes
//! there. A request captured on the path and re-sent from elsewhere (it is
//! authenticated and, if it wins the race, not a replay) can therefore
//! redirect at most that budget toward a third party.

use std::net::Ipv4Addr;

/// What may go to an unproven address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Packets.
    pub packets: u32,
    /// Bytes (sealed ESP packets, outer headers not counted).
    pub bytes: u64,
}

/// Whether one packet may go to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The peer's address is proven: no limit.
    Proven,
    /// Unproven address, within the budget (counted against it).
    Unproven,
    /// Unproven address, budget spent: drop.
    Capped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    addr: Ipv4Addr,
    left: Budget,
}

/// Proof state of one SA's outer peer. The default is "proven": an address
/// set by configuration, IKE or the first authenticated packet needs none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerProof {
    pending: Option<Pending>,
}

impl PeerProof {
    /// A registration moved the peer from `from` (the current peer address)
    /// to `to`. Returns true when `to` is unproven. Moving between unproven
    /// addresses does not refill the budget, so a series of re-sent requests
    /// gets no more than one.
    pub fn moved(&mut self, from: Option<Ipv4Addr>, to: Ipv4Addr, budget: Budget) -> bool {
        match self.pending {
            None if from == Some(to) => false, // same proven address: a port or encapsulation change
            Some(p) if p.addr == to => true,
            Some(p) => {
                self.pending = Some(Pending {
                    addr: to,
                    left: p.left,
                });
                true
            }
            None => {
                self.pending = Some(Pending {
                    addr: to,
                    left: budget,
                });
                true
            }
        }
    }

    /// An authenticated, non-replayed packet of the peer arrived from
    /// `from`. Returns true when that proved the pending address.
    pub fn authenticated(&mut self, from: Ipv4Addr) -> bool {
        match self.pending {
            Some(p) if p.addr == from => {
                self.pending = None;
                true
            }
            _ => false,
        }
    }

    /// Charges one packet of `bytes` going to the peer.
    pub fn send(&mut self, bytes: usize) -> Verdict {
        let Some(p) = self.pending.as_mut() else {
            return Verdict::Proven;
        };
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if p.left.packets == 0 || p.left.bytes < bytes {
            return Verdict::Capped;
        }
        p.left.packets -= 1;
        p.left.bytes -= bytes;
        Verdict::Unproven
    }

    /// The address waiting for proof, if any.
    pub fn pending(&self) -> Option<Ipv4Addr> {
        self.pending.map(|p| p.addr)
    }

    /// The peer's address was set by something that proves it (IKE, the
    /// first authenticated packet): no budget applies.
    pub fn clear(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
    const X: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const BUDGET: Budget = Budget {
        packets: 3,
        bytes: 1000,
    };

    #[test]
    fn proven_address_has_no_limit_and_port_changes_need_no_proof() {
        let mut p = PeerProof::default();
        for _ in 0..10 {
            assert_eq!(p.send(1500), Verdict::Proven);
        }
        assert!(!p.moved(Some(A), A, BUDGET));
        assert_eq!(p.send(1500), Verdict::Proven);
    }

    #[test]
    fn unproven_address_gets_the_budget_until_a_packet_from_it_proves_it() {
        let mut p = PeerProof::default();
        assert!(p.moved(Some(A), B, BUDGET));
        assert_eq!(p.pending(), Some(B));
        assert_eq!(p.send(400), Verdict::Unproven);
        assert_eq!(p.send(400), Verdict::Unproven);
        assert_eq!(p.send(400), Verdict::Capped, "byte budget");
        assert_eq!(p.send(100), Verdict::Unproven);
        assert_eq!(p.send(1), Verdict::Capped, "packet budget");
        assert!(!p.authenticated(A), "the old address proves nothing");
        assert_eq!(p.send(1), Verdict::Capped);
        assert!(p.authenticated(B));
        assert_eq!(p.pending(), None);
        assert_eq!(p.send(1500), Verdict::Proven);
        assert!(!p.authenticated(B), "nothing left to prove");
    }

    #[test]
    fn re_sent_requests_from_elsewhere_share_one_budget() {
        let mut p = PeerProof::default();
        assert!(p.moved(Some(A), X, BUDGET));
        assert_eq!(p.send(10), Verdict::Unproven);
        assert_eq!(p.send(10), Verdict::Unproven);
        // The honest client's next registration from B: still one budget in all.
        assert!(p.moved(Some(X), B, BUDGET));
        assert!(
            p.moved(Some(B), B, BUDGET),
            "same unproven address stays unproven"
        );
        assert_eq!(p.send(10), Verdict::Unproven);
        assert_eq!(p.send(10), Verdict::Capped);
        assert!(p.authenticated(B));
        assert_eq!(p.send(10), Verdict::Proven);
        // After proof, the next move gets a fresh budget.
        assert!(p.moved(Some(B), A, BUDGET));
        assert_eq!(p.send(10), Verdict::Unproven);
    }

    #[test]
    fn huge_packets_and_clear() {
        let mut p = PeerProof::default();
        p.moved(None, A, BUDGET);
        assert_eq!(p.send(usize::MAX), Verdict::Capped);
        p.clear();
        assert_eq!(p.send(usize::MAX), Verdict::Proven);
    }
}
