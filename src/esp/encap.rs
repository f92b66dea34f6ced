//! UDP encapsulation of ESP (RFC 3948): what a UDP/4500 payload is, and the
//! NAT keepalive timer. Time is passed in as milliseconds.

/// The IKE/ESP port for UDP encapsulation.
pub const NAT_T_PORT: u16 = 4500;

/// RFC 3948 §2.3: a one-byte 0xFF payload keeps NAT mappings alive.
pub const KEEPALIVE: [u8; 1] = [0xff];

/// What a UDP/4500 payload carries (RFC 3948 §2.2, RFC 7296 §2.23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// NAT keepalive.
    Keepalive,
    /// IKE message (after the 4-byte non-ESP marker).
    Ike(&'a [u8]),
    /// ESP packet starting at the SPI.
    Esp(&'a [u8]),
    /// Too short or otherwise not valid.
    Invalid,
}

/// Classifies a UDP/4500 payload without copying.
pub fn classify(payload: &[u8]) -> Udp4500<'_> {
    match payload {
        [0xff] => Udp4500::Keepalive,
        [0, 0, 0, 0, ike @ ..] => Udp4500::Ike(ike),
        // ESP needs at least SPI + sequence number; SPIs below 256 are reserved.
        [a, b, c, d, _, _, _, _, ..] if u32::from_be_bytes([*a, *b, *c, *d]) >= 256 => {
            Udp4500::Esp(payload)
        }
        _ => Udp4500::Invalid,
    }
}

/// Sends a keepalive when nothing was sent for `interval_ms` (RFC 3948 §4: default 20 s).
#[derive(Debug, Clone, Copy)]
pub struct KeepaliveTimer {
    interval_ms: u64,
    last_sent_ms: u64,
}

impl KeepaliveTimer {
    /// A timer that considers `now_ms` the last transmission.
    pub fn new(interval_ms: u64, now_ms: u64) -> Self {
        KeepaliveTimer {
            interval_ms,
            last_sent_ms: now_ms,
        }
    }

    /// Any packet sent on the path resets the timer.
    pub fn on_sent(&mut self, now_ms: u64) {
        self.last_sent_ms = self.last_sent_ms.max(now_ms);
    }

    /// True when a keepalive is due now; the caller sends it and calls `on_sent`.
    pub fn due(&self, now_ms: u64) -> bool {
        self.interval_ms > 0 && now_ms.saturating_sub(self.last_sent_ms) >= self.interval_ms
    }

    /// Milliseconds until the next keepalive would be due.
    pub fn next_in(&self, now_ms: u64) -> u64 {
        self.last_sent_ms
            .saturating_add(self.interval_ms)
            .saturating_sub(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_payloads() {
        assert_eq!(classify(&KEEPALIVE), Udp4500::Keepalive);
        assert_eq!(
            classify(&[0, 0, 0, 0, 0x21, 0x20]),
            Udp4500::Ike(&[0x21, 0x20])
        );
        let esp = [0x12, 0x34, 0xab, 0xcd, 0, 0, 0, 1, 9];
        assert_eq!(classify(&esp), Udp4500::Esp(&esp));
        assert_eq!(
            classify(&[0, 0, 0, 255, 0, 0, 0, 1]),
            Udp4500::Invalid,
            "reserved SPI"
        );
        assert_eq!(classify(&[0x12, 0x34, 0xab]), Udp4500::Invalid);
        assert_eq!(classify(&[]), Udp4500::Invalid);
    }

    #[test]
    fn keepalive_timer_steps_with_time() {
        let mut t = KeepaliveTimer::new(20_000, 0);
        assert!(!t.due(19_999));
        assert!(t.due(20_000));
        t.on_sent(20_000);
        assert_eq!(t.next_in(25_000), 15_000);
        t.on_sent(30_000); // data traffic also keeps the mapping alive
        assert!(!t.due(49_999));
        assert!(t.due(50_000));
        assert!(
            !KeepaliveTimer::new(0, 0).due(u64::MAX),
            "interval 0 disables"
        );
        // Fuzzing found `next_in` overflowing on a huge interval.
        let t = KeepaliveTimer::new(u64::MAX, 10);
        assert_eq!(t.next_in(10), u64::MAX - 10);
        assert!(!t.due(u64::MAX));
    }
}
