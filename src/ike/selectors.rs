//! Traffic selectors (RFC 7296 §2.9): our networks as selectors, and
//! narrowing what a peer proposes to what the policy allows.

use crate::wire::ike::TrafficSelector;
use ipnet::{Ipv4Net, Ipv4Subnets};

/// One network as an all-protocols, all-ports IPv4 range.
pub fn from_net(n: &Ipv4Net) -> TrafficSelector {
    TrafficSelector::V4 {
        ip_protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        start: n.network(),
        end: n.broadcast(),
    }
}

/// Our networks as selectors.
pub fn from_nets(nets: &[Ipv4Net]) -> Vec<TrafficSelector> {
    nets.iter().map(from_net).collect()
}

/// The intersection of the peer's selectors with the policy's networks
/// (ports and protocol as the peer asked). Empty when nothing overlaps.
pub fn narrow(proposed: &[TrafficSelector], allowed: &[Ipv4Net]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for ts in proposed {
        let TrafficSelector::V4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } = ts
        else {
            continue; // IPv6 and unknown types are not carried here
        };
        for net in allowed {
            let s = (*start).max(net.network());
            let e = (*end).min(net.broadcast());
            if s <= e && start_port <= end_port {
                let t = TrafficSelector::V4 {
                    ip_protocol: *ip_protocol,
                    start_port: *start_port,
                    end_port: *end_port,
                    start: s,
                    end: e,
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// True when every selector in `narrowed` lies within `offered` (what we
/// proposed): a responder may only narrow, never widen.
pub fn within(narrowed: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    narrowed.iter().all(|n| match n {
        TrafficSelector::V4 { start, end, .. } => offered.iter().any(|o| match o {
            TrafficSelector::V4 {
                start: os, end: oe, ..
            } => os <= start && end <= oe,
            TrafficSelector::Other { .. } => false,
        }),
        TrafficSelector::Other { .. } => false,
    })
}

/// The address ranges of selectors as networks (for routes and the SA
/// table's inbound source check). Port and protocol restrictions are not
/// enforced by the tunnel datapath; they are kept in the negotiation only.
pub fn to_nets(ts: &[TrafficSelector]) -> Vec<Ipv4Net> {
    let mut out: Vec<Ipv4Net> = Vec::new();
    for t in ts {
        if let TrafficSelector::V4 { start, end, .. } = t {
            for n in Ipv4Subnets::new(*start, *end, 0) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// A selector as strongSwan prints one: `10.1.0.0/24`, a range that is not
/// one network as its networks joined by `,`, a protocol or port limit as
/// `[17/500]` or `[6/1024-65535]`; other types by their registry name
/// (`IPV6_ADDR_RANGE`).
pub fn describe(ts: &TrafficSelector) -> String {
    match ts {
        TrafficSelector::V4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => {
            let nets: Vec<String> = Ipv4Subnets::new(*start, *end, 0)
                .map(|n| n.to_string())
                .collect();
            let mut s = nets.join(",");
            let ports = match (*start_port, *end_port) {
                (0, u16::MAX) => None,
                (a, b) if a == b => Some(a.to_string()),
                (a, b) => Some(format!("{a}-{b}")),
            };
            match (ip_protocol, ports) {
                (0, None) => {}
                (p, None) => s.push_str(&format!("[{p}]")),
                (p, Some(ports)) => s.push_str(&format!("[{p}/{ports}]")),
            }
            s
        }
        TrafficSelector::Other { ty, .. } => ty.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn narrows_to_the_allowed_part_and_converts_back() {
        let peer = vec![
            from_net(&net("10.98.0.0/16")),
            from_net(&net("10.1.0.0/24")),
        ];
        let n = narrow(&peer, &[net("10.98.0.2/32")]);
        assert_eq!(n, vec![from_net(&net("10.98.0.2/32"))]);
        assert!(within(&n, &peer));
        assert!(!within(&peer, &n));
        assert!(narrow(&peer, &[net("10.7.0.0/16")]).is_empty());
        assert_eq!(describe(&peer[0]), "10.98.0.0/16");
        let odd = TrafficSelector::V4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.6".parse().unwrap(),
        };
        assert_eq!(
            describe(&odd),
            "10.0.0.1/32,10.0.0.2/31,10.0.0.4/31,10.0.0.6/32"
        );
        let udp500 = TrafficSelector::V4 {
            ip_protocol: 17,
            start_port: 500,
            end_port: 500,
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(describe(&udp500), "10.0.0.1/32[17/500]");
        assert_eq!(
            to_nets(&[odd]),
            vec![
                net("10.0.0.1/32"),
                net("10.0.0.2/31"),
                net("10.0.0.4/31"),
                net("10.0.0.6/32")
            ]
        );
    }
}
