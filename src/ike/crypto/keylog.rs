//! Key log lines for Wireshark's decryption tables (operators debugging a
//! capture). The algorithm names must match Wireshark's value strings
//! exactly: they come from its `epan/dissectors/packet-isakmp.c`
//! (`vs_ikev2_encr_algs`, `vs_ikev2_auth_algs`, UAT `ikev2_decryption_table`:
//! SPIi, SPIr, SK_ei, SK_er, encryption, SK_ai, SK_ar, integrity) and
//! `packet-esp.c` (`esp_encryption_type_vals`,
//! `esp_authentication_type_vals`, UAT `esp_sa`: protocol, src, dst, SPI,
//! encryption, key, authentication, key); strongSwan's save-keys plugin
//! writes the same formats. Checked by loading them into tshark.
//!
//! These lines contain secret keys: write them only where an operator asked.

use super::{Encr, EspKeys, EspSuite, IkeKeys, IkeSuite, Integ};
use std::fmt::Write;
use std::net::Ipv4Addr;

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn ike_encr_name(encr: Encr) -> &'static str {
    match encr {
        Encr::AesGcm16 { key_bits: 128 } => "AES-GCM-128 with 16 octet ICV [RFC5282]",
        Encr::AesGcm16 { key_bits: 192 } => "AES-GCM-192 with 16 octet ICV [RFC5282]",
        Encr::AesGcm16 { .. } => "AES-GCM-256 with 16 octet ICV [RFC5282]",
        Encr::AesCbc { key_bits: 128 } => "AES-CBC-128 [RFC3602]",
        Encr::AesCbc { key_bits: 192 } => "AES-CBC-192 [RFC3602]",
        Encr::AesCbc { .. } => "AES-CBC-256 [RFC3602]",
    }
}

fn ike_integ_name(integ: Option<Integ>) -> &'static str {
    match integ {
        Some(Integ::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
        None => "NONE [RFC4306]",
    }
}

/// Line for Wireshark's `ikev2_decryption_table` UAT:
/// `SPIi,SPIr,SK_ei,SK_er,"<encr>",SK_ai,SK_ar,"<integ>"` (hex without
/// 0x; GCM keys include their salt; AEAD has empty SK_a fields and integrity
/// "NONE [RFC4306]").
pub fn ikev2_uat_line(spi_i: u64, spi_r: u64, suite: &IkeSuite, keys: &IkeKeys) -> String {
    format!(
        "{spi_i:016x},{spi_r:016x},{},{},\"{}\",{},{},\"{}\"",
        hex(&keys.sk_ei),
        hex(&keys.sk_er),
        ike_encr_name(suite.encr),
        hex(&keys.sk_ai),
        hex(&keys.sk_ar),
        ike_integ_name(suite.integ),
    )
}

/// Line for Wireshark's `esp_sa` UAT for one direction (src → dst, the
/// receiver's SPI): `"IPv4","src","dst","0x<spi>","<encr>","0x<key>",
/// "<auth>","0x<auth key>"`. GCM keys include the salt; AEAD has
/// authentication "NULL" and an empty key.
pub fn esp_uat_line(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    spi: u32,
    suite: &EspSuite,
    keys: &EspKeys,
) -> String {
    let encr = match suite.encr {
        Encr::AesGcm16 { .. } => "AES-GCM with 16 octet ICV [RFC4106]",
        Encr::AesCbc { .. } => "AES-CBC [RFC3602]",
    };
    let auth = match suite.integ {
        Some(Integ::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
        None => "NULL",
    };
    let auth_key = if keys.integ.is_empty() {
        String::new()
    } else {
        format!("0x{}", hex(&keys.integ))
    };
    format!(
        "\"IPv4\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"{encr}\",\"0x{}\",\"{auth}\",\"{auth_key}\"",
        hex(&keys.encr),
    )
}
