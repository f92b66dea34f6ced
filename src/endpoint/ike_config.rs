//! The IKEv2 part of the endpoint configuration schema: `[ike]` (shared
//! limits and timers) and `[peers.ike]` (identities, authentication,
//! proposals, lifetimes per tunnel), and proposal strings in strongSwan
//! syntax. `ike_setup` turns them into the protocol core's types.

use crate::ike::crypto::{Encr, EspSuite, Group, IkeSuite, Integ, Prf};
use crate::ike::EngineConfig;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
}
