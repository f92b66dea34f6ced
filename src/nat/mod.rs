//! The NAT protocol core: translation table, port allocation, ESP
//! demultiplexing and packet rewriting. No I/O and no clock reads: every
//! call takes the current time as [`Millis`] from a monotonic clock.

mod bucket;
pub mod config;
pub mod esp;
pub mod events;
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

    /// Checks both halves' invariants and that the host entries count
    /// exactly the SPIs the demultiplexer recorded. For tests and fuzzing;
    /// only meaningful while no other thread is using the NAT.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.table.check_invariants()?;
        self.esp.check_invariants()?;
        let counted = self.table.esp_spis_by_host();
        let recorded = self.esp.spis_by_host();
        if counted != recorded {
            return Err(format!(
                "host entries count SPIs {counted:?}, demultiplexer holds {recorded:?}"
            ));
        }
        Ok(())
    }

    /// True when the NAT holds no state at all.
    #[doc(hidden)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty() && self.esp.is_empty()
    }
}

/// `Ok` when `ok`, else the message `what` builds (invariant checks).
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

#[cfg(test)]
mod tests;
