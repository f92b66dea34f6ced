//! Monitoring for the namespace testbed: the management network of
//! testbed/monitor.sh, Debian's `prometheus` in its namespace running
//! config/prometheus/prometheus.yml against the testbed, and its HTTP API.

pub mod names;

use crate::support::{terminate, Bed, ROOT};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prometheus's web listener in the monitoring namespace.
pub const PROMETHEUS: &str = "10.250.0.1:9090";

/// Management address of a testbed host (testbed/monitor.sh).
pub fn address(host: &str) -> &'static str {
    match host {
        "rt" => "10.250.0.2",
        "h1" => "10.250.0.3",
        "h2" => "10.250.0.4",
        "srv" => "10.250.0.5",
        other => panic!("no management address for {other}"),
    }
}

/// The management network of one bed; removed on drop.
pub struct Net {
    p: String,
}

impl Net {
    /// Links namespace `<prefix>mon` to `hosts` of `bed`.
    pub fn up(bed: &Bed, hosts: &[&str]) -> Net {
        let net = Net { p: bed.p.clone() };
        net.script(&[&["up", &bed.p], hosts].concat());
        net
    }

    fn script(&self, args: &[&str]) {
        let o = Command::new("bash")
            .arg(format!("{ROOT}/testbed/monitor.sh"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "monitor.sh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.script(&["down", &self.p]);
    }
}

/// Daemons started with their metrics on every address of their namespace
/// (so the management network reaches them); stopped by PID on drop, and
/// their logs printed when the test failed.
#[derive(Default)]
pub struct Daemons(Vec<(String, PathBuf, Child)>);

impl Daemons {
    /// Starts `spimux <role> --config config/<file>` in `host`, metrics on
    /// 0.0.0.0:`port`, and waits (at most 10 s) until they answer.
    pub fn endpoint(&mut self, bed: &Bed, host: &str, role: &str, file: &str, port: u16) {
        let cfg = format!("{ROOT}/config/{file}");
        let listen = format!("0.0.0.0:{port}");
        let args = [crate::support::SPIMUX, role, "--config", &cfg];
        self.spawn(
            bed,
            role,
            host,
            &[&args[..], &["--metrics-listen", &listen]].concat(),
        );
        let t0 = Instant::now();
        while bed.try_metrics_of(host, port).is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{role} did not come up: {}",
                self.log(role)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `args` in `host` under `timeout 120`, output to `<name>.log` in the bed's directory.
    pub fn spawn(&mut self, bed: &Bed, name: &str, host: &str, args: &[&str]) {
        let path = bed.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&path).unwrap();
        let child = bed
            .cmd(host, &[&["timeout", "120"], args].concat())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.0.push((name.to_string(), path, child));
    }

    /// Stops daemon `name` (SIGTERM); true when it exited cleanly.
    pub fn stop(&mut self, name: &str) -> bool {
        let i = self.0.iter().position(|d| d.0 == name).expect("started");
        let (_, _, mut c) = self.0.remove(i);
        terminate(&mut c)
    }

    /// Log of daemon `name`.
    pub fn log(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|d| d.0 == name)
            .map(|d| std::fs::read_to_string(&d.1).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for (name, path, c) in &mut self.0 {
            terminate(c);
            if std::thread::panicking() {
                let log = std::fs::read_to_string(path.as_path()).unwrap_or_default();
                eprintln!("--- {name} log ---\n{log}");
            }
        }
    }
}

/// config/prometheus/prometheus.yml for the testbed: the example with only
/// its targets (management addresses), intervals (1 s) and the rules path
/// replaced; each replacement must hit, so the example cannot drift.
pub fn config(bed: &Bed) -> PathBuf {
    let mut text = std::fs::read_to_string(format!("{ROOT}/config/prometheus/prometheus.yml"))
        .expect("config/prometheus/prometheus.yml");
    let rules = format!("{ROOT}/config/prometheus/spimux.rules.yml");
    let edits = [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_string(),
        ),
        ("- spimux.rules.yml", format!("- {rules}")),
        ("\"127.0.0.1:9780\"", format!("\"{}:9780\"", address("rt"))),
        ("\"127.0.0.1:9781\"", format!("\"{}:9781\"", address("srv"))),
        ("\"127.0.0.1:9782\"", format!("\"{}:9782\"", address("h1"))),
    ];
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "prometheus.yml has {from} once"
        );
        text = text.replace(from, &to);
    }
    let path = bed.dir.join("prometheus.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts Debian's `prometheus` in the monitoring namespace with `config`,
/// its storage in the bed's directory, and waits (at most 20 s) until ready.
pub fn start(bed: &Bed, daemons: &mut Daemons, config: &std::path::Path) {
    let data = bed.dir.join("prometheus-data");
    let args = [
        "prometheus".to_string(),
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address={PROMETHEUS}"),
        "--log.level=warn".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    daemons.spawn(bed, "prometheus", "mon", &args);
    let t0 = Instant::now();
    while !get(bed, "/-/ready", &[]).is_some_and(|b| b.contains("Ready")) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "prometheus not ready: {}",
            daemons.log("prometheus")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `path` on Prometheus from the monitoring namespace, `form` URL-encoded
/// as query parameters; the body, or None when curl failed.
fn get(bed: &Bed, path: &str, form: &[(&str, &str)]) -> Option<String> {
    let url = format!("http://{PROMETHEUS}{path}");
    let mut args = vec!["curl".to_string(), "-s".into(), "-m".into(), "5".into()];
    args.push("-G".into());
    for (k, v) in form {
        args.extend(["--data-urlencode".into(), format!("{k}={v}")]);
    }
    args.push(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = bed.cmd("mon", &args).stdin(Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// GET an API path; its `data` on success, else Prometheus's error text.
pub fn api(bed: &Bed, path: &str, form: &[(&str, &str)]) -> Result<Value, String> {
    let body = get(bed, path, form).ok_or_else(|| format!("{path}: no answer"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{path} {form:?}: {body}"));
    }
    Ok(v["data"].clone())
}

/// An instant query's result vector (or Prometheus's error).
pub fn try_query(bed: &Bed, q: &str) -> Result<Vec<Value>, String> {
    let data = api(bed, "/api/v1/query", &[("query", q)])?;
    Ok(data["result"].as_array().cloned().unwrap_or_default())
}

/// An instant query's result vector; panics on an error.
pub fn query(bed: &Bed, q: &str) -> Vec<Value> {
    try_query(bed, q).unwrap_or_else(|e| panic!("query {q}: {e}"))
}

/// The value of one result element.
pub fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

/// The single value of `q`; an error while it has no or several series.
pub fn single(bed: &Bed, q: &str) -> Result<f64, String> {
    match query(bed, q).as_slice() {
        [one] => Ok(value(one)),
        other => Err(format!("{q}: {} series", other.len())),
    }
}

/// Polls (at most 15 s, every 200 ms) until `check` returns Ok; panics with
/// `what` and the last error.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if t0.elapsed() > Duration::from_secs(15) => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
