//! X.509 for IKE: trust anchors, chain validation, the peer's identities
//! and public key.
//!
//! rustls-webpki validates the chain (path building through the
//! intermediates, validity at the given time, basicConstraints/pathLen,
//! name constraints, signatures via ring): a maintained validator rather
//! than chain logic written here; x509-parser's own verification is only a
//! signature check. x509-parser then reads what webpki does not expose
//! (subject DN bytes, e-mail SANs, the SPKI) from the accepted certificate.

use super::sig::{self, PublicKey};
use super::CryptoError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::time::Duration;
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};

/// IKEv2 ID types matched against certificates (RFC 7296 §3.5).
mod id_type {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const DER_ASN1_DN: u8 = 9;
}

/// Signature algorithms accepted on certificates.
static SIG_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// EKU OIDs (DER contents) accepted when a certificate has an EKU
/// extension: id-kp-ipsecIKE and anyExtendedKeyUsage (RFC 4945 §5.1.3.12),
/// plus serverAuth and clientAuth, which common clients (macOS/iOS,
/// Windows) require on gateway certificates. No EKU at all is accepted.
const IPSEC_IKE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11];
const ACCEPTED_EKUS: &[&[u8]] = &[
    IPSEC_IKE,
    &[0x55, 0x1d, 0x25, 0x00],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
];

struct IkeEku;

impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if ACCEPTED_EKUS.iter().any(|a| KeyPurposeId::new(a) == id) {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(
            webpki::RequiredEkuNotFoundContext {
                required: webpki::KeyUsage::required(IPSEC_IKE),
                present,
            },
        ))
    }
}

fn cert_err(e: impl std::fmt::Debug) -> CryptoError {
    CryptoError::Certificate(format!("{e:?}"))
}

/// All certificates in `bytes`: PEM (one or more CERTIFICATE blocks) or a
/// single DER certificate.
fn certs_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CryptoError> {
    let certs: Vec<Vec<u8>> = if sig::is_pem(bytes) {
        CertificateDer::pem_slice_iter(bytes)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(cert_err)?
    } else {
        vec![bytes.to_vec()]
    };
    if certs.is_empty() {
        return Err(CryptoError::Certificate("no certificate found".into()));
    }
    for c in &certs {
        parse(c)?;
    }
    Ok(certs)
}

/// Parses one DER certificate, refusing trailing bytes.
fn parse(der: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, CryptoError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], c)) => Ok(c),
        Ok(_) => Err(CryptoError::Certificate("trailing bytes".into())),
        Err(e) => Err(cert_err(e)),
    }
}

/// A local certificate (PEM/DER) as DER, for the CERT payload; its subject
/// DN DER (for our ID) is [`PeerCert::subject_der`] of the parsed cert.
pub fn load_cert_der(bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    certs_from_pem_or_der(bytes)?
        .into_iter()
        .next()
        .ok_or_else(|| CryptoError::Certificate("no certificate found".into()))
}

/// A CA trust anchor set.
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    /// SHA-1 of each anchor's subjectPublicKeyInfo (CERTREQ, RFC 7296 §3.7).
    key_ids: Vec<[u8; 20]>,
}

impl TrustAnchors {
    /// One or more CA certificates, PEM (several blocks) or DER (one).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<TrustAnchors, CryptoError> {
        let ders = certs_from_pem_or_der(bytes)?;
        let mut key_ids = Vec::with_capacity(ders.len());
        for der in &ders {
            let spki = parse(der)?.tbs_certificate.subject_pki.raw;
            let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, spki);
            let mut id = [0u8; 20];
            id.copy_from_slice(d.as_ref());
            key_ids.push(id);
        }
        let anchors = ders
            .iter()
            .map(|der| {
                let der = CertificateDer::from(der.as_slice());
                webpki::anchor_from_trusted_cert(&der)
                    .map(|a| a.to_owned())
                    .map_err(cert_err)
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustAnchors { anchors, key_ids })
    }

    /// SHA-1 hashes of the anchors' public keys, for a CERTREQ payload.
    pub fn key_ids(&self) -> &[[u8; 20]] {
        &self.key_ids
    }

    /// Checks `end_entity` (DER) chains to an anchor through
    /// `intermediates` (DER): validity at `now_unix`, CA basicConstraints
    /// on the issuers, signatures, EKU (see above). Revocation is not
    /// checked. Returns the certificate's names and key.
    pub fn verify_chain(
        &self,
        end_entity: &[u8],
        intermediates: &[&[u8]],
        now_unix: u64,
    ) -> Result<PeerCert, CryptoError> {
        let ee_der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&ee_der).map_err(cert_err)?;
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| CertificateDer::from(*d))
            .collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now_unix));
        ee.verify_for_usage(SIG_ALGS, &self.anchors, &inter, time, IkeEku, None, None)
            .map_err(cert_err)?;
        PeerCert::from_der(end_entity)
    }
}

/// A validated end-entity certificate: its names and public key.
#[derive(Debug, Clone)]
pub struct PeerCert {
    subject: Vec<u8>,
    dns: Vec<String>,
    emails: Vec<String>,
    ipv4: Vec<[u8; 4]>,
    key: PublicKey,
}

impl PeerCert {
    fn from_der(der: &[u8]) -> Result<PeerCert, CryptoError> {
        let c = parse(der)?;
        let (mut dns, mut emails, mut ipv4) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(san) = c.subject_alternative_name().map_err(cert_err)? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::RFC822Name(e) => emails.push(e.to_string()),
                    GeneralName::IPAddress(ip) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*ip) {
                            ipv4.push(a);
                        }
                    }
                    _ => {}
                }
            }
        }
        let spki = c.public_key();
        let raw = spki.subject_public_key.data.to_vec();
        let key = if spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
            PublicKey::Rsa(raw)
        } else if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                == Some(OID_EC_P256)
        {
            PublicKey::EcP256(raw)
        } else {
            return Err(CryptoError::Certificate("unsupported key type".into()));
        };
        Ok(PeerCert {
            subject: c.subject().as_raw().to_vec(),
            dns,
            emails,
            ipv4,
            key,
        })
    }

    /// Subject DN (DER), as carried in an ID_DER_ASN1_DN ID.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// Whether the peer's ID (type and data of the IDi/IDr payload) names
    /// this certificate: ID_DER_ASN1_DN against the subject (byte
    /// equality), ID_FQDN against DNS SANs and ID_RFC822_ADDR against
    /// e-mail SANs (ASCII case-insensitive), ID_IPV4_ADDR against IP SANs.
    /// The subject CN is not used for FQDNs (SANs only, as RFC 6125).
    pub fn matches_id(&self, id_type: u8, id_data: &[u8]) -> bool {
        let eq = |names: &[String]| {
            names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(id_data))
        };
        match id_type {
            id_type::DER_ASN1_DN => self.subject == id_data,
            id_type::FQDN => eq(&self.dns),
            id_type::RFC822_ADDR => eq(&self.emails),
            id_type::IPV4_ADDR => self.ipv4.iter().any(|a| a.as_slice() == id_data),
            _ => false,
        }
    }

    /// True when the certificate's key is RSA (else ECDSA P-256).
    pub fn is_rsa(&self) -> bool {
        matches!(self.key, PublicKey::Rsa(_))
    }

    /// Verifies a received AUTH (method 1, 9 or 14) over `signed_octets`
    /// with this certificate's key. Method 1 (RSA_SIG, SHA-1) is refused
    /// with Unsupported.
    pub fn verify(
        &self,
        method: u8,
        auth_data: &[u8],
        signed_octets: &[u8],
    ) -> Result<(), CryptoError> {
        sig::verify(&self.key, method, auth_data, signed_octets)
    }
}
