//! Minimal TCP connection tracking for idle timeouts (RFC 5382 §5).
//!
//! The NAT does not validate sequence numbers; it only needs to know whether
//! a connection is established (long timeout) or transitory (short timeout).

use crate::wire::tcp::flags;

const SYN_OUT: u8 = 0x01;
const SYN_IN: u8 = 0x02;
const FIN_OUT: u8 = 0x04;
const FIN_IN: u8 = 0x08;
const RST: u8 = 0x10;
const SEEN_OUT: u8 = 0x20;
const SEEN_IN: u8 = 0x40;

/// Direction of a packet relative to the inside host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Inside to outside.
    Out,
    /// Outside to inside.
    In,
}

/// Folds a segment's flags into the state bits.
pub fn update(state: u8, tcp_flags: u8, dir: Dir) -> u8 {
    if tcp_flags & flags::RST != 0 {
        return state | RST;
    }
    let (syn, fin, seen) = match dir {
        Dir::Out => (SYN_OUT, FIN_OUT, SEEN_OUT),
        Dir::In => (SYN_IN, FIN_IN, SEEN_IN),
    };
    let mut s = state | seen;
    if tcp_flags & flags::SYN != 0 {
        // A new SYN after a close reopens the connection (port reuse).
        if state & (RST | FIN_OUT | FIN_IN) != 0 {
            s = seen;
        }
        s |= syn;
    }
    if tcp_flags & flags::FIN != 0 {
        s |= fin;
    }
    s
}

/// True when the connection counts as established: SYNs seen both ways, or
/// (picked up mid-stream) traffic both ways, and no FIN or RST yet.
pub fn is_established(state: u8) -> bool {
    let both_syn = state & (SYN_OUT | SYN_IN) == SYN_OUT | SYN_IN;
    let both_seen = state & (SEEN_OUT | SEEN_IN) == SEEN_OUT | SEEN_IN;
    (both_syn || both_seen) && state & (FIN_OUT | FIN_IN | RST) == 0
}

/// A name for the state, as `show translations` prints it: `reset`,
/// `closing` (a FIN seen), `established`, `syn_sent`, `syn_received`, or
/// `one_way` (segments seen in one direction only, no handshake).
pub fn describe(state: u8) -> &'static str {
    if state & RST != 0 {
        "reset"
    } else if state & (FIN_OUT | FIN_IN) != 0 {
        "closing"
    } else if is_established(state) {
        "established"
    } else if state & SYN_OUT != 0 {
        "syn_sent"
    } else if state & SYN_IN != 0 {
        "syn_received"
    } else {
        "one_way"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_establishes_and_fin_makes_transitory() {
        let mut s = update(0, flags::SYN, Dir::Out);
        assert!(!is_established(s));
        s = update(s, flags::SYN | flags::ACK, Dir::In);
        assert!(is_established(s));
        s = update(s, flags::ACK, Dir::Out);
        assert!(is_established(s));
        s = update(s, flags::FIN | flags::ACK, Dir::Out);
        assert!(!is_established(s));
    }

    #[test]
    fn rst_is_transitory_and_new_syn_reopens() {
        let mut s = update(
            update(0, flags::SYN, Dir::Out),
            flags::SYN | flags::ACK,
            Dir::In,
        );
        s = update(s, flags::RST, Dir::In);
        assert!(!is_established(s));
        s = update(s, flags::SYN, Dir::Out);
        s = update(s, flags::SYN | flags::ACK, Dir::In);
        assert!(is_established(s));
    }

    #[test]
    fn mid_stream_pickup_needs_both_directions() {
        let s = update(0, flags::ACK, Dir::Out);
        assert!(!is_established(s));
        assert!(is_established(update(s, flags::ACK, Dir::In)));
    }

    #[test]
    fn describe_names_each_phase() {
        let syn = update(0, flags::SYN, Dir::Out);
        assert_eq!(describe(syn), "syn_sent");
        assert_eq!(describe(update(0, flags::SYN, Dir::In)), "syn_received");
        let est = update(syn, flags::SYN | flags::ACK, Dir::In);
        assert_eq!(describe(est), "established");
        assert_eq!(describe(update(est, flags::FIN, Dir::Out)), "closing");
        assert_eq!(describe(update(est, flags::RST, Dir::In)), "reset");
        assert_eq!(describe(update(0, flags::ACK, Dir::Out)), "one_way");
    }
}
