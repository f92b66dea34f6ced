//! Endpoint configuration (TOML) for both roles: the responder (gateway,
//! many peers) and the client (one peer). Tunnels are keyed by IKEv2
//! (`[peers.ike]`); static keys (`[peers.manual]`) remain as a legacy mode
//! limited to AES-CBC + HMAC. Unknown fields are refused; validation names the
//! offending field and happens before anything is opened.

use crate::esp::{Hmac, Transform};
use crate::spi::{Layout, SpiAllocator};
use crate::wire::mobility::Encap;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Default metrics port of the endpoint daemons (the router uses 9780).
pub const DEFAULT_METRICS_PORT: u16 = 9781;

/// Which daemon reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// VPN gateway: many peers, derives its inbound SPIs.
    Responder,
    /// Initiator: exactly one peer with a configured address.
    Client,
}

impl Role {
    /// The daemon's name: `responder` or `client`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Responder => "responder",
            Role::Client => "client",
        }
    }
}

/// `[control]`: the control socket (`spimux responder|client show`,
/// `reload`). The default path depends on the role, so a responder and a
/// client can run on one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Socket path; absent: `/run/spimux/<role>.sock`; empty: no socket.
    pub socket: Option<String>,
}

impl ControlConfig {
    /// The socket path for `role` (empty: none).
    pub fn path(&self, role: Role) -> String {
        self.socket
            .clone()
            .unwrap_or_else(|| format!("/run/spimux/{}.sock", role.label()))
    }
}

/// The TUN device carrying inner packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunConfig {
    /// Device name.
    #[serde(default = "default_tun_name")]
    pub name: String,
    /// Own inner address with prefix, e.g. "10.99.0.1/24" (gateway) or "10.98.0.2/32" (client).
    pub address: Ipv4Net,
    /// MTU; the default leaves room for outer IPv4 + UDP + ESP on a 1500-byte path.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// TCP segmentation/coalescing offload between the kernel and the TUN device
    /// (IFF_VNET_HDR): 64 KiB reads split here, writes coalesced (GRO).
    #[serde(default = "default_offload")]
    pub offload: bool,
}

fn default_offload() -> bool {
    true
}

fn default_tun_name() -> String {
    "spimux0".into()
}

fn default_mtu() -> u16 {
    1400
}

/// The outer (network) side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OuterConfig {
    /// Local address for ESP and UDP/4500 sockets; 0.0.0.0 = any.
    pub local: Ipv4Addr,
    /// UDP encapsulation port (RFC 3948).
    pub udp_port: u16,
    /// Kernel receive buffer per socket, bytes (set with SO_RCVBUFFORCE).
    pub rcvbuf: usize,
}

impl Default for OuterConfig {
    fn default() -> Self {
        OuterConfig {
            local: Ipv4Addr::UNSPECIFIED,
            udp_port: crate::esp::encap::NAT_T_PORT,
            rcvbuf: 4 << 20,
        }
    }
}

/// Metrics endpoint (`[metrics]`): listen address and connection limits.
pub type MetricsConfig = crate::daemon::metrics::MetricsConfig<EndpointPort>;

/// Marks the default metrics port of this daemon.
#[derive(Debug)]
pub struct EndpointPort;

impl crate::daemon::metrics::DefaultPort for EndpointPort {
    const PORT: u16 = DEFAULT_METRICS_PORT;
}

/// Mobility (registration requests and replies inside the tunnel, docs/MOBILITY.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MobilityConfig {
    /// Client: watch the route to the gateway and re-register on every change.
    /// Responder: accept registrations. Default: on for a responder, off for a client.
    pub enabled: Option<bool>,
    /// Client: the gateway's inner address, where requests go.
    pub gateway: Option<Ipv4Addr>,
    /// UDP port of registrations inside the tunnel.
    pub port: u16,
    /// Client: offer and probe plain ESP. Responder: allow choosing it on untranslated paths.
    pub plain_esp: bool,
    /// Responder: NAT keepalive interval announced with UDP encapsulation, seconds.
    pub keepalive_secs: u16,
    /// Client: first retransmission timeout, ms (doubles up to `max_rto_ms`).
    pub initial_rto_ms: u64,
    /// Client: largest retransmission timeout, ms.
    pub max_rto_ms: u64,
    /// Client: shortest wait for the plain-ESP reply after the UDP reply, ms.
    pub probe_wait_ms: u64,
    /// Responder: packets sent to an address a registration moved a peer to,
    /// before an authenticated packet from that address proves it.
    pub unproven_packets: u32,
    /// Responder: bytes (sealed ESP) sent to such an unproven address.
    pub unproven_bytes: u64,
}

/// Largest retransmission timeout or probe wait accepted, ms (one hour).
pub const MAX_TIMER_MS: u64 = 3_600_000;

impl Default for MobilityConfig {
    fn default() -> Self {
        MobilityConfig {
            enabled: None,
            gateway: None,
            port: crate::wire::mobility::PORT,
            plain_esp: true,
            keepalive_secs: 20,
            initial_rto_ms: 200,
            max_rto_ms: 3200,
            probe_wait_ms: 50,
            unproven_packets: 128,
            unproven_bytes: 256 * 1024,
        }
    }
}

impl MobilityConfig {
    /// Whether mobility runs for `role`.
    pub fn enabled_for(&self, role: Role) -> bool {
        self.enabled.unwrap_or(role == Role::Responder)
    }

    fn validate(&self, role: Role, tun: &TunConfig) -> Result<(), EndpointConfigError> {
        if !self.enabled_for(role) {
            return Ok(());
        }
        if self.port == 0 {
            return Err(err("mobility.port", "must not be 0"));
        }
        if role == Role::Client {
            let gw = self.gateway.ok_or_else(|| {
                err(
                    "mobility.gateway",
                    "a mobile client needs the gateway's inner address (its tun.address)",
                )
            })?;
            if gw == tun.address.addr() {
                return Err(err(
                    "mobility.gateway",
                    "is this client's own inner address",
                ));
            }
            if self.initial_rto_ms == 0 || self.max_rto_ms < self.initial_rto_ms {
                return Err(err(
                    "mobility.initial_rto_ms",
                    "must be at least 1 and not above max_rto_ms",
                ));
            }
            for (field, v) in [
                ("mobility.max_rto_ms", self.max_rto_ms),
                ("mobility.probe_wait_ms", self.probe_wait_ms),
            ] {
                if v > MAX_TIMER_MS {
                    return Err(err(field, format!("must be at most {MAX_TIMER_MS}")));
                }
            }
        }
        if role == Role::Responder {
            if self.unproven_packets > 1_000_000 {
                return Err(err("mobility.unproven_packets", "must be at most 1000000"));
            }
            if self.unproven_bytes > 1 << 30 {
                return Err(err("mobility.unproven_bytes", "must be at most 1073741824"));
            }
        }
        Ok(())
    }
}

/// `encap` of a manually keyed peer: "none" (plain ESP, IP protocol 50) or
/// "udp" (ESP in UDP, RFC 3948); RFC 8229 TCP is not offered.
mod manual_encap {
    use crate::wire::mobility::Encap;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Encap, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match e {
            Encap::Plain => "none",
            Encap::Udp => "udp",
            Encap::Tcp => "tcp",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Encap, D::Error> {
        match String::deserialize(d)?.as_str() {
            "none" => Ok(Encap::Plain),
            "udp" => Ok(Encap::Udp),
            other => Err(D::Error::unknown_variant(other, &["none", "udp"])),
        }
    }

    pub fn plain() -> Encap {
        Encap::Plain
    }
}

/// One tunnel (a pair of SAs) with one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Name used in logs and metric labels.
    pub name: String,
    /// Inner networks reached through this peer: its inner address(es) on a
    /// gateway, the protected networks on a client. Routed into the TUN device,
    /// and the only sources accepted from the peer.
    pub inner: Vec<Ipv4Net>,
    /// Outer address ("ip" or "ip:port"; port defaults to `outer.udp_port`). Required
    /// on a client; on a responder, learned from the first authenticated packet when absent.
    #[serde(default)]
    pub remote: Option<String>,
    /// IKEv2 keying for this tunnel (`[peers.ike]`), the normal mode.
    #[serde(default)]
    pub ike: Option<super::ike_config::PeerIkeConfig>,
    /// Legacy manual keying (`[peers.manual]`): static SPIs and keys, AES-CBC
    /// + HMAC only. Exactly one of `ike` and `manual` is set.
    #[serde(default)]
    pub manual: Option<ManualConfig>,
    /// Anti-replay window in packets (64..=4096, rounded up to a multiple of 64).
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    /// NAT keepalive interval in seconds for UDP encapsulation (RFC 3948 §4); 0 disables.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
}

/// Legacy manual keying of one tunnel (`[peers.manual]`). Static keys are
/// allowed only with AES-CBC + HMAC: AES-GCM takes its nonce from the
/// sequence number, so a restart of either side would reuse nonces under the
/// same key (RFC 4106 §8.1 forbids static GCM keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualConfig {
    /// Our inbound SPI. A responder derives it from `remote_spi` when absent.
    #[serde(default)]
    pub local_spi: Option<u32>,
    /// The peer's inbound SPI (the SPI we send with).
    pub remote_spi: u32,
    /// ESP transform; must match the peer. No default: it is a choice.
    pub transform: EspTransform,
    /// Inbound key, hex: the AES-128/256 key followed by the HMAC key of the
    /// hash's length (RFC 7296 §2.17 order; e.g. 16 + 32 bytes for AES-128
    /// with SHA-256).
    pub key_in: String,
    /// Outbound key, same form.
    pub key_out: String,
    /// Extended sequence numbers (RFC 4303 §2.2.1); must match the peer.
    #[serde(default)]
    pub esn: bool,
    /// Encapsulation towards a configured `remote`; a learned peer is
    /// answered the way it spoke. (IKE decides it by NAT detection.)
    #[serde(default = "manual_encap::plain", with = "manual_encap")]
    pub encap: Encap,
}

fn default_replay_window() -> u32 {
    128
}

fn default_keepalive() -> u64 {
    20
}

/// A whole endpoint configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// TUN device.
    pub tun: TunConfig,
    /// Outer sockets.
    #[serde(default)]
    pub outer: OuterConfig,
    /// SPI-hash layout (must match the routers' `esp.layout`).
    #[serde(default)]
    pub spi_layout: Layout,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Mobility.
    #[serde(default)]
    pub mobility: MobilityConfig,
    /// IKEv2 settings shared by every IKE-keyed peer.
    #[serde(default)]
    pub ike: super::ike_config::IkeConfig,
    /// Tunnels.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Control socket.
    #[serde(default)]
    pub control: ControlConfig,
    /// Log filter (reloadable).
    #[serde(default)]
    pub log: crate::daemon::log::LogConfig,
}

/// A configuration error naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct EndpointConfigError {
    /// Dotted path of the field, e.g. `peers[1].key_in`.
    pub field: String,
    /// What is wrong.
    pub why: String,
}

fn err(field: impl Into<String>, why: impl Into<String>) -> EndpointConfigError {
    EndpointConfigError {
        field: field.into(),
        why: why.into(),
    }
}

/// ESP transform of a manually keyed tunnel. AES-GCM parses (so the refusal
/// can say why) but is refused by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EspTransform {
    /// AES-GCM with a 16-byte ICV (RFC 4106): refused with static keys.
    #[serde(rename = "aes-gcm-16")]
    AesGcm16,
    /// AES-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868).
    #[serde(rename = "aes-cbc-hmac-sha256")]
    AesCbcHmacSha256,
    /// AES-CBC with HMAC-SHA-384-192.
    #[serde(rename = "aes-cbc-hmac-sha384")]
    AesCbcHmacSha384,
    /// AES-CBC with HMAC-SHA-512-256.
    #[serde(rename = "aes-cbc-hmac-sha512")]
    AesCbcHmacSha512,
}

impl EspTransform {
    /// The integrity algorithm of a CBC transform; `None` for AES-GCM.
    pub fn hmac(self) -> Option<Hmac> {
        match self {
            EspTransform::AesGcm16 => None,
            EspTransform::AesCbcHmacSha256 => Some(Hmac::Sha256_128),
            EspTransform::AesCbcHmacSha384 => Some(Hmac::Sha384_192),
            EspTransform::AesCbcHmacSha512 => Some(Hmac::Sha512_256),
        }
    }
}

/// Static key material of one direction, checked: AES-CBC + HMAC only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// AES key (16 or 32 bytes).
    pub key: Vec<u8>,
    /// HMAC algorithm.
    pub hmac: Hmac,
    /// HMAC key (the hash's length).
    pub hmac_key: Vec<u8>,
}

impl KeyMaterial {
    /// The SA transform these keys are for.
    pub fn transform(&self) -> Transform<'_> {
        Transform::AesCbcHmac {
            key: &self.key,
            hmac: self.hmac,
            hmac_key: &self.hmac_key,
        }
    }
}

/// Parses key hex (optionally 0x-prefixed) for an AES-CBC `transform`: the
/// 16- or 32-byte AES key followed by the HMAC key of the hash's length.
/// AES-GCM is refused: static GCM keys are never allowed.
pub fn parse_key(hex: &str, transform: EspTransform) -> Result<KeyMaterial, String> {
    let Some(hmac) = transform.hmac() else {
        return Err("AES-GCM is never keyed statically".into());
    };
    let h = hex.trim();
    let h = h.strip_prefix("0x").unwrap_or(h);
    if !h.len().is_multiple_of(2) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be hex digits".into());
    }
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .filter_map(|i| h.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
        .collect();
    let n = bytes.len();
    let aes = n.saturating_sub(hmac.key_len());
    if !matches!(aes, 16 | 32) {
        return Err(format!(
            "{n} bytes; need a 16- or 32-byte AES key followed by a {}-byte HMAC key ({} or {} bytes)",
            hmac.key_len(),
            16 + hmac.key_len(),
            32 + hmac.key_len()
        ));
    }
    let (key, hmac_key) = bytes.split_at(aes);
    Ok(KeyMaterial {
        key: key.to_vec(),
        hmac,
        hmac_key: hmac_key.to_vec(),
    })
}

/// Parses "ip" or "ip:port".
pub fn parse_remote(s: &str, default_port: u16) -> Result<SocketAddrV4, String> {
    let a = if let Ok(sa) = s.parse::<SocketAddrV4>() {
        sa
    } else {
        let ip: Ipv4Addr = s
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4 address or address:port"))?;
        SocketAddrV4::new(ip, default_port)
    };
    if a.ip().is_unspecified() || a.ip().is_broadcast() || a.ip().is_multicast() {
        return Err(format!("{a} is not a unicast address"));
    }
    if a.port() == 0 {
        return Err("port 0".into());
    }
    Ok(a)
}

/// The SAs of a manually keyed peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualKeys {
    /// Our inbound SPI (configured or derived).
    pub local_spi: u32,
    /// True when `local_spi` was derived at load.
    pub derived: bool,
    /// The peer's inbound SPI.
    pub remote_spi: u32,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Encapsulation towards a configured remote.
    pub encap: Encap,
    /// Inbound key.
    pub key_in: KeyMaterial,
    /// Outbound key.
    pub key_out: KeyMaterial,
}

/// A peer after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPeer {
    /// The configuration as written.
    pub config: PeerConfig,
    /// Configured outer address.
    pub remote: Option<SocketAddrV4>,
    /// Manual keys; `None` for an IKE-keyed peer.
    pub manual: Option<ManualKeys>,
}

impl EndpointConfig {
    /// Checks everything and settles the SPIs; a responder derives missing
    /// inbound SPIs with `draw` (random bytes) through `alloc`.
    pub fn resolve(
        &self,
        role: Role,
        alloc: &mut SpiAllocator,
        mut draw: impl FnMut() -> u32,
    ) -> Result<Vec<ResolvedPeer>, EndpointConfigError> {
        let t = &self.tun;
        if t.name.is_empty() || t.name.len() > 15 {
            return Err(err("tun.name", "must be 1 to 15 characters"));
        }
        if !(576..=9000).contains(&t.mtu) {
            return Err(err("tun.mtu", "must be 576..=9000"));
        }
        if self.outer.udp_port == 0 {
            return Err(err("outer.udp_port", "must not be 0"));
        }
        self.spi_layout
            .validate()
            .map_err(|e| err("spi_layout", e.to_string()))?;
        self.mobility.validate(role, t)?;
        self.metrics.validate().map_err(|(f, why)| err(f, why))?;
        crate::daemon::control::check_path(&self.control.path(role))
            .map_err(|why| err("control.socket", why))?;
        self.log.validate().map_err(|(f, why)| err(f, why))?;
        if self.outer.rcvbuf > 1 << 30 {
            return Err(err("outer.rcvbuf", "must be at most 1073741824"));
        }
        match (role, self.peers.len()) {
            (_, 0) => return Err(err("peers", "at least one [[peers]] entry is needed")),
            (Role::Client, n) if n > 1 => {
                return Err(err("peers", "a client has exactly one peer"))
            }
            _ => {}
        }
        // Configured SPIs first, so derived ones avoid them all.
        for (i, m) in self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.manual.as_ref()?)))
        {
            if let Some(s) = m.local_spi {
                let f = format!("peers[{i}].manual.local_spi");
                if s < crate::spi::MIN_SPI {
                    return Err(err(f, "SPIs below 256 are reserved (RFC 4303)"));
                }
                let remote_spi = m.remote_spi;
                if role == Role::Responder && !self.spi_layout.matches(s, remote_spi) {
                    return Err(err(
                        f,
                        format!(
                            "{s:#010x} does not carry the SPI-hash tag of remote_spi {:#010x}, so a \
                             spimux router cannot match it; use `spimux spi derive {:#010x}` or omit it",
                            remote_spi, remote_spi
                        ),
                    ));
                }
                if !alloc.reserve(s) {
                    return Err(err(f, format!("{s:#010x} is used by another peer")));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.peers.len());
        for (i, p) in self.peers.iter().enumerate() {
            let f = |name: &str| format!("peers[{i}].{name}");
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(err(f("name"), "must be non-empty and unique"));
            }
            if p.inner.is_empty() {
                return Err(err(f("inner"), "needs at least one network"));
            }
            if !(64..=4096).contains(&p.replay_window) {
                return Err(err(f("replay_window"), "must be 64..=4096"));
            }
            if p.keepalive_secs > 86_400 {
                return Err(err(f("keepalive_secs"), "must be at most 86400"));
            }
            let remote = p
                .remote
                .as_deref()
                .map(|r| parse_remote(r, self.outer.udp_port))
                .transpose()
                .map_err(|e| err(f("remote"), e))?;
            if role == Role::Client && remote.is_none() {
                return Err(err(f("remote"), "a client needs the gateway's address"));
            }
            let m = match (&p.ike, &p.manual) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        f("manual"),
                        "[peers.manual] and [peers.ike] exclude each other",
                    ))
                }
                (None, None) => {
                    return Err(err(
                        f("ike"),
                        "needs [peers.ike] (or the legacy [peers.manual] static keys)",
                    ))
                }
                (Some(_), None) => {
                    out.push(ResolvedPeer {
                        config: p.clone(),
                        remote,
                        manual: None,
                    });
                    continue;
                }
                (None, Some(m)) => m,
            };
            let f = |name: &str| format!("peers[{i}].manual.{name}");
            if m.transform.hmac().is_none() {
                return Err(err(
                    f("transform"),
                    "AES-GCM is refused with static keys: its nonce is the sequence number, so a \
                     restart of either side reuses nonces under the same key (RFC 4106 §8.1); \
                     negotiate keys with [peers.ike] or use an aes-cbc-hmac-* transform",
                ));
            }
            if m.remote_spi < crate::spi::MIN_SPI {
                return Err(err(
                    f("remote_spi"),
                    "SPIs below 256 are reserved (RFC 4303)",
                ));
            }
            let remote_spi = m.remote_spi;
            let key_in = parse_key(&m.key_in, m.transform).map_err(|e| err(f("key_in"), e))?;
            let key_out = parse_key(&m.key_out, m.transform).map_err(|e| err(f("key_out"), e))?;
            let (local_spi, derived) = match (m.local_spi, role) {
                (Some(s), _) => (s, false),
                (None, Role::Responder) => {
                    let s = alloc
                        .allocate(remote_spi, &mut draw)
                        .map_err(|e| err(f("local_spi"), e.to_string()))?;
                    (s, true)
                }
                (None, Role::Client) => {
                    return Err(err(
                        f("local_spi"),
                        "a client must configure its inbound SPI",
                    ))
                }
            };
            out.push(ResolvedPeer {
                config: p.clone(),
                remote,
                manual: Some(ManualKeys {
                    local_spi,
                    derived,
                    remote_spi,
                    esn: m.esn,
                    encap: m.encap,
                    key_in,
                    key_out,
                }),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AES-128 key followed by a 32-byte HMAC-SHA-256 key.
    const KEY: &str = "0x0102030405060708090a0b0c0d0e0f10\
                       1112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30";

    fn peer(name: &str, inner: &str, local: Option<u32>, remote_spi: u32) -> PeerConfig {
        PeerConfig {
            name: name.into(),
            inner: vec![inner.parse().unwrap()],
            remote: None,
            ike: None,
            manual: Some(ManualConfig {
                local_spi: local,
                remote_spi,
                transform: EspTransform::AesCbcHmacSha256,
                key_in: KEY.into(),
                key_out: KEY.into(),
                esn: false,
                encap: Encap::Plain,
            }),
            replay_window: 128,
            keepalive_secs: 20,
        }
    }

    fn manual(p: &mut PeerConfig) -> &mut ManualConfig {
        p.manual.as_mut().unwrap()
    }

    fn cfg(peers: Vec<PeerConfig>) -> EndpointConfig {
        EndpointConfig {
            tun: TunConfig {
                name: "spx0".into(),
                address: "10.99.0.1/24".parse().unwrap(),
                mtu: 1400,
                offload: true,
            },
            outer: OuterConfig::default(),
            spi_layout: Layout::default(),
            metrics: MetricsConfig::default(),
            mobility: MobilityConfig::default(),
            ike: Default::default(),
            peers,
            control: ControlConfig::default(),
            log: Default::default(),
        }
    }

    fn resolve(c: &EndpointConfig, role: Role) -> Result<Vec<ResolvedPeer>, EndpointConfigError> {
        let mut a = SpiAllocator::new(c.spi_layout).unwrap();
        let mut n = 0x1000_0000u32;
        c.resolve(role, &mut a, || {
            n += 0x0001_0000;
            n
        })
    }

    #[test]
    fn responder_derives_missing_spis_with_the_tag() {
        let c = cfg(vec![
            peer("a", "10.98.0.2/32", None, 0xD456_0CA1),
            peer("b", "10.98.0.3/32", None, 0x0000_1001),
        ]);
        let r = resolve(&c, Role::Responder).unwrap();
        for p in &r {
            let m = p.manual.as_ref().unwrap();
            assert!(m.derived);
            assert!(Layout::default().matches(m.local_spi, m.remote_spi));
        }
        let k = &r[0].manual.as_ref().unwrap().key_in;
        assert_eq!(k.key, (1..=16).collect::<Vec<u8>>());
        assert_eq!(
            (k.hmac, k.hmac_key.clone()),
            (Hmac::Sha256_128, (17..=48).collect())
        );
    }

    #[test]
    fn configured_spi_must_carry_the_tag_on_a_responder() {
        let l = Layout::default();
        let good = l.derive_with(0xD456_0CA1, 0x7777_0000);
        let c = cfg(vec![peer("a", "10.98.0.2/32", Some(good), 0xD456_0CA1)]);
        let r = resolve(&c, Role::Responder).unwrap();
        assert_eq!(r[0].manual.as_ref().unwrap().local_spi, good);
        let c = cfg(vec![peer("a", "10.98.0.2/32", Some(good ^ 1), 0xD456_0CA1)]);
        let e = resolve(&c, Role::Responder).unwrap_err();
        assert_eq!(e.field, "peers[0].manual.local_spi");
        assert!(e.why.contains("spimux spi derive"), "{e}");
    }

    #[test]
    fn fully_derived_duplicate_is_refused_naming_the_field() {
        let mut c = cfg(vec![
            peer("a", "10.98.0.2/32", None, 0x0000_1001),
            peer("b", "10.98.0.3/32", None, 0x0000_1001),
        ]);
        c.spi_layout = Layout {
            tag_len: 4,
            spi_offset: 0,
            digest_offset: 0,
        };
        let e = resolve(&c, Role::Responder).unwrap_err();
        assert_eq!(e.field, "peers[1].manual.local_spi");
        assert!(e.why.contains("fully derived"), "{e}");
    }

    #[test]
    fn field_errors() {
        let mut p = peer("a", "10.98.0.2/32", Some(0x1000), 0x2000);
        p.remote = Some("198.51.100.69".into());
        manual(&mut p).key_in = "abcd".into();
        assert_eq!(
            resolve(&cfg(vec![p.clone()]), Role::Client)
                .unwrap_err()
                .field,
            "peers[0].manual.key_in"
        );
        manual(&mut p).key_in = KEY.into();
        p.remote = None;
        assert_eq!(
            resolve(&cfg(vec![p.clone()]), Role::Client)
                .unwrap_err()
                .field,
            "peers[0].remote"
        );
        p.remote = Some("198.51.100.69".into());
        let r = resolve(&cfg(vec![p.clone()]), Role::Client).unwrap();
        assert_eq!(r[0].remote, Some("198.51.100.69:4500".parse().unwrap()));
        p.remote = Some("0.0.0.0".into());
        assert!(resolve(&cfg(vec![p.clone()]), Role::Client).is_err());
        p.remote = Some("198.51.100.69:4501".into());
        manual(&mut p).remote_spi = 5;
        assert_eq!(
            resolve(&cfg(vec![p.clone()]), Role::Client)
                .unwrap_err()
                .field,
            "peers[0].manual.remote_spi"
        );
        manual(&mut p).remote_spi = 0x2000;
        // Neither keying mode, or both, is refused naming the field.
        let m = p.manual.take();
        assert_eq!(
            resolve(&cfg(vec![p.clone()]), Role::Client)
                .unwrap_err()
                .field,
            "peers[0].ike"
        );
        p.manual = m;
        assert_eq!(
            resolve(&cfg(vec![]), Role::Responder).unwrap_err().field,
            "peers"
        );
        let dup = vec![
            peer("a", "10.98.0.2/32", Some(0x1000), 0x2000),
            peer("a", "10.98.0.3/32", Some(0x1001), 0x2000),
        ];
        let mut c = cfg(dup);
        c.spi_layout = Layout::default();
        // Configured SPIs without the tag are refused first on a responder; as a client list it's too many.
        assert_eq!(resolve(&c, Role::Client).unwrap_err().field, "peers");
    }

    #[test]
    fn mobility_defaults_and_field_errors() {
        let mut p = peer("gw", "10.99.0.0/24", Some(0x1000), 0x2000);
        p.remote = Some("198.51.100.69".into());
        let mut c = cfg(vec![p]);
        c.tun.address = "10.98.0.5/32".parse().unwrap();
        assert!(!c.mobility.enabled_for(Role::Client));
        assert!(c.mobility.enabled_for(Role::Responder));
        c.mobility.enabled = Some(true);
        assert_eq!(
            resolve(&c, Role::Client).unwrap_err().field,
            "mobility.gateway"
        );
        c.mobility.gateway = Some("10.98.0.5".parse().unwrap());
        assert_eq!(
            resolve(&c, Role::Client).unwrap_err().field,
            "mobility.gateway",
            "its own address"
        );
        c.mobility.gateway = Some("10.99.0.1".parse().unwrap());
        assert!(resolve(&c, Role::Client).is_ok());
        c.mobility.max_rto_ms = 10;
        assert_eq!(
            resolve(&c, Role::Client).unwrap_err().field,
            "mobility.initial_rto_ms"
        );
        c.mobility.port = 0;
        assert_eq!(
            resolve(&c, Role::Client).unwrap_err().field,
            "mobility.port"
        );
        // A misspelt key is refused, not ignored.
        let e = toml::from_str::<EndpointConfig>(
            "[tun]\naddress = \"10.98.0.5/32\"\n[mobility]\nenabled = true\ngatway = \"10.99.0.1\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("gatway"), "{e}");
    }

    #[test]
    fn parses_keys() {
        assert!(parse_key(&"ab".repeat(36), EspTransform::AesGcm16).is_err());
        let cbc = EspTransform::AesCbcHmacSha256;
        let k = parse_key(&format!("{}{}", "01".repeat(16), "02".repeat(32)), cbc).unwrap();
        assert_eq!(k.key, vec![1; 16]);
        assert_eq!(
            (k.hmac, k.hmac_key.clone()),
            (Hmac::Sha256_128, vec![2; 32])
        );
        assert!(matches!(k.transform(), Transform::AesCbcHmac { .. }));
        assert_eq!(parse_key(&"ab".repeat(64), cbc).unwrap().key.len(), 32);
        for n in [20, 36, 47, 49, 80] {
            assert!(parse_key(&"ab".repeat(n), cbc).is_err(), "{n}");
        }
        assert!(parse_key(&"xy".repeat(48), cbc).is_err());
        let k = parse_key(&"ab".repeat(16 + 64), EspTransform::AesCbcHmacSha512).unwrap();
        assert_eq!((k.hmac, k.hmac_key.len()), (Hmac::Sha512_256, 64));
    }

    #[test]
    fn transform_is_required_and_unknown_ones_refused() {
        let base = "[tun]\naddress = \"10.98.0.5/32\"\n[[peers]]\nname = \"gw\"\ninner = [\"10.99.0.0/24\"]\n[peers.manual]\nremote_spi = 4096\nkey_in = \"00\"\nkey_out = \"00\"\n";
        let e = toml::from_str::<EndpointConfig>(base).unwrap_err();
        assert!(e.to_string().contains("transform"), "{e}");
        let c: EndpointConfig =
            toml::from_str(&format!("{base}transform = \"aes-cbc-hmac-sha384\"\n")).unwrap();
        let m = c.peers[0].manual.as_ref().unwrap();
        assert_eq!(m.transform.hmac(), Some(Hmac::Sha384_192));
        let e = toml::from_str::<EndpointConfig>(&format!("{base}transform = \"3des-md5\"\n"))
            .unwrap_err();
        assert!(e.to_string().contains("3des-md5"), "{e}");
    }

    #[test]
    fn static_aes_gcm_is_refused_naming_the_field_and_saying_why() {
        let mut p = peer("gw", "10.99.0.0/24", Some(0x1000), 0x2000);
        p.remote = Some("198.51.100.69".into());
        let m = manual(&mut p);
        m.transform = EspTransform::AesGcm16;
        (m.key_in, m.key_out) = ("ab".repeat(20), "cd".repeat(20));
        let e = resolve(&cfg(vec![p]), Role::Client).unwrap_err();
        assert_eq!(e.field, "peers[0].manual.transform");
        assert!(
            e.why.contains("RFC 4106") && e.why.contains("[peers.ike]"),
            "{e}"
        );
    }
}
