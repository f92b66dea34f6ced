//! The NAT protocol core: translation table, port allocation, ESP
//! demultiplexing and packet rewriting. No I/O and no clock reads: every
//! call takes the current time as [`Millis`] from a monotonic clock.

pub mod config;
pub mod esp;
pub mod events;
mod invariants;
pub mod ports;
pub mod table;
pub mod tcp_state;
mod translate;

pub use config::{ConfigError, EspConfig, Filtering, NatConfig};
pub use events::{NatDrop, NatEvents, Proto};
pub use table::Endpoint;
pub use translate::L4Checksum;

use std::net::Ipv4Addr;

/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// The whole NAT: TCP/UDP/ICMP table plus ESP demultiplexer.
pub struct Nat {
    /// Mappings and sessions.
    pub table: table::Table,
    /// ESP SPI bindings.
    pub esp: esp::EspDemux,
}

impl Nat {
    /// Builds a NAT over `external` addresses after validating both configs.
    /// `seed` makes port randomisation reproducible in tests.
    pub fn new(
        cfg: NatConfig,
        esp: EspConfig,
        external: Vec<Ipv4Addr>,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        esp.validate()?;
        if external.is_empty() || external.len() > 256 {
            return Err(ConfigError {
                field: "outside.address",
                why: "between 1 and 256 external addresses are needed".into(),
            });
        }
        Ok(Nat {
            table: table::Table::new(cfg, external, seed),
            esp: esp::EspDemux::new(esp),
        })
    }

    /// Applies changed NAT and ESP configurations to the running state (see
    /// [`table::Table::reconfigure`] and [`esp::EspDemux::reconfigure`] for
    /// what can change); both are checked before either is applied.
    pub fn reconfigure(&self, cfg: NatConfig, esp: EspConfig) -> Result<(), ConfigError> {
        self.check_reconfigure(&cfg, &esp)?;
        self.table.reconfigure(cfg)?;
        self.esp.reconfigure(esp)
    }

    /// What [`Nat::reconfigure`] would refuse, without applying anything.
    pub fn check_reconfigure(&self, cfg: &NatConfig, esp: &EspConfig) -> Result<(), ConfigError> {
        self.esp.check_reconfigure(esp)?;
        self.table.check_reconfigure(cfg)
    }

    /// True when `ip` is one of the NAT's external addresses.
    pub fn is_external(&self, ip: Ipv4Addr) -> bool {
        self.table.is_external(ip)
    }

    /// Expires idle sessions, mappings, SPIs and bindings, then host entries
    /// left holding nothing (ESP first, so a host whose last SPI expired is
    /// reclaimed in the same sweep).
    pub fn expire(&self, now: Millis, ev: &mut NatEvents) {
        self.esp.expire(&self.table, now, ev);
        self.table.expire(now, ev);
    }
}

#[cfg(test)]
mod tests;
