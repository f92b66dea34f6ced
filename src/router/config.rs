//! Router configuration (TOML). Every field has a default except the
//! interfaces and addresses; unknown fields are refused; validation names the
//! offending field and happens before anything is started.

use crate::nat::{ConfigError, EspConfig, NatConfig};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

/// The inside (LAN) side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inside {
    /// Data interface name.
    pub interface: String,
    /// Router address and connected inside prefix, e.g. "10.6.1.1/24".
    pub address: Ipv4Net,
}

/// The outside (WAN) side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outside {
    /// Data interface name.
    pub interface: String,
    /// Public address and connected prefix, e.g. "203.0.113.10/24".
    pub address: Ipv4Net,
    /// Default gateway (must be inside the connected prefix).
    pub gateway: Ipv4Addr,
}

/// A further inside prefix reached through a router on the inside network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Ipv4Net,
    /// Next hop on the inside connected prefix.
    pub via: Ipv4Addr,
}

/// Packet I/O backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Raw AF_PACKET with recvmmsg/sendmmsg batches (fast path).
    Afpacket,
    /// pnet datalink channels (portable, one syscall per packet).
    Pnet,
}

/// Dataplane threads and I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    /// Workers; 0 = one per CPU. Each worker has one receive thread per interface.
    pub workers: usize,
    /// I/O backend.
    pub backend: BackendKind,
    /// Frames per receive batch (afpacket).
    pub batch: usize,
    /// PACKET_FANOUT group id base; 0 = derived from the process id.
    pub fanout_group: u16,
    /// Turn off GRO/GSO/TSO/SG/TX-checksum offloads on both data interfaces
    /// at start. Unset: off for afpacket (which forwards partial checksums and
    /// GSO super-frames as they are), on for pnet (which cannot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_offloads: Option<bool>,
}

impl Dataplane {
    /// Whether the router turns its interfaces' offloads off at start.
    pub fn offloads_disabled(&self) -> bool {
        self.disable_offloads
            .unwrap_or(self.backend == BackendKind::Pnet)
    }
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            workers: 0,
            backend: BackendKind::Afpacket,
            batch: 32,
            fanout_group: 0,
            disable_offloads: None,
        }
    }
}

/// ARP resolver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Arp {
    /// Seconds a learned entry stays valid.
    pub cache_timeout: u32,
    /// Milliseconds between requests for an unresolved address.
    pub retry_ms: u32,
    /// Requests sent before queued packets are dropped.
    pub max_requests: u32,
    /// Packets queued per unresolved next hop (oldest kept, newest dropped).
    pub queue_per_hop: usize,
    /// Unresolved next hops tracked at once, per interface.
    pub max_pending_hops: usize,
    /// Cache entries per interface (answers to the router's own requests
    /// are always cached; other senders are not once it is full).
    pub max_entries: usize,
}

impl Default for Arp {
    fn default() -> Self {
        Arp {
            cache_timeout: 300,
            retry_ms: 1000,
            max_requests: 3,
            queue_per_hop: 64,
            max_pending_hops: 256,
            max_entries: 4096,
        }
    }
}

/// ICMP errors the router originates (time exceeded, fragmentation needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Icmp {
    /// Errors per second for the whole router (RFC 1812 §4.3.2.8), shared
    /// evenly by the receive threads; 0 sends none.
    pub errors_per_sec: u32,
    /// Errors that may be sent back to back before the rate applies.
    pub errors_burst: u32,
}

impl Default for Icmp {
    fn default() -> Self {
        // Linux's defaults (net.ipv4.icmp_msgs_per_sec / icmp_msgs_burst).
        Icmp {
            errors_per_sec: 1000,
            errors_burst: 50,
        }
    }
}

/// Default metrics port: outside Prometheus' 9090 and the common exporters' 9100-9400 block.
pub const DEFAULT_METRICS_PORT: u16 = 9780;

/// Metrics endpoint (`[metrics]`): listen address and connection limits.
pub type Metrics = crate::daemon::metrics::MetricsConfig<RouterPort>;

/// Marks the default metrics port of this daemon.
#[derive(Debug)]
pub struct RouterPort;

impl crate::daemon::metrics::DefaultPort for RouterPort {
    const PORT: u16 = DEFAULT_METRICS_PORT;
}

impl crate::daemon::control::DefaultSocket for RouterPort {
    const SOCKET: &'static str = "/run/spimux/router.sock";
}

/// Control socket (`[control]`): `spimux router show|reload` talk to it.
pub type Control = crate::daemon::control::ControlConfig<RouterPort>;

/// The whole router configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// LAN side.
    pub inside: Inside,
    /// WAN side.
    pub outside: Outside,
    /// Extra inside prefixes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Threads and I/O.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// ARP.
    #[serde(default)]
    pub arp: Arp,
    /// ICMP error generation.
    #[serde(default)]
    pub icmp: Icmp,
    /// NAT behaviour.
    #[serde(default)]
    pub nat: NatConfig,
    /// ESP demultiplexing.
    #[serde(default)]
    pub esp: EspConfig,
    /// Metrics.
    #[serde(default)]
    pub metrics: Metrics,
    /// Control socket.
    #[serde(default)]
    pub control: Control,
    /// Log level.
    #[serde(default)]
    pub log: crate::daemon::log::LogConfig,
    /// Capture of dropped frames.
    #[serde(default)]
    pub capture: super::capture::config::CaptureConfig,
}

fn err(field: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        why: why.into(),
    }
}

impl RouterConfig {
    /// Parses TOML text (syntax errors name the line and field) and validates it.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: RouterConfig = toml::from_str(text).map_err(|e| err("config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("config", format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// The first table of `new` that differs from `self` in a way only a
    /// restart can apply: the interfaces and addresses, routes, threads and
    /// I/O, the metrics listener and the control socket. (`nat` and `esp`
    /// are checked field by field by the cores; `arp`, `icmp` and `log`
    /// apply live.)
    pub fn restart_field_changed(&self, new: &RouterConfig) -> Option<&'static str> {
        [
            ("inside", self.inside != new.inside),
            ("outside", self.outside != new.outside),
            ("routes", self.routes != new.routes),
            ("dataplane", self.dataplane != new.dataplane),
            ("metrics", self.metrics != new.metrics),
            ("control", self.control != new.control),
        ]
        .into_iter()
        .find_map(|(table, changed)| changed.then_some(table))
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.nat.validate()?;
        self.esp.validate()?;
        if self.dataplane.backend == BackendKind::Pnet
            && self.dataplane.disable_offloads == Some(false)
        {
            return Err(err(
                "dataplane.disable_offloads",
                "must be true with backend = \"pnet\" (it cannot carry partial checksums or GSO super-frames)",
            ));
        }
        if self.inside.interface.is_empty() {
            return Err(err("inside.interface", "must name an interface"));
        }
        if self.outside.interface.is_empty() {
            return Err(err("outside.interface", "must name an interface"));
        }
        if self.inside.interface == self.outside.interface {
            return Err(err(
                "outside.interface",
                "must differ from inside.interface",
            ));
        }
        for (field, net) in [
            ("inside.address", self.inside.address),
            ("outside.address", self.outside.address),
        ] {
            if net.prefix_len() > 30 {
                return Err(err(field, "prefix must be /30 or shorter"));
            }
            if net.addr() == net.network() || net.addr() == net.broadcast() {
                return Err(err(
                    field,
                    "is the network or broadcast address of its prefix",
                ));
            }
        }
        if self.inside.address.contains(&self.outside.address.addr())
            || self.outside.address.contains(&self.inside.address.addr())
        {
            return Err(err("outside.address", "overlaps the inside prefix"));
        }
        if !self.outside.address.contains(&self.outside.gateway)
            || self.outside.gateway == self.outside.address.addr()
        {
            return Err(err(
                "outside.gateway",
                "must be another address in the outside prefix",
            ));
        }
        for r in &self.routes {
            if !self.inside.address.contains(&r.via) {
                return Err(err(
                    "routes.via",
                    format!(
                        "{} is not on the inside prefix {}",
                        r.via,
                        self.inside.address.trunc()
                    ),
                ));
            }
        }
        if self.dataplane.batch == 0 || self.dataplane.batch > 1024 {
            return Err(err("dataplane.batch", "must be 1..=1024"));
        }
        if self.dataplane.workers > 256 {
            return Err(err("dataplane.workers", "must be 0..=256"));
        }
        for (field, v) in [
            ("arp.queue_per_hop", self.arp.queue_per_hop),
            ("arp.max_pending_hops", self.arp.max_pending_hops),
            ("arp.max_requests", self.arp.max_requests as usize),
            ("arp.max_entries", self.arp.max_entries),
        ] {
            if v == 0 {
                return Err(err(field, "must be at least 1"));
            }
        }
        if self.icmp.errors_burst == 0 && self.icmp.errors_per_sec > 0 {
            return Err(err(
                "icmp.errors_burst",
                "must be at least 1 when icmp.errors_per_sec is not 0",
            ));
        }
        if self.arp.retry_ms < 10 {
            return Err(err("arp.retry_ms", "must be at least 10"));
        }
        self.metrics.validate().map_err(|(f, why)| err(f, why))?;
        self.control.validate().map_err(|(f, why)| err(f, why))?;
        self.log.validate().map_err(|(f, why)| err(f, why))?;
        self.capture.validate()?;
        Ok(())
    }

    /// Worker count after resolving 0 to the CPU count.
    pub fn workers(&self) -> usize {
        match self.dataplane.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

// Reloadable settings as words for `crate::live::Live`. A count above
// u32::MAX is kept as u32::MAX: no table gets near either.

fn word(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl crate::live::Words<6> for Arp {
    fn to_words(self) -> [u32; 6] {
        [
            self.cache_timeout,
            self.retry_ms,
            self.max_requests,
            word(self.queue_per_hop),
            word(self.max_pending_hops),
            word(self.max_entries),
        ]
    }
    fn from_words(w: [u32; 6]) -> Self {
        let [cache_timeout, retry_ms, max_requests, queue, pending, entries] = w;
        Arp {
            cache_timeout,
            retry_ms,
            max_requests,
            queue_per_hop: queue as usize,
            max_pending_hops: pending as usize,
            max_entries: entries as usize,
        }
    }
}

impl crate::live::Words<2> for Icmp {
    fn to_words(self) -> [u32; 2] {
        [self.errors_per_sec, self.errors_burst]
    }
    fn from_words([errors_per_sec, errors_burst]: [u32; 2]) -> Self {
        Icmp {
            errors_per_sec,
            errors_burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[inside]
interface = "in0"
address = "10.6.1.1/24"
[outside]
interface = "out0"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = RouterConfig::parse(MIN).unwrap();
        assert_eq!(c.nat, NatConfig::default());
        assert_eq!(c.metrics.listen, "127.0.0.1:9780");
        assert!(c.workers() >= 1);
    }

    #[test]
    fn example_config_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/router.toml"))
                .unwrap();
        RouterConfig::parse(&text).unwrap();
    }

    #[test]
    fn offloads_default_by_backend_and_pnet_cannot_keep_them() {
        let c = RouterConfig::parse(MIN).unwrap();
        assert!(
            !c.dataplane.offloads_disabled(),
            "afpacket forwards offloads"
        );
        let pnet = format!("{MIN}\n[dataplane]\nbackend = \"pnet\"\n");
        let c = RouterConfig::parse(&pnet).unwrap();
        assert!(c.dataplane.offloads_disabled(), "pnet turns them off");
        let e = RouterConfig::parse(&format!("{pnet}disable_offloads = false\n")).unwrap_err();
        assert_eq!(e.field, "dataplane.disable_offloads", "{e}");
    }

    #[test]
    fn unknown_field_refused_with_its_name() {
        let e = RouterConfig::parse(&format!("{MIN}\n[nat]\nfiltring = \"x\"\n")).unwrap_err();
        assert!(e.why.contains("filtring"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (
                MIN.replace("203.0.113.1\"", "198.51.100.1\""),
                "outside.gateway",
            ),
            (MIN.replace("10.6.1.1/24", "10.6.1.0/24"), "inside.address"),
            (
                format!("{MIN}\n[nat.timeouts]\nudp = 10\n"),
                "nat.timeouts.udp",
            ),
            (
                format!("{MIN}\n[metrics]\nlisten = \"nonsense\"\n"),
                "metrics.listen",
            ),
            (format!("{MIN}\n[esp.layout]\ntag_len = 9\n"), "esp.layout"),
            (
                format!("{MIN}\n[capture]\nsnap_len = 10\n"),
                "capture.snap_len",
            ),
            (
                format!("{MIN}\n[[routes]]\nprefix = \"10.9.0.0/16\"\nvia = \"192.0.2.1\"\n"),
                "routes.via",
            ),
        ];
        for (text, field) in cases {
            let e = RouterConfig::parse(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = RouterConfig::parse("[inside]\ninterface = 3\n").unwrap_err();
        assert_eq!(e.field, "config");
    }
}
