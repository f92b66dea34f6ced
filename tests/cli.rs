//! The `spimux` command line: config validation and SPI tools (no root needed).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_spimux");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_config() {
    let (ok, out, _) = run(&[
        "router",
        "--config",
        &format!("{ROOT}/config/router.toml"),
        "--check",
    ]);
    assert!(ok);
    assert!(out.contains(": ok"));
}

#[test]
fn check_names_the_bad_field_and_starts_nothing() {
    let dir = std::env::temp_dir().join(format!("spimux-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(format!("{ROOT}/config/router.toml")).unwrap();
    for (edit, field) in [
        (base.replace("udp = 300 ", "udp = 30 "), "nat.timeouts.udp"),
        (base.replace("tag_len = 2 ", "tag_len = 5 "), "esp.layout"),
        (
            base.replace("listen = \"127.0.0.1:9780\"", "listen = \"nowhere\""),
            "metrics.listen",
        ),
        (
            base.replace("[dataplane]", "[dataplane]\nturbo = true"),
            "turbo",
        ),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, edit).unwrap();
        // Without --check too: validation happens before any socket is opened.
        for extra in [&["--check"][..], &[][..]] {
            let mut args = vec!["router", "--config", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            let (ok, _, err) = run(&args);
            assert!(!ok, "{field} accepted");
            assert!(err.contains(field), "error names {field}: {err}");
        }
    }
    let (ok, _, err) = run(&["router", "--config", "/nonexistent.toml", "--check"]);
    assert!(!ok && err.contains("/nonexistent.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spi_derive_check_and_digest() {
    let (ok, out, _) = run(&["spi", "derive", "0xD4560CA1"]);
    assert!(ok);
    let spi = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(spi & 0xffff, 0x46e0, "S_R[2..4] = MD5(S_O)[0..2]");
    assert!(spi >= 256);
    let (ok, out, _) = run(&["spi", "check", &format!("{spi:#x}"), "0xD4560CA1"]);
    assert!(ok, "{out}");
    let (ok, _, _) = run(&["spi", "check", &format!("{spi:#x}"), "0xB7285662"]);
    assert!(!ok);
    let (_, out, _) = run(&["spi", "digest", "0xB7285662"]);
    assert_eq!(out.trim(), "ca0d03062ab23d92df99458d1d8068b0");
    let (ok, out, _) = run(&[
        "spi",
        "derive",
        "0xD4560CA1",
        "--tag-len",
        "4",
        "--spi-offset",
        "0",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), "0x46e0ecc1", "fully derived layout");
    let (ok, _, err) = run(&[
        "spi",
        "derive",
        "0xD4560CA1",
        "--tag-len",
        "3",
        "--spi-offset",
        "2",
    ]);
    assert!(!ok && err.contains("spi_offset + tag_len"), "{err}");
}

#[test]
fn endpoint_control_settings_are_checked_and_show_finds_its_socket() {
    let dir = std::env::temp_dir().join(format!("spimux-cli-ep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(format!("{ROOT}/config/responder.toml")).unwrap();
    for (edit, field) in [
        (
            base.replace(
                "socket = \"/run/spimux/responder.sock\"",
                "socket = \"rel.sock\"",
            ),
            "control.socket",
        ),
        (
            base.replace("level = \"info\"", "level = \"spimux=[\""),
            "log.level",
        ),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, edit).unwrap();
        let (ok, _, err) = run(&["responder", "--config", path.to_str().unwrap(), "--check"]);
        assert!(!ok && err.contains(field), "error names {field}: {err}");
    }
    // The socket of --config (here disabled), or --socket; nobody listens.
    let off = dir.join("off.toml");
    std::fs::write(
        &off,
        base.replace("socket = \"/run/spimux/responder.sock\"", "socket = \"\""),
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "responder",
        "show",
        "tunnels",
        "--config",
        off.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("disabled"), "{err}");
    let gone = dir.join("gone.sock");
    let (ok, _, err) = run(&["client", "show", "ike", "--socket", gone.to_str().unwrap()]);
    assert!(!ok && err.contains("is the daemon running"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
