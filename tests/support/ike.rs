//! spimux IKE configuration and metrics helpers for the end-to-end tests:
//! edited copies of `config/*-ike.toml`, certificates instead of the PSK,
//! SA facts from `spimux_sa_info`, the SPI-hash relation via `spimux spi check`.

#![allow(dead_code)]

use crate::support::{metric_in, Bed, ROOT, SPIMUX};
use std::path::{Path, PathBuf};

/// config/<file> with `edit` applied, written into the bed's directory.
pub fn edited(bed: &Bed, file: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let mut t: toml::Table = std::fs::read_to_string(format!("{ROOT}/config/{file}"))
        .unwrap()
        .parse()
        .unwrap();
    edit(&mut t);
    let path = bed.dir.join(format!("edited-{file}"));
    std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
    path
}

/// `[peers.ike]` of the `i`th peer.
pub fn peer_ike(t: &mut toml::Table, i: usize) -> &mut toml::Table {
    t["peers"].as_array_mut().unwrap()[i]
        .as_table_mut()
        .unwrap()["ike"]
        .as_table_mut()
        .unwrap()
}

/// Our certificate, its private key and the CA the peer's must chain to.
pub struct CertFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

/// Switches a `[peers.ike]` table from the PSK to certificates, with these identities.
pub fn use_certs(ike: &mut toml::Table, local_id: &str, remote_id: &str, files: CertFiles) {
    let s = |v: &str| toml::Value::String(v.into());
    let p = |v: &Path| s(v.to_str().unwrap());
    ike.remove("psk");
    ike.insert("local_id".into(), s(local_id));
    ike.insert("remote_id".into(), s(remote_id));
    ike.insert("cert".into(), p(files.cert));
    ike.insert("key".into(), p(files.key));
    ike.insert("ca".into(), p(files.ca));
}

/// One label (`local_spi`, `remote_spi`, `encap`, ...) of `peer`'s `spimux_sa_info`.
pub fn sa_label(metrics: &str, peer: &str, key: &str) -> String {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("spimux_sa_info{") && l.contains(&format!("peer=\"{peer}\"")))
        .unwrap_or_else(|| panic!("no spimux_sa_info for {peer}:\n{metrics}"));
    let start = line.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
    line[start..].split('"').next().unwrap().to_string()
}

/// Asserts `peer`'s inbound SPI carries the SPI-hash tag of its outbound
/// SPI (we answered the proposal and derived); returns `spimux spi check`'s verdict.
pub fn assert_derived(metrics: &str, peer: &str) -> String {
    let (local, remote) = (
        sa_label(metrics, peer, "local_spi"),
        sa_label(metrics, peer, "remote_spi"),
    );
    let o = std::process::Command::new(SPIMUX)
        .args(["spi", "check", &local, &remote])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{peer}: {local} vs {remote}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Asserts one sample of `metrics` equals `want`.
pub fn assert_metric(metrics: &str, sample: &str, want: f64) {
    assert_eq!(metric_in(metrics, sample), want, "{sample}:\n{metrics}");
}
