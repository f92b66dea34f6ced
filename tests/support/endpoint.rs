//! Endpoint helpers shared by the tunnel, IKE and mobility tests: edited
//! copies of the shipped configs (certificates instead of the PSK), the SAs
//! a daemon reports and their SPI-hash relation (`spimux spi check`), and
//! tshark decryption tables from a daemon's key log.

use super::{metric_in, Bed, ROOT, SPIMUX};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// config/<file> with `edit` applied, written into the bed's directory as
/// `edited-<file>`.
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

/// Sets `nat_detection` of every peer and turns the key log on (`[ike]
/// key_log = path`).
pub fn ike_settings(t: &mut toml::Table, nat_detection: &str, key_log: &Path) {
    let peers = t["peers"].as_array().map_or(0, Vec::len);
    for i in 0..peers {
        peer_ike(t, i).insert(
            "nat_detection".into(),
            toml::Value::String(nat_detection.into()),
        );
    }
    let ike = t
        .entry("ike")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    ike.as_table_mut().unwrap().insert(
        "key_log".into(),
        toml::Value::String(key_log.to_str().unwrap().into()),
    );
}

/// (local_spi, remote_spi, encap) of a peer from `spimux_sa_info`.
pub fn sa_info(metrics: &str, peer: &str) -> (String, String, String) {
    let l = |k| sa_label(metrics, peer, k);
    (l("local_spi"), l("remote_spi"), l("encap"))
}

/// One direction of a CHILD_SA as the key log has it: (src, dst, SPI).
pub type EspSa = (String, String, u32);

/// A key log file: its `ikev2_decryption_table` lines and, per `esp_sa`
/// line in order, the SA and its algorithms and keys.
pub struct KeyLog {
    /// `ikev2_decryption_table` lines.
    pub ike: BTreeSet<String>,
    /// Per `esp_sa` line: the SA and its algorithms and keys.
    pub esp: Vec<(EspSa, String)>,
}

/// Parses a key log.
pub fn key_log(text: &str) -> KeyLog {
    let ike = text
        .lines()
        .filter_map(|l| l.strip_prefix("ikev2_decryption_table: "))
        .map(str::to_string)
        .collect();
    let esp = text
        .lines()
        .filter_map(|l| l.strip_prefix("esp_sa: "))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(|v| v.trim_matches('"')).collect();
            assert_eq!(f.len(), 8, "esp_sa line: {l}");
            let spi = u32::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap();
            ((f[1].to_string(), f[2].to_string(), spi), f[4..].join(","))
        })
        .collect();
    KeyLog { ike, esp }
}

/// Splits a key log into tshark's two tables, as docs/IKE.md tells
/// operators to, under `conf`/wireshark (tshark's personal configuration).
pub fn tshark_tables(conf: &Path, key_log: &Path) {
    let dir = conf.join("wireshark");
    std::fs::create_dir_all(&dir).unwrap();
    for table in ["esp_sa", "ikev2_decryption_table"] {
        let cmd = format!(
            "grep '^{table}: ' {} | cut -d' ' -f2- > {}/{table}",
            key_log.display(),
            dir.display()
        );
        let o = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}");
    }
}

/// tshark on `pcap` with the key tables in `conf`, ESP decryption and ICV
/// checks on; returns stdout.
pub fn tshark(conf: &Path, pcap: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new("tshark")
        .env("XDG_CONFIG_HOME", conf)
        .env("HOME", conf)
        .args(["-n", "-r", pcap.to_str().unwrap()])
        .args(["-o", "esp.enable_encryption_decode:TRUE"])
        .args(["-o", "esp.enable_authentication_check:TRUE"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
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
