//! Endpoint helpers shared by the tunnel, IKE and mobility tests: edited
//! copies of the shipped configs, the SAs a daemon reports, and tshark
//! decryption tables from a daemon's key log.

use super::{Bed, ROOT};
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
    let line = metrics
        .lines()
        .find(|l| l.starts_with("spimux_sa_info{") && l.contains(&format!("peer=\"{peer}\"")))
        .unwrap_or_else(|| panic!("no spimux_sa_info for {peer}:\n{metrics}"));
    let label = |k: &str| {
        let start = line.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
        line[start..].split('"').next().unwrap().to_string()
    };
    (label("local_spi"), label("remote_spi"), label("encap"))
}

/// The `esp_sa` entries of a daemon's key log as tshark `-o uat:esp_sa:…`
/// values with both addresses wildcarded (so one table reads captures on
/// either side of a NAT), and the SPIs they cover ("0x…").
pub fn esp_uat(key_log: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(key_log)
        .unwrap_or_else(|e| panic!("key log {}: {e}", key_log.display()));
    let mut opts = Vec::new();
    let mut spis = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("esp_sa: ")) {
        let f: Vec<&str> = line.splitn(5, ',').collect();
        assert_eq!(f.len(), 5, "esp_sa line: {line}");
        spis.push(f[3].trim_matches('"').to_string());
        opts.push(format!("uat:esp_sa:{},\"*\",\"*\",{},{}", f[0], f[3], f[4]));
    }
    (opts, spis)
}
