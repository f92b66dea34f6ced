//! Turns the IKE configuration (`[ike]`, `[peers.ike]`) of a validated
//! endpoint configuration into the protocol core's `EngineConfig` and one
//! `PeerPolicy` per IKE-keyed tunnel, loading key and certificate files.
//! Errors name the field.

use super::config::{EndpointConfig, EndpointConfigError, ResolvedPeer, Role};
use super::ike_config::{
    esp_suites, ike_suites, ChildRekeyConfig, NatDetectionConfig, MIN_PSK_LEN,
};
use crate::ike::crypto::{load_cert_der, SigningKey, TrustAnchors};
use crate::ike::policy::{
    parse_identity, ChildRekey, Lifetimes, LocalAuth, NatDetection, PeerPolicy, RemoteAuth,
};
use crate::ike::EngineConfig;
use ipnet::Ipv4Net;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

fn err(field: impl Into<String>, why: impl Into<String>) -> EndpointConfigError {
    EndpointConfigError {
        field: field.into(),
        why: why.into(),
    }
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
