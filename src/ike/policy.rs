//! What one peer may negotiate: identities, authentication, proposals,
//! traffic selectors, NAT detection, lifetimes. Built by the daemons from
//! their configuration; the protocol core only reads it.

use super::crypto::{EspSuite, IkeSuite, SigningKey, TrustAnchors};
use crate::wire::ike::{IdType, Identification};
use ipnet::Ipv4Net;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// How NAT detection is answered (RFC 7296 §2.23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatDetection {
    /// Send NAT_DETECTION payloads; float to UDP 4500 and encapsulate ESP
    /// when either side is translated.
    Auto,
    /// Never send NAT_DETECTION payloads: an unmodified initiator behind a
    /// spimux router then sees no NAT and keeps plain ESP, which the router
    /// demultiplexes by the derived SPI.
    Off,
}

/// Who starts CHILD_SA rekeys on a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildRekey {
    /// Leave them to the IKE SA's initiator (the client); this side only
    /// enforces the hard lifetime. The gateway's default: an unmodified
    /// client answering a gateway-started rekey picks a random SPI that a
    /// spimux router cannot relate to the gateway's (docs/IKE.md).
    Initiator,
    /// This side rekeys too (a peer that derives when it answers, like a
    /// spimux client).
    Both,
}

/// How this side proves its identity.
#[derive(Clone)]
pub enum LocalAuth {
    /// Pre-shared key (shared key message integrity code).
    Psk(Arc<Vec<u8>>),
    /// Certificate (DER) and its private key; signatures per RFC 7427.
    Cert {
        /// End-entity certificate, DER.
        cert: Arc<Vec<u8>>,
        /// Its private key.
        key: Arc<SigningKey>,
    },
}

/// How the peer must prove its identity.
#[derive(Clone)]
pub enum RemoteAuth {
    /// Pre-shared key.
    Psk(Arc<Vec<u8>>),
    /// A certificate chaining to one of these anchors, naming the peer's ID.
    Cert(Arc<TrustAnchors>),
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LocalAuth::Psk(_) => "Psk(..)",
            LocalAuth::Cert { .. } => "Cert(..)",
        })
    }
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RemoteAuth::Psk(_) => "Psk(..)",
            RemoteAuth::Cert(_) => "Cert(..)",
        })
    }
}

/// Lifetimes in milliseconds; rekeys start at `soft - random(0..jitter)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// IKE SA rekey time (0: never).
    pub ike_rekey_ms: u64,
    /// CHILD_SA rekey time (0: never).
    pub child_rekey_ms: u64,
    /// Hard CHILD_SA lifetime: deleted if not rekeyed by then (0: never).
    pub child_hard_ms: u64,
    /// Largest random amount taken off each rekey time.
    pub jitter_ms: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ike_rekey_ms: 4 * 3600 * 1000,
            child_rekey_ms: 3600 * 1000,
            child_hard_ms: 3600 * 1000 + 600 * 1000,
            jitter_ms: 300 * 1000,
        }
    }
}

/// One peer's policy.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// Name in logs, events and metrics.
    pub name: String,
    /// Our identity (IDi or IDr).
    pub local_id: Identification,
    /// The identity the peer must present; `None` accepts any identity a
    /// valid certificate names (certificate authentication only).
    pub remote_id: Option<Identification>,
    /// How we authenticate.
    pub local_auth: LocalAuth,
    /// How the peer must authenticate.
    pub remote_auth: RemoteAuth,
    /// IKE SA suites, most preferred first.
    pub ike_suites: Vec<IkeSuite>,
    /// ESP suites, most preferred first.
    pub esp_suites: Vec<EspSuite>,
    /// Our side's networks (TSi when initiating, TSr when responding).
    pub local_ts: Vec<Ipv4Net>,
    /// The peer's networks.
    pub remote_ts: Vec<Ipv4Net>,
    /// NAT detection.
    pub nat: NatDetection,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// Who rekeys CHILD_SAs.
    pub child_rekey: ChildRekey,
    /// Liveness check interval when nothing was received (0: off).
    pub dpd_ms: u64,
    /// Initiator: where the peer is (IKE port 500). Responder: `None`.
    pub remote: Option<SocketAddrV4>,
    /// Responder: source addresses that may use this policy (empty: any).
    /// IKE_SA_INIT is answered with the first matching policy's NAT
    /// detection mode and the union of the matching policies' suites.
    pub remote_addrs: Vec<Ipv4Net>,
    /// Initiator: start again after the IKE SA fails or is deleted by the peer.
    pub restart: bool,
}

impl PeerPolicy {
    /// True when `id` is acceptable as this peer's identity.
    pub fn accepts_id(&self, id: &Identification) -> bool {
        self.remote_id.as_ref().is_none_or(|want| want == id)
    }
}

/// Parses an identity as strongSwan writes them: an IPv4 address, `@fqdn`,
/// `user@domain` (RFC 822), or a bare name (FQDN).
pub fn parse_identity(s: &str) -> Result<Identification, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty identity".into());
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Identification {
            ty: IdType::IPV4_ADDR,
            data: a.octets().to_vec(),
        });
    }
    if s.contains('=') {
        return Err(
            "distinguished names are not accepted as configured identities; use the certificate's \
             subjectAltName (FQDN, email or IPv4)"
                .into(),
        );
    }
    let (ty, text) = match s.strip_prefix('@') {
        Some(f) => (IdType::FQDN, f),
        None if s.contains('@') => (IdType::RFC822_ADDR, s),
        None => (IdType::FQDN, s),
    };
    if text.is_empty() || text.len() > 255 || !text.is_ascii() {
        return Err(format!("{s:?} is not a usable identity"));
    }
    Ok(Identification {
        ty,
        data: text.as_bytes().to_vec(),
    })
}

/// Human-readable form of an identity, for logs.
pub fn identity_text(id: &Identification) -> String {
    match (id.ty, id.data.as_slice()) {
        (IdType::IPV4_ADDR, [a, b, c, d]) => Ipv4Addr::new(*a, *b, *c, *d).to_string(),
        (IdType::FQDN | IdType::RFC822_ADDR, d) => String::from_utf8_lossy(d).into_owned(),
        (t, d) => format!("id-type-{}:{} bytes", t.0, d.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_like_strongswan() {
        assert_eq!(parse_identity("gw").unwrap().ty, IdType::FQDN);
        assert_eq!(parse_identity("@gw.example").unwrap().data, b"gw.example");
        assert_eq!(
            parse_identity("alice@example.org").unwrap().ty,
            IdType::RFC822_ADDR
        );
        let ip = parse_identity("198.51.100.69").unwrap();
        assert_eq!(
            (ip.ty, ip.data),
            (IdType::IPV4_ADDR, vec![198, 51, 100, 69])
        );
        assert!(parse_identity("").is_err());
        assert!(parse_identity("CN=gw").is_err());
        assert_eq!(identity_text(&parse_identity("h1").unwrap()), "h1");
    }
}
