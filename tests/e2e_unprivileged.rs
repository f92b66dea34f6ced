//! End-to-end: the router runs in the testbed as an unprivileged user that
//! holds only CAP_NET_RAW and CAP_NET_ADMIN (what dist/systemd gives it),
//! started with util-linux `setpriv` inside `ip netns exec`.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The service user of the test (nobody: exists everywhere, owns nothing).
const UID: u32 = 65534;
/// Another unprivileged user, who must not reach the control socket.
const OTHER_UID: u32 = 65533;
/// CAP_NET_ADMIN (12) | CAP_NET_RAW (13).
const NET_CAPS: u64 = 0x3000;
/// The endpoints' set: also CAP_NET_BIND_SERVICE (10) for IKE on UDP 500.
const ENDPOINT_CAPS: u64 = 0x3400;

/// A unit's `AmbientCapabilities=` in setpriv's syntax
/// (",+net_raw,+net_admin"): the test grants what the unit grants.
fn unit_caps(daemon: &str) -> String {
    let unit =
        std::fs::read_to_string(format!("{ROOT}/dist/systemd/spimux-{daemon}.service")).unwrap();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities= in the router unit");
    caps.split_whitespace()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect()
}

/// `setpriv` arguments that switch to `uid` keeping exactly `caps`
/// (setpriv capability names, e.g. "+net_raw,+net_admin"; "" for none).
fn as_user(uid: u32, caps: &str) -> Vec<String> {
    let set = format!("-all{caps}");
    vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
        "--no-new-privs".into(),
    ]
}

/// A daemon process started here; dropped (killed by PID) before the bed
/// removes its namespaces, since it is declared after the bed.
struct Daemon(Option<Child>);

impl Daemon {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM and wait (SIGKILL after 3 s); true on a clean exit.
    fn stop(&mut self) -> bool {
        self.0.take().is_some_and(|mut c| terminate(&mut c))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory the service user owns (as systemd's RuntimeDirectory= is),
/// readable by others so the refusal is the socket's own mode.
fn runtime_dir(bed: &Bed) -> PathBuf {
    let run = bed.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    run
}

/// Starts the router in the router namespace as [`UID`] with only the two
/// network capabilities; waits until its metrics answer.
fn start_unprivileged(bed: &Bed, cfg: &Path, socket: &Path) -> Daemon {
    // The bed's directory (config, logs) must be readable by the service user.
    std::fs::set_permissions(&bed.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = bed.cmd("rt", &[]);
    c.args(as_user(UID, &unit_caps("router")))
        .args([SPIMUX, "router", "--config", cfg.to_str().unwrap()])
        .args([
            "--inside-interface",
            &format!("{}ri", bed.p),
            "--outside-interface",
            &format!("{}ro", bed.p),
            "--control-socket",
            socket.to_str().unwrap(),
        ]);
    spawn_daemon(bed, c, "router", "rt", 9780)
}

/// `/proc/PID/status` field `key` (e.g. "CapEff"), trimmed.
fn status_field(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn caps(pid: u32, key: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, key), 16).unwrap()
}

/// `spimux router ARGS --socket S`, optionally as another user (no capabilities).
fn ctl(socket: &Path, uid: Option<u32>, args: &[&str]) -> Output {
    let mut c = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args(&as_user(u, "")[1..]).arg(SPIMUX);
            c
        }
        None => Command::new(SPIMUX),
    };
    c.arg("router")
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The process is the service user with exactly the two capabilities, in
/// every thread, and can never gain more.
fn assert_confined(pid: u32, want: u64) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "spimux", "setpriv execs the daemon in place");
    let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert!(tasks.len() > 1, "worker threads run: {tasks:?}");
    for t in tasks {
        let uids: Vec<u32> = status_field(t, "Uid")
            .split_whitespace()
            .map(|u| u.parse().unwrap())
            .collect();
        assert_eq!(uids, [UID; 4], "real, effective, saved, fs uid of {t}");
        assert_eq!(caps(t, "CapEff"), want, "effective capabilities of {t}");
        assert_eq!(caps(t, "CapPrm"), want, "permitted capabilities of {t}");
        assert_eq!(caps(t, "CapBnd"), want, "bounding set of {t}");
        assert_eq!(status_field(t, "NoNewPrivs"), "1");
    }
}

#[test]
fn router_forwards_as_unprivileged_user_with_two_capabilities() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    let socket = runtime_dir(&bed).join("router.sock");
    let cfg = bed.config("");
    let mut router = start_unprivileged(&bed, &cfg, &socket);
    assert_confined(router.pid(), NET_CAPS);

    // Forwards: ping and UDP through the NAT, from both inside hosts.
    bed.udp_echo_server();
    for h in ["h1", "h2"] {
        bed.ok(h, &["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER]);
        assert_eq!(bed.udp_echo(h, &format!("hi-{h}")), format!("hi-{h}"));
    }
    // Serves metrics that count what it forwarded.
    let udp = "spimux_nat_sessions_created_total{protocol=\"udp\"}";
    bed.wait_metric(udp, 2.0);
    assert!(bed.metric(udp) >= 2.0);
    assert!(bed.metric("spimux_nat_sessions_created_total{protocol=\"icmp\"}") >= 2.0);

    // The control socket belongs to the service user, mode 0600.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            meta.permissions().mode() & 0o777
        ),
        (UID, 0o600)
    );
    // Root and the service user read it; another user is refused.
    for who in [None, Some(UID)] {
        let o = ctl(&socket, who, &["show", "limits"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains("nat.limits.max_sessions"),
            "show limits as {who:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = ctl(&socket, Some(OTHER_UID), &["show", "limits"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("ermission denied"),
        "another user: {err}"
    );

    // A reload re-reads the file as the service user: SIGHUP (what
    // `systemctl reload` sends) and `spimux router reload` by that user.
    let raised = "[nat.limits]\nmax_sessions_per_host = 512\n";
    std::fs::write(&cfg, std::fs::read_to_string(bed.config(raised)).unwrap()).unwrap();
    // SAFETY: signalling the router this test started, by its PID.
    unsafe { libc::kill(router.pid() as i32, libc::SIGHUP) };
    let applied = "spimux_config_reloads_total{result=\"applied\"}";
    bed.wait_metric(applied, 1.0);
    assert_eq!(bed.metric(applied), 1.0, "{}", bed.router_log());
    let lowered = "[nat.limits]\nmax_sessions_per_host = 256\n";
    std::fs::write(&cfg, std::fs::read_to_string(bed.config(lowered)).unwrap()).unwrap();
    let o = ctl(&socket, Some(UID), &["reload"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("applied"),
        "reload as the service user: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(bed.metric(applied), 2.0);

    // Nothing on the way needed a privilege it lacks.
    let log = bed.router_log();
    for bad in ["ermission denied", "ot permitted", "WARN", "ERROR"] {
        assert!(!log.contains(bad), "{bad} in the router log:\n{log}");
    }
    assert!(router.stop(), "clean exit on SIGTERM:\n{log}");
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn router_disables_offloads_with_net_admin_only() {
    if !require_root() {
        return;
    }
    let bed = Bed::up();
    let socket = runtime_dir(&bed).join("router.sock");
    let cfg = bed.config("[dataplane]\ndisable_offloads = true\n");
    let inside = format!("{}ri", bed.p);
    let offload = |feature: &str| -> String {
        let k = bed.ok("rt", &["ethtool", "-k", &inside]);
        k.lines()
            .find_map(|l| l.strip_prefix(&format!("{feature}: ")))
            .unwrap_or_else(|| panic!("{feature} in {k}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        offload("generic-segmentation-offload"),
        "on",
        "veth starts with GSO on"
    );
    let mut router = start_unprivileged(&bed, &cfg, &socket);
    assert_confined(router.pid(), NET_CAPS);
    assert_eq!(offload("generic-segmentation-offload"), "off");
    bed.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER]);
    let log = bed.router_log();
    assert!(
        log.contains("offloads") && !log.contains("WARN"),
        "offloads changed without warnings:\n{log}"
    );
    assert!(router.stop(), "clean exit:\n{}", bed.router_log());
    assert_eq!(
        offload("generic-segmentation-offload"),
        "on",
        "a clean stop puts the offloads back"
    );
}

/// Starts `spimux ROLE --config CFG` in `host` as [`UID`] with its unit's
/// capabilities. Debian's udev makes /dev/net/tun mode 0666 (creating a
/// device still needs CAP_NET_ADMIN); this container's is root-only, so a
/// private mount namespace gets a 0666 node of the same device.
fn start_endpoint_unprivileged(bed: &Bed, host: &str, role: &str, cfg: &Path, port: u16) -> Daemon {
    let mut inner = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        bed.ns_name(host),
    ];
    inner.extend(as_user(UID, &unit_caps(role)));
    inner.extend([
        SPIMUX.into(),
        role.into(),
        "--config".into(),
        cfg.to_str().unwrap().into(),
        "--control-socket".into(),
        endpoint_socket(bed, role).to_str().unwrap().into(),
    ]);
    let script = format!(
        "mount -t tmpfs -o mode=0755 spimux-dev /dev/net && mknod -m 0666 /dev/net/tun c 10 200 && exec {}",
        inner.join(" ")
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    spawn_daemon(bed, c, &format!("{role}-{host}"), host, port)
}

/// An endpoint's control socket in the service user's runtime directory.
fn endpoint_socket(bed: &Bed, role: &str) -> PathBuf {
    runtime_dir(bed).join(format!("{role}.sock"))
}

/// Spawns `c` logging to `<name>.log` in the bed's directory and waits (at
/// most 10 s) until metrics answer on 127.0.0.1:`port` in `host`.
fn spawn_daemon(bed: &Bed, mut c: Command, name: &str, host: &str, port: u16) -> Daemon {
    let log = std::fs::File::create(bed.dir.join(format!("{name}.log"))).unwrap();
    let child = c
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Daemon(Some(child));
    let t0 = Instant::now();
    while bed.try_metrics_of(host, port).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "unprivileged {name} did not come up: {}",
            bed.log(name)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

#[test]
fn endpoints_run_a_tunnel_as_unprivileged_users_with_their_unit_capabilities() {
    if !require_root() {
        return;
    }
    let bed = Bed::up();
    std::fs::set_permissions(&bed.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = bed.config("");
    let mut router = start_unprivileged(&bed, &cfg, &runtime_dir(&bed).join("router.sock"));
    let resp_cfg = PathBuf::from(format!("{ROOT}/config/responder.toml"));
    let client_cfg = PathBuf::from(format!("{ROOT}/config/client-h1.toml"));
    let mut resp = start_endpoint_unprivileged(&bed, "srv", "responder", &resp_cfg, 9781);
    let mut client = start_endpoint_unprivileged(&bed, "h1", "client", &client_cfg, 9782);
    assert_confined(resp.pid(), ENDPOINT_CAPS);
    assert_confined(client.pid(), ENDPOINT_CAPS);
    let installed = "spimux_ike_child_sas{state=\"installed\"}";
    let t0 = Instant::now();
    while bed
        .try_metrics_of("h1", 9782)
        .is_none_or(|m| metric_in(&m, installed) < 1.0)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no CHILD_SA: {}",
            bed.log("client-h1")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Inner traffic through the TUN devices, ESP and the router.
    bed.ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.1"],
    );
    // Both control sockets answer root; they belong to the service user.
    for role in ["responder", "client"] {
        let socket = endpoint_socket(&bed, role);
        assert_eq!(std::fs::metadata(&socket).unwrap().uid(), UID);
        let o = Command::new(SPIMUX)
            .args([role, "show", "tunnels", "--json", "--socket"])
            .arg(&socket)
            .output()
            .unwrap();
        let shown: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{role} show: {e} {o:?}"));
        assert!(
            shown["tunnels"][0]["rx_packets"].as_u64() >= Some(3),
            "{role}: {shown}"
        );
    }
    for (name, ep) in [("client-h1", &mut client), ("responder-srv", &mut resp)] {
        let log = bed.log(name);
        assert!(
            !log.contains("WARN") && !log.contains("ERROR"),
            "{name}:\n{log}"
        );
        assert!(ep.stop(), "{name} exits cleanly:\n{}", bed.log(name));
    }
    assert!(router.stop());
}
