//! The IKEv2 part of the endpoint configuration: `[ike]` (shared limits and
//! timers) and `[peers.ike]` (identities, authentication, proposals,
//! lifetimes per tunnel), and turning them into the protocol core's
//! `PeerPolicy` and `EngineConfig`. Errors name the field.

use super::config::{EndpointConfig, EndpointConfigError, ResolvedPeer, Role};
use crate::ike::crypto::{
    load_cert_der, Encr, EspSuite, Group, IkeSuite, Integ, Prf, SigningKey, TrustAnchors,
};
use crate::ike::policy::{
    parse_identity, ChildRekey, Lifetimes, LocalAuth, NatDetection, PeerPolicy, RemoteAuth,
};
use crate::ike::EngineConfig;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

/// Shortest pre-shared key accepted, bytes.
pub const MIN_PSK_LEN: usize = 16;

/// `[ike]`: settings every IKE-keyed peer shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IkeConfig {
    /// IKE port (UDP); NAT traversal uses `outer.udp_port`.
    pub port: u16,
    /// First retransmission timeout, ms (doubles each time).
    pub retransmit_ms: u64,
    /// Largest retransmission timeout, ms.
    pub retransmit_max_ms: u64,
    /// Retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// A half-open IKE SA (IKE_SA_INIT answered, no IKE_AUTH) is dropped after this, s.
    pub half_open_timeout_secs: u64,
    /// Half-open SAs from which IKE_SA_INIT requests must carry a cookie.
    pub cookie_threshold: usize,
    /// Most half-open SAs in total.
    pub max_half_open: usize,
    /// Most half-open SAs from one source address.
    pub max_half_open_per_source: usize,
    /// Most IKE SAs in total.
    pub max_ike_sas: usize,
    /// Most IKE SAs one peer may hold (a new one replaces its oldest).
    pub max_ike_sas_per_peer: usize,
    /// Most CHILD_SAs in one IKE SA.
    pub max_child_sas: usize,
    /// Path MTU assumed for IKE; larger IKE_AUTH messages are fragmented (RFC 7383).
    pub fragment_mtu: usize,
    /// A client starts again this long after its IKE SA failed or was deleted, ms.
    pub restart_delay_ms: u64,
    /// Append IKE and ESP keys to this file in tshark's formats (debugging only).
    pub key_log: Option<PathBuf>,
}

impl Default for IkeConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        IkeConfig {
            port: e.ike_port,
            retransmit_ms: e.retransmit_base_ms,
            retransmit_max_ms: e.retransmit_max_ms,
            retransmit_tries: e.retransmit_tries,
            half_open_timeout_secs: e.half_open_timeout_ms / 1000,
            cookie_threshold: e.cookie_threshold,
            max_half_open: e.max_half_open,
            max_half_open_per_source: e.max_half_open_per_source,
            max_ike_sas: e.max_ike_sas,
            max_ike_sas_per_peer: e.max_ike_sas_per_peer,
            max_child_sas: e.max_child_sas,
            fragment_mtu: 1280,
            restart_delay_ms: e.restart_delay_ms,
            key_log: None,
        }
    }
}

/// NAT detection mode of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NatDetectionConfig {
    /// RFC 7296 §2.23: detect, float to UDP 4500, encapsulate ESP behind NATs.
    #[default]
    Auto,
    /// Send no NAT detection payloads: initiators keep plain ESP (for peers
    /// behind spimux routers).
    Off,
}

/// Who rekeys CHILD_SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildRekeyConfig {
    /// Only the IKE initiator (the client).
    Initiator,
    /// Both sides (the peer derives when it answers, e.g. a spimux client).
    Both,
}

/// `[peers.ike]`: how one tunnel is negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerIkeConfig {
    /// Our identity: an IPv4 address, `@fqdn`, `user@domain` or a bare name (FQDN).
    pub local_id: String,
    /// The identity the peer must prove (required with a PSK).
    #[serde(default)]
    pub remote_id: Option<String>,
    /// Pre-shared key: text, or hex with a `0x` prefix (at least 16 bytes).
    #[serde(default)]
    pub psk: Option<String>,
    /// Our certificate (PEM or DER).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM/DER; RSA also PKCS#1).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// CA certificate(s) the peer's certificate must chain to.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// IKE proposals, strongSwan syntax (e.g. "aes128gcm16-prfsha256-x25519").
    #[serde(default = "default_proposals")]
    pub proposals: Vec<String>,
    /// ESP proposals (e.g. "aes128gcm16-esn").
    #[serde(default = "default_esp_proposals")]
    pub esp_proposals: Vec<String>,
    /// NAT detection.
    #[serde(default)]
    pub nat_detection: NatDetectionConfig,
    /// Our networks in this tunnel's selectors; default: the TUN address
    /// (a client's /32, a responder's network).
    #[serde(default)]
    pub local_ts: Vec<Ipv4Net>,
    /// Responder: source addresses allowed to use this peer entry (default any).
    #[serde(default)]
    pub remote_addrs: Vec<Ipv4Net>,
    /// IKE SA rekey interval, s (0: never).
    #[serde(default = "default_ike_rekey")]
    pub ike_rekey_secs: u64,
    /// CHILD_SA rekey interval, s (0: never).
    #[serde(default = "default_rekey")]
    pub rekey_secs: u64,
    /// CHILD_SA hard lifetime, s: deleted if not rekeyed by then (0: rekey + jitter + 10 % of rekey).
    #[serde(default)]
    pub life_secs: u64,
    /// Random amount, up to this, taken off each rekey time, s.
    #[serde(default = "default_jitter")]
    pub jitter_secs: u64,
    /// Who rekeys CHILD_SAs (default: the client only; see docs/IKE.md).
    #[serde(default)]
    pub child_rekey: Option<ChildRekeyConfig>,
    /// Liveness check after this many seconds without a message (0: off).
    #[serde(default = "default_dpd")]
    pub dpd_secs: u64,
}

fn default_proposals() -> Vec<String> {
    vec![
        "aes128gcm16-aes256gcm16-prfsha256-prfsha384-x25519-ecp256".into(),
        "aes128-aes256-sha256-prfsha256-x25519-ecp256".into(),
    ]
}

fn default_esp_proposals() -> Vec<String> {
    vec![
        "aes128gcm16-aes256gcm16-esn-noesn".into(),
        // What many clients offer by default.
        "aes128-aes256-sha256-esn-noesn".into(),
    ]
}

fn default_ike_rekey() -> u64 {
    4 * 3600
}

fn default_rekey() -> u64 {
    3600
}

fn default_jitter() -> u64 {
    300
}

fn default_dpd() -> u64 {
    30
}

fn err(field: impl Into<String>, why: impl Into<String>) -> EndpointConfigError {
    EndpointConfigError {
        field: field.into(),
        why: why.into(),
    }
}

/// Tokens of one proposal string, sorted by transform type.
#[derive(Default)]
struct Tokens {
    encr: Vec<Encr>,
    integ: Vec<Integ>,
    prf: Vec<Prf>,
    groups: Vec<Group>,
    esn: Vec<bool>,
}

impl Tokens {
    /// The integrity choices: none for AEAD ciphers, else each one named.
    fn integs(&self) -> Vec<Option<Integ>> {
        if self.integ.is_empty() {
            vec![None]
        } else {
            self.integ.iter().copied().map(Some).collect()
        }
    }
}

fn tokens(s: &str) -> Result<Tokens, String> {
    let mut t = Tokens::default();
    for tok in s.split('-').map(str::trim) {
        match tok {
            "aes128gcm16" | "aes128gcm" => t.encr.push(Encr::AesGcm16 { key_bits: 128 }),
            "aes256gcm16" | "aes256gcm" => t.encr.push(Encr::AesGcm16 { key_bits: 256 }),
            "aes128" => t.encr.push(Encr::AesCbc { key_bits: 128 }),
            "aes256" => t.encr.push(Encr::AesCbc { key_bits: 256 }),
            "sha256" | "sha256_128" => t.integ.push(Integ::HmacSha256_128),
            "sha384" | "sha384_192" => t.integ.push(Integ::HmacSha384_192),
            "sha512" | "sha512_256" => t.integ.push(Integ::HmacSha512_256),
            "prfsha256" => t.prf.push(Prf::HmacSha256),
            "prfsha384" => t.prf.push(Prf::HmacSha384),
            "prfsha512" => t.prf.push(Prf::HmacSha512),
            "x25519" | "curve25519" => t.groups.push(Group::Curve25519),
            "ecp256" => t.groups.push(Group::Ecp256),
            "esn" => t.esn.push(true),
            "noesn" => t.esn.push(false),
            other => {
                return Err(format!(
                    "unknown algorithm {other:?} in {s:?} (known: aes128gcm16 aes256gcm16 aes128 aes256 \
                     sha256 sha384 sha512 prfsha256 prfsha384 prfsha512 x25519 ecp256 esn noesn)"
                ))
            }
        }
    }
    if t.encr.is_empty() {
        return Err(format!("{s:?} names no encryption algorithm"));
    }
    let aead = t.encr.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != t.encr.len() {
        return Err(format!(
            "{s:?} mixes AEAD (GCM) and CBC ciphers; write two proposals"
        ));
    }
    if aead != 0 && !t.integ.is_empty() {
        return Err(format!("{s:?}: GCM needs no integrity algorithm"));
    }
    if aead == 0 && t.integ.is_empty() {
        return Err(format!(
            "{s:?}: AES-CBC needs an integrity algorithm (e.g. sha256)"
        ));
    }
    Ok(t)
}

/// IKE suites from strongSwan-style proposal strings (every combination).
pub fn ike_suites(list: &[String]) -> Result<Vec<IkeSuite>, String> {
    let mut out = Vec::new();
    for s in list {
        let t = tokens(s)?;
        if !t.esn.is_empty() {
            return Err(format!("{s:?}: esn/noesn belong in esp_proposals"));
        }
        if t.groups.is_empty() {
            return Err(format!(
                "{s:?} names no key exchange group (x25519 or ecp256)"
            ));
        }
        let prfs = if !t.prf.is_empty() {
            t.prf.clone()
        } else if t.integ.is_empty() {
            return Err(format!(
                "{s:?}: a GCM proposal needs a PRF (e.g. prfsha256)"
            ));
        } else {
            t.integ
                .iter()
                .map(|i| match i {
                    Integ::HmacSha256_128 => Prf::HmacSha256,
                    Integ::HmacSha384_192 => Prf::HmacSha384,
                    Integ::HmacSha512_256 => Prf::HmacSha512,
                })
                .collect()
        };
        let integs = t.integs();
        for &encr in &t.encr {
            for &integ in &integs {
                for &prf in &prfs {
                    for &group in &t.groups {
                        let suite = IkeSuite {
                            encr,
                            integ,
                            prf,
                            group,
                        };
                        if !out.contains(&suite) {
                            out.push(suite);
                        }
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err("no proposal".into());
    }
    Ok(out)
}

/// ESP suites from proposal strings (ESN: `esn`, `noesn`, both, or neither = noesn).
pub fn esp_suites(list: &[String]) -> Result<Vec<EspSuite>, String> {
    let mut out = Vec::new();
    for s in list {
        let t = tokens(s)?;
        if !t.prf.is_empty() || !t.groups.is_empty() {
            return Err(format!(
                "{s:?}: ESP proposals take a cipher, an integrity algorithm for CBC, and esn/noesn \
                 (key exchange groups for CHILD_SA rekeys are answered when a peer proposes them)"
            ));
        }
        let esns = if t.esn.is_empty() {
            vec![false]
        } else {
            t.esn.clone()
        };
        let integs = t.integs();
        for &encr in &t.encr {
            for &integ in &integs {
                for &esn in &esns {
                    let suite = EspSuite { encr, integ, esn };
                    if !out.contains(&suite) {
                        out.push(suite);
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err("no proposal".into());
    }
    Ok(out)
}

fn read(field: String, path: &PathBuf) -> Result<Vec<u8>, EndpointConfigError> {
    std::fs::read(path).map_err(|e| err(field, format!("{}: {e}", path.display())))
}

/// The PSK bytes: `0x` hex, or the text itself.
fn psk_bytes(s: &str) -> Result<Vec<u8>, String> {
    let b = match s.strip_prefix("0x") {
        Some(h) => {
            if !h.len().is_multiple_of(2) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("0x-prefixed PSK must be hex digits".into());
            }
            (0..h.len() / 2)
                .filter_map(|i| {
                    h.get(2 * i..2 * i + 2)
                        .and_then(|d| u8::from_str_radix(d, 16).ok())
                })
                .collect()
        }
        None => s.as_bytes().to_vec(),
    };
    if b.len() < MIN_PSK_LEN {
        return Err(format!(
            "{} bytes; use at least {MIN_PSK_LEN} random bytes (e.g. `head -c 32 /dev/urandom | base64`)",
            b.len()
        ));
    }
    Ok(b)
}

/// Why a private key did not load, with the fix for the common case: a
/// SEC1 "EC PRIVATE KEY" (what strongSwan's `pki --gen --type ecdsa` and
/// `openssl ecparam -genkey` write) where PKCS#8 is needed.
fn key_error(bytes: &[u8], e: impl std::fmt::Display) -> String {
    if bytes
        .windows(b"BEGIN EC PRIVATE KEY".len())
        .any(|w| w == b"BEGIN EC PRIVATE KEY")
    {
        return "an \"EC PRIVATE KEY\" (SEC1) file: convert it to PKCS#8 with \
                `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
            .into();
    }
    e.to_string()
}

/// Engine settings from `[ike]` and `outer`.
pub fn engine_config(cfg: &EndpointConfig) -> Result<EngineConfig, EndpointConfigError> {
    let i = &cfg.ike;
    if i.port == 0 || i.port == cfg.outer.udp_port {
        return Err(err(
            "ike.port",
            "must be non-zero and differ from outer.udp_port",
        ));
    }
    if i.retransmit_ms == 0 || i.retransmit_max_ms < i.retransmit_ms {
        return Err(err(
            "ike.retransmit_ms",
            "must be at least 1 and not above retransmit_max_ms",
        ));
    }
    if !(576..=9000).contains(&i.fragment_mtu) {
        return Err(err("ike.fragment_mtu", "must be 576..=9000"));
    }
    if i.max_half_open == 0
        || i.max_ike_sas == 0
        || i.max_half_open_per_source == 0
        || i.max_ike_sas_per_peer == 0
        || i.max_child_sas < 2
    {
        return Err(err(
            "ike.max_half_open",
            "limits must be at least 1 (max_child_sas at least 2: a rekey overlaps)",
        ));
    }
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(EngineConfig {
        ike_port: i.port,
        natt_port: cfg.outer.udp_port,
        retransmit_base_ms: i.retransmit_ms,
        retransmit_max_ms: i.retransmit_max_ms,
        retransmit_tries: i.retransmit_tries,
        half_open_timeout_ms: i.half_open_timeout_secs.saturating_mul(1000),
        cookie_threshold: i.cookie_threshold,
        max_half_open: i.max_half_open,
        max_half_open_per_source: i.max_half_open_per_source,
        max_ike_sas: i.max_ike_sas,
        max_ike_sas_per_peer: i.max_ike_sas_per_peer,
        max_child_sas: i.max_child_sas,
        // IP (20) + UDP (8) + non-ESP marker (4).
        fragment_len: i.fragment_mtu - 32,
        restart_delay_ms: i.restart_delay_ms,
        cookie_rotate_ms: 300_000,
        unix_at_zero: unix_now,
        key_log: i.key_log.is_some(),
    })
}

/// The IKE peers' policies, and for each the index of its tunnel.
pub fn policies(
    cfg: &EndpointConfig,
    role: Role,
    peers: &[ResolvedPeer],
) -> Result<(Vec<PeerPolicy>, Vec<usize>), EndpointConfigError> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = Vec::new();
    let mut index = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let Some(c) = p.config.ike.as_ref() else {
            continue;
        };
        let f = |name: &str| format!("peers[{i}].ike.{name}");
        let local_id = parse_identity(&c.local_id).map_err(|e| err(f("local_id"), e))?;
        let remote_id = c
            .remote_id
            .as_deref()
            .map(parse_identity)
            .transpose()
            .map_err(|e| err(f("remote_id"), e))?;
        let (local_auth, remote_auth) = match (&c.psk, &c.cert, &c.key, &c.ca) {
            (Some(psk), None, None, None) => {
                if remote_id.is_none() {
                    return Err(err(
                        f("remote_id"),
                        "a PSK peer must be named: the key alone does not identify it",
                    ));
                }
                let k = Arc::new(psk_bytes(psk).map_err(|e| err(f("psk"), e))?);
                (LocalAuth::Psk(k.clone()), RemoteAuth::Psk(k))
            }
            (None, Some(cert), Some(key), Some(ca)) => {
                let cert = load_cert_der(&read(f("cert"), cert)?)
                    .map_err(|e| err(f("cert"), e.to_string()))?;
                let key_bytes = read(f("key"), key)?;
                let key = SigningKey::from_pem_or_der(&key_bytes)
                    .map_err(|e| err(f("key"), key_error(&key_bytes, e)))?;
                key.check(&rng).map_err(|e| err(f("key"), e.to_string()))?;
                let ca = TrustAnchors::from_pem_or_der(&read(f("ca"), ca)?)
                    .map_err(|e| err(f("ca"), e.to_string()))?;
                (
                    LocalAuth::Cert {
                        cert: Arc::new(cert),
                        key: Arc::new(key),
                    },
                    RemoteAuth::Cert(Arc::new(ca)),
                )
            }
            (Some(_), ..) => return Err(err(f("psk"), "use either psk or cert/key/ca, not both")),
            _ => return Err(err(f("psk"), "set psk, or cert, key and ca")),
        };
        let ike_suites = ike_suites(&c.proposals).map_err(|e| err(f("proposals"), e))?;
        let esp_suites = esp_suites(&c.esp_proposals).map_err(|e| err(f("esp_proposals"), e))?;
        let local_ts = if c.local_ts.is_empty() {
            match role {
                Role::Responder => vec![cfg.tun.address.trunc()],
                Role::Client => vec![Ipv4Net::from(cfg.tun.address.addr())],
            }
        } else {
            c.local_ts.clone()
        };
        if c.rekey_secs > 0 && c.jitter_secs >= c.rekey_secs {
            return Err(err(f("jitter_secs"), "must be below rekey_secs"));
        }
        // The gateway side rekeys as late as rekey + jitter: the hard limit lies beyond.
        let latest = c.rekey_secs.saturating_add(c.jitter_secs);
        let life = if c.life_secs == 0 {
            latest.saturating_add(c.rekey_secs / 10).max(latest + 1)
        } else {
            c.life_secs
        };
        if c.rekey_secs > 0 && life <= latest {
            return Err(err(
                f("life_secs"),
                "must be above rekey_secs + jitter_secs (the rekey needs time)",
            ));
        }
        let ms = |s: u64| s.saturating_mul(1000);
        let remote = match role {
            Role::Client => p.remote.map(|r| SocketAddrV4::new(*r.ip(), cfg.ike.port)),
            Role::Responder => None,
        };
        let child_rekey = match (c.child_rekey, role) {
            (Some(ChildRekeyConfig::Both), _) | (None, Role::Client) => ChildRekey::Both,
            _ => ChildRekey::Initiator,
        };
        out.push(PeerPolicy {
            name: p.config.name.clone(),
            local_id,
            remote_id,
            local_auth,
            remote_auth,
            ike_suites,
            esp_suites,
            local_ts,
            remote_ts: p.config.inner.clone(),
            nat: match c.nat_detection {
                NatDetectionConfig::Auto => NatDetection::Auto,
                NatDetectionConfig::Off => NatDetection::Off,
            },
            lifetimes: Lifetimes {
                ike_rekey_ms: ms(c.ike_rekey_secs),
                child_rekey_ms: ms(c.rekey_secs),
                child_hard_ms: if c.rekey_secs == 0 { 0 } else { ms(life) },
                jitter_ms: ms(c.jitter_secs),
            },
            child_rekey,
            dpd_ms: ms(c.dpd_secs),
            remote,
            remote_addrs: c.remote_addrs.clone(),
            restart: role == Role::Client,
        });
        index.push(i);
    }
    Ok((out, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_parse_like_strongswan() {
        let s = ike_suites(&["aes128gcm16-prfsha256-x25519".into()]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].group, Group::Curve25519);
        let s = ike_suites(&["aes256-sha256-ecp256".into()]).unwrap();
        assert_eq!(
            (s[0].prf, s[0].integ),
            (Prf::HmacSha256, Some(Integ::HmacSha256_128))
        );
        assert_eq!(
            ike_suites(&default_proposals()).unwrap().len(),
            2 * 2 * 2 + 2 * 2
        );
        assert!(ike_suites(&["aes128gcm16-x25519".into()])
            .unwrap_err()
            .contains("PRF"));
        assert!(ike_suites(&["aes128-prfsha256-x25519".into()])
            .unwrap_err()
            .contains("integrity"));
        assert!(ike_suites(&["3des-sha1-modp1024".into()])
            .unwrap_err()
            .contains("3des"));
        let e = esp_suites(&default_esp_proposals()).unwrap();
        assert_eq!(e.len(), 8);
        assert!(e.iter().any(|s| s.integ == Some(Integ::HmacSha256_128)));
        assert!(esp_suites(&["aes128gcm16-x25519".into()]).is_err());
    }

    #[test]
    fn a_sec1_key_is_refused_with_the_conversion() {
        let sec1 = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ike/pki/ecdsa/gw.key"
        ))
        .unwrap();
        let e = SigningKey::from_pem_or_der(&sec1).err().unwrap();
        assert!(key_error(&sec1, e).contains("openssl pkcs8 -topk8"));
        assert_eq!(key_error(b"junk", "bad key"), "bad key");
    }

    #[test]
    fn psk_rules() {
        assert_eq!(
            psk_bytes("0x00112233445566778899aabbccddeeff")
                .unwrap()
                .len(),
            16
        );
        assert!(psk_bytes("short").unwrap_err().contains("at least 16"));
        assert!(psk_bytes("0xzz").is_err());
    }
}
