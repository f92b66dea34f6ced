//! RFC 3948 classification of a UDP/4500 payload (NAT keepalive, IKE after
//! the non-ESP marker, ESP), checked against the ESP header view; and the
//! keepalive timer on arbitrary times.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spimux::esp::encap::{classify, KeepaliveTimer, Udp4500, KEEPALIVE};
use spimux::wire::esp;

fuzz_target!(|data: &[u8]| {
    let esp_ok = esp::Packet::new_checked(data).is_ok();
    let marker = data.starts_with(&[0, 0, 0, 0]);
    match classify(data) {
        Udp4500::Keepalive => assert_eq!(data, KEEPALIVE),
        Udp4500::Ike(ike) => {
            assert!(marker);
            assert_eq!(ike, &data[4..]);
        }
        Udp4500::Esp(e) => {
            assert!(esp_ok && !marker);
            assert_eq!(e, data);
        }
        Udp4500::Invalid => assert!(!esp_ok && !marker && data != KEEPALIVE),
    }

    // The same bytes as keepalive timer inputs: interval, then times.
    let mut words = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let (Some(interval), Some(start)) = (words.next(), words.next()) else {
        return;
    };
    let mut t = KeepaliveTimer::new(interval, start);
    for now in words {
        let due = t.due(now);
        let next = t.next_in(now);
        if due {
            assert_eq!(next, 0, "due, yet something left to wait");
        }
        if due || now % 3 == 0 {
            t.on_sent(now);
            assert!(!t.due(now), "due right after sending");
        }
    }
});
