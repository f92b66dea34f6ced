//! End-to-end IKEv2: unmodified strongSwan 5.9 initiators (charon per
//! namespace, kernel-libipsec) on both inside hosts, through the spimux
//! router, to `spimux responder` keyed by IKE. Needs root; never skipped in CI.

mod support;

use std::path::{Path, PathBuf};
use support::*;

const GW_INNER: &str = "10.99.0.1";
/// (host, outer address, inner address)
const HOSTS: [(&str, &str, &str); 2] = [
    ("h1", "10.6.1.2", "10.98.0.2"),
    ("h2", "10.6.1.3", "10.98.0.3"),
];

/// Renders a strongSwan template with `testbed/strongswan/render.sh`.
fn render(bed: &Bed, template: &str, out: &str, vars: &[String]) -> PathBuf {
    let path = bed.dir.join(out);
    let mut args = vec![format!("{ROOT}/testbed/strongswan/{template}")];
    args.extend_from_slice(vars);
    let o = std::process::Command::new(format!("{ROOT}/testbed/strongswan/render.sh"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&path, o.stdout).unwrap();
    path
}

/// Starts charon in `host` with its own /run and initiates the `spimux` child;
/// returns once it is up (run-charon.sh writes the ready file after initiating).
fn start_charon(bed: &mut Bed, host: &str, conf: &Path) {
    let ready = bed.dir.join(format!("{host}.ready"));
    let log = bed.dir.join(format!("charon-{host}.log"));
    let script = format!(
        "exec unshare -m {ROOT}/testbed/strongswan/run-charon.sh {ROOT}/testbed/strongswan/strongswan.conf {} {} spimux >{} 2>&1",
        conf.display(),
        ready.display(),
        log.display()
    );
    bed.spawn(host, &["sh", "-c", &script]);
    let t0 = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            t0.elapsed().as_secs() < 20,
            "charon in {host} did not come up:\n{}\nresponder:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            bed.log("responder")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Uploads `mb` MB of pseudo-random data from `host` (bound to its inner
/// address) over TCP to the gateway's inner address; asserts it arrives bit-exact.
fn upload(bed: &mut Bed, host: &str, inner: &str, port: u16, mb: usize) {
    let mut x = 0x9E37_79B9u32 ^ u32::from(port);
    let data: Vec<u8> = (0..mb << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let file = bed.dir.join(format!("up-{host}"));
    std::fs::write(&file, &data).unwrap();
    let got = bed.dir.join(format!("got-{host}"));
    let sink = format!(
        "socat -u TCP-LISTEN:{port},bind={GW_INNER} - | sha256sum > {}",
        got.display()
    );
    bed.spawn("srv", &["sh", "-c", &sink]);
    bed.wait_listening("srv", "t", port);
    bed.ok(
        host,
        &[
            "socat",
            "-u",
            &format!("OPEN:{}", file.display()),
            &format!("TCP:{GW_INNER}:{port},bind={inner}"),
        ],
    );
    let want = bed.ok("srv", &["sha256sum", file.to_str().unwrap()]);
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&got).map_or(true, |s| s.len() < 64)
        && t0.elapsed().as_secs() < 10
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let got = std::fs::read_to_string(&got).unwrap_or_default();
    assert_eq!(
        got.split_whitespace().next(),
        want.split_whitespace().next(),
        "{host}: {mb} MB upload through the IKE-keyed tunnel arrived bit-exact"
    );
}

/// (local_spi, remote_spi, encap) of a peer from `spimux_sa_info`.
fn sa_info(metrics: &str, peer: &str) -> (String, String, String) {
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

#[test]
fn strongswan_initiators_through_the_router_to_the_ike_responder() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::up();
    bed.start_router("");
    let cfg = PathBuf::from(format!("{ROOT}/config/responder-ike.toml"));
    bed.start_endpoint("responder", "srv", "responder", &cfg, 9781);
    for (h, addr, inner) in HOSTS {
        // kernel-libipsec routes the protected network into its TUN with this source.
        bed.ok(
            h,
            &["ip", "addr", "add", &format!("{inner}/32"), "dev", "lo"],
        );
        let conf = render(
            &bed,
            "initiator-psk.conf.in",
            &format!("{h}-swanctl.conf"),
            &[
                format!("HOST_ADDR={addr}"),
                format!("INNER={inner}/32"),
                format!("ID={h}"),
            ],
        );
        start_charon(&mut bed, h, &conf);
    }
    for (h, _, inner) in HOSTS {
        bed.ok(
            h,
            &[
                "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", inner, GW_INNER,
            ],
        );
    }
    for (i, (h, _, inner)) in HOSTS.iter().enumerate() {
        upload(&mut bed, h, inner, 7001 + i as u16, 4);
    }
    let m = bed.endpoint_metrics("responder");
    assert_eq!(
        metric_in(&m, "spimux_ike_sas{state=\"established\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_in(&m, "spimux_ike_spis_total{how=\"derived\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_in(
            &m,
            "spimux_ike_exchanges_total{exchange=\"ike_auth\",role=\"responder\",result=\"ok\"}"
        ),
        2.0
    );
    for (h, _, _) in HOSTS {
        let (local, remote, encap) = sa_info(&m, h);
        // kernel-libipsec always fakes a NAT, so ESP is in UDP here.
        assert_eq!(encap, "udp", "{h}");
        // The responder's SPI carries the SPI-hash tag of the initiator's.
        let o = std::process::Command::new(SPIMUX)
            .args(["spi", "check", &local, &remote])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{h}: {local} vs {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        println!(
            "{h}: responder SPI {local} derived from strongSwan's {remote}, ESP in {encap}: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        );
    }
    let log = bed.log("responder");
    assert_eq!(log.matches("CHILD_SA installed").count(), 2, "{log}");
}
