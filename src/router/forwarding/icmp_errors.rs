//! ICMP errors the router originates (time exceeded, fragmentation needed).
//! Never about an ICMP error (RFC 1812 §4.3.2.7), never toward a source that
//! does not name one unicast host (§4.3.2.7), and rate-limited (§4.3.2.8) by
//! a token bucket per receive thread, so a TTL-1 or oversize flood cannot
//! turn the router into a packet generator.

use super::datagram::Datagram;
use super::{Local, Transmit};
use crate::io::offload::Offload;
use crate::router::originate;
use crate::router::stats::Side;
use crate::wire::ethernet::Mac;
use std::net::Ipv4Addr;

/// Why an ICMP error was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// The thread's ICMP error budget was spent.
    RateLimited,
    /// The offending datagram's source is not one unicast host.
    NotUnicast,
    /// The offending datagram is itself an ICMP error.
    AboutIcmpError,
}

impl Suppressed {
    /// Every reason, in counter order.
    pub const ALL: [Suppressed; 3] = [
        Suppressed::RateLimited,
        Suppressed::NotUnicast,
        Suppressed::AboutIcmpError,
    ];

    /// Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Suppressed::RateLimited => "rate_limited",
            Suppressed::NotUnicast => "not_unicast",
            Suppressed::AboutIcmpError => "about_icmp_error",
        }
    }
}

/// True when `a` can name a single host as a source: not unspecified,
/// loopback, broadcast, multicast or reserved (240/4), nor the directed
/// broadcast of the connected prefix `subnet_broadcast`.
pub fn is_unicast_source(a: Ipv4Addr, subnet_broadcast: Ipv4Addr) -> bool {
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_broadcast()
        || a.is_multicast()
        || a.octets()[0] >= 240
        || a == subnet_broadcast)
}

/// What to send and where: the error's type, code and the last four header bytes.
pub struct ErrorSpec {
    /// ICMP type.
    pub ty: u8,
    /// ICMP code.
    pub code: u8,
    /// Bytes 4..8 of the ICMP header (the next-hop MTU for "fragmentation needed").
    pub rest: [u8; 4],
}

/// Builds and queues an ICMP error about `ip` back out of `side` from
/// `from` to `src_mac`, unless a rule or the budget says no (counted).
#[allow(clippy::too_many_arguments)]
pub fn send(
    local: &mut Local,
    ip: &[u8],
    d: &Datagram,
    spec: ErrorSpec,
    side: Side,
    from: Ipv4Addr,
    (me, src_mac): (Mac, Mac),
    subnet_broadcast: Ipv4Addr,
    (budget, now): ((u32, u32), u64),
) {
    let why = if d.is_icmp_error() {
        Some(Suppressed::AboutIcmpError)
    } else if !is_unicast_source(d.src, subnet_broadcast) || src_mac.is_multicast() {
        Some(Suppressed::NotUnicast)
    } else if !local.icmp_budget.take(budget, now) {
        Some(Suppressed::RateLimited)
    } else {
        None
    };
    if let Some(r) = why {
        local.counters.icmp_errors_suppressed[r as usize] += 1;
        return;
    }
    if let Some(frame) = originate::icmp_error(ip, spec.ty, spec.code, spec.rest, from, me, src_mac)
    {
        local.transmits.push(Transmit {
            side,
            frame,
            offload: Offload::default(),
        });
        local.counters.icmp_sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_sources() {
        let bc = Ipv4Addr::new(10, 6, 1, 255);
        assert!(is_unicast_source(Ipv4Addr::new(10, 6, 1, 2), bc));
        for a in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(240, 0, 0, 1),
            bc,
        ] {
            assert!(!is_unicast_source(a, bc), "{a}");
        }
    }
}
