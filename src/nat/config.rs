//! NAT behaviour settings. Deserialized from the `[nat]` and `[esp]` tables of
//! the router config; every field has a default and unknown fields are refused.

use crate::live::Words;
use crate::spi::Layout;
use serde::{Deserialize, Serialize};

/// Which inbound packets a mapping accepts (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Any remote endpoint may send to the mapping.
    EndpointIndependent,
    /// Only remote addresses the inside endpoint has sent to.
    AddressDependent,
    /// Only remote address-and-port pairs the inside endpoint has sent to.
    AddressAndPortDependent,
}

/// Idle timeouts in seconds. Validation refuses values below the RFC floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// UDP session idle timeout (RFC 4787 REQ-5: at least 120 s; default 300).
    pub udp: u32,
    /// TCP established idle timeout (RFC 5382 REQ-5: at least 7440 s).
    pub tcp_established: u32,
    /// TCP partially open or closing (RFC 5382 REQ-5: at least 240 s).
    pub tcp_transitory: u32,
    /// ICMP query idle timeout (RFC 5508 REQ-1: at least 60 s).
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: 300,
            tcp_established: 7440,
            tcp_transitory: 240,
            icmp: 60,
        }
    }
}

/// Table limits and what the NAT does when they are reached: the packet that
/// would create a new session is dropped and counted; existing sessions are
/// never evicted to make room (a flooding host cannot push others out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Total sessions (one per inside endpoint and remote endpoint).
    pub max_sessions: u32,
    /// Sessions one inside host may hold.
    pub max_sessions_per_host: u32,
    /// New sessions per second one inside host may create (token bucket).
    pub new_sessions_per_sec_per_host: u32,
    /// Burst size of that token bucket.
    pub new_sessions_burst: u32,
    /// Outbound SPIs one inside host may have recorded.
    pub max_esp_spis_per_host: u32,
    /// External ports (mappings) one inside host may hold per protocol, so a
    /// few hosts cannot exhaust the port range (default 4096: at least 15
    /// hosts at their quota before the default range of 64512 ports is used up).
    pub max_ports_per_host: u32,
    /// Inside hosts with NAT state (sessions, recorded SPIs or a rate-limit
    /// bucket still refilling).
    pub max_hosts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 262_144,
            max_sessions_per_host: 8192,
            new_sessions_per_sec_per_host: 1000,
            new_sessions_burst: 2000,
            max_esp_spis_per_host: 64,
            max_ports_per_host: 4096,
            max_hosts: 65_536,
        }
    }
}

/// Which SPI relations the ESP demultiplexer tries (seed paragraph [0075]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relations {
    /// Inbound SPI's digest bytes equal the recorded outbound SPI's tag bytes
    /// (the outside responder derived its SPI from the inside host's).
    ResponderDerives,
    /// Recorded outbound SPI's digest bytes equal the inbound SPI's tag bytes
    /// (the inside host derived its SPI from the responder's).
    InsideDerives,
    /// Try both; a match under either relation counts.
    Both,
}

/// ESP demultiplexing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EspConfig {
    /// Tag layout shared with the responder.
    pub layout: Layout,
    /// Relations tried on an unknown inbound SPI.
    pub relations: Relations,
    /// Bind an unmatched inbound SPI when exactly one inside host has
    /// unpaired outbound ESP to that responder (non-cooperating responders).
    pub single_pending_fallback: bool,
    /// Idle timeout of recorded outbound SPIs and inbound bindings, seconds.
    pub idle_timeout: u32,
    /// Recorded outbound SPIs, all inside hosts and responders together
    /// (the per-host cap is `nat.limits.max_esp_spis_per_host`).
    pub max_spis: u32,
    /// Inbound SPI bindings, in total.
    pub max_bindings: u32,
    /// Inbound SPI bindings with one responder.
    pub max_bindings_per_responder: u32,
    /// Unknown inbound SPIs per second one responder may have matched
    /// (token bucket in front of the MD5 and the responder's index lock).
    pub resolve_per_sec_per_responder: u32,
    /// Depth of that token bucket.
    pub resolve_burst: u32,
}

impl Default for EspConfig {
    fn default() -> Self {
        EspConfig {
            layout: Layout::default(),
            relations: Relations::Both,
            single_pending_fallback: false,
            idle_timeout: 600,
            max_spis: 65_536,
            max_bindings: 65_536,
            max_bindings_per_responder: 16_384,
            resolve_per_sec_per_responder: 1000,
            resolve_burst: 256,
        }
    }
}

/// The NAT core's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatConfig {
    /// Inbound filtering behaviour.
    pub filtering: Filtering,
    /// First external port handed out.
    pub port_min: u16,
    /// Last external port handed out.
    pub port_max: u16,
    /// Keep UDP source port 500 (IKE) when it is free on the external address.
    pub preserve_ike_port: bool,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Table limits.
    pub limits: Limits,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            filtering: Filtering::AddressAndPortDependent,
            port_min: 1024,
            port_max: 65535,
            preserve_ike_port: true,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }
}

/// A setting outside its allowed range; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct ConfigError {
    /// Dotted config path of the offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl ConfigError {
    /// `field` changed, but only a restart can apply it (configuration reload).
    pub fn needs_restart(field: &'static str) -> Self {
        ConfigError {
            field,
            why: "cannot change while running (restart to apply)".into(),
        }
    }
}

fn floor(field: &'static str, v: u32, min: u32, rfc: &str) -> Result<(), ConfigError> {
    if v < min {
        return Err(ConfigError {
            field,
            why: format!("{v} s is below the {min} s minimum of {rfc}"),
        });
    }
    Ok(())
}

/// Refuses a zero limit, naming the first offending field.
fn at_least_one<const N: usize>(fields: [(&'static str, u32); N]) -> Result<(), ConfigError> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((field, _)) => Err(ConfigError {
            field,
            why: "must be at least 1".into(),
        }),
        None => Ok(()),
    }
}

impl NatConfig {
    /// Checks ranges and RFC minimum timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        floor("nat.timeouts.udp", t.udp, 120, "RFC 4787 REQ-5")?;
        floor(
            "nat.timeouts.tcp_established",
            t.tcp_established,
            7440,
            "RFC 5382 REQ-5",
        )?;
        floor(
            "nat.timeouts.tcp_transitory",
            t.tcp_transitory,
            240,
            "RFC 5382 REQ-5",
        )?;
        floor("nat.timeouts.icmp", t.icmp, 60, "RFC 5508 REQ-1")?;
        if self.port_min == 0 || self.port_min > self.port_max {
            return Err(ConfigError {
                field: "nat.port_min",
                why: "must be >= 1 and <= nat.port_max".into(),
            });
        }
        let l = &self.limits;
        at_least_one([
            ("nat.limits.max_sessions", l.max_sessions),
            ("nat.limits.max_sessions_per_host", l.max_sessions_per_host),
            (
                "nat.limits.new_sessions_per_sec_per_host",
                l.new_sessions_per_sec_per_host,
            ),
            ("nat.limits.new_sessions_burst", l.new_sessions_burst),
            ("nat.limits.max_esp_spis_per_host", l.max_esp_spis_per_host),
            ("nat.limits.max_ports_per_host", l.max_ports_per_host),
            ("nat.limits.max_hosts", l.max_hosts),
        ])
    }
}

impl EspConfig {
    /// Checks the layout and timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.layout.validate().map_err(|e| ConfigError {
            field: "esp.layout",
            why: e.to_string(),
        })?;
        if self.idle_timeout == 0 {
            return Err(ConfigError {
                field: "esp.idle_timeout",
                why: "must be at least 1 s".into(),
            });
        }
        at_least_one([
            ("esp.max_spis", self.max_spis),
            ("esp.max_bindings", self.max_bindings),
            (
                "esp.max_bindings_per_responder",
                self.max_bindings_per_responder,
            ),
            (
                "esp.resolve_per_sec_per_responder",
                self.resolve_per_sec_per_responder,
            ),
            ("esp.resolve_burst", self.resolve_burst),
        ])
    }
}

// Reloadable settings as words for `crate::live::Live` (read per packet).

impl Words<4> for Timeouts {
    fn to_words(self) -> [u32; 4] {
        [
            self.udp,
            self.tcp_established,
            self.tcp_transitory,
            self.icmp,
        ]
    }
    fn from_words([udp, tcp_established, tcp_transitory, icmp]: [u32; 4]) -> Self {
        Timeouts {
            udp,
            tcp_established,
            tcp_transitory,
            icmp,
        }
    }
}

impl Words<7> for Limits {
    fn to_words(self) -> [u32; 7] {
        [
            self.max_sessions,
            self.max_sessions_per_host,
            self.new_sessions_per_sec_per_host,
            self.new_sessions_burst,
            self.max_esp_spis_per_host,
            self.max_ports_per_host,
            self.max_hosts,
        ]
    }
    fn from_words(w: [u32; 7]) -> Self {
        let [max_sessions, max_sessions_per_host, new_sessions_per_sec_per_host, new_sessions_burst, max_esp_spis_per_host, max_ports_per_host, max_hosts] =
            w;
        Limits {
            max_sessions,
            max_sessions_per_host,
            new_sessions_per_sec_per_host,
            new_sessions_burst,
            max_esp_spis_per_host,
            max_ports_per_host,
            max_hosts,
        }
    }
}

impl Words<9> for EspConfig {
    fn to_words(self) -> [u32; 9] {
        let l = self.layout;
        let relations = match self.relations {
            Relations::ResponderDerives => 0,
            Relations::InsideDerives => 1,
            Relations::Both => 2,
        };
        [
            u32::from_le_bytes([l.tag_len, l.spi_offset, l.digest_offset, 0]),
            relations,
            u32::from(self.single_pending_fallback),
            self.idle_timeout,
            self.max_spis,
            self.max_bindings,
            self.max_bindings_per_responder,
            self.resolve_per_sec_per_responder,
            self.resolve_burst,
        ]
    }
    fn from_words(w: [u32; 9]) -> Self {
        let [layout, relations, fallback, idle_timeout, max_spis, max_bindings, max_bindings_per_responder, resolve_per_sec_per_responder, resolve_burst] =
            w;
        let [tag_len, spi_offset, digest_offset, _] = layout.to_le_bytes();
        EspConfig {
            layout: Layout {
                tag_len,
                spi_offset,
                digest_offset,
            },
            relations: match relations {
                0 => Relations::ResponderDerives,
                1 => Relations::InsideDerives,
                _ => Relations::Both,
            },
            single_pending_fallback: fallback != 0,
            idle_timeout,
            max_spis,
            max_bindings,
            max_bindings_per_responder,
            resolve_per_sec_per_responder,
            resolve_burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NatConfig::default().validate().unwrap();
        EspConfig::default().validate().unwrap();
    }

    #[test]
    fn timeouts_below_rfc_floor_name_the_field() {
        let mut c = NatConfig::default();
        c.timeouts.udp = 30;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "nat.timeouts.udp");
        assert!(e.why.contains("RFC 4787"));
        let mut c = NatConfig::default();
        c.timeouts.tcp_established = 3600;
        assert_eq!(
            c.validate().unwrap_err().field,
            "nat.timeouts.tcp_established"
        );
    }

    #[test]
    fn zero_limits_name_the_field() {
        let mut c = NatConfig::default();
        c.limits.max_ports_per_host = 0;
        assert_eq!(
            c.validate().unwrap_err().field,
            "nat.limits.max_ports_per_host"
        );
        let mut c = NatConfig::default();
        c.limits.max_hosts = 0;
        assert_eq!(c.validate().unwrap_err().field, "nat.limits.max_hosts");
        for (field, set) in [
            (
                "esp.max_spis",
                (|e: &mut EspConfig| e.max_spis = 0) as fn(&mut EspConfig),
            ),
            ("esp.max_bindings", |e| e.max_bindings = 0),
            ("esp.max_bindings_per_responder", |e| {
                e.max_bindings_per_responder = 0
            }),
            ("esp.resolve_per_sec_per_responder", |e| {
                e.resolve_per_sec_per_responder = 0
            }),
            ("esp.resolve_burst", |e| e.resolve_burst = 0),
        ] {
            let mut e = EspConfig::default();
            set(&mut e);
            assert_eq!(e.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn bad_layout_names_the_field() {
        let mut e = EspConfig::default();
        e.layout.tag_len = 7;
        assert_eq!(e.validate().unwrap_err().field, "esp.layout");
    }
}
