//! The router's small routing table: the inside connected prefix, static
//! inside routes, the outside connected prefix and the default gateway.

use super::config::RouterConfig;
use super::stats::Side;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Where a packet leaves and which neighbour gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// On the inside interface, to this neighbour.
    Inside(Ipv4Addr),
    /// On the outside interface, to this neighbour.
    Outside(Ipv4Addr),
}

/// Longest-prefix lookup over a handful of prefixes.
#[derive(Debug, Clone)]
pub struct Routes {
    inside: Ipv4Net,
    outside: Ipv4Net,
    gateway: Ipv4Addr,
    /// Static inside routes, longest prefix first.
    statics: Vec<(Ipv4Net, Ipv4Addr)>,
}

impl Routes {
    /// From a validated config.
    pub fn new(cfg: &RouterConfig) -> Self {
        let mut statics: Vec<(Ipv4Net, Ipv4Addr)> = cfg
            .routes
            .iter()
            .map(|r| (r.prefix.trunc(), r.via))
            .collect();
        statics.sort_by_key(|(p, _)| std::cmp::Reverse(p.prefix_len()));
        Routes {
            inside: cfg.inside.address.trunc(),
            outside: cfg.outside.address.trunc(),
            gateway: cfg.outside.gateway,
            statics,
        }
    }

    /// Next hop for `dst`; `None` for addresses that must never be forwarded
    /// (broadcast, multicast, loopback, unspecified).
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        if dst.is_broadcast() || dst.is_multicast() || dst.is_loopback() || dst.is_unspecified() {
            return None;
        }
        let is_inside = self.inside.contains(&dst);
        let matched_static = self.statics.iter().find(|(p, _)| p.contains(&dst));
        match (is_inside, matched_static) {
            (true, Some((p, via))) if p.prefix_len() > self.inside.prefix_len() => {
                Some(NextHop::Inside(*via))
            }
            (true, _) => (dst != self.inside.broadcast()).then_some(NextHop::Inside(dst)),
            (false, Some((_, via))) => Some(NextHop::Inside(*via)),
            (false, None) if self.outside.contains(&dst) => {
                (dst != self.outside.broadcast()).then_some(NextHop::Outside(dst))
            }
            (false, None) => Some(NextHop::Outside(self.gateway)),
        }
    }

    fn connected(&self, side: Side) -> Ipv4Net {
        match side {
            Side::Inside => self.inside,
            Side::Outside => self.outside,
        }
    }

    /// True when `ip` is a host address of the prefix connected on `side`
    /// (who may send ARP there).
    pub fn on_link(&self, side: Side, ip: Ipv4Addr) -> bool {
        let net = self.connected(side);
        net.contains(&ip) && ip != net.network() && ip != net.broadcast()
    }

    /// Directed broadcast address of the prefix connected on `side`.
    pub fn broadcast_on(&self, side: Side) -> Ipv4Addr {
        self.connected(side).broadcast()
    }

    /// True when `src` may legitimately appear on the inside interface.
    pub fn is_inside_source(&self, src: Ipv4Addr) -> bool {
        self.inside.contains(&src) && src != self.inside.broadcast() && src != self.inside.network()
            || self.statics.iter().any(|(p, _)| p.contains(&src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let cfg = RouterConfig::parse(
            r#"
[inside]
interface = "a"
address = "10.6.1.1/24"
[outside]
interface = "b"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
[[routes]]
prefix = "10.7.0.0/16"
via = "10.6.1.254"
"#,
        )
        .unwrap();
        Routes::new(&cfg)
    }

    #[test]
    fn lookups() {
        let r = routes();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            r.lookup(ip("10.6.1.3")),
            Some(NextHop::Inside(ip("10.6.1.3")))
        );
        assert_eq!(
            r.lookup(ip("10.7.3.4")),
            Some(NextHop::Inside(ip("10.6.1.254")))
        );
        assert_eq!(
            r.lookup(ip("203.0.113.77")),
            Some(NextHop::Outside(ip("203.0.113.77")))
        );
        assert_eq!(
            r.lookup(ip("198.51.100.69")),
            Some(NextHop::Outside(ip("203.0.113.1")))
        );
        assert_eq!(r.lookup(ip("10.6.1.255")), None);
        assert_eq!(r.lookup(ip("255.255.255.255")), None);
        assert_eq!(r.lookup(ip("224.0.0.1")), None);
    }

    #[test]
    fn inside_sources() {
        let r = routes();
        assert!(r.is_inside_source("10.6.1.2".parse().unwrap()));
        assert!(r.is_inside_source("10.7.9.9".parse().unwrap()));
        assert!(!r.is_inside_source("198.51.100.69".parse().unwrap()));
        assert!(!r.is_inside_source("10.6.1.255".parse().unwrap()));
    }

    #[test]
    fn on_link_hosts() {
        let r = routes();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(r.on_link(Side::Inside, ip("10.6.1.7")));
        assert!(!r.on_link(Side::Inside, ip("10.6.1.0")));
        assert!(
            !r.on_link(Side::Inside, ip("10.7.0.1")),
            "routed, not connected"
        );
        assert!(!r.on_link(Side::Outside, ip("10.6.1.7")));
        assert!(r.on_link(Side::Outside, ip("203.0.113.1")));
        assert_eq!(r.broadcast_on(Side::Outside), ip("203.0.113.255"));
    }
}
