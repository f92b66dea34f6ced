//! The systemd units in dist/systemd: valid for systemd itself
//! (`systemd-analyze verify`, offline `security` score) and granting exactly
//! what the daemons need, at the paths dist/systemd/README.md installs.

use spimux::daemon::control::DefaultSocket;
use spimux::endpoint::config::{ControlConfig, Role};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SPIMUX: &str = env!("CARGO_BIN_EXE_spimux");
/// Where README.md installs the binary.
const INSTALLED: &str = "/usr/local/bin/spimux";
const ROLES: [&str; 3] = ["router", "responder", "client"];

fn unit_text(role: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/dist/systemd/spimux-{role}.service")).unwrap()
}

/// Every `Key=value` of the `[Service]` section, in order (keys repeat).
fn service(role: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit_text(role).lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').expect("Key=value");
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// The one value of `key` (asserts it is set exactly once).
fn one(kv: &[(String, String)], key: &str) -> String {
    let v: Vec<&String> = kv
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(v.len(), 1, "{key} set once: {v:?}");
    v[0].clone()
}

fn words(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// `systemd-analyze` from Debian's systemd package (testbed/install-deps.sh).
fn analyze(args: &[&str]) -> (bool, String) {
    let o = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian's systemd package; run testbed/install-deps.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The units with the binary path pointing at this build (verify checks
/// that ExecStart is executable), in a fresh directory.
fn units_for_this_build(tag: &str) -> (PathBuf, Vec<PathBuf>) {
    let dir = std::env::temp_dir().join(format!("spimux-units-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = ROLES
        .iter()
        .map(|role| {
            let text = unit_text(role);
            assert!(text.contains(INSTALLED), "{role} runs {INSTALLED}");
            let p = dir.join(format!("spimux-{role}.service"));
            std::fs::write(&p, text.replace(INSTALLED, SPIMUX)).unwrap();
            p
        })
        .collect();
    (dir, paths)
}

#[test]
fn units_pass_systemd_analyze_verify_without_warnings() {
    let (dir, units) = units_for_this_build("verify");
    let mut args = vec!["verify"];
    args.extend(units.iter().map(|p| p.to_str().unwrap()));
    let (ok, text) = analyze(&args);
    let _ = std::fs::remove_dir_all(&dir);
    // Unknown keys and bad values are only warnings (exit 0): any output fails.
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn units_score_ok_in_the_offline_security_review() {
    let (dir, units) = units_for_this_build("security");
    let mut failed = Vec::new();
    for u in &units {
        // 0..100 scale: 30 is an exposure of 3.0 ("OK"); the units score 1.9.
        let (ok, text) = analyze(&[
            "security",
            "--offline=true",
            "--threshold=30",
            u.to_str().unwrap(),
        ]);
        if !ok {
            failed.push(text);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn units_grant_only_the_needed_capabilities_and_paths() {
    for role in ROLES {
        let s = service(role);
        let socket = match role {
            "router" => <spimux::router::config::RouterPort as DefaultSocket>::SOCKET.to_string(),
            "responder" => ControlConfig::default().path(Role::Responder),
            _ => ControlConfig::default().path(Role::Client),
        };
        assert_eq!(
            one(&s, "ExecStart"),
            format!("{INSTALLED} {role} --config /etc/spimux/{role}.toml")
        );
        assert_eq!(one(&s, "User"), "spimux");
        assert_eq!(one(&s, "NoNewPrivileges"), "yes");
        assert_eq!(one(&s, "Restart"), "on-failure");
        // The default control socket lives in the runtime directory.
        let run = one(&s, "RuntimeDirectory");
        let file = format!("{role}.sock");
        assert_eq!(
            socket.strip_prefix("/run/").and_then(|p| p.split_once('/')),
            Some((run.as_str(), file.as_str()))
        );
        // SIGHUP reloads every daemon's configuration.
        assert_eq!(one(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
        let mut caps = words("CAP_NET_RAW CAP_NET_ADMIN");
        let mut families = words("AF_UNIX AF_INET AF_NETLINK");
        if role == "router" {
            assert_eq!(one(&s, "PrivateDevices"), "yes");
            families.insert("AF_PACKET".into());
        } else {
            // IKE listens on UDP 500; the TUN device is the one device node.
            caps.insert("CAP_NET_BIND_SERVICE".into());
            assert_eq!(one(&s, "PrivateDevices"), "no");
            assert_eq!(one(&s, "DevicePolicy"), "closed");
            assert_eq!(one(&s, "DeviceAllow"), "/dev/net/tun rw");
        }
        assert_eq!(words(&one(&s, "AmbientCapabilities")), caps, "{role}");
        assert_eq!(words(&one(&s, "CapabilityBoundingSet")), caps, "{role}");
        assert_eq!(
            words(&one(&s, "RestrictAddressFamilies")),
            families,
            "{role}"
        );
        for (k, v) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectControlGroups", "yes"),
            ("RestrictNamespaces", "yes"),
            ("LockPersonality", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("RestrictRealtime", "yes"),
            ("SystemCallArchitectures", "native"),
        ] {
            assert_eq!(one(&s, k), v, "{role}: {k}");
        }
        let filters: Vec<&str> = s
            .iter()
            .filter(|(k, _)| k == "SystemCallFilter")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(filters, ["@system-service", "~@privileged"], "{role}");
    }
    let readme = std::fs::read_to_string(format!("{ROOT}/dist/systemd/README.md")).unwrap();
    assert!(readme.contains(&format!(
        "install -m 0755 target/release/spimux {INSTALLED}"
    )));
}
