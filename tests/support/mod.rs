//! Namespace testbed harness for end-to-end tests (needs root).
//!
//! Each `Bed` builds its own topology under a fresh prefix and tears it down
//! on drop, also when the test panics. Child processes started through it
//! are killed by PID on drop.

#![allow(dead_code)]

pub mod endpoint;
pub mod strongswan;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const SPIMUX: &str = env!("CARGO_BIN_EXE_spimux");
pub const SERVER: &str = "198.51.100.69";
pub const PUBLIC: &str = "203.0.113.10";
/// Debian's interpreter (has scapy from python3-scapy), not whatever python3 is first on PATH.
pub const PY: &str = "/usr/bin/python3";

/// Root check: outside CI a non-root run skips with a loud message; in CI it fails.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("end-to-end tests need root and are never skipped in CI");
    }
    eprintln!("SKIPPED: end-to-end test needs root (run the suite as root; CI does)");
    false
}

pub struct Bed {
    pub p: String,
    /// Topology script under testbed/.
    script: &'static str,
    pub dir: PathBuf,
    router: Option<Child>,
    children: Vec<Child>,
    /// ESP endpoints: (name, namespace, metrics port, process, role).
    endpoints: Vec<(String, String, u16, Child, String)>,
}

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "s{:05x}",
        (std::process::id() ^ nanos.rotate_left(7)) & 0xfffff
    )
}

impl Bed {
    pub fn up() -> Bed {
        Bed::up_with("topology.sh")
    }

    /// The mobility testbed (testbed/mobility.sh).
    pub fn mobility() -> Bed {
        Bed::up_with("mobility.sh")
    }

    fn up_with(script: &'static str) -> Bed {
        let p = unique_prefix();
        let dir = std::env::temp_dir().join(format!("spimux-e2e-{p}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bed = Bed {
            p,
            script,
            dir,
            router: None,
            children: Vec::new(),
            endpoints: Vec::new(),
        };
        bed.topology(&["up"]);
        bed
    }

    pub fn topology(&self, args: &[&str]) {
        let mut a = vec![args[0], &self.p];
        a.extend_from_slice(&args[1..]);
        let o = Command::new("bash")
            .arg(format!("{ROOT}/testbed/{}", self.script))
            .args(&a)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "topology {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn ns_name(&self, host: &str) -> String {
        format!("{}{host}", self.p)
    }

    pub fn cmd(&self, host: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns_name(host)]).args(args);
        c
    }

    /// Runs to completion (callers bound it with `timeout`).
    pub fn run(&self, host: &str, args: &[&str]) -> Output {
        let mut full = vec!["timeout", "60"];
        full.extend_from_slice(args);
        self.cmd(host, &full).output().unwrap()
    }

    pub fn ok(&self, host: &str, args: &[&str]) -> String {
        let o = self.run(host, args);
        assert!(
            o.status.success(),
            "{host}: {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn spawn(&mut self, host: &str, args: &[&str]) {
        let mut full = vec!["timeout", "120"];
        full.extend_from_slice(args);
        let c = self
            .cmd(host, &full)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(c);
    }

    /// Starts a UDP echo server on the server host, port 5353.
    pub fn udp_echo_server(&mut self) {
        self.spawn(
            "srv",
            &[
                "socat",
                &format!("UDP-RECVFROM:5353,bind={SERVER},fork"),
                "EXEC:cat",
            ],
        );
        self.wait_listening("srv", "u", 5353);
    }

    /// Waits (at most 10 s) until something listens on `port` in `host`; `kind` is "t" or "u".
    pub fn wait_listening(&self, host: &str, kind: &str, port: u16) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let o = self
                .cmd(
                    host,
                    &["ss", &format!("-Hln{kind}"), &format!("sport = :{port}")],
                )
                .output()
                .unwrap();
            if !o.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on {kind} port {port} in {host}");
    }

    /// Starts tcpdump in `host` on `iface` writing `file` in the bed's directory
    /// (`count` packets, or until stopped with `terminate`) and returns once it is capturing.
    pub fn capture(
        &self,
        host: &str,
        iface: &str,
        filter: &str,
        count: Option<u32>,
        file: &str,
    ) -> Child {
        let path = self.dir.join(file);
        let count = count.map(|c| c.to_string());
        let mut args = vec!["timeout", "60", "tcpdump", "-i", iface, "-U", "-n"];
        if let Some(c) = &count {
            args.extend(["-c", c.as_str()]);
        }
        args.extend(["-w", path.to_str().unwrap(), filter]);
        let mut c = self
            .cmd(host, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut err = BufReader::new(c.stderr.take().unwrap());
        while err.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening on") {
            line.clear();
        }
        assert!(line.contains("listening on"), "tcpdump did not start");
        c
    }

    /// Waits (at most 10 s) until `path` exists.
    pub fn wait_file(&self, path: &Path) {
        let t0 = Instant::now();
        while !path.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `count` opaque ESP packets with `spi` from `host` to `dst` (testbed/esp_peer.py).
    pub fn esp_send(&self, host: &str, dst: &str, spi: u32, count: u32) {
        let script = format!("{ROOT}/testbed/esp_peer.py");
        let (spi, count) = (format!("{spi:#x}"), count.to_string());
        self.ok(
            host,
            &[
                PY, &script, "send", "--dst", dst, "--spi", &spi, "--count", &count,
            ],
        );
    }

    /// Polls the metrics (at most 5 s) until `sample` reaches `at_least`; the
    /// router publishes its counters up to 100 ms after handling packets.
    pub fn wait_metric(&self, sample: &str, at_least: f64) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if self
                .try_metrics()
                .is_some_and(|m| metric_in(&m, sample) >= at_least)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `msg` from `host` to the UDP echo server and returns the answer.
    pub fn udp_echo(&self, host: &str, msg: &str) -> String {
        let out = self.ok(
            host,
            &[
                "sh",
                "-c",
                &format!("echo {msg} | socat -t 2 - UDP:{SERVER}:5353"),
            ],
        );
        out.trim().to_string()
    }

    /// Writes config/router.toml with `extra` TOML tables merged over it.
    pub fn config(&self, extra: &str) -> PathBuf {
        let base: toml::Table = std::fs::read_to_string(format!("{ROOT}/config/router.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let over: toml::Table = extra.parse().unwrap();
        let mut merged = base;
        merge(&mut merged, over);
        let path = self.dir.join("router.toml");
        std::fs::write(&path, toml::to_string(&merged).unwrap()).unwrap();
        path
    }

    pub fn start_router(&mut self, extra: &str) {
        let cfg = self.config(extra);
        self.start_router_with(&cfg);
    }

    pub fn start_router_with(&mut self, cfg: &Path) {
        self.start_router_args(cfg, &[]);
    }

    /// Starts the router from `cfg` with further command-line `args`.
    pub fn start_router_args(&mut self, cfg: &Path, args: &[&str]) {
        let log = std::fs::File::create(self.dir.join("router.log")).unwrap();
        let child = self
            .cmd("rt", &[SPIMUX, "router", "--config", cfg.to_str().unwrap()])
            .args(args)
            .args([
                "--inside-interface",
                &format!("{}ri", self.p),
                "--outside-interface",
                &format!("{}ro", self.p),
                "--control-socket",
                self.control_socket().to_str().unwrap(),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.router = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if self.try_metrics().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("router did not come up: {}", self.router_log());
    }

    /// The router's control socket (one per bed, so beds run side by side).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("router.sock")
    }

    /// `spimux router ARGS… --socket <this bed's>`: (success, stdout, stderr).
    pub fn router_ctl(&self, args: &[&str]) -> (bool, String, String) {
        let o = Command::new(SPIMUX)
            .arg("router")
            .args(args)
            .arg("--socket")
            .arg(self.control_socket())
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Starts `spimux <role> --config <cfg>` in `host` as `name`, metrics on
    /// 127.0.0.1:`port` there, and waits until the metrics answer.
    pub fn start_endpoint(&mut self, name: &str, host: &str, role: &str, cfg: &Path, port: u16) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let listen = format!("127.0.0.1:{port}");
        let socket = self.endpoint_socket(name);
        let child = self
            .cmd(host, &[SPIMUX, role, "--config", cfg.to_str().unwrap()])
            .args(["--metrics-listen", &listen])
            .args(["--control-socket", socket.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.endpoints.push((
            name.to_string(),
            host.to_string(),
            port,
            child,
            role.to_string(),
        ));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if self.try_metrics_of(host, port).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} did not come up: {}", self.log(name));
    }

    /// Endpoint `name`'s control socket (one per endpoint and bed).
    pub fn endpoint_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// `spimux <role> ARGS… --socket <endpoint name's>`: (success, stdout, stderr).
    pub fn endpoint_ctl(&self, name: &str, args: &[&str]) -> (bool, String, String) {
        let role = self
            .endpoints
            .iter()
            .find(|e| e.0 == name)
            .map(|e| e.4.clone())
            .expect("endpoint started");
        let o = Command::new(SPIMUX)
            .arg(&role)
            .args(args)
            .arg("--socket")
            .arg(self.endpoint_socket(name))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `endpoint_ctl` with `--json`, parsed; panics when the command fails.
    pub fn endpoint_show(&self, name: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (ok, out, err) = self.endpoint_ctl(name, &a);
        assert!(ok, "{name} {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    /// PID of endpoint `name` (`ip netns exec` execs it).
    pub fn endpoint_pid(&self, name: &str) -> u32 {
        self.endpoints
            .iter()
            .find(|e| e.0 == name)
            .map(|e| e.3.id())
            .expect("endpoint started")
    }

    /// Stops endpoint `name` (SIGTERM); true when it exited cleanly.
    pub fn stop_endpoint(&mut self, name: &str) -> bool {
        let Some(i) = self.endpoints.iter().position(|e| e.0 == name) else {
            return true;
        };
        let (_, _, _, mut c, _) = self.endpoints.remove(i);
        terminate(&mut c)
    }

    /// Kills endpoint `name` with SIGKILL (a crash: no DELETE, nothing
    /// flushed) and waits until it is gone.
    pub fn kill_endpoint(&mut self, name: &str) {
        let i = self
            .endpoints
            .iter()
            .position(|e| e.0 == name)
            .expect("endpoint started");
        let (_, _, _, mut c, _) = self.endpoints.remove(i);
        c.kill().expect("SIGKILL to our own child");
        c.wait().expect("killed endpoint reaped");
    }

    /// Log of a daemon started by this bed.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Metrics text of endpoint `name`.
    pub fn endpoint_metrics(&self, name: &str) -> String {
        let (_, host, port, _, _) = self
            .endpoints
            .iter()
            .find(|e| e.0 == name)
            .expect("endpoint started");
        self.try_metrics_of(host, *port)
            .unwrap_or_else(|| panic!("{name} metrics answer"))
    }

    /// Polls endpoint `name`'s metrics (at most 5 s) until `sample` reaches `at_least`; returns the value.
    pub fn wait_endpoint_metric(&self, name: &str, sample: &str, at_least: f64) -> f64 {
        let t0 = Instant::now();
        loop {
            let v = metric_in(&self.endpoint_metrics(name), sample);
            if v >= at_least || t0.elapsed() > Duration::from_secs(5) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn router_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("router.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; returns the exit status success.
    pub fn stop_router(&mut self) -> bool {
        let Some(mut c) = self.router.take() else {
            return true;
        };
        terminate(&mut c)
    }

    /// PID of the router process (`ip netns exec` execs it).
    pub fn router_pid(&self) -> Option<u32> {
        self.router.as_ref().map(Child::id)
    }

    pub fn router_alive(&mut self) -> bool {
        self.router
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn try_metrics(&self) -> Option<String> {
        self.try_metrics_of("rt", 9780)
    }

    pub fn try_metrics_of(&self, host: &str, port: u16) -> Option<String> {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let o = self
            .cmd(host, &["curl", "-sf", "-m", "2", &url])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub fn metrics(&self) -> String {
        self.try_metrics().expect("metrics endpoint answers")
    }

    /// Value of one sample, e.g. `spimux_drops_total{reason="fragment"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        metric_in(&self.metrics(), sample)
    }
}

pub fn metric_in(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("sample {sample} not in metrics"))
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// SIGTERM (which `timeout` forwards to its command), then SIGKILL after 3 s.
pub fn terminate(c: &mut Child) -> bool {
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(Some(s)) = c.try_wait() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in &mut self.children {
            terminate(c);
        }
        let mut endpoints = std::mem::take(&mut self.endpoints);
        for (name, _, _, c, _) in &mut endpoints {
            terminate(c);
            if std::thread::panicking() {
                eprintln!("--- {name} log ---\n{}", self.log(name));
            }
        }
        if std::thread::panicking() {
            eprintln!("--- router log ({}) ---\n{}", self.p, self.router_log());
        }
        self.stop_router();
        self.topology(&["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Result line printed by `esp_peer.py host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspResult {
    pub sent: u64,
    pub own: u64,
    pub foreign: u64,
}

pub fn parse_esp(out: &str) -> EspResult {
    let get = |k: &str| -> u64 {
        let key = format!("\"{k}\": ");
        out.split(&key)
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    EspResult {
        sent: get("sent"),
        own: get("own"),
        foreign: get("foreign"),
    }
}

/// `len` pseudo-random bytes (xorshift32 from `seed`): payloads that no
/// offload or compression can shortcut.
pub fn test_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A TCP upload checked end to end: the payload file in the bed's directory
/// and the hash a socat sink on the server writes of what it received.
pub struct Upload {
    /// The payload, written for the sender.
    pub file: PathBuf,
    got: PathBuf,
}

impl Bed {
    /// Writes `data` as `name` and starts a sink on the server at `bind:port`
    /// that hashes what arrives; the caller sends the file.
    pub fn upload_sink(&mut self, name: &str, data: &[u8], bind: &str, port: u16) -> Upload {
        let file = self.dir.join(format!("up-{name}"));
        std::fs::write(&file, data).unwrap();
        let got = self.dir.join(format!("got-{name}"));
        let sink = format!(
            "socat -u TCP-LISTEN:{port},bind={bind} - | sha256sum > {}",
            got.display()
        );
        self.spawn("srv", &["sh", "-c", &sink]);
        self.wait_listening("srv", "t", port);
        Upload { file, got }
    }

    /// Sends `u` from `host` with socat to `dst:port` (from address `bind` when given).
    pub fn socat_upload(&self, host: &str, u: &Upload, dst: &str, port: u16, bind: Option<&str>) {
        let to = match bind {
            Some(b) => format!("TCP:{dst}:{port},bind={b}"),
            None => format!("TCP:{dst}:{port}"),
        };
        self.ok(
            host,
            &["socat", "-u", &format!("OPEN:{}", u.file.display()), &to],
        );
    }

    /// Asserts the sink of `u` received exactly its file (waits up to 10 s for the hash).
    pub fn assert_uploaded(&self, u: &Upload, what: &str) {
        let want = self.ok("srv", &["sha256sum", u.file.to_str().unwrap()]);
        let t0 = Instant::now();
        while std::fs::read_to_string(&u.got).map_or(true, |s| s.len() < 64)
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let got = std::fs::read_to_string(&u.got).unwrap_or_default();
        assert_eq!(
            got.split_whitespace().next(),
            want.split_whitespace().next(),
            "{what}"
        );
    }
}

impl Bed {
    /// PID of the one `spimux` process in `host`'s namespace.
    pub fn daemon_pid(&self, host: &str) -> u32 {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns_name(host)])
            .output()
            .unwrap();
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "spimux")
            })
            .collect();
        assert_eq!(pids.len(), 1, "one spimux in {host}: {pids:?}");
        pids[0]
    }
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
