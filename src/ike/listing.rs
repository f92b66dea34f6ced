//! Read-only listing of the engine's IKE SAs and CHILD_SAs for operators
//! (`spimux responder|client show ike|child`). Built on the IKE thread from
//! the engine it owns; times are seconds relative to `now`.

use super::engine::Engine;
use super::sa::{IkeSa, Role};
use super::selectors::describe;
use serde::Serialize;
use std::net::SocketAddrV4;

/// One IKE SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IkeSaInfo {
    /// Peer policy name; `-` while a responder does not know it (half-open).
    pub peer: String,
    /// `initiator` or `responder` (of the IKE SA or of its last rekey).
    pub role: &'static str,
    /// Initiator's SPI.
    pub spi_i: String,
    /// Responder's SPI (`0x0000000000000000` until IKE_SA_INIT is answered).
    pub spi_r: String,
    /// `IkeState::label`.
    pub state: &'static str,
    /// Our IKE address and port.
    pub local: SocketAddrV4,
    /// The peer's IKE address and port.
    pub remote: SocketAddrV4,
    /// Negotiated suite, once IKE_SA_INIT completed.
    pub suite: Option<String>,
    /// Where NAT detection found a NAT: `none`, `local`, `remote`, `both`.
    pub nat: &'static str,
    /// IKE on port 4500 and ESP in UDP.
    pub natt: bool,
    /// Seconds since it was created.
    pub age: u64,
    /// Seconds since the peer's last authenticated message.
    pub idle: u64,
    /// Seconds until this side rekeys it.
    pub rekey_in: Option<u64>,
    /// Seconds until a half-open or deleting SA is given up.
    pub expires_in: Option<u64>,
    /// Its CHILD_SAs.
    pub child_sas: usize,
}

/// One CHILD_SA (a pair of ESP SAs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildSaInfo {
    /// Peer policy name.
    pub peer: String,
    /// Our SPI of the IKE SA it belongs to.
    pub ike_spi: String,
    /// Our inbound SPI.
    pub inbound_spi: String,
    /// The peer's inbound SPI (we send with it).
    pub outbound_spi: String,
    /// `ChildState::label`.
    pub state: &'static str,
    /// Negotiated ESP suite.
    pub suite: String,
    /// Our side's selectors.
    pub local_ts: Vec<String>,
    /// The peer's selectors.
    pub remote_ts: Vec<String>,
    /// Seconds until this side rekeys it.
    pub rekey_in: Option<u64>,
    /// Seconds until it is deleted unless a rekey replaced it.
    pub expires_in: Option<u64>,
}

/// Every SA of the engine, optionally of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// IKE SAs, by peer name, then oldest first.
    pub ike_sas: Vec<IkeSaInfo>,
    /// CHILD_SAs, in the order of their IKE SAs.
    pub child_sas: Vec<ChildSaInfo>,
}

fn secs_until(at: Option<u64>, now: u64) -> Option<u64> {
    at.map(|t| t.saturating_sub(now) / 1000)
}

fn nat(sa: &IkeSa) -> &'static str {
    match (sa.nat_here, sa.nat_there) {
        (false, false) => "none",
        (true, false) => "local",
        (false, true) => "remote",
        (true, true) => "both",
    }
}

impl Engine {
    /// The IKE SAs and CHILD_SAs at `now`; with `peer`, only that policy's.
    pub fn listing(&self, now: u64, peer: Option<&str>) -> Listing {
        let name = |sa: &IkeSa| {
            sa.peer
                .and_then(|p| self.policies.get(p))
                .map_or_else(|| "-".to_string(), |p| p.name.clone())
        };
        let mut sas: Vec<(&IkeSa, String)> = self
            .sas
            .values()
            .map(|sa| (sa, name(sa)))
            .filter(|(_, n)| peer.is_none_or(|want| want == n))
            .collect();
        sas.sort_by(|a, b| (&a.1, a.0.created_at).cmp(&(&b.1, b.0.created_at)));
        let mut out = Listing::default();
        for (sa, peer) in sas {
            let ike_spi = format!("{:#018x}", sa.local_spi());
            for c in &sa.children {
                out.child_sas.push(ChildSaInfo {
                    peer: peer.clone(),
                    ike_spi: ike_spi.clone(),
                    inbound_spi: format!("{:#010x}", c.inbound_spi),
                    outbound_spi: format!("{:#010x}", c.outbound_spi),
                    state: c.state.label(),
                    suite: c.suite.to_string(),
                    local_ts: c.local_ts.iter().map(describe).collect(),
                    remote_ts: c.remote_ts.iter().map(describe).collect(),
                    rekey_in: secs_until(c.rekey_at, now),
                    expires_in: secs_until(c.hard_at, now),
                });
            }
            out.ike_sas.push(IkeSaInfo {
                peer,
                role: match sa.role {
                    Role::Initiator => "initiator",
                    Role::Responder => "responder",
                },
                spi_i: format!("{:#018x}", sa.spi_i),
                spi_r: format!("{:#018x}", sa.spi_r),
                state: sa.state.label(),
                local: sa.local,
                remote: sa.remote,
                suite: sa.prot.as_ref().map(|p| p.suite.to_string()),
                nat: nat(sa),
                natt: sa.natt,
                age: now.saturating_sub(sa.created_at) / 1000,
                idle: now.saturating_sub(sa.last_rx) / 1000,
                rekey_in: secs_until(sa.rekey_at, now),
                expires_in: secs_until(sa.expire_at, now),
                child_sas: sa.children.len(),
            });
        }
        out
    }
}
