//! Read-only listings of the translation table for operators (`spimux
//! router show translations|hosts`). Each map is walked one shard at a time
//! and only copied out, so a worker waits at most for one shard's copy; the
//! copies are then joined without holding any lock of the table.

use super::super::events::Proto;
use super::super::tcp_state;
use super::super::Millis;
use super::{proto_index, Endpoint, Table};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Which entries a listing returns; `None` matches everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Inside host.
    pub host: Option<Ipv4Addr>,
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Remote (outside) address.
    pub remote: Option<Ipv4Addr>,
}

impl Filter {
    fn keeps_host(&self, host: Ipv4Addr) -> bool {
        self.host.is_none_or(|h| h == host)
    }
}

/// One session: an inside endpoint translated to an external one, talking
/// to one remote endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// `tcp`, `udp` or `icmp`.
    pub proto: &'static str,
    /// Inside address and port (ICMP: echo identifier).
    pub inside: Endpoint,
    /// External address and port it is translated to.
    pub external: Endpoint,
    /// The remote endpoint of this session.
    pub remote: Endpoint,
    /// TCP only: [`tcp_state::describe`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Seconds until the session expires unless a packet refreshes it.
    pub expires_in: u32,
}

/// What one inside host holds, against its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUsage {
    /// Inside address.
    pub host: Ipv4Addr,
    /// Live sessions (`nat.limits.max_sessions_per_host`).
    pub sessions: u32,
    /// External ports held for TCP, UDP and ICMP (`max_ports_per_host` each).
    pub ports: PortsByProto,
    /// Recorded outbound ESP SPIs (`max_esp_spis_per_host`).
    pub esp_spis: u32,
    /// New sessions it may open right now (token bucket level).
    pub new_session_tokens: u32,
}

/// A count per protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortsByProto {
    /// TCP.
    pub tcp: u32,
    /// UDP.
    pub udp: u32,
    /// ICMP identifiers.
    pub icmp: u32,
}

impl Table {
    /// The sessions `filter` keeps, sorted by inside endpoint, at `now`.
    pub fn translations(&self, filter: &Filter, now: Millis) -> Vec<Translation> {
        let now_s = (now / 1000) as u32;
        let raw: Vec<_> = self
            .sessions
            .iter()
            .filter(|e| {
                let k = e.key();
                let (proto, _, _) = k.external().parts();
                filter.proto.is_none_or(|p| p == proto)
                    && filter.remote.is_none_or(|r| r.octets() == k.remote_ip())
            })
            .map(|e| (*e.key(), *e.value()))
            .collect();
        let mut out: Vec<Translation> = raw
            .into_iter()
            .filter_map(|(k, s)| {
                let ek = k.external();
                let (proto, inside_ip, inside_port) = self.reverse.get(&ek).map(|r| r.parts())?;
                if !filter.keeps_host(inside_ip) {
                    return None;
                }
                let p = Proto::from_number(proto)?;
                Some(Translation {
                    proto: p.label(),
                    inside: Endpoint {
                        ip: inside_ip,
                        port: inside_port,
                    },
                    external: self.ext_endpoint(ek),
                    remote: k.remote(),
                    state: (p == Proto::Tcp).then(|| tcp_state::describe(s.tcp)),
                    expires_in: s.expires().saturating_sub(now_s),
                })
            })
            .collect();
        out.sort_by_key(|t| {
            (
                t.inside.ip,
                t.inside.port,
                t.proto,
                t.remote.ip,
                t.remote.port,
            )
        });
        out
    }

    /// Usage of every inside host with state (or only `filter.host`),
    /// sorted by address, at `now`.
    pub fn host_usage(&self, filter: &Filter, now: Millis) -> Vec<HostUsage> {
        let l = self.config().limits;
        let mut out: Vec<HostUsage> = self
            .hosts
            .map
            .iter()
            .filter(|h| filter.keeps_host(*h.key()))
            .map(|h| HostUsage {
                host: *h.key(),
                sessions: h.sessions,
                ports: PortsByProto {
                    tcp: h.ports[proto_index(Proto::Tcp.number())],
                    udp: h.ports[proto_index(Proto::Udp.number())],
                    icmp: h.ports[proto_index(Proto::Icmp.number())],
                },
                esp_spis: h.esp_spis,
                new_session_tokens: h.tokens(&l, now),
            })
            .collect();
        out.sort_by_key(|h| h.host);
        out
    }

    /// Live sessions, counted without a walk.
    pub fn session_total(&self) -> u32 {
        self.total_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
