//! Unmodified strongSwan 5.9 (charon + kernel-libipsec) as the peer of
//! spimux in end-to-end tests: render a `testbed/strongswan/` template into
//! a credentials directory, run one charon per namespace with a private
//! /run (`run-charon.sh`), talk to it with swanctl.

use super::{Bed, ROOT};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The test PKIs made by `testbed/ike_pki.sh` (ECDSA P-256 and RSA-2048 hierarchies).
pub fn pki(kind: &str, file: &str) -> PathBuf {
    PathBuf::from(format!("{ROOT}/tests/data/ike/pki/{kind}/{file}"))
}

/// A swanctl directory in the bed: `swanctl --load-all --file DIR/swanctl.conf`
/// loads certificates from `x509/`, CAs from `x509ca/`, keys from `private/`.
pub struct SwanDir {
    /// The directory.
    pub dir: PathBuf,
}

impl SwanDir {
    /// Creates `name` in the bed's directory with empty credential folders.
    pub fn new(bed: &Bed, name: &str) -> SwanDir {
        let dir = bed.dir.join(name);
        for sub in ["x509", "x509ca", "private"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        SwanDir { dir }
    }

    /// Copies `cert`, its `key` and the `ca` into place; returns (cert, ca)
    /// file names for the templates' `@CERT@` and `@CACERT@`.
    pub fn credentials(&self, cert: &Path, key: &Path, ca: &Path) -> (String, String) {
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(cert, self.dir.join("x509").join(name(cert))).unwrap();
        std::fs::copy(key, self.dir.join("private").join(name(key))).unwrap();
        std::fs::copy(ca, self.dir.join("x509ca").join(name(ca))).unwrap();
        (name(cert), name(ca))
    }

    /// Renders `testbed/strongswan/<template>` with `vars` (KEY=VALUE) as
    /// this directory's swanctl.conf.
    pub fn render(&self, template: &str, vars: &[String]) -> PathBuf {
        self.write_conf(&render(template, vars))
    }

    /// Writes `text` as this directory's swanctl.conf.
    pub fn write_conf(&self, text: &str) -> PathBuf {
        let path = self.dir.join("swanctl.conf");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `testbed/strongswan/<template>` with `vars` (KEY=VALUE) filled in
/// (`render.sh` fails on a placeholder left over).
pub fn render(template: &str, vars: &[String]) -> String {
    let mut args = vec![format!("{ROOT}/testbed/strongswan/{template}")];
    args.extend_from_slice(vars);
    let o = Command::new(format!("{ROOT}/testbed/strongswan/render.sh"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// One charon started by the bed (killed with the bed, or by `stop`).
pub struct Charon {
    /// charon's PID (in the root PID namespace).
    pub pid: u32,
    /// Its log (stderr of charon and swanctl).
    pub log: PathBuf,
}

/// Starts charon in `host` with its own /run, loads `conf` and initiates
/// each of `children`; returns once that is done (run-charon.sh writes the
/// ready file after initiating; a failed initiation never gets there).
/// `tag` names the log and ready files (several charons may run in one test).
pub fn start_charon(
    bed: &mut Bed,
    host: &str,
    tag: &str,
    conf: &Path,
    children: &[&str],
) -> Charon {
    let ready = bed.dir.join(format!("{tag}.ready"));
    let log = bed.dir.join(format!("charon-{tag}.log"));
    let script = format!(
        "exec unshare -m {ROOT}/testbed/strongswan/run-charon.sh {ROOT}/testbed/strongswan/strongswan.conf {} {} {} >{} 2>&1",
        conf.display(),
        ready.display(),
        children.join(" "),
        log.display()
    );
    bed.spawn(host, &["sh", "-c", &script]);
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "charon {tag} in {host} did not come up:\n{}\nresponder:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            bed.log("responder")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&ready)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Charon { pid, log }
}

impl Charon {
    /// Runs `swanctl args` against this charon (its mount and network namespace), at most 30 s.
    pub fn swanctl(&self, args: &[&str]) -> Output {
        let pid = self.pid.to_string();
        Command::new("timeout")
            .args(["30", "nsenter", "-t", &pid, "-m", "-n", "swanctl"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops charon (SIGTERM to the PID we started) and waits (at most 5 s) until it is gone.
    pub fn stop(&self) {
        // SAFETY: signalling a process this test started, by PID.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while Path::new(&format!("/proc/{}", self.pid)).exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "charon {} did not stop",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
